package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
	"github.com/aegis-streaming/aegis/internal/jstest"
)

// restart starts a killed node again and waits until the cluster is
// healthy, every node current: a node that rejoins catches up for a while,
// and the tests after this one should start from a settled cluster.
func restart(t *testing.T, n *jstest.Node) {
	t.Helper()
	if err := cluster.Restart(n); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cluster.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// This file sorts last (go test runs files in name order) so that, with
// -count=1, the package's other tests run before any node is killed.

// TestClusterLeaderKill crashes the stream leader (SIGKILL) while events are
// published: every acknowledged event is in the stream exactly once, with
// retries under the same ID made safe by the duplicate window.
func TestClusterLeaderKill(t *testing.T) {
	b := backends[1]
	name := channel(t)
	st := ensure(t, b, name, jetstream.StreamOptions{})
	ctx := ctxT(t, 40*time.Second)
	const total = 600
	acked := map[string]uint64{}
	var killed *jstest.Node
	retries := 0
	for i := range total {
		if i == total/3 {
			in, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			killed = cluster.Node(in.Leader)
			t.Logf("killing stream leader %s at event %d", in.Leader, i)
			cluster.Kill(killed)
			t.Cleanup(func() { restart(t, killed) })
		}
		id := fmt.Sprintf("ev-%04d", i)
		for {
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			pa, err := st.Publish(pctx, jetstream.Msg{ID: id, Data: []byte(id)})
			cancel()
			if err == nil {
				acked[id] = pa.Seq
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("publish %s: %v", id, err)
			}
			retries++
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("%d retries", retries)
	// Bring the node back; later tests need three peers for R3 streams.
	restart(t, killed)
	for {
		in, err := st.Info(ctx)
		if err == nil && in.Replicas == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("node %s did not rejoin: %v", killed.Name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Read everything back.
	var c *jetstream.Consumer
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		c, err = st.Consumer(cctx, "verify", jetstream.ConsumerOptions{AckPolicy: jetstream.AckAll})
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
	}
	defer c.Stop()
	ds, _ := fetchIDs(t, c, total+10, 3*time.Second, true)
	seen := map[string]int{}
	for _, d := range ds {
		seen[d.ID]++
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Errorf("%s is in the stream %d times", id, seen[id])
		}
	}
	if len(seen) != total {
		t.Errorf("%d distinct events in the stream, want %d", len(seen), total)
	}
}

// TestConnectUnreachable: no server reachable fails clearly within the
// context's deadline, naming the URLs.
func TestConnectUnreachable(t *testing.T) {
	ports, err := jstest.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{fmt.Sprintf("nats://127.0.0.1:%d", ports[0]), fmt.Sprintf("nats://127.0.0.1:%d", ports[1])}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = jetstream.Connect(ctx, urls, jetstream.ConnectOptions{})
	if err == nil {
		t.Fatal("connected")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("failing took %v", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), urls[0]) || !strings.Contains(err.Error(), "no server reachable") {
		t.Errorf("error %q", err)
	}
	t.Log(err)
}
