package engine

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// SubscribeOptions configures a subscription. The zero value subscribes to
// every event with at-most-once delivery and automatic acknowledgement.
type SubscribeOptions struct {
	// Subscriber names who subscribes; one subscriber may hold several
	// subscriptions. Default: the subscription's ID.
	Subscriber string
	// Filter selects the events delivered; nil delivers all. It runs in the
	// publisher, before delivery.
	Filter EventFilter
	// DeliveryMode is the guarantee asked for; in-memory channels offer
	// [AtMostOnce] only and refuse the others with [ErrUnsupported].
	DeliveryMode DeliveryMode
	// AckMode: in-memory channels accept [AckAuto] and [AckNone] and refuse
	// [AckManual] with [ErrUnsupported].
	AckMode AckMode
	// Metadata is kept with the subscription record.
	Metadata map[string]string
	// BufferSize overrides the channel's [ChannelConfig.BufferSize]. On a
	// persistent channel it is how many events are fetched ahead of the
	// receiver (their AckWait is running).
	BufferSize int

	// The options below are for persistent channels only; an in-memory
	// channel refuses them with [ErrUnsupported].
	//
	// On a persistent channel a subscription is a JetStream consumer.
	// AtMostOnce and AtLeastOnce with [AckAuto] acknowledge events as the
	// receiver takes them (Recv, RecvBatch): an event fetched ahead but not
	// taken when the subscriber dies is delivered again. [AckManual]
	// leaves it to the receiver ([Subscription.Ack], Nak, InProgress,
	// Term): an event not acknowledged within AckWait is delivered again,
	// up to MaxDeliver times, and then goes to DeadLetter. [AckNone] tracks
	// nothing: every event is delivered once (AtMostOnce only).
	// ExactlyOnce is AtLeastOnce whose acknowledgements wait for the
	// server's confirmation (an acknowledged event is never delivered
	// again), together with the channel's de-duplication of publishes by
	// event ID within its DuplicateWindow. It does not make processing run
	// once: an event whose processing was not acknowledged before a crash
	// is delivered again, so what a receiver writes must be idempotent (a
	// persistent channel written with the same event IDs is).

	// Durable names a consumer that outlives the subscription: closing the
	// subscription (or a restart) keeps its position and acknowledgements,
	// and a later subscription with the same name resumes after the last
	// acknowledged event. One durable name is meant for one subscription
	// at a time. Empty: a consumer of the subscription's own, deleted when
	// it closes (or by the server a minute after its process died).
	Durable string
	// Start is where a new consumer begins; default [StartNew].
	Start StartPosition
	// AckWait is how long an event may stay unacknowledged before it is
	// delivered again; 0: 30 s. With Backoff set, Backoff[0] is used.
	AckWait time.Duration
	// MaxDeliver is how often an event is delivered at most; 0: no limit.
	MaxDeliver int
	// Backoff are the waits before the 1st, 2nd, ... redelivery (the last
	// repeats): the ack waits after the 1st, 2nd, ... delivery. At most
	// MaxDeliver values when MaxDeliver is set.
	Backoff []time.Duration
	// DeadLetter names a channel (in memory or persistent) that receives
	// the events that exhausted MaxDeliver without an acknowledgement,
	// each with why in [MetaError] metadata, the channel it came from in
	// [MetaErrorChannel], its sequence number there in [MetaErrorSeq] and
	// its deliveries in [MetaErrorDeliveries]; an event keeps its ID, so a
	// persistent dead-letter channel stores it once even if a crash makes
	// it move again. A message of the channel that is not an event (it
	// does not decode) is terminated at once, and goes there as an event
	// of type [UndecodableType]. It needs MaxDeliver. Empty: events that
	// exhaust MaxDeliver are left behind, and undecodable messages are
	// logged and terminated.
	DeadLetter string
}

// SubscriptionInfo is the engine's record of a subscription.
type SubscriptionInfo struct {
	ID           string
	Channel      string
	Subscriber   string
	DeliveryMode DeliveryMode
	AckMode      AckMode
	Filter       string // a description of the filter; "" when none
	Metadata     map[string]string
	Created      time.Time
	BufferSize   int
	Received     uint64 // events the receiver took
	Acknowledged uint64 // events acknowledged (on receipt with AckAuto)
	Dropped      uint64 // events it lost to the channel's slow-subscriber policy
	// Pending is the events waiting for it: in its buffer (in memory), or
	// in the stream not yet delivered (persistent).
	Pending int
	// Persistent channels only, from the server's consumer state:
	// AckPending is the events delivered and not yet acknowledged (taken
	// by the receiver, or fetched ahead of it); Redelivered is how many of
	// those were delivered more than once (a current count, not a total).
	AckPending, Redelivered int
	// DeadLettered counts the events this subscription moved to its
	// dead-letter channel after they exhausted MaxDeliver; Undecodable the
	// messages that were not events (they did not decode), terminated and
	// sent to the dead-letter channel when there is one. Both since the
	// subscription started.
	DeadLettered, Undecodable uint64
	// Lag is the events it has not finished, its backlog: Pending in
	// memory; Pending plus AckPending on a persistent channel, so an
	// event leaves the lag only once it is acknowledged (with [AckNone],
	// events fetched ahead of the receiver count as finished).
	Lag uint64
	// Durable is the consumer's durable name ("" when it has none).
	Durable string
	// Err is why the persistent state could not be read ("" when it was).
	Err string
}

// SubscriberInfo is the engine's record of a subscriber: who it is and which
// subscriptions it holds. A subscriber exists while it holds one.
type SubscriberInfo struct {
	Name          string
	Subscriptions []string // IDs, oldest first
}

// Subscription receives a channel's events. Recv, RecvBatch and TryRecv may
// be called from several goroutines; each event goes to exactly one of them.
type Subscription struct {
	id         string
	opts       SubscribeOptions // Subscriber defaulted, Metadata copied
	created    time.Time
	ch         *channel
	q          *queue
	d          *durableSub // on a persistent channel
	filterDesc string

	received atomic.Uint64
	acked    atomic.Uint64
	dropped  atomic.Uint64

	closeOnce sync.Once
}

// ID identifies the subscription within the engine.
func (s *Subscription) ID() string { return s.id }

// Channel is the name of the channel subscribed to.
func (s *Subscription) Channel() string { return s.ch.name }

// Recv returns the next event, waiting for one if needed. It returns ctx's
// error when ctx ends first, [ErrSubscriptionClosed] after Close,
// [ErrChannelDeleted] when the channel is deleted and [ErrSlowSubscriber]
// when the channel disconnected it (both after the events it already held).
func (s *Subscription) Recv(ctx context.Context) (Event, error) {
	var one [1]Event
	if _, err := s.recv(ctx, one[:]); err != nil {
		return Event{}, err
	}
	return one[0], nil
}

// RecvBatch waits for at least one event and returns up to max of them, in
// publish order, reusing dst's storage. Errors are those of Recv.
func (s *Subscription) RecvBatch(ctx context.Context, dst EventBatch, max int) (EventBatch, error) {
	if max <= 0 {
		return dst, fmt.Errorf("subscription[%s]: batch size %d must be positive", s.id, max)
	}
	dst.Reset()
	if cap(dst.Events) < max {
		dst.Events = make([]Event, max)
	}
	n, err := s.recv(ctx, dst.Events[:max])
	dst.Events = dst.Events[:n]
	return dst, err
}

// TryRecv returns the next event if one is waiting. ok is false when none
// is; err is set when the subscription has ended.
func (s *Subscription) TryRecv() (ev Event, ok bool, err error) {
	var one [1]Event
	if s.d != nil {
		//lint:ignore SA1012 a nil ctx is how durableSub.recv is told not to wait
		n, err := s.d.recv(nil, one[:])
		if err != nil || n == 0 {
			return Event{}, false, err
		}
		return one[0], true, nil
	}
	n, err := s.q.pop(one[:])
	if err != nil {
		return Event{}, false, s.wrap(err)
	}
	if n == 0 {
		return Event{}, false, nil
	}
	s.taken(1)
	return one[0], true, nil
}

func (s *Subscription) recv(ctx context.Context, dst []Event) (int, error) {
	if s.d != nil {
		return s.d.recv(ctx, dst)
	}
	for {
		n, err := s.q.pop(dst)
		if err != nil {
			return 0, s.wrap(err)
		}
		if n > 0 {
			s.taken(n)
			return n, nil
		}
		if err := s.q.wait(ctx); err != nil {
			return 0, err
		}
	}
}

func (s *Subscription) taken(n int) {
	s.received.Add(uint64(n))
	// A pipeline's source on a persistent channel counts its
	// acknowledgements when the pipeline is done with the events.
	if s.opts.AckMode == AckAuto && (s.d == nil || !s.d.source) {
		s.acked.Add(uint64(n))
	}
	s.ch.delivered.Add(uint64(n))
	s.ch.eng.delivered.Add(uint64(n))
}

func (s *Subscription) wrap(err error) error {
	return fmt.Errorf("channel[%s] subscription[%s]: %w", s.ch.name, s.id, err)
}

// Close ends the subscription: the channel stops delivering to it at once,
// the events it held are discarded, and receivers get
// [ErrSubscriptionClosed]. The engine forgets its record. Closing twice is a
// no-op.
func (s *Subscription) Close() error {
	s.end(ErrSubscriptionClosed, false)
	return nil
}

// end closes the queue and detaches the subscription from its channel and
// the engine, once.
func (s *Subscription) end(reason error, drain bool) {
	s.closeOnce.Do(func() {
		s.q.close(reason, drain)
		if s.d != nil {
			s.d.stop()
		}
		s.ch.detach(s)
	})
}

// Info returns the subscription's record, counters included.
func (s *Subscription) Info() SubscriptionInfo {
	in := SubscriptionInfo{
		ID:           s.id,
		Channel:      s.ch.name,
		Subscriber:   s.opts.Subscriber,
		DeliveryMode: s.opts.DeliveryMode,
		AckMode:      s.opts.AckMode,
		Filter:       s.filterDesc,
		Metadata:     maps.Clone(s.opts.Metadata),
		Created:      s.created,
		BufferSize:   len(s.q.buf),
		Received:     s.received.Load(),
		Acknowledged: s.acked.Load(),
		Dropped:      s.dropped.Load(),
		Pending:      s.q.len(),
	}
	in.Lag = uint64(in.Pending)
	if s.d != nil {
		s.d.info(&in)
	}
	return in
}
