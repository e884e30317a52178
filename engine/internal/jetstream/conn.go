package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Conn is a connection to a JetStream server, embedded ([Server.Conn]) or
// external ([Connect]). Everything else in this package goes through it. It
// is safe for concurrent use.
type Conn struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	log      *slog.Logger
	replicas int // default stream replicas
	window   int

	advOnce sync.Mutex // serialises creation of the advisory stream
	advOK   bool
}

func newConn(nc *nats.Conn, log *slog.Logger, window, replicas int) (*Conn, error) {
	if window <= 0 {
		window = 4096
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	return &Conn{nc: nc, js: js, log: log, replicas: replicas, window: window}, nil
}

// ConnectOptions configure [Connect].
type ConnectOptions struct {
	// Name is the client name the servers show; "" is "aegis".
	Name string
	// Logger receives connection events (disconnects, reconnects, async
	// errors); nil discards them.
	Logger *slog.Logger
	// ReconnectWait is the pause between reconnect attempts to the same
	// server; 0: 250 ms. Reconnecting never gives up until [Conn.Close].
	ReconnectWait time.Duration
	// Replicas is the default number of replicas for streams whose
	// [StreamOptions.Replicas] is 0, and for the advisory stream; 0: 1.
	Replicas int
	// AsyncWindow is the number of asynchronous publishes that may await
	// their acknowledgement at once; 0: 4096.
	AsyncWindow int
}

// Connect connects to an external NATS cluster at urls ("nats://host:port")
// and waits, until ctx is done, for the connection and for JetStream to
// answer (a new cluster needs a few seconds to elect its meta leader). It
// fails naming the URLs when that does not happen in time. Once connected,
// the connection reconnects by itself for as long as it lives: operations
// during an outage fail with their context's error or [ErrNotConnected], and
// work again when a server is back.
func Connect(ctx context.Context, urls []string, opts ConnectOptions) (*Conn, error) {
	if len(urls) == 0 {
		return nil, errors.New("nats: no server URLs")
	}
	if opts.Name == "" {
		opts.Name = "aegis"
	}
	if opts.ReconnectWait <= 0 {
		opts.ReconnectWait = 250 * time.Millisecond
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "nats-client")
	where := strings.Join(urls, ",")
	connected := make(chan struct{}, 1)
	var lastErr struct {
		sync.Mutex
		err error
	}
	setErr := func(err error) {
		lastErr.Lock()
		lastErr.err = err
		lastErr.Unlock()
	}
	nc, err := nats.Connect(where,
		nats.Name(opts.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(opts.ReconnectWait),
		nats.ConnectHandler(func(*nats.Conn) {
			select {
			case connected <- struct{}{}:
			default:
			}
		}),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			if err != nil {
				setErr(err)
				log.Warn("disconnected", "error", err)
			}
		}),
		nats.ReconnectErrHandler(func(c *nats.Conn, err error) { setErr(err) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("reconnected", "server", c.ConnectedServerName()) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			setErr(err)
			log.Warn("async error", "error", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("nats[%s]: connect: %w", where, err)
	}
	fail := func(what string, err error) (*Conn, error) {
		nc.Close()
		lastErr.Lock()
		last := lastErr.err
		lastErr.Unlock()
		if last != nil {
			return nil, fmt.Errorf("nats[%s]: %s: %w (last error: %v)", where, what, err, last)
		}
		return nil, fmt.Errorf("nats[%s]: %s: %w", where, what, err)
	}
	if !nc.IsConnected() {
		select {
		case <-connected:
		case <-ctx.Done():
			return fail("no server reachable", ctx.Err())
		}
	}
	c, err := newConn(nc, log, opts.AsyncWindow, opts.Replicas)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats[%s]: %w", where, err)
	}
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.js.AccountInfo(actx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fail("jetstream not available", fmt.Errorf("%w (%v)", ctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return c, nil
}

// Connected reports whether the connection is up.
func (c *Conn) Connected() bool { return c.nc.IsConnected() }

// ServerName is the name of the server the connection is on ("" when down).
func (c *Conn) ServerName() string { return c.nc.ConnectedServerName() }

// Close waits, until ctx is done, for outstanding asynchronous publishes,
// then closes the connection. It does not stop an embedded server; see
// [Server.Shutdown]. It is safe to call more than once.
func (c *Conn) Close(ctx context.Context) { c.close(ctx) }

func (c *Conn) close(ctx context.Context) {
	if c.nc.IsClosed() {
		return
	}
	if c.nc.IsConnected() {
		select {
		case <-c.js.PublishAsyncComplete():
		case <-ctx.Done():
		}
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = c.nc.FlushWithContext(fctx)
		cancel()
	}
	c.nc.Close()
}

// CheckChannels verifies that every channel in names has its stream. The
// engine calls it at start with the channels it knows to be persistent
// (from its configuration): a stream that is missing while the store had
// data means the store lost it, and going on would silently replace it with
// an empty one. The error wraps [ErrStreamNotFound] and names every missing
// channel.
func (c *Conn) CheckChannels(ctx context.Context, names []string) error {
	var missing []string
	for _, n := range names {
		_, err := c.js.Stream(ctx, StreamName(n))
		switch {
		case err == nil:
		case errors.Is(err, jetstream.ErrStreamNotFound):
			missing = append(missing, n)
		default:
			return fmt.Errorf("channel[%s]: stream lookup: %w", n, apiError(err))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("channels[%s]: %w", strings.Join(missing, ", "), ErrStreamNotFound)
	}
	return nil
}
