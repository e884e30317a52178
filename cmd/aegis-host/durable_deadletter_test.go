package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/engine"
)

// publishJunk stores body as it is in persistent channel's stream of the
// store in dataDir, as another NATS client could: a message that is not an
// event.
func publishJunk(t *testing.T, dataDir, channel string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	e, err := engine.Open(ctx, engine.Config{Durable: &engine.DurableConfig{Dir: dataDir, Listen: "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ds, _ := e.DurableStore()
	nc, err := nats.Connect(ds.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The subject of a channel with a plain name.
	if _, err := js.Publish(ctx, "aegis.ch."+channel, body); err != nil {
		t.Fatal(err)
	}
}

// TestRunPersistentDeadLetterUndecodable: a message of a persistent channel
// that is not an event does not stop the pipeline that reads it: it goes
// to the pipeline's dead_letter channel, which another pipeline of the run
// reads into a file, and the run ends once it is there.
func TestRunPersistentDeadLetterUndecodable(t *testing.T) {
	dir := t.TempDir()
	writer := writeFile(t, dir, "writer.yaml", persistentWriter)
	if code, _, stderr := runCLI(t, "run", "-f", writer); code != exitOK {
		t.Fatalf("writer: exit code %d; stderr:\n%s", code, stderr)
	}
	junk := []byte("{not an event")
	publishJunk(t, filepath.Join(dir, ".aegis"), "x", junk)

	reader := writeFile(t, dir, "reader.yaml", `apiVersion: aegis/v1
channels:
  x: {persistent: true}
  dead: {persistent: true}
sinks:
  out: {type: file, path: read.jsonl}
  dead-out: {type: file, path: dead.jsonl}
pipelines:
  - name: c
    from: x
    delivery: {max_deliver: 3, ack_wait: 1s, dead_letter: dead}
    to: [out]
  - {name: d, from: dead, to: [dead-out]}
`)
	code, _, stderr := runCLI(t, "run", "-f", reader)
	if code != exitOK {
		t.Fatalf("reader: exit code %d; stderr:\n%s", code, stderr)
	}
	checkEvents(t, filepath.Join(dir, "read.jsonl"), persistentWant(), false)
	for _, w := range []string{"undecodable event terminated and sent to the dead-letter channel", "channel=x", "seq=751"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	dead := decodeEvents(t, readLines(t, filepath.Join(dir, "dead.jsonl")))
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1: %v", len(dead), dead)
	}
	b, _ := dead[0].Data.AsBytes()
	if dead[0].Type != engine.UndecodableType || !bytes.Equal(b, junk) || dead[0].Metadata[engine.MetaErrorChannel] != "x" ||
		dead[0].Metadata[engine.MetaErrorSeq] != "751" || !strings.HasPrefix(dead[0].Metadata[engine.MetaError], "undecodable event: ") {
		t.Errorf("dead letter %+v", dead[0])
	}

	// Terminated: the next run does not meet it again.
	if code, _, stderr = runCLI(t, "run", "-f", reader); code != exitOK {
		t.Fatalf("reader again: exit code %d; stderr:\n%s", code, stderr)
	}
	if s := pipelineSummary(t, stderr, "c"); s.in != 0 {
		t.Errorf("reader again: %s, want nothing in", s.text)
	}
	if strings.Contains(stderr, "undecodable") {
		t.Errorf("reader again met the undecodable message:\n%s", stderr)
	}
}

// TestRunPersistentDeadLetterKilled: with max_deliver 1, the events a run
// had fetched and not finished when it was killed with -9 exhaust their
// one delivery; the next run moves them to dead_letter (after their ack
// wait) while it processes the rest, and ends only once they are there:
// every event is written or dead-lettered, with why.
func TestRunPersistentDeadLetterKilled(t *testing.T) {
	bin := buildHost(t, "builds the binary and runs it for seconds")
	dir := t.TempDir()
	const total = 10000
	// generator -> a -> persistent x -> b -> out.jsonl, with b's dead
	// letters in persistent dead -> d -> dead.jsonl (both appended to).
	m := writeFile(t, dir, "m.yaml", fmt.Sprintf(`apiVersion: aegis/v1
channels:
  x: {persistent: true}
  dead: {persistent: true}
sources:
  orders: {type: generator, count: %d, rate: 5000, start: "2026-01-01T00:00:00Z", interval: 1ms}
sinks:
  out: {type: file, path: out.jsonl, append: true}
  dead-out: {type: file, path: dead.jsonl, append: true}
pipelines:
  - name: a
    from: orders
    steps:
      - name: drop-refunds
        filter: {not: {type: [order.refunded]}}
    to: [x]
  - name: b
    from: x
    delivery: {max_deliver: 1, ack_wait: 1s, dead_letter: dead}
    to: [out]
  - {name: d, from: dead, to: [dead-out]}
`, total))
	out, deadOut := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dead.jsonl")
	r := startRun(t, bin, m)
	r.waitLines(t, out, 2000, 60*time.Second)
	r.kill(t)

	r = startRun(t, bin, m)
	if err := r.wait(); err != nil {
		t.Fatalf("%v\n%s", err, r.stderr.String())
	}

	written, _, _ := eventCounts(t, out)
	deadIDs := map[engine.EventID]bool{}
	for _, l := range readLines(t, deadOut) {
		var e engine.Event
		if err := e.UnmarshalJSON([]byte(l)); err != nil {
			continue // cut by the kill
		}
		if !strings.Contains(e.Metadata[engine.MetaError], "max deliveries (1)") || e.Metadata[engine.MetaErrorChannel] != "x" ||
			e.Metadata[engine.MetaErrorDeliveries] != "1" || e.Metadata[engine.MetaErrorSeq] == "" {
			t.Fatalf("dead letter without why: %+v", e)
		}
		deadIDs[e.ID] = true
	}
	var lost, both int
	for _, e := range withoutRefunds(total) {
		switch {
		case written[e.ID] == 0 && !deadIDs[e.ID]:
			lost++
		case written[e.ID] > 0 && deadIDs[e.ID]:
			both++ // written, and killed before its acknowledgement
		}
	}
	if lost > 0 {
		t.Fatalf("%d events neither written nor dead-lettered", lost)
	}
	if len(deadIDs) == 0 {
		t.Fatal("no dead letter: the killed run had events in flight")
	}
	t.Logf("%d events dead-lettered (%d of them written before the kill), %d written", len(deadIDs), both, len(written))
}

func TestDeliveryOptionsDeadLetter(t *testing.T) {
	mp := &manifest.Pipeline{Name: "p", Delivery: &manifest.Delivery{MaxDeliver: 2, DeadLetter: "dead"}}
	o, err := deliveryOptions(mp)
	if err != nil || o.DeadLetter != "dead" || o.MaxDeliver != 2 {
		t.Errorf("options %+v, %v", o, err)
	}
	mp.Delivery = &manifest.Delivery{Mode: "at-most-once"}
	if _, err := deliveryOptions(mp); err == nil || !strings.Contains(err.Error(), "at-most-once") {
		t.Errorf("at-most-once: %v", err)
	}
}
