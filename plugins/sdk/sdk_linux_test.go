package sdk_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/internal/plugintest"
	"github.com/aegis-streaming/aegis/plugins/internal/shared"
)

// TestWatchdog kills a connector's parent with SIGKILL: the connector
// exits on its own.
func TestWatchdog(t *testing.T) {
	bin := plugintest.Path(t, "connectors/source")
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// The parent: a shell that starts the connector and waits. Files for
	// its output, so that no pipe outlives it.
	sh := exec.Command("sh", "-c", `"$0" & echo $! > "$1"; wait`, bin, pidFile)
	sh.Env = append(os.Environ(), shared.MagicCookieKey+"="+shared.MagicCookieValue)
	sh.Stdout, sh.Stderr = out, out
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	eventually(t, "the connector's pid", func() bool {
		b, _ := os.ReadFile(pidFile)
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	// Serving: it printed go-plugin's handshake line.
	eventually(t, "the handshake line", func() bool {
		b, _ := os.ReadFile(out.Name())
		return bytes.Contains(b, []byte("|grpc|"))
	})
	if err := sh.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	sh.Wait()
	killed := time.Now()
	eventually(t, "the connector to exit", func() bool { return !alive(pid) })
	t.Logf("the connector exited %v after its parent", time.Since(killed))
}

// alive reports whether a process runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) state ...
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
