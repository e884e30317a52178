package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configure an embedded server; see [Start].
type Options struct {
	// StoreDir is the directory of the JetStream file store; required. It is
	// created when missing. The server keeps its data in StoreDir/jetstream.
	StoreDir string
	// Listen, when not empty, is a "host:port" the server accepts NATS
	// clients on (port 0 picks a free one; see [Server.ClientURL]). Empty (the
	// default): no listening socket at all, only the in-process connection.
	Listen string
	// MaxStore caps the bytes the file store may hold. A publish beyond it
	// fails cleanly with [ErrStoreFull]. 0 (the default) is half the space
	// free on StoreDir's file system when the server starts: a real full
	// disk does not fail cleanly (publishes time out and the stream stays
	// broken until a restart), so the quota must be reached first, with room
	// left for the store's own indexes and everything else on the disk.
	// Negative: no limit but the server's own (75% of free space).
	MaxStore int64
	// MaxMemory caps memory-backed streams, in bytes; 0: 64 MiB. This
	// package creates file-backed streams only.
	MaxMemory int64
	// SyncAlways makes the store fsync every write. Without it (the default)
	// a process crash loses nothing acknowledged, but an OS crash or power
	// loss may lose up to the last two minutes (the server's sync interval).
	// It costs about 90% of publish throughput.
	SyncAlways bool
	// Logger receives the server's log lines (component=nats-server);
	// nil discards them (warnings about a damaged store are still kept in
	// [Server.StoreReport]).
	Logger *slog.Logger
	// StartTimeout bounds how long Start waits for the server to be ready;
	// 0: 10 s. The context given to Start bounds it too.
	StartTimeout time.Duration
	// ServerName names the server in logs and cluster info; "" is "aegis".
	ServerName string
	// AsyncWindow is the number of asynchronous publishes that may await
	// their acknowledgement at once; 0: 4096.
	AsyncWindow int
}

// Server is an embedded nats-server with JetStream enabled. It is safe for
// concurrent use.
type Server struct {
	opts   Options
	ns     *server.Server
	log    *serverLog
	conn   *Conn
	onDisk []string // stream directories found before start
	lost   []string // of those, the ones the server did not load
}

// StoreReport says what the embedded server found wrong with its store.
// The server starts even from a damaged store, recovering what it can and
// only logging warnings: a stream whose metadata is damaged disappears, and
// damaged message blocks lose messages. A caller that knows which channels
// must exist refuses to go on when Err is not nil (or checks them with
// [Conn.CheckChannels]).
type StoreReport struct {
	// Dir is the store directory.
	Dir string
	// Streams is the number of stream directories present before start.
	Streams int
	// Lost lists the streams present on disk before start that the server
	// did not load (channel names when they decode, stream names otherwise).
	Lost []string
	// Warnings are the server's log lines about damaged or unwritable store
	// files since start ("corrupt", "checksum", "Critical write error", ...).
	Warnings []string
}

// Err is nil for a healthy store; otherwise it wraps [ErrDamagedStore] and
// names the lost streams and the first warning.
func (r StoreReport) Err() error {
	if len(r.Lost) == 0 && len(r.Warnings) == 0 {
		return nil
	}
	var parts []string
	if len(r.Lost) > 0 {
		parts = append(parts, fmt.Sprintf("%d stream(s) on disk not loaded: %s", len(r.Lost), strings.Join(r.Lost, ", ")))
	}
	if len(r.Warnings) > 0 {
		parts = append(parts, fmt.Sprintf("%d warning(s), first: %s", len(r.Warnings), r.Warnings[0]))
	}
	return fmt.Errorf("store[%s]: %w: %s", r.Dir, ErrDamagedStore, strings.Join(parts, "; "))
}

// Start starts an embedded server with its file store in opts.StoreDir and
// connects to it in-process. It fails, naming the directory, when the store
// cannot be used (not a directory, read-only, ...) rather than running
// without JetStream. A damaged store does not fail Start; see
// [Server.StoreReport].
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("jetstream: store directory is required")
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 10 * time.Second
	}
	if opts.ServerName == "" {
		opts.ServerName = "aegis"
	}
	if opts.MaxMemory <= 0 {
		opts.MaxMemory = 64 << 20
	}
	dir, err := filepath.Abs(opts.StoreDir)
	if err != nil {
		return nil, fmt.Errorf("store[%s]: %w", opts.StoreDir, err)
	}
	opts.StoreDir = dir
	so := &server.Options{
		ServerName:         opts.ServerName,
		JetStream:          true,
		StoreDir:           dir,
		JetStreamMaxMemory: opts.MaxMemory,
		SyncAlways:         opts.SyncAlways,
		NoSigs:             true,
		NoSystemAccount:    false,
		DontListen:         opts.Listen == "",
	}
	switch {
	case opts.MaxStore > 0:
		so.JetStreamMaxStore = opts.MaxStore
	case opts.MaxStore == 0:
		if free, err := freeBytes(existingAncestor(dir)); err == nil && free > 0 {
			so.JetStreamMaxStore = int64(free / 2)
		}
	}
	if opts.Listen != "" {
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen[%s]: %w", opts.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("listen[%s]: bad port: %w", opts.Listen, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		so.Host, so.Port = host, p
	}
	onDisk := streamDirs(dir)

	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("store[%s]: nats server: %w", dir, err)
	}
	sl := newServerLog(opts.Logger)
	ns.SetLoggerV2(sl, false, false, false)
	go ns.Start()

	ready := make(chan bool, 1)
	go func() { ready <- ns.ReadyForConnections(opts.StartTimeout) }()
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	fail := func(err error) (*Server, error) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("store[%s]: %w", dir, err)
	}
	select {
	case err := <-sl.fatal:
		return fail(err)
	case ok := <-ready:
		if !ok {
			// A fatal error may race with the readiness timeout.
			select {
			case err := <-sl.fatal:
				return fail(err)
			default:
			}
			return fail(fmt.Errorf("server not ready within %v", opts.StartTimeout))
		}
		if !ns.JetStreamEnabled() {
			return fail(errors.New("jetstream did not start"))
		}
	case <-ctx.Done():
		return fail(fmt.Errorf("server start: %w", ctx.Err()))
	}

	s := &Server{opts: opts, ns: ns, log: sl, onDisk: onDisk}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name(opts.ServerName+"-inprocess"),
		nats.MaxReconnects(-1), nats.NoCallbacksAfterClientClose())
	if err != nil {
		return fail(fmt.Errorf("in-process connection: %w", err))
	}
	c, err := newConn(nc, sl.l, opts.AsyncWindow, 1)
	if err != nil {
		nc.Close()
		return fail(err)
	}
	s.conn = c
	if err := s.findLost(ctx); err != nil {
		nc.Close()
		return fail(err)
	}
	for _, w := range s.StoreReport().Lost {
		sl.l.Warn("stream on disk was not loaded", "stream", w, "dir", dir)
	}
	return s, nil
}

// findLost compares the stream directories found before start with the
// streams the server loaded.
func (s *Server) findLost(ctx context.Context) error {
	if len(s.onDisk) == 0 {
		return nil
	}
	loaded := map[string]bool{}
	names := s.conn.js.StreamNames(ctx)
	for n := range names.Name() {
		loaded[n] = true
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	for _, n := range s.onDisk {
		if loaded[n] {
			continue
		}
		if ch, err := ChannelName(n); err == nil {
			n = ch
		}
		s.lost = append(s.lost, n)
	}
	return nil
}

// Conn is the in-process connection to the server. It stays valid until
// [Server.Shutdown].
func (s *Server) Conn() *Conn { return s.conn }

// StoreDir is the absolute store directory.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// ClientURL is the URL other processes reach the server at, or "" when it
// does not listen (the default).
func (s *Server) ClientURL() string {
	if s.opts.Listen == "" {
		return ""
	}
	return s.ns.ClientURL()
}

// StoreReport returns what the server reported wrong with its store since
// it started; see [StoreReport].
func (s *Server) StoreReport() StoreReport {
	return StoreReport{
		Dir:      s.opts.StoreDir,
		Streams:  len(s.onDisk),
		Lost:     slices.Clone(s.lost),
		Warnings: s.log.warnings(),
	}
}

// Shutdown closes the in-process connection (flushing what it has sent) and
// stops the server, waiting at most until ctx is done. It is safe to call
// more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.conn.close(ctx)
	done := make(chan struct{})
	go func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("store[%s]: shutdown: %w", s.opts.StoreDir, ctx.Err())
	}
}

// streamDirs lists the stream directories of the global account under dir.
func streamDirs(dir string) []string {
	ents, err := os.ReadDir(filepath.Join(dir, "jetstream", "$G", "streams"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// existingAncestor is dir or its nearest existing parent.
func existingAncestor(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

// serverLog is the server's logger: lines go to a slog.Logger; Fatalf is
// kept (the server's own would exit the process); store damage is recorded.
type serverLog struct {
	l     *slog.Logger
	fatal chan error

	mu      sync.Mutex
	damaged []string
}

func newServerLog(l *slog.Logger) *serverLog {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &serverLog{l: l.With("component", "nats-server"), fatal: make(chan error, 1)}
}

// damageWords mark server warnings about the store's files.
var damageWords = []string{"corrupt", "checksum", "critical write", "rebuild", "metafile", "filestore", "no space left"}

func (s *serverLog) record(msg string) {
	low := strings.ToLower(msg)
	for _, w := range damageWords {
		if strings.Contains(low, w) {
			s.mu.Lock()
			if len(s.damaged) < 1000 {
				s.damaged = append(s.damaged, msg)
			}
			s.mu.Unlock()
			return
		}
	}
}

func (s *serverLog) warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.damaged)
}

func (s *serverLog) Noticef(f string, v ...any) { s.l.Info(fmt.Sprintf(f, v...)) }
func (s *serverLog) Debugf(f string, v ...any)  { s.l.Debug(fmt.Sprintf(f, v...)) }
func (s *serverLog) Tracef(string, ...any)      {}

func (s *serverLog) Warnf(f string, v ...any) {
	m := fmt.Sprintf(f, v...)
	s.l.Warn(m)
	s.record(m)
}

func (s *serverLog) Errorf(f string, v ...any) {
	m := fmt.Sprintf(f, v...)
	s.l.Error(m)
	s.record(m)
}

func (s *serverLog) Fatalf(f string, v ...any) {
	err := fmt.Errorf(f, v...)
	s.l.Error(err.Error(), "fatal", true)
	select {
	case s.fatal <- err:
	default:
	}
}

// InProcessConnProvider lets another client connect to the embedded server
// in-process (nats.InProcessServer), as benchmarks against raw nats.go do.
func (s *Server) InProcessConnProvider() nats.InProcessConnProvider { return s.ns }
