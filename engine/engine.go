package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

// Config configures an [Engine]. The zero value has no limits.
type Config struct {
	// MaxChannels limits how many channels exist at once; zero means no
	// limit.
	MaxChannels int
	// MaxSubscribers limits the subscriptions of all channels together;
	// zero means no limit.
	MaxSubscribers int
	// MaxSubscribersPerChannel is the limit for channels whose
	// [ChannelConfig.MaxSubscribers] is zero; zero means no limit.
	MaxSubscribersPerChannel int
	// Now is the clock; nil means time.Now. Tests use it to age history.
	Now func() time.Time
	// Durable is the durable store of persistent channels
	// ([ChannelConfig.Persistent]); nil: the engine has only in-memory
	// channels. It is started by [Open]; [New] refuses it.
	Durable *DurableConfig
}

// Engine is the publish/subscribe engine: named channels, their
// subscriptions and histories, and counters. Channels are in memory, or
// persistent in the durable store when the engine has one ([Open]). All
// methods are safe for concurrent use.
type Engine struct {
	cfg Config
	dur *durable // nil without a durable store

	mu          sync.RWMutex
	channels    map[string]*channel
	subscribers map[string][]*Subscription // by subscriber name, oldest first
	closed      bool
	metrics     []metric.Registration // Instrument's, until Close

	subCount  atomic.Int64 // subscriptions, for the engine-wide limit
	nextSub   atomic.Uint64
	published atomic.Uint64
	delivered atomic.Uint64
	dropped   atomic.Uint64
}

// New returns an engine with no channels and no durable store. It panics
// when cfg.Durable is set: starting the store can fail, so that takes
// [Open].
func New(cfg Config) *Engine {
	if cfg.Durable != nil {
		panic("engine: New cannot start Config.Durable; use Open")
	}
	return newEngine(cfg)
}

func newEngine(cfg Config) *Engine {
	return &Engine{
		cfg:         cfg,
		channels:    make(map[string]*channel),
		subscribers: make(map[string][]*Subscription),
	}
}

func (e *Engine) now() time.Time {
	if e.cfg.Now != nil {
		return e.cfg.Now()
	}
	return time.Now()
}

// MaxChannelNameLen is the longest channel name accepted, in bytes.
const MaxChannelNameLen = 255

// CreateChannel makes a channel. It fails with [ErrChannelExists] if the
// name is taken and [ErrTooManyChannels] at the engine's limit.
//
// A persistent channel ([ChannelConfig.Persistent]) is a stream in the
// durable store: CreateChannel creates it, or reuses it with its events
// and durable subscriptions when it exists (after a restart), taking cfg's
// limits. Without a durable store it fails with [ErrUnsupported]; so do
// persistent-only settings on an in-memory channel.
func (e *Engine) CreateChannel(name string, cfg ChannelConfig) error {
	if err := checkName("channel name", name, MaxChannelNameLen); err != nil {
		return err
	}
	cfg, err := cfg.withDefaults(e.cfg.MaxSubscribersPerChannel)
	if err != nil {
		return channelErr(name, err)
	}
	check := func() error {
		switch {
		case e.closed:
			return ErrEngineClosed
		case e.channels[name] != nil:
			return channelErr(name, ErrChannelExists)
		case e.cfg.MaxChannels > 0 && len(e.channels) >= e.cfg.MaxChannels:
			return channelErr(name, fmt.Errorf("%w: the engine allows %d", ErrTooManyChannels, e.cfg.MaxChannels))
		}
		return nil
	}
	var st *jetstream.Stream
	if cfg.Persistent {
		if e.dur == nil {
			return channelErr(name, fmt.Errorf("%w: a persistent channel needs a durable store (Config.Durable, engine.Open)", ErrUnsupported))
		}
		e.mu.RLock()
		err := check()
		e.mu.RUnlock()
		if err != nil {
			return err
		}
		ctx, cancel := e.dur.ctx()
		st, err = e.dur.conn.EnsureStream(ctx, name, cfg.streamOptions())
		cancel()
		if err != nil {
			return channelErr(name, durableErr(err))
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := check(); err != nil {
		return err
	}
	c := newChannel(e, name, cfg)
	c.st = st
	e.channels[name] = c
	return nil
}

// DeleteChannel removes a channel and its history. Its subscriptions receive
// what they already hold, then [ErrChannelDeleted]; publishers waiting on it
// get [ErrChannelDeleted]. A persistent channel's stream is deleted from
// the durable store, with its events and durable subscriptions.
func (e *Engine) DeleteChannel(name string) error {
	e.mu.Lock()
	c, closed := e.channels[name], e.closed
	if c == nil {
		e.mu.Unlock()
		return missing(name, closed)
	}
	delete(e.channels, name)
	e.mu.Unlock()
	c.remove(ErrChannelDeleted)
	if c.st != nil {
		ctx, cancel := e.dur.ctx()
		defer cancel()
		if err := e.dur.conn.DeleteStream(ctx, name); err != nil {
			return channelErr(name, err)
		}
	}
	return nil
}

func (e *Engine) lookup(name string) (*channel, error) {
	e.mu.RLock()
	c, closed := e.channels[name], e.closed
	e.mu.RUnlock()
	if c == nil {
		return nil, missing(name, closed)
	}
	return c, nil
}

// missing is the error for a channel name that is not in the engine: after
// Close every channel is gone, and that is the reason to report.
func missing(name string, closed bool) error {
	if closed {
		return ErrEngineClosed
	}
	return channelErr(name, ErrChannelNotFound)
}

// ChannelInfo describes a channel.
type ChannelInfo struct {
	Name    string
	Config  ChannelConfig // with defaults applied
	Created time.Time
	Stats   ChannelStats
}

// Channel describes one channel.
func (e *Engine) Channel(name string) (ChannelInfo, error) {
	c, err := e.lookup(name)
	if err != nil {
		return ChannelInfo{}, err
	}
	return c.info(), nil
}

func (c *channel) info() ChannelInfo {
	return ChannelInfo{Name: c.name, Config: c.cfg, Created: c.created, Stats: c.stats()}
}

// Channels describes every channel, sorted by name.
func (e *Engine) Channels() []ChannelInfo {
	e.mu.RLock()
	chans := slices.Collect(maps.Values(e.channels))
	e.mu.RUnlock()
	out := make([]ChannelInfo, len(chans))
	for i, c := range chans {
		out[i] = c.info()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// prepare validates ev and fills in its ID and time if they are zero.
func prepare(ev *Event, now int64) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	if ev.ID.IsZero() {
		ev.ID = NewEventID()
	}
	if ev.Time == 0 {
		ev.Time = now
	}
	return nil
}

// Publish delivers ev to the channel's matching subscriptions and appends it
// to its history. A zero ID or time is filled in. On a [Block] channel it
// may wait for room, up to the channel's block timeout or ctx's end,
// whichever comes first; the error is then a *[PublishError].
func (e *Engine) Publish(ctx context.Context, channel string, ev Event) error {
	c, err := e.lookup(channel)
	if err != nil {
		return err
	}
	if err := prepare(&ev, e.now().UnixNano()); err != nil {
		return channelErr(channel, err)
	}
	return c.publishOne(ctx, &ev)
}

// PublishBatch publishes the batch's events in order, as Publish does, with
// one pass over the subscriptions. Zero IDs and times are filled in, in the
// batch itself. The batch is checked whole before anything is published, so
// an invalid event publishes none. If publishing stops part way (a timeout
// under [Block], ctx ending, the channel deleted), the *[PublishError] says
// how many of the events went out.
func (e *Engine) PublishBatch(ctx context.Context, channel string, batch EventBatch) error {
	c, err := e.lookup(channel)
	if err != nil {
		return err
	}
	now := e.now().UnixNano()
	for i := range batch.Events {
		if err := prepare(&batch.Events[i], now); err != nil {
			return channelErr(channel, fmt.Errorf("batch event %d: %w", i, err))
		}
	}
	if len(batch.Events) == 0 {
		return nil
	}
	return c.publish(ctx, batch.Events)
}

// PublishToMany publishes the same event (one ID) to several channels. Every
// channel must exist, or nothing is published. It then publishes to each in
// turn and reports each channel's failure, joined.
func (e *Engine) PublishToMany(ctx context.Context, channels []string, ev Event) error {
	targets := make([]*channel, 0, len(channels))
	seen := make(map[string]bool, len(channels))
	for _, name := range channels {
		if seen[name] {
			continue
		}
		seen[name] = true
		c, err := e.lookup(name)
		if err != nil {
			return err
		}
		targets = append(targets, c)
	}
	if err := prepare(&ev, e.now().UnixNano()); err != nil {
		return err
	}
	var errs []error
	for _, c := range targets {
		if err := c.publishOne(ctx, &ev); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Subscribe starts a subscription to a channel; it receives the events
// published from now on that its filter selects (on a persistent channel,
// from its Start position, or where its Durable consumer left off). It
// enforces the channel's and the engine's subscriber limits
// ([ErrTooManySubscribers]) and refuses delivery and ack modes and options
// that the channel cannot honour ([ErrUnsupported]) rather than silently
// downgrading them. See [SubscribeOptions] for what persistent channels
// promise.
func (e *Engine) Subscribe(channel string, opts SubscribeOptions) (*Subscription, error) {
	return e.subscribe(channel, opts, false)
}

// subscribe is Subscribe; with source, a persistent channel's consumer
// belongs to a pipeline's source, which acknowledges what the pipeline is
// done with.
func (e *Engine) subscribe(channel string, opts SubscribeOptions, source bool) (*Subscription, error) {
	switch {
	case opts.DeliveryMode > ExactlyOnce:
		return nil, channelErr(channel, fmt.Errorf("unknown delivery mode %d", opts.DeliveryMode))
	case opts.AckMode > AckNone:
		return nil, channelErr(channel, fmt.Errorf("unknown ack mode %d", opts.AckMode))
	case opts.BufferSize < 0:
		return nil, channelErr(channel, fmt.Errorf("buffer size %d is negative", opts.BufferSize))
	}
	c, err := e.lookup(channel)
	if err != nil {
		return nil, err
	}
	if c.st != nil {
		if err := checkDurableSubscribe(opts); err != nil {
			return nil, channelErr(channel, err)
		}
	} else {
		switch {
		case opts.DeliveryMode != AtMostOnce:
			return nil, channelErr(channel, fmt.Errorf("%w: delivery mode %s needs a persistent channel; in-memory channels deliver at-most-once", ErrUnsupported, opts.DeliveryMode))
		case opts.AckMode == AckManual:
			return nil, channelErr(channel, fmt.Errorf("%w: ack mode manual needs a persistent channel; in-memory channels acknowledge on receipt (auto) or not at all (none)", ErrUnsupported))
		}
		if what := durableOnlySubscribe(opts); what != "" {
			return nil, channelErr(channel, fmt.Errorf("%w: %s need(s) a persistent channel", ErrUnsupported, what))
		}
	}
	// Reserve a slot under the engine-wide limit first, atomically.
	for {
		n := e.subCount.Load()
		if e.cfg.MaxSubscribers > 0 && n >= int64(e.cfg.MaxSubscribers) {
			return nil, channelErr(channel, fmt.Errorf("%w: the engine allows %d", ErrTooManySubscribers, e.cfg.MaxSubscribers))
		}
		if e.subCount.CompareAndSwap(n, n+1) {
			break
		}
	}
	size := opts.BufferSize
	if size == 0 {
		size = c.cfg.BufferSize
	}
	s := &Subscription{
		id:      fmt.Sprintf("sub-%d", e.nextSub.Add(1)),
		opts:    opts,
		created: e.now(),
		ch:      c,
	}
	if c.st != nil {
		s.q = newQueue(0) // only its closing is used
	} else {
		s.q = newQueue(size)
	}
	s.opts.Metadata = maps.Clone(opts.Metadata)
	if s.opts.Subscriber == "" {
		s.opts.Subscriber = s.id
	}
	if opts.Filter != nil {
		s.filterDesc = fmt.Sprint(opts.Filter)
	}
	if c.st != nil {
		if s.d, err = newDurableSub(s, size, source); err != nil {
			e.subCount.Add(-1)
			return nil, err
		}
	}
	// Record the subscriber before attaching, so the record exists by the
	// time the subscription can be closed.
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.subCount.Add(-1)
		if s.d != nil {
			s.d.stop()
		}
		return nil, ErrEngineClosed
	}
	e.subscribers[s.opts.Subscriber] = append(e.subscribers[s.opts.Subscriber], s)
	e.mu.Unlock()
	if err := c.attach(s); err != nil {
		e.forget(s)
		if s.d != nil {
			s.d.stop()
		}
		return nil, err
	}
	if s.d != nil {
		s.d.startDeadLetters()
	}
	return s, nil
}

// forget drops the engine's record of s and frees its slot. It runs once per
// subscription, from Subscription.end or a failed Subscribe.
func (e *Engine) forget(s *Subscription) {
	e.mu.Lock()
	name := s.opts.Subscriber
	list := e.subscribers[name]
	if i := slices.Index(list, s); i >= 0 {
		list = slices.Delete(list, i, i+1)
		if len(list) == 0 {
			delete(e.subscribers, name)
		} else {
			e.subscribers[name] = list
		}
		e.subCount.Add(-1)
	}
	e.mu.Unlock()
}

// Subscriptions returns the records of a channel's subscriptions, oldest
// first.
func (e *Engine) Subscriptions(channel string) ([]SubscriptionInfo, error) {
	c, err := e.lookup(channel)
	if err != nil {
		return nil, err
	}
	subs := c.subscriptions()
	out := make([]SubscriptionInfo, len(subs))
	for i, s := range subs {
		out[i] = s.Info()
	}
	return out, nil
}

// Subscribers returns the records of every subscriber, sorted by name.
func (e *Engine) Subscribers() []SubscriberInfo {
	e.mu.RLock()
	out := make([]SubscriberInfo, 0, len(e.subscribers))
	for name, subs := range e.subscribers {
		info := SubscriberInfo{Name: name, Subscriptions: make([]string, len(subs))}
		for i, s := range subs {
			info.Subscriptions[i] = s.id
		}
		out = append(out, info)
	}
	e.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// History returns retained events of a channel that match q, oldest first.
// A persistent channel answers from its stream (see [MaxDurableHistory]).
func (e *Engine) History(channel string, q HistoryQuery) ([]Event, error) {
	c, err := e.lookup(channel)
	if err != nil {
		return nil, err
	}
	if c.st != nil {
		events, err := c.historyDurable(q)
		if err != nil {
			return nil, channelErr(channel, fmt.Errorf("history: %w", err))
		}
		return events, nil
	}
	if q.AfterSeq != 0 {
		return nil, channelErr(channel, fmt.Errorf("history: %w: after a sequence number needs a persistent channel", ErrUnsupported))
	}
	events, err := c.hist.query(q, e.now().UnixNano())
	if err != nil {
		return nil, channelErr(channel, fmt.Errorf("after event %s: %w", q.AfterID, err))
	}
	return events, nil
}

// ChannelStats are one channel's counters.
type ChannelStats struct {
	Name        string
	Published   uint64 // events accepted
	Delivered   uint64 // events taken by receivers
	Dropped     uint64 // events lost to the slow-subscriber policy
	Duplicates  uint64 // events a persistent channel already held (same ID within its duplicate window), not stored again
	Subscribers int
	// Lag is the events its subscriptions have not finished, summed
	// ([SubscriptionInfo.Lag]): those waiting in their buffers (in
	// memory), or Pending plus AckPending (persistent). MaxLag is the most
	// of one subscription.
	Lag, MaxLag uint64
	// Persistent channels only, summed over its subscriptions' consumers:
	// Pending is the events not yet delivered, AckPending those delivered
	// and not yet acknowledged, Redelivered how many of those were
	// delivered more than once.
	Pending, AckPending, Redelivered uint64
	Retained                         int // events in its history
}

// Stats are the engine's counters. Published, Delivered and Dropped count
// since the engine started, deleted channels included.
type Stats struct {
	Channels    int
	Subscribers int
	Published   uint64
	Delivered   uint64
	Dropped     uint64
	Lag         uint64
	PerChannel  []ChannelStats // sorted by name
}

// ChannelStats returns one channel's counters.
func (e *Engine) ChannelStats(channel string) (ChannelStats, error) {
	c, err := e.lookup(channel)
	if err != nil {
		return ChannelStats{}, err
	}
	return c.stats(), nil
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	infos := e.Channels()
	st := Stats{
		Channels:    len(infos),
		Subscribers: int(e.subCount.Load()),
		Published:   e.published.Load(),
		Delivered:   e.delivered.Load(),
		Dropped:     e.dropped.Load(),
		PerChannel:  make([]ChannelStats, len(infos)),
	}
	for i, info := range infos {
		st.PerChannel[i] = info.Stats
		st.Lag += info.Stats.Lag
	}
	return st
}

// Close deletes every channel; their receivers get [ErrEngineClosed] after
// what they hold, and later calls fail with [ErrEngineClosed]. Persistent
// channels stay in the durable store, which Close then stops (embedded)
// or disconnects from.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	chans := e.channels
	e.channels = make(map[string]*channel)
	regs := e.metrics
	e.metrics = nil
	e.mu.Unlock()
	for _, r := range regs {
		r.Unregister()
	}
	for _, c := range chans {
		c.remove(ErrEngineClosed)
	}
	if e.dur != nil {
		if err := e.dur.close(); err != nil {
			return fmt.Errorf("durable store: %w", err)
		}
	}
	return nil
}
