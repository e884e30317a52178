package httpapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aegis-streaming/aegis/engine"
)

// TestFromEngine: every engine error a handler can meet has its status and
// code, also when wrapped, and anything else is internal.
func TestFromEngine(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{engine.ErrChannelNotFound, 404, CodeChannelNotFound},
		{engine.ErrChannelDeleted, 404, CodeChannelNotFound},
		{&engine.PublishError{Channel: "c", Published: 3, Err: engine.ErrChannelDeleted}, 410, CodeChannelDeleted},
		{engine.ErrChannelExists, 409, CodeChannelExists},
		{engine.ErrEventNotFound, 404, CodeEventNotFound},
		{engine.ErrHistoryTooLarge, 400, CodeBadRequest},
		{engine.ErrNotPending, 409, CodeNotPending},
		{engine.ErrTooManyChannels, 429, CodeLimit},
		{engine.ErrTooManySubscribers, 429, CodeLimit},
		{engine.ErrUnsupported, 422, CodeUnsupported},
		{engine.ErrChannelFull, 507, CodeChannelFull},
		{engine.ErrStoreFull, 507, CodeChannelFull},
		{&engine.PublishError{Channel: "c", Published: 1, Err: engine.ErrPublishTimeout}, 504, CodeTimeout},
		{context.DeadlineExceeded, 504, CodeTimeout},
		{engine.ErrEngineClosed, 503, CodeUnavailable},
		{engine.ErrSlowSubscriber, 503, CodeSlowClient},
		{errors.New("disk on fire"), 500, CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			for _, err := range []error{tt.err, fmt.Errorf("channel[c]: %w", tt.err)} {
				e := fromEngine("c", err)
				if e.Status != tt.status || e.Code != tt.code {
					t.Fatalf("%v: %d %s, want %d %s", err, e.Status, e.Code, tt.status, tt.code)
				}
				var pe *engine.PublishError
				if errors.As(err, &pe) && (e.Published == nil || *e.Published != pe.Published) {
					t.Fatalf("%v: published %v, want %d", err, e.Published, pe.Published)
				}
			}
		})
	}
}
