package manifest_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(manifest.Schema()))
	if err != nil {
		t.Fatalf("schema.json is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("manifest.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("manifest.schema.json")
	if err != nil {
		t.Fatalf("compiling schema.json: %v", err)
	}
	return sch
}

var substitution = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}\n]*))?\}`)

// substitute does what the manifest's ${NAME:-default} substitution does,
// for the schema (which sees manifests after it); ok is false when a
// variable without default is not set.
func substitute(text string, env func(string) (string, bool)) (_ string, ok bool) {
	ok = true
	out := substitution.ReplaceAllStringFunc(text, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := substitution.FindStringSubmatch(m)
		v, set := env(sub[1])
		if sub[2] != "" && (!set || v == "") {
			return sub[3]
		}
		if !set {
			ok = false
		}
		return v
	})
	return out, ok
}

// instance converts a YAML manifest to the JSON value the schema checks.
func instance(t *testing.T, text string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("YAML: %v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("JSON: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func noEnv(string) (string, bool) { return "", false }

// TestSchemaAcceptsValidManifests checks the valid test manifests and the
// examples of the repository against the schema.
func TestSchemaAcceptsValidManifests(t *testing.T) {
	sch := compileSchema(t)
	dir, sha := fixture(t)
	for name, text := range validManifests {
		t.Run(name, func(t *testing.T) {
			text, _ := substitute(withSHA(text, sha), noEnv)
			if err := sch.Validate(instance(t, text)); err != nil {
				t.Errorf("%v", err)
			}
			// And as Load leaves it, with its defaults.
			m, err := parse(t, dir, text, nil)
			if err != nil {
				t.Fatal(err)
			}
			out, err := yaml.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(instance(t, string(out))); err != nil {
				t.Errorf("with defaults:\n%v\n%s", err, out)
			}
		})
	}
	examples, _ := filepath.Glob("../../../../examples/*.yaml")
	more, _ := filepath.Glob("../../../../examples/*.yml")
	examples = append(examples, more...)
	if len(examples) == 0 {
		t.Log("no examples/*.yaml to check yet")
	}
	for _, path := range examples {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			text, ok := substitute(string(data), os.LookupEnv)
			if !ok {
				t.Skipf("%s needs environment variables that are not set", path)
			}
			if err := sch.Validate(instance(t, text)); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
}

// TestSchemaRejects checks that the schema rejects structural mistakes,
// as Parse does.
func TestSchemaRejects(t *testing.T) {
	sch := compileSchema(t)
	dir, _ := fixture(t)
	minimal := validManifests["minimal"]
	for _, tc := range []struct{ name, text string }{
		{"unknown top-level key", minimal + "pipelinez: []\n"},
		{"unknown step key", head + "pipelines: [{name: p, from: gen, to: [out], steps: [{name: s, plugn: plugins/filter.wasm}]}]\n"},
		{"unknown channel key", strings.Replace(head, "x: {}", "x: {size: 3}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n"},
		{"missing apiVersion", strings.TrimPrefix(minimal, "apiVersion: aegis/v1\n")},
		{"other apiVersion", strings.Replace(minimal, "aegis/v1", "aegis/v2", 1)},
		{"missing pipelines", head},
		{"no pipelines", head + "pipelines: []\n"},
		{"to is a string", head + "pipelines: [{name: p, from: gen, to: out}]\n"},
		{"buffer is a string", strings.Replace(head, "x: {}", "x: {buffer: lots}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n"},
		{"persistent is a string", strings.Replace(head, "x: {}", "x: {persistent: yes}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n"},
		{"source type unknown", strings.Replace(minimal, "type: generator", "type: kafka", 1)},
		{"slow_subscriber unknown", strings.Replace(head, "x: {}", "x: {slow_subscriber: drop}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n"},
		{"duration without unit", pipe("batch: {max_wait: 5}\n")},
		{"negative duration", pipe("batch: {max_wait: -1s}\n")},
		{"none outside timeout", pipe("batch: {max_wait: none}\n")},
		{"bad size", step("plugin: plugins/filter.wasm\nlimits: {memory: lots}\n")},
		{"memory not a multiple of 64KiB", step("plugin: plugins/filter.wasm\nlimits: {memory: 1049600}\n")},
		{"fuel zero", step("plugin: plugins/filter.wasm\nlimits: {fuel: 0}\n")},
		{"fuel zero with a suffix", step("plugin: plugins/filter.wasm\nlimits: {fuel: 0M}\n")},
		{"fuel negative", step("plugin: plugins/filter.wasm\nlimits: {fuel: -5}\n")},
		{"fuel a fraction", step("plugin: plugins/filter.wasm\nlimits: {fuel: 1.5M}\n")},
		{"fuel a float", step("plugin: plugins/filter.wasm\nlimits: {fuel: 2.5}\n")},
		{"fuel unknown suffix", step("plugin: plugins/filter.wasm\nlimits: {fuel: 100K}\n")},
		{"fuel a size", step("plugin: plugins/filter.wasm\nlimits: {fuel: 100MB}\n")},
		{"fuel None", step("plugin: plugins/filter.wasm\nlimits: {fuel: None}\n")},
		{"fuel a boolean", step("plugin: plugins/filter.wasm\nlimits: {fuel: true}\n")},
		{"fuel trailing underscore", step("plugin: plugins/filter.wasm\nlimits: {fuel: \"100_\"}\n")},
		{"name with a space", head + "pipelines: [{name: a b, from: gen, to: [out]}]\n"},
		{"generator with a path", strings.Replace(minimal, "type: generator", "type: generator, path: x", 1)},
		{"file source without path", strings.Replace(minimal, "type: generator", "type: file", 1)},
		{"format data without event_type", strings.Replace(minimal, "type: generator", "type: stdin, format: data", 1)},
		{"path on stdout", strings.Replace(minimal, "type: stdout", "type: stdout, path: x", 1)},
		{"step of no kind", step("workers: 1\n")},
		{"filter and transform", step("filter: {type: [a]}\ntransform: {set_type: b}\n")},
		{"filter empty", step("filter: {}\n")},
		{"plugin and functions", step("plugin: plugins/agg.wasm\naggregate: {window: {type: session, gap: 1s}, functions: [{fn: count}]}\n")},
		{"kind aggregate without aggregate", step("plugin: plugins/agg.wasm\nkind: aggregate\n")},
		{"with without plugin", step("filter: {type: [a]}\nwith: {a: 1}\n")},
		{"aggregation on workers", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: count}]}\nworkers: 2\n")},
		{"window type unknown", step("aggregate: {window: {type: hopping, size: 1s}, functions: [{fn: count}]}\n")},
		{"tumbling with every", step("aggregate: {window: {type: tumbling, size: 1s, every: 1s}, functions: [{fn: count}]}\n")},
		{"session without gap", step("aggregate: {window: {type: session}, functions: [{fn: count}]}\n")},
		{"count with field", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: count, field: x}]}\n")},
		{"sum without field", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: sum}]}\n")},
		{"group_by unknown", step("aggregate: {group_by: colour, window: {type: session, gap: 1s}, functions: [{fn: count}]}\n")},
		{"policy unknown", step("filter: {type: [a]}\non_error: {policy: ignore}\n")},
		{"dead-letter without dead_letter", step("filter: {type: [a]}\non_error: {policy: dead-letter}\n")},
		{"retries with skip", step("filter: {type: [a]}\non_error: {policy: skip, retries: 2}\n")},
		{"sha256 malformed", step("plugin: plugins/filter.wasm\nsha256: abc\n")},
		{"tracing, moved to telemetry", minimal + "tracing: {exporter: otlp-grpc}\n"},
		{"telemetry unknown key", minimal + "telemetry: {trace: {}}\n"},
		{"service_name empty", minimal + "telemetry: {service_name: \"\"}\n"},
		{"resource key empty", minimal + "telemetry: {resource: {\"\": x}}\n"},
		{"traces exporter unknown", minimal + "telemetry: {traces: {exporter: jaeger}}\n"},
		{"metrics exporter unknown", minimal + "telemetry: {metrics: {exporter: prometheus}}\n"},
		{"endpoint with stdout", minimal + "telemetry: {traces: {exporter: stdout, endpoint: \"http://localhost:4317\"}}\n"},
		{"headers with none", minimal + "telemetry: {metrics: {exporter: none, headers: {a: b}}}\n"},
		{"endpoint not a URL", minimal + "telemetry: {traces: {exporter: otlp-grpc, endpoint: localhost:4317}}\n"},
		{"endpoint of another scheme", minimal + "telemetry: {metrics: {endpoint: \"grpc://localhost:4317\"}}\n"},
		{"header name with a space", minimal + "telemetry: {traces: {headers: {\"api key\": x}}}\n"},
		{"header value with a line break", minimal + "telemetry: {traces: {headers: {a: \"x\\ny\"}}}\n"},
		{"sample_ratio above 1", minimal + "telemetry: {traces: {sample_ratio: 1.5}}\n"},
		{"queue_size zero", minimal + "telemetry: {traces: {queue_size: 0}}\n"},
		{"queue_size too large", minimal + "telemetry: {traces: {queue_size: 1000001}}\n"},
		{"interval without unit", minimal + "telemetry: {metrics: {interval: 10}}\n"},
		{"prometheus a URL", minimal + "telemetry: {metrics: {prometheus: \"http://localhost:9464/metrics\"}}\n"},
		{"prometheus without a port", minimal + "telemetry: {metrics: {prometheus: localhost}}\n"},
		{"prometheus a number", minimal + "telemetry: {metrics: {prometheus: 9464}}\n"},
		{"plugin source without plugin", strings.Replace(minimal, "type: generator", "type: plugin", 1)},
		{"plugin source with a path", strings.Replace(minimal, "type: generator", "type: plugin, plugin: connectors/source, path: x", 1)},
		{"plugin source with a format", strings.Replace(minimal, "type: generator", "type: plugin, plugin: connectors/source, format: event", 1)},
		{"plugin source with a count", strings.Replace(minimal, "type: generator", "type: plugin, plugin: connectors/source, count: 1", 1)},
		{"plugin on a generator", strings.Replace(minimal, "type: generator", "type: generator, plugin: connectors/source", 1)},
		{"with on a file source", strings.Replace(minimal, "type: generator", "type: file, path: input.jsonl, with: {a: 1}", 1)},
		{"max_restarts negative", strings.Replace(minimal, "type: generator", "type: plugin, plugin: connectors/source, max_restarts: -1", 1)},
		{"max_restarts a string", strings.Replace(minimal, "type: generator", "type: plugin, plugin: connectors/source, max_restarts: many", 1)},
		{"connector timeout without unit", strings.Replace(minimal, "type: generator", "type: plugin, plugin: connectors/source, timeout: 30", 1)},
		{"connector timeout none", strings.Replace(minimal, "type: generator", "type: plugin, plugin: connectors/source, timeout: none", 1)},
		{"connector sha256 malformed", strings.Replace(minimal, "type: stdout", "type: plugin, plugin: connectors/sink, sha256: abc", 1)},
		{"plugin sink without plugin", strings.Replace(minimal, "type: stdout", "type: plugin", 1)},
		{"plugin sink with a path", strings.Replace(minimal, "type: stdout", "type: plugin, plugin: connectors/sink, path: out/x", 1)},
		{"plugin sink with a format", strings.Replace(minimal, "type: stdout", "type: plugin, plugin: connectors/sink, format: data", 1)},
		{"timeout on a file sink", strings.Replace(minimal, "type: stdout", "type: file, path: out/x, timeout: 1s", 1)},
		{"sha256 on stdout", strings.Replace(minimal, "type: stdout", "type: stdout, sha256: "+strings.Repeat("0f", 32), 1)},
		{"with on drop", strings.Replace(minimal, "type: stdout", "type: drop, with: {a: 1}", 1)},
		{"sink with a connector typo", strings.Replace(minimal, "type: stdout", "type: plugin, plugin: connectors/sink, max_restart: 1", 1)},
		{"postgres-cdc without dsn", strings.Replace(minimal, "type: generator", "type: postgres-cdc, tables: [{table: orders}]", 1)},
		{"postgres-cdc without tables", strings.Replace(minimal, "type: generator", "type: postgres-cdc, dsn: x", 1)},
		{"postgres-cdc with no tables", strings.Replace(minimal, "type: generator", "type: postgres-cdc, dsn: x, tables: []", 1)},
		{"postgres-cdc table without a name", strings.Replace(minimal, "type: generator", "type: postgres-cdc, dsn: x, tables: [{changes: [insert]}]", 1)},
		{"postgres-cdc change unknown", strings.Replace(minimal, "type: generator", "type: postgres-cdc, dsn: x, tables: [{table: o, changes: [upsert]}]", 1)},
		{"postgres-cdc slot uppercase", strings.Replace(minimal, "type: generator", "type: postgres-cdc, dsn: x, slot: Slot, tables: [{table: o}]", 1)},
		{"postgres-cdc with listen", strings.Replace(minimal, "type: generator", "type: postgres-cdc, dsn: x, listen: \":1\", tables: [{table: o}]", 1)},
		{"debezium without path or listen", strings.Replace(minimal, "type: generator", "type: debezium", 1)},
		{"debezium with path and listen", strings.Replace(minimal, "type: generator", "type: debezium, path: input.jsonl, listen: \":8083\"", 1)},
		{"debezium with a dsn", strings.Replace(minimal, "type: generator", "type: debezium, path: input.jsonl, dsn: x", 1)},
		{"tables on a generator", strings.Replace(minimal, "type: generator", "type: generator, tables: [{table: o}]", 1)},
		{"batch_size on a file source", strings.Replace(minimal, "type: generator", "type: file, path: input.jsonl, batch_size: 5", 1)},
		{"data_dir empty", minimal + "data_dir: \"\"\n"},
		{"api without listen", minimal + "api: {allow_unauthenticated: true}\n"},
		{"api listen a number", minimal + "api: {listen: 8080}\n"},
		{"api unknown key", minimal + "api: {listen: \"127.0.0.1:0\", port: 1}\n"},
		{"api token too short", minimal + "api: {listen: \"127.0.0.1:0\", tokens: [{name: a, token: short}]}\n"},
		{"api token without a secret", minimal + "api: {listen: \"127.0.0.1:0\", tokens: [{name: a}]}\n"},
		{"api unknown action", minimal + "api: {listen: \"127.0.0.1:0\", tokens: [{name: a, token: 0123456789abcdef, grants: [{channels: [x], actions: [write]}]}]}\n"},
		{"api grant without channels", minimal + "api: {listen: \"127.0.0.1:0\", tokens: [{name: a, token: 0123456789abcdef, grants: [{channels: [], actions: [admin]}]}]}\n"},
		{"api tls without key", minimal + "api: {listen: \"127.0.0.1:0\", tls: {cert_file: input.jsonl}}\n"},
		{"api origin with a path", minimal + "api: {listen: \"127.0.0.1:0\", cors_origins: [\"https://a.example/x\"]}\n"},
		{"api max_batch zero", minimal + "api: {listen: \"127.0.0.1:0\", max_batch: 0}\n"},
		{"no pipelines, api null", head + "api:\n"},
		{"data_dir a number", minimal + "data_dir: 5\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sch.Validate(instance(t, tc.text))
			if err == nil {
				t.Errorf("the schema accepts:\n%s", tc.text)
			}
			t.Logf("schema: %v", err)
			if _, err := parse(t, dir, tc.text, nil); err == nil {
				t.Errorf("Parse accepts:\n%s", tc.text)
			}
		})
	}
}

// TestSchemaMatchesTypes checks that the schema has exactly the keys of
// the Go types (their yaml tags), that its required keys are the tags
// without omitempty, that it allows no other keys, and that every key has
// a description.
func TestSchemaMatchesTypes(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal(manifest.Schema(), &root); err != nil {
		t.Fatal(err)
	}
	defs, _ := root["$defs"].(map[string]any)
	if desc, _ := root["description"].(string); !strings.Contains(desc, "# yaml-language-server: $schema=") {
		t.Errorf("the schema's description does not say how a manifest refers to it")
	}
	// deref follows a "$ref" to a definition.
	deref := func(s map[string]any) map[string]any {
		for s != nil {
			ref, ok := s["$ref"].(string)
			if !ok {
				return s
			}
			name, ok := strings.CutPrefix(ref, "#/$defs/")
			if !ok {
				t.Fatalf("unexpected $ref %q", ref)
			}
			s, _ = defs[name].(map[string]any)
		}
		t.Fatal("a $ref to nothing")
		return nil
	}
	refsTo := func(s map[string]any, names ...string) bool {
		if ref, ok := s["$ref"].(string); ok {
			return slices.Contains(names, strings.TrimPrefix(ref, "#/$defs/"))
		}
		all, _ := s["allOf"].([]any)
		for _, a := range all {
			if m, ok := a.(map[string]any); ok && m["$ref"] != nil {
				return slices.Contains(names, strings.TrimPrefix(m["$ref"].(string), "#/$defs/"))
			}
		}
		return false
	}
	jsonTypes := func(s map[string]any) []string {
		switch v := s["type"].(type) {
		case string:
			return []string{v}
		case []any:
			var out []string
			for _, x := range v {
				out = append(out, x.(string))
			}
			return out
		}
		return nil
	}
	seen := map[reflect.Type]bool{}
	var check func(path string, typ reflect.Type, s map[string]any)
	check = func(path string, typ reflect.Type, s map[string]any) {
		if s == nil {
			t.Errorf("%s: no schema", path)
			return
		}
		switch typ {
		case reflect.TypeFor[manifest.Duration]():
			if !refsTo(s, "duration", "timeout") {
				t.Errorf("%s: a Duration whose schema is not #/$defs/duration or timeout", path)
			}
			return
		case reflect.TypeFor[manifest.ByteSize]():
			if !refsTo(s, "byteSize") {
				t.Errorf("%s: a ByteSize whose schema is not #/$defs/byteSize", path)
			}
			return
		case reflect.TypeFor[manifest.Fuel]():
			if !refsTo(s, "fuel") {
				t.Errorf("%s: a Fuel whose schema is not #/$defs/fuel", path)
			}
			return
		}
		s = deref(s)
		want := map[reflect.Kind]string{
			reflect.String: "string", reflect.Bool: "boolean", reflect.Int: "integer", reflect.Int64: "integer",
			reflect.Float64: "number", reflect.Struct: "object", reflect.Map: "object", reflect.Slice: "array",
		}
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if w, ok := want[typ.Kind()]; ok {
			types := jsonTypes(s)
			if enum, ok := s["enum"].([]any); ok && types == nil {
				for _, e := range enum {
					if _, isString := e.(string); !isString || w != "string" {
						t.Errorf("%s: enum value %v for a %v", path, e, typ)
					}
				}
			} else if c, ok := s["const"]; ok && types == nil {
				if _, isString := c.(string); !isString || w != "string" {
					t.Errorf("%s: const %v for a %v", path, c, typ)
				}
			} else if !slices.Contains(types, w) {
				t.Errorf("%s: schema type %v, want %s", path, types, w)
			}
		}
		switch typ.Kind() {
		case reflect.Struct:
			if seen[typ] {
				return
			}
			seen[typ] = true
			if s["additionalProperties"] != false {
				t.Errorf("%s: additionalProperties is not false", path)
			}
			props, _ := s["properties"].(map[string]any)
			var required []string
			list, _ := s["required"].([]any)
			for _, r := range list {
				required = append(required, r.(string))
			}
			var keys, wantRequired []string
			for i := range typ.NumField() {
				f := typ.Field(i)
				tag := f.Tag.Get("yaml")
				name, opts, _ := strings.Cut(tag, ",")
				if name == "-" || name == "" {
					continue
				}
				keys = append(keys, name)
				if !strings.Contains(opts, "omitempty") {
					wantRequired = append(wantRequired, name)
				}
				p, _ := props[name].(map[string]any)
				if p == nil {
					t.Errorf("%s: the schema has no property %q (%s.%s)", path, name, typ.Name(), f.Name)
					continue
				}
				if p["description"] == nil && deref(p)["description"] == nil {
					t.Errorf("%s.%s: no description", path, name)
				}
				check(strings.TrimPrefix(path+"."+name, "."), f.Type, p)
			}
			for name := range props {
				if !slices.Contains(keys, name) {
					t.Errorf("%s: the schema has property %q, which %s has not", path, name, typ.Name())
				}
			}
			slices.Sort(required)
			slices.Sort(wantRequired)
			if !slices.Equal(required, wantRequired) {
				t.Errorf("%s: required %v, want %v (the tags without omitempty)", path, required, wantRequired)
			}
		case reflect.Map:
			if typ.Elem().Kind() == reflect.Interface {
				return // with: any JSON object
			}
			elem, _ := s["additionalProperties"].(map[string]any)
			check(path+".*", typ.Elem(), elem)
		case reflect.Slice:
			items, _ := s["items"].(map[string]any)
			check(path+"[]", typ.Elem(), items)
		}
	}
	check("", reflect.TypeFor[manifest.Manifest](), root)
}

func TestSchemaIsACopy(t *testing.T) {
	a := manifest.Schema()
	a[0] = 'x'
	if b := manifest.Schema(); b[0] != '{' {
		t.Error("Schema returns its embedded bytes, which callers can change")
	}
}
