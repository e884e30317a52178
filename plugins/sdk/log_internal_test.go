package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// parseLine reads a line as go-plugin's client does (log_entry.go,
// parseJSON): a JSON object whose "@message", "@level" and "@timestamp"
// are strings, the time in hclog's JSON layout, and a level that
// hclog.LevelFromString knows.
func parseLine(t *testing.T, line string) map[string]any {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, line)
	}
	for _, k := range []string{"@message", "@level", "@timestamp"} {
		if _, ok := rec[k].(string); !ok {
			t.Fatalf("%s is %T, not a string: %s", k, rec[k], line)
		}
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", rec["@timestamp"].(string)); err != nil {
		t.Fatalf("@timestamp: %v", err)
	}
	if l := hclog.LevelFromString(rec["@level"].(string)); l == hclog.NoLevel || l == hclog.Off {
		t.Fatalf("@level %q is not one go-plugin logs at", rec["@level"])
	}
	return rec
}

func testLogger() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(&handler{out: &buf}), &buf
}

func lines(buf *bytes.Buffer) []string {
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func TestLogLevels(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug - 4, "trace"},
		{slog.LevelDebug - 1, "trace"},
		{slog.LevelDebug, "debug"},
		{slog.LevelInfo - 1, "debug"},
		{slog.LevelInfo, "info"},
		{slog.LevelInfo + 2, "info"},
		{slog.LevelWarn, "warn"},
		{slog.LevelError, "error"},
		{slog.LevelError + 4, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			l, buf := testLogger()
			l.Log(t.Context(), tt.level, "m")
			if rec := parseLine(t, buf.String()); rec["@level"] != tt.want {
				t.Errorf("@level = %v, want %s", rec["@level"], tt.want)
			}
		})
	}
}

type text struct{}

func (text) MarshalText() ([]byte, error) { return []byte("as text"), nil }

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.StringValue("resolved") }

func TestLogAttrs(t *testing.T) {
	l, buf := testLogger()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	l = l.With("conn", "in", slog.Group("g", "a", 1)).WithGroup("req").With("id", 7)
	l.Info("line one\nline two <&>",
		"n", 42, "u", uint64(1<<63), "f", 1.5, "nan", 0/zero(), "b", true,
		"d", 1500*time.Millisecond, "t", at, "err", errors.New("bad"),
		"text", text{}, "valuer", valuer{}, "nil", nil, "list", []int{1, 2},
		"@level", "fake", "ch", make(chan int),
		slog.Group("sub", "x", "y"), slog.Group("empty"), slog.Attr{})
	ls := lines(buf)
	if len(ls) != 1 {
		t.Fatalf("%d lines, want 1: %s", len(ls), buf)
	}
	rec := parseLine(t, ls[0])
	want := map[string]any{
		"@level": "info", "@message": "line one\nline two <&>",
		"conn": "in", "g.a": 1.0, "req.id": 7.0,
		"req.n": 42.0, "req.u": float64(1 << 63), "req.f": 1.5, "req.nan": "NaN", "req.b": true,
		"req.d": "1.5s", "req.t": "2026-01-02T03:04:05.000000006Z", "req.err": "bad",
		"req.text": "as text", "req.valuer": "resolved", "req.nil": nil, "req.list": []any{1.0, 2.0},
		"req.sub.x": "y",
	}
	for k, v := range want {
		if got, ok := rec[k]; !ok || !equalJSON(got, v) {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
	if _, ok := rec["_@req.@level"]; ok {
		t.Error("a key that starts with @ inside a group got a _")
	}
	if rec["req.@level"] != "fake" {
		t.Errorf("req.@level = %v, want fake", rec["req.@level"])
	}
	if s, _ := rec["req.ch"].(string); !strings.HasPrefix(s, "0x") {
		t.Errorf("req.ch = %v, want its fmt form", rec["req.ch"])
	}
	if strings.Contains(ls[0], `\u003c`) {
		t.Errorf("HTML characters escaped: %s", ls[0])
	}
	// Keys of the record's order, after the three hclog keys.
	if !strings.HasPrefix(ls[0], `{"@level":"info","@message":`) || strings.Index(ls[0], `"conn"`) > strings.Index(ls[0], `"req.n"`) {
		t.Errorf("keys out of order: %s", ls[0])
	}
}

func zero() float64 { return 0 }

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestLogReservedKeys(t *testing.T) {
	l, buf := testLogger()
	l.Warn("m", "@level", 5, "@message", 1, "@timestamp", true)
	rec := parseLine(t, buf.String())
	if rec["@level"] != "warn" || rec["@message"] != "m" || rec["_@level"] != 5.0 || rec["_@message"] != 1.0 || rec["_@timestamp"] != true {
		t.Errorf("record = %v, want the hclog keys kept and the attributes renamed", rec)
	}
}

func TestLogLongLines(t *testing.T) {
	long := strings.Repeat("é", 40<<10) // 80 KiB
	tests := []struct {
		name      string
		args      []any
		msg       string
		wantAttrs bool
	}{
		{name: "long attribute", msg: "m", args: []any{"a", long, "b", 1}, wantAttrs: true},
		{name: "long message", msg: long, args: []any{"b", 1}, wantAttrs: true},
		{name: "many attributes", msg: "m", args: manyAttrs(200), wantAttrs: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, buf := testLogger()
			l.Error(tt.msg, tt.args...)
			ls := lines(buf)
			if len(ls) != 1 || len(buf.Bytes()) > maxLine {
				t.Fatalf("%d lines of %d bytes, want one of at most %d", len(ls), buf.Len(), maxLine)
			}
			rec := parseLine(t, ls[0])
			if _, ok := rec["b"]; ok != tt.wantAttrs {
				t.Errorf("attributes kept: %v, want %v", ok, tt.wantAttrs)
			}
			if msg := rec["@message"].(string); !strings.HasPrefix(tt.msg, strings.TrimSuffix(msg, "…")) {
				t.Errorf("@message is not a prefix of the message")
			}
		})
	}
}

func manyAttrs(n int) []any {
	var args []any
	for i := range n {
		args = append(args, "k"+strings.Repeat("x", i%10)+string(rune('a'+i%26))+strings.Repeat("y", i), strings.Repeat("v", 1000))
	}
	return args
}

func TestLogConcurrent(t *testing.T) {
	var buf bytes.Buffer
	w := &lockedWriter{w: &buf}
	l := slog.New(&handler{out: w})
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 100 {
				l.Info("m", "g", g, "i", i, "pad", strings.Repeat("x", 5000))
			}
		}()
	}
	for range 8 {
		<-done
	}
	ls := lines(&buf)
	if len(ls) != 800 {
		t.Fatalf("%d lines, want 800", len(ls))
	}
	for _, line := range ls {
		parseLine(t, line)
	}
}
