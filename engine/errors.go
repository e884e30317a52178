package engine

import (
	"errors"
	"fmt"
)

// Errors returned by the engine. They are wrapped with the name of the
// channel (and subscription) they concern; test for them with errors.Is.
var (
	// ErrChannelNotFound: no channel has that name.
	ErrChannelNotFound = errors.New("channel not found")
	// ErrChannelExists: CreateChannel was given a name in use.
	ErrChannelExists = errors.New("channel already exists")
	// ErrChannelDeleted ends the receivers of a deleted channel and the
	// publishers that were waiting on it.
	ErrChannelDeleted = errors.New("channel deleted")
	// ErrTooManyChannels: the engine's channel limit is reached.
	ErrTooManyChannels = errors.New("channel limit reached")
	// ErrTooManySubscribers: a channel's or the engine's subscriber limit is
	// reached.
	ErrTooManySubscribers = errors.New("subscriber limit reached")
	// ErrSubscriptionClosed: the subscription was closed by its owner.
	ErrSubscriptionClosed = errors.New("subscription closed")
	// ErrSlowSubscriber ends a subscription that fell behind on a channel
	// whose policy is [Disconnect], after the events it had already been
	// given.
	ErrSlowSubscriber = errors.New("subscriber disconnected: it fell behind")
	// ErrPublishTimeout: on a channel whose policy is [Block], a subscriber
	// had no room for the event within the channel's block timeout.
	ErrPublishTimeout = errors.New("publish timed out waiting for a slow subscriber")
	// ErrEngineClosed: the engine was closed.
	ErrEngineClosed = errors.New("engine closed")
	// ErrUnsupported: the request needs a feature this kind of channel does
	// not have (for example at-least-once delivery on an in-memory channel).
	ErrUnsupported = errors.New("not supported")
	// ErrEventNotFound: a history query named an event that the channel no
	// longer retains (or never had).
	ErrEventNotFound = errors.New("event not found in history")
	// ErrChannelFull: a persistent channel at its retention limit whose
	// discard policy is [DiscardNew] refused the event; nothing was stored.
	ErrChannelFull = errors.New("channel is full and discards new events")
	// ErrStoreFull: the durable store reached its limit
	// ([DurableConfig.MaxStore]); nothing was stored.
	ErrStoreFull = errors.New("durable store is full")
	// ErrNotPending: a manual acknowledgement named an event that the
	// subscription did not deliver or that is already settled (acked,
	// refused or terminated).
	ErrNotPending = errors.New("event not awaiting an acknowledgement")
)

// PublishError reports a publish that stopped part way: the first Published
// events of the call were delivered (and are in the channel's history), the
// rest were not, so a retry should resend only the rest.
type PublishError struct {
	Channel   string
	Published int   // events of the call that were delivered
	Err       error // why it stopped: ErrPublishTimeout, ErrChannelDeleted, a context error, ...
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("channel[%s] publish stopped after %d event(s): %v", e.Channel, e.Published, e.Err)
}

func (e *PublishError) Unwrap() error { return e.Err }

func channelErr(name string, err error) error { return fmt.Errorf("channel[%s]: %w", name, err) }
