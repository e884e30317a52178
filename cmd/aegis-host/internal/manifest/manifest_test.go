package manifest_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
)

// fixture makes a directory with what the test manifests refer to: plugin
// files (whose content does not matter: validation neither loads nor runs
// them), connector executables (mode 0755) and one that is not executable
// (connectors/noexec), an input file and an output directory. It returns
// the directory and the sha256 of plugins/enrich.wasm.
func fixture(t testing.TB) (dir, enrichSHA string) {
	t.Helper()
	dir = t.TempDir()
	for name, content := range map[string]string{
		"plugins/enrich.wasm": "not really wasm: enrich",
		"plugins/agg.wasm":    "not really wasm: agg",
		"plugins/filter.wasm": "not really wasm: filter",
		"connectors/source":   connectorContent,
		"connectors/sink":     "#!/bin/sh\n# not really a connector: sink\n",
		"connectors/noexec":   "#!/bin/sh\n# not executable\n",
		"input.jsonl":         `{"type":"created"}` + "\n",
		"out/.keep":           "",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(name, "connectors/") && name != "connectors/noexec" {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256([]byte("not really wasm: enrich"))
	return dir, hex.EncodeToString(sum[:])
}

// connectorContent is the content of the fixture's connectors/source, and
// connectorSHA its sha256.
const connectorContent = "#!/bin/sh\n# not really a connector: source\n"

var connectorSHA = func() string {
	sum := sha256.Sum256([]byte(connectorContent))
	return hex.EncodeToString(sum[:])
}()

// withSHA fills in the @ENRICH_SHA@ placeholder of a test manifest with
// sha, and @CONNECTOR_SHA@ with connectorSHA.
func withSHA(text, sha string) string {
	text = strings.ReplaceAll(text, "@CONNECTOR_SHA@", connectorSHA)
	return strings.ReplaceAll(text, "@ENRICH_SHA@", sha)
}

// fullManifest uses every field of the manifest.
const fullManifest = `# yaml-language-server: $$schema=schema.json
apiVersion: aegis/v1
channels:
  orders: {}
  audit:
    buffer: 4096
    slow_subscriber: drop-oldest
    retention:
      max_events: 10000
      max_age: 1h
  dead:
    persistent: false
    retention: {max_events: -1}
  late:
  events:
    persistent: true
    buffer: 512
    replicas: 3
    discard: new
    duplicate_window: 5m
    retention: {max_events: 1000000, max_age: 24h, max_bytes: 10GiB}
sources:
  gen:
    type: generator
    count: 1000
    rate: 500.5
    start: "2026-01-02T15:04:05Z"
    interval: 2ms
  in:
    type: file
    path: input.jsonl
    format: data
    event_type: order.created
  console-in:
    type: stdin
  cdc:
    type: plugin
    plugin: connectors/source
    sha256: @CONNECTOR_SHA@
    with: {dsn: "postgres://localhost/shop", tables: [orders, customers], slot: 7}
    timeout: 10s
    max_restarts: 0
sinks:
  out:
    type: stdout
  archive:
    type: file
    path: out/archive.jsonl
    append: true
    format: data
  void:
    type: drop
  warehouse:
    type: plugin
    plugin: ./connectors/sink
    with: {table: orders}
    timeout: 1m30s
    max_restarts: 10
pipelines:
  - name: ingest
    from: gen
    steps:
      - name: paid
        filter:
          type: [order.paid, order.created]
          source: urn:shop
          source_prefix: "urn:"
          source_glob: "urn:shop:*"
          meta: {region: eu}
          has_meta: [tenant]
          not:
            has_meta: [test]
          any:
            - source: a
            - source_prefix: b
          all:
            - meta: {region: eu}
      - name: enrich
        plugin: plugins/enrich.wasm
        sha256: @ENRICH_SHA@
        kind: map
        with: {currency: EUR, rates: [1, 2.5], nested: {a: true}}
        limits: {memory: 32MiB, timeout: 250ms, fuel: 50M, max_output: 1MiB}
        grants: {clock: true, random: true, env: {TZ: UTC}}
        workers: 4
        on_error: {policy: retry, retries: 5, backoff: 10ms, max_backoff: 1s, then: dead-letter, dead_letter: dead}
      - name: upper
        transform: {type_case: upper, set_source: shop, set_meta: {stage: enriched}, delete_meta: [tmp]}
    to: [orders, out]
    batch: {max_events: 512, max_wait: 20ms}
  - name: totals
    from: orders
    steps:
      - name: per-type
        aggregate:
          group_by: type
          window: {type: sliding, size: 10s, every: 5s}
          watermark: 1s
          allowed_lateness: 2s
          late: late
          functions:
            - fn: count
            - fn: sum
              field: amount_cents
            - fn: avg
              field: order.total
              as: mean_total
            - {fn: min, field: amount_cents}
            - {fn: max, field: amount_cents}
          emit_type: order.totals
        workers: 1
        on_error: {policy: skip}
      - name: wasm-agg
        plugin: plugins/agg.wasm
        kind: aggregate
        aggregate:
          group_by: data.customer.id
          window: {type: session, gap: 30s}
        limits: {timeout: none, fuel: none}
      - name: tumble
        aggregate:
          group_by: meta.region
          window: {type: tumbling, size: 1m}
          functions: [{fn: count}]
    to: [audit, archive]
  - name: file-in
    from: in
    steps:
      - name: set
        transform: {set_type: order.created}
        on_error: {policy: dead-letter, dead_letter: void}
    to: [void]
  - name: console
    from: console-in
    to: [orders, events]
  - name: durable
    from: events
    delivery: {mode: exactly-once, max_deliver: 4, backoff: [1s, 5s, 30s], dead_letter: dead, start: new}
    to: [void]
  - name: durable-plain
    from: events
    delivery: {mode: at-least-once, ack_wait: 1m, max_deliver: -1, start: all}
    to: [void]
  - name: replicate
    from: cdc
    to: [warehouse]
telemetry:
  service_name: shop
  resource: {deployment.environment: prod, service.version: "1.2.3"}
  traces:
    exporter: otlp-grpc
    endpoint: http://localhost:4317
    headers: {authorization: Bearer abc, X-Tenant: shop}
    sample_ratio: 0.5
    queue_size: 4096
  metrics:
    exporter: otlp-http
    endpoint: https://collector.example.com:4318
    headers: {api-key: secret}
    interval: 30s
    prometheus: 127.0.0.1:9464
nats:
  urls: [nats://nats-1:4222, "tls://nats-2:4222"]
  replicas: 3
data_dir: var/aegis
`

// validManifests are manifests that load (in a fixture directory, with
// @ENRICH_SHA@ filled in and no environment); the schema test checks them
// too.
var validManifests = map[string]string{
	"full": fullManifest,
	"api only": `apiVersion: aegis/v1
channels: {orders: {persistent: true}, audit: {}}
api:
  listen: ":8080"
  cors_origins: ["https://app.example.com"]
  max_body: 1MiB
  heartbeat: 5s
  tokens:
    - name: ops
      token: "0123456789abcdef"
      grants: [{channels: ["*"], actions: [admin]}]
    - name: shop
      token: "fedcba9876543210"
      grants: [{channels: [orders, "orders.*"], actions: [publish, subscribe]}]
`,
	"minimal": `apiVersion: aegis/v1
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines: [{name: p, from: gen, to: [out]}]
`,
	"empty grants env": `apiVersion: aegis/v1
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines:
  - name: p
    from: gen
    steps: [{name: f, plugin: plugins/filter.wasm, grants: {clock: true, env: {}}}]
    to: [out]
`,
	"env defaults": `apiVersion: aegis/v1
sources:
  gen: {type: generator, count: ${COUNT:-10}}
sinks:
  out: {type: file, path: "${OUT_DIR:-out}/x.jsonl"}
pipelines:
  - name: p
    from: gen
    to: [out]
    batch: {max_wait: "${WAIT:-10ms}"}
`,
	"anchors and merge keys": `apiVersion: aegis/v1
channels: {mid: {}}
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines:
  - name: a
    from: gen
    steps:
      - &step
        name: f
        plugin: plugins/filter.wasm
        limits: &limits {memory: 16MiB, timeout: 2s, fuel: 2G}
      - name: g
        plugin: plugins/filter.wasm
        limits:
          <<: *limits
          timeout: none
          fuel: "100_000_000"
    to: [mid]
  - name: b
    from: mid
    steps: [*step]
    to: [out]
`,
	"json": `{"apiVersion": "aegis/v1", "sources": {"gen": {"type": "generator", "count": 5}},
 "sinks": {"out": {"type": "stdout"}},
 "pipelines": [{"name": "p", "from": "gen", "to": ["out"], "steps": [{"name": "w", "plugin": "plugins/enrich.wasm", "sha256": "@ENRICH_SHA@", "limits": {"fuel": 250000}}]}]}
`,
	"telemetry, the rest from the environment": `apiVersion: aegis/v1
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines: [{name: p, from: gen, to: [out]}]
telemetry:
  traces: {endpoint: "https://otel.example.com", headers: {X-Scope-OrgID: team-a}, sample_ratio: 0}
  metrics: {interval: 100ms, prometheus: ":9464"}
`,
	"connectors": `apiVersion: aegis/v1
sources:
  in: {type: plugin, plugin: connectors/source}
  pinned: {type: plugin, plugin: connectors/source, sha256: "@CONNECTOR_SHA@", with: {}, max_restarts: 0}
sinks:
  out: {type: plugin, plugin: connectors/sink, with: {url: "http://localhost:9200", bulk: {size: 500, flush: 1s}}}
  quick: {type: plugin, plugin: connectors/sink, timeout: 250ms, max_restarts: 1}
pipelines:
  - {name: p, from: in, to: [out], steps: [{name: w, plugin: plugins/filter.wasm, with: {}}]}
  - {name: q, from: pinned, to: [quick, out]}
data_dir: .
`,
	"persistent, embedded": `apiVersion: aegis/v1
channels:
  events: {persistent: true, retention: {max_bytes: 1GiB}}
  more: {persistent: true, discard: new, retention: {max_events: 10, max_age: 1s}}
  dead: {persistent: true}
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines:
  - {name: in, from: gen, to: [events]}
  - {name: drain, from: events, to: [more]}
  - {name: last, from: more, to: [out], delivery: {max_deliver: 1, dead_letter: dead}}
nats: {listen: "127.0.0.1:0", max_store: 10GiB}
`,
	"fan out and in": `apiVersion: aegis/v1
channels: {a: null, b: {}, c: {}}
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines:
  - {name: split, from: gen, to: [a, b]}
  - {name: left, from: a, to: [c]}
  - {name: right, from: b, to: [c]}
  - {name: join, from: c, to: [out]}
  - {name: also, from: c, to: [out]}
`,
}

func parse(t testing.TB, dir, text string, env map[string]string) (*manifest.Manifest, error) {
	t.Helper()
	return manifest.Parse("pipeline.yaml", []byte(text), dir, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
}

func TestValidManifests(t *testing.T) {
	dir, sha := fixture(t)
	for name, text := range validManifests {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // Parse is safe for concurrent use
			if _, err := parse(t, dir, withSHA(text, sha), nil); err != nil {
				t.Fatalf("Parse:\n%v", err)
			}
		})
	}
}

func TestLoadFull(t *testing.T) {
	dir, sha := fixture(t)
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(withSHA(fullManifest, sha)), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Load(path)
	if err != nil {
		t.Fatalf("Load:\n%v", err)
	}
	if m.File != path || m.Dir != dir {
		t.Errorf("File, Dir = %q, %q; want %q, %q", m.File, m.Dir, path, dir)
	}
	if got, want := m.Resolve("plugins/enrich.wasm"), filepath.Join(dir, "plugins/enrich.wasm"); got != want {
		t.Errorf("Resolve = %q, want %q", got, want)
	}
	if got := m.Resolve("/abs/x.wasm"); got != "/abs/x.wasm" {
		t.Errorf("Resolve(absolute) = %q", got)
	}

	// Spot checks of decoded values, of every kind.
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("channels.audit.retention.max_age", m.Channels["audit"].Retention.MaxAge.D(), time.Hour)
	check("channels.dead.retention.max_events", m.Channels["dead"].Retention.MaxEvents, -1)
	check("sources.gen.rate", m.Sources["gen"].Rate, 500.5)
	check("sources.gen.interval", m.Sources["gen"].Interval.D(), 2*time.Millisecond)
	enrich := m.Pipelines[0].Steps[1]
	check("enrich.sha256", enrich.SHA256, sha)
	check("enrich.with", enrich.With, map[string]any{"currency": "EUR", "rates": []any{uint64(1), 2.5}, "nested": map[string]any{"a": true}})
	check("enrich.limits", *enrich.Limits, manifest.Limits{Memory: 32 * manifest.MiB, Timeout: manifest.Duration(250 * time.Millisecond), Fuel: 50_000_000, MaxOutput: manifest.MiB})
	check("enrich.grants", *enrich.Grants, manifest.Grants{Clock: true, Random: true, Env: map[string]string{"TZ": "UTC"}})
	check("enrich.on_error", *enrich.OnError, manifest.ErrorPolicy{Policy: "retry", DeadLetter: "dead", Retries: 5,
		Backoff: manifest.Duration(10 * time.Millisecond), MaxBackoff: manifest.Duration(time.Second), Then: "dead-letter"})
	wasmAgg := m.Pipelines[1].Steps[1]
	check("wasm-agg.limits.timeout", wasmAgg.Limits.Timeout, manifest.NoDeadline)
	check("wasm-agg.limits.timeout.D", wasmAgg.Limits.Timeout.D(), time.Duration(-1))
	check("wasm-agg.limits.fuel", wasmAgg.Limits.Fuel, manifest.NoFuel)
	check("wasm-agg.limits.fuel.Int64", wasmAgg.Limits.Fuel.Int64(), int64(-1))
	check("wasm-agg.kind", wasmAgg.Kind, "aggregate")
	check("sources.cdc", m.Sources["cdc"], manifest.Source{Type: "plugin", Plugin: "connectors/source", SHA256: connectorSHA,
		With:    map[string]any{"dsn": "postgres://localhost/shop", "tables": []any{"orders", "customers"}, "slot": uint64(7)},
		Timeout: manifest.Duration(10 * time.Second), MaxRestarts: new(0)})
	check("sinks.warehouse", m.Sinks["warehouse"], manifest.Sink{Type: "plugin", Plugin: "./connectors/sink",
		With: map[string]any{"table": "orders"}, Timeout: manifest.Duration(90 * time.Second), MaxRestarts: new(10)})
	check("resolved connector", m.Resolve(m.Sinks["warehouse"].Plugin), filepath.Join(dir, "connectors/sink"))
	check("data_dir", m.DataDir, "var/aegis")
	check("DataPath()", m.DataPath(), filepath.Join(dir, "var/aegis"))
	check("DataPath(connectors, cdc)", m.DataPath("connectors", "cdc"), filepath.Join(dir, "var/aegis/connectors/cdc"))
	if _, err := os.Stat(m.DataPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load made the data directory (or: %v); it is made when first needed", err)
	}
	check("channels.events", m.Channels["events"], manifest.Channel{Persistent: true, Buffer: 512, Replicas: 3, Discard: "new",
		DuplicateWindow: manifest.Duration(5 * time.Minute),
		Retention:       &manifest.Retention{MaxEvents: 1_000_000, MaxAge: manifest.Duration(24 * time.Hour), MaxBytes: 10 * manifest.GiB}})
	check("nats", *m.NATS, manifest.NATS{URLs: []string{"nats://nats-1:4222", "tls://nats-2:4222"}, Replicas: 3})
	check("durable.delivery", *m.Pipelines[4].Delivery, manifest.Delivery{Mode: "exactly-once", MaxDeliver: 4,
		Backoff:    []manifest.Duration{manifest.Duration(time.Second), manifest.Duration(5 * time.Second), manifest.Duration(30 * time.Second)},
		DeadLetter: "dead", Start: "new"})
	check("durable-plain.delivery", *m.Pipelines[5].Delivery, manifest.Delivery{Mode: "at-least-once", AckWait: manifest.Duration(time.Minute),
		MaxDeliver: manifest.NoMaxDeliver, Start: "all"})
	check("ingest.delivery", m.Pipelines[0].Delivery, (*manifest.Delivery)(nil))
	check("per-type.window", m.Pipelines[1].Steps[0].Aggregate.Window,
		manifest.Window{Type: "sliding", Size: manifest.Duration(10 * time.Second), Every: manifest.Duration(5 * time.Second)})
	check("telemetry", *m.Telemetry, manifest.Telemetry{
		ServiceName: "shop",
		Resource:    map[string]string{"deployment.environment": "prod", "service.version": "1.2.3"},
		Traces: &manifest.Traces{Exporter: "otlp-grpc", Endpoint: "http://localhost:4317",
			Headers:     map[string]string{"authorization": "Bearer abc", "X-Tenant": "shop"},
			SampleRatio: new(0.5), QueueSize: 4096},
		Metrics: &manifest.Metrics{Exporter: "otlp-http", Endpoint: "https://collector.example.com:4318",
			Headers:  map[string]string{"api-key": "secret"},
			Interval: manifest.Duration(30 * time.Second), Prometheus: "127.0.0.1:9464"},
	})
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	m, err := manifest.Load(path)
	if m != nil || err == nil {
		t.Fatalf("Load = %v, %v; want an error", m, err)
	}
	var errs manifest.Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("error %T %v, want one Errors", err, err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
	if want := path + ": cannot read the manifest: no such file or directory"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestRoundTrip writes a loaded manifest back out, as YAML and as JSON,
// and reads it again: the defaults are valid and nothing is lost.
func TestRoundTrip(t *testing.T) {
	dir, sha := fixture(t)
	for name, text := range validManifests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m, err := parse(t, dir, withSHA(text, sha), nil)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, dir, m)
		})
	}
}

func TestDefaults(t *testing.T) {
	dir, _ := fixture(t)
	m, err := parse(t, dir, `apiVersion: aegis/v1
channels: {c: {}, d: {retention: {max_age: 1m}}}
sources:
  gen: {type: generator}
  f: {type: file, path: input.jsonl}
  in: {type: stdin}
  conn: {type: plugin, plugin: connectors/source}
  conn-empty-with: {type: plugin, plugin: connectors/source, with: {}, max_restarts: 0}
sinks:
  out: {type: stdout}
  file: {type: file, path: out/x}
  drop: {type: drop}
  conn-out: {type: plugin, plugin: connectors/sink, with: null}
pipelines:
  - name: p
    from: gen
    steps:
      - {name: plain, plugin: plugins/filter.wasm, with: {}}
      - {name: retry, plugin: plugins/filter.wasm, on_error: {policy: retry}}
      - {name: slow, plugin: plugins/filter.wasm, on_error: {policy: retry, backoff: 10s}}
      - name: agg
        aggregate:
          window: {type: tumbling, size: 1s}
          functions: [{fn: count}, {fn: sum, field: order.total}]
      - name: wagg
        plugin: plugins/agg.wasm
        aggregate: {window: {type: tumbling, size: 1s}}
    to: [c]
  - {name: q, from: f, to: [d]}
  - {name: r, from: in, to: [out, file, drop]}
  - {name: s, from: conn, to: [conn-out]}
  - {name: t, from: conn-empty-with, to: [drop]}
telemetry: {traces: {}, metrics: {}}
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	ms := func(n int) manifest.Duration { return manifest.Duration(time.Duration(n) * time.Millisecond) }
	check("channel c", m.Channels["c"], manifest.Channel{Buffer: 1024, SlowSubscriber: "block", Retention: &manifest.Retention{MaxEvents: 1000}})
	check("channel d retention", *m.Channels["d"].Retention, manifest.Retention{MaxEvents: 1000, MaxAge: ms(60000)})
	check("generator", m.Sources["gen"], manifest.Source{Type: "generator", Interval: ms(1)})
	check("file source", m.Sources["f"], manifest.Source{Type: "file", Path: "input.jsonl", Format: "event"})
	check("stdin source", m.Sources["in"], manifest.Source{Type: "stdin", Format: "event"})
	check("stdout sink", m.Sinks["out"], manifest.Sink{Type: "stdout", Format: "event"})
	check("file sink", m.Sinks["file"], manifest.Sink{Type: "file", Path: "out/x", Format: "event"})
	check("drop sink", m.Sinks["drop"], manifest.Sink{Type: "drop"})
	check("plugin source", m.Sources["conn"], manifest.Source{Type: "plugin", Plugin: "connectors/source",
		Timeout: manifest.DefaultConnectorTimeout, MaxRestarts: new(manifest.DefaultConnectorMaxRestarts)})
	check("plugin source, with {} and max_restarts 0", m.Sources["conn-empty-with"], manifest.Source{Type: "plugin", Plugin: "connectors/source",
		Timeout: ms(30000), MaxRestarts: new(0)})
	check("plugin sink", m.Sinks["conn-out"], manifest.Sink{Type: "plugin", Plugin: "connectors/sink", Timeout: ms(30000), MaxRestarts: new(5)})
	check("data_dir", m.DataDir, ".aegis")
	check("DataPath", m.DataPath(), filepath.Join(dir, ".aegis"))
	for _, p := range m.Pipelines {
		check(p.Name+" batch", *p.Batch, manifest.Batch{MaxEvents: 256, MaxWait: ms(50)})
	}
	steps := m.Pipelines[0].Steps
	// with: {} is as good as none, and left out when written back.
	check("plain", steps[0], manifest.Step{Name: "plain", Plugin: "plugins/filter.wasm",
		Limits:  &manifest.Limits{Memory: 64 * manifest.MiB, Timeout: ms(1000), Fuel: 10_000_000, MaxOutput: 16 * manifest.MiB},
		Workers: 1, OnError: &manifest.ErrorPolicy{Policy: "fail"}})
	check("retry", *steps[1].OnError, manifest.ErrorPolicy{Policy: "retry", Retries: 3, Backoff: ms(100), MaxBackoff: ms(5000), Then: "fail"})
	check("slow retry", *steps[2].OnError, manifest.ErrorPolicy{Policy: "retry", Retries: 3, Backoff: ms(10000), MaxBackoff: ms(10000), Then: "fail"})
	check("agg", *steps[3].Aggregate, manifest.Aggregate{
		Window:    manifest.Window{Type: "tumbling", Size: ms(1000)},
		Functions: []manifest.Function{{Fn: "count", As: "count"}, {Fn: "sum", Field: "order.total", As: "sum_order_total"}},
		EmitType:  "agg",
	})
	check("agg workers", steps[3].Workers, 1)
	check("wagg kind", steps[4].Kind, "aggregate")
	check("wagg emit_type", steps[4].Aggregate.EmitType, "")
	// Only the queue size: the OTEL_* variables decide the rest.
	check("telemetry", *m.Telemetry, manifest.Telemetry{Traces: &manifest.Traces{QueueSize: 2048}, Metrics: &manifest.Metrics{}})

	m, err = parse(t, dir, validManifests["minimal"], nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Telemetry != nil {
		t.Errorf("telemetry = %+v, want nil when the manifest has none", m.Telemetry)
	}
	if m.DataDir != manifest.DefaultDataDir {
		t.Errorf("data_dir = %q, want %q", m.DataDir, manifest.DefaultDataDir)
	}
	for name, got := range map[string]any{
		"DefaultConnectorTimeout":     manifest.DefaultConnectorTimeout.D(),
		"DefaultConnectorMaxRestarts": manifest.DefaultConnectorMaxRestarts,
		"DefaultDataDir":              manifest.DefaultDataDir,
	} {
		want := map[string]any{"DefaultConnectorTimeout": 30 * time.Second, "DefaultConnectorMaxRestarts": 5, "DefaultDataDir": ".aegis"}[name]
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestConnectorMaxRestarts checks that max_restarts reads as written, 0
// included, and that each reads back the same when written out: 0 (never
// restart) is not the default.
func TestConnectorMaxRestarts(t *testing.T) {
	dir, _ := fixture(t)
	for _, tc := range []struct {
		field string
		want  int
	}{
		{"", manifest.DefaultConnectorMaxRestarts},
		{", max_restarts: 0", 0},
		{", max_restarts: 1", 1},
		{", max_restarts: 5", 5},
		{", max_restarts: 1000", 1000},
	} {
		t.Run(tc.field, func(t *testing.T) {
			m, err := parse(t, dir, `apiVersion: aegis/v1
sources: {in: {type: plugin, plugin: connectors/source`+tc.field+`}}
sinks: {out: {type: plugin, plugin: connectors/sink`+tc.field+`}}
pipelines: [{name: p, from: in, to: [out]}]
`, nil)
			if err != nil {
				t.Fatal(err)
			}
			for what, got := range map[string]*int{"source": m.Sources["in"].MaxRestarts, "sink": m.Sinks["out"].MaxRestarts} {
				if got == nil || *got != tc.want {
					t.Errorf("%s max_restarts = %v, want %d", what, dump(got), tc.want)
				}
			}
			roundTrip(t, dir, m)
		})
	}
}

// TestConnectorExecutable checks that a connector's executable needs an
// execute bit, any of them (as the kernel does for root).
func TestConnectorExecutable(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no execute bits; Load does not check them there")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o755, true},
		{0o700, true},
		{0o100, true},
		{0o654, true},
		{0o645, true},
		{0o644, false},
		{0o600, false},
		{0o444, false},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			p := filepath.Join(dir, "connector")
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(p)
			_, err := parse(t, dir, `apiVersion: aegis/v1
sources: {gen: {type: generator}}
sinks: {out: {type: plugin, plugin: connector}}
pipelines: [{name: p, from: gen, to: [out]}]
`, nil)
			switch {
			case tc.ok && err != nil:
				t.Errorf("mode %v: %v", tc.mode, err)
			case !tc.ok:
				checkErrors(t, err, []string{fmt.Sprintf("pipeline.yaml:3:37: sinks.out.plugin: connector is not executable (its mode is %v; chmod +x it)", tc.mode)})
			}
		})
	}
}

// TestConnectorSHA256 checks a connector's pin as TestSHA256 checks a
// step's: one check for both.
func TestConnectorSHA256(t *testing.T) {
	dir := t.TempDir()
	content := []byte("#!/bin/sh\nexec true\n")
	if err := os.WriteFile(filepath.Join(dir, "conn"), content, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	good := hex.EncodeToString(sum[:])
	text := func(pin string) string {
		return `apiVersion: aegis/v1
sources:
  in:
    type: plugin
    plugin: conn
    sha256: "` + pin + `"
sinks:
  out:
    type: plugin
    plugin: ./conn
    sha256: "` + pin + `"
pipelines: [{name: p, from: in, to: [out]}]
`
	}
	for _, pin := range []string{good, strings.ToUpper(good)} {
		m, err := parse(t, dir, text(pin), nil)
		if err != nil {
			t.Fatalf("pin %s: %v", pin, err)
		}
		if got := m.Sources["in"].SHA256; got != pin {
			t.Errorf("sha256 = %q, want it as written, %q", got, pin)
		}
	}
	wrong := strings.Repeat("ab", 32)
	_, err := parse(t, dir, text(wrong), nil)
	checkErrors(t, err, []string{
		"pipeline.yaml:6:13: sources.in.sha256: sha256 mismatch: the file has " + good + ", the manifest pins " + wrong,
		"pipeline.yaml:11:13: sinks.out.sha256: sha256 mismatch: the file has " + good + ", the manifest pins " + wrong,
	})
	_, err = parse(t, dir, text("abc"), nil)
	checkErrors(t, err, []string{
		`pipeline.yaml:6:13: sources.in.sha256: must be a SHA-256 digest, 64 hex digits, got "abc"`,
		`pipeline.yaml:11:13: sinks.out.sha256: must be a SHA-256 digest, 64 hex digits, got "abc"`,
	})
	_, err = parse(t, dir, text(strings.Repeat("zz", 32)), nil)
	checkErrors(t, err, []string{
		`pipeline.yaml:6:13: sources.in.sha256: must be a SHA-256 digest`,
		`pipeline.yaml:11:13: sinks.out.sha256: must be a SHA-256 digest`,
	})
}

// TestTelemetry checks what Load makes of telemetry blocks, and that each
// reads back the same when written out (as YAML and as JSON).
func TestTelemetry(t *testing.T) {
	dir, _ := fixture(t)
	for _, tc := range []struct {
		name, text string
		want       *manifest.Telemetry
	}{
		{"none", "", nil},
		{"null", "telemetry:\n", nil},
		{"empty", "telemetry: {}\n", &manifest.Telemetry{}},
		{"traces null", "telemetry: {traces: null, metrics: null}\n", &manifest.Telemetry{}},
		{"traces empty", "telemetry: {traces: {}}\n", &manifest.Telemetry{Traces: &manifest.Traces{QueueSize: 2048}}},
		{"empty mappings", "telemetry: {resource: {}, traces: {headers: {}}, metrics: {headers: {}}}\n",
			&manifest.Telemetry{Traces: &manifest.Traces{QueueSize: 2048}, Metrics: &manifest.Metrics{}}},
		{"sample_ratio 0", "telemetry: {traces: {sample_ratio: 0}}\n",
			&manifest.Telemetry{Traces: &manifest.Traces{SampleRatio: new(0.0), QueueSize: 2048}}},
		{"sample_ratio 1", "telemetry: {traces: {sample_ratio: 1}}\n",
			&manifest.Telemetry{Traces: &manifest.Traces{SampleRatio: new(1.0), QueueSize: 2048}}},
		{"queue_size bounds", "telemetry: {traces: {queue_size: 1}}\n",
			&manifest.Telemetry{Traces: &manifest.Traces{QueueSize: 1}}},
		{"queue_size most", "telemetry: {traces: {queue_size: 1000000}}\n",
			&manifest.Telemetry{Traces: &manifest.Traces{QueueSize: 1_000_000}}},
		{"endpoint without exporter", "telemetry: {traces: {endpoint: \"http://collector:4317\", headers: {a: b}}}\n",
			&manifest.Telemetry{Traces: &manifest.Traces{Endpoint: "http://collector:4317", Headers: map[string]string{"a": "b"}, QueueSize: 2048}}},
		{"endpoint with a path", "telemetry: {metrics: {exporter: otlp-http, endpoint: \"https://otel.example.com/v1/metrics\"}}\n",
			&manifest.Telemetry{Metrics: &manifest.Metrics{Exporter: "otlp-http", Endpoint: "https://otel.example.com/v1/metrics"}}},
		{"endpoint IPv6", "telemetry: {traces: {exporter: otlp-grpc, endpoint: \"http://[::1]:4317\"}}\n",
			&manifest.Telemetry{Traces: &manifest.Traces{Exporter: "otlp-grpc", Endpoint: "http://[::1]:4317", QueueSize: 2048}}},
		{"exporters without endpoints", "telemetry: {traces: {exporter: stdout}, metrics: {exporter: none}}\n",
			&manifest.Telemetry{Traces: &manifest.Traces{Exporter: "stdout", QueueSize: 2048}, Metrics: &manifest.Metrics{Exporter: "none"}}},
		{"header names", "telemetry: {traces: {headers: {\"x-a.b_c~1!#$%&'*+^`|\": \"Basic dTpw==; q=\\\"1\\\"\"}}}\n",
			&manifest.Telemetry{Traces: &manifest.Traces{Headers: map[string]string{"x-a.b_c~1!#$%&'*+^`|": `Basic dTpw==; q="1"`}, QueueSize: 2048}}},
		{"interval at least", "telemetry: {metrics: {interval: 100ms}}\n",
			&manifest.Telemetry{Metrics: &manifest.Metrics{Interval: manifest.Duration(100 * time.Millisecond)}}},
		{"prometheus every interface", "telemetry: {metrics: {prometheus: \":9464\"}}\n",
			&manifest.Telemetry{Metrics: &manifest.Metrics{Prometheus: ":9464"}}},
		{"prometheus any port", "telemetry: {metrics: {prometheus: \"localhost:0\"}}\n",
			&manifest.Telemetry{Metrics: &manifest.Metrics{Prometheus: "localhost:0"}}},
		{"prometheus IPv6", "telemetry: {metrics: {prometheus: \"[::1]:65535\"}}\n",
			&manifest.Telemetry{Metrics: &manifest.Metrics{Prometheus: "[::1]:65535"}}},
		{"service name and resource", "telemetry: {service_name: shop, resource: {team: payments}}\n",
			&manifest.Telemetry{ServiceName: "shop", Resource: map[string]string{"team": "payments"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parse(t, dir, validManifests["minimal"]+tc.text, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Telemetry, tc.want) {
				t.Errorf("telemetry = %s, want %s", dump(m.Telemetry), dump(tc.want))
			}
			roundTrip(t, dir, m)
		})
	}
}

// roundTrip checks that m, written out as YAML and as JSON, reads back to
// the same value.
func roundTrip(t *testing.T, dir string, m *manifest.Manifest) {
	t.Helper()
	for _, enc := range []struct {
		name    string
		marshal func(any) ([]byte, error)
	}{{"yaml", yaml.Marshal}, {"json", json.Marshal}} {
		out, err := enc.marshal(m)
		if err != nil {
			t.Fatalf("%s: %v", enc.name, err)
		}
		m2, err := parse(t, dir, string(out), nil)
		if err != nil {
			t.Fatalf("%s: reading back:\n%v\n%s", enc.name, err, out)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Errorf("%s: read back differs: telemetry %s, want %s\n%s", enc.name, dump(m2.Telemetry), dump(m.Telemetry), out)
		}
	}
}

// dump renders a value for test messages, pointers followed.
func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// TestFuel checks the forms limits.fuel takes, and its default.
func TestFuel(t *testing.T) {
	dir, _ := fixture(t)
	for _, tc := range []struct {
		limits string
		want   manifest.Fuel
	}{
		{"{fuel: 50M}", 50_000_000},
		{"{fuel: none}", manifest.NoFuel},
		{"{fuel: 2G}", 2_000_000_000},
		{"{fuel: 500k}", 500_000},
		{"{fuel: 1234}", 1234},
		{"{fuel: 100_000_000}", 100_000_000},
		{`{fuel: "1_000_000"}`, 1_000_000},
		{"{memory: 16MiB}", manifest.DefaultFuel},
		{"{}", manifest.DefaultFuel},
		{"", manifest.DefaultFuel},
	} {
		t.Run(tc.limits, func(t *testing.T) {
			text := step("plugin: plugins/filter.wasm\n")
			if tc.limits != "" {
				text = step("plugin: plugins/filter.wasm\nlimits: " + tc.limits + "\n")
			}
			m, err := parse(t, dir, text, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Pipelines[0].Steps[0].Limits.Fuel; got != tc.want {
				t.Errorf("fuel = %v (%d), want %v (%d)", got, got, tc.want, tc.want)
			}
		})
	}
	if manifest.DefaultFuel != 10_000_000 || manifest.DefaultFuel.String() != "10M" {
		t.Errorf("DefaultFuel = %d (%v), want 10M", manifest.DefaultFuel, manifest.DefaultFuel)
	}
}

func TestEnv(t *testing.T) {
	dir, _ := fixture(t)
	env := map[string]string{"NAME": "orders", "EMPTY": "", "SRC": "urn:$shop", "NL": "a\nb"}
	// The value is substituted into set_source, at line 11, column 24.
	text := func(setSource string) string {
		return `apiVersion: aegis/v1
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines:
  - name: p
    from: gen
    to: [out]
    steps:
      - name: t
        transform:
          set_source: "` + setSource + `"
`
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"set", "${NAME}", "orders"},
		{"set with default", "${NAME:-x}", "orders"},
		{"unset with default", "${UNSET:-fallback}", "fallback"},
		{"empty with default", "${EMPTY:-fallback}", "fallback"},
		{"empty", "x${EMPTY}y", "xy"},
		{"default with spaces and colons", "${UNSET:-a b:c}", "a b:c"},
		{"empty default", "${UNSET:-}", ""},
		{"dollar dollar", "$${NAME}", "${NAME}"},
		{"lone dollar", "$NAME $ x$", "$NAME $ x$"},
		{"value with dollar is not substituted again", "${SRC}", "urn:$shop"},
		{"two", "${NAME}/${NAME}", "orders/orders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parse(t, dir, text(tc.in), env)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Pipelines[0].Steps[0].Transform.SetSource; got != tc.want {
				t.Errorf("set_source = %q, want %q", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"unset", "${UNSET}", []string{`pipeline.yaml:11:24: environment variable UNSET is not set (write ${UNSET:-default} to give a default)`}},
		{"all unset ones", "${A}${B}", []string{
			`pipeline.yaml:11:24: environment variable A is not set`,
			`pipeline.yaml:11:28: environment variable B is not set`,
		}},
		{"newline", "${NL}", []string{`pipeline.yaml:11:24: environment variable NL contains a line break`}},
		{"unterminated", "${NAME", []string{`pipeline.yaml:11:24: unterminated ${`}},
		{"bad name", "${1X}", []string{`pipeline.yaml:11:24: invalid substitution ${1X}`}},
		{"empty name", "${}", []string{`pipeline.yaml:11:24: invalid substitution ${}`}},
		{"other operator", "${NAME:?err}", []string{`pipeline.yaml:11:24: invalid substitution ${NAME:?err}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, dir, text(tc.in), env)
			checkErrors(t, err, tc.want)
		})
	}
	t.Run("nil env", func(t *testing.T) {
		_, err := manifest.Parse("pipeline.yaml", []byte(text("${HOME}")), dir, nil)
		checkErrors(t, err, []string{"pipeline.yaml:11:24: environment variable HOME is not set"})
	})
	t.Run("Load reads the process environment", func(t *testing.T) {
		t.Setenv("AEGIS_TEST_SOURCE", "from-env")
		path := filepath.Join(dir, "env.yaml")
		if err := os.WriteFile(path, []byte(text("${AEGIS_TEST_SOURCE}")), 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := manifest.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Pipelines[0].Steps[0].Transform.SetSource; got != "from-env" {
			t.Errorf("set_source = %q, want from-env", got)
		}
	})
}

// checkErrors checks that err is an Errors whose messages start with
// want, one each, in order.
func checkErrors(t *testing.T, err error, want []string) {
	t.Helper()
	var errs manifest.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %T %v, want manifest.Errors", err, err)
	}
	ok := len(errs) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(errs[i].Error(), want[i])
	}
	if !ok {
		t.Errorf("errors:\n%v\nwant (prefixes):\n%s", err, strings.Join(want, "\n"))
	}
	if s := errs.Error(); strings.Count(s, "\n") != len(errs)-1 {
		t.Errorf("Errors.Error() is not one line per error:\n%s", s)
	}
}

// checkParseErrors checks that parsing text fails with the errors want, as
// checkErrors does; want leaves out the file name before the line.
func checkParseErrors(t *testing.T, dir, text string, want []string) {
	t.Helper()
	m, err := parse(t, dir, text, nil)
	if m != nil || err == nil {
		t.Fatalf("Parse succeeded; want errors:\n%s", strings.Join(want, "\n"))
	}
	full := make([]string, len(want))
	for i, w := range want {
		full[i] = "pipeline.yaml:" + w
	}
	checkErrors(t, err, full)
}

func TestSHA256(t *testing.T) {
	dir := t.TempDir()
	content := []byte("\x00asm\x01\x00\x00\x00")
	if err := os.WriteFile(filepath.Join(dir, "p.wasm"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	good := hex.EncodeToString(sum[:])
	text := func(pin string) string {
		return `apiVersion: aegis/v1
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines:
  - name: p
    from: gen
    to: [out]
    steps:
      - name: w
        plugin: p.wasm
        sha256: "` + pin + `"
`
	}
	for _, pin := range []string{good, strings.ToUpper(good)} {
		m, err := parse(t, dir, text(pin), nil)
		if err != nil {
			t.Fatalf("pin %s: %v", pin, err)
		}
		if got := m.Pipelines[0].Steps[0].SHA256; got != pin {
			t.Errorf("sha256 = %q, want it as written, %q", got, pin)
		}
	}
	wrong := strings.Repeat("ab", 32)
	_, err := parse(t, dir, text(wrong), nil)
	checkErrors(t, err, []string{"pipeline.yaml:11:17: pipelines[0].steps[0].sha256: sha256 mismatch: the file has " + good + ", the manifest pins " + wrong})
	_, err = parse(t, dir, text("abc"), nil)
	checkErrors(t, err, []string{`pipeline.yaml:11:17: pipelines[0].steps[0].sha256: must be a SHA-256 digest, 64 hex digits, got "abc"`})
	_, err = parse(t, dir, text(strings.Repeat("zz", 32)), nil)
	checkErrors(t, err, []string{`pipeline.yaml:11:17: pipelines[0].steps[0].sha256: must be a SHA-256 digest`})
}

func TestErrorRendering(t *testing.T) {
	for _, tc := range []struct {
		e    manifest.Error
		want string
	}{
		{manifest.Error{File: "p.yaml", Line: 12, Column: 7, Field: "pipelines[0].steps[1].plugin", Msg: "no such file: plugins/x.wasm"},
			"p.yaml:12:7: pipelines[0].steps[1].plugin: no such file: plugins/x.wasm"},
		{manifest.Error{File: "p.yaml", Line: 3, Msg: "m"}, "p.yaml:3: m"},
		{manifest.Error{File: "p.yaml", Field: "f", Msg: "m"}, "p.yaml: f: m"},
		{manifest.Error{Line: 1, Column: 2, Msg: "m"}, "1:2: m"},
		{manifest.Error{Msg: "m"}, "m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	errs := manifest.Errors{{Msg: "a"}, {Msg: "b"}}
	if got := errs.Error(); got != "a\nb" {
		t.Errorf("Errors.Error() = %q", got)
	}
	var e *manifest.Error
	if !errors.As(error(errs), &e) || e.Msg != "a" {
		t.Errorf("errors.As(Errors, *Error) = %v", e)
	}
}

func TestMergeKeys(t *testing.T) {
	dir, _ := fixture(t)
	m, err := parse(t, dir, validManifests["anchors and merge keys"], nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := m.Pipelines[0], m.Pipelines[1]
	if got, want := *a.Steps[0].Limits, (manifest.Limits{Memory: 16 * manifest.MiB, Timeout: manifest.Duration(2 * time.Second), Fuel: 2_000_000_000, MaxOutput: 16 * manifest.MiB}); got != want {
		t.Errorf("f limits = %+v, want %+v", got, want)
	}
	if got, want := *a.Steps[1].Limits, (manifest.Limits{Memory: 16 * manifest.MiB, Timeout: manifest.NoDeadline, Fuel: 100_000_000, MaxOutput: 16 * manifest.MiB}); got != want {
		t.Errorf("g limits (merged, timeout and fuel overridden) = %+v, want %+v", got, want)
	}
	if !reflect.DeepEqual(b.Steps[0], a.Steps[0]) {
		t.Errorf("aliased step = %+v, want %+v", b.Steps[0], a.Steps[0])
	}
}
