package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/goccy/go-yaml"
)

var fuzzSeeds = []string{
	"",
	"apiVersion: aegis/v1\n",
	`apiVersion: aegis/v1
sources: {gen: {type: generator, count: 5}}
sinks: {out: {type: stdout}}
pipelines: [{name: p, from: gen, to: [out]}]
`,
	`apiVersion: aegis/v1
channels: {x: {buffer: 8, retention: {max_events: -1, max_age: 1m}}}
sources: {in: {type: stdin, format: data, event_type: t}}
sinks: {out: {type: file, path: out.jsonl}, d: {type: drop}}
pipelines:
  - name: a
    from: in
    steps:
      - {name: f, filter: {type: [a, b], not: {source_glob: "x*"}, any: [{source: s}]}}
      - {name: t, transform: {type_case: upper, set_meta: {k: v}}}
      - name: w
        plugin: p.wasm
        limits: {memory: 16MiB, timeout: none}
        on_error: {policy: retry, then: dead-letter, dead_letter: d}
    to: [x]
  - name: b
    from: x
    steps:
      - name: agg
        aggregate:
          group_by: data.a.b
          window: {type: sliding, size: 10s, every: 5s}
          functions: [{fn: count}, {fn: avg, field: v}]
          late: d
    to: [out]
    batch: {max_events: 10, max_wait: ${SET:-5ms}}
telemetry: {traces: {exporter: otlp-http, sample_ratio: 0.25}}
`,
	`apiVersion: aegis/v1
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines: [{name: p, from: gen, to: [out]}]
telemetry:
  service_name: shop
  resource: {deployment.environment: prod, "": x}
  traces:
    exporter: otlp-grpc
    endpoint: https://collector:4317
    headers: {authorization: Bearer t, "bad name": v}
    sample_ratio: 0
    queue_size: 4096
  metrics:
    endpoint: http://[::1]:4318/v1/metrics
    headers: {}
    interval: ${SET:-15s}
    prometheus: ":9464"
`,
	"apiVersion: aegis/v1\npipelines: [{name: p, from: gen, to: [out]}]\ntelemetry: {resource: {}, traces: {}, metrics: {exporter: stdout, prometheus: \"http://x:1\"}}\ntracing: {}\n",
	"apiVersion: aegis/v1\npipelines: [{name: p, from: ${UNSET}, to: $$x}]\n",
	`apiVersion: aegis/v1
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines:
  - name: p
    from: gen
    steps:
      - {name: a, plugin: p.wasm, limits: {fuel: 50M}}
      - {name: b, plugin: p.wasm, limits: {fuel: none, timeout: none}}
      - {name: c, plugin: p.wasm, limits: {fuel: "100_000_000"}}
      - {name: d, plugin: p.wasm, limits: {fuel: 1234}}
    to: [out]
`,
	`apiVersion: aegis/v1
data_dir: state
sources:
  cdc:
    type: plugin
    plugin: conn
    sha256: a8076d3d28d21e02012b20eaf7dbf75409a6277134439025f282e368e3305abf
    with: {dsn: "postgres://localhost/db", tables: [a, b], slot: 1, opts: {x: null}}
    timeout: 10s
    max_restarts: 0
  other: {type: plugin, plugin: ./conn, with: {}, max_restarts: -1, timeout: 0s}
sinks:
  wh: {type: plugin, plugin: conn, timeout: 1m, max_restarts: 3}
  bad: {type: plugin, plugin: p.wasm, path: x, format: data}
  f: {type: file, path: out.jsonl, plugin: conn, with: {a: 1}}
pipelines:
  - {name: p, from: cdc, to: [wh]}
  - {name: q, from: other, to: [bad, f]}
`,
	`apiVersion: aegis/v1
sources: {in: {type: plugin, plugin: conn, max_restarts: 2}}
sinks: {out: {type: plugin, plugin: conn, timeout: 250ms}}
pipelines: [{name: p, from: in, to: [out]}]
data_dir: .aegis
`,
	"apiVersion: aegis/v1\nsources: {in: {type: plugin}}\nsinks: {out: {type: plugin, plugin: nope, sha256: abc}}\npipelines: [{name: p, from: in, to: [out]}]\ndata_dir: \"\"\n",
	`apiVersion: aegis/v1
channels:
  x: {persistent: true, replicas: 3, discard: new, duplicate_window: 30s, retention: {max_events: 0, max_age: 1m, max_bytes: 1GiB}}
  y: {persistent: true}
  z: {replicas: 1, slow_subscriber: drop-oldest}
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}, d: {type: drop}}
pipelines:
  - {name: a, from: gen, to: [x, y]}
  - name: b
    from: x
    delivery: {mode: exactly-once, max_deliver: 3, backoff: [1s, 5s], dead_letter: d, start: new}
    to: [out]
  - {name: c, from: y, to: [z], delivery: {ack_wait: 1m, max_deliver: -1}}
  - {name: e, from: z, to: [d], delivery: {}}
nats: {urls: [nats://a:4222, "tls://b:4222"], replicas: 3}
`,
	"apiVersion: aegis/v1\nchannels: {x: {persistent: true, retention: {max_events: -1}}}\nsources: {g: {type: generator}}\npipelines: [{name: p, from: g, to: [x]}, {name: q, from: x, to: [x], delivery: {backoff: [], dead_letter: x}}]\nnats: {listen: \":4222\", max_store: 1GiB, replicas: 1}\n",
	"apiVersion: aegis/v1\nnats: {urls: [\"nats://a:1,nats://b:2\", \"http://x\"], listen: x, max_store: 0, replicas: 2}\npipelines: [{name: p, from: g, to: [o]}]\n",
	`apiVersion: aegis/v1
channels: {dead: {}}
sources:
  pg: {type: postgres-cdc, dsn: "postgres://u@h/db", slot: s_1, publication: p, snapshot: true, include_before: false, batch_size: 8, batch_timeout: 5ms, status_interval: 1s, tables: [{table: public.orders, changes: [insert, delete], columns: [id], filter: 'row.status == "paid"'}]}
  dz: {type: debezium, path: "-", dead_letter: dead, tables: [{table: orders}]}
  http: {type: debezium, listen: "127.0.0.1:0", batch_size: 1}
sinks: {out: {type: stdout}}
pipelines: [{name: a, from: pg, to: [out]}, {name: b, from: dz, to: [out]}, {name: c, from: http, to: [out]}, {name: d, from: dead, to: [out]}]
`,
	"apiVersion: aegis/v1\nsources: {pg: {type: postgres-cdc, tables: [{table: a.b.c, filter: \"row.x ==\"}, {}], listen: x}, dz: {type: debezium, path: p, listen: \":1\", dsn: y}}\npipelines: [{name: p, from: pg, to: [o]}]\n",
	"a: &a [*a]\n",
	"a: &a {b: 1}\nc: {<<: *a}\n",
	"apiVersion: aegis/v1\nchannels: {x: &c {}, y: *c}\npipelines: []\n",
	"- [\n",
	"apiVersion: aegis/v1\n---\nb: 2\n",
}

// FuzzParse checks that Parse never panics, that its errors are Errors
// that name the file and, for input that is YAML, a line and a column,
// and that a manifest it accepts, written back out, reads the same.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.wasm"), []byte("wasm"), 0o644); err != nil {
		f.Fatal(err)
	}
	// A connector's executable (it need not be a real one: Parse does not
	// run it); a seed pins its sha256.
	if err := os.WriteFile(filepath.Join(dir, "conn"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		f.Fatal(err)
	}
	env := func(k string) (string, bool) {
		if k == "SET" {
			return "1s", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.yaml", data, dir, env)
		if (m == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want a manifest or an error", m, err)
		}
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T %v: want a non-empty Errors", err, err)
			}
			expanded, xerrs := expand("fuzz.yaml", data, env)
			_, perr := parseYAML(expanded)
			isYAML := len(xerrs) == 0 && perr == nil
			for _, e := range errs {
				switch {
				case e == nil:
					t.Fatal("a nil *Error")
				case e.File != "fuzz.yaml":
					t.Fatalf("error %q names file %q", e, e.File)
				case e.Msg == "":
					t.Fatalf("error %q has no message", e)
				case e.Line < 0 || e.Column < 0 || e.Line > 0 && e.Column == 0:
					t.Fatalf("error %q has position %d:%d", e, e.Line, e.Column)
				case isYAML && e.Line == 0:
					t.Fatalf("error %q of a YAML document has no position", e)
				}
			}
			return
		}
		out, err := yaml.Marshal(m)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if bytes.Contains(out, []byte("$")) {
			return // it would be substituted
		}
		m2, err := Parse("fuzz.yaml", out, dir, env)
		if err != nil {
			t.Fatalf("reading back\n%s\nfails:\n%v\n(from\n%s)", out, err, data)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("read back differs:\n%s\nfrom\n%s", out, data)
		}
	})
}
