package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// collector is a real OpenTelemetry Collector (tools/otelcol, built by
// the deps task) receiving OTLP over gRPC and HTTP on loopback and writing
// what it gets to files, one OTLP/JSON request per line.
type collector struct {
	grpc, http     string // host:port
	traces, metric string // output files
}

// otelcolBinary is the collector the deps task builds; AEGIS_OTELCOL names
// it (go tool task test sets it), else bin/otelcol when it is there.
func otelcolBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AEGIS_OTELCOL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("AEGIS_OTELCOL: %v (go tool task otelcol builds it)", err)
		}
		return p
	}
	p := filepath.Join(plugintest.Root(t), "bin", "otelcol")
	if _, err := os.Stat(p); err != nil {
		t.Skip("no OpenTelemetry Collector: go tool task otelcol builds bin/otelcol (go tool task test does)")
	}
	return p
}

var (
	sharedCollector     *collector
	sharedCollectorErr  error
	sharedCollectorOnce sync.Once
)

// startCollector starts the collector once for the package's tests; it
// stops when the test binary exits (it is killed with the process group's
// parent gone, and TestMain-free: see the Pdeathsig).
func startCollector(t *testing.T) *collector {
	t.Helper()
	bin := otelcolBinary(t)
	sharedCollectorOnce.Do(func() { sharedCollector, sharedCollectorErr = launchCollector(bin) })
	if sharedCollectorErr != nil {
		t.Fatal(sharedCollectorErr)
	}
	return sharedCollector
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func launchCollector(bin string) (*collector, error) {
	dir, err := os.MkdirTemp("", "aegis-otelcol-")
	if err != nil {
		return nil, err
	}
	c := &collector{traces: filepath.Join(dir, "traces.jsonl"), metric: filepath.Join(dir, "metrics.jsonl")}
	if c.grpc, err = freePort(); err != nil {
		return nil, err
	}
	if c.http, err = freePort(); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc: {endpoint: %q}
      http: {endpoint: %q}
exporters:
  file/traces: {path: %q, format: json, flush_interval: 100ms}
  file/metrics: {path: %q, format: json, flush_interval: 100ms}
service:
  telemetry:
    metrics: {level: none}
  pipelines:
    traces: {receivers: [otlp], exporters: [file/traces]}
    metrics: {receivers: [otlp], exporters: [file/metrics]}
`, c.grpc, c.http, c.traces, c.metric)
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config=file:"+cfg)
	logf, err := os.Create(filepath.Join(dir, "collector.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// The collector dies with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, addr := range []string{c.grpc, c.http} {
		for {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				log, _ := os.ReadFile(logf.Name())
				return nil, fmt.Errorf("the collector did not listen on %s within a minute:\n%s", addr, log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c, nil
}

// otlpSpan is a span as the collector's file exporter writes it.
type otlpSpan struct {
	TraceID      string     `json:"traceId"`
	SpanID       string     `json:"spanId"`
	ParentSpanID string     `json:"parentSpanId"`
	Name         string     `json:"name"`
	Attributes   []otlpAttr `json:"attributes"`
	Events       []struct {
		Name       string     `json:"name"`
		Attributes []otlpAttr `json:"attributes"`
	} `json:"events"`
	Links []struct {
		TraceID string `json:"traceId"`
		SpanID  string `json:"spanId"`
	} `json:"links"`
	Status struct {
		Code int `json:"code"`
	} `json:"status"`
	service string
}

type otlpAttr struct {
	Key   string `json:"key"`
	Value struct {
		String string `json:"stringValue"`
		Int    string `json:"intValue"`
		Bool   bool   `json:"boolValue"`
	} `json:"value"`
}

func attrOf(as []otlpAttr, key string) (string, bool) {
	for _, a := range as {
		if a.Key == key {
			if a.Value.Int != "" {
				return a.Value.Int, true
			}
			if a.Value.String == "" && a.Value.Bool {
				return "true", true
			}
			return a.Value.String, true
		}
	}
	return "", false
}

// outputLines reads the lines of one of the collector's files so far;
// none when it has written nothing yet.
func outputLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// mark is where the collector's span output ends now: spansOf(since mark)
// reads what arrived after it, so that a test sees its own run's spans
// only, also when the tests run again in one process (-count).
func (c *collector) mark(t *testing.T) int {
	t.Helper()
	return len(outputLines(t, c.traces))
}

// spansOf reads the spans of one service that arrived after the since-th
// line of the collector's output.
func (c *collector) spansOf(t *testing.T, service string, since int) []otlpSpan {
	t.Helper()
	var spans []otlpSpan
	lines := outputLines(t, c.traces)
	for _, line := range lines[min(since, len(lines)):] {
		var req struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes []otlpAttr `json:"attributes"`
				} `json:"resource"`
				ScopeSpans []struct {
					Spans []otlpSpan `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.Unmarshal(line, &req); err != nil {
			continue // a line being written
		}
		for _, rs := range req.ResourceSpans {
			svc, _ := attrOf(rs.Resource.Attributes, "service.name")
			if svc != service {
				continue
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					s.service = svc
					spans = append(spans, s)
				}
			}
		}
	}
	return spans
}

// metricNames reads the names of the metrics one service sent.
func (c *collector) metricNames(t *testing.T, service string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, line := range outputLines(t, c.metric) {
		var req struct {
			ResourceMetrics []struct {
				Resource struct {
					Attributes []otlpAttr `json:"attributes"`
				} `json:"resource"`
				ScopeMetrics []struct {
					Metrics []struct {
						Name string `json:"name"`
					} `json:"metrics"`
				} `json:"scopeMetrics"`
			} `json:"resourceMetrics"`
		}
		if json.Unmarshal(line, &req) != nil {
			continue
		}
		for _, rm := range req.ResourceMetrics {
			if svc, _ := attrOf(rm.Resource.Attributes, "service.name"); svc != service {
				continue
			}
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					names[m.Name] = true
				}
			}
		}
	}
	return names
}

// TestRunTracesToCollector runs aegis-host against a real OpenTelemetry
// Collector, over OTLP/gRPC and over OTLP/HTTP, and checks the span tree
// that arrives: a trace carried in by the input's events continues
// through the steps, into a channel and through the pipeline that reads
// it; a plugin's panic is an exception event on its step's span; metrics
// arrive too.
func TestRunTracesToCollector(t *testing.T) {
	col := startCollector(t)
	plugins := pluginDir(t, map[string]string{
		"filter.wasm": "orders/filter", "map.wasm": "orders/map", "panic.wasm": "bad/panic"})
	const (
		traceID = "4bf92f3577b34da6a3ce929e0e4736aa"
		spanID  = "00f067aa0ba902b7"
	)
	// Three orders of one trace, a "boom" that panics the third pipeline's
	// plugin, in one batch.
	var input strings.Builder
	for i, typ := range []string{"order.created", "order.paid", "order.refunded", "boom"} {
		e := engine.Event{ID: testID(i), Type: engine.EventType(typ), Source: "urn:shop:checkout:eu-west-1:instance-07:partition-01",
			Time: int64(1767225600000000000 + i), Data: engine.MustJSONData(fmt.Sprintf(`{"amount":%d.5,"type":%q,"source":"urn:shop:checkout:eu-west-1:instance-07:partition-01"}`, i+1, typ)),
			Metadata: map[string]string{engine.MetaTraceParent: "00-" + traceID + "-" + spanID + "-01", engine.MetaTraceState: "vendor=1"}}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		input.Write(b)
		input.WriteByte('\n')
	}
	for _, proto := range []struct{ name, exporter, endpoint string }{
		{"grpc", "otlp-grpc", "http://" + col.grpc},
		{"http", "otlp-http", "http://" + col.http},
	} {
		t.Run(proto.name, func(t *testing.T) {
			service := "aegis-e2e-" + proto.name
			since := col.mark(t)
			dir := t.TempDir()
			in := writeFile(t, dir, "in.jsonl", input.String())
			out := filepath.Join(dir, "out.jsonl")
			manifest := writeFile(t, dir, "m.yaml", fmt.Sprintf(`apiVersion: aegis/v1
telemetry:
  service_name: %s
  resource: {deployment.environment: test}
  traces: {exporter: %s, endpoint: %q}
  metrics: {exporter: %s, endpoint: %q, interval: 100ms}
channels:
  enriched: {}
sources:
  in: {type: file, path: %q}
sinks:
  out: {type: file, path: %q}
pipelines:
  - name: orders
    from: in
    batch: {max_events: 100, max_wait: 1s}
    steps:
      - {name: drop-refunds, plugin: %s, kind: filter}
      - {name: enrich, plugin: %s, kind: map, on_error: {policy: skip}}
    to: [enriched]
  - name: boom
    from: enriched
    batch: {max_events: 100, max_wait: 1s}
    steps:
      - {name: lower, transform: {type_case: lower}}
      - {name: explode, plugin: %s, on_error: {policy: skip}}
    to: [out]
`, service, proto.exporter, proto.endpoint, proto.exporter, proto.endpoint, in, out,
				filepath.Join(plugins, "filter.wasm"), filepath.Join(plugins, "map.wasm"), filepath.Join(plugins, "panic.wasm")))
			code, _, stderr := runCLI(t, "run", "-f", manifest)
			if code != exitOK {
				t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
			}
			// What the sink got: the orders the trace carried in, still in
			// it (the pipelines' passes continued it).
			evs := decodeEvents(t, readLines(t, out))
			if len(evs) != 2 {
				t.Fatalf("the sink got %d events, want 2 (created, paid): %v", len(evs), evs)
			}
			var spans []otlpSpan
			want := []string{"aegis.pipeline orders", "aegis.step filter drop-refunds", "aegis.step map enrich",
				"aegis.pipeline boom", "aegis.step transform lower", "aegis.step map explode"}
			deadline := time.Now().Add(20 * time.Second)
			for {
				spans = col.spansOf(t, service, since)
				var names []string
				for _, s := range spans {
					names = append(names, s.Name)
				}
				if len(spans) >= len(want) || time.Now().After(deadline) {
					slices.Sort(names)
					if w := slices.Sorted(slices.Values(want)); !slices.Equal(names, w) {
						t.Fatalf("spans in the collector: %q, want %q", names, w)
					}
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			byName := map[string]otlpSpan{}
			for _, s := range spans {
				byName[s.Name] = s
				if s.TraceID != traceID {
					t.Errorf("%s: trace %s, want the input's %s", s.Name, s.TraceID, traceID)
				}
			}
			orders, boom := byName["aegis.pipeline orders"], byName["aegis.pipeline boom"]
			if orders.ParentSpanID != spanID {
				t.Errorf("the orders pass's parent is %q, want the input's span %s", orders.ParentSpanID, spanID)
			}
			if boom.ParentSpanID != orders.SpanID {
				t.Errorf("the boom pass's parent is %q, want the orders pass %s (through the channel)", boom.ParentSpanID, orders.SpanID)
			}
			for step, pass := range map[string]otlpSpan{"aegis.step filter drop-refunds": orders, "aegis.step map enrich": orders,
				"aegis.step transform lower": boom, "aegis.step map explode": boom} {
				if p := byName[step].ParentSpanID; p != pass.SpanID {
					t.Errorf("%s: parent %q, want its pass %s", step, p, pass.SpanID)
				}
			}
			// The events written carry the last pass's trace context.
			for _, e := range evs {
				if tp, want := e.Metadata[engine.MetaTraceParent], "00-"+traceID+"-"+boom.SpanID+"-01"; tp != want {
					t.Errorf("event %s: traceparent %q, want %q", e.ID, tp, want)
				}
				if ts := e.Metadata[engine.MetaTraceState]; ts != "vendor=1" {
					t.Errorf("event %s: tracestate %q, want the input's vendor=1", e.ID, ts)
				}
			}
			if svc := orders.service; svc != service {
				t.Errorf("service.name %q, want %q", svc, service)
			}
			enrich := byName["aegis.step map enrich"]
			for key, want := range map[string]string{
				"aegis.pipeline": "orders", "aegis.step": "enrich", "aegis.step.kind": "map",
				"aegis.plugin.name": "map", "aegis.abi.version": "1.0",
				"aegis.events.in": "3", "aegis.events.out": "3", "aegis.events.errored": "0"} {
				if got, _ := attrOf(enrich.Attributes, key); got != want {
					t.Errorf("enrich: %s = %q, want %q", key, got, want)
				}
			}
			if sha, _ := attrOf(enrich.Attributes, "aegis.plugin.sha256"); len(sha) != 64 {
				t.Errorf("enrich: aegis.plugin.sha256 = %q", sha)
			}
			if got, _ := attrOf(byName["aegis.step filter drop-refunds"].Attributes, "aegis.events.out"); got != "3" {
				t.Errorf("drop-refunds: aegis.events.out = %s, want 3 (of 4)", got)
			}
			// The boom pipeline's plugin panicked on the "boom" event:
			// the batch failed as a trap, then the event alone.
			explode := byName["aegis.step map explode"]
			if explode.Status.Code != 2 {
				t.Errorf("explode: status %d, want 2 (error)", explode.Status.Code)
			}
			if got, _ := attrOf(explode.Attributes, "aegis.events.errored"); got != "1" {
				t.Errorf("explode: aegis.events.errored = %s, want 1", got)
			}
			var traps, logs int
			for _, ev := range explode.Events {
				typ, _ := attrOf(ev.Attributes, "error.type")
				switch {
				case ev.Name == "exception" && typ == "trap":
					traps++
				case ev.Name == "log":
					logs++
				}
			}
			if traps == 0 || logs == 0 {
				t.Errorf("explode: %d trap exceptions and %d log events, want both (the plugin warns, then panics): %+v", traps, logs, explode.Events)
			}
			// Metrics arrive too.
			for deadline := time.Now().Add(20 * time.Second); ; {
				names := col.metricNames(t, service)
				if names["aegis.step.events"] && names["aegis.step.duration"] && names["aegis.channel.events"] && names["aegis.plugin.instances"] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("metrics in the collector: %v", names)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestRunTraceExportUnreachable: a collector that is not there costs the
// run nothing but a warning: every event goes through and the run exits
// within the shutdown's bound.
func TestRunTraceExportUnreachable(t *testing.T) {
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	manifest := writeFile(t, dir, "m.yaml", fmt.Sprintf(`apiVersion: aegis/v1
telemetry:
  traces: {exporter: otlp-grpc, endpoint: "http://%s", queue_size: 8}
sources:
  gen: {type: generator, count: 5000}
sinks:
  out: {type: file, path: %q}
pipelines:
  - name: gen
    from: gen
    batch: {max_events: 10}
    steps:
      - {name: types, transform: {type_case: upper}}
    to: [out]
`, addr, out))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan struct{})
	var code int
	var stderr string
	go func() {
		defer close(done)
		code, _, stderr = runCLI(t, "run", "-f", manifest)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the run did not end within a minute with an unreachable collector")
	}
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	if n := len(readLines(t, out)); n != 5000 {
		t.Errorf("the sink got %d events, want 5000", n)
	}
	if !strings.Contains(stderr, "spans lost") {
		t.Errorf("stderr does not report the spans lost:\n%s", stderr)
	}
}

// TestRunTracedExample runs examples/traced.yaml against the collector:
// the quickstart's output, and its spans under the example's service.
func TestRunTracedExample(t *testing.T) {
	col := startCollector(t)
	t.Setenv("AEGIS_PLUGINS", ordersPlugins(t))
	t.Setenv("AEGIS_OTLP", "http://"+col.grpc)
	t.Setenv("AEGIS_PROMETHEUS", "127.0.0.1:0")
	since := col.mark(t)
	code, stdout, stderr := runCLI(t, "run", "-f", "../../examples/traced.yaml")
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	if n := len(lines(stdout)); n != 30 {
		t.Errorf("stdout has %d lines, want the quickstart's 30 windows:\n%s", n, stdout)
	}
	// 10 batches of 1000 through 3 steps, and the final flush.
	for deadline := time.Now().Add(20 * time.Second); ; {
		count := map[string]int{}
		for _, s := range col.spansOf(t, "aegis-quickstart", since) {
			count[s.Name]++
		}
		if count["aegis.pipeline orders"] == 11 && count["aegis.step filter drop-refunds"] == 10 &&
			count["aegis.step map enrich"] == 10 && count["aegis.step aggregate totals"] == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans of aegis-quickstart in the collector: %v", count)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRunTelemetryVariablesRefused: a standard variable with a value
// aegis-host cannot honour stops run and validate before anything starts,
// with an error that names the manifest and the variable.
func TestRunTelemetryVariablesRefused(t *testing.T) {
	dir := t.TempDir()
	manifest := writeFile(t, dir, "m.yaml", `apiVersion: aegis/v1
sources:
  gen: {type: generator, count: 1}
sinks:
  out: {type: drop}
pipelines:
  - {name: p, from: gen, to: [out]}
`)
	for _, tt := range []struct{ name, key, value, want string }{
		{"exporter", "OTEL_TRACES_EXPORTER", "zipkin", `OTEL_TRACES_EXPORTER="zipkin": want otlp, console or none (telemetry.traces.exporter is not set)`},
		{"protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", `OTEL_EXPORTER_OTLP_PROTOCOL="http/json": want grpc or http/protobuf`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.key, tt.value)
			if tt.key == "OTEL_EXPORTER_OTLP_PROTOCOL" {
				t.Setenv("OTEL_METRICS_EXPORTER", "otlp")
			}
			for _, cmd := range []string{"run", "validate"} {
				code, _, stderr := runCLI(t, cmd, "-f", manifest)
				if code == exitOK || !strings.Contains(stderr, manifest+": ") || !strings.Contains(stderr, tt.want) {
					t.Errorf("%s: exit code %d, stderr:\n%s\nwant an error with %q", cmd, code, stderr, tt.want)
				}
			}
		})
	}
}
