package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

// DurableConfig configures the durable store that persistent channels
// live in: NATS JetStream, embedded in the process by default, or an
// external NATS cluster. See [Open].
type DurableConfig struct {
	// Dir is the directory of the embedded server's file store (created
	// when missing; the data goes in Dir/jetstream). It is required unless
	// URLs is set, and ignored then.
	Dir string
	// URLs, when set ("nats://host:port", ...), make the engine use that
	// NATS cluster instead of an embedded server.
	URLs []string
	// Listen is a "host:port" on which the embedded server accepts other
	// NATS clients (port 0 picks a free one). Empty (the default): no
	// listening socket, only the in-process connection.
	Listen string
	// MaxStore caps the bytes the embedded store may hold; a publish beyond
	// it fails cleanly. 0 (the default): half the space free on Dir's file
	// system at start; negative: the server's own limit.
	MaxStore int64
	// SyncAlways makes the embedded store fsync every write before it is
	// acknowledged: an operating system crash or power loss then loses
	// nothing acknowledged either. Without it the store syncs every two
	// minutes, and only a crash of the process itself is covered. It costs
	// about 90% of publish throughput.
	SyncAlways bool
	// Replicas is the number of servers storing each message of a channel
	// whose [ChannelConfig.Replicas] is 0; 0: 1. More than 1 needs a
	// cluster.
	Replicas int
	// Timeout bounds [Open]'s wait for a cluster (URLs) to answer, and the
	// store operations of calls that take no context (CreateChannel,
	// DeleteChannel, Close, stats); 0: 10 s.
	Timeout time.Duration
	// Logger receives the server's and the connection's log lines; nil
	// discards them.
	Logger *slog.Logger
}

// durable is an engine's connection to its durable store.
type durable struct {
	cfg  DurableConfig
	srv  *jetstream.Server // nil for an external cluster
	conn *jetstream.Conn
}

// Open returns an engine with no channels, like [New], and when
// cfg.Durable is set starts the embedded JetStream server (or connects to
// cfg.Durable.URLs), waiting until ctx is done (for a cluster, at most
// cfg.Durable.Timeout) for it to be ready. It fails naming the store when
// that does not work (an unusable directory, no reachable cluster) or when
// the embedded store lost data on start (a stream that was on disk did not
// load), rather than running without it.
// [Engine.Close] stops the server or closes the connection.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	e := newEngine(cfg)
	if cfg.Durable == nil {
		return e, nil
	}
	d, err := openDurable(ctx, *cfg.Durable)
	if err != nil {
		return nil, err
	}
	e.dur = d
	return e, nil
}

func openDurable(ctx context.Context, cfg DurableConfig) (*durable, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Replicas < 0 {
		return nil, fmt.Errorf("durable store: %d replicas is negative", cfg.Replicas)
	}
	d := &durable{cfg: cfg}
	if len(cfg.URLs) > 0 {
		// Bounded by Timeout as well: with a context that has no deadline
		// an unreachable cluster would be waited for forever.
		ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
		conn, err := jetstream.Connect(ctx, cfg.URLs, jetstream.ConnectOptions{Logger: cfg.Logger, Replicas: cfg.Replicas})
		if err != nil {
			return nil, fmt.Errorf("durable store: %w", err)
		}
		d.conn = conn
		return d, nil
	}
	if cfg.Dir == "" {
		return nil, errors.New("durable store: Dir or URLs is required")
	}
	if cfg.Replicas > 1 {
		return nil, fmt.Errorf("durable store[%s]: %d replicas need a cluster (URLs); the embedded server stores 1", cfg.Dir, cfg.Replicas)
	}
	srv, err := jetstream.Start(ctx, jetstream.Options{StoreDir: cfg.Dir, Listen: cfg.Listen, MaxStore: cfg.MaxStore, SyncAlways: cfg.SyncAlways, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("durable store: %w", err)
	}
	if err := srv.StoreReport().Err(); err != nil && len(srv.StoreReport().Lost) > 0 {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil, fmt.Errorf("durable store: %w", err)
	}
	d.srv, d.conn = srv, srv.Conn()
	return d, nil
}

// ctx is a context for a store operation of a call that takes none.
func (d *durable) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d.cfg.Timeout)
}

func (d *durable) close() error {
	ctx, cancel := d.ctx()
	defer cancel()
	if d.srv != nil {
		return d.srv.Shutdown(ctx)
	}
	d.conn.Close(ctx)
	return nil
}

// DurableStore describes an engine's durable store.
type DurableStore struct {
	// Dir is the embedded server's absolute store directory ("" for a
	// cluster); ClientURL is where other clients reach it ("" when it does
	// not listen).
	Dir, ClientURL string
	// URLs are the cluster's URLs (nil when embedded).
	URLs []string
	// Warnings are what the embedded server reported wrong with its store
	// files since start (damaged or unwritable blocks).
	Warnings []string
}

// DurableStore describes the engine's durable store; ok is false when it
// has none.
func (e *Engine) DurableStore() (ds DurableStore, ok bool) {
	if e.dur == nil {
		return DurableStore{}, false
	}
	ds.URLs = e.dur.cfg.URLs
	if s := e.dur.srv; s != nil {
		ds.Dir, ds.ClientURL = s.StoreDir(), s.ClientURL()
		ds.Warnings = s.StoreReport().Warnings
	}
	return ds, true
}

// DiscardPolicy says what a full persistent channel does with a new event.
type DiscardPolicy uint8

const (
	// DiscardOld (the default) removes the oldest events to make room.
	DiscardOld DiscardPolicy = iota
	// DiscardNew refuses the new event: the publish fails with
	// [ErrChannelFull].
	DiscardNew
)

var discardNames = [...]string{DiscardOld: "old", DiscardNew: "new"}

// String returns "old" or "new".
func (p DiscardPolicy) String() string { return enumName(discardNames[:], int(p), "discard") }

// ParseDiscardPolicy is the inverse of [DiscardPolicy.String].
func ParseDiscardPolicy(s string) (DiscardPolicy, error) {
	v, err := parseEnum(discardNames[:], s, "discard policy")
	return DiscardPolicy(v), err
}

type startKind uint8

const (
	startNew startKind = iota
	startAll
	startSeq
	startTime
	startAfterEvent
)

// StartPosition is where a subscription to a persistent channel begins.
// It matters only when its consumer is created: a [SubscribeOptions.Durable]
// subscription that exists already resumes after its last acknowledged
// event. The zero value is [StartNew], as on in-memory channels.
type StartPosition struct {
	kind startKind
	seq  uint64
	t    time.Time
	id   EventID
}

// StartNew begins with the first event published after subscribing.
func StartNew() StartPosition { return StartPosition{} }

// StartAll begins with the oldest event the channel retains.
func StartAll() StartPosition { return StartPosition{kind: startAll} }

// StartAtSeq begins at the channel's sequence number seq (1 is the first
// event ever published to it), or the oldest retained after it.
func StartAtSeq(seq uint64) StartPosition { return StartPosition{kind: startSeq, seq: seq} }

// StartAtTime begins with the first event stored at or after t.
func StartAtTime(t time.Time) StartPosition { return StartPosition{kind: startTime, t: t} }

// StartAfterEvent begins with the event published after the one whose ID is
// id, like [HistoryQuery.AfterID]. Subscribing fails with
// [ErrEventNotFound] when the channel no longer retains it.
func StartAfterEvent(id EventID) StartPosition { return StartPosition{kind: startAfterEvent, id: id} }

// IsZero reports whether s is the zero value ([StartNew]).
func (s StartPosition) IsZero() bool { return s == StartPosition{} }

// String describes the position: "new", "all", "seq N", "time T",
// "after event ID".
func (s StartPosition) String() string {
	switch s.kind {
	case startAll:
		return "all"
	case startSeq:
		return fmt.Sprintf("seq %d", s.seq)
	case startTime:
		return "time " + s.t.Format(time.RFC3339Nano)
	case startAfterEvent:
		return "after event " + s.id.String()
	}
	return "new"
}

func (s StartPosition) js() jetstream.StartPosition {
	switch s.kind {
	case startAll:
		return jetstream.StartAll()
	case startSeq:
		return jetstream.StartAtSeq(s.seq)
	case startTime:
		return jetstream.StartAtTime(s.t)
	case startAfterEvent:
		return jetstream.StartAfterEvent(s.id.String())
	}
	return jetstream.StartNew()
}

// durableErr translates the store's errors into the engine's, keeping the
// original wrapped.
func durableErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrStreamFull):
		return fmt.Errorf("%w (raise its retention limits, shorten its max age, or let it discard old events): %w", ErrChannelFull, err)
	case errors.Is(err, jetstream.ErrStoreFull):
		return fmt.Errorf("%w (lower the retention of persistent channels, delete unused ones, or raise the store's limit, max store): %w", ErrStoreFull, err)
	case errors.Is(err, jetstream.ErrEventNotFound):
		return fmt.Errorf("%w: %w", ErrEventNotFound, err)
	}
	return err
}

// durableOnlyChannel names the persistent-only settings of cfg, for the
// error that refuses them on an in-memory channel.
func durableOnlyChannel(cfg ChannelConfig) string {
	var s []string
	if cfg.Replicas != 0 {
		s = append(s, "replicas")
	}
	if cfg.Retention.MaxBytes != 0 {
		s = append(s, "retention max bytes")
	}
	if cfg.Discard != DiscardOld {
		s = append(s, "discard "+cfg.Discard.String())
	}
	if cfg.DuplicateWindow != 0 {
		s = append(s, "duplicate window")
	}
	return strings.Join(s, ", ")
}

// durableOnlySubscribe names the persistent-only options of o.
func durableOnlySubscribe(o SubscribeOptions) string {
	var s []string
	if o.Durable != "" {
		s = append(s, "durable name")
	}
	if !o.Start.IsZero() {
		s = append(s, "start "+o.Start.String())
	}
	if o.AckWait != 0 {
		s = append(s, "ack wait")
	}
	if o.MaxDeliver != 0 {
		s = append(s, "max deliver")
	}
	if len(o.Backoff) > 0 {
		s = append(s, "backoff")
	}
	if o.DeadLetter != "" {
		s = append(s, "dead letter")
	}
	return strings.Join(s, ", ")
}

// CheckChannels verifies that the durable store holds a stream for each
// persistent channel in names: channels that an earlier run created, say.
// Call it before [Engine.CreateChannel], which makes a missing one anew,
// empty: a channel missing from a store that had it means the store lost
// it (a wiped directory, another cluster), and going on would hide that.
// The error names every missing channel. Without a durable store it
// fails with [ErrUnsupported].
func (e *Engine) CheckChannels(ctx context.Context, names []string) error {
	if e.dur == nil {
		return fmt.Errorf("%w: no durable store", ErrUnsupported)
	}
	if err := e.dur.conn.CheckChannels(ctx, names); err != nil {
		return fmt.Errorf("durable store: %w", err)
	}
	return nil
}
