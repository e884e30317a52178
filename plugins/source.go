package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/plugins/internal/pb"
	"github.com/aegis-streaming/aegis/plugins/internal/shared"
)

// pollWait is how long a Read without a deadline asks the connector to
// wait for events per call.
const pollWait = time.Second

// Source is an [engine.Source] served by a connector plugin: a process of
// its own, started, watched and restarted by the host. It is also an
// [engine.Acker]: the positions of the events the pipeline is done with are
// stored in the position file and handed to the connector, so that a new
// run starts after them.
//
// When the connector crashes, hangs or returns events that are not valid,
// Source kills it, starts it again with backoff and opens it after the last
// events it received: the events in the pipeline go on, none is read
// twice and none is skipped. Up to Config.MaxRestarts failures in a row are
// mended so; the next fails Read.
type Source struct {
	sup *supervisor[pb.SourceClient]
	pos []byte // where the connector opened first

	// Read's, from one goroutine.
	held  fetched // what Read has yet to return of a call's events
	count uint64  // events Read returned

	// The goroutine that calls the connector's Read.
	fetchOnce sync.Once
	fetches   chan fetched
	fetched   chan struct{} // closed when it ends
	fetchCtx  context.Context
	stopFetch context.CancelFunc

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	marks   []mark // positions of events received and not yet acknowledged
	acked   []byte // the last position acknowledged, to commit
	ackErr  error  // a failure to store a position
	commit  chan struct{}
	done    chan struct{}
	store   *positionFile
	stopped bool
}

// mark is the position after the first count events.
type mark struct {
	count uint64
	pos   []byte
}

// NewSource starts a source connector, configures it and opens it after
// the position stored in cfg.PositionFile, if any. The connector's failures
// to start or to take its configuration are returned, not retried.
func NewSource(ctx context.Context, cfg Config) (*Source, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Source{commit: make(chan struct{}, 1), done: make(chan struct{}), fetches: make(chan fetched), fetched: make(chan struct{})}
	s.fetchCtx, s.stopFetch = context.WithCancel(context.Background())
	if cfg.PositionFile != "" {
		s.store = &positionFile{path: cfg.PositionFile}
		pos, err := s.store.load()
		if err == nil {
			err = s.store.check()
		}
		if err != nil {
			return nil, fmt.Errorf("connector[%s]: %w", cfg.Name, err)
		}
		s.pos = pos
	}
	s.sup = &supervisor[pb.SourceClient]{cfg: &cfg, kind: shared.SourceName, open: s.open}
	if err := s.sup.start(ctx, s.pos); err != nil {
		return nil, err
	}
	go s.committer()
	return s, nil
}

// open configures a connector and opens it at pos.
func (s *Source) open(ctx context.Context, rpc pb.SourceClient, pos []byte) error {
	cfg := s.sup.cfg
	if _, err := rpc.Configure(ctx, &pb.ConfigureRequest{Name: cfg.Name, Config: cfg.Config}); err != nil {
		return err
	}
	_, err := rpc.Open(ctx, &pb.OpenSourceRequest{Position: pos})
	return err
}

// fetched is what one call to the connector's Read brought.
type fetched struct {
	events []engine.Event
	pos    []byte // where the source stands after them; nil: no position
	end    bool
	err    error // the source failed for good
}

// Read appends up to limit events; see [engine.Source]. A goroutine keeps
// one call to the connector ahead of the pipeline, so that the connector
// makes and sends the next events while the pipeline works on these.
func (s *Source) Read(ctx context.Context, dst []engine.Event, limit int) ([]engine.Event, error) {
	s.fetchOnce.Do(func() { go s.fetch(limit) })
	for len(s.held.events) == 0 {
		if s.held.err != nil {
			return dst, s.held.err
		}
		if s.held.end {
			return dst, io.EOF
		}
		select {
		case f, ok := <-s.fetches:
			if !ok {
				s.held.err = s.sup.errorf("closed")
				continue
			}
			s.held = f
		case <-ctx.Done():
			return dst, ctx.Err()
		}
	}
	n := min(limit, len(s.held.events))
	dst = append(dst, s.held.events[:n]...)
	clear(s.held.events[:n])
	s.held.events = s.held.events[n:]
	s.count += uint64(n)
	if len(s.held.events) == 0 {
		// The whole call's events are out: its position may be
		// acknowledged once they are.
		if s.held.pos != nil {
			s.mu.Lock()
			s.marks = append(s.marks, mark{s.count, s.held.pos})
			s.mu.Unlock()
		}
		if s.held.end {
			return dst, io.EOF
		}
	}
	return dst, nil
}

// fetch calls the connector's Read until the source ends, fails, or is
// closed, and hands what each call brings to Read.
func (s *Source) fetch(limit int) {
	defer close(s.fetched)
	defer close(s.fetches)
	pos := s.pos
	for {
		var resp *pb.ReadResponse
		var events []engine.Event
		err := s.sup.call(s.fetchCtx, "read", pollWait, func(ctx context.Context, rpc pb.SourceClient) error {
			var err error
			resp, err = rpc.Read(ctx, &pb.ReadRequest{MaxEvents: int32(min(limit, math.MaxInt32)), WaitMillis: pollWait.Milliseconds()})
			if err != nil {
				return err
			}
			if len(resp.Events) > limit {
				return &errInvalid{fmt.Errorf("%d events, asked for at most %d", len(resp.Events), limit)}
			}
			if events, err = shared.EventsFromProto(make([]engine.Event, 0, len(resp.Events)), resp.Events); err != nil {
				return &errInvalid{err}
			}
			return nil
		}, func() []byte { return pos })
		f := fetched{err: err}
		if err == nil {
			f.events, f.end = events, resp.End
			if len(events) > 0 {
				// Events without a position: a restart opens where the
				// connector starts by default (the protocol's promise).
				pos, f.pos = resp.Position, resp.Position
				if len(pos) == 0 {
					pos, f.pos = nil, nil
				}
			}
			if len(events) == 0 && !f.end {
				continue
			}
		}
		if s.fetchCtx.Err() != nil {
			return
		}
		select {
		case s.fetches <- f:
		case <-s.fetchCtx.Done():
			return
		}
		if f.err != nil || f.end {
			return
		}
	}
}

// Ack takes the pipeline's acknowledgement of the first n events; see
// [engine.Acker]. The position is stored and handed to the connector in
// the background, and at the latest by Close; a failure to store it fails
// a later Ack.
func (s *Source) Ack(_ context.Context, n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := 0
	for i < len(s.marks) && s.marks[i].count <= n {
		i++
	}
	if i > 0 {
		s.acked = s.marks[i-1].pos
		s.marks = s.marks[i:]
	}
	if i > 0 && !s.stopped {
		select {
		case s.commit <- struct{}{}:
		default:
		}
	}
	return s.ackErr
}

// committer stores acknowledged positions and hands them to the connector,
// the latest at a time, until Close.
func (s *Source) committer() {
	defer close(s.done)
	var last []byte
	for range s.commit {
		s.mu.Lock()
		pos, stopped := s.acked, s.stopped
		s.mu.Unlock()
		if pos != nil && string(pos) != string(last) {
			if err := s.commitPosition(pos); err != nil {
				s.mu.Lock()
				s.ackErr = err
				s.mu.Unlock()
			} else {
				last = pos
			}
		}
		if stopped {
			return
		}
	}
}

func (s *Source) commitPosition(pos []byte) error {
	if s.store != nil {
		if err := s.store.save(pos); err != nil {
			return s.sup.errorf("%w", err)
		}
	}
	// The connector's own commit is best effort: the position is stored,
	// and a connector that restarts is told where to start.
	p, err := s.sup.current()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.sup.cfg.Timeout)
	defer cancel()
	if _, err := p.rpc.Ack(ctx, &pb.AckRequest{Position: pos}); err != nil {
		s.sup.cfg.Logger.Warn("ack", "error", err)
	}
	return nil
}

// Restarts is how many times the connector was restarted.
func (s *Source) Restarts() uint64 { return s.sup.restarts.Load() }

// Close stores and hands over the last acknowledged position, tears the
// connector down and ends its process.
func (s *Source) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Source) close() error {
	s.mu.Lock()
	s.stopped = true
	s.stopFetch()
	select {
	case s.commit <- struct{}{}:
	default:
	}
	close(s.commit) // the committer commits what is acknowledged, then ends
	s.mu.Unlock()
	<-s.done
	s.fetchOnce.Do(func() { // never started
		close(s.fetches)
		close(s.fetched)
	})
	<-s.fetched
	err := s.sup.stop(func(ctx context.Context, rpc pb.SourceClient) error {
		_, err := rpc.Teardown(ctx, &pb.TeardownRequest{})
		return err
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.ackErr, err)
}
