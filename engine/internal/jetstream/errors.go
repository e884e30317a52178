package jetstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrStoreFull: the server's store limit (Options.MaxStore, or the
	// account's limit on a cluster) is reached; JetStream error 10023
	// "insufficient resources". Nothing was stored; retry after space is freed.
	ErrStoreFull = errors.New("store limit reached (insufficient resources)")
	// ErrStreamFull: the stream reached MaxMsgs or MaxBytes with
	// [DiscardNew]; JetStream error 10077. Nothing was stored.
	ErrStreamFull = errors.New("stream is full and discards new messages")
	// ErrStreamNotFound: no stream holds the channel.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrConsumerNotFound: the stream has no consumer of that name.
	ErrConsumerNotFound = errors.New("consumer not found")
	// ErrEventNotFound: a start position named an event ID that the stream
	// does not (or no longer) hold.
	ErrEventNotFound = errors.New("event not found in stream")
	// ErrDamagedStore: the embedded server's store lost or damaged data on
	// start; see [StoreReport].
	ErrDamagedStore = errors.New("damaged store")
	// ErrNotConnected: the connection to the server is down or closed.
	ErrNotConnected = errors.New("not connected")
)

// JetStream API error codes this package turns into its own errors.
const (
	codeInsufficientResources = 10023
	codeStreamStoreFailed     = 10077
	codeStreamNotFound        = 10059
	codeConsumerNotFound      = 10014
	codeInsufficientStorage   = 10047
	codeDuplicateInProcess    = 10158
)

// apiError translates an error from the server into this package's
// vocabulary, keeping the original wrapped for errors.As.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode {
		case codeInsufficientResources, codeInsufficientStorage:
			return fmt.Errorf("%w: %w", ErrStoreFull, err)
		case codeStreamStoreFailed:
			return fmt.Errorf("%w: %w", ErrStreamFull, err)
		case codeStreamNotFound:
			return fmt.Errorf("%w: %w", ErrStreamNotFound, err)
		case codeConsumerNotFound:
			return fmt.Errorf("%w: %w", ErrConsumerNotFound, err)
		}
		return err
	}
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrNoStreamResponse):
		return fmt.Errorf("%w: %w", ErrStreamNotFound, err)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return fmt.Errorf("%w: %w", ErrConsumerNotFound, err)
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrConnectionReconnecting):
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	case errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}
