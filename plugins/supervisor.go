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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/aegis-streaming/aegis/plugins/internal/shared"
)

// proc is one run of a connector: its process, go-plugin's client of it,
// and the client of the service it serves.
type proc[C any] struct {
	cmd    *exec.Cmd
	client *plugin.Client
	conn   *grpc.ClientConn
	rpc    C
}

// kill ends the process at once (a connector that hangs may not answer
// go-plugin's polite shutdown, which waits without a deadline), then lets
// go-plugin clean up after it.
func (p *proc[C]) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
	}
	p.client.Kill()
}

// stop asks the process to end (go-plugin's shutdown), and kills it if it
// has not within a few seconds.
func (p *proc[C]) stop() {
	done := make(chan struct{})
	go func() {
		p.client.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.kill()
		<-done
	}
}

// alive reports whether the connector answers a health check within a
// second: a call that failed on a connector that does not is a crash.
func (p *proc[C]) alive() bool {
	if p.client.Exited() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := grpc_health_v1.NewHealthClient(p.conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	return err == nil && !p.client.Exited()
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
	cur      *proc[C] // nil before the start, once closed, and once given up
	failures int      // in a row, since the last call that succeeded
	restarts atomic.Uint64
	closed   bool
}

// errInvalid marks a response that breaks the protocol (events that are
// not valid): the connector is restarted.
type errInvalid struct{ err error }

func (e *errInvalid) Error() string { return e.err.Error() }
func (e *errInvalid) Unwrap() error { return e.err }

// permanent is a failure that no restart mends: a bad executable, a
// configuration the connector refuses, an error it reports.
type permanent struct{ err error }

func (e *permanent) Error() string { return e.err.Error() }
func (e *permanent) Unwrap() error { return e.err }

// retryable is a failure worth the same call again without a restart: the
// connector answered UNAVAILABLE.
type retryable struct{ err error }

func (e *retryable) Error() string { return e.err.Error() }
func (e *retryable) Unwrap() error { return e.err }

// start starts the connector and opens it at pos. An executable that
// does not start as a connector is not retried; a connector that starts
// and then fails to open (crashes, hangs, asks for a retry) is, as a
// restart would be.
func (s *supervisor[C]) start(ctx context.Context, pos []byte) error {
	p, err := s.launch(ctx, pos, true)
	if err != nil {
		var perm *permanent
		if errors.As(err, &perm) {
			return s.errorf("%w", perm.err)
		}
		if p, err = s.relaunch(ctx, err, func() []byte { return pos }); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.cur = p
	s.mu.Unlock()
	return nil
}

// launch starts a process and opens its connector. first says whether it
// is the first start, whose failure to start as a connector at all is
// permanent.
func (s *supervisor[C]) launch(ctx context.Context, pos []byte, first bool) (*proc[C], error) {
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
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(shared.MaxMessageSize), grpc.MaxCallSendMsgSize(shared.MaxMessageSize)),
		},
	})
	p := &proc[C]{cmd: cmd, client: client}
	if err := s.dispense(p, first); err != nil {
		p.kill()
		return nil, err
	}
	octx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.open(octx, p.rpc, pos); err != nil {
		err = s.failure(octx, p, "open", err)
		p.kill()
		return nil, err
	}
	return p, nil
}

func (s *supervisor[C]) dispense(p *proc[C], first bool) error {
	rpc, err := p.client.Client()
	if err != nil {
		// Not a connector, a protocol version this host does not speak, a
		// crash or a hang at start.
		err = fmt.Errorf("start %s: %w", s.cfg.Path, err)
		if first {
			return &permanent{err}
		}
		return err
	}
	raw, err := rpc.Dispense(s.kind)
	if err != nil {
		return &permanent{fmt.Errorf("%s serves no %s: %w", s.cfg.Path, s.kind, err)}
	}
	c, ok := raw.(C)
	g, isGRPC := rpc.(*plugin.GRPCClient)
	if !ok || !isGRPC {
		return &permanent{fmt.Errorf("%s serves no %s", s.cfg.Path, s.kind)}
	}
	p.rpc, p.conn = c, g.Conn
	return nil
}

// failure says what went wrong with a call to p that returned err under
// ctx, which carries the call's deadline: a *permanent failure, a
// *retryable one, or any other error, for which the connector is
// restarted.
func (s *supervisor[C]) failure(ctx context.Context, p *proc[C], op string, err error) error {
	var inv *errInvalid
	if errors.As(err, &inv) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < 50*time.Millisecond {
		// Whatever the error says (the connector may have cancelled the
		// call at the deadline first), the call outlived its time.
		return fmt.Errorf("%s: no answer within %v: the connector hangs", op, s.cfg.Timeout)
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.InvalidArgument:
		if op == "open" {
			return &permanent{fmt.Errorf("%s: the connector refused its configuration: %s", op, st.Message())}
		}
	case codes.ResourceExhausted:
		return &permanent{fmt.Errorf("%s: %s (a message is at most %d MiB: a source must return fewer events at a time)", op, st.Message(), shared.MaxMessageSize>>20)}
	case codes.Unimplemented:
		return &permanent{fmt.Errorf("%s: %s serves no %s, or not this version of it (%s)", op, s.cfg.Path, s.kind, st.Message())}
	}
	// A broken connection looks like the connector's own answers: ask the
	// connector whether it is still there.
	if !p.alive() {
		// A connector that crashed: go-plugin sees its end a moment after
		// the connection's.
		for i := 0; i < 50 && !p.client.Exited(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if p.client.Exited() {
			return fmt.Errorf("%s: the connector exited (%s)", op, st.Message())
		}
		return fmt.Errorf("%s: the connector does not answer (%s)", op, st.Message())
	}
	if st.Code() == codes.Unavailable {
		return &retryable{fmt.Errorf("%s: %s", op, st.Message())}
	}
	return &permanent{fmt.Errorf("%s: %s", op, st.Message())}
}

// call runs f with the current connector under a deadline of wait plus
// the timeout, and deals with its failures: it restarts a connector that
// crashed, hung or misbehaved, retries a call the connector asked to have
// retried, and gives up after MaxRestarts failures in a row. It returns a
// permanent failure as is, and ctx's error once ctx is done. A restarted
// connector is opened at pos() (a source's position; pos is nil for a
// sink, which has none).
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
		if err := s.recover(ctx, p, err, pos); err != nil {
			return err
		}
	}
}

// recover deals with a failure of p: a permanent one ends the connector;
// after a retryable one it waits; after any other it restarts the
// connector. It gives up, and ends the connector, after MaxRestarts
// failures in a row.
func (s *supervisor[C]) recover(ctx context.Context, p *proc[C], cause error, pos func() []byte) error {
	s.mu.Lock()
	if s.cur != p {
		// Another call has dealt with it already.
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	var perm *permanent
	if errors.As(cause, &perm) {
		s.drop(p)
		return s.errorf("%w", perm.err)
	}
	var retry *retryable
	if errors.As(cause, &retry) {
		n, err := s.fail(p, cause)
		if err != nil {
			return err
		}
		s.cfg.Logger.Warn("connector call failed; retrying", "error", cause, "failures", n)
		if !sleep(ctx, backoff(s.cfg, n)) {
			return ctx.Err()
		}
		return nil
	}
	np, err := s.relaunch(ctx, cause, pos)
	if err != nil {
		s.drop(p)
		return err
	}
	s.mu.Lock()
	if s.closed || s.cur != p {
		s.mu.Unlock()
		np.kill()
		return s.errorf("closed")
	}
	s.cur = np
	s.mu.Unlock()
	return nil
}

// relaunch kills the current process and starts a new one, with backoff,
// as long as the failures in a row (this one, cause, included) stay
// within MaxRestarts.
func (s *supervisor[C]) relaunch(ctx context.Context, cause error, pos func() []byte) (*proc[C], error) {
	s.mu.Lock()
	p := s.cur
	s.mu.Unlock()
	for {
		n, err := s.fail(p, cause)
		if err != nil {
			return nil, err
		}
		s.cfg.Logger.Warn("connector failed; restarting", "error", cause, "failures", n)
		if p != nil {
			p.kill()
		}
		if !sleep(ctx, backoff(s.cfg, n)) {
			return nil, s.errorf("%w", ctx.Err())
		}
		var at []byte
		if pos != nil {
			at = pos()
		}
		np, err := s.launch(ctx, at, false)
		if err == nil {
			s.restarts.Add(1)
			s.cfg.Logger.Info("connector restarted", "restarts", s.restarts.Load())
			return np, nil
		}
		var perm *permanent
		if errors.As(err, &perm) {
			return nil, s.errorf("restart: %w", perm.err)
		}
		if ctx.Err() != nil {
			return nil, s.errorf("%w", ctx.Err())
		}
		cause = err
	}
}

// fail counts a failure, and gives up past MaxRestarts in a row, killing
// p (if not nil).
func (s *supervisor[C]) fail(p *proc[C], cause error) (int, error) {
	s.mu.Lock()
	s.failures++
	n := s.failures
	s.mu.Unlock()
	if n > s.cfg.MaxRestarts {
		s.drop(p)
		return n, s.errorf("%w (%d failures in a row; max_restarts is %d)", cause, n, s.cfg.MaxRestarts)
	}
	return n, nil
}

// drop ends p for good, if it is still the current connector: after it
// the supervisor has none, and Close has nothing to tear down.
func (s *supervisor[C]) drop(p *proc[C]) {
	if p == nil {
		return
	}
	s.mu.Lock()
	if s.cur == p {
		s.cur = nil
	}
	s.mu.Unlock()
	p.kill()
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
// and ends its process. A connector that has exited by then, before f,
// is an error: what it had not made safe is lost.
func (s *supervisor[C]) stop(f func(ctx context.Context, rpc C) error) error {
	s.mu.Lock()
	p := s.cur
	s.closed, s.cur = true, nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	var err error
	if p.client.Exited() {
		err = s.errorf("the connector exited before it was stopped")
	} else if f != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		err = f(ctx, p.rpc)
		cancel()
		if err != nil {
			err = s.errorf("%s", status.Convert(err).Message())
			p.kill()
		}
	}
	p.stop()
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
