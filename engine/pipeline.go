package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Source is where a pipeline's events come from.
type Source interface {
	// Read appends at most max events to dst and returns it. It blocks
	// until it has at least one event, the source ends (io.EOF, possibly
	// with events), or ctx is done: then it returns what it appended so
	// far and ctx's error. Events returned are the caller's.
	Read(ctx context.Context, dst []Event, max int) ([]Event, error)
	// Close releases the source.
	Close() error
}

// Acker is implemented by a [Source] that needs to know when the pipeline
// is done with the events it read (to store or commit its position, say):
// only then is an event safe from a crash of the pipeline.
//
// What the pipeline is done with is only as safe as where it went: an
// aggregation's open windows are held in memory, and the events taken into
// them are acknowledged once taken, so a crash loses the open windows'
// partial results (not the events before them, nor what the windows
// already emitted); and an event written to an in-memory channel is
// acknowledged once there, so a crash loses what the channel's readers
// had not yet written.
type Acker interface {
	// Ack says that the pipeline is done with the first n events that Read
	// returned, counted over all its calls: each was written to every
	// sink, or dropped on purpose by a step (filtered out, skipped,
	// dead-lettered, or taken into an aggregation). The pipeline calls it
	// from one goroutine, in order, with n growing, once per batch, and
	// for the last batch before Run returns. An error stops the pipeline.
	Ack(ctx context.Context, n uint64) error
}

// Sink is where a pipeline's events go.
type Sink interface {
	// Write writes events, in order, and returns once they are written.
	// It must not modify or keep events. A sink may be shared by several
	// pipelines, so Write is safe for concurrent use.
	Write(ctx context.Context, events []Event) error
	// Close flushes and releases the sink.
	Close() error
}

// ErrorAction is what a step's error policy does with events it failed on.
type ErrorAction uint8

const (
	// Fail stops the pipeline with the error (the default).
	Fail ErrorAction = iota
	// Skip counts and logs the events and goes on without them.
	Skip
	// DeadLetter writes the events, with the error in their metadata, to
	// the policy's DeadLetter sink and goes on without them.
	DeadLetter
	// Retry tries again with backoff, then does the policy's Then.
	Retry
)

var actionNames = [...]string{Fail: "fail", Skip: "skip", DeadLetter: "dead-letter", Retry: "retry"}

func (a ErrorAction) String() string { return enumName(actionNames[:], int(a), "error action") }

// ParseErrorAction parses "fail", "skip", "dead-letter" or "retry".
func ParseErrorAction(s string) (ErrorAction, error) {
	v, err := parseEnum(actionNames[:], s, "error action")
	return ErrorAction(v), err
}

// ErrorPolicy says what a stage does when it fails on events.
//
// A per-event failure (*[EventErrors]) concerns those events only. A
// failure of the whole batch (a trap, a timeout) is retried as a whole
// under Retry; when the policy then skips or dead-letters, the batch is
// run again event by event, so only the events that fail alone are
// skipped or dead-lettered and the others go on.
type ErrorPolicy struct {
	Action ErrorAction
	// Retries is how many times Retry tries again (default 3).
	Retries int
	// Backoff is the first wait before a retry, doubling up to MaxBackoff
	// (defaults 100ms and 5s).
	Backoff, MaxBackoff time.Duration
	// Then is what Retry does once the retries are used up: Fail, Skip or
	// DeadLetter.
	Then ErrorAction
	// DeadLetter receives the failed events under DeadLetter (also as
	// Then).
	DeadLetter Sink
}

// Metadata keys set on dead-lettered events.
const (
	MetaError         = "aegis.error"
	MetaErrorCode     = "aegis.error.code"
	MetaErrorStep     = "aegis.error.step"
	MetaErrorPipeline = "aegis.error.pipeline"
	MetaErrorPlugin   = "aegis.error.plugin"
)

// Stage is one step of a pipeline: a [Step] (filter, map, transform,
// native or wasm) or an [Aggregation].
type Stage struct {
	// Name is the step's name, in errors, logs and stats.
	Name string
	// Kind describes the step in stats ("filter", "map", ...).
	Kind string
	// Plugin names the plugin behind the step, if any, for dead letters.
	Plugin string
	// Step is a stateless step; or
	Step Step
	// Aggregation is a keyed, windowed aggregation.
	Aggregation *Aggregation
	// Late receives the aggregation's late events; nil counts and drops
	// them. A failure to write to it stops the pipeline (the aggregation
	// has taken the batch, so no error policy can run it again).
	Late Sink
	// Workers is how many batches a Step processes at once (default 1);
	// outputs leave in input order, so order (per key and overall) is
	// kept. An Aggregation takes 1.
	Workers int
	// OnError is the stage's error policy.
	OnError ErrorPolicy
	// Attributes are added to the spans of the stage (a plugin's
	// checksum and ABI version, say).
	Attributes []attribute.KeyValue
}

// PipelineConfig configures a [Pipeline].
type PipelineConfig struct {
	Name   string
	Source Source
	Stages []Stage
	// Sinks receive every event that leaves the last stage, in order.
	Sinks []Sink
	// MaxBatch is the most events in a batch (default 256); MaxWait is how
	// long a batch waits to fill after its first event (default 50ms).
	// A batch leaves when either is reached.
	MaxBatch int
	MaxWait  time.Duration
	// Logger receives skipped events and errors; nil means slog.Default().
	Logger *slog.Logger
	// Tracer, when set, traces every batch: a span for its pass through
	// the pipeline ("aegis.pipeline NAME") and, as its children, one per
	// stage ("aegis.step KIND NAME"), whose context the step's calls get.
	// The pass continues the trace that all of the batch's events carry
	// in their metadata ([MetaTraceParent]); a batch of events of several
	// traces, or of none, starts a trace and links to theirs. The events
	// the pipeline writes carry the pass's trace context, but for those
	// that brought a trace of their own. Nil traces nothing, at no cost.
	Tracer trace.Tracer
	// Meter, when set, records the pipeline's metrics: events in, out and
	// failed per stage, stage latency, batch sizes (the MetricStep* and
	// MetricBatchSize instruments).
	Meter metric.Meter
}

// Pipeline reads events from a source, passes them in batches through its
// stages and writes what comes out to its sinks. Every hand-over between
// its goroutines is bounded, so a slow stage or sink slows the source
// down instead of queueing without limit.
type Pipeline struct {
	cfg    PipelineConfig
	log    *slog.Logger
	stages []*stage
	in     atomic.Uint64
	out    atomic.Uint64
	ran    atomic.Bool
	closed atomic.Bool
	pool   sync.Pool

	passName string // the name of a pass's span
	metrics  *pipelineMetrics
	acker    Acker // the source, when it takes acknowledgements
}

// StageStats counts what a stage did.
type StageStats struct {
	Name, Kind string
	In, Out    uint64 // events
	Failed     uint64 // events the stage failed on (before the error policy)
	Skipped    uint64
	DeadLetter uint64
	Retries    uint64 // retried calls
	Late       uint64 // an aggregation's late events
	// Fuel is the work a metered step did (for a WebAssembly step, the
	// instructions its module ran); 0 for a step that does not count.
	Fuel uint64
}

// Metered is implemented by steps and aggregators that count the work
// they do, in fuel (a WebAssembly step: the instructions its module ran).
type Metered interface {
	Fuel() uint64
}

// PipelineStats counts what a pipeline did.
type PipelineStats struct {
	Name   string
	In     uint64 // events read from the source
	Out    uint64 // events written to the sinks
	Stages []StageStats
}

// NewPipeline checks cfg and returns a pipeline ready to Run.
func NewPipeline(cfg PipelineConfig) (*Pipeline, error) {
	if cfg.Source == nil {
		return nil, fmt.Errorf("pipeline[%s]: no source", cfg.Name)
	}
	if len(cfg.Sinks) == 0 {
		return nil, fmt.Errorf("pipeline[%s]: no sink", cfg.Name)
	}
	for i, s := range cfg.Sinks {
		if s == nil {
			return nil, fmt.Errorf("pipeline[%s]: sink %d is nil", cfg.Name, i)
		}
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 256
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 50 * time.Millisecond
	}
	if cfg.MaxBatch < 0 || cfg.MaxWait < 0 {
		return nil, fmt.Errorf("pipeline[%s]: batch size %d and wait %v must be positive", cfg.Name, cfg.MaxBatch, cfg.MaxWait)
	}
	p := &Pipeline{cfg: cfg, log: cfg.Logger, passName: "aegis.pipeline " + cfg.Name}
	p.acker, _ = cfg.Source.(Acker)
	if p.log == nil {
		p.log = slog.Default()
	}
	p.log = p.log.With("pipeline", cfg.Name)
	for i := range cfg.Stages {
		st, err := newStage(p, cfg.Stages[i])
		if err != nil {
			return nil, fmt.Errorf("pipeline[%s]: %w", cfg.Name, err)
		}
		p.stages = append(p.stages, st)
	}
	if cfg.Meter != nil {
		var err error
		if p.metrics, err = newPipelineMetrics(p, cfg.Meter); err != nil {
			return nil, fmt.Errorf("pipeline[%s]: metrics: %w", cfg.Name, err)
		}
	}
	return p, nil
}

// Name is the pipeline's name.
func (p *Pipeline) Name() string { return p.cfg.Name }

// Close releases what NewPipeline took from its Meter: the callback that
// observes the pipeline's counters, which otherwise keeps the pipeline
// reachable, and observed, as long as the meter lives. Call it once Run
// has returned and the last collection that should count the pipeline is
// done. It closes neither the source nor the sinks; a second Close does
// nothing.
func (p *Pipeline) Close() error {
	if p.metrics == nil || !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	return p.metrics.callback.Unregister()
}

// Stats returns the pipeline's counters; safe to call while it runs.
func (p *Pipeline) Stats() PipelineStats {
	s := PipelineStats{Name: p.cfg.Name, In: p.in.Load(), Out: p.out.Load()}
	for _, st := range p.stages {
		s.Stages = append(s.Stages, st.stats())
	}
	return s
}

func (p *Pipeline) get() []Event {
	if b, ok := p.pool.Get().(*[]Event); ok {
		return (*b)[:0]
	}
	return make([]Event, 0, p.cfg.MaxBatch)
}

func (p *Pipeline) put(b []Event) {
	if cap(b) == 0 || cap(b) > 4*p.cfg.MaxBatch {
		return
	}
	clear(b[:cap(b)])
	b = b[:0]
	p.pool.Put(&b)
}

// Run runs the pipeline until its source ends or ctx is done, and may be
// called once. When ctx is done it stops reading, lets the batches in
// flight through every stage to the sinks, fires the windows that are
// complete, and returns nil; when the source ends it fires every window.
// It returns the first error that stops the pipeline: a source or sink
// failure, or a step failure under the Fail policy. It closes neither the
// source nor the sinks.
func (p *Pipeline) Run(ctx context.Context) error {
	if p.ran.Swap(true) {
		return fmt.Errorf("pipeline[%s]: already ran", p.cfg.Name)
	}
	// work lives until the pipeline fails; ctx only stops the source.
	work, kill := context.WithCancelCause(context.WithoutCancel(ctx))
	defer kill(nil)
	// The source's reads end with ctx, and also when the pipeline fails,
	// so that a source blocked in Read does not keep Run from returning.
	src, stopSrc := context.WithCancel(ctx)
	defer stopSrc()
	defer context.AfterFunc(work, stopSrc)()
	var wg sync.WaitGroup
	ended := make(chan bool, 1) // did the source end (true) or get stopped?
	first := make(chan batch, 1)
	wg.Go(func() { p.read(src, work, kill, first, ended) })
	ch := first
	for _, st := range p.stages {
		in, next := ch, make(chan batch, 1)
		wg.Go(func() { st.run(work, kill, in, next, ended) })
		ch = next
	}
	p.write(work, kill, ch)
	wg.Wait()
	if err := context.Cause(work); err != nil {
		return fmt.Errorf("pipeline[%s]: %w", p.cfg.Name, err)
	}
	return nil
}

// send hands b on, unless the pipeline failed; then it ends b's pass.
func send(work context.Context, ch chan<- batch, b batch) bool {
	select {
	case ch <- b:
		return true
	case <-work.Done():
		b.pass.end(context.Cause(work))
		return false
	}
}

// read forms batches from the source: a batch leaves when it is full or
// MaxWait after its first event. ctx ends with the caller's context and
// when the pipeline fails (work).
func (p *Pipeline) read(ctx, work context.Context, kill context.CancelCauseFunc, out chan<- batch, ended chan<- bool) {
	defer close(out)
	max := p.cfg.MaxBatch
	b := p.get()
	var first time.Time
	for {
		var err error
		if len(b) == 0 {
			b, err = p.cfg.Source.Read(ctx, b, max)
			first = time.Now()
		} else if wait := p.cfg.MaxWait - time.Since(first); wait > 0 {
			rctx, cancel := context.WithTimeout(ctx, wait)
			b, err = p.cfg.Source.Read(rctx, b, max-len(b))
			cancel()
			if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				err = nil
			}
		}
		if len(b) > 0 && (len(b) >= max || err != nil || time.Since(first) >= p.cfg.MaxWait) {
			if !p.emit(work, out, &b) {
				return
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			ended <- true
			return
		case work.Err() != nil:
			return // the pipeline failed
		case ctx.Err() != nil:
			ended <- false
			return
		default:
			kill(fmt.Errorf("source: %w", err))
			return
		}
	}
}

func (p *Pipeline) emit(work context.Context, out chan<- batch, b *[]Event) bool {
	p.in.Add(uint64(len(*b)))
	if p.metrics != nil {
		p.metrics.batchSize.Record(work, int64(len(*b)), p.metrics.pipelineAttrs)
	}
	nb := p.newBatch(work, *b, false)
	if p.acker != nil {
		nb.ack = p.in.Load()
	}
	if !send(work, out, nb) {
		return false
	}
	*b = p.get()
	return true
}

// write hands every batch to the sinks in turn.
func (p *Pipeline) write(work context.Context, kill context.CancelCauseFunc, in <-chan batch) {
	for {
		var b batch
		var ok bool
		select {
		case b, ok = <-in:
		case <-work.Done():
			drain(work, in)
			return
		}
		if !ok {
			return
		}
		err := p.writeBatch(work, b)
		b.pass.end(err)
		if err != nil {
			kill(err)
			drain(work, in)
			return
		}
		p.out.Add(uint64(len(b.ev)))
		p.put(b.ev)
	}
}

// writeBatch writes a batch to every sink, then acknowledges it to the
// source.
func (p *Pipeline) writeBatch(work context.Context, b batch) error {
	if len(b.ev) > 0 {
		b.pass.stamp(b.ev)
		for _, s := range p.cfg.Sinks {
			if err := s.Write(b.pass.context(work), b.ev); err != nil {
				return fmt.Errorf("sink: %w", err)
			}
		}
	}
	if b.ack > 0 {
		if err := p.acker.Ack(work, b.ack); err != nil {
			return fmt.Errorf("source: ack: %w", err)
		}
	}
	return nil
}

// stage runs one Stage of a pipeline.
type stage struct {
	Stage
	p   *Pipeline
	log *slog.Logger

	in, out, failed, skipped, dead, retries, late atomic.Uint64

	logMu    sync.Mutex
	lastLog  time.Time
	unlogged int

	spanName    string                   // "aegis.step KIND NAME"
	attrs       []attribute.KeyValue     // of its spans
	metricAttrs metric.MeasurementOption // of its metrics
}

func newStage(p *Pipeline, s Stage) (*stage, error) {
	if (s.Step == nil) == (s.Aggregation == nil) {
		return nil, fmt.Errorf("step[%s]: needs exactly one of Step and Aggregation", s.Name)
	}
	if s.Workers == 0 {
		s.Workers = 1
	}
	if s.Workers < 0 || (s.Aggregation != nil && s.Workers != 1) {
		return nil, fmt.Errorf("step[%s]: %d workers (an aggregation takes 1)", s.Name, s.Workers)
	}
	pol := &s.OnError
	switch {
	case pol.Action > Retry:
		return nil, fmt.Errorf("step[%s]: unknown %v", s.Name, pol.Action)
	case pol.Then > Retry:
		return nil, fmt.Errorf("step[%s]: then: unknown %v", s.Name, pol.Then)
	case pol.Then == Retry:
		return nil, fmt.Errorf("step[%s]: retry cannot be its own then", s.Name)
	case pol.Retries < 0:
		return nil, fmt.Errorf("step[%s]: %d retries must not be negative", s.Name, pol.Retries)
	case pol.Backoff < 0 || pol.MaxBackoff < 0:
		return nil, fmt.Errorf("step[%s]: backoff %v and max backoff %v must not be negative", s.Name, pol.Backoff, pol.MaxBackoff)
	}
	if pol.Retries == 0 {
		pol.Retries = 3
	}
	if pol.Backoff == 0 {
		pol.Backoff = 100 * time.Millisecond
	}
	if pol.MaxBackoff == 0 {
		pol.MaxBackoff = max(5*time.Second, pol.Backoff)
	}
	if (pol.Action == DeadLetter || pol.Action == Retry && pol.Then == DeadLetter) && pol.DeadLetter == nil {
		return nil, fmt.Errorf("step[%s]: the dead-letter policy needs a sink", s.Name)
	}
	st := &stage{Stage: s, p: p, log: p.log.With("step", s.Name), spanName: strings.Join(strings.Fields("aegis.step "+s.Kind+" "+s.Name), " ")}
	// What names the stage, on its metrics and its spans; the spans also
	// get the stage's own attributes.
	id := []attribute.KeyValue{AttrPipeline.String(p.cfg.Name), AttrStep.String(s.Name), AttrStepKind.String(s.Kind)}
	if s.Plugin != "" {
		id = append(id, AttrPlugin.String(s.Plugin))
	}
	st.metricAttrs = metric.WithAttributeSet(attribute.NewSet(id...))
	st.attrs = append(id, s.Attributes...)
	return st, nil
}

func (st *stage) stats() StageStats {
	s := StageStats{Name: st.Name, Kind: st.Kind, In: st.in.Load(), Out: st.out.Load(), Failed: st.failed.Load(),
		Skipped: st.skipped.Load(), DeadLetter: st.dead.Load(), Retries: st.retries.Load(), Late: st.late.Load()}
	var m any = st.Step
	if st.Aggregation != nil {
		m = st.Aggregation.agg
	}
	if m, ok := m.(Metered); ok {
		s.Fuel = m.Fuel()
	}
	return s
}

// run processes the batches of in and hands the outputs to out, in order.
func (st *stage) run(work context.Context, kill context.CancelCauseFunc, in <-chan batch, out chan<- batch, ended chan bool) {
	defer close(out)
	if st.Workers == 1 {
		for b := range in {
			res, err := st.batch(work, b)
			if err != nil {
				kill(err)
				drain(work, in)
				return
			}
			if !st.pass(work, out, res) {
				drain(work, in)
				return
			}
		}
	} else {
		st.parallel(work, kill, in, out)
	}
	if work.Err() != nil || st.Aggregation == nil {
		return
	}
	// The stream ended (or was stopped): fire the windows.
	all := <-ended
	ended <- all // for the next aggregation
	b := st.p.newBatch(work, nil, true)
	res, err := st.Aggregation.Flush(b.pass.context(work), st.p.get(), all)
	if err != nil {
		err = fmt.Errorf("step[%s]: flush: %w", st.Name, err)
		b.pass.end(err)
		kill(err)
		return
	}
	st.out.Add(uint64(len(res)))
	b.ev = res
	st.pass(work, out, b)
}

// pass hands a stage's output on; a batch left empty ends there.
func (st *stage) pass(work context.Context, out chan<- batch, b batch) bool {
	if len(b.ev) == 0 && b.ack == 0 {
		b.pass.end(nil)
		st.p.put(b.ev)
		return true
	}
	return send(work, out, b)
}

// drain ends the passes of the batches left in in once the pipeline has
// failed; in closes when the goroutine before has seen the failure.
func drain(work context.Context, in <-chan batch) {
	for b := range in {
		b.pass.end(context.Cause(work))
	}
}

// newBatch makes a batch of events, and starts its pass when the
// pipeline traces.
func (p *Pipeline) newBatch(work context.Context, events []Event, flush bool) batch {
	b := batch{ev: events}
	if p.cfg.Tracer != nil {
		b.pass = p.startPass(work, events, flush)
	}
	return b
}

// parallel runs Workers batches at once and sends the outputs in input
// order.
func (st *stage) parallel(work context.Context, kill context.CancelCauseFunc, in <-chan batch, out chan<- batch) {
	type job struct {
		b   batch
		res chan batch
	}
	jobs := make(chan job, st.Workers)
	order := make(chan chan batch, st.Workers)
	var wg sync.WaitGroup
	for range st.Workers {
		wg.Go(func() {
			for j := range jobs {
				res, err := st.batch(work, j.b)
				if err != nil {
					kill(err)
				}
				j.res <- res
			}
		})
	}
	go func() {
		defer close(order)
		defer close(jobs)
		for b := range in {
			j := job{b, make(chan batch, 1)}
			select {
			case order <- j.res:
			case <-work.Done():
				b.pass.end(context.Cause(work))
				drain(work, in)
				return
			}
			jobs <- j
		}
	}()
	for r := range order {
		// After a failure nothing more is sent: this only drains the
		// workers.
		res := <-r
		if work.Err() != nil {
			res.pass.end(context.Cause(work))
			continue
		}
		st.pass(work, out, res)
	}
	wg.Wait()
}

// batch processes one batch under the error policy and returns its
// outputs, or the error that fails the pipeline (and ends the batch's
// pass).
func (st *stage) batch(work context.Context, b batch) (batch, error) {
	in := b.ev
	if len(in) == 0 {
		return b, nil // emptied before, passed on for its ack
	}
	st.in.Add(uint64(len(in)))
	ctx := work
	var t *stepTrace
	if b.pass != nil {
		ctx, t = st.startStep(b.pass, in)
	}
	var start time.Time
	if st.p.metrics != nil {
		start = time.Now()
	}
	out, err := st.handle(ctx, in, st.p.get())
	if st.p.metrics != nil {
		st.p.metrics.stepDuration(work, st, time.Since(start))
	}
	st.p.put(in)
	if t != nil {
		t.end(len(out), err)
	}
	if err != nil {
		b.pass.end(err)
		return batch{}, err
	}
	st.out.Add(uint64(len(out)))
	b.ev = out
	return b, nil
}

// fatalError is a failure that no error policy applies to: the pipeline
// stops with it.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// call runs the step once; an aggregation's late events go to Late. A
// failure to write them is a *fatalError: the aggregation has taken the
// batch, so it must not run again.
func (st *stage) call(ctx context.Context, in, out []Event) ([]Event, error) {
	res, err := st.callStep(ctx, in, out)
	if err != nil {
		callFailed(ctx, err)
	}
	return res, err
}

func (st *stage) callStep(ctx context.Context, in, out []Event) ([]Event, error) {
	if st.Step != nil {
		res, err := st.Step.Process(ctx, in, out)
		var ee *EventErrors
		if errors.As(err, &ee) {
			// The indices must name events of in, in order, or the failed
			// events cannot be told apart: a failure of the whole batch.
			for i, e := range ee.Errors {
				if e.Index < 0 || e.Index >= len(in) || i > 0 && e.Index <= ee.Errors[i-1].Index {
					// Not wrapped: the event errors are not to be used.
					return res, fmt.Errorf("the step reported a failure of event %d of a batch of %d (out of range or out of order): %v", e.Index, len(in), err)
				}
			}
			if len(ee.Errors) == 0 {
				return res, nil
			}
		}
		return res, err
	}
	var late []Event
	out, late, err := st.Aggregation.Process(ctx, in, out, nil)
	if len(late) > 0 {
		st.late.Add(uint64(len(late)))
		if st.Late != nil {
			if lerr := st.Late.Write(ctx, late); lerr != nil {
				return out, &fatalError{fmt.Errorf("step[%s]: late events: %w", st.Name, lerr)}
			}
		}
	}
	return out, err
}

// handle applies the error policy around call.
func (st *stage) handle(work context.Context, in, out []Event) ([]Event, error) {
	pol := &st.OnError
	n := len(out)
	res, err := st.call(work, in, out)
	var fatal *fatalError
	if errors.As(err, &fatal) {
		return nil, fatal.err
	}
	for try := 1; err != nil && pol.Action == Retry && try <= pol.Retries && work.Err() == nil; try++ {
		var ee *EventErrors
		if errors.As(err, &ee) && st.Aggregation != nil {
			// The aggregation kept the other events: retry the failed ones.
			break
		}
		st.retries.Add(1)
		st.log.Warn("retrying", "try", try, "of", pol.Retries, "error", err)
		if !sleep(work, backoff(pol, try)) {
			return nil, context.Cause(work)
		}
		res, err = st.call(work, in, out[:n])
		if errors.As(err, &fatal) {
			return nil, fatal.err
		}
	}
	if err == nil {
		return res, nil
	}
	var ee *EventErrors
	if errors.As(err, &ee) {
		return st.eventErrors(work, in, res, ee)
	}
	if work.Err() != nil {
		return nil, context.Cause(work)
	}
	action := pol.final()
	if action == Fail || len(in) == 1 {
		st.failedEvents(work, len(in))
		if action == Fail {
			return nil, fmt.Errorf("step[%s]: %w", st.Name, err)
		}
		return out[:n], st.reject(work, in, []EventError{{Message: err.Error()}}, action)
	}
	// Isolate the events that fail alone.
	out = out[:n]
	for i := range in {
		m := len(out)
		res, e := st.call(work, in[i:i+1], out)
		if e == nil {
			out = res
			continue
		}
		if errors.As(e, &fatal) {
			return nil, fatal.err
		}
		if errors.As(e, &ee) {
			out = res // the outputs of the others, if any
			if err := st.rejectErrors(work, in[i:i+1], ee, action); err != nil {
				return nil, err
			}
			continue
		}
		if work.Err() != nil {
			return nil, context.Cause(work)
		}
		// A failed call's output is to be ignored (it may be nil): go on
		// with out as it was.
		out = out[:m]
		st.failedEvents(work, 1)
		if err := st.reject(work, in[i:i+1], []EventError{{Message: e.Error()}}, action); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// eventErrors handles per-event failures: the other events' outputs are in
// res. An aggregation under Retry retries the failed events alone.
func (st *stage) eventErrors(work context.Context, in, res []Event, ee *EventErrors) ([]Event, error) {
	pol := &st.OnError
	if st.Aggregation != nil && pol.Action == Retry {
		for try := 1; try <= pol.Retries; try++ {
			failed := pick(in, ee.Errors)
			st.retries.Add(1)
			if !sleep(work, backoff(pol, try)) {
				return nil, context.Cause(work)
			}
			r, err := st.call(work, failed, res)
			if err == nil {
				return r, nil
			}
			var fatal *fatalError
			var again *EventErrors
			switch {
			case errors.As(err, &fatal):
				return nil, fatal.err
			case errors.As(err, &again):
				res, in, ee = r, failed, again
			case work.Err() != nil:
				return nil, context.Cause(work)
			default:
				// A failure of the whole call leaves the aggregation as it
				// was: try the same events again.
			}
		}
	}
	if err := st.rejectErrors(work, in, ee, pol.final()); err != nil {
		return nil, err
	}
	return res, nil
}

func (st *stage) rejectErrors(work context.Context, in []Event, ee *EventErrors, action ErrorAction) error {
	st.failedEvents(work, len(ee.Errors))
	if action == Fail {
		named := *ee // the step's error is not ours to change
		named.Step = st.Name
		return &named
	}
	return st.reject(work, pick(in, ee.Errors), ee.Errors, action)
}

// reject skips or dead-letters events; errs[i] is why events[i] failed
// (one error for all when len(errs) is 1).
func (st *stage) reject(work context.Context, events []Event, errs []EventError, action ErrorAction) error {
	if action == Skip {
		st.skipped.Add(uint64(len(events)))
		st.logSkip(events, errs)
		return nil
	}
	dead := make([]Event, len(events))
	for i := range events {
		e := errs[min(i, len(errs)-1)]
		d := events[i].Clone()
		d.SetMeta(MetaError, e.Message)
		d.SetMeta(MetaErrorStep, st.Name)
		d.SetMeta(MetaErrorPipeline, st.p.cfg.Name)
		if st.Plugin != "" {
			d.SetMeta(MetaErrorPlugin, st.Plugin)
		}
		if e.Code != 0 {
			d.SetMeta(MetaErrorCode, strconv.FormatUint(uint64(e.Code), 10))
		}
		dead[i] = d
	}
	if err := st.OnError.DeadLetter.Write(work, dead); err != nil {
		return fmt.Errorf("step[%s]: dead letter: %w", st.Name, err)
	}
	st.dead.Add(uint64(len(events)))
	return nil
}

// logSkip logs skipped events, at most once a second per stage.
func (st *stage) logSkip(events []Event, errs []EventError) {
	st.logMu.Lock()
	defer st.logMu.Unlock()
	if time.Since(st.lastLog) < time.Second {
		st.unlogged += len(events)
		return
	}
	st.log.Warn("skipped events", "events", len(events), "error", errs[0].Message, "event", events[0].ID, "unlogged_before", st.unlogged)
	st.lastLog, st.unlogged = time.Now(), 0
}

// pick returns the events errs name, in order.
func pick(in []Event, errs []EventError) []Event {
	out := make([]Event, 0, len(errs))
	for _, e := range errs {
		if e.Index >= 0 && e.Index < len(in) {
			out = append(out, in[e.Index])
		}
	}
	return out
}

func (pol *ErrorPolicy) final() ErrorAction {
	if pol.Action == Retry {
		return pol.Then
	}
	return pol.Action
}

func backoff(pol *ErrorPolicy, try int) time.Duration {
	d := pol.Backoff
	for i := 1; i < try && d < pol.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, pol.MaxBackoff)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
