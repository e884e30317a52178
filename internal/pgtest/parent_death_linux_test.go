package pgtest_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// childEnv, set to a directory, makes the test binary a child that starts
// a server there, opens a connection, prints "ready BACKEND_PID" and waits
// to be killed.
const childEnv = "AEGIS_PGTEST_CHILD"

func child(dir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := pgtest.Start(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Stop()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ready %d\n", backend)
	<-ctx.Done()
	return 1
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestParentDeath kills (SIGKILL) a test process that runs a server: the
// postmaster and its backends must not outlive it.
func TestParentDeath(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "aegis-pgtest-child")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	var backend int
	select {
	case s := <-line:
		if _, err := fmt.Sscanf(s, "ready %d", &backend); err != nil {
			t.Fatalf("child said %q: %v", s, err)
		}
	case <-ctx.Done():
		t.Fatal("child not ready")
	}
	pidFile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	postmaster, err := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	procs := map[string]int{"postmaster": postmaster, "backend": backend}
	for name, pid := range procs {
		if !alive(pid) {
			t.Fatalf("%s %d not running before the kill", name, pid)
		}
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for name, pid := range procs {
		for alive(pid) {
			select {
			case <-ctx.Done():
				_ = syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("%s %d outlived the test process", name, pid)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}
