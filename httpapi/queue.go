package httpapi

import (
	"sync"

	"github.com/aegis-streaming/aegis/engine"
)

// queue is a stream's events between its pump and its writer: a FIFO that
// grows as needed up to limit events (an idle stream holds no memory for
// it) and shrinks back when drained.
type queue struct {
	mu    sync.Mutex
	buf   []engine.Event
	head  int
	limit int
	ready chan struct{} // signalled when events arrive
	space chan struct{} // signalled when events leave
	peak  int
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// push appends as many of events as fit; it returns how many did.
func (q *queue) push(events []engine.Event) int {
	q.mu.Lock()
	n := min(len(events), q.limit-(len(q.buf)-q.head))
	if n > 0 {
		if q.head > 0 && len(q.buf)+n > cap(q.buf) {
			// Move what is left to the front before growing.
			k := copy(q.buf, q.buf[q.head:])
			clear(q.buf[k:])
			q.buf, q.head = q.buf[:k], 0
		}
		q.buf = append(q.buf, events[:n]...)
		q.peak = max(q.peak, len(q.buf)-q.head)
	}
	q.mu.Unlock()
	if n > 0 {
		signal(q.ready)
	}
	return n
}

// pop moves up to max events into dst.
func (q *queue) pop(dst []engine.Event, max int) []engine.Event {
	q.mu.Lock()
	n := min(max, len(q.buf)-q.head)
	dst = append(dst, q.buf[q.head:q.head+n]...)
	clear(q.buf[q.head : q.head+n])
	q.head += n
	if q.head == len(q.buf) {
		q.head = 0
		q.buf = q.buf[:0]
		if cap(q.buf) > 4096 {
			q.buf = nil // a burst is over: give its memory back
		}
	}
	q.mu.Unlock()
	if n > 0 {
		signal(q.space)
	}
	return dst
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.buf) - q.head
}
