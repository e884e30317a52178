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

	closeOnce sync.Once
	closeErr  error
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
		return nil, err
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

// Write writes events through the connector; see [engine.Sink]. A batch
// larger than half of a message's limit goes in several writes, in order.
func (s *Sink) Write(ctx context.Context, events []engine.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(events) > 0 {
		n, size := 0, 0
		for n < len(events) {
			size += shared.SizeOf(&events[n])
			if n > 0 && size > shared.MaxMessageSize/2 {
				break
			}
			n++
		}
		req := &pb.WriteRequest{Events: shared.EventsToProto(events[:n])}
		err := s.sup.call(ctx, "write", 0, func(ctx context.Context, rpc pb.SinkClient) error {
			_, err := rpc.Write(ctx, req)
			return err
		}, nil)
		if err != nil {
			return err
		}
		events = events[n:]
	}
	return nil
}

// Restarts is how many times the connector was restarted.
func (s *Sink) Restarts() uint64 { return s.sup.restarts.Load() }

// Close flushes the connector, tears it down and ends its process. A
// connector that exited after its last Write is an error: what it had not
// made safe may be lost.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Sink) close() error {
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
