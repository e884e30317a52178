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
	// BufferSize overrides the channel's [ChannelConfig.BufferSize].
	BufferSize int
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
	Pending      int    // events waiting in its buffer (its lag)
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
	if s.opts.AckMode == AckAuto {
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
		s.ch.detach(s)
	})
}

// Info returns the subscription's record, counters included.
func (s *Subscription) Info() SubscriptionInfo {
	return SubscriptionInfo{
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
}
