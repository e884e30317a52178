package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Msg is one message to publish: one event per message.
//
// The engine puts the event's ID in ID and the event, encoded with
// engine.Event.MarshalJSON, in Data. This package does not import the engine
// (the engine will import it), so the encoding is the caller's choice; JSON
// is the one for now because it round-trips every field (metadata included)
// and is readable with the nats CLI. The binary ABI record is the faster
// candidate once the engine stores batches in their wire form.
type Msg struct {
	// ID is the message ID (header Nats-Msg-Id): a second publish with the
	// same ID within the stream's duplicate window is not stored again.
	// Empty: no de-duplication.
	ID string
	// Data is the body.
	Data []byte
	// Header holds extra headers. Names starting with "Nats-" are the
	// server's and must not be set here.
	Header map[string]string
}

// PubAck is the server's acknowledgement of a stored message.
type PubAck struct {
	// Seq is the message's stream sequence. For a duplicate it is the
	// sequence of the message stored first under the same ID.
	Seq uint64
	// Duplicate is true when the stream already held a message with this ID
	// within its duplicate window; nothing new was stored.
	Duplicate bool
}

func (s *Stream) natsMsg(m Msg) (*nats.Msg, error) {
	nm := &nats.Msg{Subject: s.subject, Data: m.Data}
	if m.ID != "" || len(m.Header) > 0 {
		nm.Header = make(nats.Header, len(m.Header)+1)
		for k, v := range m.Header {
			if len(k) >= 5 && (k[:5] == "Nats-" || k[:5] == "NATS-" || k[:5] == "nats-") {
				return nil, fmt.Errorf("header[%s]: reserved for the server", k)
			}
			nm.Header.Set(k, v)
		}
		if m.ID != "" {
			nm.Header.Set(jetstream.MsgIDHeader, m.ID)
		}
	}
	return nm, nil
}

// A publish that finds no stream listening ("no responders") is retried,
// noResponderWait apart, for up to noResponderFor (ctx permitting) before
// the stream is called missing: on a cluster that is normal for a moment
// (a stream just created, or whose leader was just elected, is not yet
// known to the server the connection is on), and for seconds while the
// streams elect their leaders after the cluster restarts.
const (
	noResponderWait = 50 * time.Millisecond
	noResponderFor  = 10 * time.Second
)

// Publish stores m and waits for the server's acknowledgement (or ctx). An
// acknowledged message is stored (on a quorum of replicas for Replicas > 1).
// Without one (the context's error, [ErrNotConnected]) it may or may not be
// stored: publish it again with the same ID and the duplicate window makes
// the retry safe. A full store fails with [ErrStoreFull], a full stream with
// [DiscardNew] with [ErrStreamFull].
func (s *Stream) Publish(ctx context.Context, m Msg) (PubAck, error) {
	nm, err := s.natsMsg(m)
	if err != nil {
		return PubAck{}, fmt.Errorf("channel[%s] msg[%s]: %w", s.channel, m.ID, err)
	}
	var pa *jetstream.PubAck
	var noResponder error // the last "no responders" answer
	giveUp := time.Now().Add(noResponderFor)
	for {
		pa, err = s.c.js.PublishMsg(ctx, nm, jetstream.WithRetryAttempts(0))
		if err != nil && ctx.Err() != nil && noResponder != nil {
			// The context ended while waiting for a stream to answer:
			// what is known is that none did.
			err = noResponder
		}
		if err == nil || ctx.Err() != nil {
			break
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			noResponder = err
		}
		wait := time.Duration(0)
		switch {
		case isAPICode(err, codeDuplicateInProcess):
			// A clustered stream refuses a duplicate while the first
			// message with its ID is still being replicated; once that is
			// done the retry is acknowledged as a duplicate.
			wait = 5 * time.Millisecond
		case errors.Is(err, jetstream.ErrNoStreamResponse) && time.Now().Before(giveUp):
			wait = noResponderWait
		}
		if wait == 0 {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
			continue
		}
		break
	}
	if err != nil {
		return PubAck{}, fmt.Errorf("channel[%s] msg[%s]: publish: %w", s.channel, m.ID, s.c.unreachable(apiError(err)))
	}
	return PubAck{Seq: pa.Sequence, Duplicate: pa.Duplicate}, nil
}

// unreachable adds [ErrNotConnected] to a context error while the
// connection is down: a publish then waits for its context (the client
// sends it once it reconnects), and "deadline exceeded" alone would not
// say why.
func (c *Conn) unreachable(err error) error {
	if c.nc.IsConnected() || errors.Is(err, ErrNotConnected) || (!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)) {
		return err
	}
	return fmt.Errorf("%w to any server (reconnecting): %w", ErrNotConnected, err)
}

// AckFuture is the pending result of [Stream.PublishAsync].
type AckFuture struct {
	s   *Stream
	id  string
	paf jetstream.PubAckFuture
}

// Wait waits for the acknowledgement (or ctx); the errors are those of
// [Stream.Publish].
func (f *AckFuture) Wait(ctx context.Context) (PubAck, error) {
	select {
	case pa := <-f.paf.Ok():
		return PubAck{Seq: pa.Sequence, Duplicate: pa.Duplicate}, nil
	case err := <-f.paf.Err():
		return PubAck{}, fmt.Errorf("channel[%s] msg[%s]: publish: %w", f.s.channel, f.id, apiError(err))
	case <-ctx.Done():
		return PubAck{}, fmt.Errorf("channel[%s] msg[%s]: publish: %w", f.s.channel, f.id, f.s.c.unreachable(ctx.Err()))
	}
}

// PublishAsync sends m without waiting for its acknowledgement; Wait on the
// result gets it. At most the connection's window (AsyncWindow, default
// 4096) of publishes are outstanding: beyond it PublishAsync blocks until
// one is acknowledged, or fails when ctx is done first.
func (s *Stream) PublishAsync(ctx context.Context, m Msg) (*AckFuture, error) {
	nm, err := s.natsMsg(m)
	if err != nil {
		return nil, fmt.Errorf("channel[%s] msg[%s]: %w", s.channel, m.ID, err)
	}
	for {
		// The client gives up on a full window after its stall wait; wait
		// in bounded steps so ctx decides.
		paf, err := s.c.js.PublishMsgAsync(nm, jetstream.WithStallWait(time.Second))
		if err == nil {
			return &AckFuture{s: s, id: m.ID, paf: paf}, nil
		}
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return nil, fmt.Errorf("channel[%s] msg[%s]: publish: %w", s.channel, m.ID, apiError(err))
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("channel[%s] msg[%s]: publish window full: %w", s.channel, m.ID, ctx.Err())
		}
	}
}

// BatchError reports the messages of a [Stream.PublishBatch] that were not
// acknowledged.
type BatchError struct {
	// Failed maps the index of each failed message to its error.
	Failed map[int]error
	// First is the lowest failed index.
	First int
}

// Error names the number of failures and the first one.
func (e *BatchError) Error() string {
	return fmt.Sprintf("%d of the batch's messages failed, first at index %d: %v", len(e.Failed), e.First, e.Failed[e.First])
}

// Unwrap returns the first failure, so errors.Is(err, ErrStoreFull) works.
func (e *BatchError) Unwrap() error { return e.Failed[e.First] }

// PublishBatch publishes msgs asynchronously within the connection's window
// and waits for every acknowledgement. acks[i] belongs to msgs[i]. When some
// fail, err is a *[BatchError] naming them and the others' acks are still
// valid; a caller that retries the whole batch with the same IDs gets the
// stored ones back as duplicates.
func (s *Stream) PublishBatch(ctx context.Context, msgs []Msg) (acks []PubAck, err error) {
	acks = make([]PubAck, len(msgs))
	futs := make([]*AckFuture, len(msgs))
	be := &BatchError{}
	fail := func(i int, err error) {
		if be.Failed == nil {
			be.Failed = map[int]error{}
			be.First = i
		}
		be.Failed[i] = err
		be.First = min(be.First, i)
	}
	for i, m := range msgs {
		f, err := s.PublishAsync(ctx, m)
		if err != nil {
			fail(i, err)
			if ctx.Err() != nil {
				for j := i + 1; j < len(msgs); j++ {
					fail(j, err)
				}
				break
			}
			continue
		}
		futs[i] = f
	}
	for i, f := range futs {
		if f == nil {
			continue
		}
		a, err := f.Wait(ctx)
		if isAPICode(err, codeDuplicateInProcess) || errors.Is(err, jetstream.ErrNoStreamResponse) {
			// Publish retries these.
			a, err = s.Publish(ctx, msgs[i])
		}
		if err != nil {
			fail(i, err)
			continue
		}
		acks[i] = a
	}
	if be.Failed != nil {
		return acks, be
	}
	return acks, nil
}

func headerMap(h nats.Header) map[string]string {
	var out map[string]string
	for k, v := range h {
		if k == jetstream.MsgIDHeader || len(v) == 0 {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(h))
		}
		out[k] = v[0]
	}
	return out
}
