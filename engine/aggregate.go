package engine

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"sync/atomic"
	"time"
)

// DefaultMaxEmptyWindows is the MaxEmptyWindows of an [AggregationConfig]
// that leaves it zero.
const DefaultMaxEmptyWindows = 1000

// AggregationConfig configures an [Aggregation].
type AggregationConfig struct {
	// Name is the step's name: it names the aggregation in errors and in
	// its results' metadata, and goes into their IDs. Required.
	Name string
	// Key gives each event's group key (see [KeyBy]); nil puts every event
	// in one group whose key is "".
	Key KeyFunc
	// Window says how event time is cut into windows.
	Window WindowSpec
	// Watermark is the bounded out-of-orderness: the watermark is the
	// newest event time seen minus Watermark. Zero trusts events to come
	// in time order.
	Watermark time.Duration
	// AllowedLateness is how long, in event time past a window's end, its
	// state is kept after it fired so that late events can still update it
	// (each update fires the window again). Zero fires each window once.
	AllowedLateness time.Duration
	// Aggregator computes the results. Required.
	Aggregator Aggregator
	// MaxEmptyWindows bounds the consecutive empty windows fired for one
	// group key of tumbling or sliding windows, after which the key is
	// forgotten until it has an event again. Zero means
	// [DefaultMaxEmptyWindows]; a negative value fires no empty windows.
	MaxEmptyWindows int
}

// AggregationStats are an [Aggregation]'s counters (since it was made) and
// gauges.
type AggregationStats struct {
	// Events is the number of events folded into at least one window.
	Events uint64
	// Late is the number of events too late for every window they belong
	// to, sent to the late output.
	Late uint64
	// Failed is the number of events reported in [EventErrors]: no key, a
	// time too close to the limits of int64, or rejected by the aggregator.
	Failed uint64
	// WindowsFired is the number of window results (Finish calls): on-time,
	// late and empty ones.
	WindowsFired uint64
	// LateFirings is the number of those that fired a window again.
	LateFirings uint64
	// OpenWindows is the number of windows whose state is kept: not fired
	// yet, or fired and kept for late events.
	OpenWindows uint64
	// Groups is the number of group keys with state.
	Groups uint64
	// Watermark is the current watermark in nanoseconds since the epoch;
	// math.MinInt64 before the first event.
	Watermark int64
}

// Aggregation is keyed, windowed aggregation by event time: it assigns
// events to a group (by key) and to windows, folds them into the groups'
// accumulators through an [Aggregator], and appends the results of the
// windows that close. It keeps the state; the Aggregator only computes.
//
// # Time
//
// Event time is [Event.Time]. The watermark is the newest event time seen
// minus [AggregationConfig.Watermark] (math.MinInt64 before the first
// event); it never goes back. Within one Process call it advances event by
// event in input order: each event is judged against the watermark of the
// events before it, so which events are late does not depend on how the
// input is cut into batches. Windows fire at the end of the call, with
// all of the call's events in them.
//
// A window fires (its results are appended to out) once the watermark
// reaches its end. Its state is then kept until the watermark reaches end
// + AllowedLateness. An event that arrives for it before then is folded in
// and the window fires again at the end of the call: a late firing, whose
// results replace the earlier ones. An event whose every window is past
// end + AllowedLateness is late: it goes to the late output unchanged and
// is counted; an event some of whose windows are still kept goes to those.
// Results are appended sorted by window end, then window start, then key.
//
// # Windows
//
// Tumbling and sliding windows are aligned to the epoch (see
// [WindowSpec]). For every key seen, the windows from its first one up to
// the watermark that have no events fire too, with an empty accumulator
// (so the count of an empty window is 0, not missing), and are kept for
// late events like the others. After MaxEmptyWindows consecutive empty
// windows a key's empty windows are skipped up to its next window with
// events; a key with none is forgotten (its state dropped once its windows
// are past their allowed lateness) until it has an event again, in a
// window at or after where it stopped: an event for an older window
// updates that window alone.
//
// Session windows are per key. An event less than Gap after a session's
// last event, or less than Gap before its first, joins it; otherwise it
// starts a new session. A session's window is [first event time, last
// event time + Gap). An out-of-order event that bridges two sessions
// merges them (with [Aggregator.Merge]) into one window that includes
// both; a session is never merged once it is past its allowed lateness.
// Sessions have no empty windows.
//
// # Results
//
// A window's results are whatever [Aggregator.Finish] appended. On each
// the Aggregation sets the metadata "aegis.window.start" and
// "aegis.window.end" (RFC 3339 with nanoseconds, UTC), "aegis.key" (the
// group key), "aegis.step" (the Name) and "aegis.window.firing":
// "on-time" for a window's first results (also when its first events came
// after the watermark passed its end, within the allowed lateness),
// "late" for the results of a later firing, which replace them. Where
// Finish left them zero, Time is the window's end minus 1ns, Source is
// "aegis:aggregate:<Name>" and ID is a deterministic UUID (version 8: the
// first 128 bits of SHA-256 over the step name, the key, the window, the
// firing number and the result's position in the firing), so that a
// replay of the same input in the same batches produces the same IDs.
//
// # Failures
//
// An event without a key, with a time whose windows would not fit in
// int64, or that [Aggregator.Accumulate] rejects (with [EventErrors]) is
// folded into nothing and reported in the *EventErrors that Process
// returns, whose indices refer to Process's input. Its time still counts
// for the watermark, and a rejected event still shapes the session it
// falls in (sessions are cut before the aggregator sees the events). A
// window whose events were all rejected is not created.
//
// Any other error leaves the Aggregation exactly as it was before the call
// (accumulators, watermark, fired windows, counters): it computes the new
// state aside and commits it only once every Accumulate, Merge and Finish
// call succeeded, so the caller may retry the batch or re-run it event by
// event. The Aggregator must not modify the accumulators it is given; the
// Aggregation keeps copies of those it returns.
//
// An Aggregation is not safe for concurrent use, except for [Aggregation.Stats].
type Aggregation struct {
	name     string
	key      KeyFunc
	kind     WindowKind
	win      WindowSpec
	size     int64 // tumbling and sliding
	every    int64 // tumbling and sliding: the step between window starts
	gap      int64 // session
	delay    int64 // the watermark's delay
	lateness int64
	agg      Aggregator
	maxEmpty int // < 0: no empty windows

	groups  map[string]*aggGroup
	due     []aggDue // min-heap of when groups need attention
	seen    bool     // an event was seen since the start (or Flush(all))
	maxSeen int64    // the newest event time seen
	wm      int64    // the watermark
	open    int      // windows held, over all groups

	counters struct {
		events, late, failed, fired, lateFirings, open, groups atomic.Uint64
		watermark                                              atomic.Int64
	}

	tx aggTx
}

// aggGroup is the state of one group key.
type aggGroup struct {
	wins []aggWin // sorted by start, then end
	// Tumbling and sliding: empty windows are fired from cursor on while
	// active; cursor is the start of the next window the watermark has not
	// passed for this key. When the key is forgotten (not active) cursor
	// stays where it stopped. While fresh (the cursor has not moved since
	// the key was first seen or woken) an event for an earlier window, but
	// not earlier than floor, moves the cursor back.
	cursor, floor int64
	active, fresh bool
	empties       int   // consecutive empty windows fired
	due           int64 // when the group next needs attention: a window to fire or purge
}

// aggWin is the state of one window of a group.
type aggWin struct {
	start, end int64
	acc        []byte
	fired      uint32 // times fired
	dirty      bool   // changed since it last fired
}

type aggDue struct {
	due int64
	key string
}

// aggFiring is one window to finish.
type aggFiring struct {
	key        string
	start, end int64
	acc        []byte
	number     uint32 // 0 for the first firing
}

// aggTx is the scratch of one Process or Flush call.
type aggTx struct {
	index    map[string]int32 // key -> position in groups
	groups   []aggBatchGroup
	sub      []Event
	failed   []EventError
	failedAt map[int]bool // in-indices already in failed, once the aggregator rejects some
	pending  map[string]*aggGroup
	firings  []aggFiring
	stack    []int
}

// aggBatchGroup is what one Process call does to a group.
type aggBatchGroup struct {
	key string
	old *aggGroup // the committed state; nil for a new key
	// tumbling and sliding: the windows that receive events, by start
	wins []aggBatchWin
	// sessions: the key's sessions after the call, sorted and disjoint, and
	// those that the watermark closed for good during the call
	ivs, sealed []aggSession
}

type aggBatchWin struct {
	start int64
	idx   []int32 // events, as indices into in
}

type aggSession struct {
	start, end int64
	members    []int32 // committed sessions merged into it, as indices into old.wins
	idx        []int32 // events, as indices into in
}

// NewAggregation returns an Aggregation, after checking cfg.
func NewAggregation(cfg AggregationConfig) (*Aggregation, error) {
	if cfg.Name == "" {
		return nil, errors.New("aggregation: name is empty")
	}
	wrap := func(format string, args ...any) error {
		return fmt.Errorf("aggregate[%s]: "+format, append([]any{cfg.Name}, args...)...)
	}
	if cfg.Aggregator == nil {
		return nil, wrap("no aggregator")
	}
	if err := cfg.Window.Validate(); err != nil {
		return nil, wrap("%w", err)
	}
	if cfg.Watermark < 0 {
		return nil, wrap("watermark must not be negative, got %v", cfg.Watermark)
	}
	if cfg.AllowedLateness < 0 {
		return nil, wrap("allowed lateness must not be negative, got %v", cfg.AllowedLateness)
	}
	a := &Aggregation{
		name:     cfg.Name,
		key:      cfg.Key,
		kind:     cfg.Window.Kind,
		win:      cfg.Window,
		size:     int64(cfg.Window.Size),
		every:    cfg.Window.every(),
		gap:      int64(cfg.Window.Gap),
		delay:    int64(cfg.Watermark),
		lateness: int64(cfg.AllowedLateness),
		agg:      cfg.Aggregator,
		maxEmpty: cfg.MaxEmptyWindows,
		groups:   make(map[string]*aggGroup),
		wm:       minTime,
	}
	if a.maxEmpty == 0 {
		a.maxEmpty = DefaultMaxEmptyWindows
	}
	if a.kind == Session {
		a.maxEmpty = -1
	}
	a.counters.watermark.Store(minTime)
	return a, nil
}

// Stats returns the counters and gauges. It is safe to call from any
// goroutine, also while Process runs.
func (a *Aggregation) Stats() AggregationStats {
	c := &a.counters
	return AggregationStats{
		Events:       c.events.Load(),
		Late:         c.late.Load(),
		Failed:       c.failed.Load(),
		WindowsFired: c.fired.Load(),
		LateFirings:  c.lateFirings.Load(),
		OpenWindows:  c.open.Load(),
		Groups:       c.groups.Load(),
		Watermark:    c.watermark.Load(),
	}
}

// Process assigns each event of in to its group and window(s), folds the
// events in (one Accumulate call per group and window per call, never per
// event), advances the watermark, and appends to out the results of the
// windows that the watermark closed and to late the events that are too
// late (see [Aggregation] for the rules). It returns both slices.
//
// When some events failed (no key, a time whose windows do not fit in
// int64, rejected by the aggregator) it returns an *[EventErrors] whose
// indices refer to in, in order, together with valid out and late for the
// others. Any other error leaves the Aggregation as it was and returns out
// and late as they were given.
func (a *Aggregation) Process(ctx context.Context, in []Event, out, late []Event) ([]Event, []Event, error) {
	out0, late0 := out, late
	if err := ctx.Err(); err != nil {
		return out, late, a.errorf("%w", err)
	}
	if len(in) > math.MaxInt32 {
		return out, late, a.errorf("a batch of %d events is too large", len(in))
	}
	tx := &a.tx
	tx.reset()
	defer tx.reset()

	// 1. Assign the events to groups and windows, judging each against the
	// watermark of the events before it.
	wm, maxSeen, seen := a.wm, a.maxSeen, a.seen
	placed, nLate := 0, 0
	for i := range in {
		e := &in[i]
		if !a.timeFits(e.Time) {
			// Not a time to window, nor to move the watermark to.
			tx.fail(i, 0, errTimeRange(e.Time).Error())
			continue
		}
		var ok bool
		if key, err := a.keyOf(e); err != nil {
			tx.fail(i, 0, err.Error())
		} else if a.kind == Session {
			ok = a.assignSession(tx, key, i, e.Time, wm)
		} else {
			ok = a.assignWindows(tx, key, i, e.Time, wm)
		}
		if ok {
			placed++
		} else if len(tx.failed) == 0 || tx.failed[len(tx.failed)-1].Index != i {
			late = append(late, *e)
			nLate++
		}
		if !seen || e.Time > maxSeen {
			maxSeen, seen = e.Time, true
			wm = max(wm, satAdd(maxSeen, -a.delay))
		}
	}
	keyFailed := len(tx.failed)

	// 2. Compute the new accumulators aside.
	if err := a.accumulateAll(ctx, in); err != nil {
		return out0, late0, err
	}

	// 3. Fire and purge what the new watermark closed.
	a.fireDue(wm)
	out, err := a.finishAll(ctx, out)
	if err != nil {
		return out0, late0, err
	}

	// 4. Commit.
	a.commit(wm)
	a.wm, a.maxSeen, a.seen = wm, maxSeen, seen
	c := &a.counters
	c.events.Add(uint64(placed - (len(tx.failed) - keyFailed)))
	c.late.Add(uint64(nLate))
	c.failed.Add(uint64(len(tx.failed)))
	c.watermark.Store(wm)
	if len(tx.failed) > 0 {
		slices.SortFunc(tx.failed, func(x, y EventError) int { return cmp.Compare(x.Index, y.Index) })
		return out, late, &EventErrors{Step: a.name, Errors: slices.Clone(tx.failed)}
	}
	return out, late, nil
}

// Flush appends the results of windows that have not fired, or changed
// since they fired, without waiting for the watermark, and returns out.
//
// With all set (the end of the stream) it fires every such window, and the
// empty windows of tumbling and sliding keys up to the window of the
// newest event time, then forgets everything: the Aggregation starts
// afresh, watermark included (its counters go on). Without all (a graceful
// shutdown) it fires only the complete windows, those whose end is at or
// before the newest event time seen, and keeps the others; the watermark
// does not move, so windows fired early are kept until it passes their
// allowed lateness as usual.
//
// An error leaves the Aggregation as it was and out as it was given.
func (a *Aggregation) Flush(ctx context.Context, out []Event, all bool) ([]Event, error) {
	out0 := out
	if err := ctx.Err(); err != nil {
		return out, a.errorf("flush: %w", err)
	}
	if !a.seen {
		return out, nil
	}
	tx := &a.tx
	tx.reset()
	defer tx.reset()
	// Fire up to the newest event time (everything, for all), judge
	// lateness and purge by the watermark, which does not move.
	fireWm, purgeWm, emptyLimit := max(a.wm, a.maxSeen), a.wm, max(a.wm, a.maxSeen)
	if all {
		fireWm = maxTime
		if a.kind != Session {
			emptyLimit = max(emptyLimit, a.win.lastEnd(a.maxSeen))
		}
	}
	for key, g := range a.groups {
		tx.pending[key] = a.fire(key, cloneGroup(g), fireWm, purgeWm, emptyLimit)
	}
	out, err := a.finishAll(ctx, out)
	if err != nil {
		return out0, err
	}
	a.countFirings()
	if all {
		a.groups = make(map[string]*aggGroup)
		a.due = a.due[:0]
		a.open = 0
		a.seen, a.maxSeen, a.wm = false, 0, minTime
		a.counters.watermark.Store(minTime)
	} else {
		for key, g := range tx.pending {
			if g == nil {
				delete(a.groups, key)
			} else {
				a.groups[key] = g
			}
		}
		a.rebuildDue()
		a.open = 0
		for _, g := range a.groups {
			a.open += len(g.wins)
		}
	}
	a.counters.open.Store(uint64(a.open))
	a.counters.groups.Store(uint64(len(a.groups)))
	return out, nil
}

func (a *Aggregation) errorf(format string, args ...any) error {
	return fmt.Errorf("aggregate[%s]: "+format, append([]any{a.name}, args...)...)
}

// timeFits reports whether the windows of an event at t fit in int64.
func (a *Aggregation) timeFits(t int64) bool {
	if a.kind == Session {
		_, ok := addNoOverflow(t, a.gap)
		return ok
	}
	_, _, ok := a.win.startRange(t)
	return ok
}

func (a *Aggregation) keyOf(e *Event) (string, error) {
	if a.key == nil {
		return "", nil
	}
	return a.key(e)
}

func (tx *aggTx) reset() {
	if tx.index == nil {
		tx.index = make(map[string]int32)
		tx.pending = make(map[string]*aggGroup)
	}
	clear(tx.index)
	clear(tx.pending)
	for i := range tx.groups {
		g := &tx.groups[i]
		g.key, g.old, g.wins, g.ivs, g.sealed = "", nil, g.wins[:0], nil, nil
	}
	tx.groups = tx.groups[:0]
	clear(tx.sub)
	tx.sub = tx.sub[:0]
	tx.failed = tx.failed[:0]
	tx.failedAt = nil
	clear(tx.firings)
	tx.firings = tx.firings[:0]
}

// fail records that event i of the input failed. The aggregator may reject
// an event in several windows; it is reported once.
func (tx *aggTx) fail(i int, code uint32, msg string) {
	if tx.failedAt != nil {
		if tx.failedAt[i] {
			return
		}
		tx.failedAt[i] = true
	}
	tx.failed = append(tx.failed, EventError{Index: i, Code: code, Message: msg})
}

// group returns the position of key's batch group, making it.
func (a *Aggregation) group(tx *aggTx, key string) int {
	if gi, ok := tx.index[key]; ok {
		return int(gi)
	}
	gi := len(tx.groups)
	if gi < cap(tx.groups) {
		tx.groups = tx.groups[:gi+1]
	} else {
		tx.groups = append(tx.groups, aggBatchGroup{})
	}
	g := &tx.groups[gi]
	g.key, g.old = key, a.groups[key]
	tx.index[key] = int32(gi)
	return gi
}

// assignWindows places event i at time t in its tumbling or sliding
// windows that are not past their allowed lateness. It reports whether
// there was one; if not, the event is late, or failed.
func (a *Aggregation) assignWindows(tx *aggTx, key string, i int, t, wm int64) bool {
	first, last, _ := a.win.startRange(t) // checked by timeFits
	// Windows later in time close later: skip the closed ones at the front.
	for first <= last && satAdd(first+a.size, a.lateness) <= wm {
		first += a.every
	}
	if first > last {
		return false
	}
	g := &tx.groups[a.group(tx, key)]
	pos, _ := slices.BinarySearchFunc(g.wins, first, func(w aggBatchWin, s int64) int { return cmp.Compare(w.start, s) })
	for s := first; ; s += a.every {
		for pos < len(g.wins) && g.wins[pos].start < s {
			pos++
		}
		if pos == len(g.wins) || g.wins[pos].start != s {
			// Insert, keeping the spare slot's index storage.
			n := len(g.wins)
			if n < cap(g.wins) {
				g.wins = g.wins[:n+1]
			} else {
				g.wins = append(g.wins, aggBatchWin{})
			}
			spare := g.wins[n].idx
			copy(g.wins[pos+1:], g.wins[pos:n])
			g.wins[pos] = aggBatchWin{start: s, idx: spare[:0]}
		}
		g.wins[pos].idx = append(g.wins[pos].idx, int32(i))
		if s == last {
			break
		}
	}
	return true
}

// assignSession places event i at time t in key's sessions, merging those
// it bridges. It reports whether it did; if not, the event is late, or
// failed.
func (a *Aggregation) assignSession(tx *aggTx, key string, i int, t, wm int64) bool {
	end := t + a.gap // checked by timeFits
	gi := a.group(tx, key)
	g := &tx.groups[gi]
	if g.ivs == nil && g.old != nil {
		g.ivs = make([]aggSession, len(g.old.wins), len(g.old.wins)+1)
		for m, w := range g.old.wins {
			g.ivs[m] = aggSession{start: w.start, end: w.end, members: []int32{int32(m)}}
		}
	}
	// The sessions that [t, end) overlaps are j..k-1 (the sessions are
	// disjoint and sorted, so their ends are sorted too).
	ivs := g.ivs
	j := sort.Search(len(ivs), func(x int) bool { return ivs[x].end > t })
	k, alive := j, 0
	for ; k < len(ivs) && ivs[k].start < end; k++ {
		if satAdd(ivs[k].end, a.lateness) > wm {
			alive++
		}
	}
	if alive == 0 && satAdd(end, a.lateness) <= wm {
		return false
	}
	s := aggSession{start: t, end: end, idx: []int32{int32(i)}}
	for _, iv := range ivs[j:k] {
		if satAdd(iv.end, a.lateness) <= wm {
			g.sealed = append(g.sealed, iv) // closed for good: never merged
			continue
		}
		s.start, s.end = min(s.start, iv.start), max(s.end, iv.end)
		s.members = append(s.members, iv.members...)
		s.idx = append(s.idx, iv.idx...)
	}
	g.ivs = slices.Replace(ivs, j, k, s)
	return true
}

// accumulateAll computes the new accumulators of the windows the batch
// touched, and the groups' new states, into tx.pending.
func (a *Aggregation) accumulateAll(ctx context.Context, in []Event) error {
	tx := &a.tx
	for gi := range tx.groups {
		g := &tx.groups[gi]
		var err error
		if a.kind == Session {
			err = a.accumulateSessions(ctx, in, g)
		} else {
			err = a.accumulateWindows(ctx, in, g)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *Aggregation) accumulateWindows(ctx context.Context, in []Event, g *aggBatchGroup) error {
	var ng *aggGroup
	for wi := range g.wins {
		bw := &g.wins[wi]
		var old *aggWin
		if g.old != nil {
			if p, ok := findWin(g.old.wins, bw.start); ok {
				old = &g.old.wins[p]
			}
		}
		var acc0 []byte
		if old != nil {
			acc0 = old.acc
		}
		acc, rejected, err := a.accumulate(ctx, g.key, Window{bw.start, bw.start + a.size}, acc0, in, bw.idx)
		if err != nil {
			return err
		}
		if old == nil && rejected == len(bw.idx) {
			continue
		}
		if ng == nil {
			ng = cloneGroup(g.old)
		}
		p, ok := findWin(ng.wins, bw.start)
		if ok {
			ng.wins[p].acc, ng.wins[p].dirty = acc, true
		} else {
			ng.wins = slices.Insert(ng.wins, p, aggWin{start: bw.start, end: bw.start + a.size, acc: acc, dirty: true})
		}
		if a.maxEmpty < 0 {
			continue
		}
		switch {
		case !ng.active && (g.old == nil || bw.start >= ng.cursor):
			// A new key, or a forgotten one with an event at or after where
			// it stopped: empty windows start again from here.
			ng.floor = ng.cursor
			if g.old == nil {
				ng.floor = minTime
			}
			ng.active, ng.fresh, ng.cursor, ng.empties = true, true, bw.start, 0
		case ng.active && ng.fresh && bw.start < ng.cursor && bw.start >= ng.floor:
			ng.cursor = bw.start
		}
	}
	if ng != nil {
		a.tx.pending[g.key] = ng
	}
	return nil
}

func (a *Aggregation) accumulateSessions(ctx context.Context, in []Event, g *aggBatchGroup) error {
	var wins []aggWin
	changed := false
	for _, list := range [2][]aggSession{g.ivs, g.sealed} {
		for _, s := range list {
			if len(s.members) == 1 && len(s.idx) == 0 {
				wins = append(wins, g.old.wins[s.members[0]]) // untouched
				continue
			}
			changed = true
			w := aggWin{start: s.start, end: s.end, dirty: true}
			for n, m := range s.members {
				ow := &g.old.wins[m]
				w.fired = max(w.fired, ow.fired)
				if n == 0 {
					w.acc = ow.acc
					continue
				}
				acc, err := a.agg.Merge(ctx, g.key, clip(w.acc), clip(ow.acc))
				if err != nil {
					return a.errorf("key[%s] window[%s, %s): merge: %w", g.key, formatNanos(s.start), formatNanos(s.end), err)
				}
				w.acc = slices.Clip(slices.Clone(acc))
			}
			if len(s.idx) > 0 {
				slices.Sort(s.idx)
				acc, rejected, err := a.accumulate(ctx, g.key, Window{s.start, s.end}, w.acc, in, s.idx)
				if err != nil {
					return err
				}
				if len(s.members) == 0 && rejected == len(s.idx) {
					continue
				}
				w.acc = acc
			}
			wins = append(wins, w)
		}
	}
	if !changed {
		return nil
	}
	slices.SortFunc(wins, func(x, y aggWin) int {
		return cmp.Or(cmp.Compare(x.start, y.start), cmp.Compare(x.end, y.end))
	})
	ng := &aggGroup{wins: wins, due: maxTime}
	if g.old != nil {
		ng.due = g.old.due
	}
	a.tx.pending[g.key] = ng
	return nil
}

// accumulate folds the events of in at idx into acc0, records the ones the
// aggregator rejected, and returns the new accumulator (a copy) and how
// many were rejected.
func (a *Aggregation) accumulate(ctx context.Context, key string, w Window, acc0 []byte, in []Event, idx []int32) ([]byte, int, error) {
	tx := &a.tx
	sub := tx.sub[:0]
	for _, i := range idx {
		sub = append(sub, in[i])
	}
	acc, err := a.agg.Accumulate(ctx, key, clip(acc0), sub)
	clear(sub)
	tx.sub = sub[:0]
	rejected := 0
	if err != nil {
		var ee *EventErrors
		if !errors.As(err, &ee) {
			return nil, 0, a.errorf("key[%s] window[%s, %s): accumulate: %w", key, formatNanos(w.Start), formatNanos(w.End), err)
		}
		seen := make(map[int]bool, len(ee.Errors))
		for _, x := range ee.Errors {
			if x.Index < 0 || x.Index >= len(idx) {
				return nil, 0, a.errorf("key[%s] window[%s, %s): accumulate: the aggregator rejected event %d of a batch of %d", key, formatNanos(w.Start), formatNanos(w.End), x.Index, len(idx))
			}
			if seen[x.Index] {
				continue
			}
			seen[x.Index] = true
			rejected++
			if tx.failedAt == nil {
				tx.failedAt = make(map[int]bool, len(tx.failed)+len(ee.Errors))
				for _, f := range tx.failed {
					tx.failedAt[f.Index] = true
				}
			}
			tx.fail(int(idx[x.Index]), x.Code, x.Message)
		}
	}
	return slices.Clip(slices.Clone(acc)), rejected, nil
}

// fireDue fires and purges, into tx.pending and tx.firings, what the
// watermark wm made due: in the groups the batch changed and in those the
// due heap names.
func (a *Aggregation) fireDue(wm int64) {
	tx := &a.tx
	for key, g := range tx.pending {
		tx.pending[key] = a.fire(key, g, wm, wm, wm)
	}
	// Walk the heap's entries that are due without changing it.
	tx.stack = append(tx.stack[:0], 0)
	for len(tx.stack) > 0 {
		i := tx.stack[len(tx.stack)-1]
		tx.stack = tx.stack[:len(tx.stack)-1]
		if i >= len(a.due) || a.due[i].due > wm {
			continue
		}
		tx.stack = append(tx.stack, 2*i+1, 2*i+2)
		key := a.due[i].key
		if _, ok := tx.pending[key]; ok {
			continue
		}
		if g := a.groups[key]; g != nil && g.due <= wm {
			tx.pending[key] = a.fire(key, cloneGroup(g), wm, wm, wm)
		}
	}
}

// fire appends to tx.firings the windows of g that are due and returns the
// group's new state, or nil when nothing of it is left. g is a copy it may
// change. Windows that end at or before fireWm fire; those that end at or
// before purgeWm - lateness are dropped; empty windows fire up to those
// that end at emptyLimit.
func (a *Aggregation) fire(key string, g *aggGroup, fireWm, purgeWm, emptyLimit int64) *aggGroup {
	tx := &a.tx
	for i := range g.wins {
		w := &g.wins[i]
		if w.end <= fireWm && (w.fired == 0 || w.dirty) {
			tx.firings = append(tx.firings, aggFiring{key: key, start: w.start, end: w.end, acc: w.acc, number: w.fired})
			w.fired++
			w.dirty = false
		}
	}
	for g.active {
		end := satAdd(g.cursor, a.size)
		if end > emptyLimit {
			break
		}
		p, found := findWin(g.wins, g.cursor)
		switch {
		case found:
			g.empties = 0
		case g.empties >= a.maxEmpty:
			// Forget the key until its next window with events, if any.
			if p < len(g.wins) {
				g.cursor, g.empties, g.fresh = g.wins[p].start, 0, false
				continue
			}
			g.active = false
			continue
		default:
			// The cursor never goes back over windows it passed, so this
			// window has not fired before.
			tx.firings = append(tx.firings, aggFiring{key: key, start: g.cursor, end: end})
			g.empties++
			// Kept for late events like any fired window (purged below
			// when past its allowed lateness).
			g.wins = slices.Insert(g.wins, p, aggWin{start: g.cursor, end: end, fired: 1})
		}
		g.cursor += a.every
		g.fresh = false
	}
	g.wins = slices.DeleteFunc(g.wins, func(w aggWin) bool { return satAdd(w.end, a.lateness) <= purgeWm })
	if len(g.wins) == 0 && !g.active {
		return nil
	}
	g.due = maxTime
	for i := range g.wins {
		w := &g.wins[i]
		if w.fired == 0 || w.dirty {
			g.due = min(g.due, w.end)
		} else {
			g.due = min(g.due, satAdd(w.end, a.lateness))
		}
	}
	if g.active {
		g.due = min(g.due, satAdd(g.cursor, a.size))
	}
	return g
}

// finishAll calls Finish for tx.firings in result order and appends the
// decorated results to out.
func (a *Aggregation) finishAll(ctx context.Context, out []Event) ([]Event, error) {
	tx := &a.tx
	slices.SortFunc(tx.firings, func(x, y aggFiring) int {
		return cmp.Or(cmp.Compare(x.end, y.end), cmp.Compare(x.start, y.start), cmp.Compare(x.key, y.key))
	})
	for i := range tx.firings {
		f := &tx.firings[i]
		n := len(out)
		var err error
		out, err = a.agg.Finish(ctx, f.key, clip(f.acc), Window{f.start, f.end}, out)
		if err != nil {
			return out, a.errorf("key[%s] window[%s, %s): finish: %w", f.key, formatNanos(f.start), formatNanos(f.end), err)
		}
		if len(out) < n {
			return out, a.errorf("key[%s] window[%s, %s): finish dropped events it was given", f.key, formatNanos(f.start), formatNanos(f.end))
		}
		a.decorate(f, out[n:])
	}
	return out, nil
}

// decorate sets the metadata, and the time, source and ID where Finish
// left them zero, of the results of firing f.
func (a *Aggregation) decorate(f *aggFiring, results []Event) {
	if len(results) == 0 {
		return
	}
	start, end := formatNanos(f.start), formatNanos(f.end)
	firing := "on-time"
	if f.number > 0 {
		firing = "late"
	}
	for j := range results {
		e := &results[j]
		m := make(map[string]string, len(e.Metadata)+5)
		maps.Copy(m, e.Metadata)
		m["aegis.window.start"] = start
		m["aegis.window.end"] = end
		m["aegis.key"] = f.key
		m["aegis.step"] = a.name
		m["aegis.window.firing"] = firing
		e.Metadata = m
		if e.Time == 0 {
			e.Time = f.end - 1
		}
		if e.Source == "" {
			e.Source = "aegis:aggregate:" + a.name
		}
		if e.ID.IsZero() {
			e.ID = resultID(a.name, f.key, f.start, f.end, f.number, j)
		}
	}
}

// resultID is the deterministic ID of the n-th result of a window's
// firing: a version 8 UUID made of the first 128 bits of SHA-256 over the
// length-prefixed fields.
func resultID(step, key string, start, end int64, firing uint32, n int) EventID {
	b := make([]byte, 0, 64+len(step)+len(key))
	b = append(b, "aegis.window.result\x00"...)
	b = binary.AppendUvarint(b, uint64(len(step)))
	b = append(b, step...)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.BigEndian.AppendUint64(b, uint64(start))
	b = binary.BigEndian.AppendUint64(b, uint64(end))
	b = binary.AppendUvarint(b, uint64(firing))
	b = binary.AppendUvarint(b, uint64(n))
	return hashID(b)
}

// commit makes tx.pending the state, and counts the firings.
func (a *Aggregation) commit(wm int64) {
	tx := &a.tx
	// The heap's due entries were all visited: drop them first.
	for len(a.due) > 0 && a.due[0].due <= wm {
		a.popDue()
	}
	for key, g := range tx.pending {
		old := a.groups[key]
		oldDue := int64(maxTime)
		if old != nil {
			a.open -= len(old.wins)
			oldDue = old.due
		}
		if g == nil {
			delete(a.groups, key)
			continue
		}
		a.groups[key] = g
		a.open += len(g.wins)
		if g.due < maxTime && (old == nil || g.due != oldDue || oldDue <= wm) {
			a.pushDue(aggDue{g.due, key})
		}
	}
	if len(a.due) > 2*len(a.groups)+64 {
		a.rebuildDue() // drop the stale entries
	}
	a.countFirings()
	a.counters.open.Store(uint64(a.open))
	a.counters.groups.Store(uint64(len(a.groups)))
}

func (a *Aggregation) countFirings() {
	late := 0
	for i := range a.tx.firings {
		if a.tx.firings[i].number > 0 {
			late++
		}
	}
	a.counters.fired.Add(uint64(len(a.tx.firings)))
	a.counters.lateFirings.Add(uint64(late))
}

func (a *Aggregation) rebuildDue() {
	a.due = a.due[:0]
	for key, g := range a.groups {
		if g.due < maxTime {
			a.due = append(a.due, aggDue{g.due, key})
		}
	}
	// A sorted slice is a valid heap.
	slices.SortFunc(a.due, func(x, y aggDue) int { return cmp.Compare(x.due, y.due) })
}

func (a *Aggregation) pushDue(d aggDue) {
	h := append(a.due, d)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p].due <= h[i].due {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	a.due = h
}

func (a *Aggregation) popDue() {
	h := a.due
	n := len(h) - 1
	h[0] = h[n]
	h[n] = aggDue{}
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h[l].due < h[m].due {
			m = l
		}
		if r < n && h[r].due < h[m].due {
			m = r
		}
		if m == i {
			break
		}
		h[m], h[i] = h[i], h[m]
		i = m
	}
	a.due = h
}

func cloneGroup(g *aggGroup) *aggGroup {
	if g == nil {
		return &aggGroup{due: maxTime}
	}
	c := *g
	c.wins = slices.Clone(g.wins)
	return &c
}

// findWin finds the window of wins (sorted by start) that starts at start,
// or where it would go.
func findWin(wins []aggWin, start int64) (int, bool) {
	return slices.BinarySearchFunc(wins, start, func(w aggWin, s int64) int { return cmp.Compare(w.start, s) })
}

// clip limits b's capacity to its length, so that an append to it cannot
// write into storage the Aggregation keeps.
func clip(b []byte) []byte { return b[:len(b):len(b)] }
