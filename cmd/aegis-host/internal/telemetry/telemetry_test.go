package telemetry_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/telemetry"
)

// TestMain clears the OTEL_* variables of the process: the SDK and its
// exporters read some of them directly (the sampler, OTLP headers and
// timeouts, the resource), whatever Options.Getenv says, and the tests
// must not depend on the environment they run in.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			os.Unsetenv(k)
		}
	}
	os.Exit(m.Run())
}

// env is an environment for Options.Getenv: only what it holds is set.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// syncBuffer is a bytes.Buffer safe for concurrent writers (the stdout
// exporters, the log).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func ptr[T any](v T) *T { return &v }

// start starts telemetry and shuts it down at the end of the test.
func start(t *testing.T, m *manifest.Telemetry, opts telemetry.Options) *telemetry.Telemetry {
	t.Helper()
	if opts.Getenv == nil {
		opts.Getenv = env{}.get
	}
	if opts.Log == nil {
		opts.Log = discardLog()
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	tel, err := telemetry.Start(context.Background(), m, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		tel.Shutdown(ctx)
	})
	return tel
}

func shutdown(t *testing.T, tel *telemetry.Telemetry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestStartNothingConfigured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tel  *manifest.Telemetry
		env  env
	}{
		{name: "no telemetry block"},
		{name: "empty telemetry block", tel: &manifest.Telemetry{}},
		{name: "empty traces and metrics", tel: &manifest.Telemetry{Traces: &manifest.Traces{QueueSize: 16}, Metrics: &manifest.Metrics{}}},
		{name: "manifest says none", tel: &manifest.Telemetry{ServiceName: "svc",
			Traces: &manifest.Traces{Exporter: telemetry.None}, Metrics: &manifest.Metrics{Exporter: telemetry.None}}},
		{name: "variables say none", env: env{"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}},
		{name: "manifest none over variables", tel: &manifest.Telemetry{
			Traces: &manifest.Traces{Exporter: telemetry.None}, Metrics: &manifest.Metrics{Exporter: telemetry.None}},
			env: env{"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}},
		{name: "unrelated variables", env: env{"OTEL_SERVICE_NAME": "svc", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_PROMETHEUS_PORT": "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out syncBuffer
			tel := start(t, tt.tel, telemetry.Options{Getenv: tt.env.get, Stdout: &out})
			if tel.Tracer != nil {
				t.Errorf("Tracer = %v, want nil", tel.Tracer)
			}
			if tel.Meter != nil {
				t.Errorf("Meter = %v, want nil", tel.Meter)
			}
			if tel.TracesExporter != telemetry.None || tel.MetricsExporter != telemetry.None {
				t.Errorf("exporters = %q, %q, want none, none", tel.TracesExporter, tel.MetricsExporter)
			}
			if a := tel.PrometheusAddr(); a != nil {
				t.Errorf("PrometheusAddr = %v, want nil", a)
			}
			// Shutdown is a no-op, even with a context already done, and
			// may be repeated.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			for range 2 {
				if err := tel.Shutdown(ctx); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			}
			if e, x, f := tel.SpanCounts(); e+x+f != 0 {
				t.Errorf("SpanCounts = %d, %d, %d, want zeros", e, x, f)
			}
			if out.String() != "" {
				t.Errorf("stdout got %q", out.String())
			}
		})
	}
}

func TestStartInvalidEnvironment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tel     *manifest.Telemetry
		env     env
		wantErr []string
	}{
		{name: "traces exporter", env: env{"OTEL_TRACES_EXPORTER": "jaeger"},
			wantErr: []string{"OTEL_TRACES_EXPORTER", "telemetry.traces.exporter"}},
		{name: "metrics exporter", env: env{"OTEL_METRICS_EXPORTER": "statsd"},
			wantErr: []string{"OTEL_METRICS_EXPORTER", "telemetry.metrics.exporter"}},
		{name: "protocol", env: env{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
			wantErr: []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "telemetry.traces.exporter"}},
		{name: "metrics wrong after traces chosen", tel: &manifest.Telemetry{Traces: &manifest.Traces{Exporter: telemetry.Stdout}},
			env: env{"OTEL_METRICS_EXPORTER": "bogus"}, wantErr: []string{"OTEL_METRICS_EXPORTER", "telemetry.metrics.exporter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tel, err := telemetry.Start(context.Background(), tt.tel, telemetry.Options{Getenv: tt.env.get,
				Stdout: io.Discard, Log: discardLog()})
			if err == nil {
				tel.Shutdown(context.Background())
				t.Fatal("Start succeeded, want an error")
			}
			if tel != nil {
				t.Errorf("Start returned %v with its error", tel)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// stdoutRecord is what the stdout exporters write, a span or a batch of
// metrics, as far as the tests look.
type stdoutRecord struct {
	Name     string // a span's
	Resource []struct {
		Key   string
		Value struct {
			Type  string
			Value any
		}
	}
	ScopeMetrics []struct {
		Metrics []struct{ Name string }
	}
}

func (r stdoutRecord) resource() map[string]any {
	m := map[string]any{}
	for _, kv := range r.Resource {
		m[kv.Key] = kv.Value.Value
	}
	return m
}

// decodeStdout decodes the stdout exporters' output: the spans by name,
// and the metric batches.
func decodeStdout(t *testing.T, out string) (spans map[string]stdoutRecord, metrics []stdoutRecord) {
	t.Helper()
	spans = map[string]stdoutRecord{}
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var r stdoutRecord
		if err := dec.Decode(&r); err == io.EOF {
			return spans, metrics
		} else if err != nil {
			t.Fatalf("decoding the stdout exporters' output: %v\n%s", err, out)
		}
		if r.Name != "" {
			spans[r.Name] = r
		} else {
			metrics = append(metrics, r)
		}
	}
}

func TestStartStdout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tel  *manifest.Telemetry
		env  env
	}{
		{name: "manifest", tel: &manifest.Telemetry{ServiceName: "svc-manifest", Resource: map[string]string{"team": "streams"},
			Traces: &manifest.Traces{Exporter: telemetry.Stdout}, Metrics: &manifest.Metrics{Exporter: telemetry.Stdout}}},
		{name: "variables", tel: &manifest.Telemetry{ServiceName: "svc-manifest", Resource: map[string]string{"team": "streams"}},
			env: env{"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}},
		{name: "small queue", tel: &manifest.Telemetry{ServiceName: "svc-manifest", Resource: map[string]string{"team": "streams"},
			Traces:  &manifest.Traces{Exporter: telemetry.Stdout, QueueSize: 1, SampleRatio: ptr(1.0)},
			Metrics: &manifest.Metrics{Exporter: telemetry.Stdout, Interval: manifest.Duration(time.Hour)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out syncBuffer
			tel := start(t, tt.tel, telemetry.Options{Version: "v1.2.3", Getenv: tt.env.get, Stdout: &out})
			if tel.TracesExporter != telemetry.Stdout || tel.MetricsExporter != telemetry.Stdout {
				t.Fatalf("exporters = %q, %q, want stdout, stdout", tel.TracesExporter, tel.MetricsExporter)
			}
			if tel.Tracer == nil || tel.Meter == nil {
				t.Fatalf("Tracer = %v, Meter = %v, want both", tel.Tracer, tel.Meter)
			}
			_, span := tel.Tracer.Start(context.Background(), "stdout-test-span")
			span.End()
			c, err := tel.Meter.Int64Counter("test.stdout.events")
			if err != nil {
				t.Fatal(err)
			}
			c.Add(context.Background(), 2)
			shutdown(t, tel)

			spans, metrics := decodeStdout(t, out.String())
			s, ok := spans["stdout-test-span"]
			if !ok {
				t.Fatalf("span not in the output:\n%s", out.String())
			}
			res := s.resource()
			for k, want := range map[string]string{"service.name": "svc-manifest", "service.version": "v1.2.3", "team": "streams",
				"telemetry.sdk.language": "go"} {
				if res[k] != want {
					t.Errorf("resource %s = %v, want %q", k, res[k], want)
				}
			}
			if ended, exported, failed := tel.SpanCounts(); ended != 1 || exported != 1 || failed != 0 {
				t.Errorf("SpanCounts = %d, %d, %d, want 1, 1, 0", ended, exported, failed)
			}
			var names []string
			for _, m := range metrics {
				if m.resource()["service.name"] != "svc-manifest" {
					t.Errorf("metrics resource service.name = %v, want svc-manifest", m.resource()["service.name"])
				}
				for _, sm := range m.ScopeMetrics {
					for _, mm := range sm.Metrics {
						names = append(names, mm.Name)
					}
				}
			}
			for _, want := range []string{"test.stdout.events", "aegis.telemetry.spans"} {
				if !slices.Contains(names, want) {
					t.Errorf("metric %s not exported; got %v", want, names)
				}
			}
		})
	}
}

// TestStartResource sets OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES in
// the process environment, as the SDK reads them there, not through
// Options.Getenv: it cannot run in parallel.
func TestStartResource(t *testing.T) {
	tests := []struct {
		name        string
		serviceName string
		resource    map[string]string
		version     string // Options.Version
		envName     string // OTEL_SERVICE_NAME
		envAttrs    string // OTEL_RESOURCE_ATTRIBUTES
		want        map[string]string
	}{
		{name: "default", want: map[string]string{"service.name": telemetry.DefaultServiceName}},
		{name: "OTEL_SERVICE_NAME", envName: "svc-env", want: map[string]string{"service.name": "svc-env"}},
		{name: "manifest over OTEL_SERVICE_NAME", serviceName: "svc-manifest", envName: "svc-env",
			want: map[string]string{"service.name": "svc-manifest"}},
		{name: "service.name in OTEL_RESOURCE_ATTRIBUTES", envAttrs: "service.name=svc-attrs,deployment.environment=test",
			want: map[string]string{"service.name": "svc-attrs", "deployment.environment": "test"}},
		{name: "OTEL_SERVICE_NAME over OTEL_RESOURCE_ATTRIBUTES", envName: "svc-env", envAttrs: "service.name=svc-attrs",
			want: map[string]string{"service.name": "svc-env"}},
		{name: "manifest over both", serviceName: "svc-manifest", envName: "svc-env", envAttrs: "service.name=svc-attrs",
			want: map[string]string{"service.name": "svc-manifest"}},
		{name: "manifest resource over OTEL_RESOURCE_ATTRIBUTES", envAttrs: "deployment.environment=test,region=eu",
			resource: map[string]string{"deployment.environment": "prod", "team": "streams"},
			want: map[string]string{"service.name": telemetry.DefaultServiceName, "deployment.environment": "prod",
				"region": "eu", "team": "streams"}},
		{name: "manifest resource service.name, service_name unset", resource: map[string]string{"service.name": "svc-resource"},
			envName: "svc-env", want: map[string]string{"service.name": "svc-resource"}},
		{name: "service_name over manifest resource service.name", serviceName: "svc-manifest",
			resource: map[string]string{"service.name": "svc-resource"}, want: map[string]string{"service.name": "svc-manifest"}},
		{name: "service.version from the options", version: "v9",
			want: map[string]string{"service.name": telemetry.DefaultServiceName, "service.version": "v9"}},
		{name: "service.version in OTEL_RESOURCE_ATTRIBUTES over the options", version: "v9", envAttrs: "service.version=env",
			want: map[string]string{"service.name": telemetry.DefaultServiceName, "service.version": "env"}},
		{name: "unparsable OTEL_RESOURCE_ATTRIBUTES", envAttrs: "no-equals-sign", serviceName: "svc-manifest",
			want: map[string]string{"service.name": "svc-manifest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OTEL_SERVICE_NAME", tt.envName)
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", tt.envAttrs)
			var out syncBuffer
			tel := start(t, &manifest.Telemetry{ServiceName: tt.serviceName, Resource: tt.resource,
				Traces: &manifest.Traces{Exporter: telemetry.Stdout}}, telemetry.Options{Version: tt.version, Stdout: &out})
			_, span := tel.Tracer.Start(context.Background(), "resource-span")
			span.End()
			shutdown(t, tel)
			spans, _ := decodeStdout(t, out.String())
			s, ok := spans["resource-span"]
			if !ok {
				t.Fatalf("span not in the output:\n%s", out.String())
			}
			res := s.resource()
			for k, want := range tt.want {
				if res[k] != want {
					t.Errorf("resource %s = %v, want %q", k, res[k], want)
				}
			}
		})
	}
}

// collector is an OTLP/HTTP collector that keeps what it receives.
type collector struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []collected
}

type collected struct {
	path    string
	header  http.Header
	traces  *coltracepb.ExportTraceServiceRequest
	metrics *colmetricpb.ExportMetricsServiceRequest
	err     error
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serveHTTP))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) serveHTTP(w http.ResponseWriter, r *http.Request) {
	req := collected{path: r.URL.Path, header: r.Header.Clone()}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			req.err = err
		}
		body = zr
	}
	var data []byte
	if req.err == nil {
		data, req.err = io.ReadAll(body)
	}
	var resp proto.Message
	if req.err == nil {
		if strings.HasSuffix(r.URL.Path, "/metrics") {
			req.metrics = &colmetricpb.ExportMetricsServiceRequest{}
			req.err = proto.Unmarshal(data, req.metrics)
			resp = &colmetricpb.ExportMetricsServiceResponse{}
		} else {
			req.traces = &coltracepb.ExportTraceServiceRequest{}
			req.err = proto.Unmarshal(data, req.traces)
			resp = &coltracepb.ExportTraceServiceResponse{}
		}
	}
	c.mu.Lock()
	c.requests = append(c.requests, req)
	c.mu.Unlock()
	if req.err != nil {
		http.Error(w, req.err.Error(), http.StatusBadRequest)
		return
	}
	out, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (c *collector) received() []collected {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.requests)
}

func stringAttr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

func TestStartOTLPHTTP(t *testing.T) {
	t.Parallel()
	headers := map[string]string{"X-Aegis-Token": "secret", "X-Tenant": "t1"}
	tests := []struct {
		name        string
		traces      func(url string) *manifest.Traces
		metrics     func(url string) *manifest.Metrics
		parent      bool // under a sampled remote parent
		wantPath    string
		wantSpans   bool
		wantMetrics bool
	}{
		{name: "base URL", traces: func(url string) *manifest.Traces {
			return &manifest.Traces{Exporter: telemetry.OTLPHTTP, Endpoint: url, Headers: headers}
		}, wantPath: "/v1/traces", wantSpans: true},
		{name: "base URL with a slash, and metrics", traces: func(url string) *manifest.Traces {
			return &manifest.Traces{Exporter: telemetry.OTLPHTTP, Endpoint: url + "/", Headers: headers, SampleRatio: ptr(1.0)}
		}, metrics: func(url string) *manifest.Metrics {
			return &manifest.Metrics{Exporter: telemetry.OTLPHTTP, Endpoint: url, Headers: headers}
		}, wantPath: "/v1/traces", wantSpans: true, wantMetrics: true},
		{name: "URL with a path", traces: func(url string) *manifest.Traces {
			return &manifest.Traces{Exporter: telemetry.OTLPHTTP, Endpoint: url + "/custom/spans", Headers: headers}
		}, wantPath: "/custom/spans", wantSpans: true},
		{name: "sample ratio 0", traces: func(url string) *manifest.Traces {
			return &manifest.Traces{Exporter: telemetry.OTLPHTTP, Endpoint: url, Headers: headers, SampleRatio: ptr(0.0)}
		}, wantPath: "/v1/traces"},
		{name: "sample ratio 0, sampled parent", traces: func(url string) *manifest.Traces {
			return &manifest.Traces{Exporter: telemetry.OTLPHTTP, Endpoint: url, Headers: headers, SampleRatio: ptr(0.0)}
		}, parent: true, wantPath: "/v1/traces", wantSpans: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			col := newCollector(t)
			m := &manifest.Telemetry{ServiceName: "svc-otlp", Traces: tt.traces(col.srv.URL)}
			if tt.metrics != nil {
				m.Metrics = tt.metrics(col.srv.URL)
			}
			tel := start(t, m, telemetry.Options{Version: "v0.0.1"})
			if tel.TracesExporter != telemetry.OTLPHTTP {
				t.Fatalf("TracesExporter = %q, want %q", tel.TracesExporter, telemetry.OTLPHTTP)
			}
			ctx := context.Background()
			if tt.parent {
				ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
					TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true}))
			}
			names := []string{"otlp-span-0", "otlp-span-1", "otlp-span-2"}
			for _, n := range names {
				_, span := tel.Tracer.Start(ctx, n)
				if span.SpanContext().IsSampled() != tt.wantSpans {
					t.Errorf("span %s sampled = %v, want %v", n, span.SpanContext().IsSampled(), tt.wantSpans)
				}
				span.End()
			}
			shutdown(t, tel)

			var gotSpans []string
			var gotMetrics []string
			for _, r := range col.received() {
				if r.err != nil {
					t.Errorf("%s: %v", r.path, r.err)
					continue
				}
				for k, v := range headers {
					if got := r.header.Get(k); got != v {
						t.Errorf("%s: header %s = %q, want %q", r.path, k, got, v)
					}
				}
				switch {
				case r.traces != nil:
					if r.path != tt.wantPath {
						t.Errorf("spans posted to %s, want %s", r.path, tt.wantPath)
					}
					for _, rs := range r.traces.ResourceSpans {
						if got := stringAttr(rs.GetResource().GetAttributes(), "service.name"); got != "svc-otlp" {
							t.Errorf("spans' service.name = %q, want svc-otlp", got)
						}
						for _, ss := range rs.ScopeSpans {
							for _, s := range ss.Spans {
								gotSpans = append(gotSpans, s.Name)
							}
						}
					}
				case r.metrics != nil:
					if r.path != "/v1/metrics" {
						t.Errorf("metrics posted to %s, want /v1/metrics", r.path)
					}
					for _, rm := range r.metrics.ResourceMetrics {
						for _, sm := range rm.ScopeMetrics {
							for _, mm := range sm.Metrics {
								gotMetrics = append(gotMetrics, mm.Name)
							}
						}
					}
				}
			}
			slices.Sort(gotSpans)
			ended, exported, failed := tel.SpanCounts()
			if tt.wantSpans {
				if !slices.Equal(gotSpans, names) {
					t.Errorf("collector got spans %v, want %v", gotSpans, names)
				}
				if ended != 3 || exported != 3 || failed != 0 {
					t.Errorf("SpanCounts = %d, %d, %d, want 3, 3, 0", ended, exported, failed)
				}
			} else {
				if len(gotSpans) != 0 {
					t.Errorf("collector got spans %v, want none", gotSpans)
				}
				if ended != 0 || exported != 0 || failed != 0 {
					t.Errorf("SpanCounts = %d, %d, %d, want zeros", ended, exported, failed)
				}
			}
			if tt.wantMetrics != slices.Contains(gotMetrics, "aegis.telemetry.spans") {
				t.Errorf("collector got metrics %v; want aegis.telemetry.spans: %v", gotMetrics, tt.wantMetrics)
			}
		})
	}
}

// closedPort returns the address of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestExportNeverStalls: with a collector that cannot be reached, ending
// spans does not wait for export; the queue is bounded, and what it cannot
// hold is dropped and counted; Shutdown keeps to its context.
func TestExportNeverStalls(t *testing.T) {
	t.Parallel()
	const spans = 1000
	tests := []struct {
		name     string
		exporter string
	}{
		{"otlp-grpc", telemetry.OTLPGRPC},
		{"otlp-http", telemetry.OTLPHTTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var log syncBuffer
			m := &manifest.Telemetry{Traces: &manifest.Traces{Exporter: tt.exporter,
				Endpoint: "http://" + closedPort(t), QueueSize: 4}}
			tel := start(t, m, telemetry.Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
			if tel.TracesExporter != tt.exporter {
				t.Fatalf("TracesExporter = %q, want %q", tel.TracesExporter, tt.exporter)
			}

			// A queue that blocked would wait at least for the exporter's
			// timeout (10s) or its first retry (5s) per batch of 4.
			looped := make(chan time.Duration, 1)
			go func() {
				begin := time.Now()
				for range spans {
					_, span := tel.Tracer.Start(context.Background(), "stalled")
					span.End()
				}
				looped <- time.Since(begin)
			}()
			select {
			case d := <-looped:
				if d > 4*time.Second {
					t.Errorf("%d spans took %v: ending spans waits for export", spans, d)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%d spans not ended after 10s: ending spans waits for export", spans)
			}

			const grace = 300 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			shut := make(chan error, 1)
			begin := time.Now()
			go func() { shut <- tel.Shutdown(ctx) }()
			var err error
			select {
			case err = <-shut:
				if d := time.Since(begin); d > grace+3*time.Second {
					t.Errorf("Shutdown took %v with a %v context", d, grace)
				}
			case <-time.After(grace + 10*time.Second):
				t.Fatalf("Shutdown did not return %v after its %v context", 10*time.Second, grace)
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown: %v, want nil or the context's error", err)
			}
			ended, exported, _ := tel.SpanCounts()
			if ended != spans || exported != 0 {
				t.Errorf("SpanCounts: ended %d, exported %d, want %d, 0", ended, exported, spans)
			}
			if s := log.String(); !strings.Contains(s, "spans lost") || !strings.Contains(s, "spans=1000") {
				t.Errorf("the log does not report the lost spans:\n%s", s)
			}
		})
	}
}

// scrape GETs the Prometheus endpoint.
func scrape(t *testing.T, addr net.Addr) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	return string(body)
}

// sample finds the value of the sample of metric whose labels include all
// of labels (each as name="value"); "" when there is none.
func sample(body, metric string, labels ...string) string {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, metric)
		if !ok || rest == "" || rest[0] != '{' && rest[0] != ' ' {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		if slices.ContainsFunc(labels, func(l string) bool { return !strings.Contains(rest[:i], l) }) {
			continue
		}
		return rest[i+1:]
	}
	return ""
}

func TestStartPrometheus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		tel       *manifest.Telemetry
		env       env
		wantHost  string
		withSpans bool
	}{
		{name: "manifest address", tel: &manifest.Telemetry{Metrics: &manifest.Metrics{Prometheus: "127.0.0.1:0"}},
			wantHost: "127.0.0.1"},
		{name: "OTEL_METRICS_EXPORTER=prometheus", env: env{"OTEL_METRICS_EXPORTER": "prometheus",
			"OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1", "OTEL_EXPORTER_PROMETHEUS_PORT": "0"}, wantHost: "127.0.0.1"},
		{name: "manifest address over the variables", tel: &manifest.Telemetry{Metrics: &manifest.Metrics{Prometheus: "127.0.0.1:0"}},
			env: env{"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_HOST": "192.0.2.1",
				"OTEL_EXPORTER_PROMETHEUS_PORT": "1"}, wantHost: "127.0.0.1"},
		{name: "with traces and a push exporter", tel: &manifest.Telemetry{Traces: &manifest.Traces{Exporter: telemetry.Stdout},
			Metrics: &manifest.Metrics{Exporter: telemetry.Stdout, Prometheus: "127.0.0.1:0"}}, wantHost: "127.0.0.1", withSpans: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tel := start(t, tt.tel, telemetry.Options{Getenv: tt.env.get})
			addr := tel.PrometheusAddr()
			if addr == nil {
				t.Fatal("PrometheusAddr = nil")
			}
			host, port, err := net.SplitHostPort(addr.String())
			if err != nil || host != tt.wantHost || port == "0" {
				t.Fatalf("PrometheusAddr = %v, want %s and a port", addr, tt.wantHost)
			}
			if tel.Meter == nil {
				t.Fatal("Meter = nil")
			}
			if tt.withSpans {
				for range 2 {
					_, span := tel.Tracer.Start(context.Background(), "prometheus-span")
					span.End()
				}
			}
			c, err := tel.Meter.Int64Counter("test.scrape.requests", metric.WithDescription("Test requests."))
			if err != nil {
				t.Fatal(err)
			}
			c.Add(context.Background(), 3)

			body := scrape(t, addr)
			if got := sample(body, "test_scrape_requests_total"); got != "3" {
				t.Errorf("test_scrape_requests_total = %q, want 3\n%s", got, body)
			}
			if sample(body, "go_goroutines") == "" {
				t.Errorf("no go_goroutines\n%s", body)
			}
			if tt.withSpans {
				if got := sample(body, "aegis_telemetry_spans_total", `aegis_outcome="ended"`); got != "2" {
					t.Errorf(`aegis_telemetry_spans_total{aegis_outcome="ended"} = %q, want 2`+"\n%s", got, body)
				}
			}

			shutdown(t, tel)
			conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
			if err == nil {
				conn.Close()
				t.Errorf("%v still accepts connections after Shutdown", addr)
			}
		})
	}
}

func TestStartPrometheusAddressInUse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tel     func(addr string) *manifest.Telemetry
		env     func(host, port string) env
		wantErr []string
	}{
		{name: "manifest address", tel: func(addr string) *manifest.Telemetry {
			return &manifest.Telemetry{Metrics: &manifest.Metrics{Prometheus: addr}}
		}, wantErr: []string{"telemetry.metrics.prometheus"}},
		{name: "manifest address, with traces", tel: func(addr string) *manifest.Telemetry {
			return &manifest.Telemetry{Traces: &manifest.Traces{Exporter: telemetry.Stdout},
				Metrics: &manifest.Metrics{Exporter: telemetry.Stdout, Prometheus: addr}}
		}, wantErr: []string{"telemetry.metrics.prometheus"}},
		{name: "variables", env: func(host, port string) env {
			return env{"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_HOST": host,
				"OTEL_EXPORTER_PROMETHEUS_PORT": port}
		}, wantErr: []string{"OTEL_EXPORTER_PROMETHEUS_HOST", "OTEL_EXPORTER_PROMETHEUS_PORT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			addr := ln.Addr().String()
			var m *manifest.Telemetry
			if tt.tel != nil {
				m = tt.tel(addr)
			}
			e := env{}
			if tt.env != nil {
				host, port, _ := net.SplitHostPort(addr)
				e = tt.env(host, port)
			}
			tel, err := telemetry.Start(context.Background(), m, telemetry.Options{Getenv: e.get, Stdout: io.Discard, Log: discardLog()})
			if err == nil {
				tel.Shutdown(context.Background())
				t.Fatal("Start succeeded, want an error")
			}
			for _, s := range append(tt.wantErr, addr) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}
