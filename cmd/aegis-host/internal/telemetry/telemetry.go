// Package telemetry sets up OpenTelemetry for aegis-host: a tracer and a
// meter provider, their exporters (OTLP over gRPC or HTTP, stdout, a
// Prometheus endpoint), the resource, sampling, and a log handler that
// turns warnings into span events.
//
// What the manifest's telemetry block leaves unset, the standard
// variables decide: OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER,
// OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]{ENDPOINT,PROTOCOL,HEADERS,...},
// OTEL_TRACES_SAMPLER[_ARG], OTEL_METRIC_EXPORT_INTERVAL,
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES. Nothing is exported by
// default.
//
// Export never stalls the pipelines: finished spans wait in a bounded
// queue, and when it is full new ones are dropped and counted.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
)

// Exporter names, as in the manifest.
const (
	None     = "none"
	Stdout   = "stdout"
	OTLPGRPC = "otlp-grpc"
	OTLPHTTP = "otlp-http"
)

// DefaultServiceName is service.name when neither the manifest nor
// OTEL_SERVICE_NAME names the service.
const DefaultServiceName = "aegis-host"

// defaultInterval is the metric export interval when neither the manifest
// nor OTEL_METRIC_EXPORT_INTERVAL sets one.
const defaultInterval = 10 * time.Second

// scope is the instrumentation scope of aegis-host's spans and metrics.
const scope = "github.com/aegis-streaming/aegis"

// Options are what Start needs besides the manifest's block.
type Options struct {
	// Version is aegis-host's, for service.version.
	Version string
	// Stdout receives the stdout exporters' output.
	Stdout io.Writer
	// Log receives export errors and, at shutdown, dropped spans.
	Log *slog.Logger
	// Getenv reads the environment to choose the exporters, the
	// Prometheus listener and the metric interval; nil means os.Getenv.
	// The SDK reads the rest of the OTEL_* variables (endpoints,
	// headers, timeouts, the sampler, the resource) from the process's
	// environment itself.
	Getenv func(string) string
}

// Telemetry is a started OpenTelemetry setup. Tracer and Meter are nil
// when traces or metrics are off, so that the pipelines pay nothing for
// them.
type Telemetry struct {
	Tracer trace.Tracer
	Meter  metric.Meter

	// TracesExporter and MetricsExporter say what was chosen: one of the
	// exporter names (a Prometheus listener alone is MetricsExporter
	// none).
	TracesExporter, MetricsExporter string

	tp    *sdktrace.TracerProvider
	mp    *sdkmetric.MeterProvider
	prom  *http.Server
	addr  net.Addr
	spans spanCounts
	log   *slog.Logger
}

// spanCounts count the sampled spans that ended, and what became of them.
type spanCounts struct {
	ended, exported, failed atomic.Uint64
}

// Start sets up what t (nil: no telemetry block) and the environment ask
// for. Its errors name the manifest field or variable at fault.
func Start(ctx context.Context, t *manifest.Telemetry, opts Options) (_ *Telemetry, err error) {
	if t == nil {
		t = &manifest.Telemetry{}
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	tel := &Telemetry{log: opts.Log}
	defer func() {
		if err != nil {
			tel.Shutdown(context.Background())
		}
	}()
	traces, metrics := blocks(t)
	if tel.TracesExporter, tel.MetricsExporter, err = exporters(traces, metrics, opts.Getenv); err != nil {
		return nil, err
	}
	promAddr, promField := metrics.Prometheus, "telemetry.metrics.prometheus"
	if tel.MetricsExporter == "prometheus" {
		// OTEL_METRICS_EXPORTER=prometheus: a listener alone.
		tel.MetricsExporter = None
		if promAddr == "" {
			promAddr = net.JoinHostPort(orDefault(opts.Getenv("OTEL_EXPORTER_PROMETHEUS_HOST"), "localhost"),
				orDefault(opts.Getenv("OTEL_EXPORTER_PROMETHEUS_PORT"), "9464"))
			promField = "OTEL_EXPORTER_PROMETHEUS_HOST and OTEL_EXPORTER_PROMETHEUS_PORT"
		}
	}
	if tel.TracesExporter == None && tel.MetricsExporter == None && promAddr == "" {
		return tel, nil
	}
	errorsTo(opts.Log)
	res, err := newResource(ctx, t, opts)
	if err != nil {
		return nil, err
	}
	if tel.TracesExporter != None {
		exp, err := traceExporter(ctx, tel.TracesExporter, traces, opts.Stdout)
		if err != nil {
			return nil, fmt.Errorf("telemetry.traces: %s exporter: %w", tel.TracesExporter, err)
		}
		queue := traces.QueueSize
		if queue == 0 {
			queue = manifest.DefaultQueueSize
		}
		bsp := sdktrace.NewBatchSpanProcessor(&countingExporter{SpanExporter: exp, n: &tel.spans},
			sdktrace.WithMaxQueueSize(queue), sdktrace.WithMaxExportBatchSize(min(512, queue)))
		topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res),
			sdktrace.WithSpanProcessor(&countingProcessor{SpanProcessor: bsp, n: &tel.spans})}
		if r := traces.SampleRatio; r != nil {
			topts = append(topts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*r))))
		}
		// Without a sampler the SDK reads OTEL_TRACES_SAMPLER[_ARG];
		// its default is parent-based, always on.
		tel.tp = sdktrace.NewTracerProvider(topts...)
		tel.Tracer = tel.tp.Tracer(scope, trace.WithInstrumentationVersion(opts.Version))
	}
	var readers []sdkmetric.Option
	if tel.MetricsExporter != None {
		exp, err := metricExporter(ctx, tel.MetricsExporter, metrics, opts.Stdout)
		if err != nil {
			return nil, fmt.Errorf("telemetry.metrics: %s exporter: %w", tel.MetricsExporter, err)
		}
		var ropts []sdkmetric.PeriodicReaderOption
		switch {
		case metrics.Interval > 0:
			ropts = append(ropts, sdkmetric.WithInterval(metrics.Interval.D()))
		case opts.Getenv("OTEL_METRIC_EXPORT_INTERVAL") == "":
			ropts = append(ropts, sdkmetric.WithInterval(defaultInterval))
		}
		readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, ropts...)))
	}
	if promAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		exp, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", promField, err)
		}
		readers = append(readers, sdkmetric.WithReader(exp))
		if err := tel.serve(promAddr, reg); err != nil {
			return nil, fmt.Errorf("%s: %w", promField, err)
		}
	}
	if len(readers) > 0 {
		tel.mp = sdkmetric.NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
		tel.Meter = tel.mp.Meter(scope, metric.WithInstrumentationVersion(opts.Version))
		if err := tel.instrumentSpans(); err != nil {
			return nil, err
		}
	}
	return tel, nil
}

// Check checks what Start would check of t and the environment, without
// starting anything.
func Check(t *manifest.Telemetry, getenv func(string) string) error {
	traces, metrics := blocks(t)
	_, _, err := exporters(traces, metrics, getenv)
	return err
}

// blocks returns the traces and metrics blocks of t, empty ones for those
// it lacks (t may be nil).
func blocks(t *manifest.Telemetry) (*manifest.Traces, *manifest.Metrics) {
	traces, metrics := &manifest.Traces{}, &manifest.Metrics{}
	if t != nil && t.Traces != nil {
		traces = t.Traces
	}
	if t != nil && t.Metrics != nil {
		metrics = t.Metrics
	}
	return traces, metrics
}

// exporters chooses the exporters of both signals; its error names every
// setting at fault.
func exporters(traces *manifest.Traces, metrics *manifest.Metrics, getenv func(string) string) (string, string, error) {
	t, err1 := choose("telemetry.traces.exporter", traces.Exporter, "TRACES", getenv)
	m, err2 := choose("telemetry.metrics.exporter", metrics.Exporter, "METRICS", getenv)
	return t, m, errors.Join(err1, err2)
}

// choose returns the exporter the manifest names, else the one the
// standard variables name (OTEL_<SIGNAL>_EXPORTER, or otlp when an OTLP
// endpoint is set), else none.
func choose(field, named, signal string, getenv func(string) string) (string, error) {
	if named != "" {
		return named, nil
	}
	v := "OTEL_" + signal + "_EXPORTER"
	kind := strings.ToLower(strings.TrimSpace(getenv(v)))
	if kind == "" {
		if getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
			return None, nil
		}
		kind = "otlp"
	}
	switch kind {
	case "none":
		return None, nil
	case "console":
		return Stdout, nil
	case "prometheus":
		if signal == "METRICS" {
			return "prometheus", nil
		}
	case "otlp":
		pv := "OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL"
		proto := getenv(pv)
		if proto == "" {
			pv = "OTEL_EXPORTER_OTLP_PROTOCOL"
			proto = getenv(pv)
		}
		proto = strings.ToLower(strings.TrimSpace(proto))
		switch proto {
		case "grpc":
			return OTLPGRPC, nil
		case "", "http/protobuf":
			return OTLPHTTP, nil
		}
		return "", fmt.Errorf("%s=%q: want grpc or http/protobuf (%s is not set)", pv, proto, field)
	}
	want := "otlp, console or none"
	if signal == "METRICS" {
		want = "otlp, prometheus, console or none"
	}
	return "", fmt.Errorf("%s=%q: want %s (%s is not set)", v, getenv(v), want, field)
}

func traceExporter(ctx context.Context, kind string, t *manifest.Traces, stdout io.Writer) (sdktrace.SpanExporter, error) {
	switch kind {
	case Stdout:
		return stdouttrace.New(stdouttrace.WithWriter(stdout))
	case OTLPGRPC:
		return otlptracegrpc.New(ctx, otlpOptions(t.Endpoint, t.Headers, otlptracegrpc.WithEndpointURL, otlptracegrpc.WithHeaders)...)
	case OTLPHTTP:
		return otlptracehttp.New(ctx, otlpOptions(signalURL(t.Endpoint, "/v1/traces"), t.Headers, otlptracehttp.WithEndpointURL, otlptracehttp.WithHeaders)...)
	}
	return nil, fmt.Errorf("unknown exporter %q", kind)
}

func metricExporter(ctx context.Context, kind string, m *manifest.Metrics, stdout io.Writer) (sdkmetric.Exporter, error) {
	switch kind {
	case Stdout:
		return stdoutmetric.New(stdoutmetric.WithWriter(stdout))
	case OTLPGRPC:
		return otlpmetricgrpc.New(ctx, otlpOptions(m.Endpoint, m.Headers, otlpmetricgrpc.WithEndpointURL, otlpmetricgrpc.WithHeaders)...)
	case OTLPHTTP:
		return otlpmetrichttp.New(ctx, otlpOptions(signalURL(m.Endpoint, "/v1/metrics"), m.Headers, otlpmetrichttp.WithEndpointURL, otlpmetrichttp.WithHeaders)...)
	}
	return nil, fmt.Errorf("unknown exporter %q", kind)
}

// otlpOptions are an OTLP exporter's options for the manifest's endpoint
// and headers; without them, the exporter reads its variables.
func otlpOptions[O any](endpoint string, headers map[string]string, withURL func(string) O, withHeaders func(map[string]string) O) []O {
	var o []O
	if endpoint != "" {
		o = append(o, withURL(endpoint))
	}
	if len(headers) > 0 {
		o = append(o, withHeaders(headers))
	}
	return o
}

// signalURL is the URL an OTLP/HTTP exporter posts a signal to: the
// manifest's endpoint is the collector's base URL, as
// OTEL_EXPORTER_OTLP_ENDPOINT is, unless it already names a path.
func signalURL(endpoint, path string) string {
	if endpoint == "" {
		return ""
	}
	base := strings.TrimRight(endpoint, "/")
	if i := strings.Index(base, "://"); i >= 0 && strings.Contains(base[i+3:], "/") {
		return endpoint
	}
	return base + path
}

func newResource(ctx context.Context, t *manifest.Telemetry, opts Options) (*resource.Resource, error) {
	defaults := []attribute.KeyValue{attribute.String("service.name", DefaultServiceName)}
	if opts.Version != "" {
		defaults = append(defaults, attribute.String("service.version", opts.Version))
	}
	var own []attribute.KeyValue
	for _, k := range slices.Sorted(maps.Keys(t.Resource)) {
		own = append(own, attribute.String(k, t.Resource[k]))
	}
	if t.ServiceName != "" {
		own = append(own, attribute.String("service.name", t.ServiceName))
	}
	// Later options win: the defaults, then the variables, then the
	// manifest.
	res, err := resource.New(ctx, resource.WithAttributes(defaults...), resource.WithFromEnv(),
		resource.WithTelemetrySDK(), resource.WithHost(), resource.WithAttributes(own...))
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	// A partial resource (an unparsable OTEL_RESOURCE_ATTRIBUTES entry) is
	// used, with a warning.
	if err != nil {
		opts.Log.Warn("telemetry resource", "error", err)
	}
	return res, nil
}

// serve starts the Prometheus listener.
func (t *Telemetry) serve(addr string, reg *prometheus.Registry) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(t.log.Handler(), slog.LevelWarn)}))
	t.prom = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	t.addr = ln.Addr()
	go t.prom.Serve(ln)
	return nil
}

// PrometheusAddr is the address the Prometheus listener listens on; nil
// when there is none.
func (t *Telemetry) PrometheusAddr() net.Addr { return t.addr }

// instrumentSpans reports what became of the spans.
func (t *Telemetry) instrumentSpans() error {
	if t.tp == nil {
		return nil
	}
	spans, err := t.Meter.Int64ObservableCounter("aegis.telemetry.spans", metric.WithUnit("{span}"),
		metric.WithDescription("Sampled spans, by outcome: ended, exported, failed (to export); ended minus the others were dropped or still wait"))
	if err != nil {
		return err
	}
	_, err = t.Meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, c := range []struct {
			outcome string
			n       *atomic.Uint64
		}{{"ended", &t.spans.ended}, {"exported", &t.spans.exported}, {"failed", &t.spans.failed}} {
			o.ObserveInt64(spans, int64(c.n.Load()), metric.WithAttributes(attribute.String("aegis.outcome", c.outcome)))
		}
		return nil
	}, spans)
	return err
}

// SpanCounts returns how many sampled spans ended, were exported, and
// failed to export.
func (t *Telemetry) SpanCounts() (ended, exported, failed uint64) {
	return t.spans.ended.Load(), t.spans.exported.Load(), t.spans.failed.Load()
}

// Shutdown flushes what waits for export and stops the exporters and the
// Prometheus listener, within ctx; it logs the spans that were dropped.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.tp != nil {
		if err := t.tp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("traces: %w", err))
		}
		ended, exported, failed := t.SpanCounts()
		if lost := ended - min(ended, exported); lost > 0 {
			t.log.Warn("trace export: spans lost", "spans", ended, "exported", exported,
				"failed", failed, "dropped", lost-min(lost, failed))
		}
		t.tp = nil
	}
	if t.mp != nil {
		if err := t.mp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("metrics: %w", err))
		}
		t.mp = nil
	}
	if t.prom != nil {
		if err := t.prom.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("prometheus: %w", err))
		}
		t.prom = nil
	}
	return errors.Join(errs...)
}

// countingProcessor counts the sampled spans that end.
type countingProcessor struct {
	sdktrace.SpanProcessor
	n *spanCounts
}

func (p *countingProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() {
		p.n.ended.Add(1)
	}
	p.SpanProcessor.OnEnd(s)
}

// countingExporter counts the spans exported and those that failed.
type countingExporter struct {
	sdktrace.SpanExporter
	n *spanCounts
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err != nil {
		e.n.failed.Add(uint64(len(spans)))
	} else {
		e.n.exported.Add(uint64(len(spans)))
	}
	return err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
