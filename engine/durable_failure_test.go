package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/jstest"
)

// Failure modes of persistent channels through the engine's API, on real
// servers: the cluster going down mid-run and coming back, the stream
// leader crashing, a full store or channel, an unreachable cluster. The
// cluster tests stop nodes of the package's shared cluster and bring them
// back, healthy, before they end.

// recordSink records the events a pipeline writes.
type recordSink struct {
	mu   sync.Mutex
	seen map[engine.EventID]int
	n    int
}

func newRecordSink() *recordSink { return &recordSink{seen: map[engine.EventID]int{}} }

func (s *recordSink) Write(_ context.Context, evs []engine.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		s.seen[ev.ID]++
	}
	s.n += len(evs)
	return nil
}

func (s *recordSink) Close() error { return nil }

// missing returns the IDs of want the sink has not seen.
func (s *recordSink) missing(want []engine.EventID) []engine.EventID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []engine.EventID
	for _, id := range want {
		if s.seen[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// waitSeen waits until the sink has seen every event of want.
func (s *recordSink) waitSeen(t *testing.T, want []engine.EventID, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := s.missing(want)
		if len(m) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pipeline did not deliver %d of %d events within %v, first %s", len(m), len(want), d, m[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startReader runs a pipeline reading channel from its start into a
// recording sink, until the test ends; the pipeline must not fail.
func startReader(t *testing.T, e *engine.Engine, channel string) *recordSink {
	t.Helper()
	src, err := e.ChannelSourceWith(channel, engine.SubscribeOptions{Subscriber: "pipeline:reader", Start: engine.StartAll(), AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sink := newRecordSink()
	p, err := engine.NewPipeline(engine.PipelineConfig{Name: "reader", Source: src, Sinks: []engine.Sink{sink}, MaxBatch: 50})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("pipeline: %v", err)
		}
		src.Close()
	})
	return sink
}

// readAll returns the IDs a channel holds, oldest first, through a new
// subscription.
func readAll(t *testing.T, e *engine.Engine, channel string) []engine.EventID {
	t.Helper()
	st, err := e.ChannelStats(channel)
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.Subscribe(channel, engine.SubscribeOptions{Start: engine.StartAll()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := ids(recvN(t, s, int(st.Retained), 20*time.Second))
	if len(got) != int(st.Retained) {
		t.Fatalf("read %d events of the %d the channel retains", len(got), st.Retained)
	}
	return got
}

// checkOnce checks that held has every event of acked once, and no other.
func checkOnce(t *testing.T, held, acked []engine.EventID) {
	t.Helper()
	count := map[engine.EventID]int{}
	for _, id := range held {
		count[id]++
	}
	for _, id := range acked {
		if count[id] != 1 {
			t.Errorf("acknowledged event %s is in the channel %d times", id, count[id])
		}
	}
	if len(held) != len(acked) {
		t.Errorf("the channel holds %d events, %d were acknowledged", len(held), len(acked))
	}
}

// restartAll brings every node of the cluster back and waits until it is
// healthy.
func restartAll(t *testing.T, c *jstest.Cluster) {
	t.Helper()
	for _, n := range c.Nodes() {
		if err := c.Restart(n); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// clusterReading opens an engine on the shared cluster with a persistent
// channel that a pipeline reads into the returned sink (startReader), and
// returns the channel's name. Every node runs again, healthy, when the
// test ends.
func clusterReading(t *testing.T) (*jstest.Cluster, *engine.Engine, string, *recordSink) {
	t.Helper()
	c := sharedCluster(t)
	t.Cleanup(func() { restartAll(t, c) })
	ds := store{name: "cluster", urls: c.URLs()}
	e := ds.open(t)
	in := ds.ch(t, "in")
	psCreate(t, e, in, engine.ChannelConfig{Persistent: true})
	sink := startReader(t, e, in)
	return c, e, in, sink
}

// TestDurableClusterDown: every node of the cluster stops while a
// pipeline reads a persistent channel and a producer publishes. Publishing
// fails with an error that says the store is not reachable; what was
// acknowledged before stays stored and reaches the pipeline; once the
// nodes are back the pipeline reads on and publishing works again, and a
// producer that retries what failed, under the same IDs, stores each event
// once.
func TestDurableClusterDown(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and restarts the cluster; skipped with -short")
	}
	c, e, in, sink := clusterReading(t)
	var acked, failed []engine.EventID
	publish := func(ev engine.Event, d time.Duration) error {
		err := e.Publish(ctxFor(t, d), in, ev)
		if err == nil {
			acked = append(acked, ev.ID)
		}
		return err
	}
	for i := range 200 {
		if err := publish(durEvent(i), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Down while the pipeline is still at it: events in its hands are not
	// acknowledged, or their acknowledgements are lost with the servers.
	c.Stop()
	t.Logf("cluster stopped with the pipeline at %d of %d events", len(acked)-len(sink.missing(acked)), len(acked))
	var down []engine.Event
	for i := range 3 {
		ev := durEvent(1000 + i)
		start := time.Now()
		err := publish(ev, time.Second)
		if err == nil {
			t.Fatal("publish with every node down succeeded")
		}
		t.Logf("publish with the cluster down, after %v: %v", time.Since(start).Round(time.Millisecond), err)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), in) || !strings.Contains(err.Error(), "not connected") {
			t.Errorf("error %q, want a deadline naming the channel and saying the store is not connected", err)
		}
		down = append(down, ev)
		failed = append(failed, ev.ID)
	}

	restartAll(t, c)
	// The producer retries what failed; whatever of it the servers had
	// got is a duplicate now.
	for _, ev := range down {
		if err := publish(ev, 20*time.Second); err != nil {
			t.Fatalf("retry after the cluster came back: %v", err)
		}
	}
	for i := range 100 {
		if err := publish(durEvent(2000+i), 20*time.Second); err != nil {
			t.Fatalf("publish after the cluster came back: %v", err)
		}
	}
	sink.waitSeen(t, acked, 60*time.Second)
	checkOnce(t, readAll(t, e, in), acked)
	t.Logf("%d events acknowledged, %d failed while the cluster was down and were retried; the pipeline saw %d deliveries", len(acked), len(failed), sink.n)
}

// TestDurableClusterLeaderKilled: the stream leader of a persistent
// channel crashes while a producer publishes through the engine and a
// pipeline reads: the producer retries what fails under the same IDs, the
// channel holds every acknowledged event once, and the pipeline gets every
// one.
func TestDurableClusterLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a cluster node; skipped with -short")
	}
	c, e, in, sink := clusterReading(t)
	const total = 600
	ctx := ctxFor(t, 60*time.Second)
	var acked []engine.EventID
	retries := 0
	for i := range total {
		if i == total/3 {
			leader := streamLeader(t, in)
			t.Logf("killing stream leader %s at event %d", leader.Name, i)
			c.Kill(leader)
		}
		ev := durEvent(i)
		for {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err := e.Publish(pctx, in, ev)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
			retries++
			time.Sleep(50 * time.Millisecond)
		}
		acked = append(acked, ev.ID)
	}
	restartAll(t, c)
	sink.waitSeen(t, acked, 60*time.Second)
	checkOnce(t, readAll(t, e, in), acked)
	st, _ := e.ChannelStats(in)
	t.Logf("%d events, %d publish retries (%d of them already stored); the pipeline saw %d deliveries", total, retries, st.Duplicates, sink.n)
}

// streamLeader is the node that leads the stream of a channel on the
// cluster.
func streamLeader(t *testing.T, channel string) *jstest.Node {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	st, err := clusterConn.Stream(ctx, channel)
	if err != nil {
		t.Fatal(err)
	}
	in, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := cluster.Node(in.Leader)
	if n == nil {
		t.Fatalf("stream leader %q is not a node of the cluster", in.Leader)
	}
	return n
}

// fillUp publishes events of about 1 KB until a publish fails and returns
// the IDs acknowledged and the error.
// padEvent is an event of about 1 KB.
func padEvent(i int) engine.Event {
	return engine.Event{ID: engine.NewEventID(), Type: "test.pad", Data: engine.StringData(fmt.Sprintf("%d %s", i, strings.Repeat("x", 1000)))}
}

// padEvents are n events of about 1 KB: a batch that does not fit where
// fillUp's last event did not.
func padEvents(n int) []engine.Event {
	out := make([]engine.Event, n)
	for i := range out {
		out[i] = padEvent(i)
	}
	return out
}

func fillUp(t *testing.T, e *engine.Engine, channel string) ([]engine.EventID, error) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	var acked []engine.EventID
	for i := range 10_000 {
		ev := padEvent(i)
		if err := e.Publish(ctx, channel, ev); err != nil {
			return acked, err
		}
		acked = append(acked, ev.ID)
	}
	t.Fatal("10000 events of 1 KB fitted")
	return nil, nil
}

// TestDurableFull: a publish beyond the store's quota, or beyond a
// channel's max bytes with discard new, fails with ErrStoreFull or
// ErrChannelFull and a message that says what to do; nothing stored
// before is lost, batches fail the same way, and the channel takes events
// again once there is room.
func TestDurableFull(t *testing.T) {
	t.Run("store", func(t *testing.T) {
		// The quota is the embedded server's; a cluster's is set on its
		// servers.
		ctx := ctxFor(t, 20*time.Second)
		e, err := engine.Open(ctx, engine.Config{Durable: &engine.DurableConfig{Dir: t.TempDir(), MaxStore: 256 << 10}})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		psCreate(t, e, "big", engine.ChannelConfig{Persistent: true})
		acked, err := fillUp(t, e, "big")
		if !errors.Is(err, engine.ErrStoreFull) || !strings.Contains(err.Error(), "channel[big]") || !strings.Contains(err.Error(), "max store") {
			t.Errorf("error %q, want ErrStoreFull naming the channel and what to do", err)
		}
		t.Logf("after %d events: %v", len(acked), err)
		if err := e.PublishBatch(ctx, "big", engine.EventBatch{Events: padEvents(3)}); !errors.Is(err, engine.ErrStoreFull) {
			t.Errorf("batch: %v", err)
		}
		checkOnce(t, readAll(t, e, "big"), acked)
	})
	eachStore(t, func(t *testing.T, ds store) {
		e := ds.open(t)
		ch := ds.ch(t, "capped")
		if err := e.CreateChannel(ch, engine.ChannelConfig{Persistent: true, Discard: engine.DiscardNew,
			Retention: engine.Retention{MaxBytes: 64 << 10}}); err != nil {
			t.Fatal(err)
		}
		acked, err := fillUp(t, e, ch)
		if !errors.Is(err, engine.ErrChannelFull) || !strings.Contains(err.Error(), "channel["+ch+"]") || !strings.Contains(err.Error(), "retention") {
			t.Errorf("error %q, want ErrChannelFull naming the channel and what to do", err)
		}
		t.Logf("after %d events: %v", len(acked), err)
		var pe *engine.PublishError
		if err := e.PublishBatch(ctxFor(t, 10*time.Second), ch, engine.EventBatch{Events: padEvents(3)}); !errors.Is(err, engine.ErrChannelFull) || !errors.As(err, &pe) || pe.Published != 0 {
			t.Errorf("batch: %v", err)
		}
		held := readAll(t, e, ch)
		checkOnce(t, held, acked)
		if !slices.Equal(held, acked) {
			t.Error("the channel's events are not in publish order")
		}
	})
}

// TestDurableClusterUnreachable: Open with no reachable server fails
// within the store's timeout, even when its context has no deadline, and
// names the URLs.
func TestDurableClusterUnreachable(t *testing.T) {
	ports, err := jstest.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{fmt.Sprintf("nats://127.0.0.1:%d", ports[0]), fmt.Sprintf("nats://127.0.0.1:%d", ports[1])}
	start := time.Now()
	_, err = engine.Open(context.Background(), engine.Config{Durable: &engine.DurableConfig{URLs: urls, Timeout: time.Second}})
	took := time.Since(start)
	if err == nil {
		t.Fatal("opened")
	}
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	if took > 5*time.Second {
		t.Errorf("failing took %v with a timeout of 1s", took)
	}
	for _, w := range append(urls, "durable store", "no server reachable") {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}
