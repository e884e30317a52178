package engine

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
)

// queue is a subscription's buffer: a bounded ring of events with one
// producer at a time (the channel's publisher, serialised by the channel) and
// any number of receivers. It never blocks under its lock; waiting happens on
// the signal channels.
type queue struct {
	mu   sync.Mutex
	buf  []Event
	head int // index of the oldest event
	n    int // events held
	err  error
	// drain: a closed queue still hands out what it holds before err (a
	// deleted channel or a disconnected subscriber); otherwise closing
	// discards it (the owner closed the subscription).
	drain bool

	// count mirrors n and closedFlag mirrors err != nil, both written under
	// mu, so that the publisher can read its room without taking the lock.
	// Only the publisher adds, so the room it reads can only grow until it
	// pushes.
	count      atomic.Int64
	closedFlag atomic.Bool

	notEmpty chan struct{} // signalled after a push; capacity 1
	notFull  chan struct{} // signalled after a pop; capacity 1
	done     chan struct{} // closed when the queue is closed
}

func newQueue(capacity int) *queue {
	return &queue{
		buf:      make([]Event, capacity),
		notEmpty: make(chan struct{}, 1),
		notFull:  make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// free is the room left; a closed queue has unlimited room, since pushing to
// it is a no-op.
func (q *queue) free() int {
	if q.closedFlag.Load() {
		return math.MaxInt
	}
	return len(q.buf) - int(q.count.Load())
}

func (q *queue) len() int { return int(q.count.Load()) }

// push appends events[idx[i]] for every i (or every event when idx is nil).
// When the ring is full, it overwrites the oldest events if overwrite is set
// and stops otherwise. It returns how many it stored and how many old events
// it overwrote.
func (q *queue) push(events []Event, idx []int32, overwrite bool) (stored, overwritten int) {
	q.mu.Lock()
	if q.err != nil {
		q.mu.Unlock()
		return 0, 0
	}
	size := len(q.buf)
	count := len(events)
	if idx != nil {
		count = len(idx)
	}
	for i := 0; i < count; i++ {
		j := i
		if idx != nil {
			j = int(idx[i])
		}
		if q.n == size {
			if !overwrite {
				break
			}
			q.buf[q.head] = Event{}
			q.head = (q.head + 1) % size
			q.n--
			overwritten++
		}
		q.buf[(q.head+q.n)%size] = events[j]
		q.n++
		stored++
	}
	q.count.Store(int64(q.n))
	q.mu.Unlock()
	if stored > 0 {
		signal(q.notEmpty)
	}
	return stored, overwritten
}

// pop moves up to len(dst) events into dst. It returns how many, and the
// queue's error when it is closed and has nothing (more) to hand out.
func (q *queue) pop(dst []Event) (int, error) {
	q.mu.Lock()
	if q.err != nil && !q.drain {
		q.mu.Unlock()
		return 0, q.err
	}
	k := min(len(dst), q.n)
	size := len(q.buf)
	for i := 0; i < k; i++ {
		dst[i] = q.buf[q.head]
		q.buf[q.head] = Event{} // let the payload go
		q.head = (q.head + 1) % size
	}
	q.n -= k
	q.count.Store(int64(q.n))
	left, err := q.n, q.err
	q.mu.Unlock()
	if k > 0 {
		signal(q.notFull)
		if left > 0 {
			// Another receiver may be waiting on the same subscription.
			signal(q.notEmpty)
		}
		return k, nil
	}
	return 0, err
}

// wait blocks until the queue may have events, is closed, or ctx is done.
func (q *queue) wait(ctx context.Context) error {
	select {
	case <-q.notEmpty:
		return nil
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close ends the queue with err. With drain, receivers get what it holds
// first; otherwise it is discarded and the number discarded is returned.
// Closing twice keeps the first reason.
func (q *queue) close(err error, drain bool) (discarded int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return 0
	}
	q.err, q.drain = err, drain
	q.closedFlag.Store(true)
	if !drain {
		discarded = q.n
		clear(q.buf)
		q.n, q.head = 0, 0
		q.count.Store(0)
	}
	close(q.done)
	return discarded
}

// closed reports the queue's error, if it is closed.
func (q *queue) closed() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}
