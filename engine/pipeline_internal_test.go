package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	pol := &ErrorPolicy{Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 50, 50, 50}
	for i, w := range want {
		if got := backoff(pol, i+1); got != w*time.Millisecond {
			t.Errorf("try %d: %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	// No overflow after many tries.
	if got := backoff(&ErrorPolicy{Backoff: time.Hour, MaxBackoff: 1 << 62}, 1000); got <= 0 || got > 1<<62 {
		t.Errorf("try 1000: %v", got)
	}
}

func TestTrimSpace(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"newline", "\n", ""},
		{"crlf", "{}\r\n", "{}"},
		{"spaces", " \t {} \t\r\n", "{}"},
		{"inner spaces kept", "[1, 2]\n", "[1, 2]"},
	}
	for _, tt := range tests {
		if got := string(trimSpace([]byte(tt.in))); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// The batch pool keeps batches of a sensible size only, and empty.
func TestPipelinePool(t *testing.T) {
	p := &Pipeline{cfg: PipelineConfig{MaxBatch: 4}}
	b := p.get()
	if cap(b) != 4 || len(b) != 0 {
		t.Fatalf("new batch len %d cap %d", len(b), cap(b))
	}
	b = append(b, Event{Type: "x"}, Event{Type: "y"})
	p.put(b)
	c := p.get()
	if len(c) != 0 {
		t.Fatalf("pooled batch has %d events", len(c))
	}
	for _, e := range c[:cap(c)] {
		if e.Type != "" {
			t.Fatalf("pooled batch keeps event %+v", e)
		}
	}
	p.put(make([]Event, 0, 100)) // too large: dropped
	p.put(nil)
}

// A stage whose step fails a whole batch by returning a nil slice, as
// Step allows, is isolated event by event without trouble.
func TestStageIsolationWithNilOutput(t *testing.T) {
	t.Parallel()
	p, err := NewPipeline(PipelineConfig{Name: "p", Source: Generator(GeneratorConfig{Count: 1, Event: func(int64) Event { return Event{Type: "x"} }}),
		Sinks: []Sink{Drop()}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := newStage(p, Stage{Name: "s", Step: nilOnFailure{}, OnError: ErrorPolicy{Action: Skip}})
	if err != nil {
		t.Fatal(err)
	}
	in := []Event{{Type: "ok"}, {Type: "bad"}, {Type: "ok"}, {Type: "ok"}}
	out, err := st.handle(t.Context(), in, make([]Event, 0, 4))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || st.skipped.Load() != 1 {
		t.Errorf("out %d events, skipped %d; want 3 and 1", len(out), st.skipped.Load())
	}
}

type nilOnFailure struct{}

func (nilOnFailure) Process(_ context.Context, in, out []Event) ([]Event, error) {
	for _, e := range in {
		if e.Type == "bad" {
			return nil, errors.New("bad batch")
		}
	}
	return append(out, in...), nil
}
