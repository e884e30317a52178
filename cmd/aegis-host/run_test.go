package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// End-to-end tests of `aegis-host run`, `validate` and `schema`: real
// manifests, real wasm plugins, the CLI in-process.

// quickstartStart is the event time of the quickstart generator's first
// event (examples/quickstart.yaml).
var quickstartStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// pluginDir copies test plugins into a new directory under the names given
// (name -> plugintest name) and returns it.
func pluginDir(t *testing.T, plugins map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range plugins {
		if err := os.WriteFile(filepath.Join(dir, name), plugintest.Bytes(t, src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ordersPlugins are the quickstart's plugins under the names it expects.
func ordersPlugins(t *testing.T) string {
	return pluginDir(t, map[string]string{
		"orders-filter.wasm":    "orders/filter",
		"orders-map.wasm":       "orders/map",
		"orders-aggregate.wasm": "orders/aggregate",
	})
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// setStdin makes the stdin source read s for the rest of the test.
func setStdin(t *testing.T, s string) {
	t.Helper()
	old := stdinReader
	stdinReader = strings.NewReader(s)
	t.Cleanup(func() { stdinReader = old })
}

// lines returns the lines of s without the last newline; none for "".
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// readLines returns the lines of a file.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return lines(string(b))
}

// decodeEvents decodes JSON lines of whole events.
func decodeEvents(t *testing.T, ls []string) []engine.Event {
	t.Helper()
	out := make([]engine.Event, len(ls))
	for i, l := range ls {
		if err := json.Unmarshal([]byte(l), &out[i]); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, l)
		}
	}
	return out
}

// dataOf decodes an event's JSON data.
func dataOf(t *testing.T, e engine.Event) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := e.Data.Decode(&doc); err != nil {
		t.Fatalf("event %s: data: %v", e.ID, err)
	}
	return doc
}

// summaryLine is the counters of a pipeline's summary line on stderr.
type summaryLine struct {
	in, out int
	text    string
}

// pipelineSummary finds the summary line of a pipeline in stderr: the
// last one (--status logs the same lines while the run goes on).
func pipelineSummary(t *testing.T, stderr, pipeline string) summaryLine {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + appName + `: ` + regexp.QuoteMeta(pipeline) + `: in (\d+) .*\| out (\d+) \|.*$`)
	all := re.FindAllStringSubmatch(stderr, -1)
	if all == nil {
		t.Fatalf("no summary of pipeline %s on stderr:\n%s", pipeline, stderr)
	}
	m := all[len(all)-1]
	in, _ := strconv.Atoi(m[1])
	out, _ := strconv.Atoi(m[2])
	return summaryLine{in: in, out: out, text: m[0]}
}

// interrupt sends SIGINT to the test process, which the run command
// catches while it runs.
func interrupt(t *testing.T) {
	t.Helper()
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		err = p.Signal(os.Interrupt)
	}
	if err != nil {
		t.Fatalf("cannot interrupt the test process: %v", err)
	}
}

// The stdin events of the tests: JSON lines in the form Event.MarshalJSON
// writes.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// stdinEvent is one event of a test's stdin.
type stdinEvent struct {
	typ  string
	at   time.Duration // after t0
	data map[string]any
}

func (e stdinEvent) line(t *testing.T, i int) string {
	t.Helper()
	d, err := json.Marshal(e.data)
	if err != nil {
		t.Fatal(err)
	}
	ev := engine.Event{
		ID:     testID(i),
		Type:   engine.EventType(e.typ),
		Source: "test",
		Time:   t0.Add(e.at).UnixNano(),
		Data:   engine.MustJSONData(string(d)),
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testID is the ID of the i-th stdin event.
func testID(i int) engine.EventID {
	var id engine.EventID
	id[15] = byte(i)
	id[14] = byte(i >> 8)
	id[6] = 0x80 // version 8
	id[8] = 0x80 // RFC 9562 variant
	return id
}

func stdinOf(t *testing.T, evs []stdinEvent) string {
	var b strings.Builder
	for i, e := range evs {
		b.WriteString(e.line(t, i))
		b.WriteByte('\n')
	}
	return b.String()
}

// withoutRefunds are the first n events of the generator of the examples
// (from quickstartStart, 1 ms apart) but the refunds, in order: what a
// pipeline that drops refunds passes on.
func withoutRefunds(n int64) []engine.Event {
	var want []engine.Event
	for i := range int64(n) {
		if e := orders.Generated(i, quickstartStart, int64(time.Millisecond)); e.Type != "order.refunded" {
			want = append(want, e)
		}
	}
	return want
}

// TestRunQuickstart runs examples/quickstart.yaml with the orders plugins
// and checks its output line by line against the workload computed here.
func TestRunQuickstart(t *testing.T) {
	t.Setenv("AEGIS_PLUGINS", ordersPlugins(t))
	code, stdout, stderr := runCLI(t, "run", "-f", "../../examples/quickstart.yaml")
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}

	// The reference: 10,000 orders 1ms apart; refunds dropped; per type
	// (upper case) and one-second window the count and sum of
	// round(amount*100); by window end, then key.
	type group struct {
		key   string
		start int64
	}
	type acc struct{ count, sum int64 }
	accs := map[group]*acc{}
	for i := range int64(10000) {
		e := orders.Generated(i, quickstartStart, int64(time.Millisecond))
		if e.Type == "order.refunded" {
			continue
		}
		var doc struct{ Amount float64 }
		if err := e.Data.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		g := group{strings.ToUpper(string(e.Type)), e.Time - e.Time%int64(time.Second)}
		if accs[g] == nil {
			accs[g] = &acc{}
		}
		accs[g].count++
		accs[g].sum += int64(math.Round(doc.Amount * 100))
	}
	groups := slices.SortedFunc(func(yield func(group) bool) {
		for g := range accs {
			if !yield(g) {
				return
			}
		}
	}, func(a, b group) int {
		if a.start != b.start {
			return int(a.start - b.start)
		}
		return strings.Compare(a.key, b.key)
	})
	var want []string
	for _, g := range groups {
		a := accs[g]
		want = append(want, fmt.Sprintf(`{"key":%q,"count":%d,"sum_cents":%d,"start":%d,"end":%d}`,
			g.key, a.count, a.sum, g.start, g.start+int64(time.Second)))
	}
	if len(want) != 30 {
		t.Fatalf("the reference has %d windows, want 30 (10 seconds, 3 types)", len(want))
	}
	got := lines(stdout)
	if !slices.Equal(got, want) {
		t.Errorf("stdout differs from the reference:\n got %d lines:\n%s\nwant %d lines:\n%s",
			len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
	}
	s := pipelineSummary(t, stderr, "orders")
	if s.in != 10000 || s.out != 30 {
		t.Errorf("summary: %s; want in 10000 and out 30", s.text)
	}
	for _, step := range []string{"drop-refunds 10000>7500", "enrich 7500>7500", "totals 7500>30"} {
		if !strings.Contains(s.text, step) {
			t.Errorf("summary lacks %q: %s", step, s.text)
		}
	}
}

// TestRunLanguagesExample runs examples/languages.yaml, the quickstart
// with a Rust filter, an AssemblyScript map and a WAT aggregate: the same
// output as the quickstart with the Go plugins.
func TestRunLanguagesExample(t *testing.T) {
	t.Setenv("AEGIS_PLUGINS", ordersPlugins(t))
	_, want, stderr := runCLI(t, "run", "-f", "../../examples/quickstart.yaml")
	t.Setenv("AEGIS_PLUGINS", pluginDir(t, map[string]string{
		"rust-orders_filter.wasm":   "rust/orders_filter",
		"as-orders_map.wasm":        "as/orders_map",
		"wat-orders_aggregate.wasm": "wat/orders_aggregate",
	}))
	code, got, stderr2 := runCLI(t, "run", "-f", "../../examples/languages.yaml")
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr2)
	}
	if len(lines(want)) != 30 || got != want {
		t.Errorf("stdout differs from the quickstart's:\n got:\n%s\nwant:\n%s\n(quickstart stderr: %s)", got, want, stderr)
	}
}

// TestRunNativeSteps runs the quickstart's pipeline with built-in steps
// (filter, transform, count and sum) and checks every window against the
// workload computed here.
func TestRunNativeSteps(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "native.yaml", `apiVersion: aegis/v1
sources:
  orders: {type: generator, count: 10000, start: "2026-01-01T00:00:00Z", interval: 1ms}
sinks:
  console: {type: stdout, format: data}
pipelines:
  - name: orders
    from: orders
    batch: {max_events: 1000, max_wait: 50ms}
    steps:
      - name: drop-refunds
        filter: {not: {type: [order.refunded]}}
      - name: upper
        transform: {type_case: upper}
      - name: totals
        aggregate:
          group_by: type
          window: {type: tumbling, size: 1s}
          functions: [{fn: count}, {fn: sum, field: amount}]
    to: [console]
`)
	code, stdout, stderr := runCLI(t, "run", "-f", file)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}

	type result struct {
		Key         string  `json:"key"`
		WindowStart string  `json:"window_start"`
		WindowEnd   string  `json:"window_end"`
		Count       int64   `json:"count"`
		SumAmount   float64 `json:"sum_amount"`
	}
	// The reference, in the order of the results: by window end, then key.
	var want []result
	for w := range int64(10) {
		start := quickstartStart + w*int64(time.Second)
		byType := map[string]*result{}
		for i := w * 1000; i < (w+1)*1000; i++ {
			e := orders.Generated(i, quickstartStart, int64(time.Millisecond))
			if e.Type == "order.refunded" {
				continue
			}
			var doc struct{ Amount float64 }
			if err := e.Data.Decode(&doc); err != nil {
				t.Fatal(err)
			}
			k := strings.ToUpper(string(e.Type))
			if byType[k] == nil {
				byType[k] = &result{Key: k,
					WindowStart: time.Unix(0, start).UTC().Format(time.RFC3339Nano),
					WindowEnd:   time.Unix(0, start+int64(time.Second)).UTC().Format(time.RFC3339Nano)}
			}
			byType[k].Count++
			byType[k].SumAmount += doc.Amount
		}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range byType {
				if !yield(k) {
					return
				}
			}
		}) {
			want = append(want, *byType[k])
		}
	}
	got := lines(stdout)
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d:\n%s", len(got), len(want), stdout)
	}
	for i, l := range got {
		var r result
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("result %d: %v: %s", i, err, l)
		}
		w := want[i]
		if r.Key != w.Key || r.WindowStart != w.WindowStart || r.WindowEnd != w.WindowEnd || r.Count != w.Count ||
			math.Abs(r.SumAmount-w.SumAmount) > 1e-6*w.SumAmount {
			t.Errorf("result %d = %+v, want %+v", i, r, w)
		}
	}
	s := pipelineSummary(t, stderr, "orders")
	for _, step := range []string{"in 10000 ", "drop-refunds 10000>7500", "upper 7500>7500", "totals 7500>30", "out 30 "} {
		if !strings.Contains(s.text, step) {
			t.Errorf("summary lacks %q: %s", step, s.text)
		}
	}
}

// TestRunWindowsLateEvents feeds an aggregation out-of-order and late events
// from stdin, one batch per event so that every firing is known: on-time
// and late firings, empty windows, and the late event sent through a
// channel to a second pipeline's file.
func TestRunWindowsLateEvents(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "late.yaml", `apiVersion: aegis/v1
channels:
  too-late: {}
sources:
  in: {type: stdin}
sinks:
  results: {type: stdout}
  late-file: {type: file, path: late.jsonl}
pipelines:
  - name: windows
    from: in
    batch: {max_events: 1}
    steps:
      - name: sums
        aggregate:
          group_by: data.k
          window: {type: tumbling, size: 1s}
          watermark: 1s
          allowed_lateness: 1s
          late: too-late
          functions: [{fn: count}, {fn: sum, field: n}]
    to: [results]
  - name: late
    from: too-late
    to: [late-file]
`)
	ms := time.Millisecond
	// The watermark trails the newest event time by 1s; a window [s, s+1s)
	// fires when it reaches s+1s and is kept until s+2s.
	in := []stdinEvent{
		{"t", 500 * ms, map[string]any{"k": "a", "n": 1}},    // 0: wm -0.5s
		{"t", 200 * ms, map[string]any{"k": "b", "n": 2}},    // 1: out of order, in time
		{"t", 1500 * ms, map[string]any{"k": "a", "n": 4}},   // 2: wm 0.5s
		{"t", 700 * ms, map[string]any{"k": "a", "n": 8}},    // 3: out of order, in time
		{"t", 2100 * ms, map[string]any{"k": "a", "n": 16}},  // 4: wm 1.1s: [0s,1s) fires
		{"t", 900 * ms, map[string]any{"k": "b", "n": 32}},   // 5: after [0s,1s) fired, within the lateness: fires it again
		{"t", 3500 * ms, map[string]any{"k": "a", "n": 64}},  // 6: wm 2.5s: [1s,2s) fires, [0s,1s) is dropped
		{"t", 300 * ms, map[string]any{"k": "a", "n": 128}},  // 7: too late
		{"t", 1200 * ms, map[string]any{"k": "b", "n": 256}}, // 8: late for [1s,2s) (empty for b), within the lateness
	}
	setStdin(t, stdinOf(t, in))
	code, stdout, stderr := runCLI(t, "run", "-f", file)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	type result struct {
		key    string
		start  time.Duration
		firing string
		count  int64
		sum    int64
	}
	want := []result{
		// event 4 moves the watermark to 1.1s
		{"a", 0, "on-time", 2, 9},
		{"b", 0, "on-time", 1, 2},
		// event 5
		{"b", 0, "late", 2, 34},
		// event 6 moves it to 2.5s; b had no event in [1s,2s): an empty window
		{"a", time.Second, "on-time", 1, 4},
		{"b", time.Second, "on-time", 0, 0},
		// event 8
		{"b", time.Second, "late", 1, 256},
		// the end of the stream fires the rest, b's empty windows too
		{"a", 2 * time.Second, "on-time", 1, 16},
		{"b", 2 * time.Second, "on-time", 0, 0},
		{"a", 3 * time.Second, "on-time", 1, 64},
		{"b", 3 * time.Second, "on-time", 0, 0},
	}
	var got []result
	for _, e := range decodeEvents(t, lines(stdout)) {
		doc := dataOf(t, e)
		start, err := time.Parse(time.RFC3339Nano, doc["window_start"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if doc["key"] != e.Metadata["aegis.key"] || doc["window_start"] != e.Metadata["aegis.window.start"] {
			t.Errorf("result %v: metadata %v disagrees with the data", doc, e.Metadata)
		}
		got = append(got, result{doc["key"].(string), start.Sub(t0), e.Metadata["aegis.window.firing"],
			int64(doc["count"].(float64)), int64(doc["sum_n"].(float64))})
	}
	if !slices.Equal(got, want) {
		t.Errorf("results:\n got %v\nwant %v\nstdout:\n%s", got, want, stdout)
	}

	late := decodeEvents(t, readLines(t, filepath.Join(dir, "late.jsonl")))
	if len(late) != 1 || late[0].ID != testID(7) || late[0].Time != t0.Add(300*ms).UnixNano() {
		t.Errorf("late events: %v, want event 7 alone", late)
	}
	if s := pipelineSummary(t, stderr, "windows"); !strings.Contains(s.text, "sums 9>10 late 1") || s.in != 9 || s.out != 10 {
		t.Errorf("summary: %s", s.text)
	}
	if s := pipelineSummary(t, stderr, "late"); s.in != 1 || s.out != 1 {
		t.Errorf("summary: %s", s.text)
	}
}

// errorPolicyBoom are the events of errorPolicyInput that make the
// bad/panic plugin panic.
var errorPolicyBoom = []int{5, 6, 10}

// errorPolicyInput is the stdin of the error policy tests: twelve events,
// of type "boom" at errorPolicyBoom and "ok" elsewhere. In batches of four,
// the first batch is good and the two others mix good and bad.
func errorPolicyInput(t *testing.T) string {
	var evs []stdinEvent
	for i := range 12 {
		typ := "ok"
		if slices.Contains(errorPolicyBoom, i) {
			typ = "boom"
		}
		evs = append(evs, stdinEvent{typ, time.Duration(i) * time.Millisecond, map[string]any{"i": i}})
	}
	return stdinOf(t, evs)
}

// TestRunErrorPolicies runs the bad/panic plugin (a trap on events of type
// "boom") under every error policy.
func TestRunErrorPolicies(t *testing.T) {
	plugins := pluginDir(t, map[string]string{"bad-panic.wasm": "bad/panic"})
	good := func() []engine.EventID {
		var ids []engine.EventID
		for i := range 12 {
			if !slices.Contains(errorPolicyBoom, i) {
				ids = append(ids, testID(i))
			}
		}
		return ids
	}()
	boom := func() []engine.EventID {
		var ids []engine.EventID
		for _, i := range errorPolicyBoom {
			ids = append(ids, testID(i))
		}
		return ids
	}()
	ids := func(evs []engine.Event) []engine.EventID {
		out := make([]engine.EventID, len(evs))
		for i, e := range evs {
			out[i] = e.ID
		}
		return out
	}
	// passes checks a run that goes on past the failures: exit 0, the good
	// events out in order, and the step's counts in the summary.
	passes := func(summary string) func(*testing.T, int, []engine.Event, []engine.Event, string) {
		return func(t *testing.T, code int, out, _ []engine.Event, stderr string) {
			if code != exitOK {
				t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
			}
			if got := ids(out); !slices.Equal(got, good) {
				t.Errorf("output %v, want %v", got, good)
			}
			if s := pipelineSummary(t, stderr, "main"); !strings.Contains(s.text, summary) {
				t.Errorf("summary: %s", s.text)
			}
		}
	}
	tests := []struct {
		name    string
		policy  string
		workers int
		check   func(t *testing.T, code int, out []engine.Event, dead []engine.Event, stderr string)
	}{
		{
			name:   "fail",
			policy: "{policy: fail}",
			check: func(t *testing.T, code int, out, dead []engine.Event, stderr string) {
				if code != exitError {
					t.Errorf("exit code %d, want %d", code, exitError)
				}
				for _, want := range []string{"pipeline[main]: step[explode]: plugin[bad-panic]", "trap"} {
					if !strings.Contains(stderr, want) {
						t.Errorf("stderr lacks %q:\n%s", want, stderr)
					}
				}
				// The first batch may or may not have reached the sink
				// before the second failed; nothing after it did.
				if got := ids(out); len(got) != 0 && !slices.Equal(got, good[:4]) {
					t.Errorf("output %v, want nothing or the first batch %v", got, good[:4])
				}
				if len(dead) != 0 {
					t.Errorf("dead letters: %v", dead)
				}
			},
		},
		{
			name:   "skip",
			policy: "{policy: skip}",
			check:  passes("explode 12>9 failed 3 skipped 3 fuel/event "),
		},
		{
			// Two batches at once: the output keeps the input order.
			name:    "skip with two workers",
			policy:  "{policy: skip}",
			workers: 2,
			check:   passes("explode 12>9 failed 3 skipped 3 fuel/event "),
		},
		{
			name:   "dead-letter",
			policy: "{policy: dead-letter, dead_letter: dead}",
			check:  passes("explode 12>9 failed 3 dead-lettered 3 fuel/event "),
		},
		{
			name:   "retry then dead-letter",
			policy: "{policy: retry, retries: 2, backoff: 1ms, then: dead-letter, dead_letter: dead}",
			// Two failing batches, each tried twice more.
			check: passes("explode 12>9 failed 3 dead-lettered 3 retries 4 fuel/event "),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := writeFile(t, dir, "policy.yaml", `apiVersion: aegis/v1
channels:
  dead: {}
sources:
  in: {type: stdin}
sinks:
  out: {type: file, path: out.jsonl}
  dead-file: {type: file, path: dead.jsonl}
pipelines:
  - name: main
    from: in
    batch: {max_events: 4}
    steps:
      - name: explode
        plugin: `+filepath.Join(plugins, "bad-panic.wasm")+`
        workers: `+strconv.Itoa(max(tt.workers, 1))+`
        on_error: `+tt.policy+`
    to: [out]
  - name: dead-letters
    from: dead
    to: [dead-file]
`)
			// Under fail and skip nothing writes to the channel dead: its
			// reader ends at once instead of waiting for a signal.
			setStdin(t, errorPolicyInput(t))
			code, _, stderr := runCLI(t, "run", "-f", file)
			out := decodeEvents(t, readLines(t, filepath.Join(dir, "out.jsonl")))
			dead := decodeEvents(t, readLines(t, filepath.Join(dir, "dead.jsonl")))
			tt.check(t, code, out, dead, stderr)
			if !strings.Contains(tt.policy, "dead-letter") {
				if len(dead) != 0 {
					t.Errorf("dead letters: %v", dead)
				}
				return
			}
			if got := ids(dead); !slices.Equal(got, boom) {
				t.Fatalf("dead letters %v, want %v", got, boom)
			}
			for _, e := range dead {
				if e.Type != "boom" {
					t.Errorf("dead letter %s has type %s", e.ID, e.Type)
				}
				for k, want := range map[string]string{
					engine.MetaErrorStep:     "explode",
					engine.MetaErrorPipeline: "main",
					engine.MetaErrorPlugin:   "bad-panic",
				} {
					if got := e.Metadata[k]; got != want {
						t.Errorf("dead letter %s: metadata %s = %q, want %q", e.ID, k, got, want)
					}
				}
				if msg := e.Metadata[engine.MetaError]; msg == "" {
					t.Errorf("dead letter %s has no %s", e.ID, engine.MetaError)
				}
			}
		})
	}
}

// TestRunFailingReaderOfChannel: a pipeline that fails while reading a
// channel must not leave the pipeline writing to it blocked for room that
// never comes (the channel holds four events).
func TestRunFailingReaderOfChannel(t *testing.T) {
	plugins := pluginDir(t, map[string]string{"bad-panic.wasm": "bad/panic"})
	dir := t.TempDir()
	file := writeFile(t, dir, "reader.yaml", `apiVersion: aegis/v1
channels:
  x: {buffer: 4}
sources:
  in: {type: stdin}
sinks:
  out: {type: file, path: out.jsonl}
pipelines:
  - name: intake
    from: in
    batch: {max_events: 4}
    to: [x]
  - name: explode
    from: x
    batch: {max_events: 1}
    steps:
      - name: explode
        plugin: `+filepath.Join(plugins, "bad-panic.wasm")+`
    to: [out]
`)
	var evs []stdinEvent
	for i := range 200 {
		typ := "ok"
		if i == 0 {
			typ = "boom"
		}
		evs = append(evs, stdinEvent{typ, time.Duration(i) * time.Millisecond, map[string]any{"i": i}})
	}
	setStdin(t, stdinOf(t, evs))
	done := make(chan struct{})
	var code int
	var stderr string
	go func() {
		defer close(done)
		code, _, stderr = runCLI(t, "run", "-f", file)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the run did not end after its reader pipeline failed")
	}
	if code != exitError || !strings.Contains(stderr, "pipeline[explode]: step[explode]") {
		t.Errorf("exit code %d, stderr:\n%s", code, stderr)
	}
}

// TestRunManifestErrors: a broken manifest stops validate and run before
// anything runs, with an error that says where and what.
func TestRunManifestErrors(t *testing.T) {
	plugins := pluginDir(t, map[string]string{
		"orders-filter.wasm": "orders/filter",
		"wrong-version.wasm": "wat/wrong_version",
	})
	filter := filepath.Join(plugins, "orders-filter.wasm")
	tests := []struct {
		name     string
		manifest string
		want     []string // substrings of stderr; FILE is the manifest's path
	}{
		{
			name: "unknown key",
			manifest: `apiVersion: aegis/v1
sources:
  in: {type: stdin}
sinks:
  out: {type: stdout}
pipelines:
  - name: p
    from: in
    stepz: []
    to: [out]
`,
			want: []string{"FILE:9:5: ", "pipelines[0].stepz", "unknown"},
		},
		{
			name: "bad duration",
			manifest: `apiVersion: aegis/v1
sources:
  in: {type: stdin}
sinks:
  out: {type: stdout}
pipelines:
  - name: p
    from: in
    batch:
      max_wait: 5 parsecs
    to: [out]
`,
			want: []string{"FILE:10:17: ", "pipelines[0].batch.max_wait"},
		},
		{
			name: "missing plugin file",
			manifest: `apiVersion: aegis/v1
sources:
  in: {type: stdin}
sinks:
  out: {type: stdout}
pipelines:
  - name: p
    from: in
    steps:
      - name: s
        plugin: nope.wasm
    to: [out]
`,
			want: []string{"FILE:11:17: ", "pipelines[0].steps[0].plugin", "nope.wasm", "no such file"},
		},
		{
			name: "cycle",
			manifest: `apiVersion: aegis/v1
channels:
  x: {}
  y: {}
sources:
  in: {type: stdin}
sinks:
  out: {type: stdout}
pipelines:
  - name: intake
    from: in
    to: [x]
  - name: a
    from: x
    to: [y, out]
  - name: b
    from: y
    to: [x]
`,
			want: []string{"FILE:15:10: ", "pipelines[1].to[0]", "cycle", "a -> b -> a"},
		},
		{
			name: "wrong sha256",
			manifest: `apiVersion: aegis/v1
sources:
  in: {type: stdin}
sinks:
  out: {type: stdout}
pipelines:
  - name: p
    from: in
    steps:
      - name: s
        plugin: ` + filter + `
        sha256: "` + strings.Repeat("0", 64) + `"
    to: [out]
`,
			want: []string{"FILE:12:17: ", "pipelines[0].steps[0].sha256", "sha256 mismatch"},
		},
		{
			name: "wrong ABI version",
			manifest: `apiVersion: aegis/v1
sources:
  in: {type: stdin}
sinks:
  out: {type: stdout}
pipelines:
  - name: p
    from: in
    steps:
      - name: s
        plugin: ` + filepath.Join(plugins, "wrong-version.wasm") + `
    to: [out]
`,
			want: []string{"pipeline[p]", "step[s]", "wrong-version", "unsupported ABI version", "2.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, t.TempDir(), "broken.yaml", tt.manifest)
			for _, cmd := range []string{"validate", "run"} {
				setStdin(t, "")
				code, stdout, stderr := runCLI(t, cmd, "-f", file)
				if code != exitError {
					t.Errorf("%s: exit code %d, want %d; stderr:\n%s", cmd, code, exitError, stderr)
				}
				if stdout != "" {
					t.Errorf("%s: stdout %q, want nothing", cmd, stdout)
				}
				if !strings.HasPrefix(stderr, appName+": ") {
					t.Errorf("%s: stderr does not start with %q:\n%s", cmd, appName+": ", stderr)
				}
				for _, want := range tt.want {
					if want = strings.ReplaceAll(want, "FILE", file); !strings.Contains(stderr, want) {
						t.Errorf("%s: stderr lacks %q:\n%s", cmd, want, stderr)
					}
				}
			}
		})
	}
}

func TestValidateQuickstart(t *testing.T) {
	t.Setenv("AEGIS_PLUGINS", ordersPlugins(t))
	code, stdout, stderr := runCLI(t, "validate", "-f", "../../examples/quickstart.yaml")
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	if want := "../../examples/quickstart.yaml: ok: 1 pipeline(s), 3 step(s), 3 plugin(s)\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
}

// TestValidateRunsNothing: validate opens no output, so the files a run
// would write keep what they have.
func TestValidateRunsNothing(t *testing.T) {
	dir := t.TempDir()
	out := writeFile(t, dir, "out.jsonl", "precious\n")
	file := writeFile(t, dir, "v.yaml", `apiVersion: aegis/v1
sources:
  in: {type: stdin}
sinks:
  out: {type: file, path: out.jsonl}
pipelines:
  - name: p
    from: in
    to: [out]
`)
	setStdin(t, `{"type":"t","data":{"kind":"json","value":{}}}`+"\n")
	code, _, stderr := runCLI(t, "validate", "-f", file)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	if got := readLines(t, out); !slices.Equal(got, []string{"precious"}) {
		t.Errorf("validate changed %s: %q", out, got)
	}
}

func TestSchema(t *testing.T) {
	code, stdout, stderr := runCLI(t, "schema")
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	var schema map[string]any
	if err := json.Unmarshal([]byte(stdout), &schema); err != nil {
		t.Fatalf("schema is not JSON: %v\n%s", err, stdout)
	}
	if schema["$schema"] == nil || schema["properties"] == nil {
		t.Errorf("schema lacks $schema or properties: %.200s", stdout)
	}
}

// TestRunShutdownDrains stops an endless run with SIGINT and checks that
// every event read reached the file, in order.
func TestRunShutdownDrains(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "endless.yaml", `apiVersion: aegis/v1
sources:
  orders: {type: generator, start: "2026-01-01T00:00:00Z", interval: 1ms}
sinks:
  out: {type: file, path: out.jsonl}
pipelines:
  - name: endless
    from: orders
    batch: {max_events: 100}
    steps:
      - name: upper
        transform: {type_case: upper}
    to: [out]
`)
	oldExit := forceExit
	forceExit = func() { t.Error("a second signal forced the exit") }
	t.Cleanup(func() { forceExit = oldExit })

	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		var r result
		// --status: the counters are read while the pipeline runs.
		r.code, r.stdout, r.stderr = runCLI(t, "run", "--status", "1ms", "-f", file)
		done <- r
	}()
	outFile := filepath.Join(dir, "out.jsonl")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if fi, err := os.Stat(outFile); err == nil && fi.Size() > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("the run ended by itself: exit code %d; stderr:\n%s", r.code, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no output after 20s")
		}
		time.Sleep(time.Millisecond)
	}
	interrupt(t)
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the run did not stop 20s after SIGINT")
	}
	if r.code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "stopping: draining") {
		t.Errorf("stderr does not say it is stopping:\n%s", r.stderr)
	}
	s := pipelineSummary(t, r.stderr, "endless")
	got := readLines(t, outFile)
	if s.in == 0 || len(got) != s.in || s.out != s.in {
		t.Fatalf("%d lines in the file; summary: %s", len(got), s.text)
	}
	for i, e := range decodeEvents(t, got) {
		w := orders.Generated(int64(i), quickstartStart, int64(time.Millisecond))
		if e.ID != w.ID || e.Time != w.Time || string(e.Type) != strings.ToUpper(string(w.Type)) {
			t.Fatalf("line %d is event %s at %s, type %s; want event %d: %s at %s", i+1,
				e.ID, e.Timestamp().Format(time.RFC3339Nano), e.Type, i, w.ID, w.Timestamp().Format(time.RFC3339Nano))
		}
	}
}

// TestRunChannels: pipeline A filters into a channel, pipeline B maps from
// it into a file; the run ends by itself once both have, with everything
// A wrote in B's output.
func TestRunChannels(t *testing.T) {
	plugins := ordersPlugins(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "channels.yaml", `apiVersion: aegis/v1
channels:
  x: {buffer: 16}
sources:
  orders: {type: generator, count: 1000, start: "2026-01-01T00:00:00Z", interval: 1ms}
sinks:
  out: {type: file, path: out.jsonl}
pipelines:
  - name: b
    from: x
    batch: {max_events: 10}
    steps:
      - name: enrich
        plugin: `+filepath.Join(plugins, "orders-map.wasm")+`
    to: [out]
  - name: a
    from: orders
    batch: {max_events: 64}
    steps:
      - name: drop-refunds
        plugin: `+filepath.Join(plugins, "orders-filter.wasm")+`
    to: [x]
`)
	code, _, stderr := runCLI(t, "run", "-f", file)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	want := withoutRefunds(1000)
	got := decodeEvents(t, readLines(t, filepath.Join(dir, "out.jsonl")))
	if len(got) != len(want) {
		t.Fatalf("%d events out, want %d", len(got), len(want))
	}
	for i, e := range got {
		w := want[i]
		doc := dataOf(t, e)
		var amount struct{ Amount float64 }
		if err := w.Data.Decode(&amount); err != nil {
			t.Fatal(err)
		}
		if e.ID != w.ID || e.Time != w.Time || string(e.Type) != strings.ToUpper(string(w.Type)) ||
			doc["amount_cents"] != math.Round(amount.Amount*100) || doc["region"] != "eu-west-1" {
			t.Fatalf("event %d = %s %s %v, want %s %s", i, e.ID, e.Type, doc, w.ID, w.Type)
		}
	}
	if s := pipelineSummary(t, stderr, "a"); s.in != 1000 || s.out != 750 {
		t.Errorf("summary: %s", s.text)
	}
	if s := pipelineSummary(t, stderr, "b"); s.in != 750 || s.out != 750 {
		t.Errorf("summary: %s", s.text)
	}
}

func TestRunWithoutFile(t *testing.T) {
	for _, cmd := range []string{"run", "validate"} {
		code, stdout, stderr := runCLI(t, cmd)
		if code != exitUsage {
			t.Errorf("%s: exit code %d, want %d; stderr:\n%s", cmd, code, exitUsage, stderr)
		}
		if stdout != "" {
			t.Errorf("%s: stdout %q", cmd, stdout)
		}
		for _, want := range []string{appName + ": ", `"file"`, "Run 'aegis-host " + cmd + " --help'"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", cmd, want, stderr)
			}
		}
	}
}

// TestRunShutdownDownstreamWindows: after a stop, a pipeline fed through a
// channel takes everything its writer drained and then ends as stopped
// too: it fires the complete windows, not the one the stop cut short.
func TestRunShutdownDownstreamWindows(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "downstream.yaml", `apiVersion: aegis/v1
channels:
  x: {}
sources:
  orders: {type: generator, start: "2026-01-01T00:00:00Z", interval: 1ms}
sinks:
  raw: {type: file, path: raw.jsonl}
  windows: {type: file, path: windows.jsonl}
pipelines:
  - name: a
    from: orders
    batch: {max_events: 100}
    to: [x, raw]
  - name: b
    from: x
    steps:
      - name: per-second
        aggregate:
          window: {type: tumbling, size: 1s}
          functions: [{fn: count}]
    to: [windows]
`)
	oldExit := forceExit
	forceExit = func() { t.Error("a second signal forced the exit") }
	t.Cleanup(func() { forceExit = oldExit })
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, _, stderr := runCLI(t, "run", "-f", file)
		done <- result{code, stderr}
	}()
	// Wait for a few thousand events (about 300 bytes each).
	deadline := time.Now().Add(20 * time.Second)
	for {
		if fi, err := os.Stat(filepath.Join(dir, "raw.jsonl")); err == nil && fi.Size() > 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not enough events after 20s")
		}
		time.Sleep(time.Millisecond)
	}
	interrupt(t)
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the run did not stop 20s after SIGINT")
	}
	if r.code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
	}
	a, b := pipelineSummary(t, r.stderr, "a"), pipelineSummary(t, r.stderr, "b")
	if a.out != a.in || b.in != a.out {
		t.Fatalf("events lost between the pipelines:\n%s\n%s", a.text, b.text)
	}
	// Events 0..n-1 at 0ms..n-1ms: the windows [k s, k+1 s) that end at
	// or before the newest event are complete, with 1000 events each.
	n := a.in
	results := decodeEvents(t, readLines(t, filepath.Join(dir, "windows.jsonl")))
	if want := (n - 1) / 1000; len(results) != want {
		t.Errorf("%d windows for %d events, want the %d complete ones", len(results), n, want)
	}
	for i, e := range results {
		doc := dataOf(t, e)
		start := t0.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano)
		if doc["count"] != 1000.0 || doc["window_start"] != start {
			t.Errorf("window %d: %v, want 1000 events from %s", i, doc, start)
		}
	}
}

// TestRunTwoStdoutSinks: two pipelines write large batches to two stdout
// sinks at once; their lines must not interleave.
func TestRunTwoStdoutSinks(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "stdout.yaml", `apiVersion: aegis/v1
sources:
  one: {type: generator, count: 5000, start: "2026-01-01T00:00:00Z", interval: 1ms}
  two: {type: generator, count: 5000, start: "2026-01-01T00:00:00Z", interval: 1ms}
sinks:
  events: {type: stdout}
  data: {type: stdout, format: data}
pipelines:
  - name: one
    from: one
    batch: {max_events: 1000}
    to: [events]
  - name: two
    from: two
    batch: {max_events: 1000}
    to: [data]
`)
	code, stdout, stderr := runCLI(t, "run", "-f", file)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	var events, data int
	for i, l := range lines(stdout) {
		var doc map[string]any
		if err := json.Unmarshal([]byte(l), &doc); err != nil {
			t.Fatalf("line %d is not JSON (interleaved?): %v\n%.300s", i+1, err, l)
		}
		if _, ok := doc["kind"]; ok {
			t.Fatalf("line %d: %v", i+1, doc)
		}
		if _, ok := doc["data"]; ok {
			events++
		} else {
			data++
		}
	}
	if events != 5000 || data != 5000 {
		t.Errorf("%d events and %d data lines, want 5000 each", events, data)
	}
}

// TestRunLimits: a step's limits.fuel and limits.timeout from the manifest
// reach the plugin. testplugins/wat/spin.wat counts down from each event's
// time (here nanoseconds since 2026: forever, in effect), so every call
// ends at a limit; the error names the limit, and under skip the pipeline
// goes on.
func TestRunLimits(t *testing.T) {
	plugins := pluginDir(t, map[string]string{"spin.wasm": "wat/spin"})
	for _, tt := range []struct {
		name, limits, policy string
		code                 int
		want                 string
	}{
		{"fuel", "{fuel: 50k, timeout: none}", "fail", exitError, "fuel exhausted: the call needed more than its budget of 200000 fuel (3 events)"},
		{"deadline", "{fuel: none, timeout: 30ms}", "fail", exitError, "deadline exceeded: the call ran longer than 30ms"},
		{"fuel, skipped", "{fuel: 1k}", "skip", exitOK, "spin 6>0 failed 6 skipped 6 fuel/event "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := writeFile(t, dir, "limits.yaml", `apiVersion: aegis/v1
sources:
  gen: {type: generator, count: 6, start: "2026-01-01T00:00:00Z", interval: 1ms}
sinks:
  out: {type: file, path: out.jsonl}
pipelines:
  - name: main
    from: gen
    batch: {max_events: 3}
    steps:
      - name: spin
        plugin: `+filepath.Join(plugins, "spin.wasm")+`
        limits: `+tt.limits+`
        on_error: {policy: `+tt.policy+`}
    to: [out]
`)
			code, _, stderr := runCLI(t, "run", "-f", file)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Fatalf("stderr lacks %q:\n%s", tt.want, stderr)
			}
			if got := readLines(t, filepath.Join(dir, "out.jsonl")); len(got) != 0 {
				t.Errorf("%d events out", len(got))
			}
		})
	}
}
