package jetstream

import (
	"fmt"
	"time"
)

// AckPolicy says how a consumer's messages are acknowledged.
type AckPolicy int

const (
	// AckExplicit (the default): every message is acknowledged on its own;
	// [Consumer.Ack] acks each message of a batch. Needed for per-message
	// Nak and Term.
	AckExplicit AckPolicy = iota
	// AckAll: acknowledging a message acknowledges every earlier one too;
	// [Consumer.Ack] sends one ack for a whole batch (about 3x faster to
	// consume). Only for a single reader that finishes messages in order
	// (a pipeline): never Nak or Term a message and then Ack a later one, the
	// later ack covers it.
	AckAll
	// AckNone: messages count as acknowledged when sent; nothing is
	// redelivered. Ack calls are no-ops.
	AckNone
)

// String is "explicit", "all" or "none".
func (p AckPolicy) String() string {
	switch p {
	case AckAll:
		return "all"
	case AckNone:
		return "none"
	}
	return "explicit"
}

type startKind int

const (
	startAll startKind = iota
	startNew
	startSeq
	startTime
	startAfterEvent
)

// StartPosition is where a new durable consumer begins. It matters only when the
// consumer is created: an existing one resumes after its last acknowledged
// message. The zero value is [StartAll].
type StartPosition struct {
	kind startKind
	seq  uint64
	t    time.Time
	id   string
}

// StartAll begins at the oldest message the stream holds.
func StartAll() StartPosition { return StartPosition{} }

// StartNew begins with the first message published after the consumer is
// created.
func StartNew() StartPosition { return StartPosition{kind: startNew} }

// StartAtSeq begins at stream sequence seq (or the oldest held after it).
func StartAtSeq(seq uint64) StartPosition { return StartPosition{kind: startSeq, seq: seq} }

// StartAtTime begins at the first message stored at or after t.
func StartAtTime(t time.Time) StartPosition { return StartPosition{kind: startTime, t: t} }

// StartAfterEvent begins with the message published after the one whose ID
// (Nats-Msg-Id) is id, like the engine's in-memory history. Creating the
// consumer fails with [ErrEventNotFound] when the stream does not hold it.
// See [Stream.FindEvent] for how the event is found.
func StartAfterEvent(id string) StartPosition { return StartPosition{kind: startAfterEvent, id: id} }

// String describes the position.
func (s StartPosition) String() string {
	switch s.kind {
	case startNew:
		return "new"
	case startSeq:
		return fmt.Sprintf("seq %d", s.seq)
	case startTime:
		return "time " + s.t.Format(time.RFC3339Nano)
	case startAfterEvent:
		return "after event " + s.id
	}
	return "all"
}

// ConsumerOptions configure a durable consumer. Zero values are defaults.
type ConsumerOptions struct {
	// Start is where a new consumer begins; default [StartAll].
	Start StartPosition
	// AckPolicy is how messages are acknowledged; default [AckExplicit].
	AckPolicy AckPolicy
	// AckWait is how long the server waits for an ack before it delivers a
	// message again; 0: 30 s. With BackOff set, the server uses BackOff[0]
	// instead (and reports it as AckWait).
	AckWait time.Duration
	// MaxDeliver is how often a message is delivered at most; 0: no limit.
	// A message that reaches it without an ack is given up on: the server
	// emits an advisory that [Consumer.DeadLetters] turns into a dead letter.
	MaxDeliver int
	// BackOff are the ack waits before the 1st, 2nd, ... redelivery (the last
	// repeats). At most MaxDeliver values when MaxDeliver is set (the
	// last one is the ack wait of the last delivery), as the server says.
	BackOff []time.Duration
	// MaxAckPending is the most messages delivered and not yet acknowledged;
	// the server delivers no more until some are acknowledged; 0: 1000.
	MaxAckPending int
	// Prefetch is how many messages the client asks the server for ahead of
	// [Consumer.Fetch]; 0: 256. Prefetched messages' AckWait is running.
	Prefetch int
	// InactiveThreshold, when positive, lets the server delete the consumer
	// once no client has pulled from it for that long (a subscription that
	// is not meant to outlive its process); 0: never.
	InactiveThreshold time.Duration
}

func (o ConsumerOptions) check() error {
	if o.AckWait < 0 || o.MaxDeliver < 0 || o.MaxAckPending < 0 || o.Prefetch < 0 || o.InactiveThreshold < 0 {
		return fmt.Errorf("negative consumer option")
	}
	if len(o.BackOff) > 0 && o.MaxDeliver > 0 && o.MaxDeliver < len(o.BackOff) {
		return fmt.Errorf("%d backoff values, more than max deliver %d deliveries can use", len(o.BackOff), o.MaxDeliver)
	}
	if len(o.BackOff) > 0 && o.AckPolicy == AckNone {
		return fmt.Errorf("backoff needs acks (ack policy %s)", o.AckPolicy)
	}
	return nil
}
