package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/aegis-streaming/aegis/engine"
)

// Error is an error of the API: its HTTP status, a stable code that
// clients may test, and a message for people. On the wire:
//
//	{"error":{"code":"channel_not_found","message":"channel \"orders\" not found"}}
//
// [Client] returns API errors as *Error.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Published is set on a publish that stopped part way: the first
	// Published events of the request were published, the others not.
	Published *int `json:"published,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d %s): %s", e.Code, e.Status, http.StatusText(e.Status), e.Message)
}

// The codes of [Error]. They are stable: a code is never renamed or
// given another meaning.
const (
	CodeBadRequest       = "bad_request"            // 400: a malformed parameter or body
	CodeInvalidJSON      = "invalid_json"           // 400: a body that is not the JSON expected
	CodeInvalidEvent     = "invalid_event"          // 400: an event the engine refuses (type, metadata, ...)
	CodeUnauthorized     = "unauthorized"           // 401: no token, or an unknown one
	CodeForbidden        = "forbidden"              // 403: the token lacks the permission
	CodeNotFound         = "not_found"              // 404: no such route
	CodeChannelNotFound  = "channel_not_found"      // 404
	CodeEventNotFound    = "event_not_found"        // 404: a resume point no longer retained
	CodeSubscriptionGone = "subscription_not_found" // 404: an ack for a stream that is not open
	CodeMethodNotAllowed = "method_not_allowed"     // 405
	CodeChannelExists    = "channel_exists"         // 409
	CodeNotPending       = "not_pending"            // 409: an ack of an event not awaiting one
	CodeTooLarge         = "too_large"              // 413: the body or the batch is too large
	CodeUnsupportedMedia = "unsupported_media_type" // 415
	CodeUnsupported      = "unsupported"            // 422: not supported on this channel (manual acks in memory, ...)
	CodeLimit            = "limit_reached"          // 429: channels, subscribers or streams at their limit
	CodeChannelFull      = "channel_full"           // 507: a persistent channel that discards new events is full
	CodeInternal         = "internal"               // 500
	CodeUnavailable      = "unavailable"            // 503: closing, not ready, or the store unreachable
	CodeTimeout          = "timeout"                // 504: the request's time ran out (a publish waiting for room); 408 while reading the body
	CodeSlowClient       = "slow_client"            // in a stream: disconnected for falling behind
	CodeChannelDeleted   = "channel_deleted"        // in a stream: the channel was deleted
)

func apiErr(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// fromEngine maps an engine error to the API's, naming the channel.
func fromEngine(channel string, err error) *Error {
	var pe *engine.PublishError
	var published *int
	if errors.As(err, &pe) {
		n := pe.Published
		published = &n
	}
	e := func(status int, code string) *Error {
		return &Error{Status: status, Code: code, Message: err.Error(), Published: published}
	}
	switch {
	case errors.Is(err, engine.ErrChannelNotFound), errors.Is(err, engine.ErrChannelDeleted) && published == nil:
		return &Error{Status: http.StatusNotFound, Code: CodeChannelNotFound, Message: fmt.Sprintf("channel %q not found", channel)}
	case errors.Is(err, engine.ErrChannelDeleted):
		return e(http.StatusGone, CodeChannelDeleted)
	case errors.Is(err, engine.ErrChannelExists):
		return e(http.StatusConflict, CodeChannelExists)
	case errors.Is(err, engine.ErrHistoryTooLarge):
		return e(http.StatusBadRequest, CodeBadRequest)
	case errors.Is(err, engine.ErrEventNotFound):
		return e(http.StatusNotFound, CodeEventNotFound)
	case errors.Is(err, engine.ErrNotPending):
		return e(http.StatusConflict, CodeNotPending)
	case errors.Is(err, engine.ErrTooManyChannels), errors.Is(err, engine.ErrTooManySubscribers):
		return e(http.StatusTooManyRequests, CodeLimit)
	case errors.Is(err, engine.ErrUnsupported):
		return e(http.StatusUnprocessableEntity, CodeUnsupported)
	case errors.Is(err, engine.ErrChannelFull), errors.Is(err, engine.ErrStoreFull):
		return e(http.StatusInsufficientStorage, CodeChannelFull)
	case errors.Is(err, engine.ErrPublishTimeout), errors.Is(err, context.DeadlineExceeded):
		return e(http.StatusGatewayTimeout, CodeTimeout)
	case errors.Is(err, engine.ErrEngineClosed), errors.Is(err, engine.ErrSubscriptionClosed):
		return e(http.StatusServiceUnavailable, CodeUnavailable)
	case errors.Is(err, engine.ErrSlowSubscriber):
		return e(http.StatusServiceUnavailable, CodeSlowClient)
	}
	return e(http.StatusInternalServerError, CodeInternal)
}

// writeError answers with err as JSON. Internal errors are logged, and
// their message is not sent: it may name things a client should not see.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err *Error) {
	if err.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="aegis-host"`)
	}
	if err.Status >= 500 {
		s.log.Warn("api request failed", "method", r.Method, "path", r.URL.Path, "status", err.Status, "code", err.Code, "error", err.Message)
		if err.Code == CodeInternal {
			err = &Error{Status: err.Status, Code: err.Code, Message: "internal error; the host's log has the details"}
		}
	}
	writeJSON(w, err.Status, struct {
		Error *Error `json:"error"`
	}{err})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"encoding the answer failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
