package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/aegis-streaming/aegis/plugins/internal/shared"
)

// proc is one run of a connector: its process and the client of the
// service it serves.
type proc[C any] struct {
	client *plugin.Client
	rpc    C
}

// supervisor runs a connector and starts it again when it crashes, hangs
// or misbehaves, with backoff, up to MaxRestarts times in a row.
type supervisor[C any] struct {
	cfg  *Config
	kind string // shared.SourceName or shared.SinkName
	// open configures and opens a connector just started, at a position
	// (a source's).
	open func(ctx context.Context, rpc C, pos []byte) error

	mu       sync.Mutex
	cur      *proc[C] // nil once closed
	failures int      // in a row, since the last call that succeeded
	restarts atomic.Uint64
	closed   bool
}

// errInvalid marks a response that breaks the protocol (events that are
// not valid): the connector is restarted.
type errInvalid struct{ err error }

func (e *errInvalid) Error() string { return e.err.Error() }
func (e *errInvalid) Unwrap() error { return e.err }

// start starts the connector and opens it. The first start's failures are
// the caller's: a connector that cannot start at all is not retried.
func (s *supervisor[C]) start(ctx context.Context, pos []byte) error {
	p, err := s.launch(ctx, pos)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cur = p
	s.mu.Unlock()
	return nil
}

// launch starts a process and opens its connector.
func (s *supervisor[C]) launch(ctx context.Context, pos []byte) (*proc[C], error) {
	if err := checkSHA256(s.cfg.Path, s.cfg.SHA256); err != nil {
		return nil, &permanent{err}
	}
	cmd := exec.Command(s.cfg.Path)
	cmd.Dir = s.cfg.Dir
	dieWithHost(cmd)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: shared.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			shared.ProtocolVersion: {shared.SourceName: &shared.SourcePlugin{}, shared.SinkName: &shared.SinkPlugin{}},
		},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     s.cfg.Timeout,
		Logger:           newHCLogger(s.cfg.Logger),
		Stderr:           &outputLog{log: s.cfg.Logger, stream: "stderr", hclog: true},
		SyncStdout:       &outputLog{log: s.cfg.Logger, stream: "stdout"},
		SyncStderr:       &outputLog{log: s.cfg.Logger, stream: "stderr"},
		Managed:          true,
	})
	p, err := s.dispense(client)
	if err == nil {
		octx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err = s.open(octx, p.rpc, pos)
		cancel()
		if err != nil {
			err = s.failure(octx, p, "open", err)
		}
	}
	if err != nil {
		client.Kill()
		return nil, err
	}
	return p, nil
}

func (s *supervisor[C]) dispense(client *plugin.Client) (*proc[C], error) {
	rpc, err := client.Client()
	if err != nil {
		// Not a connector, a protocol version this host does not speak, a
		// crash or a hang at start.
		return nil, &permanent{fmt.Errorf("start %s: %w", s.cfg.Path, err)}
	}
	raw, err := rpc.Dispense(s.kind)
	if err != nil {
		return nil, &permanent{fmt.Errorf("%s serves no %s: %w", s.cfg.Path, s.kind, err)}
	}
	c, ok := raw.(C)
	if !ok {
		return nil, &permanent{fmt.Errorf("%s serves no %s", s.cfg.Path, s.kind)}
	}
	return &proc[C]{client: client, rpc: c}, nil
}

// permanent is a failure that no restart mends: a bad executable, or a
// configuration the connector refuses.
type permanent struct{ err error }

func (e *permanent) Error() string { return e.err.Error() }
func (e *permanent) Unwrap() error { return e.err }

// failure says what went wrong with a call to p that returned err under
// ctx (which carries the call's deadline): a *permanent error, or an
// error for which the connector is to be restarted or the call retried.
func (s *supervisor[C]) failure(ctx context.Context, p *proc[C], op string, err error) error {
	var inv *errInvalid
	if errors.As(err, &inv) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// Whatever the error says (the server may have cancelled the call
		// at the deadline first), the call outlived its deadline.
		return fmt.Errorf("%s: no answer within %v: the connector hangs", op, s.cfg.Timeout)
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.InvalidArgument:
		return &permanent{fmt.Errorf("%s: the connector refused its configuration: %s", op, st.Message())}
	case codes.Unimplemented:
		return &permanent{fmt.Errorf("%s: %s serves no %s, or not this version of it (%s)", op, s.cfg.Path, s.kind, st.Message())}
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
	default:
		if !exited(p.client) {
			return &permanent{fmt.Errorf("%s: %s", op, st.Message())}
		}
	}
	if exited(p.client) {
		return fmt.Errorf("%s: the connector exited (%s)", op, st.Message())
	}
	return &retryable{fmt.Errorf("%s: %s", op, st.Message())}
}

// retryable is a failure worth the same call again without a restart: the
// connector answered UNAVAILABLE.
type retryable struct{ err error }

func (e *retryable) Error() string { return e.err.Error() }
func (e *retryable) Unwrap() error { return e.err }

// exited reports whether the connector's process has ended, waiting a
// little for the end of a process whose connection just broke.
func exited(c *plugin.Client) bool {
	for range 20 {
		if c.Exited() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// call runs f with the current connector under a deadline of wait plus
// the timeout, and deals with its failures: it restarts a connector that
// crashed, hung or misbehaved, retries a call the connector asked to have
// retried, and gives up after MaxRestarts failures in a row. It returns a
// permanent failure as is, and ctx's error once ctx is done. A restarted
// connector is opened at pos() (a source's position; nil for a sink).
func (s *supervisor[C]) call(ctx context.Context, op string, wait time.Duration, f func(ctx context.Context, rpc C) error, pos func() []byte) error {
	for {
		p, err := s.current()
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, wait+s.cfg.Timeout)
		err = f(cctx, p.rpc)
		if err == nil {
			cancel()
			s.mu.Lock()
			s.failures = 0
			s.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			cancel()
			return ctx.Err()
		}
		err = s.failure(cctx, p, op, err)
		cancel()
		if perm := (*permanent)(nil); errors.As(err, &perm) {
			return s.errorf("%w", perm.err)
		}
		if err := s.recover(ctx, p, err, pos); err != nil {
			return err
		}
	}
}

// recover counts a failure of p and restarts it (or, for a retryable
// failure, waits), unless it failed too often in a row.
func (s *supervisor[C]) recover(ctx context.Context, p *proc[C], cause error, pos func() []byte) error {
	s.mu.Lock()
	if s.cur != p {
		// Another call restarted it already.
		s.mu.Unlock()
		return nil
	}
	s.failures++
	n := s.failures
	s.mu.Unlock()
	if n > s.cfg.MaxRestarts {
		return s.errorf("%w (%d failures in a row; max_restarts is %d)", cause, n, s.cfg.MaxRestarts)
	}
	var retry *retryable
	restart := !errors.As(cause, &retry)
	s.cfg.Logger.Warn("connector failed", "error", cause, "failures", n, "restart", restart)
	if restart {
		p.client.Kill()
	}
	if !sleep(ctx, backoff(s.cfg, n)) {
		return ctx.Err()
	}
	if !restart {
		return nil
	}
	np, err := s.launch(ctx, pos())
	if err != nil {
		var perm *permanent
		if errors.As(err, &perm) {
			return s.errorf("restart: %w", perm.err)
		}
		// The new process failed to open: count it too.
		s.mu.Lock()
		s.cur = &proc[C]{client: p.client, rpc: p.rpc} // a dead stand-in for the next round
		s.mu.Unlock()
		return s.recover(ctx, s.cur, err, pos)
	}
	s.restarts.Add(1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		np.client.Kill()
		return s.errorf("closed")
	}
	s.cur = np
	s.mu.Unlock()
	s.cfg.Logger.Info("connector restarted", "restarts", s.restarts.Load())
	return nil
}

// current is the running connector.
func (s *supervisor[C]) current() (*proc[C], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.cur == nil {
		return nil, s.errorf("closed")
	}
	return s.cur, nil
}

// stop runs f (a flush, a teardown) on the connector, if it is running,
// and ends its process.
func (s *supervisor[C]) stop(f func(ctx context.Context, rpc C) error) error {
	s.mu.Lock()
	p := s.cur
	s.closed, s.cur = true, nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	var err error
	if f != nil && !p.client.Exited() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		err = f(ctx, p.rpc)
		cancel()
		if err != nil {
			err = s.errorf("%s", status.Convert(err).Message())
		}
	}
	p.client.Kill()
	return err
}

func (s *supervisor[C]) errorf(format string, args ...any) error {
	return fmt.Errorf("connector[%s]: "+format, append([]any{s.cfg.Name}, args...)...)
}

// checkSHA256 checks an executable against its pinned digest.
func checkSHA256(path, want string) error {
	if want == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
		return fmt.Errorf("%s: sha256 is %s, the manifest pins %s", path, got, want)
	}
	return nil
}

func backoff(c *Config, n int) time.Duration {
	d := c.Backoff
	for i := 1; i < n && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
