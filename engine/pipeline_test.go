package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/orders"
)

// The pipeline tests identify events by number: plEvent(i) carries i in
// its ID (so it survives every step and sink), in its data ({"n":i}) and
// in its time (plBase + i*plStep).

const plStep = int64(time.Millisecond)

// plBase is a whole second, so that 1s windows of events at plBase +
// i*1ms hold exactly 1000 events each.
var plBase = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano()

func plID(i int64) engine.EventID {
	var id engine.EventID
	id[6] = 0x80 // version 8
	id[8] = 0x80 // RFC 9562 variant
	binary.BigEndian.PutUint64(id[8:], uint64(i)|0x8000000000000000)
	return id
}

func plEvent(i int64) engine.Event {
	return engine.Event{
		ID:     plID(i),
		Type:   "test.event",
		Source: "test",
		Time:   plBase + i*plStep,
		Data:   engine.MustJSONData(fmt.Sprintf(`{"n":%d}`, i)),
	}
}

func plNum(e engine.Event) int64 {
	return int64(binary.BigEndian.Uint64(e.ID[8:]) &^ 0x8000000000000000)
}

func plNums(events []engine.Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = plNum(e)
	}
	return out
}

// plRange is [from, to) without the numbers of skip.
func plRange(from, to int64, skip ...int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		if !slices.Contains(skip, i) {
			out = append(out, i)
		}
	}
	return out
}

// plGenerator is a source of plEvent(0..n-1); n 0 means without end.
func plGenerator(n int64) engine.Source {
	return engine.Generator(engine.GeneratorConfig{Event: plEvent, Count: n})
}

// plChanSource is a source the test feeds through a Go channel; closing
// the channel ends it (io.EOF). It blocks for the first event of a Read
// and takes what else is waiting without blocking.
type plChanSource struct {
	ch   chan engine.Event
	read atomic.Int64
}

func newPLChanSource() *plChanSource { return &plChanSource{ch: make(chan engine.Event, 1<<12)} }

func (s *plChanSource) Read(ctx context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	select {
	case e, ok := <-s.ch:
		if !ok {
			return dst, io.EOF
		}
		dst = append(dst, e)
		s.read.Add(1)
	case <-ctx.Done():
		return dst, ctx.Err()
	}
	for n := 1; n < max; n++ {
		select {
		case e, ok := <-s.ch:
			if !ok {
				return dst, io.EOF
			}
			dst = append(dst, e)
			s.read.Add(1)
		default:
			return dst, nil
		}
	}
	return dst, nil
}

func (s *plChanSource) Close() error { return nil }

// plCountingSource wraps a source and counts the events it returned.
type plCountingSource struct {
	engine.Source
	n atomic.Int64
}

func (s *plCountingSource) Read(ctx context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	n := len(dst)
	dst, err := s.Source.Read(ctx, dst, max)
	s.n.Add(int64(len(dst) - n))
	return dst, err
}

// plFailingSource returns n events, then err.
type plFailingSource struct {
	n, next int64
	err     error
}

func (s *plFailingSource) Read(_ context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	for ; s.next < s.n && max > 0; max-- {
		dst = append(dst, plEvent(s.next))
		s.next++
	}
	if s.next == s.n {
		return dst, s.err
	}
	return dst, nil
}

func (s *plFailingSource) Close() error { return nil }

// plSliceSource returns its events, at most max at a time, then io.EOF.
type plSliceSource struct{ events []engine.Event }

func (s *plSliceSource) Read(_ context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	n := min(max, len(s.events))
	dst = append(dst, s.events[:n]...)
	s.events = s.events[n:]
	if len(s.events) == 0 {
		return dst, io.EOF
	}
	return dst, nil
}

func (s *plSliceSource) Close() error { return nil }

// plSink records what it is given. gate, when set, is called before each
// write (to block or slow it); err fails every write.
type plSink struct {
	mu     sync.Mutex
	events []engine.Event
	writes int
	gate   func(ctx context.Context)
	err    error
	wrote  chan struct{} // a token after each write, if room
}

func newPLSink() *plSink { return &plSink{wrote: make(chan struct{}, 1)} }

func (s *plSink) Write(ctx context.Context, events []engine.Event) error {
	if s.gate != nil {
		s.gate(ctx)
	}
	if s.err != nil {
		return s.err
	}
	s.mu.Lock()
	for _, e := range events {
		s.events = append(s.events, e.Clone())
	}
	s.writes++
	s.mu.Unlock()
	select {
	case s.wrote <- struct{}{}:
	default:
	}
	return nil
}

func (s *plSink) Close() error { return nil }

func (s *plSink) Events() []engine.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

func (s *plSink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// waitLen waits until the sink holds at least n events.
func (s *plSink) waitLen(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for s.Len() < n {
		select {
		case <-s.wrote:
		case <-deadline:
			t.Fatalf("the sink got %d events, want at least %d", s.Len(), n)
		}
	}
}

// plBatchStep passes its input through and records the batch sizes; each
// batch is also signalled on batches, if set.
type plBatchStep struct {
	mu      sync.Mutex
	sizes   []int
	batches chan int
}

func (s *plBatchStep) Process(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(in))
	s.mu.Unlock()
	if s.batches != nil {
		s.batches <- len(in)
	}
	return append(out, in...), nil
}

func (s *plBatchStep) Sizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}

// plStepFunc is a Step made of a function.
type plStepFunc func(ctx context.Context, in, out []engine.Event) ([]engine.Event, error)

func (f plStepFunc) Process(ctx context.Context, in, out []engine.Event) ([]engine.Event, error) {
	return f(ctx, in, out)
}

// plPass is a pass-through Step.
var plPass = plStepFunc(func(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
	return append(out, in...), nil
})

// plRun runs p with a time limit and returns Run's error.
func plRun(t *testing.T, ctx context.Context, p *engine.Pipeline) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return plWait(t, p, done, 20*time.Second)
}

// plStart runs p in the background; stop cancels it and returns Run's
// error, failing the test if Run does not return within 5 seconds.
func plStart(t *testing.T, p *engine.Pipeline) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() error {
		t.Helper()
		cancel()
		return plWait(t, p, done, 5*time.Second)
	}
}

// plWait returns the error Run sends on done, failing the test if none
// comes within limit.
func plWait(t *testing.T, p *engine.Pipeline, done <-chan error, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("pipeline[%s]: Run did not return", p.Name())
		return nil
	}
}

func plNew(t *testing.T, cfg engine.PipelineConfig) *engine.Pipeline {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p, err := engine.NewPipeline(cfg)
	if err != nil {
		t.Fatalf("NewPipeline: %v", err)
	}
	return p
}

func TestPipelineBatching(t *testing.T) {
	t.Parallel()
	// A script feeds the source: push n events, sleep, or close (EOF).
	type action struct {
		push  int
		sleep time.Duration
		close bool
	}
	push := func(n int) action { return action{push: n} }
	sleep := func(d time.Duration) action { return action{sleep: d} }
	eof := action{close: true}
	tests := []struct {
		name     string
		maxBatch int
		maxWait  time.Duration
		script   []action
		want     []int
	}{
		{"full batches leave at once, the rest at EOF", 4, time.Hour, []action{push(10), sleep(100 * time.Millisecond), eof}, []int{4, 4, 2}},
		{"exact multiple", 5, time.Hour, []action{push(15), eof}, []int{5, 5, 5}},
		{"a partial batch leaves after MaxWait", 100, 50 * time.Millisecond, []action{push(3), sleep(300 * time.Millisecond), push(2), sleep(300 * time.Millisecond), eof}, []int{3, 2}},
		{"size wins over time", 3, 50 * time.Millisecond, []action{push(7), sleep(300 * time.Millisecond), eof}, []int{3, 3, 1}},
		{"a partial batch leaves at EOF", 100, time.Hour, []action{push(1), sleep(50 * time.Millisecond), push(1), eof}, []int{2}},
		{"batch of one", 1, time.Hour, []action{push(3), eof}, []int{1, 1, 1}},
		{"nothing at all", 10, time.Hour, []action{eof}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := newPLChanSource()
			step := &plBatchStep{}
			sink := newPLSink()
			p := plNew(t, engine.PipelineConfig{Source: src, Stages: []engine.Stage{{Name: "rec", Step: step}},
				Sinks: []engine.Sink{sink}, MaxBatch: tt.maxBatch, MaxWait: tt.maxWait})
			done := make(chan error, 1)
			go func() { done <- p.Run(t.Context()) }()
			var n int64
			for _, a := range tt.script {
				switch {
				case a.close:
					close(src.ch)
				case a.sleep > 0:
					time.Sleep(a.sleep)
				default:
					for range a.push {
						src.ch <- plEvent(n)
						n++
					}
				}
			}
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := step.Sizes(); !slices.Equal(got, tt.want) {
				t.Errorf("batch sizes %v, want %v", got, tt.want)
			}
			if got := plNums(sink.Events()); !slices.Equal(got, plRange(0, n)) {
				t.Errorf("sink got %v, want 0..%d", got, n-1)
			}
			st := p.Stats()
			if st.In != uint64(n) || st.Out != uint64(n) || st.Stages[0].In != uint64(n) || st.Stages[0].Out != uint64(n) {
				t.Errorf("stats %+v, want %d in and out everywhere", st, n)
			}
		})
	}
}

// A batch leaves MaxWait after its first event even while events keep
// coming (the wait does not start again with each event).
func TestPipelineMaxWaitCountsFromTheFirstEvent(t *testing.T) {
	t.Parallel()
	src := newPLChanSource()
	step := &plBatchStep{batches: make(chan int, 1000)}
	const maxWait = 30 * time.Millisecond
	p := plNew(t, engine.PipelineConfig{Source: src, Stages: []engine.Stage{{Name: "rec", Step: step}},
		Sinks: []engine.Sink{engine.Drop()}, MaxBatch: 1000, MaxWait: maxWait})
	done := make(chan error, 1)
	go func() { done <- p.Run(t.Context()) }()
	start := time.Now()
	var first time.Duration
	stop := false
	for i := int64(0); !stop && time.Since(start) < 5*time.Second; i++ {
		src.ch <- plEvent(i)
		select {
		case <-step.batches:
			first, stop = time.Since(start), true
		case <-time.After(2 * time.Millisecond):
		}
	}
	close(src.ch)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if first == 0 {
		t.Fatalf("no batch left while events kept coming every 2ms (sizes %v)", step.Sizes())
	}
	if first < maxWait*8/10 {
		t.Errorf("the first batch left after %v, before MaxWait %v", first, maxWait)
	}
	if sizes := step.Sizes(); sizes[0] >= 1000 {
		t.Errorf("the first batch has %d events: it waited to fill", sizes[0])
	}
}

// plSleepStep passes its input through after a random short sleep.
var plSleepStep = plStepFunc(func(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
	time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	return append(out, in...), nil
})

// Parallel workers that take random times still deliver everything in
// input order, once.
func TestPipelineHammerOrderedWorkers(t *testing.T) {
	t.Parallel()
	const n = 20000
	// The second stage drops multiples of 7 and doubles the others (i ->
	// 2i, 2i+1), so outputs are not one per input.
	double := engine.MapStep{Name: "double", Map: func(e *engine.Event, out []engine.Event) ([]engine.Event, error) {
		i := plNum(*e)
		if i%7 == 0 {
			return out, nil
		}
		return append(out, plEvent(2*i), plEvent(2*i+1)), nil
	}}
	var want []int64
	for i := int64(0); i < n; i++ {
		if i%7 != 0 {
			want = append(want, 2*i, 2*i+1)
		}
	}
	for _, batch := range []int{1, 7, 64} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) {
			t.Parallel()
			sink := newPLSink()
			src := &plCountingSource{Source: plGenerator(n)}
			p := plNew(t, engine.PipelineConfig{Source: src,
				Stages: []engine.Stage{
					{Name: "sleepy", Step: plSleepStep, Workers: 4},
					{Name: "double", Step: double, Workers: 3},
					{Name: "pass", Step: plPass, Workers: 2},
				},
				Sinks: []engine.Sink{sink}, MaxBatch: batch, MaxWait: time.Millisecond})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			got := plNums(sink.Events())
			if !slices.Equal(got, want) {
				t.Fatalf("got %d events, want %d in order; first difference at %d", len(got), len(want), firstDiff(got, want))
			}
			st := p.Stats()
			if st.In != n || st.Out != uint64(len(want)) || src.n.Load() != n {
				t.Errorf("stats in %d out %d (source read %d), want %d and %d", st.In, st.Out, src.n.Load(), n, len(want))
			}
			for i, s := range st.Stages {
				if i > 0 && s.In != st.Stages[i-1].Out {
					t.Errorf("stage %s in %d, the one before out %d", s.Name, s.In, st.Stages[i-1].Out)
				}
			}
		})
	}
}

func firstDiff(a, b []int64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A blocked sink stops the source after a few batches.
func TestPipelineBackpressure(t *testing.T) {
	t.Parallel()
	const maxBatch = 10
	tests := []struct {
		name    string
		workers int
		bound   int64 // events the source may get ahead
	}{
		{"one worker", 1, 10 * maxBatch},
		{"four workers", 4, (10 + 2*4) * maxBatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := &plCountingSource{Source: plGenerator(0)}
			release := make(chan struct{})
			blocked := make(chan struct{})
			var once sync.Once
			sink := newPLSink()
			sink.gate = func(context.Context) {
				once.Do(func() { close(blocked) })
				<-release
			}
			p := plNew(t, engine.PipelineConfig{Source: src,
				Stages: []engine.Stage{{Name: "a", Step: plPass, Workers: tt.workers}, {Name: "b", Step: plPass}},
				Sinks:  []engine.Sink{sink}, MaxBatch: maxBatch, MaxWait: time.Millisecond})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			<-blocked
			time.Sleep(100 * time.Millisecond)
			read := src.n.Load()
			time.Sleep(50 * time.Millisecond)
			if again := src.n.Load(); again != read {
				t.Errorf("the source went on reading while the sink was blocked: %d, then %d", read, again)
			}
			if read > tt.bound {
				t.Errorf("the source read %d events while the sink was blocked, want at most %d", read, tt.bound)
			}
			cancel()
			close(release)
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			st := p.Stats()
			if got := uint64(sink.Len()); st.In != got || st.Out != got || uint64(src.n.Load()) != got {
				t.Errorf("read %d, stats in %d out %d, the sink got %d: lost in flight", src.n.Load(), st.In, st.Out, got)
			}
		})
	}
}

var errPoison = errors.New("poison")

// plPoisonMap fails each poison event alone (a native MapStep).
func plPoisonMap(poison ...int64) engine.Step {
	return engine.MapStep{Name: "poison-map", Map: func(e *engine.Event, out []engine.Event) ([]engine.Event, error) {
		if slices.Contains(poison, plNum(*e)) {
			return append(out, *e), fmt.Errorf("event %d: %w", plNum(*e), errPoison)
		}
		return append(out, *e), nil
	}}
}

// plPoisonBatch fails every batch that holds a poison event, whole.
func plPoisonBatch(poison ...int64) engine.Step {
	return plStepFunc(func(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
		for _, e := range in {
			if slices.Contains(poison, plNum(e)) {
				return nil, fmt.Errorf("batch with event %d: %w", plNum(e), errPoison)
			}
		}
		return append(out, in...), nil
	})
}

// plPoisonCoded fails each poison event with code 42 in an EventErrors.
func plPoisonCoded(poison ...int64) engine.Step {
	return plStepFunc(func(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
		var errs *engine.EventErrors
		for i, e := range in {
			if slices.Contains(poison, plNum(e)) {
				if errs == nil {
					errs = &engine.EventErrors{Step: "coded"}
				}
				errs.Errors = append(errs.Errors, engine.EventError{Index: i, Code: 42, Message: fmt.Sprintf("event %d is poison", plNum(e))})
				continue
			}
			out = append(out, e)
		}
		if errs != nil {
			return out, errs
		}
		return out, nil
	})
}

// plFlaky fails the first `fails` calls for every batch that holds a
// poison event (whole, or per event when perEvent), then succeeds.
type plFlaky struct {
	fails    int
	perEvent bool
	poison   []int64
	mu       sync.Mutex
	calls    map[int64]int // by the batch's first event
}

func (s *plFlaky) Process(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
	var bad []int
	for i, e := range in {
		if slices.Contains(s.poison, plNum(e)) {
			bad = append(bad, i)
		}
	}
	if len(bad) == 0 {
		return append(out, in...), nil
	}
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[int64]int{}
	}
	key := plNum(in[0])
	s.calls[key]++
	fail := s.calls[key] <= s.fails
	s.mu.Unlock()
	if !fail {
		return append(out, in...), nil
	}
	if !s.perEvent {
		return out, errors.New("transient failure")
	}
	errs := &engine.EventErrors{Step: "flaky"}
	for i, e := range in {
		if slices.Contains(bad, i) {
			errs.Errors = append(errs.Errors, engine.EventError{Index: i, Message: "transient event failure"})
			continue
		}
		out = append(out, e)
	}
	return out, errs
}

func TestPipelineErrorPolicies(t *testing.T) {
	t.Parallel()
	const n = 40 // events 0..39 in batches of 8
	poison := []int64{13, 17, 18}
	steps := []struct {
		name    string
		step    func() engine.Step
		code    string // aegis.error.code of dead letters
		message string // in aegis.error
	}{
		{"map per event", func() engine.Step { return plPoisonMap(poison...) }, "", "poison"},
		{"whole batch", func() engine.Step { return plPoisonBatch(poison...) }, "", "poison"},
		{"coded per event", func() engine.Step { return plPoisonCoded(poison...) }, "42", "is poison"},
	}
	retry := func(then engine.ErrorAction) engine.ErrorPolicy {
		return engine.ErrorPolicy{Action: engine.Retry, Retries: 2, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, Then: then}
	}
	policies := []struct {
		name    string
		policy  engine.ErrorPolicy
		fails   bool
		dead    bool
		retries bool
	}{
		{name: "fail", policy: engine.ErrorPolicy{}, fails: true},
		{name: "skip", policy: engine.ErrorPolicy{Action: engine.Skip}},
		{name: "dead-letter", policy: engine.ErrorPolicy{Action: engine.DeadLetter}, dead: true},
		{name: "retry then fail", policy: retry(engine.Fail), fails: true, retries: true},
		{name: "retry then skip", policy: retry(engine.Skip), retries: true},
		{name: "retry then dead-letter", policy: retry(engine.DeadLetter), dead: true, retries: true},
	}
	for _, sp := range steps {
		for _, pp := range policies {
			for _, workers := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/%s/workers %d", sp.name, pp.name, workers), func(t *testing.T) {
					t.Parallel()
					sink, dead := newPLSink(), newPLSink()
					pol := pp.policy
					if pp.dead {
						pol.DeadLetter = dead
					}
					p := plNew(t, engine.PipelineConfig{Name: "orders", Source: plGenerator(n),
						Stages: []engine.Stage{
							{Name: "before", Step: plPass},
							{Name: "bad", Plugin: "bad.wasm", Step: sp.step(), Workers: workers, OnError: pol},
							{Name: "after", Step: plPass},
						},
						Sinks: []engine.Sink{sink}, MaxBatch: 8, MaxWait: time.Hour})
					err := plRun(t, t.Context(), p)
					got := plNums(sink.Events())
					st := p.Stats().Stages[1]
					if pp.fails {
						if err == nil {
							t.Fatalf("Run returned nil, want the step's error")
						}
						for _, want := range []string{"pipeline[orders]", "step[bad]", "poison"} {
							if !strings.Contains(err.Error(), want) {
								t.Errorf("error %q does not name %q", err, want)
							}
						}
						for _, i := range got {
							if i >= poison[0] {
								t.Fatalf("event %d written after the failure at %d (got %v)", i, poison[0], got)
							}
						}
						if !slices.Equal(got, plRange(0, int64(len(got)))) {
							t.Errorf("written %v, want a prefix of the input", got)
						}
						return
					}
					if err != nil {
						t.Fatalf("Run: %v", err)
					}
					if want := plRange(0, n, poison...); !slices.Equal(got, want) {
						t.Errorf("written %v, want %v", got, want)
					}
					if st.Failed != uint64(len(poison)) {
						t.Errorf("failed %d, want %d", st.Failed, len(poison))
					}
					if st.In != n || st.Out != n-uint64(len(poison)) {
						t.Errorf("stage in %d out %d, want %d and %d", st.In, st.Out, n, n-len(poison))
					}
					if pp.retries && st.Retries == 0 {
						t.Errorf("no retries counted")
					}
					if !pp.retries && st.Retries != 0 {
						t.Errorf("%d retries counted without retry", st.Retries)
					}
					if !pp.dead {
						if st.Skipped != uint64(len(poison)) || st.DeadLetter != 0 {
							t.Errorf("skipped %d dead-lettered %d, want %d and 0", st.Skipped, st.DeadLetter, len(poison))
						}
						return
					}
					if st.DeadLetter != uint64(len(poison)) || st.Skipped != 0 {
						t.Errorf("dead-lettered %d skipped %d, want %d and 0", st.DeadLetter, st.Skipped, len(poison))
					}
					letters := dead.Events()
					got = plNums(letters)
					if workers > 1 {
						// Workers write dead letters as they fail: in order
						// within a batch, not across batches.
						slices.Sort(got)
					}
					if !slices.Equal(got, poison) {
						t.Fatalf("dead letters %v, want %v", got, poison)
					}
					for _, d := range letters {
						meta := map[string]string{
							engine.MetaErrorStep:     "bad",
							engine.MetaErrorPipeline: "orders",
							engine.MetaErrorPlugin:   "bad.wasm",
						}
						for k, v := range meta {
							if got, _ := d.Meta(k); got != v {
								t.Errorf("event %d: %s is %q, want %q", plNum(d), k, got, v)
							}
						}
						if msg, _ := d.Meta(engine.MetaError); !strings.Contains(msg, sp.message) {
							t.Errorf("event %d: %s is %q, want it to hold %q", plNum(d), engine.MetaError, msg, sp.message)
						}
						code, ok := d.Meta(engine.MetaErrorCode)
						if code != sp.code || ok != (sp.code != "") {
							t.Errorf("event %d: %s is %q (set %v), want %q", plNum(d), engine.MetaErrorCode, code, ok, sp.code)
						}
						if d.Type != "test.event" || d.Time != plEvent(plNum(d)).Time || !d.Data.Equal(plEvent(plNum(d)).Data) {
							t.Errorf("dead letter %+v is not the event that failed", d)
						}
					}
				})
			}
		}
	}
}

// Dead letters leave the events the pipeline passes on untouched, and a
// step without a plugin sets no aegis.error.plugin.
func TestPipelineDeadLetterMetadataIsACopy(t *testing.T) {
	t.Parallel()
	ev := plEvent(1)
	ev.SetMeta("trace", "abc")
	src := &plSliceSource{events: []engine.Event{plEvent(0), ev, plEvent(2)}}
	dead, sink := newPLSink(), newPLSink()
	p := plNew(t, engine.PipelineConfig{Name: "copy", Source: src,
		Stages: []engine.Stage{
			{Name: "bad", Step: plPoisonMap(1), OnError: engine.ErrorPolicy{Action: engine.DeadLetter, DeadLetter: dead}},
		},
		Sinks: []engine.Sink{sink}, MaxBatch: 10})
	if err := plRun(t, t.Context(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	letters := dead.Events()
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want 1", len(letters))
	}
	if _, ok := letters[0].Meta(engine.MetaErrorPlugin); ok {
		t.Errorf("aegis.error.plugin set without a plugin")
	}
	if v, _ := letters[0].Meta("trace"); v != "abc" {
		t.Errorf("the dead letter lost its metadata: %v", letters[0].Metadata)
	}
	if got := plNums(sink.Events()); !slices.Equal(got, []int64{0, 2}) {
		t.Errorf("sink got %v", got)
	}
	if len(ev.Metadata) != 1 {
		t.Errorf("dead-lettering changed the source's event: %v", ev.Metadata)
	}
}

func TestPipelineRetry(t *testing.T) {
	t.Parallel()
	const n = 40
	poison := []int64{13, 17, 18} // in batches 8..15 and 16..23
	tests := []struct {
		name        string
		fails       int // calls that fail per poisoned batch
		perEvent    bool
		then        engine.ErrorAction
		wantErr     bool
		wantRetries uint64
		wantOut     []int64
		wantDead    []int64
	}{
		{name: "transient batch failure", fails: 1, then: engine.Fail, wantRetries: 2, wantOut: plRange(0, n)},
		{name: "transient event failure", fails: 1, perEvent: true, then: engine.Fail, wantRetries: 2, wantOut: plRange(0, n)},
		{name: "succeeds on the last try", fails: 3, then: engine.Fail, wantRetries: 6, wantOut: plRange(0, n)},
		{name: "persistent then skip", fails: 1 << 30, then: engine.Skip, wantRetries: 6, wantOut: plRange(0, n, poison...)},
		{name: "persistent then dead-letter", fails: 1 << 30, then: engine.DeadLetter, wantRetries: 6, wantOut: plRange(0, n, poison...), wantDead: poison},
		{name: "persistent events then dead-letter", fails: 1 << 30, perEvent: true, then: engine.DeadLetter, wantRetries: 6, wantOut: plRange(0, n, poison...), wantDead: poison},
		{name: "persistent then fail", fails: 1 << 30, then: engine.Fail, wantErr: true, wantRetries: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sink, dead := newPLSink(), newPLSink()
			step := &plFlaky{fails: tt.fails, perEvent: tt.perEvent, poison: poison}
			pol := engine.ErrorPolicy{Action: engine.Retry, Retries: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Then: tt.then}
			if tt.then == engine.DeadLetter {
				pol.DeadLetter = dead
			}
			p := plNew(t, engine.PipelineConfig{Name: "retry", Source: plGenerator(n),
				Stages: []engine.Stage{{Name: "flaky", Step: step, OnError: pol}},
				Sinks:  []engine.Sink{sink}, MaxBatch: 8, MaxWait: time.Hour})
			err := plRun(t, t.Context(), p)
			st := p.Stats().Stages[0]
			if st.Retries != tt.wantRetries {
				t.Errorf("retries %d, want %d", st.Retries, tt.wantRetries)
			}
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "step[flaky]") || !strings.Contains(err.Error(), "pipeline[retry]") {
					t.Fatalf("Run: %v, want the step's failure", err)
				}
				if got := plNums(sink.Events()); len(got) > 8 {
					t.Errorf("written %v after the failure", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := plNums(sink.Events()); !slices.Equal(got, tt.wantOut) {
				t.Errorf("written %v, want %v", got, tt.wantOut)
			}
			if got := plNums(dead.Events()); !slices.Equal(got, tt.wantDead) {
				t.Errorf("dead letters %v, want %v", got, tt.wantDead)
			}
		})
	}
}

// A stage waiting out a long retry backoff does not hold up a pipeline
// that fails elsewhere.
func TestPipelineRetryBackoffEndsWithThePipeline(t *testing.T) {
	t.Parallel()
	// The source fails right after event 0, which the stage keeps failing.
	src := &plFailingSource{n: 1, err: errors.New("source broke")}
	step := &plFlaky{fails: 1 << 30, poison: []int64{0}}
	p := plNew(t, engine.PipelineConfig{Source: src,
		Stages: []engine.Stage{{Name: "flaky", Step: step, OnError: engine.ErrorPolicy{Action: engine.Retry, Retries: 5, Backoff: time.Hour}}},
		Sinks:  []engine.Sink{engine.Drop()}, MaxBatch: 1, MaxWait: time.Hour})
	start := time.Now()
	err := plRun(t, t.Context(), p)
	if err == nil || !strings.Contains(err.Error(), "source broke") {
		t.Fatalf("Run: %v, want the source's error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v", d)
	}
}

// plAggregation is a count over tumbling 1s windows of the events' time,
// with the sum of n.
func plAggregation(t *testing.T) *engine.Aggregation {
	t.Helper()
	fns, err := engine.Functions("test.count",
		engine.AggregateFunction{Fn: engine.Count},
		engine.AggregateFunction{Fn: engine.Sum, Field: "n"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := engine.KeyBy("type")
	if err != nil {
		t.Fatal(err)
	}
	a, err := engine.NewAggregation(engine.AggregationConfig{Name: "per-second", Key: key,
		Window: engine.WindowSpec{Kind: engine.Tumbling, Size: time.Second}, Aggregator: fns})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type plWindowResult struct {
	Key         string
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	Count       int64
	SumN        int64 `json:"sum_n"`
}

func plResults(t *testing.T, events []engine.Event) []plWindowResult {
	t.Helper()
	out := make([]plWindowResult, len(events))
	for i, e := range events {
		if err := e.Data.Decode(&out[i]); err != nil {
			t.Fatalf("result %d: %v (%v)", i, err, e.Data)
		}
	}
	return out
}

func TestPipelineAggregationFlushesEveryWindowAtEOF(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{1, 999, 1000, 1001, 5500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			sink := newPLSink()
			agg := plAggregation(t)
			p := plNew(t, engine.PipelineConfig{Source: plGenerator(n),
				Stages: []engine.Stage{{Name: "pre", Step: plPass, Workers: 2}, {Name: "agg", Kind: "aggregate", Aggregation: agg}, {Name: "post", Step: plPass}},
				Sinks:  []engine.Sink{sink}, MaxBatch: 128})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			res := plResults(t, sink.Events())
			windows := (n + 999) / 1000
			if int64(len(res)) != windows {
				t.Fatalf("%d results, want %d: %+v", len(res), windows, res)
			}
			for k, r := range res {
				from, to := int64(k)*1000, min(int64(k+1)*1000, n)
				wantSum := (from + to - 1) * (to - from) / 2
				if r.Count != to-from || r.SumN != wantSum || r.Key != "test.event" ||
					r.WindowStart.UnixNano() != plBase+from*plStep || r.WindowEnd.Sub(r.WindowStart) != time.Second {
					t.Errorf("window %d: %+v, want count %d sum %d", k, r, to-from, wantSum)
				}
			}
			st := p.Stats()
			if ag := st.Stages[1]; st.In != uint64(n) || ag.In != uint64(n) || ag.Out != uint64(windows) || ag.Kind != "aggregate" {
				t.Errorf("stats %+v", st)
			}
			if agg.Stats().Events != uint64(n) {
				t.Errorf("the aggregation folded %d events, want %d", agg.Stats().Events, n)
			}
		})
	}
}

// Cancelling ctx processes everything read and fires the complete windows
// only.
func TestPipelineAggregationGracefulStop(t *testing.T) {
	t.Parallel()
	sink := newPLSink()
	agg := plAggregation(t)
	p := plNew(t, engine.PipelineConfig{Source: plGenerator(0),
		Stages: []engine.Stage{{Name: "agg", Aggregation: agg}},
		Sinks:  []engine.Sink{sink}, MaxBatch: 100, MaxWait: time.Millisecond})
	stop := plStart(t, p)
	sink.waitLen(t, 3)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := p.Stats()
	in := int64(st.In)
	if st.Stages[0].In != st.In || agg.Stats().Events != st.In {
		t.Errorf("read %d, the aggregation took %d and folded %d: lost in flight", st.In, st.Stages[0].In, agg.Stats().Events)
	}
	// Events 0..in-1 at 1ms apart: the windows that end at or before the
	// newest event are complete.
	complete := (in - 1) / 1000
	res := plResults(t, sink.Events())
	if int64(len(res)) != complete {
		t.Fatalf("%d results after reading %d events, want %d complete windows", len(res), in, complete)
	}
	for k, r := range res {
		if r.Count != 1000 || r.WindowStart.UnixNano() != plBase+int64(k)*int64(time.Second) {
			t.Errorf("window %d: %+v", k, r)
		}
	}
}

func TestPipelineAggregationLateEvents(t *testing.T) {
	t.Parallel()
	sec := int64(time.Second)
	at := func(i, ns int64) engine.Event {
		e := plEvent(i)
		e.Time = plBase + ns
		return e
	}
	events := []engine.Event{at(0, sec/10), at(1, sec/2), at(2, sec+sec/5), at(3, 2*sec+sec/2), at(4, sec*3/10), at(5, 2*sec+sec/10)}
	for _, withSink := range []bool{true, false} {
		t.Run(fmt.Sprintf("late sink %v", withSink), func(t *testing.T) {
			t.Parallel()
			sink, late := newPLSink(), newPLSink()
			stage := engine.Stage{Name: "agg", Aggregation: plAggregation(t)}
			if withSink {
				stage.Late = late
			}
			p := plNew(t, engine.PipelineConfig{Source: &plSliceSource{events: slices.Clone(events)},
				Stages: []engine.Stage{stage}, Sinks: []engine.Sink{sink}, MaxBatch: 2})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := p.Stats().Stages[0].Late; got != 1 {
				t.Errorf("stats count %d late events, want 1", got)
			}
			if withSink {
				if got := plNums(late.Events()); !slices.Equal(got, []int64{4}) {
					t.Errorf("late events %v, want [4]", got)
				}
			}
			var counts []int64
			for _, r := range plResults(t, sink.Events()) {
				counts = append(counts, r.Count)
			}
			if !slices.Equal(counts, []int64{2, 1, 2}) {
				t.Errorf("window counts %v, want [2 1 2]", counts)
			}
		})
	}
}

// An aggregation whose events fail go by the stage's error policy.
func TestPipelineAggregationEventErrors(t *testing.T) {
	t.Parallel()
	bad := plEvent(3)
	bad.Data = engine.MustJSONData(`{"n":"three"}`) // Sum needs a number
	events := []engine.Event{plEvent(0), plEvent(1), plEvent(2), bad, plEvent(4)}
	tests := []struct {
		name    string
		policy  engine.ErrorPolicy
		wantErr bool
		dead    []int64
	}{
		{name: "fail", wantErr: true},
		{name: "skip", policy: engine.ErrorPolicy{Action: engine.Skip}},
		{name: "dead-letter", policy: engine.ErrorPolicy{Action: engine.DeadLetter}, dead: []int64{3}},
		{name: "retry then dead-letter", policy: engine.ErrorPolicy{Action: engine.Retry, Retries: 2, Backoff: time.Millisecond, Then: engine.DeadLetter}, dead: []int64{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sink, dead := newPLSink(), newPLSink()
			pol := tt.policy
			if tt.dead != nil {
				pol.DeadLetter = dead
			}
			p := plNew(t, engine.PipelineConfig{Name: "agg-errors", Source: &plSliceSource{events: slices.Clone(events)},
				Stages: []engine.Stage{{Name: "agg", Aggregation: plAggregation(t), OnError: pol}},
				Sinks:  []engine.Sink{sink}, MaxBatch: 10})
			err := plRun(t, t.Context(), p)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "step[agg]") {
					t.Fatalf("Run: %v, want the aggregation's error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			res := plResults(t, sink.Events())
			if len(res) != 1 || res[0].Count != 4 || res[0].SumN != 0+1+2+4 {
				t.Errorf("results %+v, want one window of 4 events", res)
			}
			if got := plNums(dead.Events()); !slices.Equal(got, tt.dead) {
				t.Errorf("dead letters %v, want %v", got, tt.dead)
			}
			if st := p.Stats().Stages[0]; st.Failed != 1 {
				t.Errorf("failed %d, want 1", st.Failed)
			}
		})
	}
}

// plBadIndexStep reports the poison events with indices that name no
// event of the batch (or out of order), as a buggy plugin might.
func plBadIndexStep(reverse bool, poison ...int64) engine.Step {
	return plStepFunc(func(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
		errs := &engine.EventErrors{Step: "buggy"}
		for i, e := range in {
			if slices.Contains(poison, plNum(e)) {
				idx := i + len(in) // out of range
				if reverse {
					idx = i
				}
				errs.Errors = append(errs.Errors, engine.EventError{Index: idx, Message: "buggy"})
				continue
			}
			out = append(out, e)
		}
		if reverse {
			slices.Reverse(errs.Errors)
		}
		if len(errs.Errors) == 0 {
			return out, nil
		}
		return out, errs
	})
}

// Event errors whose indices name no event (or are out of order) are a
// failure of the whole batch: the policy isolates the events, so the dead
// letters are the events that failed, with the right error.
func TestPipelineBadEventErrorIndices(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		step    engine.Step
		poison  []int64
		message string
	}{
		{"out of range", plBadIndexStep(false, 3, 12), []int64{3, 12}, "out of range"},
		{"out of order", plBadIndexStep(true, 3, 4), []int64{3, 4}, "buggy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sink, dead := newPLSink(), newPLSink()
			p := plNew(t, engine.PipelineConfig{Source: plGenerator(16),
				Stages: []engine.Stage{{Name: "buggy", Step: tt.step, OnError: engine.ErrorPolicy{Action: engine.DeadLetter, DeadLetter: dead}}},
				Sinks:  []engine.Sink{sink}, MaxBatch: 8})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := plNums(sink.Events()); !slices.Equal(got, plRange(0, 16, tt.poison...)) {
				t.Errorf("written %v", got)
			}
			letters := dead.Events()
			if got := plNums(letters); !slices.Equal(got, tt.poison) {
				t.Fatalf("dead letters %v, want %v", got, tt.poison)
			}
			for _, d := range letters {
				if msg, _ := d.Meta(engine.MetaError); !strings.Contains(msg, tt.message) {
					t.Errorf("event %d: error %q", plNum(d), msg)
				}
			}
		})
	}
}

// plFlakyAgg is an Aggregator that fails whole Accumulate calls on demand.
type plFlakyAgg struct {
	engine.Aggregator
	fail atomic.Int64 // calls left to fail
}

func (a *plFlakyAgg) Accumulate(ctx context.Context, key string, acc []byte, in []engine.Event) ([]byte, error) {
	if a.fail.Add(-1) >= 0 {
		return nil, errors.New("transient aggregator failure")
	}
	return a.Aggregator.Accumulate(ctx, key, acc, in)
}

// An aggregation retried after a failure of a whole call (or after a
// per-event failure whose retry fails whole) counts every event once.
func TestPipelineAggregationRetry(t *testing.T) {
	t.Parallel()
	bad := plEvent(3)
	bad.Data = engine.MustJSONData(`{"n":"three"}`)
	tests := []struct {
		name      string
		events    []engine.Event
		fails     int64 // whole failures from the first call on
		failRetry bool  // the first retry of a per-event failure fails whole
		count     int64
		dead      []int64
	}{
		{name: "transient whole failure", events: []engine.Event{plEvent(0), plEvent(1), plEvent(2)}, fails: 1, count: 3},
		{name: "two transient whole failures", events: []engine.Event{plEvent(0), plEvent(1), plEvent(2)}, fails: 2, count: 3},
		{name: "per-event failure whose retry fails whole", events: []engine.Event{plEvent(0), plEvent(1), plEvent(2), bad},
			failRetry: true, count: 3, dead: []int64{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fns, err := engine.Functions("test.count", engine.AggregateFunction{Fn: engine.Count}, engine.AggregateFunction{Fn: engine.Sum, Field: "n"})
			if err != nil {
				t.Fatal(err)
			}
			agg := &plFlakyAgg{}
			agg.fail.Store(tt.fails)
			var calls atomic.Int64
			agg.Aggregator = plAccumulateHook{Aggregator: fns, hook: func() {
				if tt.failRetry && calls.Add(1) == 1 {
					agg.fail.Store(1) // the next Accumulate fails whole
				}
			}}
			a, err := engine.NewAggregation(engine.AggregationConfig{Name: "flaky",
				Window: engine.WindowSpec{Kind: engine.Tumbling, Size: time.Second}, Aggregator: agg})
			if err != nil {
				t.Fatal(err)
			}
			sink, dead := newPLSink(), newPLSink()
			stage := engine.Stage{Name: "agg", Aggregation: a, OnError: engine.ErrorPolicy{Action: engine.Retry, Retries: 3,
				Backoff: time.Millisecond, Then: engine.DeadLetter, DeadLetter: dead}}
			p := plNew(t, engine.PipelineConfig{Source: &plSliceSource{events: tt.events}, Stages: []engine.Stage{stage},
				Sinks: []engine.Sink{sink}, MaxBatch: 10})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			res := plResults(t, sink.Events())
			if len(res) != 1 || res[0].Count != tt.count {
				t.Errorf("results %+v, want one window of %d", res, tt.count)
			}
			if got := plNums(dead.Events()); !slices.Equal(got, tt.dead) {
				t.Errorf("dead letters %v, want %v", got, tt.dead)
			}
			if st := p.Stats().Stages[0]; st.Retries == 0 {
				t.Errorf("no retries counted: %+v", st)
			}
		})
	}
}

// plAccumulateHook calls hook after each Accumulate.
type plAccumulateHook struct {
	engine.Aggregator
	hook func()
}

func (a plAccumulateHook) Accumulate(ctx context.Context, key string, acc []byte, in []engine.Event) ([]byte, error) {
	defer a.hook()
	return a.Aggregator.Accumulate(ctx, key, acc, in)
}

// Cancelling ctx stops a never-ending source; everything read reaches the
// sink.
func TestPipelineGracefulShutdown(t *testing.T) {
	t.Parallel()
	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprintf("workers %d", workers), func(t *testing.T) {
			t.Parallel()
			sink := newPLSink()
			src := &plCountingSource{Source: plGenerator(0)}
			p := plNew(t, engine.PipelineConfig{Source: src,
				Stages: []engine.Stage{{Name: "pass", Step: plSleepStep, Workers: workers}},
				Sinks:  []engine.Sink{sink}, MaxBatch: 50, MaxWait: time.Millisecond})
			stop := plStart(t, p)
			sink.waitLen(t, 1000)
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			st := p.Stats()
			got := sink.Events()
			if st.In != uint64(len(got)) || st.Out != st.In || uint64(src.n.Load()) != st.In {
				t.Errorf("read %d, in %d, out %d, the sink got %d", src.n.Load(), st.In, st.Out, len(got))
			}
			if nums := plNums(got); !slices.Equal(nums, plRange(0, int64(len(nums)))) {
				t.Errorf("the sink did not get 0..%d in order", len(nums)-1)
			}
		})
	}
}

// A context cancelled before Run reads nothing and returns nil.
func TestPipelineCancelledBeforeRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	sink := newPLSink()
	p := plNew(t, engine.PipelineConfig{Source: newPLChanSource(),
		Stages: []engine.Stage{{Name: "agg", Aggregation: plAggregation(t)}}, Sinks: []engine.Sink{sink}})
	if err := plRun(t, ctx, p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sink.Len() != 0 {
		t.Errorf("the sink got %d events", sink.Len())
	}
}

// Source, sink and step failures stop the pipeline with the error wrapped,
// also while the source blocks.
func TestPipelineFailures(t *testing.T) {
	t.Parallel()
	errSource, errSink := errors.New("disk on fire"), errors.New("network unplugged")
	tests := []struct {
		name   string
		source func() engine.Source
		stages []engine.Stage
		sinks  func() []engine.Sink
		want   error
		names  []string
	}{
		{
			name:   "source error",
			source: func() engine.Source { return &plFailingSource{n: 25, err: errSource} },
			sinks:  func() []engine.Sink { return []engine.Sink{newPLSink()} },
			want:   errSource, names: []string{"pipeline[broken]", "source", "disk on fire"},
		},
		{
			name:   "source error with stages",
			source: func() engine.Source { return &plFailingSource{n: 25, err: errSource} },
			stages: []engine.Stage{{Name: "a", Step: plPass, Workers: 3}, {Name: "agg", Aggregation: plAggregation(t)}},
			sinks:  func() []engine.Sink { return []engine.Sink{newPLSink()} },
			want:   errSource, names: []string{"pipeline[broken]", "source"},
		},
		{
			name:   "sink error",
			source: func() engine.Source { return plGenerator(100) },
			stages: []engine.Stage{{Name: "a", Step: plPass}},
			sinks: func() []engine.Sink {
				s := newPLSink()
				s.err = errSink
				return []engine.Sink{engine.Drop(), s}
			},
			want: errSink, names: []string{"pipeline[broken]", "sink", "network unplugged"},
		},
		{
			name:   "sink error while the source blocks",
			source: func() engine.Source { return newPLChanSource() },
			sinks: func() []engine.Sink {
				s := newPLSink()
				s.err = errSink
				return []engine.Sink{s}
			},
			want: errSink, names: []string{"pipeline[broken]", "sink"},
		},
		{
			name:   "step error while the source blocks",
			source: func() engine.Source { return newPLChanSource() },
			stages: []engine.Stage{{Name: "bad", Step: plPoisonBatch(0), Workers: 2}},
			sinks:  func() []engine.Sink { return []engine.Sink{newPLSink()} },
			want:   errPoison, names: []string{"pipeline[broken]", "step[bad]"},
		},
		{
			name:   "dead-letter sink error",
			source: func() engine.Source { return plGenerator(10) },
			stages: []engine.Stage{{Name: "bad", Step: plPoisonMap(3), OnError: engine.ErrorPolicy{Action: engine.DeadLetter,
				DeadLetter: &plSink{err: errSink}}}},
			sinks: func() []engine.Sink { return []engine.Sink{newPLSink()} },
			want:  errSink, names: []string{"pipeline[broken]", "step[bad]", "dead letter"},
		},
		{
			name:   "late sink error",
			source: func() engine.Source { return &plSliceSource{events: []engine.Event{plEvent(5000), plEvent(1)}} },
			stages: []engine.Stage{{Name: "agg", Aggregation: plAggregation(t), Late: &plSink{err: errSink},
				OnError: engine.ErrorPolicy{Action: engine.Retry, Backoff: time.Millisecond, Then: engine.Skip}}},
			sinks: func() []engine.Sink { return []engine.Sink{newPLSink()} },
			want:  errSink, names: []string{"pipeline[broken]", "step[agg]", "late"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := tt.source()
			if cs, ok := src.(*plChanSource); ok {
				cs.ch <- plEvent(0) // and nothing more: the source blocks
			}
			p := plNew(t, engine.PipelineConfig{Name: "broken", Source: src, Stages: tt.stages, Sinks: tt.sinks(), MaxBatch: 10, MaxWait: time.Millisecond})
			err := plRun(t, t.Context(), p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run: %v, want %v wrapped", err, tt.want)
			}
			for _, name := range tt.names {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %q", err, name)
				}
			}
		})
	}
}

func TestPipelineRunTwice(t *testing.T) {
	t.Parallel()
	p := plNew(t, engine.PipelineConfig{Name: "once", Source: plGenerator(3), Sinks: []engine.Sink{engine.Drop()}})
	if err := plRun(t, t.Context(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	err := p.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "pipeline[once]") {
		t.Fatalf("second Run: %v, want an error naming the pipeline", err)
	}
	if p.Name() != "once" {
		t.Errorf("Name %q", p.Name())
	}
}

func TestNewPipelineErrors(t *testing.T) {
	t.Parallel()
	agg := plAggregation(t)
	src, sinks := plGenerator(1), []engine.Sink{engine.Drop()}
	tests := []struct {
		name string
		cfg  engine.PipelineConfig
		want string
	}{
		{"no source", engine.PipelineConfig{Sinks: sinks}, "no source"},
		{"no sink", engine.PipelineConfig{Source: src}, "no sink"},
		{"nil sink", engine.PipelineConfig{Source: src, Sinks: []engine.Sink{nil}}, "sink"},
		{"negative batch", engine.PipelineConfig{Source: src, Sinks: sinks, MaxBatch: -1}, "batch size"},
		{"negative wait", engine.PipelineConfig{Source: src, Sinks: sinks, MaxWait: -time.Second}, "wait"},
		{"step and aggregation", engine.PipelineConfig{Source: src, Sinks: sinks, Stages: []engine.Stage{{Name: "s", Step: plPass, Aggregation: agg}}}, "step[s]"},
		{"neither step nor aggregation", engine.PipelineConfig{Source: src, Sinks: sinks, Stages: []engine.Stage{{Name: "s"}}}, "step[s]"},
		{"negative workers", engine.PipelineConfig{Source: src, Sinks: sinks, Stages: []engine.Stage{{Name: "s", Step: plPass, Workers: -1}}}, "workers"},
		{"parallel aggregation", engine.PipelineConfig{Source: src, Sinks: sinks, Stages: []engine.Stage{{Name: "s", Aggregation: agg, Workers: 2}}}, "workers"},
		{"dead letter without sink", engine.PipelineConfig{Source: src, Sinks: sinks, Stages: []engine.Stage{{Name: "s", Step: plPass,
			OnError: engine.ErrorPolicy{Action: engine.DeadLetter}}}}, "dead-letter"},
		{"retry then dead letter without sink", engine.PipelineConfig{Source: src, Sinks: sinks, Stages: []engine.Stage{{Name: "s", Step: plPass,
			OnError: engine.ErrorPolicy{Action: engine.Retry, Then: engine.DeadLetter}}}}, "dead-letter"},
		{"retry then retry", engine.PipelineConfig{Source: src, Sinks: sinks, Stages: []engine.Stage{{Name: "s", Step: plPass,
			OnError: engine.ErrorPolicy{Action: engine.Retry, Then: engine.Retry}}}}, "retry"},
		{"unknown action", engine.PipelineConfig{Source: src, Sinks: sinks, Stages: []engine.Stage{{Name: "s", Step: plPass,
			OnError: engine.ErrorPolicy{Action: engine.ErrorAction(9)}}}}, "error action"},
		{"unknown then", engine.PipelineConfig{Source: src, Sinks: sinks, Stages: []engine.Stage{{Name: "s", Step: plPass,
			OnError: engine.ErrorPolicy{Action: engine.Retry, Then: engine.ErrorAction(9)}}}}, "error action"},
		{"negative retries", engine.PipelineConfig{Source: src, Sinks: sinks, Stages: []engine.Stage{{Name: "s", Step: plPass,
			OnError: engine.ErrorPolicy{Action: engine.Retry, Retries: -1}}}}, "retries"},
		{"negative backoff", engine.PipelineConfig{Source: src, Sinks: sinks, Stages: []engine.Stage{{Name: "s", Step: plPass,
			OnError: engine.ErrorPolicy{Action: engine.Retry, Backoff: -time.Second}}}}, "backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.Name = "cfg"
			p, err := engine.NewPipeline(cfg)
			if err == nil {
				t.Fatalf("NewPipeline made %v, want an error", p)
			}
			if !strings.Contains(err.Error(), "pipeline[cfg]") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to name the pipeline and %q", err, tt.want)
			}
		})
	}
}

func TestPipelineDefaultsAndStats(t *testing.T) {
	t.Parallel()
	step := &plBatchStep{}
	p := plNew(t, engine.PipelineConfig{Name: "defaults", Source: plGenerator(1000),
		Stages: []engine.Stage{{Name: "rec", Kind: "map", Step: step}}, Sinks: []engine.Sink{engine.Drop()}})
	if err := plRun(t, t.Context(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := step.Sizes(); !slices.Equal(got, []int{256, 256, 256, 232}) {
		t.Errorf("batch sizes %v, want the default 256", got)
	}
	want := engine.PipelineStats{Name: "defaults", In: 1000, Out: 1000,
		Stages: []engine.StageStats{{Name: "rec", Kind: "map", In: 1000, Out: 1000}}}
	if got := p.Stats(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

// Stats may be read while the pipeline runs.
func TestPipelineStatsWhileRunning(t *testing.T) {
	t.Parallel()
	p := plNew(t, engine.PipelineConfig{Source: plGenerator(20000),
		Stages: []engine.Stage{{Name: "a", Step: plPass, Workers: 2}, {Name: "agg", Aggregation: plAggregation(t)}},
		Sinks:  []engine.Sink{engine.Drop()}, MaxBatch: 10})
	done := make(chan error, 1)
	go func() { done <- p.Run(t.Context()) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if st := p.Stats(); st.In != 20000 || st.Stages[1].In != 20000 {
				t.Errorf("stats %+v", st)
			}
			return
		default:
			_ = p.Stats()
		}
	}
}

func TestErrorActionNames(t *testing.T) {
	t.Parallel()
	for _, a := range []engine.ErrorAction{engine.Fail, engine.Skip, engine.DeadLetter, engine.Retry} {
		got, err := engine.ParseErrorAction(a.String())
		if err != nil || got != a {
			t.Errorf("ParseErrorAction(%q) = %v, %v", a, got, err)
		}
	}
	if _, err := engine.ParseErrorAction("explode"); err == nil {
		t.Error("ParseErrorAction accepted explode")
	}
	if s := engine.ErrorAction(9).String(); s != "error action(9)" {
		t.Errorf("String of an unknown action: %q", s)
	}
}

// BenchmarkPipeline runs the orders workload through a native filter and
// map into a Drop sink.
func BenchmarkPipeline(b *testing.B) {
	start := time.Now().UnixNano()
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			drop := engine.Drop()
			p, err := engine.NewPipeline(engine.PipelineConfig{
				Name: "bench",
				Source: engine.Generator(engine.GeneratorConfig{Count: int64(b.N),
					Event: func(i int64) engine.Event { return orders.Event(int(i), start) }}),
				Stages: []engine.Stage{
					{Name: "filter", Kind: "filter", Step: orders.Filter},
					{Name: "map", Kind: "map", Step: orders.Map},
				},
				Sinks:    []engine.Sink{drop},
				MaxBatch: batch,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			t0 := time.Now()
			if err := p.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(t0).Seconds()
			b.StopTimer()
			if want := uint64(b.N - b.N/4); drop.Count() < want-1 || drop.Count() > want+1 {
				b.Fatalf("dropped %d, want about %d", drop.Count(), want)
			}
			b.ReportMetric(float64(b.N)/elapsed, "events/s")
		})
	}
}
