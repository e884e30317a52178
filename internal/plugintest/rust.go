package plugintest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// rustc is Debian's rustc, whose wasm32-wasi standard library comes in the
// package libstd-rust-dev-wasm32 and whose linker, rust-lld, in lld-14. It
// is named by its path: a rustup rustc earlier on PATH has no wasm32 std.
const rustc = "/usr/bin/rustc"

// rustTarget is the WASI preview 1 target, as rustc 1.63 names it
// (wasm32-wasip1 in later versions).
const rustTarget = "wasm32-wasi"

// rustFlags are the flags of every crate: a panic aborts, which is a trap
// for the host; bulk memory (part of WebAssembly 2.0, which ABI v1 allows)
// makes every copy one instruction instead of a loop in libc's memcpy.
var rustFlags = []string{"--edition", "2021", "--target", rustTarget, "-O", "-C", "panic=abort", "-C", "debuginfo=0",
	"-C", "target-feature=+bulk-memory"}

func init() {
	// "rust/orders_map": testplugins/rust/orders_map.rs, a cdylib built
	// with rustc alone (no cargo, no crates) against the Rust SDK in
	// sdk/rust.
	builders["rust"] = builder{sources: rustSources, tool: rustTool, build: rustBuild}
}

// rustSources: the plugin's file and every file of the SDK.
func rustSources(root, name string) ([]string, error) {
	sdk, err := sourceFiles(filepath.Join(root, "sdk", "rust", "src"), ".rs")
	return append([]string{filepath.Join(root, "testplugins", name+".rs")}, sdk...), err
}

func rustTool(string) (string, error) {
	const install = "Debian packages rustc, libstd-rust-dev-wasm32 and lld-14, installed by `go tool task deps`"
	v, err := exec.Command(rustc, "--version", "--verbose").Output()
	if err != nil {
		return "", fmt.Errorf("%s (%s): %w", rustc, install, err)
	}
	lib, err := exec.Command(rustc, "--print", "target-libdir", "--target", rustTarget).Output()
	if err == nil {
		_, err = os.Stat(strings.TrimSpace(string(lib)))
	}
	if err != nil {
		return "", fmt.Errorf("%s has no %s standard library (%s): %w", rustc, rustTarget, install, err)
	}
	// rust-lld is a link to lld-14: it exists only with the link's target.
	if _, err := os.Stat(filepath.Join(filepath.Dir(rustc), "rust-lld")); err != nil {
		return "", fmt.Errorf("rust-lld, %s's linker (%s): %w", rustc, install, err)
	}
	return fmt.Sprintf("%s%q\n", v, rustFlags), nil
}

// rustBuild builds the SDK as an rlib in a temporary directory, then the
// plugin as a cdylib against it.
func rustBuild(root, name, out string) error {
	dir, err := os.MkdirTemp("", "aegis-rust-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rlib := filepath.Join(dir, "libaegis_sdk.rlib")
	run := func(args ...string) error {
		cmd := exec.Command(rustc, append(append([]string{}, rustFlags...), args...)...)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("rustc: %w\n%s", err, msg)
		}
		return nil
	}
	if err := run("--crate-type", "rlib", "--crate-name", "aegis_sdk",
		filepath.Join("sdk", "rust", "src", "lib.rs"), "-o", rlib); err != nil {
		return err
	}
	return run("--crate-type", "cdylib", "-C", "strip=symbols", "--extern", "aegis_sdk="+rlib, "-L", dir,
		filepath.Join("testplugins", name+".rs"), "-o", out)
}
