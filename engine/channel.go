package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

// channel is one named channel: its subscriptions, history and counters.
type channel struct {
	name    string
	cfg     ChannelConfig
	eng     *Engine
	created time.Time
	hist    *history
	st      *jetstream.Stream // a persistent channel's stream; nil in memory

	// pubMu serialises publishers, which keeps one order of events for
	// every subscriber and makes "room in every buffer" a stable fact while
	// it is held (only receivers run concurrently, and they only make room).
	pubMu   sync.Mutex
	scratch [1]Event // Publish's single event, so it does not escape
	targets []target

	mu      sync.Mutex                      // guards subs' writers and deleted
	subs    atomic.Pointer[[]*Subscription] // copy on write, read without locks
	deleted chan struct{}                   // closed when the channel is deleted
	delErr  error

	published  atomic.Uint64
	delivered  atomic.Uint64
	dropped    atomic.Uint64
	duplicates atomic.Uint64
}

func newChannel(eng *Engine, name string, cfg ChannelConfig) *channel {
	r := cfg.Retention
	if cfg.Persistent {
		// The stream is the history, and its retention the stream's: an
		// in-memory ring of MaxEvents would only be allocated to go unused.
		r = Retention{}
	}
	c := &channel{
		name:    name,
		cfg:     cfg,
		eng:     eng,
		created: eng.now(),
		hist:    newHistory(r),
		deleted: make(chan struct{}),
	}
	c.subs.Store(&[]*Subscription{})
	return c
}

func (c *channel) subscriptions() []*Subscription { return *c.subs.Load() }

// attach adds s, enforcing the channel's subscriber limit.
func (c *channel) attach(s *Subscription) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.delErr != nil {
		return channelErr(c.name, c.delErr)
	}
	old := c.subscriptions()
	if c.cfg.MaxSubscribers > 0 && len(old) >= c.cfg.MaxSubscribers {
		return channelErr(c.name, fmt.Errorf("%w: the channel allows %d", ErrTooManySubscribers, c.cfg.MaxSubscribers))
	}
	next := append(slices.Clip(old), s)
	c.subs.Store(&next)
	return nil
}

// detach removes s from the channel and the engine's records.
func (c *channel) detach(s *Subscription) {
	c.mu.Lock()
	old := c.subscriptions()
	if i := slices.Index(old, s); i >= 0 {
		next := slices.Delete(slices.Clone(old), i, i+1)
		c.subs.Store(&next)
	}
	c.mu.Unlock()
	c.eng.forget(s)
}

// remove ends every subscription with reason (after what they hold) and
// wakes any waiting publisher.
func (c *channel) remove(reason error) {
	c.mu.Lock()
	if c.delErr != nil {
		c.mu.Unlock()
		return
	}
	c.delErr = reason
	close(c.deleted)
	subs := c.subscriptions()
	c.mu.Unlock()
	for _, s := range subs {
		s.end(reason, true)
	}
}

func (c *channel) isDeleted() error {
	select {
	case <-c.deleted:
		return c.delErr
	default:
		return nil
	}
}

// publishOne publishes a single event without allocating.
func (c *channel) publishOne(ctx context.Context, ev *Event) error {
	if c.st != nil {
		return c.publishDurable(ctx, []Event{*ev})
	}
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.scratch[0] = *ev
	err := c.publishLocked(ctx, c.scratch[:])
	c.scratch[0] = Event{}
	return err
}

func (c *channel) publish(ctx context.Context, events []Event) error {
	if c.st != nil {
		return c.publishDurable(ctx, events)
	}
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	return c.publishLocked(ctx, events)
}

// target is one subscription's share of a publish: all events, or the
// sorted indices of those its filter selects.
type target struct {
	s   *Subscription
	all bool
	idx []int32
}

// publishLocked delivers events, in order, to every subscription whose filter
// matches, applying the slow-subscriber policy, and appends what was
// delivered to the history. Under Block an event reaches every matching
// subscription or none: it goes out in chunks that fit every buffer.
func (c *channel) publishLocked(ctx context.Context, events []Event) error {
	if err := c.isDeleted(); err != nil {
		return &PublishError{Channel: c.name, Err: err}
	}
	subs := c.subscriptions()
	if cap(c.targets) < len(subs) {
		c.targets = append(c.targets[:cap(c.targets)], make([]target, len(subs)-cap(c.targets))...)
	}
	targets := c.targets[:len(subs)]
	for i, s := range subs {
		t := &targets[i]
		t.s, t.all, t.idx = s, s.opts.Filter == nil, t.idx[:0]
		if t.all {
			continue
		}
		for j := range events {
			if s.opts.Filter.Match(&events[j]) {
				t.idx = append(t.idx, int32(j))
			}
		}
	}
	defer func() {
		for i := range targets {
			targets[i].s = nil // do not keep closed subscriptions alive
		}
	}()

	if c.cfg.SlowSubscriber != Block {
		// The filters may have taken a while: a channel deleted meanwhile
		// delivers nothing, so nothing may be reported as published.
		if err := c.isDeleted(); err != nil {
			return &PublishError{Channel: c.name, Err: err}
		}
		c.deliverAll(targets, events)
		c.accept(events)
		return nil
	}

	var timer *time.Timer
	timed := -1 // the position whose wait the timer measures
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for pos := 0; pos < len(events); {
		// Checked on every round, not only while waiting: a wait can end
		// because the deletion closed the blocker's queue, and the filters
		// may have run while the channel was being deleted. A deleted
		// channel's queues are closed and would swallow the events.
		if err := c.isDeleted(); err != nil {
			return &PublishError{Channel: c.name, Published: pos, Err: err}
		}
		end, blocker := fit(targets, pos, len(events))
		if end == pos {
			// blocker has no room for the next event it selects: wait. The
			// block timeout bounds the wait for room for one event; it
			// starts again once events got through.
			if timer == nil {
				timer = time.NewTimer(c.cfg.BlockTimeout)
			} else if timed != pos {
				timer.Reset(c.cfg.BlockTimeout)
			}
			timed = pos
			select {
			case <-blocker.q.notFull:
			case <-blocker.q.done:
			case <-c.deleted:
				return &PublishError{Channel: c.name, Published: pos, Err: c.delErr}
			case <-ctx.Done():
				return &PublishError{Channel: c.name, Published: pos, Err: ctx.Err()}
			case <-timer.C:
				return &PublishError{Channel: c.name, Published: pos,
					Err: fmt.Errorf("%w: subscription[%s] had no room for %v", ErrPublishTimeout, blocker.id, c.cfg.BlockTimeout)}
			}
			continue
		}
		for i := range targets {
			t := &targets[i]
			if t.all {
				t.s.q.push(events[pos:end], nil, false)
			} else if idx := span(t.idx, pos, end); len(idx) > 0 {
				t.s.q.push(events, idx, false)
			}
		}
		c.accept(events[pos:end])
		pos = end
	}
	return nil
}

// fit returns the largest end in (pos, limit] such that every subscription
// has room for the events of [pos, end) it selects, or pos and the
// subscription that has no room for even the next one.
func fit(targets []target, pos, limit int) (int, *Subscription) {
	end := limit
	for i := range targets {
		t := &targets[i]
		free := t.s.q.free()
		if t.all {
			if free < end-pos {
				end = pos + free
			}
		} else if idx := span(t.idx, pos, end); len(idx) > free {
			end = int(idx[free]) // the first event it has no room for
		}
		if end == pos {
			return pos, t.s
		}
	}
	return end, nil
}

// span returns the part of the sorted index list idx that falls in
// [from, to).
func span(idx []int32, from, to int) []int32 {
	lo, _ := slices.BinarySearch(idx, int32(from))
	hi, _ := slices.BinarySearch(idx, int32(to))
	return idx[lo:hi]
}

// deliverAll delivers without waiting, under DropOldest or Disconnect.
func (c *channel) deliverAll(targets []target, events []Event) {
	overwrite := c.cfg.SlowSubscriber == DropOldest
	for i := range targets {
		t := &targets[i]
		want, idx := len(events), []int32(nil)
		if !t.all {
			want, idx = len(t.idx), t.idx
			if want == 0 {
				continue
			}
		}
		stored, overwritten := t.s.q.push(events, idx, overwrite)
		if stored == 0 && t.s.q.closed() != nil {
			continue // it went away while we published; nothing is owed
		}
		if stored < want {
			t.s.end(ErrSlowSubscriber, true)
		}
		if lost := overwritten + want - stored; lost > 0 {
			t.s.dropped.Add(uint64(lost))
			c.dropped.Add(uint64(lost))
			c.eng.dropped.Add(uint64(lost))
		}
	}
}

// accept counts events as published and keeps them in the history.
func (c *channel) accept(events []Event) {
	c.published.Add(uint64(len(events)))
	c.eng.published.Add(uint64(len(events)))
	c.hist.append(events, c.eng.now().UnixNano())
}

// stats gathers the channel's counters.
func (c *channel) stats() ChannelStats {
	st := ChannelStats{
		Name:       c.name,
		Published:  c.published.Load(),
		Delivered:  c.delivered.Load(),
		Dropped:    c.dropped.Load(),
		Duplicates: c.duplicates.Load(),
		Retained:   c.hist.len(c.eng.now().UnixNano()),
	}
	if c.st != nil {
		ctx, cancel := c.eng.dur.ctx()
		if in, err := c.st.Info(ctx); err == nil {
			st.Retained = int(in.Msgs)
		}
		cancel()
	}
	for _, s := range c.subscriptions() {
		st.Subscribers++
		lag := uint64(s.q.len())
		if s.d != nil {
			// A consumer whose state cannot be read counts as no lag.
			ci, _ := s.d.state()
			lag = ci.Lag()
			st.Pending += ci.Pending
			st.AckPending += uint64(ci.AckPending)
			st.Redelivered += uint64(ci.Redelivered)
		}
		st.Lag += lag
		st.MaxLag = max(st.MaxLag, lag)
	}
	return st
}
