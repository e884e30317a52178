package engine

import (
	"fmt"
	"time"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

// Defaults applied to zero fields of a [ChannelConfig].
const (
	DefaultBufferSize      = 1024
	DefaultRetentionEvents = 1000
	DefaultBlockTimeout    = 5 * time.Second
)

// ChannelConfig configures a channel. The zero value is a valid
// configuration: every zero field takes its documented default.
type ChannelConfig struct {
	// BufferSize is how many events each subscription may hold that its
	// receiver has not taken yet. Default [DefaultBufferSize]; a
	// subscription may ask for its own in [SubscribeOptions].
	BufferSize int
	// MaxSubscribers limits the channel's subscriptions. Zero means the
	// engine's [Config.MaxSubscribersPerChannel]; negative means no limit.
	MaxSubscribers int
	// Retention bounds the history the channel keeps for [Engine.History].
	Retention Retention
	// SlowSubscriber says what happens when a subscription's buffer is full.
	// Default [Block].
	SlowSubscriber SlowSubscriberPolicy
	// BlockTimeout bounds how long a publisher waits for room for an event
	// under the [Block] policy before it gets [ErrPublishTimeout]. The wait
	// starts again once events get through, so a large batch that a
	// receiver keeps reading may take longer as a whole. Default
	// [DefaultBlockTimeout].
	BlockTimeout time.Duration

	// Persistent keeps the channel in the engine's durable store (a
	// JetStream stream, see [Open]) rather than in memory: its events
	// survive restarts within its Retention, subscriptions may be durable
	// and acknowledged ([SubscribeOptions]), and publishers never wait for
	// subscribers (SlowSubscriber must be [Block], the default, and
	// BlockTimeout is unused). The settings below are for persistent
	// channels only; an in-memory channel refuses them with
	// [ErrUnsupported].
	Persistent bool
	// Replicas is how many servers of a cluster store each event (1 to 5);
	// 0: the store's [DurableConfig.Replicas].
	Replicas int
	// Discard is what a persistent channel at its Retention's MaxEvents or
	// MaxBytes does with a new event; default [DiscardOld]. MaxAge always
	// removes old events.
	Discard DiscardPolicy
	// DuplicateWindow is how long a persistent channel remembers event IDs:
	// an event published again with the same ID within it (a producer's
	// retry, a pipeline's replay) is not stored twice. 0: 2 minutes, or
	// Retention.MaxAge when that is shorter.
	DuplicateWindow time.Duration
}

// Retention bounds a channel's history (a persistent channel's stream).
// The bounds combine: an event leaves the history when any says so.
type Retention struct {
	// MaxEvents is how many of the newest events are kept. Zero means
	// [DefaultRetentionEvents] in memory and no limit for a persistent
	// channel; negative keeps no history at all (in memory only).
	MaxEvents int
	// MaxAge drops events published longer ago than this (measured from when
	// the channel accepted them, not from their own timestamp, which a
	// producer sets). Zero means no age limit.
	MaxAge time.Duration
	// MaxBytes bounds the bytes a persistent channel keeps (encoded events
	// plus about 40 bytes each); zero: no limit but the store's.
	MaxBytes int64
}

// withDefaults returns c with defaults in its zero fields, or an error for a
// value that makes no sense.
func (c ChannelConfig) withDefaults(engineMaxSubs int) (ChannelConfig, error) {
	if c.BufferSize < 0 {
		return c, fmt.Errorf("buffer size %d is negative", c.BufferSize)
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	if c.MaxSubscribers == 0 {
		c.MaxSubscribers = engineMaxSubs
	}
	if c.Persistent {
		if err := c.checkPersistent(); err != nil {
			return c, err
		}
	} else if what := durableOnlyChannel(c); what != "" {
		return c, fmt.Errorf("%w: %s need(s) a persistent channel", ErrUnsupported, what)
	}
	if c.Retention.MaxEvents == 0 && !c.Persistent {
		c.Retention.MaxEvents = DefaultRetentionEvents
	}
	if c.Retention.MaxAge < 0 {
		return c, fmt.Errorf("retention max age %v is negative", c.Retention.MaxAge)
	}
	if c.SlowSubscriber > Disconnect {
		return c, fmt.Errorf("unknown slow-subscriber policy %d", c.SlowSubscriber)
	}
	if c.BlockTimeout < 0 {
		return c, fmt.Errorf("block timeout %v is negative", c.BlockTimeout)
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = DefaultBlockTimeout
	}
	return c, nil
}

func (c ChannelConfig) checkPersistent() error {
	switch {
	case c.SlowSubscriber != Block:
		return fmt.Errorf("%w: slow-subscriber policy %s on a persistent channel (publishers never wait for its subscribers; see Discard)", ErrUnsupported, c.SlowSubscriber)
	case c.Retention.MaxEvents < 0:
		return fmt.Errorf("retention max events %d is negative (a persistent channel keeps its events)", c.Retention.MaxEvents)
	case c.Retention.MaxBytes < 0:
		return fmt.Errorf("retention max bytes %d is negative", c.Retention.MaxBytes)
	case c.Replicas < 0 || c.Replicas > 5:
		return fmt.Errorf("%d replicas (1 to 5)", c.Replicas)
	case c.Discard > DiscardNew:
		return fmt.Errorf("unknown discard policy %d", c.Discard)
	case c.DuplicateWindow < 0:
		return fmt.Errorf("duplicate window %v is negative", c.DuplicateWindow)
	}
	return nil
}

func (c ChannelConfig) streamOptions() jetstream.StreamOptions {
	o := jetstream.StreamOptions{
		MaxMsgs:         int64(c.Retention.MaxEvents),
		MaxAge:          c.Retention.MaxAge,
		MaxBytes:        c.Retention.MaxBytes,
		Replicas:        c.Replicas,
		DuplicateWindow: c.DuplicateWindow,
	}
	if c.Discard == DiscardNew {
		o.Discard = jetstream.DiscardNew
	}
	return o
}

// SlowSubscriberPolicy says what a channel does when a subscription's buffer
// is full. Whatever the policy, a loss is counted, never silent.
type SlowSubscriberPolicy uint8

const (
	// Block makes the publisher wait for room, up to the channel's
	// BlockTimeout, then fail with [ErrPublishTimeout]. Every event is
	// delivered to all matching subscriptions or to none: an event that
	// timed out reached nobody and is not in the history. This is the
	// default: nothing is lost, and backpressure reaches the producer.
	Block SlowSubscriberPolicy = iota
	// DropOldest makes room by discarding the subscription's oldest
	// undelivered events, counted in its and the channel's Dropped. The
	// publisher never waits.
	DropOldest
	// Disconnect ends the subscription that has no room: it receives what it
	// was given before, then [ErrSlowSubscriber]. The events it missed are
	// counted as dropped. The publisher never waits.
	Disconnect
)

var policyNames = [...]string{Block: "block", DropOldest: "drop-oldest", Disconnect: "disconnect"}

// String returns "block", "drop-oldest" or "disconnect".
func (p SlowSubscriberPolicy) String() string { return enumName(policyNames[:], int(p), "policy") }

// ParseSlowSubscriberPolicy is the inverse of [SlowSubscriberPolicy.String].
func ParseSlowSubscriberPolicy(s string) (SlowSubscriberPolicy, error) {
	v, err := parseEnum(policyNames[:], s, "slow-subscriber policy")
	return SlowSubscriberPolicy(v), err
}

// DeliveryMode is the delivery guarantee a subscription asks for.
type DeliveryMode uint8

const (
	// AtMostOnce delivers each event once or, if the subscriber is gone or
	// (under [DropOldest] or [Disconnect]) too slow, not at all. It is the
	// only mode of in-memory channels.
	AtMostOnce DeliveryMode = iota
	// AtLeastOnce redelivers events that are not acknowledged. It needs a
	// persistent channel.
	AtLeastOnce
	// ExactlyOnce adds de-duplication to AtLeastOnce. It needs a persistent
	// channel.
	ExactlyOnce
)

var deliveryNames = [...]string{AtMostOnce: "at-most-once", AtLeastOnce: "at-least-once", ExactlyOnce: "exactly-once"}

// String returns "at-most-once", "at-least-once" or "exactly-once".
func (m DeliveryMode) String() string { return enumName(deliveryNames[:], int(m), "delivery") }

// ParseDeliveryMode is the inverse of [DeliveryMode.String].
func ParseDeliveryMode(s string) (DeliveryMode, error) {
	v, err := parseEnum(deliveryNames[:], s, "delivery mode")
	return DeliveryMode(v), err
}

// AckMode says how a subscription acknowledges what it receives.
type AckMode uint8

const (
	// AckAuto acknowledges an event when the receiver takes it.
	AckAuto AckMode = iota
	// AckManual leaves acknowledgement to the receiver. It needs a persistent
	// channel, where an unacknowledged event is redelivered.
	AckManual
	// AckNone does not track acknowledgements at all.
	AckNone
)

var ackNames = [...]string{AckAuto: "auto", AckManual: "manual", AckNone: "none"}

// String returns "auto", "manual" or "none".
func (m AckMode) String() string { return enumName(ackNames[:], int(m), "ack") }

// ParseAckMode is the inverse of [AckMode.String].
func ParseAckMode(s string) (AckMode, error) {
	v, err := parseEnum(ackNames[:], s, "ack mode")
	return AckMode(v), err
}
