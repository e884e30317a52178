package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
	"github.com/aegis-streaming/aegis/internal/jstest"
)

// The persistent channel tests run against two stores (one interface, two
// stores, every test against both): the embedded JetStream server, one per
// test in the test's temporary directory (about 50 ms to start), and a
// 3-node cluster of nats-server processes (internal/jstest) with 3 replicas
// per channel. The cluster is shared by the package's tests: started on
// first use (a few seconds), stopped by TestMain. Channels in it outlive an
// engine, so tests name theirs with [store.ch], unique in the run, and their
// streams are deleted when the test ends.

var (
	clusterOnce sync.Once
	clusterDir  string
	clusterErr  error
	cluster     *jstest.Cluster
	// clusterConn is the tests' own connection to the cluster, for what the
	// engine does not show (a stream's leader) and for cleaning up.
	clusterConn *jetstream.Conn
	channelSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if clusterConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		clusterConn.Close(ctx)
		cancel()
	}
	if cluster != nil {
		cluster.Stop()
	}
	if clusterDir != "" {
		os.RemoveAll(clusterDir)
	}
	os.Exit(code)
}

// sharedCluster starts the package's cluster on first use.
func sharedCluster(t *testing.T) *jstest.Cluster {
	t.Helper()
	clusterOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if clusterDir, clusterErr = os.MkdirTemp("", "aegis-engine-cluster"); clusterErr != nil {
			return
		}
		if cluster, clusterErr = jstest.Start(ctx, clusterDir); clusterErr != nil {
			return
		}
		clusterConn, clusterErr = jetstream.Connect(ctx, cluster.URLs(), jetstream.ConnectOptions{Name: "aegis-engine-test", Replicas: 3})
	})
	if clusterErr != nil {
		t.Fatalf("cluster: %v", clusterErr)
	}
	return cluster
}

// store is where a test's persistent channels live.
type store struct {
	name string
	dir  string   // the embedded server's store directory
	urls []string // the cluster's; nil for the embedded server
}

// eachStore runs f as a subtest against the embedded server and the
// cluster, side by side: most of the time goes in waits (ack waits,
// redeliveries), and the two use different servers and channels.
func eachStore(t *testing.T, f func(t *testing.T, st store)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		f(t, store{name: "embedded", dir: t.TempDir()})
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		f(t, store{name: "cluster", urls: sharedCluster(t).URLs()})
	})
}

// open opens an engine on the store and closes it when the test ends
// (closing twice is harmless). Opening the same store again finds what
// the first engine left.
func (st store) open(t *testing.T) *engine.Engine {
	t.Helper()
	cfg := &engine.DurableConfig{Dir: st.dir}
	if st.urls != nil {
		cfg = &engine.DurableConfig{URLs: st.urls, Replicas: 3}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	e, err := engine.Open(ctx, engine.Config{Durable: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// ch returns a channel name made of name, unique in the test run; on the
// cluster its stream is deleted when the test ends.
func (st store) ch(t *testing.T, name string) string {
	n := fmt.Sprintf("%s-%d", name, channelSeq.Add(1))
	if st.urls != nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := clusterConn.DeleteStream(ctx, n); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Logf("cleanup: %v", err)
			}
		})
	}
	return n
}

// openDurable opens an engine with an embedded store in dir and closes it
// when the test ends (closing twice is harmless).
func openDurable(t *testing.T, dir string) *engine.Engine {
	t.Helper()
	return store{name: "embedded", dir: dir}.open(t)
}

func durEvent(i int) engine.Event {
	return engine.Event{ID: engine.NewEventID(), Type: "test.n", Data: engine.IntData(int64(i))}
}

func durEvents(n int) []engine.Event {
	out := make([]engine.Event, n)
	for i := range out {
		out[i] = durEvent(i)
	}
	return out
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// recvN receives until n events arrived or d passed.
func recvN(t *testing.T, s *engine.Subscription, n int, d time.Duration) []engine.Event {
	t.Helper()
	ctx := ctxFor(t, d)
	var out []engine.Event
	var b engine.EventBatch
	for len(out) < n {
		var err error
		b, err = s.RecvBatch(ctx, b, n-len(out))
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Events...)
	}
	return out
}

func ids(evs []engine.Event) []engine.EventID {
	out := make([]engine.EventID, len(evs))
	for i := range evs {
		out[i] = evs[i].ID
	}
	return out
}

// runUntil runs p until it ends, or until until, asked every 20 ms, says
// to stop it: then it cancels the run and waits for its end. It returns
// whether the run ended by itself, and its error. A run that does neither
// within 20 s fails the test with what stuck says.
func runUntil(t *testing.T, p *engine.Pipeline, until func() bool, stuck func() string) (ended bool, err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case err := <-done:
			return true, err
		case <-deadline:
			t.Fatal(stuck())
		case <-time.After(20 * time.Millisecond):
			if until() {
				cancel()
				return false, <-done
			}
		}
	}
}

func TestDurableRefusals(t *testing.T) {
	mem := engine.New(engine.Config{})
	defer mem.Close()
	if err := mem.CreateChannel("p", engine.ChannelConfig{Persistent: true}); !errors.Is(err, engine.ErrUnsupported) || !strings.Contains(err.Error(), "durable store") {
		t.Errorf("persistent channel without a store: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  engine.ChannelConfig
		want string
	}{
		{"replicas", engine.ChannelConfig{Replicas: 3}, "replicas"},
		{"max bytes", engine.ChannelConfig{Retention: engine.Retention{MaxBytes: 1 << 20}}, "retention max bytes"},
		{"discard new", engine.ChannelConfig{Discard: engine.DiscardNew}, "discard new"},
		{"duplicate window", engine.ChannelConfig{DuplicateWindow: time.Minute}, "duplicate window"},
	} {
		t.Run("channel "+tc.name, func(t *testing.T) {
			err := mem.CreateChannel("c", tc.cfg)
			if !errors.Is(err, engine.ErrUnsupported) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "persistent") {
				t.Fatalf("err %v, want ErrUnsupported naming %q", err, tc.want)
			}
		})
	}
	psCreate(t, mem, "c", engine.ChannelConfig{})
	for _, tc := range []struct {
		name string
		opts engine.SubscribeOptions
		want string
	}{
		{"durable", engine.SubscribeOptions{Durable: "d"}, "durable name"},
		{"start", engine.SubscribeOptions{Start: engine.StartAll()}, "start all"},
		{"ack wait", engine.SubscribeOptions{AckWait: time.Second}, "ack wait"},
		{"max deliver", engine.SubscribeOptions{MaxDeliver: 3}, "max deliver"},
		{"backoff", engine.SubscribeOptions{Backoff: []time.Duration{time.Second}}, "backoff"},
		{"dead letter", engine.SubscribeOptions{DeadLetter: "dlq"}, "dead letter"},
		{"at least once", engine.SubscribeOptions{DeliveryMode: engine.AtLeastOnce}, "at-least-once"},
		{"manual", engine.SubscribeOptions{AckMode: engine.AckManual}, "manual"},
	} {
		t.Run("subscribe "+tc.name, func(t *testing.T) {
			_, err := mem.Subscribe("c", tc.opts)
			if !errors.Is(err, engine.ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrUnsupported naming %q", err, tc.want)
			}
		})
	}
	s, err := mem.Subscribe("c", engine.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(t.Context(), engine.NewEventID()); !errors.Is(err, engine.ErrUnsupported) {
		t.Errorf("manual ack on an in-memory subscription: %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("New with Durable did not panic")
			}
		}()
		engine.New(engine.Config{Durable: &engine.DurableConfig{Dir: t.TempDir()}})
	}()

	// Options a persistent channel refuses.
	e := openDurable(t, t.TempDir())
	if err := e.CreateChannel("p", engine.ChannelConfig{Persistent: true, SlowSubscriber: engine.DropOldest}); !errors.Is(err, engine.ErrUnsupported) {
		t.Errorf("drop-oldest on a persistent channel: %v", err)
	}
	psCreate(t, e, "p", engine.ChannelConfig{Persistent: true})
	for _, tc := range []struct {
		name string
		opts engine.SubscribeOptions
		want string
	}{
		{"manual at most once", engine.SubscribeOptions{AckMode: engine.AckManual}, "manual"},
		{"none at least once", engine.SubscribeOptions{AckMode: engine.AckNone, DeliveryMode: engine.AtLeastOnce}, "ack mode none"},
		{"dead letter without max deliver", engine.SubscribeOptions{DeadLetter: "dlq", DeliveryMode: engine.AtLeastOnce}, "max deliver"},
		{"backoff longer than max deliver", engine.SubscribeOptions{Backoff: []time.Duration{time.Second, time.Second}, MaxDeliver: 1}, "backoff"},
	} {
		t.Run("persistent "+tc.name, func(t *testing.T) {
			_, err := e.Subscribe("p", tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestDurableOpenFails(t *testing.T) {
	ctx := ctxFor(t, 10*time.Second)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  engine.DurableConfig
		want string
	}{
		{"no dir", engine.DurableConfig{}, "Dir or URLs"},
		{"dir is a file", engine.DurableConfig{Dir: file}, "store"},
		{"replicas embedded", engine.DurableConfig{Dir: t.TempDir(), Replicas: 3}, "need a cluster"},
		{"no cluster", engine.DurableConfig{URLs: []string{"nats://127.0.0.1:1"}}, "127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctx
			if tc.cfg.URLs != nil {
				ctx = ctxFor(t, 500*time.Millisecond)
			}
			_, err := engine.Open(ctx, engine.Config{Durable: &tc.cfg})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestDurablePublishSubscribe(t *testing.T) {
	eachStore(t, func(t *testing.T, ds store) {
		e := ds.open(t)
		orders := ds.ch(t, "orders")
		psCreate(t, e, orders, engine.ChannelConfig{Persistent: true})
		all, err := e.Subscribe(orders, engine.SubscribeOptions{Start: engine.StartAll(), DeliveryMode: engine.AtLeastOnce})
		if err != nil {
			t.Fatal(err)
		}
		evs := durEvents(10)
		ctx := ctxFor(t, 10*time.Second)
		if err := e.Publish(ctx, orders, evs[0]); err != nil {
			t.Fatal(err)
		}
		if err := e.PublishBatch(ctx, orders, engine.EventBatch{Events: evs[1:]}); err != nil {
			t.Fatal(err)
		}
		got := recvN(t, all, 10, 5*time.Second)
		if !slices.Equal(ids(got), ids(evs)) {
			t.Fatalf("received %v, want %v", ids(got), ids(evs))
		}
		for i := range got {
			if got[i].Type != evs[i].Type || got[i].Data.String() != evs[i].Data.String() || got[i].Time == 0 {
				t.Fatalf("event %d: got %+v, want %+v", i, got[i], evs[i])
			}
		}
		st, err := e.ChannelStats(orders)
		if err != nil {
			t.Fatal(err)
		}
		if st.Published != 10 || st.Retained != 10 || st.Delivered != 10 || st.Subscribers != 1 {
			t.Errorf("stats %+v", st)
		}
		info := all.Info()
		if info.Received != 10 || info.Acknowledged != 10 || info.Pending != 0 || info.Err != "" {
			t.Errorf("subscription info %+v", info)
		}

		// Start positions of new subscriptions, as a table.
		for _, tc := range []struct {
			name  string
			start engine.StartPosition
			want  []engine.EventID // of the ten published above
		}{
			{"new", engine.StartNew(), nil},
			{"all", engine.StartAll(), ids(evs)},
			{"seq", engine.StartAtSeq(8), ids(evs[7:])},
			{"after event", engine.StartAfterEvent(evs[4].ID), ids(evs[5:])},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s, err := e.Subscribe(orders, engine.SubscribeOptions{Start: tc.start})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				late := durEvent(99)
				if err := e.Publish(ctxFor(t, 5*time.Second), orders, late); err != nil {
					t.Fatal(err)
				}
				got := recvN(t, s, 100, 500*time.Millisecond)
				var want []engine.EventID
				want = append(want, tc.want...)
				// The late events of the earlier subtests are there too.
				var gotIDs []engine.EventID
				for _, id := range ids(got) {
					if slices.Contains(ids(evs), id) || id == late.ID {
						gotIDs = append(gotIDs, id)
					}
				}
				want = append(want, late.ID)
				if !slices.Equal(gotIDs, want) {
					t.Fatalf("got %v, want %v", gotIDs, want)
				}
			})
		}
		if _, err := e.Subscribe(orders, engine.SubscribeOptions{Start: engine.StartAfterEvent(engine.NewEventID())}); !errors.Is(err, engine.ErrEventNotFound) {
			t.Errorf("start after an unknown event: %v", err)
		}
		// An ephemeral subscription's consumer is deleted when it closes.
		if err := all.Close(); err != nil {
			t.Fatal(err)
		}
		if subs, _ := e.Subscriptions(orders); len(subs) != 0 {
			t.Errorf("subscriptions after close: %+v", subs)
		}
	})
}

func TestDurableExactlyOncePublish(t *testing.T) {
	eachStore(t, func(t *testing.T, ds store) {
		e := ds.open(t)
		in, out := ds.ch(t, "in"), ds.ch(t, "out")
		for _, ch := range []string{in, out} {
			psCreate(t, e, ch, engine.ChannelConfig{Persistent: true, DuplicateWindow: time.Minute})
		}
		ctx := ctxFor(t, 10*time.Second)
		evs := durEvents(50)
		// A producer's retry of the whole batch, and of one event.
		for range 2 {
			if err := e.PublishBatch(ctx, in, engine.EventBatch{Events: slices.Clone(evs)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Publish(ctx, in, evs[7]); err != nil {
			t.Fatal(err)
		}
		st, _ := e.ChannelStats(in)
		if st.Published != 50 || st.Duplicates != 51 || st.Retained != 50 {
			t.Errorf("stats %+v, want 50 published and retained, 51 duplicates", st)
		}
		// A pipeline's sink writing the same batch again (a replay).
		sink := e.ChannelSink(out)
		for range 2 {
			if err := sink.Write(ctx, evs); err != nil {
				t.Fatal(err)
			}
		}
		st, _ = e.ChannelStats(out)
		if st.Retained != 50 || st.Duplicates != 50 {
			t.Errorf("sink stats %+v, want 50 retained, 50 duplicates", st)
		}
	})
}

func TestDurableResumeAfterRestart(t *testing.T) {
	eachStore(t, func(t *testing.T, ds store) {
		log := ds.ch(t, "log")
		evs := durEvents(10)
		opts := engine.SubscribeOptions{Durable: "reader", Start: engine.StartAll(), DeliveryMode: engine.ExactlyOnce, AckWait: 500 * time.Millisecond, BufferSize: 2}

		e := ds.open(t)
		psCreate(t, e, log, engine.ChannelConfig{Persistent: true})
		if err := e.PublishBatch(ctxFor(t, 5*time.Second), log, engine.EventBatch{Events: slices.Clone(evs)}); err != nil {
			t.Fatal(err)
		}
		s, err := e.Subscribe(log, opts)
		if err != nil {
			t.Fatal(err)
		}
		first := recvN(t, s, 4, 5*time.Second)
		if !slices.Equal(ids(first), ids(evs[:4])) {
			t.Fatalf("first run got %v", ids(first))
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}

		// The same store: the channel and the durable subscription are found.
		e = ds.open(t)
		psCreate(t, e, log, engine.ChannelConfig{Persistent: true})
		if st, _ := e.ChannelStats(log); st.Retained != 10 {
			t.Fatalf("after restart the channel holds %d events, want 10", st.Retained)
		}
		s, err = e.Subscribe(log, opts)
		if err != nil {
			t.Fatal(err)
		}
		if info := s.Info(); info.Durable != "reader" || info.Pending+info.AckPending != 6 {
			t.Errorf("info after restart %+v, want 6 events left", info)
		}
		// The events fetched ahead before the restart come again after their
		// ack wait, so possibly after the others.
		rest := ids(recvN(t, s, 6, 5*time.Second))
		slices.SortFunc(rest, func(a, b engine.EventID) int { return a.Compare(b) })
		if !slices.Equal(rest, ids(evs[4:])) {
			t.Fatalf("after restart got %v, want %v", rest, ids(evs[4:]))
		}
		if more := recvN(t, s, 1, time.Second); len(more) != 0 {
			t.Fatalf("acknowledged events delivered again: %v", ids(more))
		}
	})
}

func TestDurableManualAcks(t *testing.T) {
	eachStore(t, func(t *testing.T, ds store) {
		e := ds.open(t)
		jobs := ds.ch(t, "jobs")
		psCreate(t, e, jobs, engine.ChannelConfig{Persistent: true})
		for _, mode := range []engine.DeliveryMode{engine.AtLeastOnce, engine.ExactlyOnce} {
			t.Run(mode.String(), func(t *testing.T) {
				s, err := e.Subscribe(jobs, engine.SubscribeOptions{Durable: "w-" + mode.String(), AckMode: engine.AckManual, DeliveryMode: mode, AckWait: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				evs := durEvents(4)
				if err := e.PublishBatch(ctxFor(t, 5*time.Second), jobs, engine.EventBatch{Events: slices.Clone(evs)}); err != nil {
					t.Fatal(err)
				}
				got := recvN(t, s, 4, 5*time.Second)
				if len(got) != 4 {
					t.Fatalf("got %d events", len(got))
				}
				if d, err := s.Delivery(evs[0].ID); err != nil || d.Delivered != 1 || d.Seq == 0 {
					t.Fatalf("delivery %+v %v", d, err)
				}
				ctx := ctxFor(t, 5*time.Second)
				if err := s.Ack(ctx, evs[0].ID); err != nil { // done
					t.Fatal(err)
				}
				if err := s.Nak(evs[1].ID, 0); err != nil { // again at once
					t.Fatal(err)
				}
				if err := s.Term(evs[2].ID, "bad input"); err != nil { // never again
					t.Fatal(err)
				}
				// evs[3] is left: delivered again after the ack wait.
				if err := s.Ack(ctx, evs[0].ID); !errors.Is(err, engine.ErrNotPending) {
					t.Errorf("second ack: %v", err)
				}
				nak := recvN(t, s, 1, 500*time.Millisecond)
				if !slices.Equal(ids(nak), []engine.EventID{evs[1].ID}) {
					t.Fatalf("after the nak got %v, want event 1 at once", ids(nak))
				}
				// InProgress keeps event 1 from coming back beyond its ack wait
				// while event 3 does come back.
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Go(func() {
					for {
						if err := s.InProgress(evs[1].ID); err != nil {
							t.Error(err)
						}
						select {
						case <-stop:
							return
						case <-time.After(200 * time.Millisecond):
						}
					}
				})
				late := recvN(t, s, 1, 3*time.Second)
				time.Sleep(300 * time.Millisecond) // past event 1's first ack wait
				if more := recvN(t, s, 1, 300*time.Millisecond); len(more) != 0 {
					late = append(late, more...)
				}
				close(stop)
				wg.Wait()
				if !slices.Equal(ids(late), []engine.EventID{evs[3].ID}) {
					t.Fatalf("after the ack wait got %v, want event 3 only", ids(late))
				}
				for _, ev := range []engine.Event{evs[1], evs[3]} {
					if d, err := s.Delivery(ev.ID); err != nil || d.Delivered != 2 {
						t.Errorf("redelivery %+v %v", d, err)
					}
				}
				if info := s.Info(); info.AckPending != 2 || info.Redelivered != 2 {
					t.Errorf("info %+v, want 2 awaiting an ack, both redelivered", info)
				}
				if err := s.Ack(ctx, evs[1].ID, evs[3].ID); err != nil {
					t.Fatal(err)
				}
				if more := recvN(t, s, 1, 1500*time.Millisecond); len(more) != 0 {
					t.Fatalf("settled events delivered again: %v", ids(more))
				}
				if info := s.Info(); info.AckPending != 0 || info.Acknowledged != 3 {
					t.Errorf("info %+v, want nothing awaiting an ack, 3 acknowledged", info)
				}
			})
		}
	})
}

// TestDurableCloseGivesBack: closing an AckManual subscription gives back
// what its receiver took and did not settle, so the next subscription of
// the durable name gets it at once rather than after the ack wait.
func TestDurableCloseGivesBack(t *testing.T) {
	eachStore(t, func(t *testing.T, ds store) {
		e := ds.open(t)
		jobs := ds.ch(t, "jobs")
		psCreate(t, e, jobs, engine.ChannelConfig{Persistent: true})
		opts := engine.SubscribeOptions{Durable: "w", AckMode: engine.AckManual, DeliveryMode: engine.AtLeastOnce, AckWait: time.Hour}
		s, err := e.Subscribe(jobs, opts)
		if err != nil {
			t.Fatal(err)
		}
		evs := durEvents(5)
		if err := e.PublishBatch(ctxFor(t, 5*time.Second), jobs, engine.EventBatch{Events: slices.Clone(evs)}); err != nil {
			t.Fatal(err)
		}
		if got := recvN(t, s, 5, 5*time.Second); len(got) != 5 {
			t.Fatalf("got %d events", len(got))
		}
		if err := s.Ack(ctxFor(t, 5*time.Second), evs[0].ID, evs[1].ID); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err = e.Subscribe(jobs, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got := ids(recvN(t, s, 3, 10*time.Second))
		slices.SortFunc(got, engine.EventID.Compare)
		want := ids(evs[2:])
		slices.SortFunc(want, engine.EventID.Compare)
		if !slices.Equal(got, want) {
			t.Fatalf("after the close got %v, want the three unsettled %v at once", got, want)
		}
	})
}

func TestDurableDeadLetters(t *testing.T) {
	eachStore(t, func(t *testing.T, ds store) {
		for _, persistentDLQ := range []bool{false, true} {
			t.Run(fmt.Sprintf("persistent dead-letter channel %v", persistentDLQ), func(t *testing.T) {
				e := ds.open(t)
				jobs, dlqName := ds.ch(t, "jobs"), ds.ch(t, "dlq")
				psCreate(t, e, jobs, engine.ChannelConfig{Persistent: true})
				psCreate(t, e, dlqName, engine.ChannelConfig{Persistent: persistentDLQ})
				var dlqOpts engine.SubscribeOptions
				if persistentDLQ {
					dlqOpts.Start = engine.StartAll()
				}
				dlq, err := e.Subscribe(dlqName, dlqOpts)
				if err != nil {
					t.Fatal(err)
				}
				s, err := e.Subscribe(jobs, engine.SubscribeOptions{Durable: "w", AckMode: engine.AckManual, DeliveryMode: engine.AtLeastOnce,
					AckWait: 200 * time.Millisecond, MaxDeliver: 2, DeadLetter: dlqName})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				poison, good := durEvent(1), durEvent(2)
				if err := e.PublishBatch(ctxFor(t, 5*time.Second), jobs, engine.EventBatch{Events: []engine.Event{poison, good}}); err != nil {
					t.Fatal(err)
				}
				// The poison event is refused on every delivery.
				deliveries := 0
				ctx := ctxFor(t, 10*time.Second)
				for deliveries < 2 {
					ev, err := s.Recv(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if ev.ID == good.ID {
						if err := s.Ack(ctx, ev.ID); err != nil {
							t.Fatal(err)
						}
						continue
					}
					deliveries++
					if err := s.Nak(ev.ID, 0); err != nil {
						t.Fatal(err)
					}
				}
				dead, err := dlq.Recv(ctxFor(t, 10*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				if dead.ID != poison.ID || !strings.Contains(dead.Metadata[engine.MetaError], "max deliveries (2)") ||
					dead.Metadata[engine.MetaErrorChannel] != jobs || dead.Metadata[engine.MetaErrorDeliveries] != "2" {
					t.Fatalf("dead letter %+v", dead)
				}
				if more := recvN(t, dlq, 1, 500*time.Millisecond); len(more) != 0 {
					t.Fatalf("more dead letters: %v", more)
				}
			})
		}
	})
}

// crashSink records what it is given and fails once it holds more than
// failAt events: like a process killed after writing a batch and before
// acknowledging it, so that batch must come again.
type crashSink struct {
	mu     sync.Mutex
	seen   map[engine.EventID]int
	n      int
	failAt int
	failed []engine.EventID // the batch it failed on
}

func (s *crashSink) Write(_ context.Context, evs []engine.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		s.seen[ev.ID]++
	}
	s.n += len(evs)
	if s.failAt > 0 && s.n > s.failAt {
		s.failed = ids(evs)
		return errors.New("killed mid-batch")
	}
	return nil
}

func (s *crashSink) Close() error { return nil }

func (s *crashSink) count() (distinct, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen), s.n
}

// TestDurablePipelineKilledAndRestarted: a pipeline from a persistent
// channel to a persistent channel (and a recording sink) is killed after
// writing a batch it has not acknowledged, the engine restarts on the same
// store, and the pipeline runs again under the same name: every event is
// processed at least once, the unacknowledged batch twice, and the output
// channel holds every event exactly once.
func TestDurablePipelineKilledAndRestarted(t *testing.T) {
	eachStore(t, func(t *testing.T, ds store) {
		in, out := ds.ch(t, "in"), ds.ch(t, "out")
		const n = 2000
		evs := durEvents(n)
		seen := map[engine.EventID]int{}
		opts := engine.SubscribeOptions{Subscriber: "pipeline:copy", Start: engine.StartAll(), AckWait: 500 * time.Millisecond, BufferSize: 64}
		var failed []engine.EventID // the batch written and not acknowledged
		run := func(e *engine.Engine, failAt int, until func(*crashSink) bool) {
			t.Helper()
			src, err := e.ChannelSourceWith(in, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			sink := &crashSink{seen: seen, failAt: failAt}
			// The persistent channel is written first: the batch it got before
			// the kill is written again after the restart.
			sinks := []engine.Sink{e.ChannelSink(out), sink}
			p, err := engine.NewPipeline(engine.PipelineConfig{Name: "copy", Source: src, Sinks: sinks, MaxBatch: 100})
			if err != nil {
				t.Fatal(err)
			}
			ended, err := runUntil(t, p, func() bool { return until != nil && until(sink) }, func() string {
				d, tot := sink.count()
				return fmt.Sprintf("timed out with %d distinct of %d events", d, tot)
			})
			if !ended {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if failAt == 0 {
				t.Fatalf("pipeline stopped: %v", err)
			}
			if err == nil || !strings.Contains(err.Error(), "killed mid-batch") {
				t.Fatalf("pipeline err %v, want the sink's", err)
			}
			failed = sink.failed
		}

		create := func(e *engine.Engine) {
			t.Helper()
			for _, ch := range []string{in, out} {
				psCreate(t, e, ch, engine.ChannelConfig{Persistent: true})
			}
		}
		e := ds.open(t)
		create(e)
		if err := e.PublishBatch(ctxFor(t, 10*time.Second), in, engine.EventBatch{Events: slices.Clone(evs)}); err != nil {
			t.Fatal(err)
		}
		run(e, 750, nil) // dies on the batch that passes 750 events, not acknowledged
		if d, _ := (&crashSink{seen: seen}).count(); d == 0 || d >= n {
			t.Fatalf("first run processed %d events", d)
		}
		// Under load an ack wait may pass before the pipeline is done with
		// a batch, which then comes again within the run: count the
		// duplicates the output channel dropped in either run.
		st, err := e.ChannelStats(out)
		if err != nil {
			t.Fatal(err)
		}
		dups := st.Duplicates
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}

		e = ds.open(t)
		create(e)
		run(e, 0, func(s *crashSink) bool { d, _ := s.count(); return d == n })
		var twice, again int // events processed more than once; the extra times
		for _, ev := range evs {
			switch k := seen[ev.ID]; k {
			case 0:
				t.Fatalf("event %s lost", ev.ID)
			case 1:
			default:
				twice++
				again += k - 1
			}
		}
		// The batch written and not acknowledged comes again (at most 100
		// events, fewer when less was fetched ahead); besides it only the
		// events read and not acknowledged before the kill may: at most the
		// batches in flight.
		for _, id := range failed {
			if seen[id] < 2 {
				t.Errorf("event %s of the unacknowledged batch processed %d times, want twice", id, seen[id])
			}
		}
		if len(failed) == 0 || twice < len(failed) || twice > 300 {
			t.Errorf("%d events processed twice, want the unacknowledged batch (%d) and at most 300", twice, len(failed))
		}
		// Exactly once in the persistent output: the replayed batch carried
		// the same event IDs and was not stored again.
		st, err = e.ChannelStats(out)
		if err != nil {
			t.Fatal(err)
		}
		if dups += st.Duplicates; st.Retained != n || dups != uint64(again) {
			t.Errorf("output channel holds %d events with %d duplicates dropped, want %d and %d", st.Retained, dups, n, again)
		}
		t.Logf("every one of %d events processed, %d of them twice (the unacknowledged batch: %d); the output channel holds each once", n, twice, len(failed))
	})
}

func TestDurableSubscriptionModes(t *testing.T) {
	eachStore(t, func(t *testing.T, ds store) {
		e := ds.open(t)
		c := ds.ch(t, "c")
		psCreate(t, e, c, engine.ChannelConfig{Persistent: true})
		evs := durEvents(3)
		if err := e.PublishBatch(ctxFor(t, 5*time.Second), c, engine.EventBatch{Events: slices.Clone(evs)}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name  string
			opts  engine.SubscribeOptions
			acked uint64
		}{
			{"at most once, ack none", engine.SubscribeOptions{AckMode: engine.AckNone}, 0},
			{"at most once, auto", engine.SubscribeOptions{}, 3},
			{"at least once, backoff", engine.SubscribeOptions{DeliveryMode: engine.AtLeastOnce, MaxDeliver: 3, Backoff: []time.Duration{time.Second, 2 * time.Second}}, 3},
			{"exactly once, auto", engine.SubscribeOptions{DeliveryMode: engine.ExactlyOnce}, 3},
			{"filter", engine.SubscribeOptions{Filter: engine.FilterFunc(func(ev *engine.Event) bool { return ev.ID == evs[1].ID })}, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				opts := tc.opts
				opts.Start = engine.StartAll()
				s, err := e.Subscribe(c, opts)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				want := ids(evs)
				if tc.opts.Filter != nil {
					want = want[1:2]
				}
				// TryRecv first: it does not wait, so it may find nothing yet.
				var got []engine.Event
				deadline := time.Now().Add(5 * time.Second)
				for len(got) == 0 && time.Now().Before(deadline) {
					ev, ok, err := s.TryRecv()
					if err != nil {
						t.Fatal(err)
					}
					if ok {
						got = append(got, ev)
					}
				}
				got = append(got, recvN(t, s, len(want)-len(got), 5*time.Second)...)
				if !slices.Equal(ids(got), want) {
					t.Fatalf("got %v, want %v", ids(got), want)
				}
				if more := recvN(t, s, 1, 300*time.Millisecond); len(more) != 0 {
					t.Fatalf("delivered again: %v", ids(more))
				}
				if info := s.Info(); info.Acknowledged != tc.acked || info.AckPending != 0 {
					t.Errorf("info %+v, want %d acknowledged, none awaiting", info, tc.acked)
				}
			})
		}

		// Deleting a persistent channel ends its receivers and sources and
		// removes its stream.
		s, err := e.Subscribe(c, engine.SubscribeOptions{Durable: "d"})
		if err != nil {
			t.Fatal(err)
		}
		src, err := e.ChannelSource(c, "pipeline:p")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Read(ctxFor(t, 5*time.Second), nil, 10); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 2)
		go func() { _, err := s.Recv(t.Context()); errc <- err }()
		go func() {
			for {
				if _, err := src.Read(t.Context(), nil, 10); err != nil {
					errc <- err
					return
				}
			}
		}()
		time.Sleep(100 * time.Millisecond)
		if err := e.DeleteChannel(c); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			select {
			case err := <-errc:
				if !errors.Is(err, engine.ErrChannelDeleted) && !errors.Is(err, io.EOF) {
					t.Errorf("receiver ended with %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("a receiver did not end")
			}
		}
		psCreate(t, e, c, engine.ChannelConfig{Persistent: true})
		if st, _ := e.ChannelStats(c); st.Retained != 0 {
			t.Errorf("a deleted channel's stream kept %d events", st.Retained)
		}
	})
}
