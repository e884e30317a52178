package cdc

import (
	"context"
	"io"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// chunk is what a source's producer goroutine hands to Read: events, and
// with the last chunk the error that ended the stream (nil before).
type chunk struct {
	events []engine.Event
	err    error
}

// chunks is the reading side of a producer's stream of chunks: it makes
// Read's batches out of them. The producer sends the chunks in order,
// then closes ch; a stream that ends without an error ends with io.EOF.
type chunks struct {
	ch       chan chunk
	batch    Config // BatchSize and BatchTimeout
	leftover []engine.Event
	err      error // the end of the stream, once received
}

func newChunks(cfg Config, buffer int) *chunks {
	return &chunks{ch: make(chan chunk, buffer), batch: cfg}
}

// read is an engine.Source's Read: it appends up to max events (and the
// batch size) to dst, waiting for the first; with a batch timeout it waits
// that long for more. After the last event it returns the stream's end.
func (q *chunks) read(ctx context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	limit := len(dst) + min(max, q.batch.BatchSize)
	for len(q.leftover) == 0 {
		if q.err != nil {
			return dst, q.err
		}
		select {
		case c, ok := <-q.ch:
			q.receive(c, ok)
		case <-ctx.Done():
			return dst, ctx.Err()
		}
	}
	dst = q.take(dst, limit)
	var timer <-chan time.Time
	if q.batch.BatchTimeout > 0 {
		t := time.NewTimer(q.batch.BatchTimeout)
		defer t.Stop()
		timer = t.C
	}
	for len(dst) < limit && q.err == nil {
		select {
		case c, ok := <-q.ch:
			q.receive(c, ok)
			dst = q.take(dst, limit)
			continue
		default:
		}
		if timer == nil {
			break
		}
		select {
		case c, ok := <-q.ch:
			q.receive(c, ok)
			dst = q.take(dst, limit)
			continue
		case <-timer:
		case <-ctx.Done():
		}
		break
	}
	if len(q.leftover) == 0 && q.err != nil {
		return dst, q.err
	}
	return dst, nil
}

func (q *chunks) receive(c chunk, ok bool) {
	switch {
	case !ok:
		q.err = io.EOF
	case c.err != nil:
		q.leftover, q.err = c.events, c.err
	default:
		q.leftover = c.events
	}
}

// take moves events from the leftover chunk to dst, up to limit in dst.
func (q *chunks) take(dst []engine.Event, limit int) []engine.Event {
	n := min(len(q.leftover), limit-len(dst))
	dst = append(dst, q.leftover[:n]...)
	q.leftover = q.leftover[n:]
	return dst
}
