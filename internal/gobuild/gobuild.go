// Package gobuild builds Go plugins: main packages using the SDK, compiled
// for GOOS=wasip1 GOARCH=wasm as WASI reactors.
package gobuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Flags are the flags Build passes to go build: a WASI reactor
// (c-shared, so the runtime starts in _initialize and exports stay
// callable), without paths of the build machine or debug information.
var Flags = []string{"-buildmode=c-shared", "-trimpath", "-ldflags=-s -w"}

// Build builds the Go plugin (a main package using the SDK) in dir into
// the module out, with the go command on PATH, for GOOS=wasip1
// GOARCH=wasm. The compiler's output is in the error.
func Build(ctx context.Context, dir, out string) error {
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	args := append([]string{"build"}, Flags...)
	args = append(args, "-o", absOut, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build of %s: %w\n%s", dir, err, bytes.TrimSpace(outb.Bytes()))
	}
	return nil
}
