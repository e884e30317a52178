package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// openTail configures and opens a tail source on a file holding content.
func openTail(t *testing.T, content, config string, position []byte) (*tail, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	src := &tail{}
	cfg := `{"path": ` + quote(path)
	if config != "" {
		cfg += ", " + config
	}
	if err := src.Configure(t.Context(), "lines", []byte(cfg+"}")); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if err := src.Open(t.Context(), position); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { src.Close(context.Background()) })
	return src, path
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func offset(position []byte) int64 {
	if len(position) != 8 {
		return -1
	}
	return int64(binary.BigEndian.Uint64(position))
}

func offsetAt(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

// strs are the events' data, as strings.
func strs(events []engine.Event) []string {
	var out []string
	for _, e := range events {
		if s, ok := e.Data.AsString(); ok {
			out = append(out, s)
		} else {
			out = append(out, e.Data.String())
		}
	}
	return out
}

type read struct {
	lines  []string
	offset int64
	eof    bool
}

// readAll reads until the end, max events at a time.
func readAll(t *testing.T, src *tail, max int) []read {
	t.Helper()
	var reads []read
	for range 100 {
		events, pos, err := src.Read(t.Context(), max)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("Read: %v", err)
		}
		reads = append(reads, read{strs(events), offset(pos), err != nil})
		if err != nil {
			return reads
		}
	}
	t.Fatal("no end after 100 reads")
	return nil
}

func TestTailOffsets(t *testing.T) {
	tests := []struct {
		name     string
		content  string
		config   string
		position []byte
		max      int
		want     []read
	}{
		{name: "lines", content: "a\nbb\nccc\n", max: 2, want: []read{
			{[]string{"a", "bb"}, 5, false}, {[]string{"ccc"}, 9, true},
		}},
		{name: "resume", content: "a\nbb\nccc\n", position: offsetAt(2), max: 10, want: []read{
			{[]string{"bb", "ccc"}, 9, true},
		}},
		{name: "batch ends at the end", content: "a\nb\n", max: 2, want: []read{
			{[]string{"a", "b"}, 4, false}, {nil, 4, true},
		}},
		{name: "last line without newline, one at a time", content: "a\nb", max: 1, want: []read{
			{[]string{"a"}, 2, false}, {[]string{"b"}, 3, true},
		}},
		{name: "resume at the end", content: "a\n", position: offsetAt(2), max: 10, want: []read{{nil, 2, true}}},
		{name: "crlf and empty lines", content: "a\r\n\nb\n", max: 10, want: []read{
			{[]string{"a", "", "b"}, 6, true},
		}},
		{name: "last line without newline", content: "a\nb", max: 10, want: []read{
			{[]string{"a", "b"}, 3, true},
		}},
		{name: "json", content: "{\"n\":1}\n\n  \n[2]\n", config: `"json": true`, max: 10, want: []read{
			{[]string{`{"n":1}`, `[2]`}, 16, true},
		}},
		{name: "empty", content: "", max: 10, want: []read{{nil, 0, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, _ := openTail(t, tt.content, tt.config, tt.position)
			got := readAll(t, src, tt.max)
			if len(got) != len(tt.want) {
				t.Fatalf("reads = %v, want %v", got, tt.want)
			}
			for i := range got {
				if strings.Join(got[i].lines, "|") != strings.Join(tt.want[i].lines, "|") ||
					got[i].offset != tt.want[i].offset || got[i].eof != tt.want[i].eof {
					t.Errorf("read %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestTailResumeEveryOffset: opened at the position after any line, the
// tail reads exactly the lines after it.
func TestTailResumeEveryOffset(t *testing.T) {
	content := "one\ntwo\nthree\nfour\n"
	lines := strings.SplitAfter(content, "\n")
	var at int64
	for i, l := range lines {
		src, _ := openTail(t, content, "", offsetAt(at))
		var got []string
		for _, r := range readAll(t, src, 1) {
			got = append(got, r.lines...)
		}
		want := strings.Fields(strings.Join(lines[i:], " "))
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("at offset %d: %q, want %q", at, got, want)
		}
		at += int64(len(l))
	}
}

func TestTailEvents(t *testing.T) {
	src, path := openTail(t, "{\"a\":1}\n", `"json": true, "type": "order.received"`, nil)
	events, _, err := src.Read(t.Context(), 1)
	if err != nil || len(events) != 1 {
		t.Fatalf("Read = %v, %v", events, err)
	}
	e := events[0]
	if e.Type != "order.received" || e.Source != path || e.Data.Kind() != engine.KindJSON || !e.ID.IsZero() || e.Time != 0 {
		t.Errorf("event = %+v, want order.received from %s with JSON data, no ID and no time", e, path)
	}
	if err := e.Validate(); err != nil {
		t.Error(err)
	}
}

func TestTailBadJSON(t *testing.T) {
	src, _ := openTail(t, "{\"a\":1}\nnot json\n[3]\n", `"json": true`, nil)
	events, pos, err := src.Read(t.Context(), 10)
	if err != nil || len(events) != 1 || offset(pos) != 8 {
		t.Fatalf("Read = %d events at %d, %v; want the line before the bad one", len(events), offset(pos), err)
	}
	if _, _, err := src.Read(t.Context(), 10); err == nil || !strings.Contains(err.Error(), "offset 8") {
		t.Errorf("Read of the bad line = %v, want an error naming offset 8", err)
	}
}

// TestTailFollow: in follow mode, a last line without its newline is not
// read until it has one, and a Read waiting for lines returns when one is
// appended, or with nothing when its context is done.
func TestTailFollow(t *testing.T) {
	src, path := openTail(t, "a\nb", `"follow": true, "poll": "5ms"`, nil)
	events, pos, err := src.Read(t.Context(), 10)
	if err != nil || strings.Join(strs(events), "|") != "a" || offset(pos) != 2 {
		t.Fatalf("Read = %q at %d, %v; want a at 2", strs(events), offset(pos), err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	events, pos, err = src.Read(ctx, 10)
	if err != nil || len(events) != 0 || pos != nil {
		t.Fatalf("Read of a partial line = %q, %x, %v; want nothing", strs(events), pos, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(20 * time.Millisecond)
		f.WriteString("c")
		time.Sleep(20 * time.Millisecond)
		f.WriteString("d\ne\n")
	}()
	events, pos, err = src.Read(t.Context(), 1)
	<-done
	if err != nil || strings.Join(strs(events), "|") != "bcd" || offset(pos) != 6 {
		t.Fatalf("Read = %q at %d, %v; want bcd at 6", strs(events), offset(pos), err)
	}
	events, pos, err = src.Read(t.Context(), 10)
	if err != nil || strings.Join(strs(events), "|") != "e" || offset(pos) != 8 {
		t.Fatalf("Read = %q at %d, %v; want e at 8", strs(events), offset(pos), err)
	}
}

func TestTailConfigure(t *testing.T) {
	tests := []struct{ name, config, want string }{
		{"no path", `{}`, "path is required"},
		{"unknown key", `{"path": "x", "folow": true}`, `unknown field "folow"`},
		{"bad type", `{"path": "x", "type": "a b"}`, "type"},
		{"bad poll", `{"path": "x", "poll": "often"}`, "poll"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&tail{}).Configure(t.Context(), "lines", []byte(tt.config))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Configure = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestTailOpenPastTheEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(path, []byte("a\n"), 0o644)
	src := &tail{}
	if err := src.Configure(t.Context(), "lines", []byte(`{"path": `+quote(path)+`}`)); err != nil {
		t.Fatal(err)
	}
	if err := src.Open(t.Context(), offsetAt(10)); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("Open past the end = %v, want an error", err)
	}
}

func TestJSONL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	sink := &jsonl{}
	ctx := t.Context()
	if err := sink.Configure(ctx, "out", []byte(`{"path": `+quote(path)+`}`)); err != nil {
		t.Fatal(err)
	}
	if err := sink.Open(ctx); err != nil {
		t.Fatal(err)
	}
	in := []engine.Event{
		engine.NewEvent("order.created", "shop", engine.MustJSONData(`{"id":"ord-1"}`)),
		engine.NewEvent("order.paid", "shop", engine.StringData("ord-2")),
	}
	for i := range in {
		if err := sink.Write(ctx, in[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != len(in) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(in), b)
	}
	for i, line := range lines {
		var e engine.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e.ID != in[i].ID || e.Type != in[i].Type || !e.Data.Equal(in[i].Data) {
			t.Errorf("line %d = %+v, want %+v", i, e, in[i])
		}
	}
	if err := (&jsonl{}).Configure(ctx, "out", []byte(`{}`)); err == nil {
		t.Error("Configure without a path succeeded")
	}
}
