package sdk

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/plugins/internal/pb"
	"github.com/aegis-streaming/aegis/plugins/internal/shared"
)

// Source is a connector that reads events from outside the host: a queue,
// a log, a file, an API.
//
// The host calls Configure, then Open, then Read over and over (and Ack
// as the pipeline is done with events), then Close. Configure, Open and
// Close are never concurrent with another call; Read calls come one at a
// time, and so do Ack calls, but an Ack may run while a Read does.
//
// A source is one process: when the host restarts it (after a crash, a
// hang past the host's timeout, or events that are not valid), a new
// process is configured and opened at the last position the host
// received, so whatever the source did not return before is read again.
//
// An error that time may fix is marked with [Retryable]; the host retries
// the call. Any other error stops the pipeline, and a panic ends the
// process (see [Serve]).
type Source interface {
	// Configure receives the connector's name in the manifest and the
	// manifest's `with` block as a JSON object ("{}" when none). An error
	// means a configuration it cannot use: the host reports it and does
	// not retry (INVALID_ARGUMENT), unless it is [Retryable]. Configure
	// should check, not connect: Open is where I/O starts.
	Configure(ctx context.Context, name string, config []byte) error

	// Open starts reading after position, a position that Read returned
	// (nil: where the source starts by default, its first event or its
	// newest, as the source documents).
	Open(ctx context.Context, position []byte) error

	// Read returns the next events (at most max, which is at least 1),
	// in order, blocking until it has at least one or ctx is done; then
	// it returns no events and nil (returning ctx's error instead is taken
	// as the same). Once it has an event it should return what it has
	// rather than wait for more.
	//
	// position is where the source stands after the last event returned:
	// opening at it reads the next one. The host keeps it, hands it back
	// to Ack and to Open after a restart, and stores it across its own
	// restarts; it is opaque to the host. nil with events: the source has
	// no positions, and a restart opens at nil.
	//
	// io.EOF (with or without events) says the source has ended: the host
	// reads no more. Any other error discards the events returned with it.
	Read(ctx context.Context, max int) (events []engine.Event, position []byte, err error)

	// Ack says that the pipeline is done with every event up to and
	// including position (written to every output, or dropped on purpose):
	// the source may commit it upstream, so that what is acknowledged is
	// never read again. Positions come in the order Read returned them,
	// though not every one of them is acknowledged. Called concurrently
	// with Read.
	Ack(ctx context.Context, position []byte) error

	// Close releases what Open took. The process ends soon after.
	Close(ctx context.Context) error
}

// sourceServer serves a Source as the gRPC service Source.
type sourceServer struct {
	pb.UnimplementedSourceServer
	src Source
	g   *guard
	// read is held by Read, ack by Ack, and both by the other calls.
	read, ack lock
}

func newSourceServer(src Source, g *guard) *sourceServer {
	return &sourceServer{src: src, g: g, read: newLock(), ack: newLock()}
}

// both holds both locks, for the calls that run alone.
func (s *sourceServer) both(ctx context.Context) (release func(), err error) {
	if err := s.read.acquire(ctx); err != nil {
		return nil, err
	}
	if err := s.ack.acquire(ctx); err != nil {
		s.read.release()
		return nil, err
	}
	return func() { s.ack.release(); s.read.release() }, nil
}

func (s *sourceServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (_ *pb.ConfigureResponse, err error) {
	release, err := s.both(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	defer s.g.recover("Configure", &err)
	if err := s.src.Configure(ctx, req.Name, configOf(req.Config)); err != nil {
		return nil, statusOf(err, codes.InvalidArgument)
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *sourceServer) Open(ctx context.Context, req *pb.OpenSourceRequest) (_ *pb.OpenSourceResponse, err error) {
	release, err := s.both(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	defer s.g.recover("Open", &err)
	if err := s.src.Open(ctx, orNil(req.Position)); err != nil {
		return nil, statusOf(err, codes.Unknown)
	}
	return &pb.OpenSourceResponse{}, nil
}

func (s *sourceServer) Read(ctx context.Context, req *pb.ReadRequest) (_ *pb.ReadResponse, err error) {
	max := int(req.MaxEvents)
	if max < 1 {
		return nil, status.Errorf(codes.InvalidArgument, "read: max_events is %d, not at least 1", req.MaxEvents)
	}
	if err := s.read.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.read.release()
	defer s.g.recover("Read", &err)
	// The wait for a first event; 0 or less: none of its own, only the
	// call's deadline.
	wait := ctx
	if req.WaitMillis > 0 {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, time.Duration(req.WaitMillis)*time.Millisecond)
		defer cancel()
	}
	events, position, err := s.src.Read(wait, max)
	resp := &pb.ReadResponse{}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		resp.End = true
	case wait.Err() != nil && ctx.Err() == nil && errors.Is(err, wait.Err()):
		// The wait ran out: what it has, possibly nothing.
	default:
		return nil, statusOf(err, codes.Unknown)
	}
	if len(events) > max {
		return nil, status.Errorf(codes.Internal, "read: %d events for at most %d", len(events), max)
	}
	resp.Events = shared.EventsToProto(events)
	resp.Position = position
	return resp, nil
}

func (s *sourceServer) Ack(ctx context.Context, req *pb.AckRequest) (_ *pb.AckResponse, err error) {
	if err := s.ack.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.ack.release()
	defer s.g.recover("Ack", &err)
	if err := s.src.Ack(ctx, orNil(req.Position)); err != nil {
		return nil, statusOf(err, codes.Unknown)
	}
	return &pb.AckResponse{}, nil
}

func (s *sourceServer) Teardown(ctx context.Context, _ *pb.TeardownRequest) (_ *pb.TeardownResponse, err error) {
	release, err := s.both(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	defer s.g.recover("Close", &err)
	if err := s.src.Close(ctx); err != nil {
		return nil, statusOf(err, codes.Unknown)
	}
	return &pb.TeardownResponse{}, nil
}

// configOf is the configuration as Configure promises it: "{}" for none.
func configOf(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

// orNil is nil for an empty position.
func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
