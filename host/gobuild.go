package host

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// GoBuildFlags are the flags BuildGo passes to go build: a WASI reactor
// (c-shared, so the runtime starts in _initialize and exports stay
// callable), without paths of the build machine or debug information.
var GoBuildFlags = []string{"-buildmode=c-shared", "-trimpath", "-ldflags=-s -w"}

// BuildGo builds the Go plugin (a main package using the SDK) in dir into
// the module out, with the go command on PATH, for GOOS=wasip1
// GOARCH=wasm. The compiler's output is in the error.
func BuildGo(ctx context.Context, dir, out string) error {
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	args := append([]string{"build"}, GoBuildFlags...)
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
