package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

// startAt starts an embedded server of its own on dir, shut down when the
// test ends.
func startAt(t *testing.T, dir string, o jetstream.Options) *jetstream.Server {
	t.Helper()
	o.StoreDir = dir
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	s, err := jetstream.Start(ctxT(t, 10*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, s) })
	return s
}

func shutdown(t *testing.T, s *jetstream.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

func TestBadStoreDir(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, want string
		mount           bool
	}{
		{name: "empty", dir: "", want: "store directory is required"},
		{name: "a file", dir: file, want: "not a directory"},
		{name: "below a file", dir: filepath.Join(file, "sub"), want: "not a directory"},
		{name: "read-only", dir: filepath.Join(base, "ro", "store"), want: "read-only file system", mount: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.mount {
				mnt := filepath.Dir(tt.dir)
				if err := os.Mkdir(mnt, 0o755); err != nil {
					t.Fatal(err)
				}
				// chmod does not stop root; a read-only tmpfs does.
				if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
					t.Skipf("cannot mount a read-only tmpfs: %v %s", err, out)
				}
				t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
			}
			start := time.Now()
			s, err := jetstream.Start(ctxT(t, 10*time.Second), jetstream.Options{StoreDir: tt.dir})
			if err == nil {
				shutdown(t, s)
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tt.want) || (tt.dir != "" && !strings.Contains(err.Error(), tt.dir)) {
				t.Errorf("error %q should name the directory and contain %q", err, tt.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("failing took %v", d)
			}
		})
	}
}

// TestRestartResume: a durable consumer resumes after its acknowledged
// messages when the server restarts on the same store, and the duplicate
// window survives the restart.
func TestRestartResume(t *testing.T) {
	dir := t.TempDir()
	s := startAt(t, dir, jetstream.Options{})
	ctx := ctxT(t, 20*time.Second)
	st, err := s.Conn().EnsureStream(ctx, "orders", jetstream.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, st, "e", 10, 10)
	// Prefetched, unacknowledged messages come back after the ack wait.
	opts := jetstream.ConsumerOptions{AckPolicy: jetstream.AckAll, AckWait: time.Second}
	c, err := st.Consumer(ctx, "pipeline-a", opts)
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := fetchIDs(t, c, 4, 2*time.Second, false)
	if err := c.AckSync(ctx, ds[:4]); err != nil {
		t.Fatal(err)
	}
	c.Stop()
	shutdown(t, s)

	s2 := startAt(t, dir, jetstream.Options{})
	if err := s2.StoreReport().Err(); err != nil {
		t.Fatalf("clean restart reports %v", err)
	}
	st2, err := s2.Conn().Stream(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	// A different start position does not move an existing consumer.
	opts.Start = jetstream.StartNew()
	c2, err := st2.Consumer(ctx, "pipeline-a", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop()
	_, ids := fetchIDs(t, c2, 6, 3*time.Second, true)
	if len(ids) != 6 || ids[0] != "e-4" || ids[5] != "e-9" {
		t.Fatalf("after restart got %v, want e-4..e-9", ids)
	}
	pa, err := st2.Publish(ctx, jetstream.Msg{ID: "e-3"})
	if err != nil || !pa.Duplicate || pa.Seq != 4 {
		t.Fatalf("republish after restart: %+v %v", pa, err)
	}
}

// TestStoreLimit: a small store quota fails publishes cleanly with
// ErrStoreFull and loses nothing that was acknowledged.
func TestStoreLimit(t *testing.T) {
	s := startAt(t, t.TempDir(), jetstream.Options{MaxStore: 256 << 10})
	ctx := ctxT(t, 20*time.Second)
	st, err := s.Conn().EnsureStream(ctx, "big", jetstream.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var acked uint64
	var full error
	for i := 0; i < 10_000 && full == nil; i++ {
		_, err := st.Publish(ctx, jetstream.Msg{ID: fmt.Sprint(i), Data: make([]byte, 1000)})
		switch {
		case err == nil:
			acked++
		case errors.Is(err, jetstream.ErrStoreFull):
			full = err
		default:
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if full == nil {
		t.Fatal("the quota was never reached")
	}
	t.Logf("after %d messages: %v", acked, full)
	// The batch path reports the same.
	_, err = st.PublishBatch(ctx, []jetstream.Msg{{ID: "b1", Data: make([]byte, 1000)}})
	var be *jetstream.BatchError
	if !errors.As(err, &be) || !errors.Is(err, jetstream.ErrStoreFull) {
		t.Errorf("batch: %v", err)
	}
	in, err := st.Info(ctx)
	if err != nil || in.Msgs != acked || in.LastSeq != acked {
		t.Fatalf("stream holds %d (last %d), %d were acknowledged: %v", in.Msgs, in.LastSeq, acked, err)
	}
	// A stream whose own limit exceeds the quota is refused at creation.
	if _, err := s.Conn().EnsureStream(ctx, "huge", jetstream.StreamOptions{MaxBytes: 1 << 30}); !errors.Is(err, jetstream.ErrStoreFull) {
		t.Errorf("stream beyond the quota: %v", err)
	}
}

// TestDamagedStore: a stream whose metadata is damaged disappears when the
// server starts; the report names it so the engine can refuse to go on.
func TestDamagedStore(t *testing.T) {
	dir := t.TempDir()
	s := startAt(t, dir, jetstream.Options{})
	ctx := ctxT(t, 20*time.Second)
	for _, ch := range []string{"kept", "orders.eu"} {
		st, err := s.Conn().EnsureStream(ctx, ch, jetstream.StreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		publishN(t, st, ch, 5, 10)
	}
	shutdown(t, s)
	meta := filepath.Join(dir, "jetstream", "$G", "streams", jetstream.StreamName("orders.eu"), "meta.inf")
	if err := os.WriteFile(meta, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := startAt(t, dir, jetstream.Options{})
	r := s2.StoreReport()
	err := r.Err()
	if !errors.Is(err, jetstream.ErrDamagedStore) || len(r.Lost) != 1 || r.Lost[0] != "orders.eu" || r.Streams != 2 {
		t.Fatalf("report %+v: %v", r, err)
	}
	if len(r.Warnings) == 0 {
		t.Error("no warning recorded")
	}
	t.Log(err)
	if err := s2.Conn().CheckChannels(ctx, []string{"kept", "orders.eu"}); !errors.Is(err, jetstream.ErrStreamNotFound) || !strings.Contains(err.Error(), "orders.eu") {
		t.Errorf("check channels: %v", err)
	}
}

func TestListen(t *testing.T) {
	s := startAt(t, t.TempDir(), jetstream.Options{Listen: "127.0.0.1:0"})
	if embedded.ClientURL() != "" {
		t.Errorf("the default server listens at %s", embedded.ClientURL())
	}
	url := s.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("client URL %q", url)
	}
	c, err := jetstream.Connect(ctxT(t, 5*time.Second), []string{url}, jetstream.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	st, err := c.EnsureStream(ctxT(t, 5*time.Second), "over-tcp", jetstream.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Publish(ctxT(t, 5*time.Second), jetstream.Msg{ID: "1"}); err != nil {
		t.Fatal(err)
	}
	// The in-process connection sees the same stream.
	if _, err := s.Conn().Stream(ctxT(t, 5*time.Second), "over-tcp"); err != nil {
		t.Fatal(err)
	}
}
