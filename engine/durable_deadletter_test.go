package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

// Dead letters and undecodable messages of a pipeline's source on a
// persistent channel, against the embedded JetStream server.

// dlEngine opens an engine on the store in dir, listening on a loopback
// port (for raw publishes), with persistent channels in and dlq.
func dlEngine(t *testing.T, dir string) *engine.Engine {
	t.Helper()
	return dlEngineLog(t, dir, nil)
}

// dlEngineLog is dlEngine with a logger.
func dlEngineLog(t *testing.T, dir string, log *slog.Logger) *engine.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	e, err := engine.Open(ctx, engine.Config{Durable: &engine.DurableConfig{Dir: dir, Listen: "127.0.0.1:0", Logger: log}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	for _, ch := range []string{"in", "dlq"} {
		psCreate(t, e, ch, engine.ChannelConfig{Persistent: true})
	}
	return e
}

func dlEvent(typ engine.EventType, i int) engine.Event {
	return engine.Event{ID: engine.NewEventID(), Type: typ, Data: engine.IntData(int64(i))}
}

func dlPublish(t *testing.T, e *engine.Engine, evs ...engine.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.PublishBatch(ctx, "in", engine.EventBatch{Events: evs}); err != nil {
		t.Fatal(err)
	}
}

// dlFailOn is a step that fails the pipeline on events of one type and passes
// the others.
type dlFailOn engine.EventType

func (f dlFailOn) Process(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
	for _, ev := range in {
		if ev.Type == engine.EventType(f) {
			return out, errors.New("cannot process " + string(f))
		}
		out = append(out, ev)
	}
	return out, nil
}

// dlSink records the events written to it.
type dlSink struct {
	mu  sync.Mutex
	got map[engine.EventID]int
}

func (s *dlSink) Write(_ context.Context, evs []engine.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got == nil {
		s.got = map[engine.EventID]int{}
	}
	for _, ev := range evs {
		s.got[ev.ID]++
	}
	return nil
}

func (s *dlSink) Close() error { return nil }

func (s *dlSink) has(evs []engine.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		if s.got[ev.ID] == 0 {
			return false
		}
	}
	return true
}

// dlRun is one run of the pipeline "p" from in through a step that fails
// on test.poison events: it returns the pipeline's error, or nil once
// until says so (it is then stopped). The source stays open until the
// test ends, or is closed first when the run failed.
func dlRun(t *testing.T, e *engine.Engine, opts engine.SubscribeOptions, sink engine.Sink, until func(engine.Source) bool) (engine.Source, error) {
	t.Helper()
	src, err := e.ChannelSourceWith("in", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	p, err := engine.NewPipeline(engine.PipelineConfig{Name: "p", Source: src, Sinks: []engine.Sink{sink}, MaxBatch: 1,
		Stages: []engine.Stage{{Name: "picky", Step: dlFailOn("test.poison")}}})
	if err != nil {
		t.Fatal(err)
	}
	ended, err := runUntil(t, p, func() bool { return until != nil && until(src) }, func() string {
		return fmt.Sprintf("the run did not end; stats %+v; info %+v", p.Stats(), dlSubInfo(t, e, opts.Subscriber))
	})
	if ended {
		src.Close()
	}
	return src, err
}

// dlRecv reads the persistent dead-letter channel from its start: n
// events, then none more within a moment.
func dlRecv(t *testing.T, e *engine.Engine, n int) []engine.Event {
	t.Helper()
	s, err := e.Subscribe("dlq", engine.SubscribeOptions{Start: engine.StartAll()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []engine.Event
	for {
		wait := 10 * time.Second
		if len(out) >= n {
			wait = 300 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		ev, err := s.Recv(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
}

func dlCaughtUp(t *testing.T, src engine.Source) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ok, err := src.(engine.CaughtUpSource).CaughtUp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func dlSubInfo(t *testing.T, e *engine.Engine, durable string) engine.SubscriptionInfo {
	t.Helper()
	subs, err := e.Subscriptions("in")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range subs {
		if in.Durable == durable {
			return in
		}
	}
	t.Fatalf("no subscription %s", durable)
	return engine.SubscriptionInfo{}
}

// TestDurableSourceDeadLetter: an event that a pipeline fails on, run
// after run, is delivered max deliver times and then lands in the
// dead-letter channel with why, while the events after it are processed,
// and the source reports having caught up only once it is moved. Without
// a dead-letter channel it is logged and left behind.
func TestDurableSourceDeadLetter(t *testing.T) {
	for _, withDLQ := range []bool{true, false} {
		name := "without dead letter"
		if withDLQ {
			name = "with dead letter"
		}
		t.Run(name, func(t *testing.T) { testDurableSourceDeadLetter(t, withDLQ) })
	}
}

// syncBuffer is a buffer for a logger, safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testDurableSourceDeadLetter(t *testing.T, withDLQ bool) {
	dir := t.TempDir()
	var logs syncBuffer
	e := dlEngineLog(t, dir, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	opts := engine.SubscribeOptions{Subscriber: "pipeline:p", Start: engine.StartAll(), AckWait: time.Second, MaxDeliver: 3, BufferSize: 4}
	if withDLQ {
		opts.DeadLetter = "dlq"
	}
	poison := dlEvent("test.poison", 0)
	var later []engine.Event
	for i := range 30 {
		later = append(later, dlEvent("test.n", i+1))
	}
	sink := &dlSink{}

	// Run 1 gets the poison event alone and fails on it; the events
	// written meanwhile go through run 2 before the poison event comes
	// back after its ack wait and fails run 2 and then run 3. (Each run is
	// a new source on the same engine: a restarted server would give the
	// poison event back at once, ahead of the others.)
	dlPublish(t, e, poison)
	for run := 1; run <= 3; run++ {
		if _, err := dlRun(t, e, opts, sink, nil); err == nil || !strings.Contains(err.Error(), "cannot process test.poison") {
			t.Fatalf("run %d: err %v, want the step's", run, err)
		}
		if run == 1 {
			dlPublish(t, e, later[:10]...)
		}
	}
	if !sink.has(later[:10]) {
		t.Fatal("the events written after the poison event were not processed by run 2")
	}

	// Run 4 never sees it: after its last ack wait the server gives up on
	// it and the source moves it, while processing what comes next.
	dlPublish(t, e, later[10:]...)
	src, err := dlRun(t, e, opts, sink, func(src engine.Source) bool {
		return sink.has(later) && dlCaughtUp(t, src)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !withDLQ {
		if dead := dlRecv(t, e, 0); len(dead) != 0 {
			t.Fatalf("dead letters without a dead-letter channel: %v", dead)
		}
		want := "event given up on; it stays in the channel (no dead-letter channel)"
		if l := logs.String(); !strings.Contains(l, want) || !strings.Contains(l, "seq=1") || !strings.Contains(l, "event="+poison.ID.String()) {
			t.Errorf("the log lacks %q for seq 1:\n%s", want, l)
		}
	} else {
		dead := dlRecv(t, e, 1)
		if len(dead) != 1 {
			t.Fatalf("%d dead letters, want 1: %v", len(dead), dead)
		}
		d := dead[0]
		if d.ID != poison.ID || d.Type != "test.poison" || !strings.Contains(d.Metadata[engine.MetaError], "max deliveries (3)") ||
			d.Metadata[engine.MetaErrorChannel] != "in" || d.Metadata[engine.MetaErrorSeq] != "1" || d.Metadata[engine.MetaErrorDeliveries] != "3" {
			t.Fatalf("dead letter %+v", d)
		}
	}
	wantDead := uint64(0)
	if withDLQ {
		wantDead = 1
	}
	if in := dlSubInfo(t, e, "pipeline:p"); in.DeadLettered != wantDead || in.AckPending != 0 || in.Pending != 0 || in.Acknowledged != in.Received {
		t.Errorf("subscription info %+v, want %d dead-lettered and nothing pending", in, wantDead)
	}
	src.Close()
	for _, ev := range later {
		if n := sink.got[ev.ID]; n == 0 {
			t.Fatalf("event %s was not processed", ev.ID)
		}
	}
}

// TestDurableSourceRedeliveredWhileHeld: an event whose processing outlasts
// its ack wait is delivered again meanwhile; the source does not hand it
// to the pipeline a second time, and the acknowledgement of the delivery
// it holds settles it.
func TestDurableSourceRedeliveredWhileHeld(t *testing.T) {
	e := dlEngine(t, t.TempDir())
	evs := []engine.Event{dlEvent("test.slow", 0), dlEvent("test.n", 1), dlEvent("test.n", 2)}
	dlPublish(t, e, evs...)
	src, err := e.ChannelSourceWith("in", engine.SubscribeOptions{Subscriber: "pipeline:slow", Start: engine.StartAll(), AckWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var calls sync.Map // event ID -> times processed
	slow := dlStep(func(in, out []engine.Event) []engine.Event {
		for _, ev := range in {
			n, _ := calls.LoadOrStore(ev.ID, new(int))
			*n.(*int)++
			if ev.Type == "test.slow" {
				time.Sleep(time.Second) // three ack waits
			}
			out = append(out, ev)
		}
		return out
	})
	sink := &dlSink{}
	p, err := engine.NewPipeline(engine.PipelineConfig{Name: "slow", Source: src, Sinks: []engine.Sink{sink}, MaxBatch: 1,
		Stages: []engine.Stage{{Name: "slow", Step: slow}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for !(sink.has(evs) && dlCaughtUp(t, src)) {
		if time.Now().After(deadline) {
			t.Fatal("the pipeline did not catch up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Redeliveries after the slow event's acknowledgement (none is due:
	// it settled the event) would come within an ack wait.
	time.Sleep(600 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		n, _ := calls.Load(ev.ID)
		if got := *n.(*int); got != 1 {
			t.Errorf("event %s (%s) processed %d times, want once", ev.ID, ev.Type, got)
		}
	}
	if in := dlSubInfo(t, e, "pipeline:slow"); in.AckPending != 0 || in.Pending != 0 {
		t.Errorf("subscription info %+v, want nothing pending", in)
	}
}

type dlStep func(in, out []engine.Event) []engine.Event

func (f dlStep) Process(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
	return f(in, out), nil
}

// publishRaw stores body in the channel's stream as it is, with the
// message ID id when not empty, as another NATS client could.
func dlPublishRaw(t *testing.T, e *engine.Engine, channel, id string, body []byte) {
	t.Helper()
	ds, ok := e.DurableStore()
	if !ok || ds.ClientURL == "" {
		t.Fatalf("no client URL: %+v", ds)
	}
	nc, err := nats.Connect(ds.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var po []natsjs.PublishOpt
	if id != "" {
		po = append(po, natsjs.WithMsgID(id))
	}
	if _, err := js.Publish(ctx, jetstream.Subject(channel), body, po...); err != nil {
		t.Fatal(err)
	}
}

// TestDurableSourceUndecodable: messages of a persistent channel that are
// not events do not stop the pipeline that reads it: each is terminated,
// goes to the dead-letter channel as an aegis.undecodable event with its
// body (or is only logged without one), and is counted; a later source
// under the same name does not get them again.
func TestDurableSourceUndecodable(t *testing.T) {
	for _, withDLQ := range []bool{true, false} {
		name := "without dead letter"
		if withDLQ {
			name = "with dead letter"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			e := dlEngine(t, dir)
			opts := engine.SubscribeOptions{Subscriber: "pipeline:p", Start: engine.StartAll(), AckWait: 500 * time.Millisecond, MaxDeliver: 3}
			if withDLQ {
				opts.DeadLetter = "dlq"
			}
			good := []engine.Event{dlEvent("test.n", 1), dlEvent("test.n", 2), dlEvent("test.n", 3)}
			junk := []byte("not an event \xff")
			badType := engine.StoredForm(engine.Event{ID: engine.NewEventID(), Source: "x"}) // decodes, but no event has an empty type
			junkID := engine.NewEventID()
			dlPublish(t, e, good[0])
			dlPublishRaw(t, e, "in", "", junk)
			dlPublish(t, e, good[1])
			dlPublishRaw(t, e, "in", junkID.String(), badType)
			dlPublish(t, e, good[2])

			sink := &dlSink{}
			src, err := dlRun(t, e, opts, sink, func(src engine.Source) bool { return sink.has(good) && dlCaughtUp(t, src) })
			if err != nil {
				t.Fatal(err)
			}
			if in := dlSubInfo(t, e, "pipeline:p"); in.Undecodable != 2 || in.DeadLettered != 0 {
				t.Errorf("subscription info %+v, want 2 undecodable", in)
			}
			src.Close()

			want := 0
			if withDLQ {
				want = 2
			}
			dead := dlRecv(t, e, want)
			if !withDLQ {
				if len(dead) != 0 {
					t.Fatalf("dead letters without a dead-letter channel: %v", dead)
				}
			} else {
				if len(dead) != 2 {
					t.Fatalf("%d dead letters, want 2: %v", len(dead), dead)
				}
				for i, want := range []struct {
					body []byte
					seq  string
				}{{junk, "2"}, {badType, "4"}} {
					d := dead[i]
					b, _ := d.Data.AsBytes()
					if d.Type != engine.UndecodableType || d.Source != "in" || !bytes.Equal(b, want.body) || d.ID.IsZero() || d.Time == 0 ||
						!strings.HasPrefix(d.Metadata[engine.MetaError], "undecodable event: ") || d.Metadata[engine.MetaErrorChannel] != "in" ||
						d.Metadata[engine.MetaErrorSeq] != want.seq || d.Metadata[engine.MetaErrorDeliveries] != "1" {
						t.Errorf("dead letter %d: %+v", i, d)
					}
				}
				if dead[1].ID != junkID {
					t.Errorf("the second keeps its message ID %s: %s", junkID, dead[1].ID)
				}
			}

			// Terminated: a later run does not get them again.
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			e = dlEngine(t, dir)
			more := dlEvent("test.n", 4)
			dlPublish(t, e, more)
			sink2 := &dlSink{}
			if _, err := dlRun(t, e, opts, sink2, func(src engine.Source) bool { return sink2.has([]engine.Event{more}) && dlCaughtUp(t, src) }); err != nil {
				t.Fatal(err)
			}
			if in := dlSubInfo(t, e, "pipeline:p"); in.Undecodable != 0 {
				t.Errorf("the next source met %d undecodable messages again", in.Undecodable)
			}
			if len(sink2.got) != 1 {
				t.Errorf("the next source processed %d events, want 1", len(sink2.got))
			}
		})
	}
}

// TestDurableSourceDeadLetterFails: a dead letter that cannot be moved
// (its channel was deleted) is an error of CaughtUp, not a source caught
// up: a run waiting for it ends rather than wait for ever, or leave it
// behind unsaid.
func TestDurableSourceDeadLetterFails(t *testing.T) {
	e := dlEngine(t, t.TempDir())
	psCreate(t, e, "gone", engine.ChannelConfig{})
	x := dlEvent("test.n", 0)
	dlPublish(t, e, x)
	src, err := e.ChannelSourceWith("in", engine.SubscribeOptions{Subscriber: "pipeline:p", Start: engine.StartAll(), AckWait: 200 * time.Millisecond,
		MaxDeliver: 1, DeadLetter: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Read and never done with: its one delivery runs out.
	if got, err := src.Read(ctx, nil, 10); err != nil || len(got) != 1 || got[0].ID != x.ID {
		t.Fatalf("read %v, %v", got, err)
	}
	if err := e.DeleteChannel("gone"); err != nil {
		t.Fatal(err)
	}
	for {
		ok, err := src.(engine.CaughtUpSource).CaughtUp(ctx)
		if err != nil {
			if !errors.Is(err, engine.ErrChannelNotFound) || !strings.Contains(err.Error(), "dead letters") {
				t.Fatalf("err %v, want one moving the dead letter to the deleted channel", err)
			}
			return
		}
		if ok {
			t.Fatal("caught up with a dead letter not moved")
		}
		if ctx.Err() != nil {
			t.Fatal("no error within 10s")
		}
	}
}
