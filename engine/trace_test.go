package engine_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/aegis-streaming/aegis/engine"
)

// Helpers of the tracing tests; their names start with "ot".

// otTrace is a tracer whose spans a recorder keeps.
type otTrace struct {
	rec    *tracetest.SpanRecorder
	tracer trace.Tracer
}

func otNew(t testing.TB, opts ...sdktrace.TracerProviderOption) *otTrace {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(rec)}, opts...)...)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &otTrace{rec: rec, tracer: tp.Tracer("test")}
}

// spans checks that every span started has ended and returns the spans in
// the order they started.
func (o *otTrace) spans(t testing.TB) []sdktrace.ReadOnlySpan {
	t.Helper()
	ended := make(map[trace.SpanID]sdktrace.ReadOnlySpan)
	for _, s := range o.rec.Ended() {
		ended[s.SpanContext().SpanID()] = s
	}
	var out []sdktrace.ReadOnlySpan
	var open []string
	for _, s := range o.rec.Started() {
		if e, ok := ended[s.SpanContext().SpanID()]; ok {
			out = append(out, e)
		} else {
			open = append(open, s.Name())
		}
	}
	if len(open) > 0 || len(out) != len(ended) {
		t.Errorf("%d spans started, %d ended; never ended: %q", len(o.rec.Started()), len(ended), open)
	}
	return out
}

// otNamed returns the spans called name, in order.
func otNamed(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// otChildren returns the children of parent, in order.
func otChildren(spans []sdktrace.ReadOnlySpan, parent sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Parent().SpanID() == parent.SpanContext().SpanID() && s.Parent().TraceID() == parent.SpanContext().TraceID() {
			out = append(out, s)
		}
	}
	return out
}

func otNames(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name()
	}
	return out
}

func otAttr(attrs []attribute.KeyValue, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range attrs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// otHasAttrs checks that attrs hold want (and lack every key of absent).
func otHasAttrs(t testing.TB, what string, attrs []attribute.KeyValue, want []attribute.KeyValue, absent ...attribute.Key) {
	t.Helper()
	for _, w := range want {
		v, ok := otAttr(attrs, w.Key)
		if !ok {
			t.Errorf("%s: no attribute %s (want %s)", what, w.Key, w.Value.String())
		} else if v.Type() != w.Value.Type() || v.String() != w.Value.String() {
			t.Errorf("%s: %s = %s (%v), want %s (%v)", what, w.Key, v.String(), v.Type(), w.Value.String(), w.Value.Type())
		}
	}
	for _, k := range absent {
		if v, ok := otAttr(attrs, k); ok {
			t.Errorf("%s: attribute %s = %s, want none", what, k, v.String())
		}
	}
}

// otEvent returns the span's event called name; ok is false if none.
func otEvent(s sdktrace.ReadOnlySpan, name string) (sdktrace.Event, bool) {
	for _, e := range s.Events() {
		if e.Name == name {
			return e, true
		}
	}
	return sdktrace.Event{}, false
}

// otContext is the trace context an event's metadata carries.
func otContext(meta map[string]string) trace.SpanContext {
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(meta)))
}

// otSame reports whether a and b are the same span of the same trace.
func otSame(a, b trace.SpanContext) bool {
	return a.TraceID() == b.TraceID() && a.SpanID() == b.SpanID()
}

var otSampledTP = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)

// otEvents returns plEvent(0..n-1).
func otEvents(n int) []engine.Event {
	out := make([]engine.Event, n)
	for i := range out {
		out[i] = plEvent(int64(i))
	}
	return out
}

// otChunks cuts events into the batches of a slice source with max.
func otChunks(events []engine.Event, max int) [][]engine.Event {
	var out [][]engine.Event
	for len(events) > 0 {
		n := min(max, len(events))
		out = append(out, events[:n])
		events = events[n:]
	}
	return out
}

// otWith returns e with the given metadata (key, value, key, value...).
func otWith(e engine.Event, kv ...string) engine.Event {
	e = e.Clone()
	for i := 0; i+1 < len(kv); i += 2 {
		e.SetMeta(kv[i], kv[i+1])
	}
	return e
}

func otEven(e *engine.Event) bool { return plNum(*e)%2 == 0 }

// A W3C trace context from outside, with a trace state.
const (
	otParentTP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	otParentTS = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	otOtherTP  = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

func TestPipelineTraceSpans(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ n, maxBatch int }{{1, 1}, {10, 3}, {10, 10}, {64, 8}, {7, 100}} {
		t.Run(fmt.Sprintf("%d events by %d", tc.n, tc.maxBatch), func(t *testing.T) {
			t.Parallel()
			o := otNew(t)
			events := otEvents(tc.n)
			sink := newPLSink()
			extra := []attribute.KeyValue{attribute.String("aegis.plugin.sha256", "abc"), attribute.Int("aegis.abi", 2)}
			p := plNew(t, engine.PipelineConfig{Name: "spans", Source: &plSliceSource{events: slices.Clone(events)},
				Stages: []engine.Stage{
					{Name: "tag", Kind: "map", Plugin: "tagger", Step: plPass, Attributes: extra},
					{Name: "even", Kind: "filter", Step: engine.FilterStep{Filter: engine.FilterFunc(otEven)}},
				},
				Sinks: []engine.Sink{sink}, MaxBatch: tc.maxBatch, Tracer: o.tracer})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			spans := o.spans(t)
			batches := otChunks(events, tc.maxBatch)
			if len(spans) != 3*len(batches) {
				t.Errorf("%d spans %q, want %d (a pass and 2 steps for each of %d batches)", len(spans), otNames(spans), 3*len(batches), len(batches))
			}
			passes := otNamed(spans, "aegis.pipeline spans")
			if len(passes) != len(batches) {
				t.Fatalf("%d passes, want %d", len(passes), len(batches))
			}
			byPass := make(map[trace.SpanID]int) // the batch of each pass
			for k, ps := range passes {
				what := fmt.Sprintf("pass %d", k)
				byPass[ps.SpanContext().SpanID()] = k
				b := batches[k]
				evens := 0
				for i := range b {
					if otEven(&b[i]) {
						evens++
					}
				}
				if ps.SpanKind() != trace.SpanKindConsumer {
					t.Errorf("%s: kind %v, want consumer", what, ps.SpanKind())
				}
				if ps.Parent().IsValid() {
					t.Errorf("%s: parent %v, want none (a root)", what, ps.Parent())
				}
				if ps.Status().Code != codes.Unset {
					t.Errorf("%s: status %v", what, ps.Status())
				}
				otHasAttrs(t, what, ps.Attributes(), []attribute.KeyValue{
					engine.AttrPipeline.String("spans"), engine.AttrEvents.Int(len(b))}, engine.AttrLinks, engine.AttrFlush)
				steps := otChildren(spans, ps)
				if got := otNames(steps); !slices.Equal(got, []string{"aegis.step map tag", "aegis.step filter even"}) {
					t.Fatalf("%s: children %q", what, got)
				}
				bytes := engine.EventBatch{Events: b}.Size()
				otHasAttrs(t, what+" tag", steps[0].Attributes(), append([]attribute.KeyValue{
					engine.AttrPipeline.String("spans"), engine.AttrStep.String("tag"), engine.AttrStepKind.String("map"),
					engine.AttrPlugin.String("tagger"), engine.AttrEventsIn.Int(len(b)), engine.AttrEventsOut.Int(len(b)),
					engine.AttrEventsFailed.Int(0), engine.AttrBytesIn.Int(bytes)}, extra...))
				otHasAttrs(t, what+" even", steps[1].Attributes(), []attribute.KeyValue{
					engine.AttrPipeline.String("spans"), engine.AttrStep.String("even"), engine.AttrStepKind.String("filter"),
					engine.AttrEventsIn.Int(len(b)), engine.AttrEventsOut.Int(evens),
					engine.AttrEventsFailed.Int(0), engine.AttrBytesIn.Int(bytes)}, engine.AttrPlugin, "aegis.plugin.sha256")
				for _, st := range steps {
					if st.SpanContext().TraceID() != ps.SpanContext().TraceID() {
						t.Errorf("%s: step %s in trace %v, want the pass's %v", what, st.Name(), st.SpanContext().TraceID(), ps.SpanContext().TraceID())
					}
					if st.Status().Code != codes.Unset || st.SpanKind() != trace.SpanKindInternal {
						t.Errorf("%s: step %s: status %v, kind %v", what, st.Name(), st.Status(), st.SpanKind())
					}
				}
			}
			// Every event written carries the context of its batch's pass.
			out := sink.Events()
			if want := plRange(0, int64(tc.n)); !slices.Equal(plNums(out), slices.DeleteFunc(want, func(i int64) bool { return i%2 != 0 })) {
				t.Errorf("sink got %v", plNums(out))
			}
			for _, e := range out {
				sc := otContext(e.Metadata)
				k, ok := byPass[sc.SpanID()]
				if !ok || !otSame(sc, passes[k].SpanContext()) || int(plNum(e))/tc.maxBatch != k {
					t.Errorf("event %d: traceparent %q is not its pass's (batch %d)", plNum(e), e.Metadata[engine.MetaTraceParent], int(plNum(e))/tc.maxBatch)
				}
			}
		})
	}
}

// Events without trace context get the pass's; the source's events are
// not changed, and their other metadata is kept.
func TestPipelineTraceStampsEventsWithoutContext(t *testing.T) {
	t.Parallel()
	o := otNew(t)
	events := otEvents(12)
	for i := range events {
		if i%3 == 0 {
			events[i] = otWith(events[i], "k", fmt.Sprint(i))
		}
	}
	orig := make([]engine.Event, len(events))
	for i := range events {
		orig[i] = events[i].Clone()
	}
	sink := newPLSink()
	p := plNew(t, engine.PipelineConfig{Name: "stamp", Source: &plSliceSource{events: slices.Clone(events)},
		Stages: []engine.Stage{{Name: "pass", Kind: "map", Step: plPass}},
		Sinks:  []engine.Sink{sink}, MaxBatch: 5, Tracer: o.tracer})
	if err := plRun(t, t.Context(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	passes := otNamed(o.spans(t), "aegis.pipeline stamp")
	if len(passes) != 3 {
		t.Fatalf("%d passes, want 3", len(passes))
	}
	out := sink.Events()
	if !slices.Equal(plNums(out), plRange(0, 12)) {
		t.Fatalf("sink got %v", plNums(out))
	}
	for i, e := range out {
		tp := e.Metadata[engine.MetaTraceParent]
		if !otSampledTP.MatchString(tp) {
			t.Errorf("event %d: traceparent %q, want 00-<trace>-<span>-01", i, tp)
		}
		ps := passes[i/5]
		if sc := otContext(e.Metadata); !otSame(sc, ps.SpanContext()) || !sc.IsSampled() {
			t.Errorf("event %d: traceparent %q, want the pass's %v", i, tp, ps.SpanContext())
		}
		if _, ok := e.Metadata[engine.MetaTraceState]; ok {
			t.Errorf("event %d: tracestate %q, want none", i, e.Metadata[engine.MetaTraceState])
		}
		if i%3 == 0 && e.Metadata["k"] != fmt.Sprint(i) {
			t.Errorf("event %d lost its metadata: %v", i, e.Metadata)
		}
		if len(e.Metadata) != 1+len(orig[i].Metadata) {
			t.Errorf("event %d: metadata %v, want %v and a traceparent", i, e.Metadata, orig[i].Metadata)
		}
	}
	for i := range events {
		if !maps.Equal(events[i].Metadata, orig[i].Metadata) {
			t.Errorf("the source's event %d was changed: metadata %v, was %v", i, events[i].Metadata, orig[i].Metadata)
		}
	}
}

// A batch whose events all carry one trace context continues that trace.
func TestPipelineTraceContinuesTheEventsTrace(t *testing.T) {
	t.Parallel()
	parentOf := func(t *testing.T, o *otTrace, how string) (meta map[string]string, parent trace.SpanContext) {
		switch how {
		case "fixed":
			meta = map[string]string{engine.MetaTraceParent: otParentTP, engine.MetaTraceState: otParentTS}
		case "span":
			// A producer's span, under a remote parent with a trace state.
			ts, err := trace.ParseTraceState(otParentTS)
			if err != nil {
				t.Fatal(err)
			}
			remote := otContext(map[string]string{engine.MetaTraceParent: otOtherTP}).WithTraceState(ts)
			ctx, span := o.tracer.Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "producer",
				trace.WithSpanKind(trace.SpanKindProducer))
			meta = map[string]string{}
			propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(meta))
			span.End()
		}
		return meta, otContext(meta)
	}
	for _, how := range []string{"fixed", "span"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			o := otNew(t)
			meta, parent := parentOf(t, o, how)
			if !parent.IsValid() || meta[engine.MetaTraceState] != otParentTS {
				t.Fatalf("bad parent %v from %v", parent, meta)
			}
			events := otEvents(9)
			for i := range events {
				events[i] = otWith(events[i], engine.MetaTraceParent, meta[engine.MetaTraceParent], engine.MetaTraceState, meta[engine.MetaTraceState])
			}
			sink := newPLSink()
			p := plNew(t, engine.PipelineConfig{Name: "cont", Source: &plSliceSource{events: events},
				Stages: []engine.Stage{{Name: "a", Kind: "map", Step: plPass}, {Name: "b", Kind: "map", Step: plPass}},
				Sinks:  []engine.Sink{sink}, MaxBatch: 4, Tracer: o.tracer})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			spans := o.spans(t)
			passes := otNamed(spans, "aegis.pipeline cont")
			if len(passes) != 3 {
				t.Fatalf("%d passes, want 3", len(passes))
			}
			for k, ps := range passes {
				if !otSame(ps.Parent(), parent) || !ps.Parent().IsRemote() {
					t.Errorf("pass %d: parent %v, want the events' %v", k, ps.Parent(), parent)
				}
				if ps.SpanContext().TraceState().String() != otParentTS {
					t.Errorf("pass %d: trace state %q, want %q", k, ps.SpanContext().TraceState(), otParentTS)
				}
				if len(ps.Links()) != 0 {
					t.Errorf("pass %d: links %v, want none", k, ps.Links())
				}
				otHasAttrs(t, fmt.Sprintf("pass %d", k), ps.Attributes(), nil, engine.AttrLinks)
				for _, st := range otChildren(spans, ps) {
					if st.SpanContext().TraceID() != parent.TraceID() {
						t.Errorf("pass %d: step %s in trace %v, want %v", k, st.Name(), st.SpanContext().TraceID(), parent.TraceID())
					}
				}
				if n := len(otChildren(spans, ps)); n != 2 {
					t.Errorf("pass %d: %d steps, want 2", k, n)
				}
			}
			out := sink.Events()
			if !slices.Equal(plNums(out), plRange(0, 9)) {
				t.Fatalf("sink got %v", plNums(out))
			}
			for i, e := range out {
				sc := otContext(e.Metadata)
				if !otSame(sc, passes[i/4].SpanContext()) || sc.TraceID() != parent.TraceID() {
					t.Errorf("event %d: traceparent %q, want pass %d's %v", i, e.Metadata[engine.MetaTraceParent], i/4, passes[i/4].SpanContext())
				}
				if ts := e.Metadata[engine.MetaTraceState]; ts != otParentTS {
					t.Errorf("event %d: tracestate %q, want %q", i, ts, otParentTS)
				}
			}
		})
	}
}

// A batch of events of several traces, or of some traces and none, starts
// a trace that links to theirs; an event keeps the trace it brought.
func TestPipelineTraceLinksMixedTraces(t *testing.T) {
	t.Parallel()
	const a, b = "a", "b"
	ctxA := map[string]string{engine.MetaTraceParent: otParentTP, engine.MetaTraceState: "a=1"}
	ctxB := map[string]string{engine.MetaTraceParent: otOtherTP}
	many := make([]string, 200)
	for i := range many {
		many[i] = fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)
	}
	for _, tc := range []struct {
		name    string
		pattern []string // a, b, "" (none), or a traceparent
		links   int
		invalid bool // some traceparents are not valid
	}{
		{"two traces and none", []string{a, "", b, a, "", b, b, ""}, 2, false},
		{"two traces", []string{a, b, a, b, a, b}, 2, false},
		{"one trace and none", []string{a, "", a}, 1, false},
		{"none and one trace", []string{"", "", b}, 1, false},
		{"more traces than links", many, 128, false},
		{"an invalid traceparent", []string{a, "garbage", "", "00-00000000000000000000000000000000-0000000000000000-01"}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := otNew(t)
			events := otEvents(len(tc.pattern))
			var want []trace.SpanContext
			for i, c := range tc.pattern {
				var meta map[string]string
				switch c {
				case "":
				case a:
					meta = ctxA
				case b:
					meta = ctxB
				default:
					meta = map[string]string{engine.MetaTraceParent: c}
				}
				for k, v := range meta {
					events[i].SetMeta(k, v)
				}
				if sc := otContext(meta); sc.IsValid() && !slices.ContainsFunc(want, func(w trace.SpanContext) bool { return otSame(w, sc) }) {
					want = append(want, sc)
				}
			}
			orig := make([]engine.Event, len(events))
			for i := range events {
				orig[i] = events[i].Clone()
			}
			sink := newPLSink()
			p := plNew(t, engine.PipelineConfig{Name: "mixed", Source: &plSliceSource{events: events},
				Stages: []engine.Stage{{Name: "a", Kind: "map", Step: plPass}},
				Sinks:  []engine.Sink{sink}, MaxBatch: 1000, Tracer: o.tracer})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			passes := otNamed(o.spans(t), "aegis.pipeline mixed")
			if len(passes) != 1 {
				t.Fatalf("%d passes, want 1", len(passes))
			}
			ps := passes[0]
			if ps.Parent().IsValid() {
				t.Errorf("pass: parent %v, want none", ps.Parent())
			}
			links := ps.Links()
			if len(links) != tc.links || ps.DroppedLinks() != 0 {
				t.Errorf("pass: %d links (%d dropped), want %d", len(links), ps.DroppedLinks(), tc.links)
			}
			for i, l := range links {
				if i < len(want) && !otSame(l.SpanContext, want[i]) {
					t.Errorf("link %d: %v, want %v (in the order the batch first has them)", i, l.SpanContext, want[i])
				}
			}
			otHasAttrs(t, "pass", ps.Attributes(), []attribute.KeyValue{engine.AttrEvents.Int(len(events))})
			if v, _ := otAttr(ps.Attributes(), engine.AttrLinks); v.AsInt64() != int64(tc.links) {
				t.Errorf("aegis.links = %s, want %d", v.String(), tc.links)
			}
			out := sink.Events()
			if !slices.Equal(plNums(out), plRange(0, int64(len(events)))) {
				t.Fatalf("sink got %v", plNums(out))
			}
			for i, e := range out {
				// An event keeps a trace context of its own; one that does
				// not parse is replaced by the pass's, as if there were none.
				if tc.pattern[i] != "" && otContext(orig[i].Metadata).IsValid() {
					if !maps.Equal(e.Metadata, orig[i].Metadata) {
						t.Errorf("event %d: metadata %v, want its own %v", i, e.Metadata, orig[i].Metadata)
					}
					continue
				}
				if sc := otContext(e.Metadata); !otSame(sc, ps.SpanContext()) {
					t.Errorf("event %d: traceparent %q, want the pass's %v", i, e.Metadata[engine.MetaTraceParent], ps.SpanContext())
				}
				if ts, ok := e.Metadata[engine.MetaTraceState]; ok {
					t.Errorf("event %d: tracestate %q, want none", i, ts)
				}
			}
		})
	}
}

// otTrap is a failure of a whole call, of the kind "trap".
type otTrap struct{ msg string }

func (e *otTrap) Error() string     { return e.msg }
func (e *otTrap) ErrorType() string { return "trap" }

// A failing step under the Fail policy: its span and its pass's record
// the error, and no span is left open.
func TestPipelineTraceFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n, maxBatch, workers int
		poison               int64
	}{
		{40, 1, 1, 0},
		{40, 4, 1, 13},
		{5, 10, 1, 2},
		{200, 1, 1, 3},
		{200, 2, 3, 50},
		{200, 1, 3, 0},
	} {
		t.Run(fmt.Sprintf("%d by %d, %d workers, poison %d", tc.n, tc.maxBatch, tc.workers, tc.poison), func(t *testing.T) {
			t.Parallel()
			o := otNew(t)
			trap := plStepFunc(func(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
				for _, e := range in {
					if plNum(e) == tc.poison {
						return nil, &otTrap{fmt.Sprintf("wasm trap on event %d", tc.poison)}
					}
				}
				return append(out, in...), nil
			})
			sink := newPLSink()
			p := plNew(t, engine.PipelineConfig{Name: "fail", Source: &plSliceSource{events: otEvents(tc.n)},
				Stages: []engine.Stage{
					{Name: "pre", Kind: "map", Step: plPass},
					{Name: "boom", Kind: "wasm", Plugin: "boom.wasm", Step: trap, Workers: tc.workers},
					{Name: "post", Kind: "map", Step: plPass},
				},
				Sinks: []engine.Sink{sink}, MaxBatch: tc.maxBatch, Tracer: o.tracer})
			err := plRun(t, t.Context(), p)
			var trapErr *otTrap
			if !errors.As(err, &trapErr) {
				t.Fatalf("Run: %v, want the trap", err)
			}
			spans := o.spans(t)
			var failed []sdktrace.ReadOnlySpan
			for _, s := range otNamed(spans, "aegis.step wasm boom") {
				if s.Status().Code == codes.Error {
					failed = append(failed, s)
				}
			}
			if len(failed) != 1 {
				t.Fatalf("%d failed step spans, want 1", len(failed))
			}
			st := failed[0]
			if st.Status().Description == "" {
				t.Errorf("step status %v has no description", st.Status())
			}
			batch := min(tc.maxBatch, tc.n-int(tc.poison)/tc.maxBatch*tc.maxBatch)
			otHasAttrs(t, "step", st.Attributes(), []attribute.KeyValue{engine.AttrEventsIn.Int(batch),
				engine.AttrEventsOut.Int(0), engine.AttrEventsFailed.Int(batch), engine.AttrPlugin.String("boom.wasm")})
			ex, ok := otEvent(st, "exception")
			if !ok {
				t.Fatalf("step span: events %v, want an exception", st.Events())
			}
			otHasAttrs(t, "step exception", ex.Attributes, []attribute.KeyValue{engine.AttrErrorType.String("trap"),
				attribute.String("exception.message", trapErr.msg)})
			var pass sdktrace.ReadOnlySpan
			for _, s := range spans {
				if s.SpanContext().SpanID() == st.Parent().SpanID() {
					pass = s
				}
			}
			if pass == nil || pass.Name() != "aegis.pipeline fail" {
				t.Fatalf("the failed step's parent %v is not a pass", st.Parent())
			}
			if pass.Status().Code != codes.Error {
				t.Errorf("pass status %v, want an error", pass.Status())
			}
			if ex, ok := otEvent(pass, "exception"); !ok {
				t.Errorf("pass: events %v, want an exception", pass.Events())
			} else {
				otHasAttrs(t, "pass exception", ex.Attributes, []attribute.KeyValue{engine.AttrErrorType.String("trap")})
			}
			if n := len(otNamed(otChildren(spans, pass), "aegis.step map post")); n != 0 {
				t.Errorf("the failed batch went on to post (%d spans)", n)
			}
			for _, e := range sink.Events() {
				if int(plNum(e))/tc.maxBatch == int(tc.poison)/tc.maxBatch {
					t.Errorf("event %d of the failed batch reached the sink", plNum(e))
				}
			}
		})
	}
}

// Per-event failures under Skip: the step span counts them and records an
// "event errors" event.
func TestPipelineTraceEventErrors(t *testing.T) {
	t.Parallel()
	poison := []int64{3, 4, 11, 19}
	for _, tc := range []struct {
		name      string
		step      engine.Step
		eventType string // the error.type of the span's event
		spanEvent string
	}{
		{"map", plPoisonMap(poison...), "event", "event errors"},
		{"coded", plPoisonCoded(poison...), "event", "event errors"},
		// A whole-batch failure is isolated event by event: each failed
		// call is recorded.
		{"batch", plPoisonBatch(poison...), "error", "exception"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := otNew(t)
			sink := newPLSink()
			p := plNew(t, engine.PipelineConfig{Name: "skip", Source: &plSliceSource{events: otEvents(20)},
				Stages: []engine.Stage{{Name: "poison", Kind: "map", Step: tc.step, OnError: engine.ErrorPolicy{Action: engine.Skip}}},
				Sinks:  []engine.Sink{sink}, MaxBatch: 5, Tracer: o.tracer})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := plNums(sink.Events()); !slices.Equal(got, plRange(0, 20, poison...)) {
				t.Errorf("sink got %v", got)
			}
			steps := otNamed(o.spans(t), "aegis.step map poison")
			wantFailed := []int{2, 0, 1, 1}
			if len(steps) != len(wantFailed) {
				t.Fatalf("%d step spans, want %d", len(steps), len(wantFailed))
			}
			for k, st := range steps {
				what := fmt.Sprintf("batch %d", k)
				n := wantFailed[k]
				otHasAttrs(t, what, st.Attributes(), []attribute.KeyValue{engine.AttrEventsIn.Int(5),
					engine.AttrEventsOut.Int(5 - n), engine.AttrEventsFailed.Int(n)})
				if n == 0 {
					if st.Status().Code != codes.Unset || len(st.Events()) != 0 {
						t.Errorf("%s: status %v, events %v; want neither", what, st.Status(), st.Events())
					}
					continue
				}
				if st.Status().Code != codes.Error {
					t.Errorf("%s: status %v, want an error", what, st.Status())
				}
				ev, ok := otEvent(st, tc.spanEvent)
				if !ok {
					t.Fatalf("%s: events %v, want %q", what, st.Events(), tc.spanEvent)
				}
				otHasAttrs(t, what, ev.Attributes, []attribute.KeyValue{engine.AttrErrorType.String(tc.eventType)})
				if tc.spanEvent == "event errors" {
					otHasAttrs(t, what, ev.Attributes, []attribute.KeyValue{attribute.Int("aegis.events.failed", n)})
				}
			}
			if ps := otNamed(o.spans(t), "aegis.pipeline skip"); len(ps) != 4 || slices.ContainsFunc(ps, func(s sdktrace.ReadOnlySpan) bool {
				return s.Status().Code != codes.Unset
			}) {
				t.Errorf("passes %v, want 4 without error (the events were skipped)", otNames(ps))
			}
		})
	}
}

// A batch that a filter empties ends there, and so does its pass.
func TestPipelineTraceBatchEmptied(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		drop func(int64) bool
		want []int64
		post int // batches that reach post
	}{
		{"all", func(int64) bool { return true }, nil, 0},
		{"one batch", func(i int64) bool { return i >= 3 && i < 6 }, plRange(0, 10, 3, 4, 5), 3},
		{"none", func(int64) bool { return false }, plRange(0, 10), 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := otNew(t)
			sink := newPLSink()
			p := plNew(t, engine.PipelineConfig{Name: "drop", Source: &plSliceSource{events: otEvents(10)},
				Stages: []engine.Stage{
					{Name: "drop", Kind: "filter", Step: engine.FilterStep{Filter: engine.FilterFunc(func(e *engine.Event) bool { return !tc.drop(plNum(*e)) })}},
					{Name: "post", Kind: "map", Step: plPass},
				},
				Sinks: []engine.Sink{sink}, MaxBatch: 3, Tracer: o.tracer})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := plNums(sink.Events()); !slices.Equal(got, tc.want) {
				t.Errorf("sink got %v, want %v", got, tc.want)
			}
			spans := o.spans(t)
			if n := len(otNamed(spans, "aegis.pipeline drop")); n != 4 {
				t.Errorf("%d passes, want 4", n)
			}
			if n := len(otNamed(spans, "aegis.step map post")); n != tc.post {
				t.Errorf("%d post spans, want %d", n, tc.post)
			}
			for _, s := range spans {
				if s.Status().Code != codes.Unset {
					t.Errorf("span %s: status %v", s.Name(), s.Status())
				}
			}
		})
	}
}

// Without a tracer the events are written as they came.
func TestPipelineUntraced(t *testing.T) {
	t.Parallel()
	events := otEvents(10)
	events[2] = otWith(events[2], "k", "v")
	events[5] = otWith(events[5], engine.MetaTraceParent, otParentTP, engine.MetaTraceState, otParentTS)
	sink := newPLSink()
	p := plNew(t, engine.PipelineConfig{Name: "untraced", Source: &plSliceSource{events: slices.Clone(events)},
		Stages: []engine.Stage{{Name: "pass", Kind: "map", Step: plPass, Workers: 2}},
		Sinks:  []engine.Sink{sink}, MaxBatch: 3})
	if err := plRun(t, t.Context(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	out := sink.Events()
	if !slices.Equal(plNums(out), plRange(0, 10)) {
		t.Fatalf("sink got %v", plNums(out))
	}
	for i, e := range out {
		if !maps.Equal(e.Metadata, events[i].Metadata) {
			t.Errorf("event %d: metadata %v, want %v", i, e.Metadata, events[i].Metadata)
		}
	}
}

// Without a tracer the pipeline records nothing, not even on a span its
// caller's context carries.
func TestPipelineUntracedLeavesTheCallersSpanAlone(t *testing.T) {
	t.Parallel()
	o := otNew(t)
	ctx, caller := o.tracer.Start(t.Context(), "caller")
	sink := newPLSink()
	p := plNew(t, engine.PipelineConfig{Name: "untraced", Source: &plSliceSource{events: otEvents(10)},
		Stages: []engine.Stage{{Name: "poison", Kind: "map", Step: plPoisonBatch(3), OnError: engine.ErrorPolicy{Action: engine.Skip}}},
		Sinks:  []engine.Sink{sink}, MaxBatch: 5})
	if err := plRun(t, ctx, p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	caller.End()
	spans := o.spans(t)
	if len(spans) != 1 {
		t.Fatalf("spans %q, want the caller's only", otNames(spans))
	}
	if ev := spans[0].Events(); len(ev) != 0 {
		t.Errorf("the caller's span got events %v from an untraced pipeline", ev)
	}
}

// A sampler that drops the passes records nothing, but the events still
// carry the (unsampled) context of their pass.
func TestPipelineTraceUnsampled(t *testing.T) {
	t.Parallel()
	o := otNew(t, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	sink := newPLSink()
	p := plNew(t, engine.PipelineConfig{Name: "unsampled", Source: &plSliceSource{events: otEvents(10)},
		Stages: []engine.Stage{{Name: "poison", Kind: "map", Step: plPoisonMap(4), OnError: engine.ErrorPolicy{Action: engine.Skip}}},
		Sinks:  []engine.Sink{sink}, MaxBatch: 4, Tracer: o.tracer})
	if err := plRun(t, t.Context(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s, e := o.rec.Started(), o.rec.Ended(); len(s) != 0 || len(e) != 0 {
		t.Errorf("%d spans started, %d ended; want none", len(s), len(e))
	}
	unsampled := regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`)
	out := sink.Events()
	if !slices.Equal(plNums(out), plRange(0, 10, 4)) {
		t.Fatalf("sink got %v", plNums(out))
	}
	byBatch := map[int64]string{}
	for _, e := range out {
		tp := e.Metadata[engine.MetaTraceParent]
		if !unsampled.MatchString(tp) || !otContext(e.Metadata).IsValid() {
			t.Errorf("event %d: traceparent %q, want an unsampled one", plNum(e), tp)
		}
		k := plNum(e) / 4
		if prev, ok := byBatch[k]; ok && prev != tp {
			t.Errorf("event %d: traceparent %q, but its batch has %q", plNum(e), tp, prev)
		}
		byBatch[k] = tp
	}
	if byBatch[0] == byBatch[1] || byBatch[1] == byBatch[2] {
		t.Errorf("batches share a traceparent: %v", byBatch)
	}
}

// Parallel workers keep order, and their spans are well formed.
func TestPipelineTraceWorkers(t *testing.T) {
	t.Parallel()
	o := otNew(t)
	const n, maxBatch = 300, 7
	sink := newPLSink()
	// The workers take turns unevenly, so that batches finish out of order.
	jitter := plStepFunc(func(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
		var x int64
		for i := range (plNum(in[0]) % 3) * 2000 {
			x += i
		}
		_ = x
		return append(out, in...), nil
	})
	p := plNew(t, engine.PipelineConfig{Name: "workers", Source: &plSliceSource{events: otEvents(n)},
		Stages: []engine.Stage{
			{Name: "par", Kind: "map", Step: jitter, Workers: 3},
			{Name: "even", Kind: "filter", Step: engine.FilterStep{Filter: engine.FilterFunc(otEven)}, Workers: 3},
		},
		Sinks: []engine.Sink{sink}, MaxBatch: maxBatch, Tracer: o.tracer})
	if err := plRun(t, t.Context(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := slices.DeleteFunc(plRange(0, n), func(i int64) bool { return i%2 != 0 })
	if got := plNums(sink.Events()); !slices.Equal(got, want) {
		t.Errorf("sink out of order at %d", firstDiff(got, want))
	}
	spans := o.spans(t)
	batches := (n + maxBatch - 1) / maxBatch
	passes := otNamed(spans, "aegis.pipeline workers")
	if len(passes) != batches || len(spans) != 3*batches {
		t.Fatalf("%d passes, %d spans; want %d and %d", len(passes), len(spans), batches, 3*batches)
	}
	isPass := map[trace.SpanID]bool{}
	for _, ps := range passes {
		isPass[ps.SpanContext().SpanID()] = true
		if got := otNames(otChildren(spans, ps)); !slices.Equal(got, []string{"aegis.step map par", "aegis.step filter even"}) {
			t.Errorf("pass %v: steps %q", ps.SpanContext().SpanID(), got)
		}
	}
	for _, s := range spans {
		if s.Name() != "aegis.pipeline workers" && !isPass[s.Parent().SpanID()] {
			t.Errorf("span %s: parent %v is not a pass", s.Name(), s.Parent())
		}
	}
}

// An aggregation's results carry a trace context; those of the final
// flush that of a pass marked aegis.flush.
func TestPipelineTraceAggregation(t *testing.T) {
	t.Parallel()
	for _, traced := range []bool{false, true} {
		t.Run(fmt.Sprintf("events traced %v", traced), func(t *testing.T) {
			t.Parallel()
			o := otNew(t)
			events := otEvents(2500)
			if traced {
				for i := range events {
					events[i] = otWith(events[i], engine.MetaTraceParent, otParentTP)
				}
			}
			sink := newPLSink()
			p := plNew(t, engine.PipelineConfig{Name: "agg", Source: &plSliceSource{events: events},
				Stages: []engine.Stage{
					{Name: "count", Kind: "aggregate", Aggregation: plAggregation(t)},
					{Name: "post", Kind: "map", Step: plPass},
				},
				Sinks: []engine.Sink{sink}, MaxBatch: 100, Tracer: o.tracer})
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			out := sink.Events()
			res := plResults(t, out)
			if len(res) != 3 || res[0].Count != 1000 || res[2].Count != 500 {
				t.Fatalf("results %+v", res)
			}
			spans := o.spans(t)
			var flush []sdktrace.ReadOnlySpan
			passOf := map[trace.SpanID]sdktrace.ReadOnlySpan{}
			for _, ps := range otNamed(spans, "aegis.pipeline agg") {
				passOf[ps.SpanContext().SpanID()] = ps
				if v, ok := otAttr(ps.Attributes(), engine.AttrFlush); ok && v.AsBool() {
					flush = append(flush, ps)
				}
			}
			if len(passOf) != 26 || len(flush) != 1 {
				t.Fatalf("%d passes, %d flushes; want 26 (25 batches and the flush) and 1", len(passOf), len(flush))
			}
			if flush[0].Parent().IsValid() {
				t.Errorf("flush pass: parent %v, want none", flush[0].Parent())
			}
			if got := otNames(otChildren(spans, flush[0])); !slices.Equal(got, []string{"aegis.step map post"}) {
				t.Errorf("flush pass: steps %q, want post's", got)
			}
			for i, e := range out {
				sc := otContext(e.Metadata)
				ps, ok := passOf[sc.SpanID()]
				if !ok || !otSame(sc, ps.SpanContext()) {
					if traced && !sc.IsValid() {
						t.Errorf("result %d: no traceparent (%v)", i, e.Metadata)
						continue
					}
					t.Errorf("result %d: traceparent %q is no pass's", i, e.Metadata[engine.MetaTraceParent])
					continue
				}
				if last := i == len(out)-1; last != (ps == flush[0]) {
					t.Errorf("result %d (of %d): written by pass %v, flush %v", i, len(out), ps.SpanContext().SpanID(), flush[0].SpanContext().SpanID())
				}
				if traced && i < len(out)-1 && ps.SpanContext().TraceID() != otContext(events[0].Metadata).TraceID() {
					t.Errorf("result %d: trace %v, want the events'", i, ps.SpanContext().TraceID())
				}
			}
		})
	}
}

// Pipelines sharing a tracer, with many batches and parallel workers.
func TestPipelineTraceHammer(t *testing.T) {
	t.Parallel()
	o := otNew(t)
	const pipelines, n, maxBatch = 4, 1500, 10
	var wg sync.WaitGroup
	sinks := make([]*plSink, pipelines)
	errs := make([]error, pipelines)
	for k := range pipelines {
		sinks[k] = newPLSink()
		events := otEvents(n)
		for i := range events {
			if i%7 == k {
				events[i] = otWith(events[i], engine.MetaTraceParent, otParentTP)
			}
		}
		p := plNew(t, engine.PipelineConfig{Name: fmt.Sprint("h", k), Source: &plSliceSource{events: events},
			Stages: []engine.Stage{
				{Name: "par", Kind: "map", Step: plPass, Workers: 1 + k%3},
				{Name: "poison", Kind: "map", Step: plPoisonMap(5, 500), OnError: engine.ErrorPolicy{Action: engine.Skip}},
			},
			Sinks: []engine.Sink{sinks[k]}, MaxBatch: maxBatch, Tracer: o.tracer})
		wg.Go(func() { errs[k] = p.Run(t.Context()) })
	}
	wg.Wait()
	for k := range pipelines {
		if errs[k] != nil {
			t.Errorf("pipeline %d: %v", k, errs[k])
		}
		if got := plNums(sinks[k].Events()); !slices.Equal(got, plRange(0, n, 5, 500)) {
			t.Errorf("pipeline %d: out of order at %d", k, firstDiff(got, plRange(0, n, 5, 500)))
		}
		for _, e := range sinks[k].Events() {
			if !otContext(e.Metadata).IsValid() {
				t.Errorf("pipeline %d: event %d has no trace context", k, plNum(e))
				break
			}
		}
	}
	spans := o.spans(t)
	if want := pipelines * 3 * n / maxBatch; len(spans) != want {
		t.Errorf("%d spans, want %d", len(spans), want)
	}
}

// FuzzTraceContext feeds arbitrary trace context to a traced pipeline: no
// input makes it fail, every span it starts ends, and every event written
// carries either the trace context it brought, untouched, or the pass's.
func FuzzTraceContext(f *testing.F) {
	valid := "00-4bf92f3577b34da6a3ce929e0e4736aa-00f067aa0ba902b7-01"
	f.Add(valid, valid, "vendor=1")
	f.Add(valid, "", "")
	f.Add("00-4bf92f3577b34da6a3ce929e0e4736aa-00f067aa0ba902b7-00", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "a=1,b=2")
	f.Add("ff-4bf92f3577b34da6a3ce929e0e4736aa-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-0000000000000000-01", "=")
	f.Add("garbage", "garbage", "\x00")
	f.Fuzz(func(t *testing.T, tp1, tp2, ts string) {
		metas := []map[string]string{
			{engine.MetaTraceParent: tp1, engine.MetaTraceState: ts},
			{engine.MetaTraceParent: tp2},
			nil,
			{engine.MetaTraceParent: tp1, "k": "v"},
		}
		var in []engine.Event
		for i, m := range metas {
			e := plEvent(int64(i))
			e.Metadata = maps.Clone(m)
			in = append(in, e)
		}
		o := otNew(t)
		sink := newPLSink()
		p := plNew(t, engine.PipelineConfig{Source: &plSliceSource{events: slices.Clone(in)}, Sinks: []engine.Sink{sink},
			Stages: []engine.Stage{{Name: "same", Kind: "map", Step: engine.MapStep{Map: func(e *engine.Event, out []engine.Event) ([]engine.Event, error) {
				return append(out, *e), nil
			}}}},
			MaxBatch: len(in), Tracer: o.tracer})
		if err := plRun(t, context.Background(), p); err != nil {
			t.Fatal(err)
		}
		spans := o.spans(t)
		passes := otNamed(spans, "aegis.pipeline test")
		if len(passes) != 1 {
			t.Fatalf("%d passes, want 1", len(passes))
		}
		own := passes[0].SpanContext()
		out := sink.Events()
		if len(out) != len(in) {
			t.Fatalf("%d events out of %d", len(out), len(in))
		}
		for i, e := range out {
			brought := in[i].Metadata[engine.MetaTraceParent]
			got := e.Metadata[engine.MetaTraceParent]
			if got == brought && brought != "" {
				continue
			}
			sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(e.Metadata)))
			if sc.SpanID() != own.SpanID() || sc.TraceID() != own.TraceID() {
				t.Errorf("event %d brought %q and left with %q: neither its own nor the pass's %s", i, brought, got, own.SpanID())
			}
		}
	})
}
