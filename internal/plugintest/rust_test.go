package plugintest

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRustPlugins builds the Rust test plugins, which are valid modules.
func TestRustPlugins(t *testing.T) {
	for _, name := range []string{"rust/orders_filter", "rust/orders_map", "rust/orders_aggregate"} {
		if b := Bytes(t, name); !bytes.HasPrefix(b, []byte("\x00asm\x01\x00\x00\x00")) {
			t.Errorf("%s: not a WebAssembly module", name)
		}
	}
}

// TestRustSDK runs the Rust SDK's own tests (sdk/rust/tests: the ABI's
// golden vectors, the JSON helpers) natively, with rustc and no cargo.
func TestRustSDK(t *testing.T) {
	if _, err := rustTool(""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sdk := filepath.Join(Root(t), "sdk", "rust")
	compile := func(args ...string) {
		t.Helper()
		cmd := exec.Command(rustc, append([]string{"--edition", "2021", "-L", dir}, args...)...)
		cmd.Dir = sdk
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rustc %q: %v\n%s", args, err, msg)
		}
	}
	compile("--crate-type", "rlib", "--crate-name", "aegis_sdk", filepath.Join("src", "lib.rs"), "-o", filepath.Join(dir, "libaegis_sdk.rlib"))
	tests, _ := filepath.Glob(filepath.Join(sdk, "tests", "*.rs"))
	if len(tests) == 0 {
		t.Fatal("no tests in sdk/rust/tests")
	}
	for _, f := range tests {
		bin := filepath.Join(dir, filepath.Base(f)+".test")
		compile("--test", "--extern", "aegis_sdk="+filepath.Join(dir, "libaegis_sdk.rlib"), f, "-o", bin)
		if out, err := exec.Command(bin).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", filepath.Base(f), err, out)
		}
	}
}
