package jstest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/internal/jstest"
	"github.com/nats-io/nats.go"
)

func TestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c, err := jstest.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if urls := c.URLs(); len(urls) != jstest.Size || !strings.HasPrefix(urls[0], "nats://127.0.0.1:") {
		t.Fatalf("urls %v", urls)
	}
	n := c.Node("n2")
	if n == nil || !n.Running() || c.Node("n9") != nil {
		t.Fatalf("node n2: %+v", n)
	}
	if !strings.Contains(n.Log(), "Server is ready") {
		t.Errorf("log of n2:\n%s", n.Log())
	}

	// A crashed node is down; the others serve; a restart rejoins.
	c.Kill(n)
	if n.Running() {
		t.Fatal("killed node is running")
	}
	nc, err := nats.Connect(n.URL, nats.MaxReconnects(0))
	if err == nil {
		nc.Close()
		t.Fatal("connected to a killed node")
	}
	if err := c.Restart(n); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err = nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()

	// Everything down: WaitReady says which node.
	c.Stop()
	wctx, wcancel := context.WithTimeout(ctx, time.Second)
	defer wcancel()
	if err := c.WaitReady(wctx); err == nil || !strings.Contains(err.Error(), "node[n1] is not running") {
		t.Errorf("WaitReady with every node down: %v", err)
	}
}
