package sdk

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Retryable marks err as worth trying again: the connector answers the
// call with UNAVAILABLE, and the host retries it with backoff instead of
// stopping the pipeline. Use it for what time may fix (a broker that is
// down, a lock that is held), not for what it will not (a bad
// configuration, a record that cannot be decoded). Retryable(nil) is nil.
// The returned error wraps err, for errors.Is and errors.As.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryableError{err: err}
}

type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// statusOf is the gRPC status error of an error of the connector's code:
// UNAVAILABLE for a [Retryable] error, CANCELED or DEADLINE_EXCEEDED for
// the context's errors, and otherwise code (INVALID_ARGUMENT for
// Configure, UNKNOWN for the other calls), with the error's message.
func statusOf(err error, code codes.Code) error {
	var r *retryableError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &r):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}
