package plugins_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/aegis-streaming/aegis/internal/plugintest"
	"github.com/aegis-streaming/aegis/plugins"
	"github.com/aegis-streaming/aegis/plugins/internal/pb"
	"github.com/aegis-streaming/aegis/plugins/internal/shared"
)

// fakeVersion, in the environment, makes the test binary a connector that
// speaks only that protocol version.
const fakeVersion = "AEGIS_TEST_CONNECTOR_VERSION"

func TestMain(m *testing.M) {
	if v := os.Getenv(fakeVersion); v != "" && os.Getenv(shared.MagicCookieKey) != "" {
		var version int
		fmt.Sscan(v, &version)
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: shared.Handshake,
			VersionedPlugins: map[int]plugin.PluginSet{
				version: {shared.SourceName: &shared.SourcePlugin{Impl: pb.UnimplementedSourceServer{}}},
			},
			GRPCServer: plugin.DefaultGRPCServer,
		})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestProtocolVersion(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeVersion, "2")
	cfg := sourceConfig(t, nil)
	cfg.Path = exe
	_, err = plugins.NewSource(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "connector[numbers]: start ") || !strings.Contains(err.Error(), "Plugin version: 2, Client versions: [1]") {
		t.Fatalf("err %v, want the versions named", err)
	}
}

// pidsOf returns the processes running the executable path, a copy of a
// connector in a directory of its own.
func pidsOf(path string) []int { return plugintest.Processes(filepath.Dir(path)) }

func TestSourceKilledFromOutside(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		t.Skip("needs /proc")
	}
	exe := copyConnector(t, "source")
	cfg := sourceConfig(t, map[string]any{"count": 6000, "rate": 6000})
	cfg.Path = exe
	src, err := plugins.NewSource(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := &collect{}
	killed := false
	if err := run(t, src, got, func() bool {
		if !killed && got.len() >= 2000 {
			killed = true
			for _, pid := range pidsOf(exe) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	got.exactly(t, 0, 6000)
	if r := src.Restarts(); r != 1 {
		t.Errorf("%d restarts, want 1", r)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(pidsOf(exe)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes %v outlived Close", pidsOf(exe))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// copyConnector copies a test connector, so that its processes are the
// test's alone, and returns the copy.
func copyConnector(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(plugintest.Path(t, "connectors/"+name))
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestSourceFrozen(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		t.Skip("needs /proc")
	}
	// A connector stopped (SIGSTOP) answers nothing, not even go-plugin's
	// shutdown: it is killed and restarted all the same.
	exe := copyConnector(t, "source")
	cfg := sourceConfig(t, map[string]any{"count": 4000, "rate": 8000})
	cfg.Path, cfg.Timeout = exe, 500*time.Millisecond
	src, err := plugins.NewSource(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := &collect{}
	stopped := false
	if err := run(t, src, got, func() bool {
		if !stopped && got.len() >= 1000 {
			stopped = true
			for _, pid := range pidsOf(exe) {
				syscall.Kill(pid, syscall.SIGSTOP)
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	got.exactly(t, 0, 4000)
	if r := src.Restarts(); r != 1 {
		t.Errorf("%d restarts, want 1", r)
	}
	start := time.Now()
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
}

func TestSourceReadAfterClose(t *testing.T) {
	t.Parallel()
	src, err := plugins.NewSource(t.Context(), sourceConfig(t, map[string]any{}))
	if err != nil {
		t.Fatal(err)
	}
	if evs, err := src.Read(t.Context(), nil, 10); err != nil || len(evs) == 0 {
		t.Fatalf("Read: %d events, %v", len(evs), err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	// Read after Close says so, without waiting.
	for range 3 {
		if _, err := src.Read(t.Context(), nil, 10); err == nil || !strings.Contains(err.Error(), "connector[numbers]: closed") {
			t.Fatalf("Read after Close: %v", err)
		}
	}
}

func TestSinkExitedBeforeClose(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		t.Skip("needs /proc")
	}
	// A sink that dies between writes: Close says that what it held may
	// be lost.
	exe := copyConnector(t, "sink")
	cfg := sinkConfig(t, map[string]any{"path": filepath.Join(t.TempDir(), "out.jsonl")})
	cfg.Path = exe
	s, err := plugins.NewSink(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), numbers(0, 10)); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pidsOf(exe) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	time.Sleep(200 * time.Millisecond)
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "connector[out]: the connector exited before it was stopped") {
		t.Fatalf("Close: %v", err)
	}
}
