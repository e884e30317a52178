package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/aegis-streaming/aegis/engine"
)

// Metric names of the API. The request duration is OpenTelemetry's HTTP
// server metric, with its attributes (http.request.method, http.route,
// http.response.status_code).
const (
	MetricRequestDuration = "http.server.request.duration"
	MetricStreams         = "aegis.api.streams"
)

// Attributes of the API's spans and metrics: OpenTelemetry's HTTP ones,
// and the engine's for the channel, the events and the error.
const (
	attrMethod = attribute.Key("http.request.method")
	attrRoute  = attribute.Key("http.route")
	attrStatus = attribute.Key("http.response.status_code")
)

// telemetry is the API's instruments; the zero value records nothing.
type telemetry struct {
	tracer   trace.Tracer
	duration metric.Float64Histogram
	reg      metric.Registration
}

// traceContext is the W3C propagator; it keeps no state.
var traceContext propagation.TraceContext

func (s *Server) instrument(m metric.Meter) error {
	if m == nil {
		return nil
	}
	d, err1 := m.Float64Histogram(MetricRequestDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of the API's requests; a stream's lasts as long as the stream"),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
	streams, err2 := m.Int64ObservableGauge(MetricStreams, metric.WithUnit("{stream}"),
		metric.WithDescription("Open SSE and WebSocket streams of the API"))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(streams, int64(s.streams.count(anonymous)))
		return nil
	}, streams)
	if err != nil {
		return err
	}
	s.tel.duration, s.tel.reg = d, reg
	return nil
}

// statusWriter records the status of an answer, for the request metric.
// Unwrap lets http.ResponseController and the WebSocket upgrade reach the
// connection underneath.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// record records a request's duration.
func (t *telemetry) record(r *http.Request, route string, status int, began time.Time) {
	if t.duration == nil {
		return
	}
	if status == 0 {
		status = http.StatusSwitchingProtocols // hijacked by the WebSocket upgrade
	}
	t.duration.Record(context.WithoutCancel(r.Context()), time.Since(began).Seconds(), metric.WithAttributes(
		attrMethod.String(r.Method), attrRoute.String(route), attrStatus.Int(status)))
}

// startPublish starts the span of a publish request, as a child of the
// request's traceparent, and gives the events that carry no trace context
// of their own the span's: the pipelines that take them continue the trace.
// Without a tracer the request's traceparent itself goes on the events.
func (t *telemetry) startPublish(r *http.Request, channel string, events []engine.Event) (context.Context, trace.Span) {
	ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	span := trace.SpanFromContext(ctx)
	if t.tracer != nil {
		ctx, span = t.tracer.Start(ctx, "publish "+channel, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attrMethod.String(r.Method), attrRoute.String("/v1/channels/{channel}/events"),
			engine.AttrChannel.String(channel), engine.AttrEvents.Int(len(events))))
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, span
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	for i := range events {
		if _, ok := events[i].Meta(engine.MetaTraceParent); ok {
			continue
		}
		for k, v := range carrier {
			events[i].SetMeta(k, v)
		}
	}
	return ctx, span
}

// endPublish ends a publish request's span with its outcome.
func endPublish(span trace.Span, e *Error) {
	if e != nil {
		span.SetStatus(codes.Error, e.Message)
		span.SetAttributes(engine.AttrErrorType.String(e.Code), attrStatus.Int(e.Status))
	} else {
		span.SetAttributes(attrStatus.Int(http.StatusOK))
	}
	span.End()
}
