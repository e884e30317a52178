package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aegis-streaming/aegis/engine"
)

// ackSource is a generator that records the acknowledgements it gets, and
// how many events the sink held at each.
type ackSource struct {
	engine.Source
	sink *plSink

	mu      sync.Mutex
	acks    []uint64
	written []int // the sink's length at each ack
	err     error // fails Ack
}

func (s *ackSource) Ack(_ context.Context, n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acks = append(s.acks, n)
	s.written = append(s.written, s.sink.Len())
	return s.err
}

func (s *ackSource) get() (acks []uint64, written []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acks), slices.Clone(s.written)
}

// dropOdd keeps the events of even batches (by the first event's number)
// and drops odd batches whole, so that some batches end empty in a step.
var dropOddBatches = plStepFunc(func(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
	if plNum(in[0])/10%2 == 1 {
		return out, nil
	}
	return append(out, in...), nil
})

func TestPipelineAcks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stages  []engine.Stage
		written int // events the sink gets of 100
	}{
		{name: "no steps", written: 100},
		{name: "pass", stages: []engine.Stage{{Name: "pass", Step: plPass}}, written: 100},
		// Batches emptied by a step are acknowledged too, in order.
		{name: "emptied batches", stages: []engine.Stage{{Name: "drop", Step: dropOddBatches}, {Name: "pass", Step: plPass}}, written: 50},
		{name: "emptied batches, workers", stages: []engine.Stage{{Name: "drop", Step: dropOddBatches, Workers: 3}, {Name: "pass", Step: plPass, Workers: 2}}, written: 50},
		{name: "skipped events", stages: []engine.Stage{{Name: "poison", Step: plPoisonMap(3, 14, 15), OnError: engine.ErrorPolicy{Action: engine.Skip}}}, written: 97},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := newPLSink()
			src := &ackSource{Source: plGenerator(100), sink: sink}
			p := plNew(t, engine.PipelineConfig{Source: src, Stages: tc.stages, Sinks: []engine.Sink{sink}, MaxBatch: 10})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatal(err)
			}
			acks, written := src.get()
			want := []uint64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
			if !slices.Equal(acks, want) {
				t.Fatalf("acks %v, want %v", acks, want)
			}
			// Each ack comes after its batch is written: the sink holds at
			// least the events of the batches acknowledged.
			for i, n := range written {
				if min := countWritten(tc.written, i+1); n < min {
					t.Errorf("ack %d (%d events) came when the sink held %d events, want at least %d", i, acks[i], n, min)
				}
			}
			if got := sink.Len(); got != tc.written {
				t.Errorf("the sink got %d events, want %d", got, tc.written)
			}
		})
	}
}

// countWritten is how many events the sink holds once the first batches
// (of 10) are written, when it gets total of 100.
func countWritten(total, batches int) int {
	switch total {
	case 100:
		return batches * 10
	case 50: // odd batches dropped
		return (batches + 1) / 2 * 10
	}
	return batches*10 - 3 // the skipped events, at most
}

func TestPipelineAcksStopAtAFailure(t *testing.T) {
	// A step that fails the pipeline on the third batch: the batches before
	// it are acknowledged, it and those after it are not.
	sink := newPLSink()
	src := &ackSource{Source: plGenerator(100), sink: sink}
	p := plNew(t, engine.PipelineConfig{Source: src, Stages: []engine.Stage{{Name: "poison", Step: plPoisonMap(25)}}, Sinks: []engine.Sink{sink}, MaxBatch: 10})
	if err := plRun(t, t.Context(), p); err == nil {
		t.Fatal("the pipeline did not fail")
	}
	acks, _ := src.get()
	if len(acks) > 0 && acks[len(acks)-1] > 20 {
		t.Fatalf("acks %v acknowledge the failed batch", acks)
	}

	// A sink failure: nothing is acknowledged.
	bad := newPLSink()
	bad.err = errors.New("disk full")
	src = &ackSource{Source: plGenerator(100), sink: bad}
	p = plNew(t, engine.PipelineConfig{Source: src, Sinks: []engine.Sink{bad}, MaxBatch: 10})
	if err := plRun(t, t.Context(), p); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v, want the sink's", err)
	}
	if acks, _ := src.get(); len(acks) != 0 {
		t.Fatalf("acks %v after a failed write", acks)
	}

	// An Ack that fails stops the pipeline with its error.
	sink = newPLSink()
	src = &ackSource{Source: plGenerator(100), sink: sink, err: errors.New("position store unwritable")}
	p = plNew(t, engine.PipelineConfig{Source: src, Sinks: []engine.Sink{sink}, MaxBatch: 10})
	if err := plRun(t, t.Context(), p); err == nil || !strings.Contains(err.Error(), "source: ack: position store unwritable") {
		t.Fatalf("err %v, want the ack's", err)
	}
}

func TestPipelineAcksWhenStopped(t *testing.T) {
	// Stopping the pipeline lets the batches in flight through and
	// acknowledges them: the last ack covers every event read.
	sink := newPLSink()
	src := &ackSource{Source: plGenerator(0), sink: sink}
	p := plNew(t, engine.PipelineConfig{Source: src, Stages: []engine.Stage{{Name: "pass", Step: plPass, Workers: 2}}, Sinks: []engine.Sink{sink}, MaxBatch: 10})
	stop := plStart(t, p)
	sink.waitLen(t, 1000)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	acks, _ := src.get()
	if len(acks) == 0 || acks[len(acks)-1] != p.Stats().In {
		t.Fatalf("acks %v, want the last to be %d (every event read)", acks, p.Stats().In)
	}
	if uint64(sink.Len()) != p.Stats().In {
		t.Fatalf("the sink got %d of %d events", sink.Len(), p.Stats().In)
	}
}
