package plugins_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/plugintest"
	"github.com/aegis-streaming/aegis/plugins"
)

// config is a test connector's configuration, as JSON.
func config(t *testing.T, kv map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(kv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logs collects the host's log records.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logs) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testConfig runs the test connector connector ("source" or "sink") as
// name, with short timeouts and backoff.
func testConfig(t *testing.T, name, connector string, kv map[string]any) plugins.Config {
	return plugins.Config{
		Name:       name,
		Path:       plugintest.Path(t, "connectors/"+connector),
		Config:     config(t, kv),
		Timeout:    5 * time.Second,
		Backoff:    10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
		Logger:     slog.New(slog.DiscardHandler),
	}
}

func sourceConfig(t *testing.T, kv map[string]any) plugins.Config {
	return testConfig(t, "numbers", "source", kv)
}

// collect is a sink that keeps the numbers of the events it is given.
type collect struct {
	mu   sync.Mutex
	nums []int64
	ids  map[engine.EventID]int
}

func (c *collect) Write(_ context.Context, events []engine.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		c.ids = map[engine.EventID]int{}
	}
	for _, e := range events {
		n, ok := e.Data.AsInt()
		if !ok {
			return fmt.Errorf("event %s: data %v is not an int", e.ID, e.Data)
		}
		c.nums = append(c.nums, n)
		c.ids[e.ID]++
	}
	return nil
}

func (c *collect) Close() error { return nil }

func (c *collect) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nums)
}

// exactly checks that the sink got events from..to-1, each once, in order.
func (c *collect) exactly(t *testing.T, from, to int64) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	want := make([]int64, 0, to-from)
	for i := from; i < to; i++ {
		want = append(want, i)
	}
	if !slices.Equal(c.nums, want) {
		t.Fatalf("got %d events %v..., want %d..%d once each, in order", len(c.nums), head(c.nums), from, to-1)
	}
	for id, n := range c.ids {
		if n != 1 {
			t.Fatalf("event %s came %d times", id, n)
		}
	}
}

func head(n []int64) []int64 { return n[:min(len(n), 20)] }

// run runs a pipeline from src to sink until src ends, or until stop
// (when set) says so.
func run(t *testing.T, src engine.Source, sink engine.Sink, stop func() bool) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p, err := engine.NewPipeline(engine.PipelineConfig{Name: "test", Source: src, Sinks: []engine.Sink{sink},
		MaxBatch: 100, MaxWait: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case err := <-done:
			return err
		case <-deadline:
			t.Fatal("the pipeline did not end")
		case <-time.After(5 * time.Millisecond):
			if stop != nil && stop() {
				cancel()
				stop = nil
			}
		}
	}
}

// storedIndex reads the index a position file holds.
func storedIndex(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Position []byte }
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Position) != 8 {
		t.Fatalf("position file %s: %q (%v)", path, b, err)
	}
	return binary.BigEndian.Uint64(doc.Position)
}

func TestSourceReadsAcksAndResumes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := sourceConfig(t, map[string]any{"count": 5000, "acks_file": filepath.Join(dir, "acks")})
	cfg.PositionFile = filepath.Join(dir, "state", "numbers.position")

	// A first run stopped part way: every event it read went through,
	// and its position is stored.
	src, err := plugins.NewSource(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := &collect{}
	if err := run(t, src, first, func() bool { return first.len() >= 1000 }); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	n := int64(first.len())
	first.exactly(t, 0, n)
	if got := storedIndex(t, cfg.PositionFile); got != uint64(n) {
		t.Fatalf("stored position %d, want %d", got, n)
	}
	// The connector was told too.
	if b, err := os.ReadFile(filepath.Join(dir, "acks")); err != nil || strings.TrimSpace(string(b)) != strconv.FormatInt(n, 10) {
		t.Fatalf("the connector's last ack: %q (%v), want %d", b, err, n)
	}

	// The next run starts after it, and reads to the end.
	src, err = plugins.NewSource(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	second := &collect{}
	if err := run(t, src, second, nil); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	second.exactly(t, n, 5000)
	if got := storedIndex(t, cfg.PositionFile); got != 5000 {
		t.Fatalf("stored position %d, want 5000", got)
	}
}

func TestSourceRestarts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		kv   map[string]any
	}{
		{"crash", map[string]any{"crash_after": 1500}},
		{"hang", map[string]any{"hang_after": 700}},
		{"malformed", map[string]any{"malformed_after": 2500}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.kv["count"] = 3000
			tc.kv["once_file"] = filepath.Join(dir, "once")
			cfg := sourceConfig(t, tc.kv)
			cfg.Timeout = 500 * time.Millisecond
			var l logs
			cfg.Logger = l.logger()
			src, err := plugins.NewSource(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			got := &collect{}
			if err := run(t, src, got, nil); err != nil {
				t.Fatal(err)
			}
			// Restarted after the last events received: each event once.
			got.exactly(t, 0, 3000)
			if r := src.Restarts(); r != 1 {
				t.Errorf("%d restarts, want 1", r)
			}
			if !strings.Contains(l.String(), "connector restarted") || !strings.Contains(l.String(), "connector=numbers") {
				t.Errorf("the log does not say that the connector restarted:\n%s", l.String())
			}
		})
	}
}

func TestSourceGivesUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		kv   map[string]any
		want string
	}{
		{"crash", map[string]any{"crash_after": 10}, "the connector exited"},
		{"hang", map[string]any{"hang_after": 10}, "the connector hangs"},
		{"malformed", map[string]any{"malformed_after": 10}, "event 0 of 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Without once_file, the connector fails every time.
			tc.kv["count"] = 100
			tc.kv["batch"] = 1
			cfg := sourceConfig(t, tc.kv)
			cfg.Timeout = 300 * time.Millisecond
			cfg.MaxRestarts = 2
			src, err := plugins.NewSource(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			got := &collect{}
			err = run(t, src, got, nil)
			if err == nil || !strings.Contains(err.Error(), "connector[numbers]") || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "3 failures in a row") {
				t.Fatalf("err %v, want connector[numbers], %q and 3 failures in a row", err, tc.want)
			}
			// What came before the failures went through, once.
			got.exactly(t, 0, 10)
			if r := src.Restarts(); r != 2 {
				t.Errorf("%d restarts, want 2 (%v)", r, err)
			}
		})
	}
}

func TestSourceBadStart(t *testing.T) {
	t.Parallel()
	script := filepath.Join(t.TempDir(), "not-a-connector")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  func(*plugins.Config)
		want string
	}{
		{"bad config", func(c *plugins.Config) { c.Config = []byte(`{"fail_configure": "count must be positive"}`) },
			"the connector refused its configuration: count must be positive"},
		{"unknown key", func(c *plugins.Config) { c.Config = []byte(`{"cuont": 3}`) }, "cuont"},
		{"not a connector", func(c *plugins.Config) { c.Path = script }, "start " + script},
		{"missing", func(c *plugins.Config) { c.Path = script + "-gone" }, "no such file"},
		{"sha256", func(c *plugins.Config) { c.SHA256 = strings.Repeat("ab", 32) }, "the manifest pins " + strings.Repeat("ab", 32)},
		{"unwritable position", func(c *plugins.Config) { c.PositionFile = "/proc/aegis/numbers.position" }, "position file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sourceConfig(t, map[string]any{"count": 10})
			cfg.Timeout = 2 * time.Second
			tc.cfg(&cfg)
			start := time.Now()
			src, err := plugins.NewSource(t.Context(), cfg)
			if err == nil {
				src.Close()
				t.Fatal("the source started")
			}
			if !strings.Contains(err.Error(), "connector[numbers]") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want connector[numbers] and %q", err, tc.want)
			}
			// Not retried.
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestSourceLogs(t *testing.T) {
	t.Parallel()
	var l logs
	cfg := sourceConfig(t, map[string]any{"count": 10, "log": "hello from the connector"})
	cfg.Logger = l.logger()
	src, err := plugins.NewSource(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(t, src, &collect{}, nil); err != nil {
		t.Fatal(err)
	}
	src.Close()
	var sdk, stderr bool
	for _, line := range strings.Split(l.String(), "\n") {
		if !strings.Contains(line, "hello from the connector") || !strings.Contains(line, "connector=numbers") {
			continue
		}
		if strings.Contains(line, "level=INFO") && strings.Contains(line, "stream=stderr") {
			stderr = true
		} else if strings.Contains(line, "level=INFO") {
			sdk = true
		}
	}
	if !sdk || !stderr {
		t.Fatalf("want the connector's log line (%v) and its stderr line (%v) in the host's log:\n%s", sdk, stderr, l.String())
	}
}

func TestSourceResponseTooLarge(t *testing.T) {
	t.Parallel()
	// 100 events of 1 MiB in one answer: over the 64 MiB a message may
	// hold. The connector is not restarted (it would do the same again):
	// the error says what to do.
	cfg := sourceConfig(t, map[string]any{"count": 100, "payload_bytes": 1 << 20})
	src, err := plugins.NewSource(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = src.Read(t.Context(), nil, 100)
	if err == nil || !strings.Contains(err.Error(), "connector[numbers]: read:") || !strings.Contains(err.Error(), "a source must return fewer events at a time") {
		t.Fatalf("err %v", err)
	}
	if r := src.Restarts(); r != 0 {
		t.Errorf("%d restarts", r)
	}
}
