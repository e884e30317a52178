package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aegis-streaming/aegis/engine"
)

// envelope is a Debezium change envelope (schemas disabled) of an insert
// into inventory.public.orders.
func envelope(id int, status string) string {
	return fmt.Sprintf(`{"op":"c","ts_ms":1767225600000,"source":{"connector":"postgresql","name":"dbserver1","db":"inventory","schema":"public","table":"orders","lsn":%d},"before":null,"after":{"id":%d,"status":%q}}`, 1000+id, id, status)
}

// TestRunDebeziumFile reads envelopes from a file with a malformed line in
// the middle: the others reach the sink in order, and the malformed one
// reaches the dead-letter channel with its input and line.
func TestRunDebeziumFile(t *testing.T) {
	dir := t.TempDir()
	const bad = `{"op":"c","after":` // cut short
	input := strings.Join([]string{envelope(1, "paid"), envelope(2, "pending"), bad, envelope(3, "paid"), envelope(4, "paid")}, "\n") + "\n"
	writeFile(t, dir, "changes.jsonl", input)
	m := writeFile(t, dir, "m.yaml", `apiVersion: aegis/v1
telemetry:
  metrics: {exporter: stdout, interval: 1h}
channels: {dead: {}}
sources:
  dz: {type: debezium, path: changes.jsonl, dead_letter: dead}
sinks:
  out: {type: file, path: out.jsonl, format: data}
  bad: {type: file, path: bad.jsonl}
pipelines:
  - {name: a, from: dz, to: [out]}
  - {name: b, from: dead, to: [bad]}
`)
	code, stdout, stderr := runCLI(t, "run", "-f", m)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	i := strings.LastIndex(stdout, `"Name":"aegis.cdc.malformed"`)
	one := regexp.MustCompile(`"Value":"dz"\}\}\],"StartTime":"[^"]*","Time":"[^"]*","Value":1\}`)
	if i < 0 || !one.MatchString(stdout[i:]) {
		t.Errorf("aegis.cdc.malformed: want 1 for dz:\n%.1500s", stdout[max(i, 0):])
	}
	cs, nbad := changes(t, filepath.Join(dir, "out.jsonl"))
	if got := strings.Join(opKeysAfter(cs), " "); got != "c:1 c:2 c:3 c:4" || nbad != 0 {
		t.Errorf("changes %s (%d bad lines), want c:1 c:2 c:3 c:4", got, nbad)
	}
	dead := readLines(t, filepath.Join(dir, "bad.jsonl"))
	if len(dead) != 1 {
		t.Fatalf("dead letters: %d, want 1:\n%s", len(dead), strings.Join(dead, "\n"))
	}
	var e engine.Event
	if err := json.Unmarshal([]byte(dead[0]), &e); err != nil {
		t.Fatal(err)
	}
	raw, _ := e.Data.AsBytes()
	if e.Type != engine.UndecodableType || string(raw) != bad || e.Metadata["aegis.error.line"] != "3" ||
		e.Metadata["aegis.error.input"] != "changes.jsonl" || e.Metadata[engine.MetaError] == "" {
		t.Errorf("dead letter: %s", dead[0])
	}
}

// opKeysAfter are the op and after.id of changes, as "c:4".
func opKeysAfter(cs []change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s:%v", c.Op, c.After["id"])
	}
	return out
}

// TestRunDebeziumHTTP POSTs envelopes with curl to a debezium endpoint:
// each request is answered once its changes are written, and they reach
// the file sink.
func TestRunDebeziumHTTP(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is missing: go tool task deps installs it")
	}
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := writeFile(t, dir, "m.yaml", fmt.Sprintf(`apiVersion: aegis/v1
sources:
  dz: {type: debezium, listen: %q}
sinks:
  out: {type: file, path: out.jsonl, format: data}
pipelines:
  - {name: a, from: dz, batch: {max_wait: 5ms}, to: [out]}
`, addr))
	out := filepath.Join(dir, "out.jsonl")
	r := startCLI(t, "run", "-f", m)
	post := func(body string) (int, string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), curl, "-sS", "--retry", "20", "--retry-connrefused", "--retry-delay", "0",
			"-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json", "--data-binary", "@-", "http://"+addr+"/")
		cmd.Stdin = strings.NewReader(body)
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl: %v; stderr of the run:\n%s", err, r.stderr.String())
		}
		code, _ := strconv.Atoi(string(b))
		return code, string(b)
	}
	for i := 1; i <= 3; i++ {
		body := envelope(2*i-1, "paid") + "\n" + envelope(2*i, "paid") + "\n"
		code, _ := post(body)
		if code/100 != 2 {
			t.Fatalf("POST %d: HTTP %d; stderr:\n%s", i, code, r.stderr.String())
		}
		// Answered after the ack: the changes are in the file already
		// (the sink flushes each batch before the pipeline acknowledges).
		if cs, _ := changes(t, out); len(cs) != 2*i {
			b, _ := os.ReadFile(out)
			t.Fatalf("after POST %d answered: %d changes in the sink, want %d:\n%s", i, len(cs), 2*i, b)
		}
	}
	r.stop(t)
	cs, _ := changes(t, out)
	if got := strings.Join(opKeysAfter(cs), " "); got != "c:1 c:2 c:3 c:4 c:5 c:6" {
		t.Errorf("changes %s, want c:1 ... c:6", got)
	}
}
