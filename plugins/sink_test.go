package plugins_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/plugintest"
	"github.com/aegis-streaming/aegis/plugins"
)

func sinkConfig(t *testing.T, kv map[string]any) plugins.Config {
	return testConfig(t, "out", "sink", kv)
}

func numbers(from, to int64) []engine.Event {
	out := make([]engine.Event, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, engine.NewEvent("test.count", "test", engine.IntData(i)))
	}
	return out
}

// written reads the numbers of the events a sink wrote to path, and how
// many times each came.
func written(t *testing.T, path string) (nums []int64, seen map[int64]int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen = map[int64]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e engine.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %q: %v", path, sc.Text(), err)
		}
		n, _ := e.Data.AsInt()
		nums = append(nums, n)
		seen[n]++
	}
	return nums, seen
}

// writeAll writes events 0..n-1 in batches of 100.
func writeAll(t *testing.T, s *plugins.Sink, n int64) error {
	for i := int64(0); i < n; i += 100 {
		if err := s.Write(t.Context(), numbers(i, min(i+100, n))); err != nil {
			return err
		}
	}
	return nil
}

func TestSink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		kv       map[string]any
		restarts uint64
		atLeast  bool // a batch may have been written twice
	}{
		{name: "plain"},
		{name: "crash", kv: map[string]any{"crash_after": 450}, restarts: 1, atLeast: true},
		{name: "hang", kv: map[string]any{"hang_after": 250}, restarts: 1, atLeast: true},
		{name: "retryable", kv: map[string]any{"retryable_failures": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			kv := map[string]any{"path": filepath.Join(dir, "out.jsonl"), "once_file": filepath.Join(dir, "once")}
			for k, v := range tc.kv {
				kv[k] = v
			}
			if tc.kv == nil {
				delete(kv, "once_file")
			}
			cfg := sinkConfig(t, kv)
			cfg.Timeout = 500 * time.Millisecond
			s, err := plugins.NewSink(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeAll(t, s, 1000); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if r := s.Restarts(); r != tc.restarts {
				t.Errorf("%d restarts, want %d", r, tc.restarts)
			}
			nums, seen := written(t, kv["path"].(string))
			for i := int64(0); i < 1000; i++ {
				if seen[i] == 0 {
					t.Fatalf("event %d was not written", i)
				}
				if seen[i] > 1 && !tc.atLeast {
					t.Fatalf("event %d was written %d times", i, seen[i])
				}
			}
			if !tc.atLeast && len(nums) != 1000 {
				t.Fatalf("%d events written, want 1000", len(nums))
			}
		})
	}
}

func TestSinkFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		kv   map[string]any
		want string
	}{
		{"write error", map[string]any{"path": filepath.Join(dir, "a"), "fail_write": "the bucket is gone"}, "write: the bucket is gone"},
		{"crashes", map[string]any{"path": filepath.Join(dir, "b"), "crash_after": 0}, "3 failures in a row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sinkConfig(t, tc.kv)
			cfg.MaxRestarts = 2
			s, err := plugins.NewSink(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Write(t.Context(), numbers(0, 10))
			if err == nil || !strings.Contains(err.Error(), "connector[out]") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want connector[out] and %q", err, tc.want)
			}
		})
	}

	// A missing path is a configuration the connector refuses.
	_, err := plugins.NewSink(t.Context(), sinkConfig(t, map[string]any{}))
	if err == nil || !strings.Contains(err.Error(), "refused its configuration") {
		t.Fatalf("err %v, want a refused configuration", err)
	}
	// A binary that serves no sink.
	cfg := sinkConfig(t, map[string]any{"path": filepath.Join(dir, "c")})
	cfg.Path = plugintest.Path(t, "connectors/source")
	if _, err := plugins.NewSink(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "serves no sink") {
		t.Fatalf("err %v, want serves no sink", err)
	}
}

func TestSinkSplitsLargeBatches(t *testing.T) {
	t.Parallel()
	// 36 events of 1 MiB: more than the half of a message's limit that the
	// host sends at a time, so the batch goes in two writes, in order.
	dir := t.TempDir()
	s, err := plugins.NewSink(t.Context(), sinkConfig(t, map[string]any{"path": filepath.Join(dir, "out.jsonl")}))
	if err != nil {
		t.Fatal(err)
	}
	events := make([]engine.Event, 36)
	for i := range events {
		b := make([]byte, 1<<20)
		b[0] = byte(i)
		events[i] = engine.NewEvent("test.big", "test", engine.BytesData(b))
	}
	if err := s.Write(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "out.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	i := 0
	for ; sc.Scan(); i++ {
		var e engine.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if b, _ := e.Data.AsBytes(); len(b) != 1<<20 || b[0] != byte(i) || e.ID != events[i].ID {
			t.Fatalf("line %d is not event %d", i, i)
		}
	}
	if sc.Err() != nil || i != len(events) {
		t.Fatalf("%d events written (%v), want %d", i, sc.Err(), len(events))
	}
}
