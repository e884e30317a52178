package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// plReadAll reads src in small batches until it ends; the error is nil at
// io.EOF.
func plReadAll(ctx context.Context, src engine.Source) ([]engine.Event, error) {
	var out []engine.Event
	for {
		var err error
		out, err = src.Read(ctx, out, 3)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func plSameEvent(a, b engine.Event) bool {
	return a.ID == b.ID && a.Type == b.Type && a.Source == b.Source && a.Time == b.Time &&
		a.Data.Equal(b.Data) && fmt.Sprint(a.Metadata) == fmt.Sprint(b.Metadata)
}

func TestGeneratorCount(t *testing.T) {
	t.Parallel()
	g := plGenerator(10)
	ctx := t.Context()
	var sizes []int
	var all []engine.Event
	for {
		n := len(all)
		var err error
		all, err = g.Read(ctx, all, 4)
		sizes = append(sizes, len(all)-n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(sizes, []int{4, 4, 2}) {
		t.Errorf("read sizes %v, want [4 4 2] with io.EOF on the last", sizes)
	}
	if got := plNums(all); !slices.Equal(got, plRange(0, 10)) {
		t.Errorf("events %v", got)
	}
	if out, err := g.Read(ctx, nil, 4); len(out) != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("Read after the end: %d events, %v", len(out), err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestGeneratorWithoutEnd(t *testing.T) {
	t.Parallel()
	g := plGenerator(0)
	ctx, cancel := context.WithCancel(t.Context())
	out, err := g.Read(ctx, nil, 1000)
	if err != nil || len(out) != 1000 {
		t.Fatalf("Read: %d events, %v", len(out), err)
	}
	out, err = g.Read(ctx, out[:0], 5)
	if err != nil || !slices.Equal(plNums(out), plRange(1000, 1005)) {
		t.Fatalf("Read: %v, %v", plNums(out), err)
	}
	cancel()
	if out, err := g.Read(ctx, nil, 5); len(out) != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("Read with a cancelled context: %d events, %v", len(out), err)
	}
}

func TestGeneratorRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		count   int64
		rate    float64
		atLeast time.Duration
	}{
		{"200 at 2000/s", 200, 2000, 90 * time.Millisecond},
		{"50 at 500/s", 50, 500, 90 * time.Millisecond},
		{"1 at 1/s is immediate", 1, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := engine.Generator(engine.GeneratorConfig{Event: plEvent, Count: tt.count, Rate: tt.rate})
			start := time.Now()
			var all []engine.Event
			reads := 0
			for {
				var err error
				all, err = g.Read(t.Context(), all, 1000)
				reads++
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			if got := plNums(all); !slices.Equal(got, plRange(0, tt.count)) {
				t.Fatalf("events %v", got)
			}
			if elapsed < tt.atLeast {
				t.Errorf("%d events at %v/s took %v, want at least %v", tt.count, tt.rate, elapsed, tt.atLeast)
			}
			if tt.count > 1 && reads < 2 {
				t.Errorf("the events came in %d read(s): no pacing", reads)
			}
		})
	}
}

// A rate-limited generator waiting for its next event returns when ctx
// ends.
func TestGeneratorRateCancel(t *testing.T) {
	t.Parallel()
	g := engine.Generator(engine.GeneratorConfig{Event: plEvent, Rate: 0.1}) // one every 10s
	out, err := g.Read(t.Context(), nil, 10)
	if err != nil || len(out) != 1 {
		t.Fatalf("first Read: %d events, %v; want the first event at once", len(out), err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	out, err = g.Read(ctx, out[:0], 10)
	if len(out) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read: %d events, %v; want the context's error", len(out), err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Read returned after %v", d)
	}
}

// A generator in a pipeline stops at its rate's pace when ctx ends.
func TestGeneratorRateInPipeline(t *testing.T) {
	t.Parallel()
	drop := engine.Drop()
	p := plNew(t, engine.PipelineConfig{Source: engine.Generator(engine.GeneratorConfig{Event: plEvent, Rate: 1000}),
		Sinks: []engine.Sink{drop}, MaxBatch: 100, MaxWait: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	if err := plRun(t, ctx, p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := drop.Count(); n < 50 || n > 1000 {
		t.Errorf("%d events in 150ms at 1000/s", n)
	}
	if p.Stats().In != drop.Count() {
		t.Errorf("read %d, dropped %d", p.Stats().In, drop.Count())
	}
}

func TestJSONLines(t *testing.T) {
	t.Parallel()
	e0, e1 := plEvent(0), plEvent(1)
	e1.SetMeta("trace", "00-abc-01")
	e1.Data = engine.BytesData([]byte{0, 1, 2})
	line := func(e engine.Event) string {
		b, err := e.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name    string
		input   string
		format  engine.Format
		want    []engine.Event // compared in full when they have an ID
		data    []string       // FormatData: the data of the events
		wantErr string         // the error after the events
	}{
		{name: "event format", input: line(e0) + "\n" + line(e1) + "\n", want: []engine.Event{e0, e1}},
		{name: "blank lines", input: "\n\n" + line(e0) + "\n   \n\t\n" + line(e1) + "\n\n", want: []engine.Event{e0, e1}},
		{name: "CRLF", input: line(e0) + "\r\n\r\n" + line(e1) + "\r\n", want: []engine.Event{e0, e1}},
		{name: "last line without newline", input: line(e0) + "\n" + line(e1), want: []engine.Event{e0, e1}},
		{name: "last line without newline, CRLF before", input: line(e0) + "\r\n" + line(e1) + "\r", want: []engine.Event{e0, e1}},
		{name: "empty input", input: ""},
		{name: "only blank lines", input: "\n \r\n\t\n"},
		{name: "event without id and time", input: `{"type":"a.b","data":{"kind":"int","value":5}}` + "\n",
			want: []engine.Event{{Type: "a.b", Data: engine.IntData(5)}}},
		{name: "malformed line", input: line(e0) + "\n\n{\"type\":\n" + line(e1) + "\n", want: []engine.Event{e0}, wantErr: "input.jsonl: line 3: "},
		{name: "malformed first line", input: "nope\n" + line(e0) + "\n", wantErr: "input.jsonl: line 1: "},
		{name: "malformed last line without newline", input: line(e0) + "\n" + `{"type":"x","data":`, want: []engine.Event{e0}, wantErr: "input.jsonl: line 2: "},
		{name: "unknown field", input: `{"type":"a","data":null,"color":"red"}`, wantErr: "input.jsonl: line 1: "},
		{name: "invalid type", input: line(e0) + "\n" + `{"type":"","data":null}`, want: []engine.Event{e0}, wantErr: "input.jsonl: line 2: "},
		{name: "data format", format: engine.FormatData, input: "{\"a\":1}\n[1,2]\r\n\n \"x\" \n3\nnull\ntrue",
			data: []string{`{"a":1}`, `[1,2]`, `"x"`, `3`, `null`, `true`}},
		{name: "data format malformed", format: engine.FormatData, input: "{\"a\":1}\n{\"a\":\n", data: []string{`{"a":1}`}, wantErr: "input.jsonl: line 2: "},
		{name: "data format two values on a line", format: engine.FormatData, input: "1 2\n", wantErr: "input.jsonl: line 1: "},
		{name: "data format invalid UTF-8", format: engine.FormatData, input: "\"\xff\"\n", wantErr: "input.jsonl: line 1: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := engine.JSONLines(strings.NewReader(tt.input), engine.JSONLinesConfig{Name: "input.jsonl", Format: tt.format, Type: "raw.line"})
			defer src.Close()
			before := time.Now().UnixNano()
			got, err := plReadAll(t.Context(), src)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one that starts %q", err, tt.wantErr)
			}
			if tt.format == engine.FormatData {
				if len(got) != len(tt.data) {
					t.Fatalf("%d events, want %d", len(got), len(tt.data))
				}
				for i, e := range got {
					raw, ok := e.Data.AsJSON()
					if !ok || string(raw) != tt.data[i] || e.Type != "raw.line" || e.Source != "input.jsonl" || e.ID.IsZero() || e.Time < before {
						t.Errorf("event %d: %+v (data %s), want data %s", i, e, raw, tt.data[i])
					}
				}
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d events, want %d", len(got), len(tt.want))
			}
			for i, e := range got {
				w := tt.want[i]
				if w.ID.IsZero() {
					if e.ID.IsZero() || e.Time < before {
						t.Errorf("event %d has no new ID or time: %+v", i, e)
					}
					w.ID, w.Time = e.ID, e.Time
				}
				if !plSameEvent(e, w) {
					t.Errorf("event %d:\n got %+v\nwant %+v", i, e, w)
				}
			}
			// After the end, it stays ended.
			if out, err2 := src.Read(t.Context(), nil, 10); len(out) != 0 || err2 == nil {
				t.Errorf("Read after the end: %d events, %v", len(out), err2)
			}
		})
	}
}

// plRepeatReader yields n bytes of c.
type plRepeatReader struct {
	c byte
	n int
}

func (r *plRepeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n)
	for i := range k {
		p[i] = r.c
	}
	r.n -= k
	return k, nil
}

// plLongLine is a JSON string of n bytes in all (quotes included).
func plLongLine(n int) io.Reader {
	return io.MultiReader(strings.NewReader(`"`), &plRepeatReader{c: 'a', n: n - 2}, strings.NewReader(`"`))
}

func TestJSONLinesLongLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		size    int  // the long line's length, without its newline
		newline bool // after the long line
		after   bool // another line after it
		wantErr string
	}{
		{name: "longer than the read buffer", size: 100 << 10, newline: true, after: true},
		{name: "long last line without newline", size: 100 << 10},
		{name: "long last line with newline", size: 200 << 10, newline: true},
		{name: "twice the buffer exactly", size: 128 << 10, newline: true, after: true},
		{name: "MaxLineSize exactly", size: engine.MaxLineSize, newline: true, after: true},
		{name: "MaxLineSize exactly, last", size: engine.MaxLineSize},
		{name: "over MaxLineSize", size: engine.MaxLineSize + 1, newline: true, after: true, wantErr: "big.jsonl: line 2: longer than"},
		{name: "17MiB", size: 17 << 20, newline: true, wantErr: "big.jsonl: line 2: longer than"},
		{name: "17MiB last", size: 17 << 20, wantErr: "big.jsonl: line 2: longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs := []io.Reader{strings.NewReader("1\n"), plLongLine(tt.size)}
			if tt.newline {
				rs = append(rs, strings.NewReader("\n"))
			}
			if tt.after {
				rs = append(rs, strings.NewReader("2\n"))
			}
			src := engine.JSONLines(io.MultiReader(rs...), engine.JSONLinesConfig{Name: "big.jsonl", Format: engine.FormatData, Type: "big"})
			defer src.Close()
			got, err := plReadAll(t.Context(), src)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if len(got) != 1 {
					t.Errorf("%d events before the error, want 1", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := 2
			if tt.after {
				want = 3
			}
			if len(got) != want {
				t.Fatalf("%d events, want %d", len(got), want)
			}
			if n := got[1].Data.Size(); n != tt.size {
				t.Errorf("the long line's data has %d bytes, want %d", n, tt.size)
			}
		})
	}
}

// plClosingReader is an io.Pipe reader that records Close.
type plClosingReader struct {
	*io.PipeReader
	closed atomic.Bool
}

func (r *plClosingReader) Close() error {
	r.closed.Store(true)
	return r.PipeReader.Close()
}

// Read honours ctx while the reader blocks; Close closes the reader.
func TestJSONLinesBlockingReader(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	r := &plClosingReader{PipeReader: pr}
	src := engine.JSONLines(r, engine.JSONLinesConfig{Name: "pipe", Format: engine.FormatData, Type: "p"})
	go func() { _, _ = pw.Write([]byte("1\n2\n")) }()
	got, err := src.Read(t.Context(), nil, 10)
	for err == nil && len(got) < 2 {
		got, err = src.Read(t.Context(), got, 10)
	}
	if err != nil || len(got) != 2 {
		t.Fatalf("Read: %d events, %v", len(got), err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	out, err := src.Read(ctx, nil, 10)
	if len(out) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read on a blocked reader: %d events, %v", len(out), err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Read returned after %v", d)
	}
	// It still works after a cancelled Read.
	go func() { _, _ = pw.Write([]byte("3\n")) }()
	out, err = src.Read(t.Context(), nil, 10)
	if err != nil || len(out) != 1 {
		t.Fatalf("Read after a cancelled one: %d events, %v", len(out), err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !r.closed.Load() {
		t.Error("Close did not close the reader")
	}
	if _, err := pw.Write([]byte("4\n")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("writing after Close: %v, want io.ErrClosedPipe", err)
	}
	// Reads after Close end (with an error) instead of blocking.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel2()
	if _, err := plReadAll(ctx2, src); errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read after Close blocked")
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A JSONLines source in a pipeline, stopped by ctx while its reader blocks.
func TestJSONLinesPipelineStop(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	defer pw.Close()
	src := engine.JSONLines(pr, engine.JSONLinesConfig{Name: "stdin", Format: engine.FormatData, Type: "p"})
	defer src.Close()
	sink := newPLSink()
	p := plNew(t, engine.PipelineConfig{Source: src, Sinks: []engine.Sink{sink}, MaxWait: time.Millisecond})
	stop := plStart(t, p)
	if _, err := pw.Write([]byte("{\"a\":1}\n{\"a\":2}\n")); err != nil {
		t.Fatal(err)
	}
	sink.waitLen(t, 2)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestJSONLinesSinkRoundTrip(t *testing.T) {
	t.Parallel()
	base := plEvent(7)
	with := func(d engine.EventData) engine.Event {
		e := base
		e.Data = d
		return e
	}
	meta := plEvent(8)
	meta.SetMeta("k", "v")
	meta.Source = ""
	events := []engine.Event{
		plEvent(1), meta,
		with(engine.NullData()), with(engine.BoolData(true)), with(engine.IntData(-5)),
		with(engine.FloatData(1.5)), with(engine.StringData("hé \"q\"\n")), with(engine.BytesData([]byte{0, 255})),
		with(engine.MustJSONData(`{"nested":[1,{"x":null}]}`)),
	}
	t.Run("event", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		sink := engine.JSONLinesSink(&buf, engine.FormatEvent)
		if err := sink.Write(t.Context(), events[:4]); err != nil {
			t.Fatal(err)
		}
		// Flushed after every batch.
		if n := strings.Count(buf.String(), "\n"); n != 4 {
			t.Errorf("%d lines after the first batch, want 4", n)
		}
		if err := sink.Write(t.Context(), events[4:]); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := plReadAll(t.Context(), engine.JSONLines(&buf, engine.JSONLinesConfig{Name: "rt"}))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(events) {
			t.Fatalf("%d events, want %d", len(got), len(events))
		}
		for i := range got {
			if !plSameEvent(got[i], events[i]) {
				t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], events[i])
			}
		}
	})
	t.Run("data", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		sink := engine.JSONLinesSink(&buf, engine.FormatData)
		if err := sink.Write(t.Context(), events); err != nil {
			t.Fatal(err)
		}
		want := strings.Join([]string{`{"n":1}`, `{"n":8}`, `null`, `true`, `-5`, `1.5`, `"hé \"q\"\n"`, `"AP8="`, `{"nested":[1,{"x":null}]}`}, "\n") + "\n"
		if buf.String() != want {
			t.Errorf("wrote\n%s\nwant\n%s", buf.String(), want)
		}
		got, err := plReadAll(t.Context(), engine.JSONLines(strings.NewReader(want), engine.JSONLinesConfig{Name: "rt", Format: engine.FormatData, Type: "t"}))
		if err != nil || len(got) != len(events) {
			t.Fatalf("read back %d events, %v", len(got), err)
		}
		for i, e := range got {
			// JSON data stays the same document; other kinds come back as
			// their JSON value.
			if d, ok := events[i].Data.AsJSON(); ok {
				if raw, _ := e.Data.AsJSON(); string(raw) != string(d) {
					t.Errorf("event %d: %s, want %s", i, raw, d)
				}
			}
		}
	})
	t.Run("pipeline", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		sink := engine.JSONLinesSink(&buf, engine.FormatEvent)
		p := plNew(t, engine.PipelineConfig{Source: plGenerator(1000), Sinks: []engine.Sink{sink}, MaxBatch: 64})
		if err := plRun(t, t.Context(), p); err != nil {
			t.Fatal(err)
		}
		got, err := plReadAll(t.Context(), engine.JSONLines(&buf, engine.JSONLinesConfig{Name: "rt"}))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(plNums(got), plRange(0, 1000)) {
			t.Errorf("read back %d events, not 0..999 in order", len(got))
		}
		for _, e := range got {
			if !plSameEvent(e, plEvent(plNum(e))) {
				t.Fatalf("event %+v changed on the way", e)
			}
		}
	})
}

// plClosingWriter records Close and fails writes on demand.
type plClosingWriter struct {
	bytes.Buffer
	closed bool
	err    error
}

func (w *plClosingWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	return w.Buffer.Write(p)
}

func (w *plClosingWriter) Close() error { w.closed = true; return nil }

func TestJSONLinesSinkCloseAndErrors(t *testing.T) {
	t.Parallel()
	w := &plClosingWriter{}
	sink := engine.JSONLinesSink(w, engine.FormatEvent)
	if err := sink.Write(t.Context(), []engine.Event{plEvent(1)}); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil || !w.closed {
		t.Errorf("Close: %v, closed the writer: %v", err, w.closed)
	}

	errDisk := errors.New("disk full")
	bad := &plClosingWriter{err: errDisk}
	sink = engine.JSONLinesSink(bad, engine.FormatData)
	if err := sink.Write(t.Context(), []engine.Event{plEvent(1)}); !errors.Is(err, errDisk) {
		t.Errorf("Write to a failing writer: %v", err)
	}

	// An event whose data cannot be written fails the write.
	invalid := plEvent(2)
	invalid.Data = engine.StringData("\xff")
	sink = engine.JSONLinesSink(&bytes.Buffer{}, engine.FormatEvent)
	if err := sink.Write(t.Context(), []engine.Event{invalid}); err == nil {
		t.Error("Write of invalid data succeeded")
	}
}

func TestFormatNames(t *testing.T) {
	t.Parallel()
	for _, f := range []engine.Format{engine.FormatEvent, engine.FormatData} {
		got, err := engine.ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f, got, err)
		}
	}
	if _, err := engine.ParseFormat("xml"); err == nil {
		t.Error("ParseFormat accepted xml")
	}
}

func TestDrop(t *testing.T) {
	t.Parallel()
	d := engine.Drop()
	for i := range 10 {
		if err := d.Write(t.Context(), make([]engine.Event, i)); err != nil {
			t.Fatal(err)
		}
	}
	if d.Count() != 45 {
		t.Errorf("Count %d, want 45", d.Count())
	}
	if err := d.Close(); err != nil {
		t.Error(err)
	}
}

// ChannelSource delivers everything published before the channel was
// deleted, then ends.
func TestChannelSource(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			e := engine.New(engine.Config{})
			defer e.Close()
			if err := e.CreateChannel("in", engine.ChannelConfig{BufferSize: 100}); err != nil {
				t.Fatal(err)
			}
			src, err := e.ChannelSource("in", "pipeline")
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if subs := e.Subscribers(); len(subs) != 1 || subs[0].Name != "pipeline" {
				t.Errorf("subscribers %+v", subs)
			}
			go func() {
				for i := 0; i < n; i += 10 {
					batch := make([]engine.Event, 0, 10)
					for j := i; j < min(i+10, n); j++ {
						batch = append(batch, plEvent(int64(j)))
					}
					if err := e.PublishBatch(context.Background(), "in", engine.EventBatch{Events: batch}); err != nil {
						t.Error(err)
						return
					}
				}
				if err := e.DeleteChannel("in"); err != nil {
					t.Error(err)
				}
			}()
			sink := newPLSink()
			p := plNew(t, engine.PipelineConfig{Source: src, Stages: []engine.Stage{{Name: "pass", Step: plPass, Workers: 2}},
				Sinks: []engine.Sink{sink}, MaxBatch: 64, MaxWait: time.Millisecond})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := plNums(sink.Events()); !slices.Equal(got, plRange(0, int64(n))) {
				t.Errorf("got %d events, want 0..%d in order", len(got), n-1)
			}
		})
	}
}

func TestChannelSourceErrors(t *testing.T) {
	t.Parallel()
	e := engine.New(engine.Config{})
	defer e.Close()
	if _, err := e.ChannelSource("missing", "x"); !errors.Is(err, engine.ErrChannelNotFound) {
		t.Errorf("ChannelSource of a missing channel: %v", err)
	}
	if err := e.CreateChannel("c", engine.ChannelConfig{}); err != nil {
		t.Fatal(err)
	}
	src, err := e.ChannelSource("c", "x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if out, err := src.Read(ctx, nil, 10); len(out) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read of an idle channel: %d events, %v", len(out), err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Read(t.Context(), nil, 10); !errors.Is(err, engine.ErrSubscriptionClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if subs := e.Subscribers(); len(subs) != 0 {
		t.Errorf("Close left subscribers %+v", subs)
	}
}

// ChannelSink waits for a slow reader past the channel's block timeout.
func TestChannelSinkWaitsPastBlockTimeout(t *testing.T) {
	t.Parallel()
	e := engine.New(engine.Config{})
	defer e.Close()
	if err := e.CreateChannel("out", engine.ChannelConfig{BufferSize: 2, BlockTimeout: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	sub, err := e.Subscribe("out", engine.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	got := make(chan []int64, 1)
	go func() {
		var nums []int64
		for len(nums) < n {
			ev, err := sub.Recv(context.Background())
			if err != nil {
				break
			}
			nums = append(nums, plNum(ev))
			time.Sleep(25 * time.Millisecond) // slower than the block timeout
		}
		got <- nums
	}()
	p := plNew(t, engine.PipelineConfig{Source: plGenerator(n), Sinks: []engine.Sink{e.ChannelSink("out")}, MaxBatch: 5})
	if err := plRun(t, t.Context(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if nums := <-got; !slices.Equal(nums, plRange(0, n)) {
		t.Errorf("the reader got %v, want 0..%d", nums, n-1)
	}
	// Nothing was published twice.
	st, err := e.ChannelStats("out")
	if err != nil {
		t.Fatal(err)
	}
	if st.Published != n {
		t.Errorf("published %d, want %d", st.Published, n)
	}
}

func TestChannelSinkErrors(t *testing.T) {
	t.Parallel()
	e := engine.New(engine.Config{})
	defer e.Close()
	sink := e.ChannelSink("nowhere")
	if err := sink.Write(t.Context(), []engine.Event{plEvent(1)}); !errors.Is(err, engine.ErrChannelNotFound) {
		t.Errorf("Write to a missing channel: %v", err)
	}
	if err := e.CreateChannel("c", engine.ChannelConfig{BufferSize: 1, BlockTimeout: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Subscribe("c", engine.SubscribeOptions{}); err != nil { // never reads
		t.Fatal(err)
	}
	sink = e.ChannelSink("c")
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := sink.Write(ctx, []engine.Event{plEvent(1), plEvent(2), plEvent(3)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write to a blocked channel: %v, want the context's error", err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = e.DeleteChannel("c")
	}()
	if err := sink.Write(t.Context(), []engine.Event{plEvent(4), plEvent(5)}); !errors.Is(err, engine.ErrChannelDeleted) {
		t.Errorf("Write to a deleted channel: %v", err)
	}
	if err := sink.Close(); err != nil {
		t.Error(err)
	}
}

// A sink must not modify the events it is given: ChannelSink publishes
// events without ID or time without filling them in in the caller's batch.
func TestChannelSinkLeavesEventsAlone(t *testing.T) {
	t.Parallel()
	e := engine.New(engine.Config{})
	defer e.Close()
	if err := e.CreateChannel("c", engine.ChannelConfig{}); err != nil {
		t.Fatal(err)
	}
	sub, err := e.Subscribe("c", engine.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	events := []engine.Event{{Type: "t", Data: engine.IntData(1)}, plEvent(2)}
	if err := e.ChannelSink("c").Write(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	if !events[0].ID.IsZero() || events[0].Time != 0 || events[1].ID != plID(2) {
		t.Errorf("the sink changed its input: %+v", events)
	}
	for i := range 2 {
		ev, err := sub.Recv(t.Context())
		if err != nil || ev.ID.IsZero() || ev.Time == 0 {
			t.Errorf("event %d published as %+v, %v", i, ev, err)
		}
	}
}

// FuzzJSONLines: any input yields valid events, then the end or an error
// that names the input and a line.
func FuzzJSONLines(f *testing.F) {
	ev := plEvent(3)
	ev.SetMeta("a", "b")
	line, _ := ev.MarshalJSON()
	for _, s := range []string{
		"", "\n", string(line) + "\n", string(line) + "\r\n" + string(line),
		`{"type":"x","data":null}`, `{"type":"x"}` + "\n\n" + `{"type":`, "1\n2\n[3]\n", "\xff\n", `"a"` + "\r\r\n", "null",
		`{"type":"x","time":"1000-01-01T00:00:00Z","data":null}`, `{"type":"x","id":"nope","data":null}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, input []byte, data bool) {
		format := engine.FormatEvent
		if data {
			format = engine.FormatData
		}
		src := engine.JSONLines(bytes.NewReader(input), engine.JSONLinesConfig{Name: "fuzz", Format: format, Type: "fuzz.line"})
		defer src.Close()
		events, err := plReadAll(context.Background(), src)
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz: line ") {
			t.Fatalf("error %q does not name the input and line", err)
		}
		lines := bytes.Count(input, []byte("\n")) + 1
		if len(events) > lines {
			t.Fatalf("%d events from %d lines", len(events), lines)
		}
		for i := range events {
			e := &events[i]
			if err := e.Validate(); err != nil {
				t.Fatalf("event %d is invalid: %v", i, err)
			}
			if e.ID.IsZero() || e.Time == 0 {
				t.Fatalf("event %d has no ID or time", i)
			}
			if _, err := e.MarshalJSON(); err != nil {
				t.Fatalf("event %d cannot be written: %v", i, err)
			}
		}
	})
}
