package plugins

import (
	"context"
	"sync"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/plugins/internal/pb"
	"github.com/aegis-streaming/aegis/plugins/internal/shared"
)

// Sink is an [engine.Sink] served by a connector plugin: a process of its
// own, started, watched and restarted by the host.
//
// Write returns once the connector has written the events. When the
// connector crashes, hangs or answers UNAVAILABLE, Sink restarts it (or
// waits) with backoff and sends the same batch again, up to
// Config.MaxRestarts failures in a row; so the connector sees a batch at
// least once, and a Write that returns nil was written. Any other error of
// the connector fails Write with its message.
type Sink struct {
	sup *supervisor[pb.SinkClient]
	mu  sync.Mutex // one Write at a time
}

// NewSink starts a sink connector, configures it and opens it. The
// connector's failures to start or to take its configuration are returned,
// not retried.
func NewSink(ctx context.Context, cfg Config) (*Sink, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Sink{}
	s.sup = &supervisor[pb.SinkClient]{cfg: &cfg, kind: shared.SinkName, open: s.open}
	if err := s.sup.start(ctx, nil); err != nil {
		return nil, s.sup.errorf("%w", err)
	}
	return s, nil
}

func (s *Sink) open(ctx context.Context, rpc pb.SinkClient, _ []byte) error {
	cfg := s.sup.cfg
	if _, err := rpc.Configure(ctx, &pb.ConfigureRequest{Name: cfg.Name, Config: cfg.Config}); err != nil {
		return err
	}
	_, err := rpc.Open(ctx, &pb.OpenSinkRequest{})
	return err
}

// Write writes events through the connector; see [engine.Sink].
func (s *Sink) Write(ctx context.Context, events []engine.Event) error {
	if len(events) == 0 {
		return nil
	}
	req := &pb.WriteRequest{Events: shared.EventsToProto(events)}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sup.call(ctx, "write", 0, func(ctx context.Context, rpc pb.SinkClient) error {
		_, err := rpc.Write(ctx, req)
		return err
	}, func() []byte { return nil })
}

// Restarts is how many times the connector was restarted.
func (s *Sink) Restarts() uint64 { return s.sup.restarts.Load() }

// Close flushes the connector, tears it down and ends its process.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sup.stop(func(ctx context.Context, rpc pb.SinkClient) error {
		if _, err := rpc.Flush(ctx, &pb.FlushRequest{}); err != nil {
			return err
		}
		_, err := rpc.Teardown(ctx, &pb.TeardownRequest{})
		return err
	})
}
