package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/engine"
)

// persistentWriter is a manifest: generator -> pipeline a (drops refunds)
// -> persistent channel x -> pipeline b (upper-cases types) -> out.jsonl.
const persistentWriter = `apiVersion: aegis/v1
channels:
  x: {persistent: true}
sources:
  orders: {type: generator, count: 1000, start: "2026-01-01T00:00:00Z", interval: 1ms}
sinks:
  out: {type: file, path: out.jsonl}
pipelines:
  - name: a
    from: orders
    batch: {max_events: 64}
    steps:
      - name: drop-refunds
        filter: {not: {type: [order.refunded]}}
    to: [x]
  - name: b
    from: x
    batch: {max_events: 10}
    steps:
      - name: upper
        transform: {type_case: upper}
    to: [out]
`

// persistentWant are the events of persistentWriter's channel x, in order.
func persistentWant() []engine.Event { return withoutRefunds(1000) }

// checkEvents checks that path holds want's events once each, in order,
// with their types upper-cased when upper.
func checkEvents(t *testing.T, path string, want []engine.Event, upper bool) {
	t.Helper()
	got := decodeEvents(t, readLines(t, path))
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", filepath.Base(path), len(got), len(want))
	}
	for i, e := range got {
		w := want[i]
		typ := string(w.Type)
		if upper {
			typ = strings.ToUpper(typ)
		}
		if e.ID != w.ID || e.Time != w.Time || string(e.Type) != typ {
			t.Fatalf("%s: event %d = %s %s, want %s %s", filepath.Base(path), i, e.ID, e.Type, w.ID, typ)
		}
	}
}

func TestRunPersistentChannel(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "writer.yaml", persistentWriter)
	want := persistentWant()

	// The run ends once b has processed what a published in this run.
	code, _, stderr := runCLI(t, "run", "-f", file)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	checkEvents(t, filepath.Join(dir, "out.jsonl"), want, true)
	if s := pipelineSummary(t, stderr, "a"); s.in != 1000 || s.out != 750 {
		t.Errorf("summary: %s", s.text)
	}
	if s := pipelineSummary(t, stderr, "b"); s.in != 750 || s.out != 750 {
		t.Errorf("summary: %s", s.text)
	}
	if _, err := os.Stat(filepath.Join(dir, ".aegis", "jetstream")); err != nil {
		t.Fatalf("the store is not under data_dir/jetstream: %v", err)
	}

	// Again: the generator's events (the same IDs) are duplicates within
	// the channel's duplicate window, and b resumes after what it
	// acknowledged: nothing new.
	code, _, stderr = runCLI(t, "run", "-f", file)
	if code != exitOK {
		t.Fatalf("second run: exit code %d; stderr:\n%s", code, stderr)
	}
	if s := pipelineSummary(t, stderr, "b"); s.in != 0 || s.out != 0 {
		t.Errorf("second run: %s, want nothing in or out", s.text)
	}

	// A manifest that only reads the channel, with a new pipeline, gets
	// what the channel retains, and ends.
	reader := writeFile(t, dir, "reader.yaml", `apiVersion: aegis/v1
channels:
  x: {persistent: true}
sinks:
  out: {type: file, path: out2.jsonl}
pipelines:
  - name: c
    from: x
    delivery: {start: all, mode: exactly-once}
    to: [out]
`)
	code, _, stderr = runCLI(t, "run", "-f", reader)
	if code != exitOK {
		t.Fatalf("reader: exit code %d; stderr:\n%s", code, stderr)
	}
	checkEvents(t, filepath.Join(dir, "out2.jsonl"), want, false)
	if s := pipelineSummary(t, stderr, "c"); s.in != 750 || s.out != 750 {
		t.Errorf("reader: %s", s.text)
	}
	// And again: c resumes after what it acknowledged.
	code, _, stderr = runCLI(t, "run", "-f", reader)
	if code != exitOK {
		t.Fatalf("reader again: exit code %d; stderr:\n%s", code, stderr)
	}
	if s := pipelineSummary(t, stderr, "c"); s.in != 0 {
		t.Errorf("reader again: %s, want nothing in", s.text)
	}
}

func TestRunPersistentChannelErrors(t *testing.T) {
	for _, tt := range []struct {
		name, yaml string
		want       []string // with the manifest's path when withFile
		withFile   bool
	}{
		{"dead letter a sink", `apiVersion: aegis/v1
channels:
  x: {persistent: true}
sinks:
  out: {type: drop}
pipelines:
  - name: c
    from: x
    delivery: {dead_letter: out}
    to: [out]
`, []string{`pipelines[0].delivery.dead_letter: "out" is a sink; this takes a channel`}, false},
		{"store is a file", `apiVersion: aegis/v1
data_dir: store
channels:
  x: {persistent: true}
sinks:
  out: {type: drop}
pipelines:
  - {name: c, from: x, to: [out]}
`, []string{"persistent channels: store ", filepath.Join("store", "jetstream")}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sub := t.TempDir()
			if tt.name == "store is a file" {
				// data_dir exists but jetstream under it cannot be made.
				if err := os.MkdirAll(filepath.Join(sub, "store"), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(sub, "store"), "jetstream", "not a directory")
			}
			file := writeFile(t, sub, "m.yaml", tt.yaml)
			code, _, stderr := runCLI(t, "run", "-f", file)
			if code == exitOK {
				t.Fatalf("exit code 0, want an error; stderr:\n%s", stderr)
			}
			want := tt.want
			if tt.withFile {
				want = append(want, file)
			}
			for _, w := range want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestValidatePersistentStartsNoStore(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "writer.yaml", persistentWriter)
	code, stdout, stderr := runCLI(t, "validate", "-f", file)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "ok: 2 pipeline(s)") {
		t.Errorf("stdout: %s", stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, ".aegis")); !os.IsNotExist(err) {
		t.Errorf("validate made the data directory: %v", err)
	}
}

// eventCounts counts the events of a JSON-lines file by ID. A line that
// does not decode is counted in bad: a kill -9 may cut the last line of a
// batch (whose events are then delivered again, not acknowledged).
func eventCounts(t *testing.T, path string) (seen map[engine.EventID]int, n, bad int) {
	t.Helper()
	seen = map[engine.EventID]int{}
	for _, l := range readLines(t, path) {
		var e engine.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			bad++
			continue
		}
		seen[e.ID]++
		n++
	}
	return seen, n, bad
}

func TestRunPersistentChannelKilled(t *testing.T) {
	bin := buildHost(t, "builds the binary and runs it for seconds")
	dir := t.TempDir()
	const total = 20000
	// generator -> a -> persistent x -> b -> persistent y and out.jsonl
	// (appended to). b reads exactly-once with a short ack wait, so that
	// the restart gets what the killed run had read and not written soon.
	// A restart generates the same events again (same IDs): x drops them
	// as duplicates.
	m := writeFile(t, dir, "m.yaml", fmt.Sprintf(`apiVersion: aegis/v1
channels:
  x: {persistent: true}
  y: {persistent: true}
sources:
  orders: {type: generator, count: %d, rate: 5000, start: "2026-01-01T00:00:00Z", interval: 1ms}
sinks:
  out: {type: file, path: out.jsonl, append: true}
pipelines:
  - name: a
    from: orders
    steps:
      - name: drop-refunds
        filter: {not: {type: [order.refunded]}}
    to: [x]
  - name: b
    from: x
    delivery: {mode: exactly-once, ack_wait: 1s}
    steps:
      - name: upper
        transform: {type_case: upper}
    to: [y, out]
`, total))
	out := filepath.Join(dir, "out.jsonl")

	// kill -9 twice mid-stream, then a run to the end.
	r := startRun(t, bin, m)
	r.waitLines(t, out, 3000, 60*time.Second)
	r.kill(t)
	_, killed, _ := eventCounts(t, out)
	t.Logf("%d events written before the first kill -9", killed)
	r = startRun(t, bin, m)
	r.waitLines(t, out, killed+3000, 60*time.Second)
	r.kill(t)
	r = startRun(t, bin, m)
	if err := r.wait(); err != nil {
		t.Fatalf("%v\n%s", err, r.stderr.String())
	}

	// Every event at least once in out.jsonl.
	want := withoutRefunds(total)
	seen, n, bad := eventCounts(t, out)
	for _, e := range want {
		if seen[e.ID] == 0 {
			t.Fatalf("event %s was lost", e.ID)
		}
	}
	if len(seen) != len(want) || bad > 2 {
		t.Fatalf("%d distinct events, %d cut lines, want %d and at most one per kill", len(seen), bad, len(want))
	}
	t.Logf("out.jsonl: %d events for %d (%d again after kill -9), %d cut lines", n, len(want), n-len(want), bad)

	// Exactly once in the persistent channel y: read it all.
	reader := writeFile(t, dir, "reader.yaml", `apiVersion: aegis/v1
channels:
  y: {persistent: true}
sinks:
  out: {type: file, path: out2.jsonl}
pipelines:
  - {name: c, from: y, to: [out]}
`)
	code, _, errs := runCLI(t, "run", "-f", reader)
	if code != exitOK {
		t.Fatalf("reader: exit code %d; stderr:\n%s", code, errs)
	}
	// In any order: an event read by a killed run and not written comes
	// again after its ack wait, behind newer ones.
	seen, n, bad = eventCounts(t, filepath.Join(dir, "out2.jsonl"))
	for _, e := range want {
		if seen[e.ID] != 1 {
			t.Fatalf("event %s is %d times in y, want once", e.ID, seen[e.ID])
		}
	}
	if n != len(want) || bad != 0 {
		t.Fatalf("y holds %d events (%d bad lines), want %d", n, bad, len(want))
	}
}

func TestRunPersistentChannelLost(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "writer.yaml", persistentWriter)
	if code, _, stderr := runCLI(t, "run", "-f", file); code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	record := filepath.Join(dir, ".aegis", "persistent-channels")
	if b, err := os.ReadFile(record); err != nil || string(b) != "x\n" {
		t.Fatalf("record %q, %v; want x", b, err)
	}
	// The store is wiped: the run refuses to start with an empty x.
	if err := os.RemoveAll(filepath.Join(dir, ".aegis", "jetstream")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "run", "-f", file)
	if code == exitOK {
		t.Fatalf("exit code 0 with the store wiped; stderr:\n%s", stderr)
	}
	for _, w := range []string{file, "channels[x]", record, filepath.Join(".aegis", "jetstream")} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	// Deleted on purpose: without its line, x is made anew.
	if err := os.WriteFile(record, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "run", "-f", file); code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	checkEvents(t, filepath.Join(dir, "out.jsonl"), persistentWant(), true)
}

func TestDeliveryOptions(t *testing.T) {
	d := func(s string) manifest.Duration { v, _ := time.ParseDuration(s); return manifest.Duration(v) }
	mp := &manifest.Pipeline{Name: "p", Delivery: &manifest.Delivery{Mode: "exactly-once", MaxDeliver: manifest.NoMaxDeliver,
		Backoff: []manifest.Duration{d("1s"), d("10s")}, Start: "new"}}
	o, err := deliveryOptions(mp)
	if err != nil {
		t.Fatal(err)
	}
	if o.Durable != "pipeline:p" || o.DeliveryMode != engine.ExactlyOnce || o.MaxDeliver != 0 ||
		len(o.Backoff) != 2 || o.Backoff[1] != 10*time.Second || o.Start != engine.StartNew() {
		t.Errorf("options %+v", o)
	}
	mp.Delivery = &manifest.Delivery{Mode: "at-least-once", AckWait: d("2s"), MaxDeliver: 3, Start: "all"}
	if o, err = deliveryOptions(mp); err != nil || o.DeliveryMode != engine.AtLeastOnce || o.AckWait != 2*time.Second ||
		o.MaxDeliver != 3 || o.Start != engine.StartAll() {
		t.Errorf("options %+v, %v", o, err)
	}

	cfg, err := channelConfig(manifest.Channel{Persistent: true, Replicas: 3, Discard: "new", DuplicateWindow: d("1m"),
		Retention: &manifest.Retention{MaxAge: d("1h"), MaxBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	want := engine.ChannelConfig{Persistent: true, Replicas: 3, Discard: engine.DiscardNew, DuplicateWindow: time.Minute,
		Retention: engine.Retention{MaxAge: time.Hour, MaxBytes: 1 << 20}}
	if cfg != want {
		t.Errorf("channel config %+v, want %+v (max_events 0: no limit)", cfg, want)
	}
}

// TestRunDurableExample runs examples/durable.yaml twice on one store: the
// first run gives the quickstart's 30 totals through the persistent
// channel; the second makes the same orders again, which the channel
// stores once, so it gives none.
func TestRunDurableExample(t *testing.T) {
	t.Setenv("AEGIS_PLUGINS", ordersPlugins(t))
	t.Setenv("DATA_DIR", t.TempDir())
	code, quick, stderr := runCLI(t, "run", "-f", "../../examples/quickstart.yaml")
	if code != exitOK {
		t.Fatalf("quickstart: exit code %d; stderr:\n%s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "run", "-f", "../../examples/durable.yaml")
	if code != exitOK {
		t.Fatalf("first run: exit code %d; stderr:\n%s", code, stderr)
	}
	if got := lines(stdout); len(got) != 30 || stdout != quick {
		t.Fatalf("first run: %d totals, want the quickstart's 30:\n%s\nquickstart:\n%s", len(got), stdout, quick)
	}
	code, stdout, stderr = runCLI(t, "run", "-f", "../../examples/durable.yaml")
	if code != exitOK {
		t.Fatalf("second run: exit code %d; stderr:\n%s", code, stderr)
	}
	if stdout != "" || !strings.Contains(stderr, "intake: in 10000") || !strings.Contains(stderr, "totals: in 0 ") {
		t.Fatalf("second run: want the same 10,000 orders in and nothing new for totals; stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}
