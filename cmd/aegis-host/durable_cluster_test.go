package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/internal/jstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRunPersistentChannelCluster runs the built binary with persistent
// channels on an external 3-node NATS cluster (nats.urls): the events
// arrive, the channel's stream has 3 replicas, and a cluster that is not
// reachable fails the start with an error that names its URLs.
func TestRunPersistentChannelCluster(t *testing.T) {
	bin := buildHost(t, "builds the binary and starts a NATS cluster")
	// run runs the binary; its stdout is empty (the sink is a file), so
	// stderr has it too, to show everything when something fails.
	run := func(t *testing.T, manifest string) (code int, stderr string, took time.Duration) {
		t.Helper()
		var errb bytes.Buffer
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "run", "-f", manifest)
		cmd.Stdout, cmd.Stderr = &errb, &errb
		start := time.Now()
		err := cmd.Run()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatalf("running %s: %v", bin, err)
		}
		return cmd.ProcessState.ExitCode(), errb.String(), time.Since(start)
	}
	// persistentWriter with its store on the cluster and 3 replicas of x.
	manifest := func(urls []string) string {
		return strings.Replace(persistentWriter, "  x: {persistent: true}\n",
			fmt.Sprintf("  x: {persistent: true, replicas: 3}\nnats:\n  urls: [%s]\n", strings.Join(urls, ", ")), 1)
	}

	t.Run("events arrive", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		c, err := jstest.Start(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		dir := t.TempDir()
		file := writeFile(t, dir, "writer.yaml", manifest(c.URLs()))
		code, stderr, took := run(t, file)
		if code != exitOK {
			t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
		}
		t.Logf("run took %v", took.Round(time.Millisecond))
		checkEvents(t, filepath.Join(dir, "out.jsonl"), persistentWant(), true)
		if s := pipelineSummary(t, stderr, "b"); s.in != 750 || s.out != 750 {
			t.Errorf("summary: %s", s.text)
		}

		// The channel is a stream of the cluster, on all three nodes.
		nc, err := nats.Connect(strings.Join(c.URLs(), ","))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		streams := js.ListStreams(ctx)
		for si := range streams.Info() {
			if si.Config.Metadata["aegis_channel"] != "x" {
				continue
			}
			found = true
			if si.Config.Replicas != 3 || si.Cluster == nil || len(si.Cluster.Replicas) != 2 || si.State.Msgs != 750 {
				t.Errorf("stream %s: %d replicas (%+v), %d messages; want 3 and 750", si.Config.Name, si.Config.Replicas, si.Cluster, si.State.Msgs)
			}
		}
		if err := streams.Err(); err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Fatal("no stream holds channel x on the cluster")
		}

		// Again: the generator's events are duplicates, and b resumes
		// after what it acknowledged on the cluster.
		code, stderr, _ = run(t, file)
		if code != exitOK {
			t.Fatalf("second run: exit code %d; stderr:\n%s", code, stderr)
		}
		if s := pipelineSummary(t, stderr, "b"); s.in != 0 || s.out != 0 {
			t.Errorf("second run: %s, want nothing in or out", s.text)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		ports, err := jstest.FreePorts(2)
		if err != nil {
			t.Fatal(err)
		}
		urls := []string{fmt.Sprintf("nats://127.0.0.1:%d", ports[0]), fmt.Sprintf("nats://127.0.0.1:%d", ports[1])}
		dir := t.TempDir()
		file := writeFile(t, dir, "writer.yaml", manifest(urls))
		code, stderr, took := run(t, file)
		if code == exitOK {
			t.Fatalf("exit code 0 without a cluster; stderr:\n%s", stderr)
		}
		t.Logf("failed after %v: %s", took.Round(time.Millisecond), strings.TrimSpace(stderr))
		for _, w := range append(urls, file, "persistent channels", "no server reachable") {
			if !strings.Contains(stderr, w) {
				t.Errorf("stderr lacks %q:\n%s", w, stderr)
			}
		}
		if took > 30*time.Second {
			t.Errorf("failing took %v", took)
		}
	})
}
