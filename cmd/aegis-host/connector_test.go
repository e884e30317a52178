package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// End-to-end tests of connector plugins through the CLI: the test
// connectors (testplugins/connectors) as plugin sources and sinks.

// connectorsDir copies the test connectors into a new directory, so that
// their processes can be told from those of other tests, and returns it.
func connectorsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"source", "sink"} {
		b, err := os.ReadFile(plugintest.Path(t, "connectors/"+name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// connectorManifest reads count numbered events from the source connector
// and writes them with the sink connector to out.jsonl in dir.
func connectorManifest(t *testing.T, dir string, count int, rate float64) string {
	t.Helper()
	return writeFile(t, dir, "connectors.yaml", fmt.Sprintf(`apiVersion: aegis/v1
sources:
  numbers:
    type: plugin
    plugin: source
    with: {count: %d, rate: %g}
    timeout: 5s
sinks:
  out:
    type: plugin
    plugin: sink
    with: {path: out.jsonl}
pipelines:
  - name: numbers
    from: numbers
    steps:
      - name: tag
        transform: {set_meta: {seen: "yes"}}
    to: [out]
    batch: {max_events: 200, max_wait: 10ms}
`, count, rate))
}

// sinkNumbers reads the numbers of the events the sink connector wrote,
// and how many times each came.
func sinkNumbers(t *testing.T, path string) (n int, seen map[int64]int) {
	return readNumbers(t, path, true)
}

// readNumbers is sinkNumbers; tagged checks that the events went through
// connectorManifest's step.
func readNumbers(t *testing.T, path string, tagged bool) (n int, seen map[int64]int) {
	t.Helper()
	seen = map[int64]int{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0, seen
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e engine.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// A line being written as the test reads: the rest comes later.
			break
		}
		i, _ := e.Data.AsInt()
		if tagged && e.Metadata["seen"] != "yes" {
			t.Fatalf("event %d did not pass the pipeline's step: %v", i, e.Metadata)
		}
		seen[i]++
		n++
	}
	return n, seen
}

func TestRunConnectors(t *testing.T) {
	dir := connectorsDir(t)
	m := connectorManifest(t, dir, 3000, 0)
	code, _, stderr := runCLI(t, "run", "-f", m)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	n, seen := sinkNumbers(t, filepath.Join(dir, "out.jsonl"))
	if n != 3000 || len(seen) != 3000 {
		t.Fatalf("the sink wrote %d events, %d distinct, want 3000 once each", n, len(seen))
	}
	// The position is stored under the data directory: a second run has
	// nothing left to read.
	if _, err := os.Stat(filepath.Join(dir, ".aegis", "connectors", "numbers.position")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, "run", "-f", m)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if n, _ := sinkNumbers(t, filepath.Join(dir, "out.jsonl")); n != 3000 {
		t.Fatalf("after a second run the sink holds %d events, want 3000", n)
	}
	if s := pipelineSummary(t, stderr, "numbers"); s.in != 0 {
		t.Fatalf("the second run read %d events: %s", s.in, s.text)
	}
}

func TestRunConnectorErrors(t *testing.T) {
	dir := connectorsDir(t)
	for _, tc := range []struct {
		name, with, want string
	}{
		{"refused configuration", `{fail_configure: "count must be positive"}`, "connector[numbers]: open: the connector refused its configuration: count must be positive"},
		{"unknown key", `{cuont: 3}`, `unknown field "cuont"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := writeFile(t, dir, "bad.yaml", `apiVersion: aegis/v1
sources:
  numbers: {type: plugin, plugin: source, with: `+tc.with+`}
pipelines:
  - {name: p, from: numbers, to: [out]}
sinks:
  out: {type: drop}
`)
			code, _, stderr := runCLI(t, "run", "-f", m)
			if code == exitOK || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want a failure saying %q:\n%s", code, tc.want, stderr)
			}
		})
	}
}

// noConnectors waits until no process runs an executable of dir.
func noConnectors(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := plugintest.Processes(dir)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connector processes %v outlived the host", pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunConnectorsKilled(t *testing.T) {
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		t.Skip("needs /proc to find the connectors' processes")
	}
	bin := buildHost(t, "builds the binary and runs it for seconds")
	dir := connectorsDir(t)
	const total = 20000
	m := connectorManifest(t, dir, total, 5000)
	out := filepath.Join(dir, "out.jsonl")

	// kill -9 mid-stream: the connectors die with the host.
	r := startRun(t, bin, m)
	r.waitLines(t, out, 3000, 30*time.Second)
	r.kill(t)
	noConnectors(t, dir)
	killed, _ := sinkNumbers(t, out)
	t.Logf("%d events written before kill -9", killed)

	// A stop: the host drains and stops its connectors.
	r = startRun(t, bin, m)
	r.waitLines(t, out, killed+3000, 30*time.Second)
	r.signal(t, syscall.SIGTERM)
	if err := r.wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, r.stderr.String())
	}
	noConnectors(t, dir)

	// The run after them reads the rest: every event at least once.
	r = startRun(t, bin, m)
	if err := r.wait(); err != nil {
		t.Fatalf("%v\n%s", err, r.stderr.String())
	}
	noConnectors(t, dir)
	n, seen := sinkNumbers(t, out)
	for i := int64(0); i < total; i++ {
		if seen[i] == 0 {
			t.Fatalf("event %d was lost", i)
		}
	}
	// Events are written again only when the host died between writing
	// them and storing their position: at most a batch or so.
	t.Logf("%d events written for %d (%d again after kill -9)", n, total, n-total)
	if n-total > 2000 {
		t.Errorf("%d events written again", n-total)
	}
}

func TestRunConnectorExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example connector; skipped with -short")
	}
	bin := t.TempDir()
	build := exec.CommandContext(t.Context(), "go", "build", "-o", filepath.Join(bin, "example"), "../../examples/connector")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	t.Setenv("AEGIS_CONNECTORS", bin)
	t.Setenv("OUT", out)
	t.Setenv("DATA_DIR", t.TempDir())
	for run, want := range []int{5, 0} {
		code, _, stderr := runCLI(t, "run", "-f", "../../examples/connector/connector.yaml")
		if code != exitOK {
			t.Fatalf("run %d: exit %d\n%s", run, code, stderr)
		}
		// The second run starts after the lines the first acknowledged.
		if s := pipelineSummary(t, stderr, "orders"); s.in != want || s.out != want {
			t.Fatalf("run %d: %s, want %d events in and out", run, s.text, want)
		}
	}
	ls := readLines(t, out)
	if len(ls) != 5 {
		t.Fatalf("%d lines written, want 5", len(ls))
	}
	for i, e := range decodeEvents(t, ls) {
		if e.Type != "ORDER.RECEIVED" || e.Data.Kind() != engine.KindJSON {
			t.Fatalf("event %d: %s of %v, want ORDER.RECEIVED with JSON data", i, e.Type, e.Data.Kind())
		}
	}
}

func TestRunConnectorRestartMetric(t *testing.T) {
	dir := connectorsDir(t)
	once := filepath.Join(dir, "once")
	m := writeFile(t, dir, "m.yaml", fmt.Sprintf(`apiVersion: aegis/v1
telemetry:
  metrics: {exporter: stdout, interval: 1h}
sources:
  numbers: {type: plugin, plugin: source, with: {count: 1000, crash_after: 500, once_file: %q}}
sinks:
  out: {type: plugin, plugin: sink, with: {path: out.jsonl}}
pipelines:
  - {name: numbers, from: numbers, to: [out]}
`, once))
	code, stdout, stderr := runCLI(t, "run", "-f", m)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if n, seen := readNumbers(t, filepath.Join(dir, "out.jsonl"), false); n != 1000 || len(seen) != 1000 {
		t.Fatalf("the sink wrote %d events, %d distinct, want 1000 once each", n, len(seen))
	}
	if !strings.Contains(stderr, "connector restarted") {
		t.Errorf("the log does not say the connector restarted:\n%s", stderr)
	}
	// The stdout exporter's last collection, at shutdown, counts it.
	i := strings.LastIndex(stdout, `"Name":"aegis.connector.restarts"`)
	if i < 0 {
		t.Fatalf("no aegis.connector.restarts in the metrics:\n%s", stdout)
	}
	rest := stdout[i:]
	one := regexp.MustCompile(`"Value":"numbers"\}\},\{"Key":"aegis.connector.kind","Value":\{"Type":"STRING","Value":"source"\}\}\],"StartTime":"[^"]*","Time":"[^"]*","Value":1\}`)
	if !one.MatchString(rest) {
		t.Fatalf("aegis.connector.restarts, want 1 for the source numbers: %.600s", rest)
	}
}

func TestRunConnectorsEndWithAFailure(t *testing.T) {
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		t.Skip("needs /proc to find the connectors' processes")
	}
	// The sink fails for good while the source has no end: the run fails
	// with the sink's error, and neither connector outlives it.
	dir := connectorsDir(t)
	m := writeFile(t, dir, "m.yaml", `apiVersion: aegis/v1
sources:
  numbers: {type: plugin, plugin: source, with: {count: 0, rate: 1000}}
sinks:
  out: {type: plugin, plugin: sink, with: {path: out.jsonl, fail_write: "the bucket is gone"}}
pipelines:
  - {name: numbers, from: numbers, to: [out]}
`)
	code, _, stderr := runCLI(t, "run", "-f", m)
	if code == exitOK || !strings.Contains(stderr, "connector[out]: write: the bucket is gone") {
		t.Fatalf("exit %d, want the sink's error:\n%s", code, stderr)
	}
	noConnectors(t, dir)
}
