package jetstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

// The package's tests share one embedded server and one 3-node cluster,
// started once in TestMain (the cluster needs about 5 s to elect its meta
// leader).
//
// The cluster nodes are child processes of the nats-server binary built from
// the module version in go.mod (a tool line; "go tool -n nats-server" gives
// the cached binary's path without running it). Processes rather than
// in-process servers because: killing the stream leader with SIGKILL is a
// real crash (no graceful shutdown, no flush), as in production; the
// servers do not run under the race detector, which would slow three
// servers on a small machine; and a cluster that outlives a test panic is
// reaped by Pdeathsig. The embedded server runs in-process, as aegis runs it.

var (
	embedded *jetstream.Server
	cluster  *testCluster
	// backends are the servers every semantic test runs against.
	backends []backend
)

type backend struct {
	name     string
	conn     *jetstream.Conn
	replicas int
}

// eachBackend runs f as a subtest against every backend.
func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	base, err := os.MkdirTemp("", "aegis-jetstream-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(base)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	embedded, err = jetstream.Start(ctx, jetstream.Options{StoreDir: filepath.Join(base, "embedded"), Logger: testLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "embedded server:", err)
		return 1
	}
	defer embedded.Shutdown(context.Background())
	backends = append(backends, backend{name: "embedded", conn: embedded.Conn(), replicas: 1})

	cluster, err = startCluster(ctx, filepath.Join(base, "cluster"))
	if cluster != nil {
		defer cluster.stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	backends = append(backends, backend{name: "cluster", conn: cluster.conn, replicas: 3})
	return m.Run()
}

// testLogger shows server warnings and errors when AEGIS_TEST_NATS_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("AEGIS_TEST_NATS_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testNode struct {
	name string
	args []string
	cmd  *exec.Cmd
	log  bytes.Buffer
	url  string
}

type testCluster struct {
	bin   string
	nodes []*testNode
	urls  []string
	conn  *jetstream.Conn
}

// freePorts reserves n loopback ports and frees them again (a small race,
// acceptable in tests).
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func startCluster(ctx context.Context, dir string) (*testCluster, error) {
	out, err := exec.CommandContext(ctx, "go", "tool", "-n", "nats-server").Output()
	if err != nil {
		return nil, fmt.Errorf("go tool -n nats-server: %w", err)
	}
	c := &testCluster{bin: strings.TrimSpace(string(out))}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3+i]))
	}
	for i := range 3 {
		n := &testNode{name: fmt.Sprintf("n%d", i+1), url: fmt.Sprintf("nats://127.0.0.1:%d", ports[i])}
		n.args = []string{"-js", "-sd", filepath.Join(dir, n.name), "--server_name", n.name,
			"-a", "127.0.0.1", "-p", fmt.Sprint(ports[i]), "--cluster_name", "aegis-test",
			"--cluster", routes[i], "--routes", strings.Join(routes, ",")}
		c.nodes = append(c.nodes, n)
		c.urls = append(c.urls, n.url)
		if err := c.start(n); err != nil {
			return c, err
		}
	}
	c.conn, err = jetstream.Connect(ctx, c.urls, jetstream.ConnectOptions{Name: "aegis-test", Replicas: 3, ReconnectWait: 50 * time.Millisecond})
	if err != nil {
		return c, err
	}
	return c, c.waitHealthy(ctx)
}

// waitHealthy waits until an R3 stream can be created and used: the meta
// leader answers before every peer is known, and again after a node
// rejoins.
func (c *testCluster) waitHealthy(ctx context.Context) error {
	for {
		st, err := c.conn.EnsureStream(ctx, "warmup", jetstream.StreamOptions{Replicas: 3})
		if err == nil {
			_, err = st.Publish(ctx, jetstream.Msg{})
		}
		if err == nil {
			return c.conn.DeleteStream(ctx, "warmup")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("R3 stream not possible: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *testCluster) start(n *testNode) error {
	n.log.Reset()
	n.cmd = exec.Command(c.bin, n.args...)
	n.cmd.Stdout, n.cmd.Stderr = &n.log, &n.log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("node[%s]: %w", n.name, err)
	}
	return nil
}

// kill crashes a node (SIGKILL) and reaps it.
func (c *testCluster) kill(n *testNode) {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	_ = n.cmd.Wait()
	n.cmd = nil
}

func (c *testCluster) node(name string) *testNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (c *testCluster) stop() {
	if c.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c.conn.Close(ctx)
		cancel()
	}
	for _, n := range c.nodes {
		c.kill(n)
	}
}

// channel is a channel name unique to the test (t.Name contains '/', which
// the stream name encoding has to handle).
func channel(t *testing.T) string { return "t." + t.Name() }

// ensure creates the test's stream and deletes it when the test ends.
func ensure(t *testing.T, b backend, name string, o jetstream.StreamOptions) *jetstream.Stream {
	t.Helper()
	if o.Replicas == 0 {
		o.Replicas = b.replicas
	}
	st, err := b.conn.EnsureStream(ctxT(t, 10*time.Second), name, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.conn.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Logf("cleanup: %v", err)
		}
	})
	return st
}

// ctxT is a context that ends with the test or after d.
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
