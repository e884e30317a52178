package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/atomicfile"
)

// Persistent channels.
//
// A manifest with a persistent channel or a nats block runs on an engine
// with a durable store (engine.Open): the embedded NATS server, whose
// store is data_dir/jetstream, or the cluster of nats.urls. validate
// starts no store: it checks the settings and builds the pipelines on
// in-memory stand-ins.
//
// A pipeline that reads a persistent channel does so through a durable
// subscription named after it ("pipeline:NAME"), which remembers across
// runs what the pipeline is done with; its delivery block gives the mode,
// ack wait, max deliver, backoff, dead letter and start. When does such a
// pipeline end? A persistent channel is not deleted when its writers end (that
// would delete its events), so the in-memory rule (the channel ends with
// its last writer) does not apply. The rule is that of a batch run: the
// pipeline ends once no pipeline of this run writes to the channel any
// more (at once when none does) and it has caught up with the channel:
// nothing left undelivered, nothing delivered awaiting an
// acknowledgement (its own last batch included, and events that a killed
// earlier run had read: those come again, at once when the embedded
// server starts again with the run, after their ack wait on a cluster, and
// the run waits for them), and no event that exhausted max_deliver still to be
// moved to its dead letter (the server gives up on one once its last ack
// wait has passed, and the run waits for that and for the move). So
// `aegis-host run` with generator -> persistent channel
// -> pipeline ends once the pipeline has processed what the generator
// published, and a manifest that only reads a channel processes its
// backlog and ends. A stopped run (a signal, a failed pipeline) stops
// reading at once: what was not read stays in the channel for the next
// run, and what was read and not written is delivered again then.

// durableStore says whether m needs a durable store: for its persistent
// channels, or for those its API's clients may create.
func durableStore(m *manifest.Manifest) bool {
	if m.NATS != nil || m.API != nil {
		return true
	}
	for _, c := range m.Channels {
		if c.Persistent {
			return true
		}
	}
	return false
}

// openEngine returns the engine of m: with the durable store that m's
// persistent channels need (not for validate, dry), else in memory.
func openEngine(ctx context.Context, m *manifest.Manifest, log *slog.Logger, dry bool) (*engine.Engine, error) {
	if dry || !durableStore(m) {
		return engine.New(engine.Config{}), nil
	}
	// The jetstream package puts the store in Dir/jetstream.
	// The server's own lines at info and below (its banner) are not the
	// run's business.
	dc := &engine.DurableConfig{Dir: m.DataPath(), Logger: slog.New(minLevel{Handler: log.Handler(), min: slog.LevelWarn})}
	if n := m.NATS; n != nil {
		dc.URLs, dc.Listen, dc.MaxStore, dc.SyncAlways, dc.Replicas = n.URLs, n.Listen, n.MaxStore.Bytes(), n.SyncAlways, n.Replicas
	}
	eng, err := engine.Open(ctx, engine.Config{Durable: dc})
	if err != nil {
		return nil, fmt.Errorf("%s: persistent channels: store %s: %w", m.File, storeName(m), err)
	}
	return eng, nil
}

// storeName names m's durable store in errors: its directory, or the
// cluster's URLs.
func storeName(m *manifest.Manifest) string {
	if m.NATS != nil && len(m.NATS.URLs) > 0 {
		return strings.Join(m.NATS.URLs, ",")
	}
	return m.DataPath("jetstream")
}

// channelsRecord is the file, under the data directory, that lists the
// persistent channels created in the store by runs of manifests with this
// data directory, one a line: those a later run expects to find there.
func channelsRecord(m *manifest.Manifest) string { return m.DataPath("persistent-channels") }

func readChannelsRecord(m *manifest.Manifest) (map[string]bool, error) {
	b, err := os.ReadFile(channelsRecord(m))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	rec := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			rec[l] = true
		}
	}
	return rec, nil
}

// checkChannels verifies, before the channels are created, that the store
// still holds m's persistent channels that an earlier run created there
// (by the record): creating a lost one would replace it with an empty
// one, silently.
func checkChannels(ctx context.Context, eng *engine.Engine, m *manifest.Manifest) error {
	rec, err := readChannelsRecord(m)
	if err != nil {
		return fmt.Errorf("%s: persistent channels: %w", m.File, err)
	}
	var names []string
	for name, c := range m.Channels {
		if c.Persistent && rec[name] {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	if err := eng.CheckChannels(ctx, names); err != nil {
		return fmt.Errorf("%s: persistent channels: store %s: %w: an earlier run created them there (%s); if they were deleted on purpose, remove their lines from that file", m.File, storeName(m), err, channelsRecord(m))
	}
	return nil
}

// recordChannels adds m's persistent channels to the record, replacing the
// file at once (a crash leaves the old one or the new one).
func recordChannels(m *manifest.Manifest) error {
	rec, err := readChannelsRecord(m)
	if err != nil {
		return err
	}
	n := len(rec)
	for name, c := range m.Channels {
		if c.Persistent {
			rec[name] = true
		}
	}
	if len(rec) == n {
		return nil
	}
	names := slices.Sorted(maps.Keys(rec))
	return atomicfile.Write(channelsRecord(m), []byte(strings.Join(names, "\n")+"\n"))
}

// channelConfig is the engine's configuration of a manifest channel.
func channelConfig(c manifest.Channel) (engine.ChannelConfig, error) {
	cfg := engine.ChannelConfig{BufferSize: c.Buffer}
	var err error
	if c.SlowSubscriber != "" {
		if cfg.SlowSubscriber, err = engine.ParseSlowSubscriberPolicy(c.SlowSubscriber); err != nil {
			return cfg, err
		}
	}
	if r := c.Retention; r != nil {
		cfg.Retention = engine.Retention{MaxEvents: r.MaxEvents, MaxAge: r.MaxAge.D()}
	}
	if !c.Persistent {
		return cfg, nil
	}
	cfg.Persistent = true
	if r := c.Retention; r != nil {
		// max_events 0 on a persistent channel is no limit (not the
		// in-memory default of 1000), which is what the engine's 0 means
		// for a persistent channel: passed on as it is, on purpose.
		cfg.Retention.MaxBytes = r.MaxBytes.Bytes()
	}
	cfg.Replicas, cfg.DuplicateWindow = c.Replicas, c.DuplicateWindow.D()
	if c.Discard != "" {
		if cfg.Discard, err = engine.ParseDiscardPolicy(c.Discard); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// deliveryOptions are the subscription options of a pipeline that reads a
// persistent channel.
func deliveryOptions(mp *manifest.Pipeline) (engine.SubscribeOptions, error) {
	name := "pipeline:" + mp.Name
	o := engine.SubscribeOptions{Subscriber: name, Durable: name, Start: engine.StartAll(), DeliveryMode: engine.AtLeastOnce}
	d := mp.Delivery
	if d == nil {
		return o, nil
	}
	var err error
	if d.Mode != "" {
		if o.DeliveryMode, err = engine.ParseDeliveryMode(d.Mode); err != nil {
			return o, fmt.Errorf("delivery: %w", err)
		}
		if o.DeliveryMode == engine.AtMostOnce {
			// Acknowledging on read would lose, on a crash or a failed
			// batch, what was read and not yet written: the loss that a
			// persistent channel is there to prevent.
			return o, errors.New("delivery: mode at-most-once: a pipeline reading a persistent channel acknowledges each event once it is written (at-least-once or exactly-once); at-most-once would acknowledge it on read and lose, on a crash, the batches in flight (read an in-memory channel for that)")
		}
	}
	switch d.Start {
	case "", "all":
	case "new":
		o.Start = engine.StartNew()
	default:
		return o, fmt.Errorf("delivery: unknown start %q (all or new)", d.Start)
	}
	o.DeadLetter = d.DeadLetter
	o.AckWait = d.AckWait.D()
	if d.MaxDeliver > 0 {
		o.MaxDeliver = d.MaxDeliver // manifest.NoMaxDeliver (-1): 0, no limit
	}
	for _, b := range d.Backoff {
		o.Backoff = append(o.Backoff, b.D())
	}
	return o, nil
}

// writtenAll is called when no pipeline of the run writes to channel any
// more: an in-memory channel is deleted (its readers end once they have
// taken everything); a persistent one is kept, and its readers end once
// they have caught up with it (see caughtUp).
func (d *deployment) writtenAll(channel string) {
	if w, ok := d.written[channel]; ok {
		close(w)
		return
	}
	d.eng.DeleteChannel(channel)
}

// caughtUpPoll is how long a caught-up reader waits for an event before it
// asks the store whether it has caught up.
const caughtUpPoll = 200 * time.Millisecond

// caughtUp is the source of a pipeline that reads a persistent channel: it
// reads until the run is stopped, or until written is closed (no pipeline
// of the run writes to the channel any more) and the durable subscription
// has nothing undelivered and nothing awaiting an acknowledgement: then it
// ends (io.EOF).
type caughtUp struct {
	engine.Source
	eng              *engine.Engine
	channel, durable string
	written          <-chan struct{}
}

func (s *caughtUp) Read(ctx context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	n := len(dst)
	select {
	case <-s.written:
	default:
		// Writers still run: read, waking up when the last one ends.
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-s.written:
				cancel()
			case <-rctx.Done():
			}
		}()
		dst, err := s.Source.Read(rctx, dst, max)
		if err != nil && ctx.Err() == nil && rctx.Err() != nil {
			err = nil // woken by the writers' end
		}
		return dst, err
	}
	rctx, cancel := context.WithTimeout(ctx, caughtUpPoll)
	dst, err := s.Source.Read(rctx, dst, max)
	cancel()
	switch {
	case ctx.Err() != nil:
		return dst, ctx.Err()
	case len(dst) > n:
		if errors.Is(err, context.DeadlineExceeded) {
			err = nil
		}
		return dst, err
	case err != nil && !errors.Is(err, context.DeadlineExceeded):
		return dst, err
	}
	done, err := s.done(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return dst, ctx.Err()
		}
		return dst, err
	}
	if done {
		return dst, io.EOF
	}
	return dst, nil
}

// done reports whether the subscription has caught up with the channel:
// nothing undelivered, nothing awaiting an acknowledgement, and no event
// that exhausted max_deliver still to be moved to the dead-letter channel.
// Such an event leaves the acknowledgements awaited once its last ack
// wait has passed, so a run waits that long at most for it, and then for
// its move. An error moving it fails the pipeline (the dead letter is
// moved by a later run) rather than wait for ever.
func (s *caughtUp) done(ctx context.Context) (bool, error) {
	cu, ok := s.Source.(engine.CaughtUpSource)
	if !ok {
		return false, fmt.Errorf("channel[%s]: the source of %s cannot tell whether it has caught up", s.channel, s.durable)
	}
	return cu.CaughtUp(ctx)
}

// Ack passes the pipeline's acknowledgements on to the channel's source.
func (s *caughtUp) Ack(ctx context.Context, n uint64) error {
	return s.Source.(engine.Acker).Ack(ctx, n)
}

// minLevel is a handler that passes on only records at min or above.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(as), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}
