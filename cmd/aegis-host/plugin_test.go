package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

func TestPluginInspect(t *testing.T) {
	file := plugintest.Path(t, "wat/orders_filter")
	code, stdout, stderr := runCLI(t, "plugin", "inspect", file)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"abi      1.0", "kinds    filter", "aegis_filter(i32,i32)->(i64)", "aegis.log(i32,i32,i32)->()", "sha256   "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runCLI(t, "plugin", "inspect", "--json", plugintest.Path(t, "orders/map"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var info inspectJSON
	if err := json.Unmarshal([]byte(stdout), &info); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if info.ABIVersion != "1.0" || len(info.Kinds) != 1 || info.Kinds[0] != "map" || len(info.SHA256) != 64 || info.Size == 0 {
		t.Fatalf("inspect --json: %+v", info)
	}
}

func TestPluginInspectErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"wrong ABI version", []string{plugintest.Path(t, "wat/wrong_version")}, exitError, "unsupported ABI version: the module speaks ABI 2.0"},
		{"missing export", []string{plugintest.Path(t, "wat/missing_export")}, exitError, "missing export"},
		{"no such file", []string{filepath.Join(t.TempDir(), "nope.wasm")}, exitError, "no such file"},
		{"no file", nil, exitUsage, "inspect takes one FILE"},
		{"two files", []string{"a", "b"}, exitUsage, "inspect takes one FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append([]string{"plugin", "inspect"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}

func TestPluginBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go plugin")
	}
	out := filepath.Join(t.TempDir(), "filter.wasm")
	dir := filepath.Join(plugintest.Root(t), "testplugins", "orders", "filter")
	code, stdout, stderr := runCLI(t, "plugin", "build", dir, "-o", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "filter plugin, ABI 1.0") {
		t.Fatalf("stdout %q", stdout)
	}
	// The same sources and flags as the test build: the same module.
	built, _ := os.ReadFile(out)
	if string(built) != string(plugintest.Bytes(t, "orders/filter")) {
		t.Error("plugin build and the test build differ")
	}

	code, _, stderr = runCLI(t, "plugin", "build", dir)
	if code != exitUsage || !strings.Contains(stderr, "-o FILE") {
		t.Fatalf("without -o: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "plugin", "build", filepath.Join(t.TempDir(), "nothing"), "-o", out)
	if code != exitError || !strings.Contains(stderr, "go build of") {
		t.Fatalf("bad dir: exit %d, %q", code, stderr)
	}
}

func TestPluginRun(t *testing.T) {
	code, stdout, stderr := runCLI(t, "plugin", "run", "--orders", "8", "--batch", "3",
		plugintest.Path(t, "orders/filter"), plugintest.Path(t, "orders/map"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d events out, want 6:\n%s", len(lines), stdout)
	}
	for _, l := range lines {
		var e engine.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(e.Type), "ORDER.") || e.Type == "ORDER.REFUNDED" {
			t.Errorf("event type %s", e.Type)
		}
		var doc map[string]any
		if err := e.Data.Decode(&doc); err != nil || doc["region"] != "eu-west-1" || doc["amount_cents"] == nil {
			t.Errorf("event data %s", e.Data)
		}
	}
	if !strings.Contains(stderr, "8 events in, 6 out, 0 failed") {
		t.Errorf("summary: %s", stderr)
	}

	code, _, stderr = runCLI(t, "plugin", "run", "--orders", "1", plugintest.Path(t, "orders/aggregate"))
	if code != exitError || !strings.Contains(stderr, "run takes filters and maps") {
		t.Fatalf("aggregate: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "plugin", "run", "--orders", "4", plugintest.Path(t, "wat/trap"))
	if code != exitError || !strings.Contains(stderr, "trap") {
		t.Fatalf("trap: exit %d, %q", code, stderr)
	}
}

// TestPluginTest runs the conformance suite through the CLI: conforming
// plugins exit 0 with a line per check; a misbehaving one exits 1 and
// names the check it failed.
func TestPluginTest(t *testing.T) {
	good := []string{plugintest.Path(t, "wat/orders_filter"), plugintest.Path(t, "wat/orders_map")}
	code, stdout, stderr := runCLI(t, append([]string{"plugin", "test"}, good...)...)
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"ABI 1.0, kinds filter", "ABI 1.0, kinds map", "ok    filter: large event (1 MiB)", "ok    map: unicode", "all 11 checks passed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	trap := plugintest.Path(t, "wat/trap")
	code, stdout, stderr = runCLI(t, "plugin", "test", good[0], trap)
	if code != exitError {
		t.Fatalf("exit %d, want %d: %s\n%s", code, exitError, stdout, stderr)
	}
	if !strings.Contains(stdout, "FAIL  filter: orders batch") || !strings.Contains(stdout, "trap") {
		t.Errorf("output does not show the trap:\n%s", stdout)
	}
	if want := "1 of 2 plugins failed the conformance suite: " + trap; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}

	if code, _, stderr = runCLI(t, "plugin", "test"); code != exitUsage {
		t.Errorf("no FILE: exit %d, want %d: %s", code, exitUsage, stderr)
	}
}
