// Package jstest starts a 3-node NATS JetStream cluster for tests, on
// loopback ports, with its store in a directory the caller owns.
//
// The nodes are child processes of the nats-server binary built from the
// module version in go.mod (a tool line; "go tool -n nats-server" gives the
// cached binary's path without running it). Processes rather than
// in-process servers because: killing a node with SIGKILL is a real crash
// (no graceful shutdown, no flush), as in production; the servers do not
// run under the race detector, which would slow three servers on a small
// machine; and on Linux a cluster that outlives a test panic is reaped by
// the parent-death signal.
//
// A package's tests share one cluster, started in TestMain (a new cluster
// needs a few seconds to elect its meta leader), and use names unique to
// each test for what they create in it.
package jstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Size is the number of nodes of a cluster.
const Size = 3

// Cluster is a running cluster. Its methods are meant for one goroutine
// (the test's).
type Cluster struct {
	dir   string
	bin   string
	nodes []*Node
}

// Node is one server of a [Cluster].
type Node struct {
	// Name is the server's name (n1, n2, n3): the name that stream and
	// meta leaders are reported by.
	Name string
	// URL is the node's client URL ("nats://127.0.0.1:port"); it stays
	// the same across restarts.
	URL string

	monitor string // "http://127.0.0.1:port"
	args    []string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has ended
}

// FreePorts reserves n loopback ports and frees them again: a small race
// with other processes, acceptable in tests.
func FreePorts(n int) ([]int, error) {
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

// serverBinary is the path of the nats-server binary, built once per
// process. On a cold build cache the build takes minutes on a small
// machine, longer than a cluster's start may: it has its own, generous
// deadline rather than Start's (the test task builds it before the tests,
// so this is a fallback).
var serverBinary = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "-n", "nats-server").Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n nats-server: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
})

// Start starts a cluster of [Size] nodes with their stores and logs under
// dir, and waits, until ctx is done, until it is [Cluster.WaitReady]. On
// failure it stops what it started and the error ends with the log of the
// node that failed, when one did.
func Start(ctx context.Context, dir string) (*Cluster, error) {
	bin, err := serverBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin}
	ports, err := FreePorts(3 * Size)
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := range Size {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[Size+i]))
	}
	for i := range Size {
		n := &Node{
			Name:    fmt.Sprintf("n%d", i+1),
			URL:     fmt.Sprintf("nats://127.0.0.1:%d", ports[i]),
			monitor: fmt.Sprintf("http://127.0.0.1:%d", ports[2*Size+i]),
		}
		n.logPath = filepath.Join(dir, n.Name+".log")
		n.args = []string{"-js", "-sd", filepath.Join(dir, n.Name), "--server_name", n.Name,
			"-a", "127.0.0.1", "-p", fmt.Sprint(ports[i]), "-m", fmt.Sprint(ports[2*Size+i]),
			"--cluster_name", "aegis-test", "--cluster", routes[i], "--routes", strings.Join(routes, ",")}
		c.nodes = append(c.nodes, n)
		if err := c.Restart(n); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// URLs are the nodes' client URLs.
func (c *Cluster) URLs() []string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, n.URL)
	}
	return urls
}

// Nodes are the cluster's nodes, running or not.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns the node called name (as a stream's leader is reported), or
// nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Running reports whether the node's process is running.
func (n *Node) Running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Log returns the last 4 KiB of the node's log (all its runs).
func (n *Node) Log() string {
	f, err := os.Open(n.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 4096 {
		_, _ = f.Seek(-4096, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// Kill crashes the node (SIGKILL) and waits for its process to end. A
// node that is not running is left alone.
func (c *Cluster) Kill(n *Node) {
	if !n.Running() {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.exited
}

// Restart starts a node that is not running (killed, or never started)
// with its store as it was; it does not wait for it to rejoin (see
// [Cluster.WaitReady]). A running node is left alone.
func (c *Cluster) Restart(n *Node) error {
	if n.Running() {
		return nil
	}
	log, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(c.bin, n.args...)
	cmd.Stdout, cmd.Stderr = log, log
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("node[%s]: %w", n.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	n.cmd, n.exited = cmd, exited
	return nil
}

// Stop kills every node. The stores stay in the directory.
func (c *Cluster) Stop() {
	for _, n := range c.nodes {
		c.Kill(n)
	}
}

// WaitReady waits, until ctx is done, until every node is running and
// healthy (its /healthz endpoint: in contact with the meta leader, current
// with it, and every stream and consumer replica it holds current), and a
// stream with [Size] replicas can be created and written. After a restart
// a node rejoins within seconds, but until it is current an operation that
// needs it, or a leader election it disturbs, can stall; tests that kill
// or restart nodes call it before they go on. The error names the first
// node that is not healthy and ends with its log.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for _, n := range c.nodes {
		if err := c.waitHealthy(ctx, n); err != nil {
			return err
		}
	}
	return c.warmup(ctx)
}

func (c *Cluster) waitHealthy(ctx context.Context, n *Node) error {
	var last string
	for {
		if !n.Running() {
			return fmt.Errorf("node[%s] is not running; its log:\n%s", n.Name, n.Log())
		}
		ok, why := health(ctx, n)
		if ok {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("node[%s] not healthy: %w (last: %s); its log:\n%s", n.Name, ctx.Err(), last, n.Log())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// health asks a node's /healthz.
func health(ctx context.Context, n *Node) (ok bool, why string) {
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(hctx, http.MethodGet, n.monitor+"/healthz", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK, strings.TrimSpace(string(b))
}

// warmup creates, writes and deletes a stream with Size replicas.
func (c *Cluster) warmup(ctx context.Context) error {
	nc, err := nats.Connect(strings.Join(c.URLs(), ","), nats.Name("jstest"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cfg := jetstream.StreamConfig{Name: "JSTEST_WARMUP", Subjects: []string{"jstest.warmup"}, Replicas: Size}
	for {
		err = func() error {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if _, err := js.CreateOrUpdateStream(actx, cfg); err != nil {
				return err
			}
			if _, err := js.Publish(actx, "jstest.warmup", nil); err != nil {
				return err
			}
			return js.DeleteStream(actx, cfg.Name)
		}()
		if err == nil || errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("a stream with %d replicas is not possible: %w (last: %v)", Size, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
