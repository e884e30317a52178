package manifest_test

import (
	"fmt"
	"strings"
	"testing"
)

// head starts most manifests of TestErrors: four lines, so that what
// follows starts on line 5.
const head = `apiVersion: aegis/v1
channels: {x: {}, y: {}}
sources: {gen: {type: generator}, gen2: {type: generator}}
sinks: {out: {type: stdout}, void: {type: drop}}
`

// pipe is head and one pipeline "p" from gen to out; more is added to the
// pipeline's mapping from line 9, indented by 4.
func pipe(more string) string {
	return head + `pipelines:
  - name: p
    from: gen
    to: [out]
` + indent(more, 4)
}

// step is pipe with one step "s" (on line 10) whose more fields start on
// line 11 at column 7.
func step(more string) string {
	return pipe("steps:\n- name: s\n" + indent(more, 2))
}

func indent(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = strings.Repeat(" ", n) + l
		}
	}
	return strings.Join(lines, "")
}

// tel is the minimal valid manifest with a telemetry block (on line 5,
// its value at column 12).
func tel(block string) string {
	return "apiVersion: aegis/v1\nsources: {gen: {type: generator}}\nsinks: {out: {type: stdout}}\npipelines: [{name: p, from: gen, to: [out]}]\ntelemetry: " + block + "\n"
}

// src is head with the sources replaced.
func src(sources string) string {
	return strings.Replace(head, "sources: {gen: {type: generator}, gen2: {type: generator}}\n", sources, 1) +
		"pipelines: [{name: p, from: gen, to: [out]}]\n"
}

// aliasBomb expands to a million nodes.
var aliasBomb = func() string {
	var b strings.Builder
	prev := "1"
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		fmt.Fprintf(&b, "  %s: &%s [%s]\n", name, name, strings.TrimSuffix(strings.Repeat(prev+", ", 10), ", "))
		prev = "*" + name
	}
	return b.String()
}()

// TestErrors has a case for each problem validation finds. want are the
// errors, each "line:column: field: " and the start of the message.
func TestErrors(t *testing.T) {
	dir, _ := fixture(t)
	long := strings.Repeat("a", 256)
	for _, tc := range []struct {
		name string
		text string
		want []string
	}{
		// The manifest as a whole.
		{"apiVersion missing", "sources: {gen: {type: generator}}\nsinks: {out: {type: stdout}}\npipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`1:1: apiVersion: required: this build reads "aegis/v1"`}},
		{"apiVersion wrong", "apiVersion: aegis/v2\nwhatever: 1\n",
			[]string{`1:13: apiVersion: unsupported apiVersion "aegis/v2": this build reads "aegis/v1" only`}},
		{"apiVersion not a string", "apiVersion: 1\npipelines: []\n",
			[]string{`1:13: apiVersion: expected a string, got an integer (quote it: "1")`}},
		{"empty", "", []string{`1:1: apiVersion: required`, `1:1: pipelines: required: a manifest runs at least one pipeline`}},
		{"comments only", "# nothing\n", []string{`1:1: apiVersion: required`, `1:1: pipelines: required`}},
		{"not a mapping", "- a\n- b\n", []string{`1:1: expected a mapping with the fields apiVersion, channels, sources, sinks, pipelines, telemetry, got a list`}},
		{"two documents", "apiVersion: aegis/v1\n---\napiVersion: aegis/v1\n", []string{`2:1: a manifest is one YAML document; this is a second one`}},
		{"syntax error", "apiVersion: aegis/v1\npipelines: [\n", []string{`2:12: invalid YAML: sequence end token ']' not found`}},
		{"duplicate key", "apiVersion: aegis/v1\napiVersion: aegis/v1\n", []string{`2:1: invalid YAML: mapping key "apiVersion" already defined at [1:1]`}},
		{"duplicate key in flow mapping", head + "pipelines: [{name: p, from: gen, to: [out], name: q}]\n",
			[]string{`5:45: invalid YAML: mapping key "name" already defined at [5:14]`}},
		{"no pipelines", head + "pipelines: []\n", []string{`5:12: pipelines: required: a manifest runs at least one pipeline`}},
		{"pipelines null", head + "pipelines:\n", []string{`5:1: pipelines: required`}},

		// Strict decoding: unknown keys and wrong types.
		{"unknown top-level key", head + "pipelinez: []\n",
			[]string{`5:1: pipelinez: unknown field "pipelinez" (did you mean "pipelines"?)`}},
		{"unknown step key", step("plugn: plugins/filter.wasm\n"),
			[]string{`11:7: pipelines[0].steps[0].plugn: unknown field "plugn" (did you mean "plugin"?)`}},
		{"unknown key, no suggestion", pipe("colour: red\n"),
			[]string{`9:5: pipelines[0].colour: unknown field "colour"; known fields: name, from, steps, to, batch`}},
		{"unknown keys, all of them", pipe("a: 1\nb: 2\n"),
			[]string{`9:5: pipelines[0].a: unknown field "a"`, `10:5: pipelines[0].b: unknown field "b"`}},
		{"list for a string", pipe("steps: [{name: [a]}]\n"),
			[]string{`9:20: pipelines[0].steps[0].name: expected a string, got a list`}},
		{"string for a list", head + "pipelines: [{name: p, from: gen, to: out}]\n",
			[]string{`5:38: pipelines[0].to: expected a list, got a string (write [out] for a list of one)`}},
		{"string for a mapping", head + "pipelines: [{name: p, from: gen, to: [out], batch: fast}]\n",
			[]string{`5:52: pipelines[0].batch: expected a mapping with the fields max_events, max_wait, got a string`}},
		{"string for an integer", strings.Replace(head, "x: {}", "x: {buffer: lots}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`2:24: channels.x.buffer: expected an integer, got a string`}},
		{"float for an integer", strings.Replace(head, "x: {}", "x: {buffer: 1.5}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`2:24: channels.x.buffer: expected an integer, got a number`}},
		{"string for a bool", strings.Replace(head, "x: {}", "x: {persistent: yes}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`2:28: channels.x.persistent: expected true or false, got a string`}},
		{"number for a string", step("plugin: 12\n"),
			[]string{`11:15: pipelines[0].steps[0].plugin: expected a string, got an integer (quote it: "12")`}},
		{"infinite rate", src("sources: {gen: {type: generator, rate: .inf}}\n"),
			[]string{`3:40: sources.gen.rate: expected a finite number, got .inf`}},
		{"duration without unit", pipe("batch: {max_wait: 5}\n"),
			[]string{`9:23: pipelines[0].batch.max_wait: duration 5 has no unit; write one such as 5ms or 5s`}},
		{"duration string without unit", pipe("batch: {max_wait: \"5\"}\n"),
			[]string{`9:23: pipelines[0].batch.max_wait: duration "5" has no unit`}},
		{"bad duration", pipe("batch: {max_wait: soon}\n"),
			[]string{`9:23: pipelines[0].batch.max_wait: invalid duration "soon"; write one such as 250ms, 1s or 1h30m`}},
		{"negative duration", pipe("batch: {max_wait: -1s}\n"),
			[]string{`9:23: pipelines[0].batch.max_wait: negative duration "-1s"`}},
		{"none is for timeouts", pipe("batch: {max_wait: none}\n"),
			[]string{`9:23: pipelines[0].batch.max_wait: "none" is only for limits.timeout`}},
		{"duration of the wrong type", pipe("batch: {max_wait: [1s]}\n"),
			[]string{`9:23: pipelines[0].batch.max_wait: expected a duration such as 250ms, 1s or 1h30m, got a list`}},
		{"bad size", step("plugin: plugins/filter.wasm\nlimits: {memory: lots}\n"),
			[]string{`12:24: pipelines[0].steps[0].limits.memory: invalid size "lots"`}},
		{"negative size", step("plugin: plugins/filter.wasm\nlimits: {memory: -5}\n"),
			[]string{`12:24: pipelines[0].steps[0].limits.memory: negative size -5`}},
		{"key not a string", step("plugin: plugins/filter.wasm\nwith: {1: a}\n"),
			[]string{`12:14: pipelines[0].steps[0].with: expected a key that is a string, got an integer (quote it: "1")`}},
		{"merge of a scalar", step("plugin: plugins/filter.wasm\nlimits: {<<: 5}\n"),
			[]string{`12:20: pipelines[0].steps[0].limits: a merge key (<<) takes a mapping or a list of them, got an integer`}},
		{"alias bomb", step("plugin: plugins/filter.wasm\nwith:\n" + aliasBomb),
			[]string{`14:48: pipelines[0].steps[0].with.e[7][0][6][8]: the document is too large, or its aliases expand too far (more than 100000 nodes)`}},
		{"nested too deeply", step("filter: " + strings.Repeat("{not: ", 300) + "{type: [a]}" + strings.Repeat("}", 300) + "\n"),
			// Level 201: under the manifest, pipelines, pipelines[0], steps, steps[0] and filter, the 195th not.
			[]string{`11:1185: pipelines[0].steps[0].filter` + strings.Repeat(".not", 195) + `: nested too deeply (more than 200 levels)`}},
		{"unknown alias", head + "pipelines: *nope\n", []string{`5:12: pipelines: unknown alias *nope`}},

		// Names.
		{"channel name with a space", strings.Replace(head, "x: {}", `"a b": {}`, 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`2:12: channels["a b"]: name "a b" may hold only letters, digits, '.', '-' and '_'`}},
		{"empty channel name", strings.Replace(head, "x: {}", `"": {}`, 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`2:12: channels[""]: a name cannot be empty`}},
		{"long channel name", strings.Replace(head, "x: {}", long+": {}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`2:12: channels.` + long + `: name is 256 bytes long, the limit is 255`}},
		{"channel and source share a name", strings.Replace(head, "x: {}", "gen: {}", 1) + "pipelines: [{name: p, from: gen2, to: [out]}]\n",
			[]string{`3:11: sources.gen: "gen" is also the name of a channel (channels, sources and sinks share one namespace)`}},
		{"sink and source share a name", strings.Replace(head, "void: {type: drop}", "gen2: {type: drop}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`4:30: sinks.gen2: "gen2" is also the name of a source`}},
		{"pipeline name missing", head + "pipelines: [{from: gen, to: [out]}]\n",
			[]string{`5:13: pipelines[0].name: required: a pipeline needs a name`}},
		{"pipeline name bad", head + "pipelines: [{name: a/b, from: gen, to: [out]}]\n",
			[]string{`5:20: pipelines[0].name: name "a/b" may hold only letters`}},
		{"pipeline names unique", head + "pipelines: [{name: p, from: gen, to: [out]}, {name: p, from: gen2, to: [out]}]\n",
			[]string{`5:53: pipelines[1].name: pipeline "p" is already defined (pipelines[0])`}},
		{"step name missing", pipe("steps: [{filter: {type: [a]}}]\n"),
			[]string{`9:13: pipelines[0].steps[0].name: required: a step needs a name`}},
		{"step names unique", pipe("steps: [{name: s, filter: {type: [a]}}, {name: s, filter: {type: [b]}}]\n"),
			[]string{`9:52: pipelines[0].steps[1].name: step "s" is already defined in this pipeline (steps[0])`}},
		{"step name bad", pipe("steps: [{name: s!, filter: {type: [a]}}]\n"),
			[]string{`9:20: pipelines[0].steps[0].name: name "s!" may hold only letters`}},

		// Sources.
		{"source type missing", src("sources: {gen: {count: 1}}\n"),
			[]string{`3:16: sources.gen.type: required: generator, file or stdin`}},
		{"source type unknown", src("sources: {gen: {type: kafka}}\n"),
			[]string{`3:23: sources.gen.type: unknown value "kafka": want generator, file or stdin`}},
		{"source null", src("sources: {gen: }\n"),
			[]string{`3:11: sources.gen.type: required`}},
		{"generator field on a file source", src("sources: {gen: {type: file, path: input.jsonl, count: 3}}\n"),
			[]string{`3:55: sources.gen.count: count applies to type generator`}},
		{"file field on a generator", src("sources: {gen: {type: generator, path: input.jsonl}}\n"),
			[]string{`3:40: sources.gen.path: path applies to type file`}},
		{"event_type on a generator", src("sources: {gen: {type: generator, event_type: x}}\n"),
			[]string{`3:46: sources.gen.event_type: event_type applies to types file and stdin`}},
		{"path on stdin", src("sources: {gen: {type: stdin, path: input.jsonl}}\n"),
			[]string{`3:36: sources.gen.path: path applies to type file`}},
		{"file source without path", src("sources: {gen: {type: file}}\n"),
			[]string{`3:16: sources.gen.path: required for a file source`}},
		{"file source path missing", src("sources: {gen: {type: file, path: nope.jsonl}}\n"),
			[]string{`3:35: sources.gen.path: no such file: nope.jsonl`}},
		{"file source path a directory", src("sources: {gen: {type: file, path: out}}\n"),
			[]string{`3:35: sources.gen.path: out is a directory, not a file`}},
		{"format unknown", src("sources: {gen: {type: stdin, format: csv}}\n"),
			[]string{`3:38: sources.gen.format: unknown value "csv": want event or data`}},
		{"format data without event_type", src("sources: {gen: {type: stdin, format: data}}\n"),
			[]string{`3:38: sources.gen.event_type: required with format data`}},
		{"event_type without format data", src("sources: {gen: {type: stdin, event_type: x}}\n"),
			[]string{`3:42: sources.gen.event_type: event_type applies to format data`}},
		{"event_type invalid", src("sources: {gen: {type: stdin, format: data, event_type: \"a b\"}}\n"),
			[]string{`3:56: sources.gen.event_type: event type "a b" contains white space`}},
		{"count negative", src("sources: {gen: {type: generator, count: -1}}\n"),
			[]string{`3:41: sources.gen.count: must be 0 (without end) or more, got -1`}},
		{"rate negative", src("sources: {gen: {type: generator, rate: -0.5}}\n"),
			[]string{`3:40: sources.gen.rate: must be 0 (as fast as possible) or a positive number`}},
		{"start not RFC 3339", src("sources: {gen: {type: generator, start: 2026-01-02}}\n"),
			[]string{`3:41: sources.gen.start: must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got "2026-01-02"`}},
		{"interval zero", src("sources: {gen: {type: generator, interval: 0s}}\n"),
			[]string{`3:44: sources.gen.interval: must be positive (the default is 1ms)`}},
		{"two stdin sources", src("sources: {gen: {type: stdin}, in2: {type: stdin}}\n"),
			[]string{`3:43: sources.in2.type: source "gen" already reads stdin; only one source can`}},

		// Sinks.
		{"sink type unknown", strings.Replace(head, "out: {type: stdout}", "out: {type: kafka}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`4:21: sinks.out.type: unknown value "kafka": want stdout, file or drop`}},
		{"sink type missing", strings.Replace(head, "out: {type: stdout}", "out: {format: data}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`4:14: sinks.out.type: required: stdout, file or drop`}},
		{"file sink without path", strings.Replace(head, "out: {type: stdout}", "out: {type: file}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`4:14: sinks.out.path: required for a file sink`}},
		{"file sink directory missing", strings.Replace(head, "out: {type: stdout}", "out: {type: file, path: nodir/x}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`4:33: sinks.out.path: the directory of nodir/x does not exist: ` + dir + `/nodir`}},
		{"file sink path a directory", strings.Replace(head, "out: {type: stdout}", "out: {type: file, path: out}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`4:33: sinks.out.path: out is a directory`}},
		{"two sinks write one file", strings.Replace(head, "out: {type: stdout}, void: {type: drop}", "out: {type: file, path: out/x}, void: {type: file, path: ./out/x}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`4:66: sinks.void.path: sink "out" writes to this file too`}},
		{"path on stdout", strings.Replace(head, "out: {type: stdout}", "out: {type: stdout, append: true}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`4:37: sinks.out.append: append applies to type file`}},
		{"format on drop", strings.Replace(head, "void: {type: drop}", "void: {type: drop, format: data}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`4:57: sinks.void.format: format applies to types stdout and file`}},
		{"sink format unknown", strings.Replace(head, "out: {type: stdout}", "out: {type: stdout, format: xml}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`4:37: sinks.out.format: unknown value "xml": want event or data`}},

		// Channels.
		{"persistent channel", strings.Replace(head, "x: {}", "x: {persistent: true}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`2:28: channels.x.persistent: durable channels are not available in this build yet`}},
		{"negative buffer", strings.Replace(head, "x: {}", "x: {buffer: -1}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`2:24: channels.x.buffer: must be 0 (the default, 1024) or more, got -1`}},
		{"slow_subscriber unknown", strings.Replace(head, "x: {}", "x: {slow_subscriber: drop}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`2:33: channels.x.slow_subscriber: unknown value "drop": want block, drop-oldest or disconnect (did you mean "drop-oldest"?)`}},
		{"retention max_events below -1", strings.Replace(head, "x: {}", "x: {retention: {max_events: -2}}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`2:40: channels.x.retention.max_events: must be -1 (keep no history), 0 (the default, 1000) or more, got -2`}},
		{"max_bytes on an in-memory channel", strings.Replace(head, "x: {}", "x: {retention: {max_bytes: 1MiB}}", 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n",
			[]string{`2:39: channels.x.retention.max_bytes: max_bytes applies to persistent channels only`}},

		// Pipelines.
		{"from missing", head + "pipelines: [{name: p, to: [out]}]\n",
			[]string{`5:13: pipelines[0].from: required: the name of a source or channel`}},
		{"from unknown", head + "pipelines: [{name: p, from: gem, to: [out]}]\n",
			[]string{`5:29: pipelines[0].from: no source or channel named "gem" (did you mean "gen"?)`}},
		{"from a sink", head + "pipelines: [{name: p, from: out, to: [void]}]\n",
			[]string{`5:29: pipelines[0].from: "out" is a sink; this takes a source or channel`}},
		{"to missing", head + "pipelines: [{name: p, from: gen}]\n",
			[]string{`5:13: pipelines[0].to: required: at least one sink or channel`}},
		{"to empty", head + "pipelines: [{name: p, from: gen, to: []}]\n",
			[]string{`5:38: pipelines[0].to: required: at least one sink or channel`}},
		{"to unknown", head + "pipelines: [{name: p, from: gen, to: [nowhere]}]\n",
			[]string{`5:39: pipelines[0].to[0]: no sink or channel named "nowhere"`}},
		{"to a source", head + "pipelines: [{name: p, from: gen, to: [gen2]}]\n",
			[]string{`5:39: pipelines[0].to[0]: "gen2" is a source; this takes a sink or channel`}},
		{"to twice", head + "pipelines: [{name: p, from: gen, to: [out, out]}]\n",
			[]string{`5:44: pipelines[0].to[1]: "out" is listed twice`}},
		{"source feeds two pipelines", head + "pipelines: [{name: p, from: gen, to: [out]}, {name: q, from: gen, to: [out]}]\n",
			[]string{`5:62: pipelines[1].from: source "gen" already feeds pipeline "p"; a source feeds exactly one pipeline`}},
		{"pipeline writes what it reads", head + "pipelines: [{name: p, from: x, to: [out, x]}]\n",
			[]string{`5:42: pipelines[0].to[1]: pipeline p writes to channel x, which it reads from`}},
		{"cycle of two", head + "pipelines:\n- {name: orders, from: x, to: [y]}\n- {name: audit, from: y, to: [x]}\n- {name: p, from: gen, to: [x]}\n",
			[]string{`6:32: pipelines[0].to[0]: pipelines orders -> audit -> orders form a cycle through channels y, x`}},
		{"cycle of three", strings.Replace(head, "y: {}", "y: {}, z: {}", 1) + "pipelines:\n- {name: c, from: z, to: [x]}\n- {name: a, from: x, to: [y]}\n- {name: b, from: y, to: [z, out]}\n",
			[]string{`6:27: pipelines[0].to[0]: pipelines c -> a -> b -> c form a cycle through channels x, y, z`}},
		{"cycle through a dead letter", head + "pipelines:\n- {name: a, from: x, to: [out], steps: [{name: s, plugin: plugins/filter.wasm, on_error: {policy: dead-letter, dead_letter: y}}]}\n- {name: b, from: y, to: [x]}\n",
			[]string{`6:125: pipelines[0].steps[0].on_error.dead_letter: pipelines a -> b -> a form a cycle through channels y, x`}},
		{"cycle through a late channel", head + "pipelines:\n- {name: a, from: x, to: [out], steps: [{name: s, aggregate: {window: {type: session, gap: 1s}, functions: [{fn: count}], late: y}}]}\n- {name: b, from: y, to: [x]}\n",
			[]string{`6:129: pipelines[0].steps[0].aggregate.late: pipelines a -> b -> a form a cycle through channels y, x`}},
		{"batch max_events zero", pipe("batch: {max_events: 0}\n"),
			[]string{`9:25: pipelines[0].batch.max_events: must be between 1 and 1000000, got 0`}},
		{"batch max_events too many", pipe("batch: {max_events: 1000001}\n"),
			[]string{`9:25: pipelines[0].batch.max_events: must be between 1 and 1000000, got 1000001`}},
		{"batch max_wait zero", pipe("batch: {max_wait: 0}\n"),
			[]string{`9:23: pipelines[0].batch.max_wait: must be positive`}},

		// Steps.
		{"step of no kind", step("workers: 2\n"),
			[]string{`10:7: pipelines[0].steps[0]: a step needs one of plugin, filter, transform or aggregate`}},
		{"filter and transform", step("filter: {type: [a]}\ntransform: {set_type: b}\n"),
			[]string{`12:18: pipelines[0].steps[0].transform: a step is one of plugin, filter, transform or aggregate (an aggregate may have a plugin instead of functions); this one has filter and transform`}},
		{"plugin and filter", step("plugin: plugins/filter.wasm\nfilter: {type: [a]}\n"),
			[]string{`12:15: pipelines[0].steps[0].filter: a step is one of plugin, filter, transform or aggregate`}},
		{"plugin and functions", step("plugin: plugins/agg.wasm\naggregate: {window: {type: session, gap: 1s}, functions: [{fn: count}]}\n"),
			[]string{`12:64: pipelines[0].steps[0].aggregate.functions: built-in functions and a plugin exclude each other`}},
		{"kind aggregate without aggregate", step("plugin: plugins/agg.wasm\nkind: aggregate\n"),
			[]string{`12:13: pipelines[0].steps[0].kind: kind aggregate needs an aggregate block on the step (group_by, window)`}},
		{"kind map with aggregate", step("plugin: plugins/agg.wasm\nkind: map\naggregate: {window: {type: session, gap: 1s}}\n"),
			[]string{`12:13: pipelines[0].steps[0].kind: kind map contradicts the step's aggregate block`}},
		{"kind unknown", step("plugin: plugins/agg.wasm\nkind: reduce\n"),
			[]string{`12:13: pipelines[0].steps[0].kind: unknown value "reduce": want filter, map or aggregate`}},
		{"aggregate without functions or plugin", step("aggregate: {window: {type: session, gap: 1s}}\n"),
			[]string{`11:18: pipelines[0].steps[0].aggregate: an aggregate needs functions, or a plugin on its step to aggregate with`}},
		{"plugin missing", step("plugin: plugins/x.wasm\n"),
			[]string{`11:15: pipelines[0].steps[0].plugin: no such file: plugins/x.wasm`}},
		{"plugin empty", step("plugin: \"\"\n"),
			[]string{`11:15: pipelines[0].steps[0].plugin: required: the path of a .wasm module`}},
		{"plugin a directory", step("plugin: plugins\n"),
			[]string{`11:15: pipelines[0].steps[0].plugin: plugins is a directory, not a .wasm file`}},
		{"sha256 malformed", step("plugin: plugins/filter.wasm\nsha256: abc\n"),
			[]string{`12:15: pipelines[0].steps[0].sha256: must be a SHA-256 digest, 64 hex digits, got "abc"`}},
		{"sha256 mismatch", step("plugin: plugins/filter.wasm\nsha256: " + strings.Repeat("0f", 32) + "\n"),
			[]string{`12:15: pipelines[0].steps[0].sha256: sha256 mismatch: the file has `}},
		{"sha256 without plugin", step("filter: {type: [a]}\nsha256: " + strings.Repeat("0f", 32) + "\n"),
			[]string{`12:15: pipelines[0].steps[0].sha256: sha256 applies to plugin steps`}},
		{"with without plugin", step("filter: {type: [a]}\nwith: {a: 1}\n"),
			[]string{`12:13: pipelines[0].steps[0].with: with applies to plugin steps`}},
		{"limits without plugin", step("filter: {type: [a]}\nlimits: {memory: 16MiB}\n"),
			[]string{`12:15: pipelines[0].steps[0].limits: limits applies to plugin steps`}},
		{"grants without plugin", step("filter: {type: [a]}\ngrants: {clock: true}\n"),
			[]string{`12:15: pipelines[0].steps[0].grants: grants applies to plugin steps`}},
		{"kind without plugin", step("filter: {type: [a]}\nkind: filter\n"),
			[]string{`12:13: pipelines[0].steps[0].kind: kind applies to plugin steps`}},
		{"memory not a multiple of 64KiB", step("plugin: plugins/filter.wasm\nlimits: {memory: 10MB}\n"),
			[]string{`12:24: pipelines[0].steps[0].limits.memory: must be a multiple of 64KiB (a wasm page), got 10000000 bytes`}},
		{"memory too small", step("plugin: plugins/filter.wasm\nlimits: {memory: 512KiB}\n"),
			[]string{`12:24: pipelines[0].steps[0].limits.memory: must be between 1MiB and 4GiB, got 512KiB`}},
		{"memory too large", step("plugin: plugins/filter.wasm\nlimits: {memory: 8GiB}\n"),
			[]string{`12:24: pipelines[0].steps[0].limits.memory: must be between 1MiB and 4GiB, got 8GiB`}},
		{"memory zero", step("plugin: plugins/filter.wasm\nlimits: {memory: 0}\n"),
			[]string{`12:24: pipelines[0].steps[0].limits.memory: must be between 1MiB and 4GiB, got 0`}},
		{"timeout zero", step("plugin: plugins/filter.wasm\nlimits: {timeout: 0s}\n"),
			[]string{`12:25: pipelines[0].steps[0].limits.timeout: must be positive, or none for no deadline`}},
		{"fuel zero", step("plugin: plugins/filter.wasm\nlimits: {fuel: 0}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: fuel must be positive, got 0; write a budget such as 100M, or none for no budget`}},
		{"fuel zero with a suffix", step("plugin: plugins/filter.wasm\nlimits: {fuel: 0M}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: fuel must be positive, got "0M"`}},
		{"fuel negative", step("plugin: plugins/filter.wasm\nlimits: {fuel: -5}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: negative fuel -5; write a positive budget such as 100M, or none for no budget`}},
		{"fuel negative string", step("plugin: plugins/filter.wasm\nlimits: {fuel: \"-1M\"}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: negative fuel "-1M"`}},
		{"fuel a fraction with a suffix", step("plugin: plugins/filter.wasm\nlimits: {fuel: 1.5M}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: fuel "1.5M" is not written as an integer; write 1500k`}},
		{"fuel with an exponent", step("plugin: plugins/filter.wasm\nlimits: {fuel: \"1e8\"}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: fuel "1e8" is not written as an integer; write 100M`}},
		{"fuel a fraction", step("plugin: plugins/filter.wasm\nlimits: {fuel: 2.5}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: fuel 2.5 is not a whole number; write a positive integer with an optional suffix k, M or G, such as 500k, 100M or 2G, or none for no budget`}},
		{"fuel unknown suffix", step("plugin: plugins/filter.wasm\nlimits: {fuel: 100K}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: fuel "100K" has an unknown suffix "K"; the suffixes are k (thousand), M (million) and G (billion), as in 500k, 100M or 2G (did you mean 100k?)`}},
		{"fuel a size", step("plugin: plugins/filter.wasm\nlimits: {fuel: 100MB}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: fuel "100MB" has an unknown suffix "MB"`}},
		{"fuel too large", step("plugin: plugins/filter.wasm\nlimits: {fuel: 10000000000G}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: fuel "10000000000G" is too large; the most is 9223372036854775807, or write none for no budget`}},
		{"fuel too large an integer", step("plugin: plugins/filter.wasm\nlimits: {fuel: 18446744073709551615}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: fuel 18446744073709551615 is too large`}},
		{"fuel None", step("plugin: plugins/filter.wasm\nlimits: {fuel: None}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: invalid fuel "None"; write none, in lower case, for no budget`}},
		{"fuel bad underscores", step("plugin: plugins/filter.wasm\nlimits: {fuel: \"1__000\"}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: invalid fuel "1__000"; write a positive integer`}},
		{"fuel a boolean", step("plugin: plugins/filter.wasm\nlimits: {fuel: true}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: fuel is a positive integer or a string such as 100M or none, not a boolean`}},
		{"fuel a list", step("plugin: plugins/filter.wasm\nlimits: {fuel: [1]}\n"),
			[]string{`12:22: pipelines[0].steps[0].limits.fuel: expected fuel such as 500k, 100M or 2G, or none, got a list`}},
		{"fuel null", step("plugin: plugins/filter.wasm\nlimits: {fuel: null}\n"),
			[]string{`12:16: pipelines[0].steps[0].limits.fuel: must be positive, such as 100M, or none for no budget (leave it out for the default, 10M)`}},
		{"max_output zero", step("plugin: plugins/filter.wasm\nlimits: {max_output: 0}\n"),
			[]string{`12:28: pipelines[0].steps[0].limits.max_output: must be between 1 byte and 1GiB, got 0`}},
		{"max_output too large", step("plugin: plugins/filter.wasm\nlimits: {max_output: 2GiB}\n"),
			[]string{`12:28: pipelines[0].steps[0].limits.max_output: must be between 1 byte and 1GiB, got 2GiB`}},
		{"grants env name", step("plugin: plugins/filter.wasm\ngrants: {env: {\"A=B\": x}}\n"),
			[]string{`12:22: pipelines[0].steps[0].grants.env["A=B"]: "A=B" is not a valid environment variable name`}},
		{"grants env value not a string", step("plugin: plugins/filter.wasm\ngrants: {env: {PORT: 8080}}\n"),
			[]string{`12:28: pipelines[0].steps[0].grants.env.PORT: expected a string, got an integer (quote it: "8080")`}},
		{"with not JSON", step("plugin: plugins/filter.wasm\nwith: {x: .nan}\n"),
			[]string{`12:13: pipelines[0].steps[0].with: cannot be handed to the plugin as JSON`}},
		{"workers zero", step("filter: {type: [a]}\nworkers: 0\n"),
			[]string{`12:16: pipelines[0].steps[0].workers: must be between 1 and 256, got 0`}},
		{"workers too many", step("filter: {type: [a]}\nworkers: 257\n"),
			[]string{`12:16: pipelines[0].steps[0].workers: must be between 1 and 256, got 257`}},
		{"aggregation on workers", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: count}]}\nworkers: 2\n"),
			[]string{`12:16: pipelines[0].steps[0].workers: an aggregation runs on one worker`}},
		{"wasm aggregation on workers", step("plugin: plugins/agg.wasm\naggregate: {window: {type: session, gap: 1s}}\nworkers: 4\n"),
			[]string{`13:16: pipelines[0].steps[0].workers: an aggregation runs on one worker`}},

		// Filters.
		{"filter empty", step("filter: {}\n"),
			[]string{`11:15: pipelines[0].steps[0].filter: a filter needs at least one condition`}},
		{"filter null", step("filter:\n"),
			[]string{`11:7: pipelines[0].steps[0].filter: a filter needs at least one condition`}},
		{"filter type empty", step("filter: {type: [\"\"]}\n"),
			[]string{`11:23: pipelines[0].steps[0].filter.type[0]: event type is empty`}},
		{"filter type list empty", step("filter: {type: []}\n"),
			[]string{`11:22: pipelines[0].steps[0].filter.type: needs at least one event type`}},
		{"filter source_glob bad", step("filter: {source_glob: 'a\\'}\n"),
			[]string{`11:29: pipelines[0].steps[0].filter.source_glob: source glob "a\\": ends with an unfinished escape`}},
		{"filter not empty", step("filter: {not: {}}\n"),
			[]string{`11:21: pipelines[0].steps[0].filter.not: a filter needs at least one condition`}},
		{"filter any empty list", step("filter: {any: []}\n"),
			[]string{`11:21: pipelines[0].steps[0].filter.any: needs at least one filter`}},
		{"filter all nested", step("filter: {all: [{type: [a]}, {has_meta: [\"\"]}]}\n"),
			[]string{`11:47: pipelines[0].steps[0].filter.all[1].has_meta[0]: a metadata key cannot be empty`}},
		{"filter meta key empty", step("filter: {meta: {\"\": x}}\n"),
			[]string{`11:23: pipelines[0].steps[0].filter.meta[""]: a metadata key cannot be empty`}},

		// Transforms.
		{"transform empty", step("transform: {}\n"),
			[]string{`11:18: pipelines[0].steps[0].transform: a transform needs at least one of set_type, type_case, set_source, set_meta or delete_meta`}},
		{"type_case unknown", step("transform: {type_case: title}\n"),
			[]string{`11:30: pipelines[0].steps[0].transform.type_case: unknown value "title": want upper or lower`}},
		{"set_type invalid", step("transform: {set_type: \"\"}\n"),
			[]string{`11:29: pipelines[0].steps[0].transform.set_type: event type is empty`}},
		{"set_type and type_case", step("transform: {set_type: a, type_case: upper}\n"),
			[]string{`11:43: pipelines[0].steps[0].transform.type_case: set_type and type_case both change the type; use one`}},
		{"set and delete one key", step("transform: {set_meta: {k: v}, delete_meta: [k]}\n"),
			[]string{`11:51: pipelines[0].steps[0].transform.delete_meta[0]: "k" is also in set_meta`}},

		// Aggregates.
		{"group_by unknown", step("aggregate: {group_by: colour, window: {type: session, gap: 1s}, functions: [{fn: count}]}\n"),
			[]string{`11:29: pipelines[0].steps[0].aggregate.group_by: must be type, source, id, meta.<key> or data.<member>[.<member>...] (or left out for one group), got "colour"`}},
		{"group_by empty member", step("aggregate: {group_by: data.a..b, window: {type: session, gap: 1s}, functions: [{fn: count}]}\n"),
			[]string{`11:29: pipelines[0].steps[0].aggregate.group_by: must be type, source, id`}},
		{"group_by empty meta key", step("aggregate: {group_by: meta., window: {type: session, gap: 1s}, functions: [{fn: count}]}\n"),
			[]string{`11:29: pipelines[0].steps[0].aggregate.group_by: must be type, source, id`}},
		{"window missing", step("aggregate: {functions: [{fn: count}]}\n"),
			[]string{`11:18: pipelines[0].steps[0].aggregate.window.type: required: tumbling, sliding or session`}},
		{"window type unknown", step("aggregate: {window: {type: hopping, size: 1s}, functions: [{fn: count}]}\n"),
			[]string{`11:34: pipelines[0].steps[0].aggregate.window.type: unknown value "hopping": want tumbling, sliding or session`}},
		{"tumbling without size", step("aggregate: {window: {type: tumbling}, functions: [{fn: count}]}\n"),
			[]string{`11:27: pipelines[0].steps[0].aggregate.window.size: a tumbling window needs a positive size`}},
		{"tumbling with every", step("aggregate: {window: {type: tumbling, size: 1s, every: 1s}, functions: [{fn: count}]}\n"),
			[]string{`11:61: pipelines[0].steps[0].aggregate.window.every: every applies to sliding windows`}},
		{"tumbling with gap", step("aggregate: {window: {type: tumbling, size: 1s, gap: 1s}, functions: [{fn: count}]}\n"),
			[]string{`11:59: pipelines[0].steps[0].aggregate.window.gap: gap applies to session windows`}},
		{"sliding without every", step("aggregate: {window: {type: sliding, size: 1s}, functions: [{fn: count}]}\n"),
			[]string{`11:27: pipelines[0].steps[0].aggregate.window.every: a sliding window needs a positive every`}},
		{"sliding every longer than size", step("aggregate: {window: {type: sliding, size: 1s, every: 2s}, functions: [{fn: count}]}\n"),
			[]string{`11:60: pipelines[0].steps[0].aggregate.window.every: every (2s) is longer than size (1s)`}},
		{"sliding size not a multiple", step("aggregate: {window: {type: sliding, size: 10s, every: 3s}, functions: [{fn: count}]}\n"),
			[]string{`11:49: pipelines[0].steps[0].aggregate.window.size: size (10s) must be a whole multiple of every (3s)`}},
		{"session without gap", step("aggregate: {window: {type: session}, functions: [{fn: count}]}\n"),
			[]string{`11:27: pipelines[0].steps[0].aggregate.window.gap: a session window needs a positive gap`}},
		{"session with size", step("aggregate: {window: {type: session, gap: 1s, size: 1s}, functions: [{fn: count}]}\n"),
			[]string{`11:58: pipelines[0].steps[0].aggregate.window.size: size applies to tumbling and sliding windows`}},
		{"late unknown", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: count}], late: lost}\n"),
			[]string{`11:85: pipelines[0].steps[0].aggregate.late: no sink or channel named "lost"`}},
		{"fn missing", step("aggregate: {window: {type: session, gap: 1s}, functions: [{field: x}]}\n"),
			[]string{`11:65: pipelines[0].steps[0].aggregate.functions[0].fn: required: count, sum, avg, min or max`}},
		{"fn unknown", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: median, field: x}]}\n"),
			[]string{`11:70: pipelines[0].steps[0].aggregate.functions[0].fn: unknown value "median": want count, sum, avg, min or max`}},
		{"sum without field", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: sum}]}\n"),
			[]string{`11:70: pipelines[0].steps[0].aggregate.functions[0].field: required: the data member to sum`}},
		{"count with field", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: count, field: x}]}\n"),
			[]string{`11:84: pipelines[0].steps[0].aggregate.functions[0].field: count takes no field`}},
		{"field with an empty member", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: max, field: a..b}]}\n"),
			[]string{`11:82: pipelines[0].steps[0].aggregate.functions[0].field: "a..b" has an empty member name`}},
		{"as twice", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: count}, {fn: sum, field: x, as: count}]}\n"),
			[]string{`11:102: pipelines[0].steps[0].aggregate.functions[1].as: functions[0] already makes the member "count"`}},
		{"as twice by default", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: count}, {fn: count}]}\n"),
			[]string{`11:78: pipelines[0].steps[0].aggregate.functions[1]: functions[0] already makes the member "count"`}},
		{"as reserved", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: count, as: key}]}\n"),
			[]string{`11:81: pipelines[0].steps[0].aggregate.functions[0].as: "key" is a member of every result`}},
		{"emit_type invalid", step("aggregate: {window: {type: session, gap: 1s}, functions: [{fn: count}], emit_type: \"a b\"}\n"),
			[]string{`11:90: pipelines[0].steps[0].aggregate.emit_type: event type "a b" contains white space`}},
		{"emit_type with a plugin", step("plugin: plugins/agg.wasm\naggregate: {window: {type: session, gap: 1s}, emit_type: x}\n"),
			[]string{`12:64: pipelines[0].steps[0].aggregate.emit_type: emit_type applies to built-in functions`}},

		// Error policies.
		{"policy missing", step("filter: {type: [a]}\non_error: {retries: 2}\n"),
			[]string{`12:17: pipelines[0].steps[0].on_error.policy: required: fail, skip, dead-letter or retry`}},
		{"policy unknown", step("filter: {type: [a]}\non_error: {policy: ignore}\n"),
			[]string{`12:26: pipelines[0].steps[0].on_error.policy: unknown value "ignore": want fail, skip, dead-letter or retry`}},
		{"dead-letter without dead_letter", step("filter: {type: [a]}\non_error: {policy: dead-letter}\n"),
			[]string{`12:26: pipelines[0].steps[0].on_error.dead_letter: required with policy dead-letter`}},
		{"dead_letter unknown", step("filter: {type: [a]}\non_error: {policy: dead-letter, dead_letter: dlq}\n"),
			[]string{`12:52: pipelines[0].steps[0].on_error.dead_letter: no sink or channel named "dlq"`}},
		{"dead_letter a source", step("filter: {type: [a]}\non_error: {policy: dead-letter, dead_letter: gen}\n"),
			[]string{`12:52: pipelines[0].steps[0].on_error.dead_letter: "gen" is a source; this takes a sink or channel`}},
		{"retry then dead-letter without dead_letter", step("filter: {type: [a]}\non_error: {policy: retry, then: dead-letter}\n"),
			[]string{`12:39: pipelines[0].steps[0].on_error.dead_letter: required with then: dead-letter`}},
		{"dead_letter with fail", step("filter: {type: [a]}\non_error: {policy: fail, dead_letter: x}\n"),
			[]string{`12:45: pipelines[0].steps[0].on_error.dead_letter: dead_letter applies to policy dead-letter, or retry with then: dead-letter`}},
		{"retries with skip", step("filter: {type: [a]}\non_error: {policy: skip, retries: 2}\n"),
			[]string{`12:41: pipelines[0].steps[0].on_error.retries: retries applies to policy retry`}},
		{"retries zero", step("filter: {type: [a]}\non_error: {policy: retry, retries: 0}\n"),
			[]string{`12:42: pipelines[0].steps[0].on_error.retries: must be 1 or more, got 0`}},
		{"backoff zero", step("filter: {type: [a]}\non_error: {policy: retry, backoff: 0s}\n"),
			[]string{`12:42: pipelines[0].steps[0].on_error.backoff: must be positive`}},
		{"max_backoff below backoff", step("filter: {type: [a]}\non_error: {policy: retry, backoff: 1s, max_backoff: 10ms}\n"),
			[]string{`12:59: pipelines[0].steps[0].on_error.max_backoff: must be at least backoff (1s), got 10ms`}},
		{"max_backoff below the default backoff", step("filter: {type: [a]}\non_error: {policy: retry, max_backoff: 10ms}\n"),
			[]string{`12:46: pipelines[0].steps[0].on_error.max_backoff: must be at least backoff (100ms), got 10ms`}},
		{"then unknown", step("filter: {type: [a]}\non_error: {policy: retry, then: explode}\n"),
			[]string{`12:39: pipelines[0].steps[0].on_error.then: unknown value "explode": want fail, skip or dead-letter`}},
		{"then retry", step("filter: {type: [a]}\non_error: {policy: retry, then: retry}\n"),
			[]string{`12:39: pipelines[0].steps[0].on_error.then: must be fail, skip or dead-letter`}},

		// Telemetry (tel's block starts on line 5, column 12).
		{"tracing moved", validManifests["minimal"] + "tracing: {exporter: otlp-grpc}\n",
			[]string{`5:1: tracing: moved: use telemetry.traces (exporter, endpoint, sample_ratio) and telemetry.service_name`}},
		{"tracing moved, with more", validManifests["minimal"] + "tracing:\n  exporter: otlp-grpc\ntelemetry: {tracez: {}}\n",
			[]string{`5:1: tracing: moved: use telemetry.traces`, `7:13: telemetry.tracez: unknown field "tracez" (did you mean "traces"?)`}},
		{"telemetry unknown key", tel("{trace: {}}"),
			[]string{`5:13: telemetry.trace: unknown field "trace" (did you mean "traces"?)`}},
		{"telemetry not a mapping", tel("otlp"),
			[]string{`5:12: telemetry: expected a mapping with the fields service_name, resource, traces, metrics, got a string`}},
		{"traces unknown key", tel("{traces: {sampler: 0.5}}"),
			[]string{`5:22: telemetry.traces.sampler: unknown field "sampler"; known fields: exporter, endpoint, headers, sample_ratio, queue_size`}},
		{"metrics unknown key", tel("{metrics: {intervall: 1s}}"),
			[]string{`5:23: telemetry.metrics.intervall: unknown field "intervall" (did you mean "interval"?)`}},
		{"service_name empty", tel(`{service_name: ""}`),
			[]string{`5:27: telemetry.service_name: cannot be empty`}},
		{"resource key empty", tel(`{resource: {"": x}}`),
			[]string{`5:24: telemetry.resource[""]: an attribute name cannot be empty`}},
		{"resource value not a string", tel(`{resource: {version: 1.5}}`),
			[]string{`5:33: telemetry.resource.version: expected a string, got a number (quote it: "1.5")`}},
		{"traces exporter unknown", tel("{traces: {exporter: jaeger}}"),
			[]string{`5:32: telemetry.traces.exporter: unknown value "jaeger": want none, stdout, otlp-grpc or otlp-http`}},
		{"traces exporter otlp", tel("{traces: {exporter: otlp}}"),
			[]string{`5:32: telemetry.traces.exporter: unknown value "otlp": want none, stdout, otlp-grpc or otlp-http (did you mean "otlp-grpc"?)`}},
		{"metrics exporter unknown", tel("{metrics: {exporter: prometheus}}"),
			[]string{`5:33: telemetry.metrics.exporter: unknown value "prometheus": want none, stdout, otlp-grpc or otlp-http`}},
		{"metrics exporter misspelt", tel("{metrics: {exporter: stdot}}"),
			[]string{`5:33: telemetry.metrics.exporter: unknown value "stdot": want none, stdout, otlp-grpc or otlp-http (did you mean "stdout"?)`}},
		{"traces endpoint with stdout", tel("{traces: {exporter: stdout, endpoint: http://localhost:4317}}"),
			[]string{`5:50: telemetry.traces.endpoint: endpoint applies to the otlp-grpc and otlp-http exporters`}},
		{"metrics endpoint with none", tel("{metrics: {exporter: none, endpoint: http://localhost:4318}}"),
			[]string{`5:49: telemetry.metrics.endpoint: endpoint applies to the otlp-grpc and otlp-http exporters`}},
		{"traces headers with none", tel("{traces: {exporter: none, headers: {a: b}}}"),
			[]string{`5:47: telemetry.traces.headers: headers applies to the otlp-grpc and otlp-http exporters`}},
		{"metrics headers with stdout", tel("{metrics: {exporter: stdout, headers: {a: b}}}"),
			[]string{`5:50: telemetry.metrics.headers: headers applies to the otlp-grpc and otlp-http exporters`}},
		{"endpoint without a scheme", tel("{traces: {exporter: otlp-grpc, endpoint: localhost:4317}}"),
			[]string{`5:53: telemetry.traces.endpoint: must be a URL such as http://localhost:4317 (http:// for plaintext, https:// for TLS), got "localhost:4317"`}},
		{"endpoint without a scheme, exporter unset", tel("{traces: {endpoint: collector}}"),
			[]string{`5:32: telemetry.traces.endpoint: must be a URL such as http://localhost:4317 (http:// for plaintext, https:// for TLS), got "collector"`}},
		{"endpoint of otlp-http without a scheme", tel("{metrics: {exporter: otlp-http, endpoint: localhost:4318}}"),
			[]string{`5:54: telemetry.metrics.endpoint: must be a URL such as http://localhost:4318 (http:// for plaintext, https:// for TLS), got "localhost:4318"`}},
		{"endpoint of another scheme", tel(`{traces: {endpoint: "grpc://localhost:4317"}}`),
			[]string{`5:32: telemetry.traces.endpoint: must be a URL such as http://localhost:4317 (http:// for plaintext, https:// for TLS), got "grpc://localhost:4317"`}},
		{"endpoint without a host", tel(`{traces: {endpoint: "http://:4317"}}`),
			[]string{`5:32: telemetry.traces.endpoint: must be a URL such as http://localhost:4317`}},
		{"endpoint empty", tel(`{traces: {endpoint: ""}}`),
			[]string{`5:32: telemetry.traces.endpoint: must be a URL such as http://localhost:4317 (http:// for plaintext, https:// for TLS), got ""`}},
		{"endpoint port not a number", tel(`{traces: {endpoint: "http://localhost:otlp"}}`),
			[]string{`5:32: telemetry.traces.endpoint: must be a URL such as http://localhost:4317`}},
		{"endpoint port out of range", tel(`{traces: {endpoint: "http://localhost:70000"}}`),
			[]string{`5:32: telemetry.traces.endpoint: port 70000 is out of range: a port is 0 to 65535`}},
		{"header name empty", tel(`{traces: {headers: {"": x}}}`),
			[]string{`5:32: telemetry.traces.headers[""]: a header name cannot be empty`}},
		{"header name with a space", tel(`{metrics: {headers: {"api key": x}}}`),
			[]string{"5:33: telemetry.metrics.headers[\"api key\"]: \"api key\" is not a valid HTTP header name: it may hold only letters, digits and !#$%&'*+-.^_`|~"}},
		{"header name with a colon", tel(`{traces: {headers: {"a:b": x}}}`),
			[]string{`5:32: telemetry.traces.headers["a:b"]: "a:b" is not a valid HTTP header name`}},
		{"header value with a line break", tel(`{traces: {headers: {a: "x\r\nInjected: y"}}}`),
			[]string{`5:35: telemetry.traces.headers.a: a header value cannot hold a line break`}},
		{"header value not a string", tel(`{traces: {headers: {a: 1}}}`),
			[]string{`5:35: telemetry.traces.headers.a: expected a string, got an integer (quote it: "1")`}},
		{"sample_ratio above 1", tel("{traces: {sample_ratio: 1.5}}"),
			[]string{`5:36: telemetry.traces.sample_ratio: must be between 0 and 1, got 1.5`}},
		{"sample_ratio negative", tel("{traces: {sample_ratio: -0.1}}"),
			[]string{`5:36: telemetry.traces.sample_ratio: must be between 0 and 1, got -0.1`}},
		{"queue_size zero", tel("{traces: {queue_size: 0}}"),
			[]string{`5:34: telemetry.traces.queue_size: must be between 1 and 1000000, got 0`}},
		{"queue_size negative", tel("{traces: {queue_size: -5}}"),
			[]string{`5:34: telemetry.traces.queue_size: must be between 1 and 1000000, got -5`}},
		{"queue_size too large", tel("{traces: {queue_size: 1000001}}"),
			[]string{`5:34: telemetry.traces.queue_size: must be between 1 and 1000000, got 1000001`}},
		{"interval too short", tel("{metrics: {interval: 50ms}}"),
			[]string{`5:33: telemetry.metrics.interval: must be at least 100ms, got 50ms`}},
		{"interval zero", tel("{metrics: {interval: 0s}}"),
			[]string{`5:33: telemetry.metrics.interval: must be at least 100ms, got 0s`}},
		{"interval without unit", tel("{metrics: {interval: 10}}"),
			[]string{`5:33: telemetry.metrics.interval: duration 10 has no unit; write one such as 10ms or 10s`}},
		{"interval none", tel("{metrics: {interval: none}}"),
			[]string{`5:33: telemetry.metrics.interval: "none" is only for limits.timeout`}},
		{"prometheus a URL", tel(`{metrics: {prometheus: "http://localhost:9464/metrics"}}`),
			[]string{`5:35: telemetry.metrics.prometheus: is a URL; give host:port, such as 127.0.0.1:9464 or :9464 (every interface)`}},
		{"prometheus without a port", tel(`{metrics: {prometheus: localhost}}`),
			[]string{`5:35: telemetry.metrics.prometheus: must be host:port, such as 127.0.0.1:9464 or :9464 (every interface), got "localhost"`}},
		{"prometheus a port alone", tel(`{metrics: {prometheus: "9464"}}`),
			[]string{`5:35: telemetry.metrics.prometheus: must be host:port, such as 127.0.0.1:9464 or :9464 (every interface), got "9464"`}},
		{"prometheus a port as a number", tel(`{metrics: {prometheus: 9464}}`),
			[]string{`5:35: telemetry.metrics.prometheus: expected a string, got an integer (quote it: "9464")`}},
		{"prometheus empty", tel(`{metrics: {prometheus: ""}}`),
			[]string{`5:35: telemetry.metrics.prometheus: must be host:port, such as 127.0.0.1:9464 or :9464 (every interface), got ""`}},
		{"prometheus with a path", tel(`{metrics: {prometheus: "localhost/metrics:9464"}}`),
			[]string{`5:35: telemetry.metrics.prometheus: must be host:port`}},
		{"prometheus port a name", tel(`{metrics: {prometheus: "localhost:http"}}`),
			[]string{`5:35: telemetry.metrics.prometheus: port "http" is not a number from 0 to 65535`}},
		{"prometheus port out of range", tel(`{metrics: {prometheus: ":65536"}}`),
			[]string{`5:35: telemetry.metrics.prometheus: port "65536" is not a number from 0 to 65535`}},
		{"prometheus port negative", tel(`{metrics: {prometheus: ":-1"}}`),
			[]string{`5:35: telemetry.metrics.prometheus: port "-1" is not a number from 0 to 65535`}},
		{"telemetry, several", validManifests["minimal"] + `telemetry:
  service_name: ""
  traces:
    exporter: stdout
    endpoint: http://localhost:4317
    sample_ratio: 2
  metrics:
    exporter: otlp-grpc
    endpoint: localhost:4317
    interval: 1ms
`,
			[]string{
				`6:17: telemetry.service_name: cannot be empty`,
				`9:15: telemetry.traces.endpoint: endpoint applies to the otlp-grpc and otlp-http exporters`,
				`10:19: telemetry.traces.sample_ratio: must be between 0 and 1, got 2`,
				`13:15: telemetry.metrics.endpoint: must be a URL such as http://localhost:4317`,
				`14:15: telemetry.metrics.interval: must be at least 100ms, got 1ms`,
			}},

		// Several problems are all reported, in file order.
		{"several", head + "pipelines:\n- {name: p, from: nope, to: [out]}\n- {name: q, from: gen2, to: [nowhere], batch: {max_events: 0}}\n",
			[]string{
				`6:19: pipelines[0].from: no source or channel named "nope"`,
				`7:30: pipelines[1].to[0]: no sink or channel named "nowhere"`,
				`7:60: pipelines[1].batch.max_events: must be between 1 and 1000000, got 0`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parse(t, dir, tc.text, nil)
			if m != nil || err == nil {
				t.Fatalf("Parse succeeded; want errors:\n%s", strings.Join(tc.want, "\n"))
			}
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				want[i] = "pipeline.yaml:" + w
			}
			checkErrors(t, err, want)
		})
	}
}
