package httpapi_test

import (
	"context"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
)

// TestTelemetry: a publish request is a span in the caller's trace, whose
// context the events carry; requests are measured by route and status; the
// open streams are counted.
func TestTelemetry(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	h := newHost(t, nil, httpapi.Config{Tracer: tp.Tracer("test"), Meter: mp.Meter("test")})
	h.channel(t, "orders", engine.ChannelConfig{})
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if a := h.do(t, "POST", "/v1/channels/orders/events", "["+oneEvent+`,{"type":"x","metadata":{"traceparent":"00-11111111111111111111111111111111-2222222222222222-01"}}]`, "traceparent: "+parent); a.status != 200 {
		t.Fatalf("publish: %d %s", a.status, a.body)
	}
	h.do(t, "POST", "/v1/channels/nothere/events", oneEvent)
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	s := spans[0]
	if s.Name() != "publish orders" || s.Parent().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("span %q with parent %v", s.Name(), s.Parent())
	}
	if spans[1].Status().Code.String() != "Error" {
		t.Fatalf("the failed publish's span: %v", spans[1].Status())
	}
	hist, _ := h.eng.History("orders", engine.HistoryQuery{})
	got, _ := hist[0].Meta(engine.MetaTraceParent)
	if want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"; got != want {
		t.Fatalf("the event's traceparent %q, want the span's %q", got, want)
	}
	if own, _ := hist[1].Meta(engine.MetaTraceParent); !strings.HasPrefix(own, "00-1111") {
		t.Fatalf("an event's own trace context was replaced: %q", own)
	}

	sub, err := h.client(t, "").Subscribe(ctxT(t), "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	statuses := map[string]bool{}
	streams := int64(-1)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				if m.Name != httpapi.MetricRequestDuration {
					continue
				}
				for _, p := range d.DataPoints {
					route, _ := p.Attributes.Value("http.route")
					status, _ := p.Attributes.Value("http.response.status_code")
					statuses[route.AsString()+" "+status.String()] = true
				}
			case metricdata.Gauge[int64]:
				if m.Name == httpapi.MetricStreams && len(d.DataPoints) == 1 {
					streams = d.DataPoints[0].Value
				}
			}
		}
	}
	for _, want := range []string{"/v1/channels/{channel}/events 200", "/v1/channels/{channel}/events 404"} {
		if !statuses[want] {
			t.Errorf("no request measured as %q: %v", want, statuses)
		}
	}
	if streams != 1 {
		t.Errorf("open streams: %d, want 1", streams)
	}
}
