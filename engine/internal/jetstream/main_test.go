package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
	"github.com/aegis-streaming/aegis/internal/jstest"
)

// The package's tests share one embedded server and one 3-node cluster
// (internal/jstest: nats-server child processes), started once in TestMain.
// The embedded server runs in-process, as aegis runs it.

var (
	embedded *jetstream.Server
	cluster  *jstest.Cluster
	// clusterConn is the connection to the cluster.
	clusterConn *jetstream.Conn
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

	cluster, err = jstest.Start(ctx, filepath.Join(base, "cluster"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	defer cluster.Stop()
	clusterConn, err = jetstream.Connect(ctx, cluster.URLs(), jetstream.ConnectOptions{Name: "aegis-test", Replicas: 3, ReconnectWait: 50 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		clusterConn.Close(ctx)
	}()
	backends = append(backends, backend{name: "cluster", conn: clusterConn, replicas: 3})
	return m.Run()
}

// testLogger shows server and connection warnings and errors when
// AEGIS_TEST_NATS_LOG is set, and everything when it is "debug".
func testLogger() *slog.Logger {
	level := slog.LevelWarn
	switch os.Getenv("AEGIS_TEST_NATS_LOG") {
	case "":
		return nil
	case "debug":
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
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
