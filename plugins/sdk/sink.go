package sdk

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/plugins/internal/pb"
	"github.com/aegis-streaming/aegis/plugins/internal/shared"
)

// Sink is a connector that writes events outside the host: a database, a
// queue, a file, an API.
//
// The host calls Configure, then Open, then Write as batches come, Flush
// before it stops, then Close. Calls come one at a time, never concurrently.
//
// The host sends a batch again when its Write did not return (the sink
// crashed, hung past the host's timeout, or answered a [Retryable]
// error), so a sink sees a batch at least once; the host may also split a
// large batch into several Writes: a sink that must not
// write twice dedupes, by the events' IDs say.
//
// An error that time may fix is marked with [Retryable]; the host retries
// the call. Any other error stops the pipeline, and a panic ends the
// process (see [Serve]).
type Sink interface {
	// Configure receives the connector's name in the manifest and the
	// manifest's `with` block as a JSON object ("{}" when none). An error
	// means a configuration it cannot use: the host reports it and does
	// not retry (INVALID_ARGUMENT), unless it is [Retryable]. Configure
	// should check, not connect: Open is where I/O starts.
	Configure(ctx context.Context, name string, config []byte) error

	// Open makes the sink ready to write.
	Open(ctx context.Context) error

	// Write writes events, in order, and returns once they are safe in
	// the destination: the host then acknowledges them to their source,
	// which does not deliver them again, so a sink that buffers must not
	// return before what it buffered would survive a crash of its
	// process. events has at least one event, each valid
	// ([engine.Event.Validate]) with an ID and a time; the sink must not
	// keep the slice after Write returns, though it may keep the events.
	Write(ctx context.Context, events []engine.Event) error

	// Flush makes everything written so far as durable as the
	// destination makes anything (an fsync, say), before the host stops.
	Flush(ctx context.Context) error

	// Close makes durable what the sink still holds, as Flush does, and
	// releases what Open took. The process ends soon after.
	Close(ctx context.Context) error
}

// sinkServer serves a Sink as the gRPC service Sink: one call at a time.
type sinkServer struct {
	pb.UnimplementedSinkServer
	sink Sink
	g    *guard
	one  lock
}

func newSinkServer(sink Sink, g *guard) *sinkServer {
	return &sinkServer{sink: sink, g: g, one: newLock()}
}

func (s *sinkServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (_ *pb.ConfigureResponse, err error) {
	if err := s.one.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.one.release()
	defer s.g.recover("Configure", &err)
	if err := s.sink.Configure(ctx, req.Name, configOf(req.Config)); err != nil {
		return nil, statusOf(err, codes.InvalidArgument)
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *sinkServer) Open(ctx context.Context, _ *pb.OpenSinkRequest) (_ *pb.OpenSinkResponse, err error) {
	if err := s.one.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.one.release()
	defer s.g.recover("Open", &err)
	if err := s.sink.Open(ctx); err != nil {
		return nil, statusOf(err, codes.Unknown)
	}
	return &pb.OpenSinkResponse{}, nil
}

func (s *sinkServer) Write(ctx context.Context, req *pb.WriteRequest) (_ *pb.WriteResponse, err error) {
	if len(req.Events) == 0 {
		return &pb.WriteResponse{}, nil
	}
	events, err := shared.EventsFromProto(make([]engine.Event, 0, len(req.Events)), req.Events)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "write: %v", err)
	}
	if err := s.one.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.one.release()
	defer s.g.recover("Write", &err)
	if err := s.sink.Write(ctx, events); err != nil {
		return nil, statusOf(err, codes.Unknown)
	}
	return &pb.WriteResponse{}, nil
}

func (s *sinkServer) Flush(ctx context.Context, _ *pb.FlushRequest) (_ *pb.FlushResponse, err error) {
	if err := s.one.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.one.release()
	defer s.g.recover("Flush", &err)
	if err := s.sink.Flush(ctx); err != nil {
		return nil, statusOf(err, codes.Unknown)
	}
	return &pb.FlushResponse{}, nil
}

func (s *sinkServer) Teardown(ctx context.Context, _ *pb.TeardownRequest) (_ *pb.TeardownResponse, err error) {
	if err := s.one.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.one.release()
	defer s.g.recover("Close", &err)
	if err := s.sink.Close(ctx); err != nil {
		return nil, statusOf(err, codes.Unknown)
	}
	return &pb.TeardownResponse{}, nil
}
