// Package pgtest starts a PostgreSQL 15 server for tests, on a loopback
// port, with its data directory in a directory the caller owns.
//
// The server is a child process of the Debian package's binaries (in
// [BinDir]; "go tool task deps" installs them), configured for logical
// replication (wal_level=logical) and for speed over durability (no
// fsync). A process rather than a mock because the CDC source speaks the
// replication protocol to a real server, and killing the postmaster with
// SIGKILL is a real crash. On Linux a server that outlives a test panic is
// killed by the parent-death signal.
//
// A package's tests share one server, started in TestMain (see [Main]),
// and each test creates a database of its own ([Server.CreateDatabase]):
// replication slots and publications belong to a database, so tests do
// not see each other's.
//
// PostgreSQL refuses to run as root. When the test process is root, initdb
// and the server run as the postgres user (the credentials of the child
// process, no runuser in between: the parent-death signal then reaches the
// postmaster itself), the data directory is owned by that user, and the
// caller's directory is given search permission for others (o+x) so that
// the postgres user can reach the data directory inside it. Its parents
// must already allow that: a directory from [os.MkdirTemp] does (the
// system's temporary directory is searchable by all), the directory of
// [testing.T.TempDir] does not (its parent is private to root).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// BinDir is where Debian's postgresql-15 package installs the server's
// binaries.
const BinDir = "/usr/lib/postgresql/15/bin"

// readyTimeout bounds the wait for a started server to accept
// connections; crash recovery after [Server.Kill] is within it.
const readyTimeout = 30 * time.Second

// stopTimeout is how long [Server.Stop] waits for a fast shutdown before
// it kills the server.
const stopTimeout = 10 * time.Second

// Server is a running (or stopped) server. DSN, CreateDatabase and Exec
// may be called from any goroutine; Stop, Restart and Kill are meant for
// one at a time.
type Server struct {
	dataDir string
	logPath string
	port    int
	cred    *syscall.Credential // nil unless the test process is root

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has ended
}

// Available reports why PostgreSQL 15 cannot be started here, or nil:
// its binaries are missing, or the test process is root and there is no
// postgres user to run them as.
func Available() error {
	for _, bin := range []string{"initdb", "postgres"} {
		p := filepath.Join(BinDir, bin)
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("postgresql 15 is not installed (no %s): run \"go tool task deps\"", p)
		}
	}
	if os.Geteuid() == 0 {
		if _, err := credential(); err != nil {
			return err
		}
	}
	return nil
}

// credential is the postgres user's uid and gid, without supplementary
// groups.
func credential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user[postgres] uid[%s]: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user[postgres] gid[%s]: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Main runs a package's tests against one server: it starts the server in
// a new temporary directory, sets *srv to it, runs m, then stops the
// server and removes the directory. It returns the exit code for
// [os.Exit]:
//
//	var pg *pgtest.Server
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }
//
// When the server cannot start (PostgreSQL missing: see [Available]) Main
// says why on stderr and returns 1 without running the tests: they fail,
// they do not skip.
func Main(m *testing.M, srv **Server) int {
	if err := Available(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "aegis-pgtest")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*readyTimeout)
	defer cancel()
	s, err := Start(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	defer s.Stop()
	*srv = s
	return m.Run()
}

// Start creates a database cluster in dir/data (initdb), starts a server
// on it listening on 127.0.0.1 at a free port, its log in
// dir/postgres.log, and waits until it accepts connections (at most 30 s,
// less if ctx ends first). dir is created if needed. On failure it stops
// what it started and the error ends with the end of the server's log.
func Start(ctx context.Context, dir string) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Server{dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "postgres.log")}
	// The server's unix socket is in the data directory: its path must
	// fit a sockaddr_un (108 bytes with the final NUL).
	if sock := filepath.Join(s.dataDir, ".s.PGSQL.65535"); len(sock) > 107 {
		return nil, fmt.Errorf("data directory[%s]: its socket path is %d bytes, more than 107: use a shorter directory", s.dataDir, len(sock))
	}
	if err := os.Mkdir(s.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if os.Geteuid() == 0 {
		if s.cred, err = credential(); err != nil {
			return nil, err
		}
		if err := reachable(dir); err != nil {
			return nil, err
		}
		if err := os.Chown(s.dataDir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
	}
	if err := s.initdb(ctx); err != nil {
		return nil, err
	}
	// A free port may be taken by someone else before the server binds
	// it: then try another.
	for attempt := 1; ; attempt++ {
		s.port, err = freePort()
		if err != nil {
			return nil, err
		}
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == 5 {
			return nil, err
		}
	}
}

// reachable gives dir search permission for others and checks that its
// parents have it, so that the postgres user can reach the data
// directory.
func reachable(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, st.Mode().Perm()|0o001); err != nil {
		return err
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("directory[%s] is not searchable by the postgres user (no o+x): use a directory from os.MkdirTemp", p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// initdb creates the database cluster.
func (s *Server) initdb(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(BinDir, "initdb"),
		"-D", s.dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
	s.prepare(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w; its output:\n%s", err, tail(out))
	}
	return nil
}

// prepare sets what every child process shares: the postgres user's
// credentials when root, a working directory it can read, no PG*
// variables from the environment, and the parent-death signal.
func (s *Server) prepare(cmd *exec.Cmd) {
	cmd.Dir = filepath.Dir(s.dataDir)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = sysProcAttr(s.cred)
}

var errPortInUse = errors.New("port in use")

// start starts the server on s.port and waits until it accepts
// connections.
func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		err := s.startOnce(ctx)
		if !errors.Is(err, errShmemInUse) {
			return err
		}
		// The backends of a killed postmaster notice its death and
		// exit within moments; until then they hold its shared memory.
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: backends of the previous server still running: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var errShmemInUse = errors.New("shared memory of a previous server in use")

func (s *Server) startOnce(ctx context.Context) error {
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	st, err := log.Stat()
	if err != nil {
		return err
	}
	from := st.Size() // where this run's log starts
	cmd := exec.Command(filepath.Join(BinDir, "postgres"),
		"-D", s.dataDir,
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.dataDir,
		"-c", "wal_level=logical",
		"-c", "max_replication_slots=32",
		"-c", "max_wal_senders=32",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = log, log
	s.prepare(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	dsn := s.DSN("postgres")
	var last error
	for {
		select {
		case <-exited:
			out := s.logSince(from)
			switch {
			case strings.Contains(out, "could not bind") || strings.Contains(out, "already in use"):
				return fmt.Errorf("postgres: port[%d]: %w; its log:\n%s", s.port, errPortInUse, out)
			case strings.Contains(out, "pre-existing shared memory block"):
				return errShmemInUse
			}
			return fmt.Errorf("postgres exited: %s; its log:\n%s", cmd.ProcessState, out)
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(cctx, dsn)
		cancel()
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			_ = s.kill()
			return fmt.Errorf("postgres not accepting connections: %w (last: %v); its log:\n%s", ctx.Err(), last, s.logSince(from))
		case <-exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// running reports whether the postmaster is running; s.mu is held.
func (s *Server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the postmaster and waits for it to end; s.mu is
// held.
func (s *Server) kill() error {
	if !s.running() {
		return nil
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill postgres: %w", err)
	}
	<-s.exited
	return nil
}

// Port is the server's TCP port on 127.0.0.1; it stays the same across
// restarts.
func (s *Server) Port() int { return s.port }

// DSN is the connection string of database db as the superuser postgres
// (no password: the server trusts every local connection). The name is
// escaped as a URL's path.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, url.PathEscape(db))
}

// CreateDatabase creates database name and returns its connection string.
// A name is for one test run: with go test -count=n a package's tests run
// n times against the same server, so a test that creates a database adds
// something unique to its name (a counter).
func (s *Server) CreateDatabase(ctx context.Context, name string) (dsn string, err error) {
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database[%s]: %w", name, err)
	}
	return s.DSN(name), nil
}

// Exec runs sql with args in database db, on a connection of its own.
func (s *Server) Exec(ctx context.Context, db, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		return fmt.Errorf("connect to database[%s]: %w", db, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("database[%s]: %w", db, err)
	}
	return nil
}

// Stop shuts the server down (a fast shutdown: SIGINT; clients are
// disconnected, open transactions rolled back) and waits for it; after
// 10 s it kills it. A server that is not running is left alone.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return nil
	}
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop postgres: %w", err)
	}
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
		_ = s.kill()
		return fmt.Errorf("stop postgres: no shutdown after %s, killed; its log:\n%s", stopTimeout, s.Log())
	}
}

// Kill crashes the server: SIGKILL of the postmaster, whose backends then
// exit on their own. It waits for the postmaster to end; [Server.Restart]
// starts it again, with crash recovery.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kill()
}

// Restart stops the server if it runs and starts it again on the same
// port and data, waiting as [Start] does.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start(ctx)
}

// Log returns the end of the server's log (all its runs).
func (s *Server) Log() string { return s.logSince(0) }

// logSince returns the end of the server's log after offset from.
func (s *Server) logSince(from int64) string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size()-from > tailSize {
		from = st.Size() - tailSize
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// tailSize is how much of a log an error shows.
const tailSize = 4096

func tail(b []byte) string {
	if len(b) > tailSize {
		b = b[len(b)-tailSize:]
	}
	return string(b)
}

// freePort reserves a loopback port and frees it again: a small race with
// other processes, which Start retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
