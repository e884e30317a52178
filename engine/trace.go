package engine

import (
	"context"
	"errors"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Metadata keys of the W3C trace context an event carries. An event
// published with a traceparent continues that trace through the pipelines
// it passes; a pipeline that traces gives the events it writes the
// traceparent of its pass (see [PipelineConfig.Tracer]).
const (
	MetaTraceParent = "traceparent"
	MetaTraceState  = "tracestate"
)

// maxLinks is the most span links a pass keeps to the traces of the events
// it merged (the SDK's default limit per span).
const maxLinks = 128

// Attribute keys of the spans and metrics of pipelines.
const (
	AttrPipeline     = attribute.Key("aegis.pipeline")
	AttrStep         = attribute.Key("aegis.step")
	AttrStepKind     = attribute.Key("aegis.step.kind")
	AttrPlugin       = attribute.Key("aegis.plugin.name")
	AttrPluginSHA256 = attribute.Key("aegis.plugin.sha256")
	AttrABIVersion   = attribute.Key("aegis.abi.version")
	AttrEvents       = attribute.Key("aegis.events")
	AttrEventsIn     = attribute.Key("aegis.events.in")
	AttrEventsOut    = attribute.Key("aegis.events.out")
	AttrEventsFailed = attribute.Key("aegis.events.errored")
	AttrBytesIn      = attribute.Key("aegis.bytes.in")
	AttrLinks        = attribute.Key("aegis.links")
	AttrFlush        = attribute.Key("aegis.flush")
	// AttrErrorType is the kind of a failure: what an error's ErrorType
	// method says (a WebAssembly step's "trap", "fuel", "deadline", ...),
	// "event" for failures of single events.
	AttrErrorType = attribute.Key("error.type")
)

// traceContext is the W3C propagator; it keeps no state.
var traceContext propagation.TraceContext

// metaCarrier carries trace context in an event's metadata.
type metaCarrier map[string]string

func (m metaCarrier) Get(key string) string { return m[key] }
func (m metaCarrier) Set(key, value string) { m[key] = value }
func (m metaCarrier) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// spanContextOf returns the trace context an event's metadata carries.
func spanContextOf(meta map[string]string) trace.SpanContext {
	return trace.SpanContextFromContext(traceContext.Extract(context.Background(), metaCarrier(meta)))
}

// batch is a batch of events on its way through a pipeline, with the
// trace of its pass when the pipeline traces.
type batch struct {
	ev   []Event
	pass *pass // nil when the pipeline does not trace
	// ack is how many events the source had returned when the batch
	// formed, to acknowledge once the batch is written; 0 when the source
	// takes no acknowledgements (and for a flush).
	ack uint64
}

// pass is the trace of one batch's pass through a pipeline: its span, and
// the trace context it gives the events it writes.
type pass struct {
	ctx  context.Context // the pipeline's work context, with the span
	span trace.Span
	// parent is the traceparent every event of the batch carried, which
	// the pass continues; "" when the pass started a trace.
	parent string
	// traceparent and tracestate are the pass's own, for its outputs.
	traceparent, tracestate string
	// parsed holds the traceparents of the batch that were read, and
	// whether each is valid: the events of one that is not get the pass's,
	// as if they had none.
	parsed map[string]bool
}

// startPass starts the span of a batch's pass through the pipeline. When
// every event of the batch carries the same trace context, the pass
// continues that trace; otherwise it starts one and links the traces of
// the events that carry one (at most maxLinks), so that no event's trace
// is made the parent of another's work.
func (p *Pipeline) startPass(work context.Context, events []Event, flush bool) *pass {
	var (
		first   string
		same    = len(events) > 0
		links   []trace.Link
		parsed  map[string]bool // traceparents read: valid or not
		last    string
		linksOK = true
	)
	for i := range events {
		tp := events[i].Metadata[MetaTraceParent]
		if i == 0 {
			first = tp
		}
		if tp != first {
			same = false
		}
		if tp == "" || tp == last || !linksOK {
			continue
		}
		last = tp
		if parsed == nil {
			parsed = make(map[string]bool, 4)
		}
		if _, ok := parsed[tp]; ok {
			continue
		}
		sc := spanContextOf(events[i].Metadata)
		parsed[tp] = sc.IsValid()
		if sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
			linksOK = len(links) < maxLinks
		}
	}
	attrs := []attribute.KeyValue{AttrPipeline.String(p.cfg.Name), AttrEvents.Int(len(events))}
	if flush {
		attrs = append(attrs, AttrFlush.Bool(true))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	ps := &pass{parsed: parsed}
	ctx := work
	if same && first != "" && len(links) == 1 {
		ctx = trace.ContextWithRemoteSpanContext(ctx, links[0].SpanContext)
		ps.parent = first
	} else {
		opts = append(opts, trace.WithNewRoot())
		if len(links) > 0 {
			opts = append(opts, trace.WithLinks(links...))
			attrs = append(attrs, AttrLinks.Int(len(links)))
		}
	}
	opts = append(opts, trace.WithAttributes(attrs...))
	ps.ctx, ps.span = p.cfg.Tracer.Start(ctx, p.passName, opts...)
	carrier := metaCarrier{}
	traceContext.Inject(ps.ctx, carrier)
	ps.traceparent, ps.tracestate = carrier[MetaTraceParent], carrier[MetaTraceState]
	return ps
}

// context is the context of the pass's work: work with its span, or work
// itself when the pipeline does not trace (ps nil).
func (ps *pass) context(work context.Context) context.Context {
	if ps == nil {
		return work
	}
	return ps.ctx
}

// end ends the pass; err is what stopped the batch, if anything.
func (ps *pass) end(err error) {
	if ps == nil {
		return
	}
	if err != nil {
		ps.span.RecordError(err, trace.WithAttributes(AttrErrorType.String(errorType(err))))
		ps.span.SetStatus(codes.Error, err.Error())
	}
	ps.span.End()
}

// stamp gives the events the pass writes its trace context: those that
// came without one (the pass started their trace) and those that carried
// the one it continued, those a step made (an aggregation's results), and
// those whose traceparent does not parse. An event that brought a trace of
// its own keeps it: the pass only links to it. Events without metadata share one map:
// metadata is immutable once an event is out, like the rest of it.
func (ps *pass) stamp(events []Event) {
	if ps == nil {
		return
	}
	var shared map[string]string
	for i := range events {
		e := &events[i]
		if tp := e.Metadata[MetaTraceParent]; tp != "" && tp != ps.parent {
			if valid, read := ps.parsed[tp]; !read || valid {
				continue
			}
		}
		if len(e.Metadata) == 0 {
			if shared == nil {
				shared = map[string]string{MetaTraceParent: ps.traceparent}
				if ps.tracestate != "" {
					shared[MetaTraceState] = ps.tracestate
				}
			}
			e.Metadata = shared
			continue
		}
		*e = e.Clone()
		e.Metadata[MetaTraceParent] = ps.traceparent
		if ps.tracestate != "" {
			e.Metadata[MetaTraceState] = ps.tracestate
		} else {
			delete(e.Metadata, MetaTraceState)
		}
	}
}

// stepTrace is the span of a step's call for one batch, and the events it
// failed on.
type stepTrace struct {
	span   trace.Span
	failed int
}

type stepTraceKey struct{}

// startStep starts the span of the stage's work on a batch, a child of
// the batch's pass; ctx carries it into the step (a plugin's log lines
// become its events).
func (st *stage) startStep(ps *pass, in []Event) (context.Context, *stepTrace) {
	bytes := EventBatch{Events: in}.Size()
	attrs := make([]attribute.KeyValue, 0, len(st.attrs)+2)
	attrs = append(append(attrs, st.attrs...), AttrEventsIn.Int(len(in)), AttrBytesIn.Int(bytes))
	ctx, span := st.p.cfg.Tracer.Start(ps.ctx, st.spanName, trace.WithAttributes(attrs...))
	t := &stepTrace{span: span}
	return context.WithValue(ctx, stepTraceKey{}, t), t
}

// end ends the step's span: out is how many events it passed on, err what
// failed the pipeline.
func (t *stepTrace) end(out int, err error) {
	t.span.SetAttributes(AttrEventsOut.Int(out), AttrEventsFailed.Int(t.failed))
	switch {
	case err != nil:
		t.span.SetStatus(codes.Error, err.Error())
	case t.failed > 0:
		t.span.SetStatus(codes.Error, strconv.Itoa(t.failed)+" events failed")
	}
	t.span.End()
}

// failedEvents counts events the stage failed on, in its counters and in
// the span of the batch.
func (st *stage) failedEvents(ctx context.Context, n int) {
	st.failed.Add(uint64(n))
	if t, ok := ctx.Value(stepTraceKey{}).(*stepTrace); ok {
		t.failed += n
	}
}

// callFailed records a failed call of the step on its span: a trap, a
// limit, the failures of single events.
func callFailed(ctx context.Context, err error) {
	t, ok := ctx.Value(stepTraceKey{}).(*stepTrace)
	if !ok || !t.span.IsRecording() {
		return
	}
	span := t.span
	var ee *EventErrors
	if errors.As(err, &ee) && len(ee.Errors) > 0 {
		span.AddEvent("event errors", trace.WithAttributes(AttrErrorType.String("event"),
			attribute.Int("aegis.events.failed", len(ee.Errors)),
			attribute.Int("aegis.event.index", ee.Errors[0].Index),
			attribute.String("exception.message", ee.Errors[0].Message)))
		return
	}
	span.RecordError(err, trace.WithAttributes(AttrErrorType.String(errorType(err))))
}

// errorType names the kind of a failure for the error.type attribute: what
// the error's ErrorType method says, else a generic name.
func errorType(err error) string {
	var typed interface{ ErrorType() string }
	var ee *EventErrors
	switch {
	case errors.As(err, &typed):
		return typed.ErrorType()
	case errors.As(err, &ee):
		return "event"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "error"
}
