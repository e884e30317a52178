package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helpers for the tests that run the built binary as a subprocess, to kill
// it mid-run as no in-process test can.

// buildHost builds the binary into a temporary directory and returns its
// path. With -short it skips the test instead; what says what the test does
// that is too long for -short.
func buildHost(t *testing.T, what string) string {
	t.Helper()
	if testing.Short() {
		t.Skip(what + "; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), appName)
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// hostRun is one run of the built binary.
type hostRun struct {
	cmd    *exec.Cmd
	stderr strings.Builder // read it only once the run has ended
}

// startRun starts bin's run of the manifest m. A run still going when the
// test ends is killed.
func startRun(t *testing.T, bin, m string) *hostRun {
	t.Helper()
	r := &hostRun{cmd: exec.Command(bin, "run", "-f", m)}
	r.cmd.Stderr = &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	})
	return r
}

// wait waits for the run to end.
func (r *hostRun) wait() error { return r.cmd.Wait() }

// signal sends sig to the run.
func (r *hostRun) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// kill kills the run with SIGKILL, as kill -9 does, and waits for it.
func (r *hostRun) kill(t *testing.T) {
	t.Helper()
	r.signal(t, syscall.SIGKILL)
	r.cmd.Wait()
}

// waitLines waits until the file at path has n lines or more, while the run
// writes it. After d it kills the run and fails the test with the run's
// stderr. It counts lines, not events: decoding is slow under the race
// detector.
func (r *hostRun) waitLines(t *testing.T, path string, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if b, _ := os.ReadFile(path); bytes.Count(b, []byte("\n")) >= n {
			return
		}
		if time.Now().After(deadline) {
			r.cmd.Process.Kill()
			r.cmd.Wait()
			t.Fatalf("%s did not reach %d lines; stderr:\n%s", filepath.Base(path), n, r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
