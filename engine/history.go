package engine

import (
	"slices"
	"sync"
	"time"
)

// HistoryQuery selects events from a channel's history. Every field is
// optional; the zero query returns everything retained. The conditions
// combine: first AfterID cuts the log, then After and Filter select, then
// Limit keeps the newest. The result is always oldest first.
type HistoryQuery struct {
	// Limit keeps only the newest Limit events of the selection; zero or
	// negative means no limit.
	Limit int
	// After selects events whose own time ([Event.Time]) is strictly after
	// it; the zero time selects all.
	After time.Time
	// AfterID selects the events published after the event with this ID
	// (in publish order, whatever their times). If the channel no longer
	// retains that event, the query fails with [ErrEventNotFound] rather than
	// silently replaying everything.
	AfterID EventID
	// AfterSeq selects, on a persistent channel, the events stored after
	// the one with this sequence number in the channel (1 is the first
	// event ever published to it; a [DeliveryInfo] and a dead letter's
	// [MetaErrorSeq] carry it), or the oldest retained after it. In-memory
	// channels number nothing and refuse it with [ErrUnsupported]. With
	// AfterID as well, the later of the two cuts.
	AfterSeq uint64
	// Filter selects events; nil selects all.
	Filter EventFilter
}

type historyEntry struct {
	ev Event
	at int64 // when the channel accepted it, Unix nanoseconds
}

// history is a channel's retained log: a ring bounded by count, trimmed by
// age when written and when read.
type history struct {
	mu     sync.Mutex // reads take it too: they expire old events
	buf    []historyEntry
	head   int
	n      int
	maxAge time.Duration
}

func newHistory(r Retention) *history {
	h := &history{maxAge: r.MaxAge}
	if r.MaxEvents > 0 {
		h.buf = make([]historyEntry, r.MaxEvents)
	}
	return h
}

func (h *history) enabled() bool { return len(h.buf) > 0 }

// append adds events accepted at time now.
func (h *history) append(events []Event, now int64) {
	if !h.enabled() {
		return
	}
	h.mu.Lock()
	size := len(h.buf)
	// Only the last size events can survive; skip the rest.
	start := max(0, len(events)-size)
	for _, ev := range events[start:] {
		if h.n == size {
			h.head = (h.head + 1) % size
			h.n--
		}
		h.buf[(h.head+h.n)%size] = historyEntry{ev: ev, at: now}
		h.n++
	}
	h.expireLocked(now)
	h.mu.Unlock()
}

func (h *history) expireLocked(now int64) {
	if h.maxAge <= 0 {
		return
	}
	cutoff := now - int64(h.maxAge)
	size := len(h.buf)
	for h.n > 0 && h.buf[h.head].at < cutoff {
		h.buf[h.head] = historyEntry{}
		h.head = (h.head + 1) % size
		h.n--
	}
}

func (h *history) len(now int64) int {
	if !h.enabled() {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expireLocked(now)
	return h.n
}

// query runs q against the retained events.
func (h *history) query(q HistoryQuery, now int64) ([]Event, error) {
	if !h.enabled() {
		if !q.AfterID.IsZero() {
			return nil, ErrEventNotFound
		}
		return []Event{}, nil
	}
	h.mu.Lock()
	h.expireLocked(now)
	size := len(h.buf)
	at := func(i int) *Event { return &h.buf[(h.head+i)%size].ev }
	start := 0
	if !q.AfterID.IsZero() {
		start = -1
		for i := h.n - 1; i >= 0; i-- {
			if at(i).ID == q.AfterID {
				start = i + 1
				break
			}
		}
		if start < 0 {
			h.mu.Unlock()
			return nil, ErrEventNotFound
		}
	}
	hasAfter, after := !q.After.IsZero(), q.After.UnixNano()
	// Walk newest to oldest so Limit can stop early, then reverse.
	var out []Event
	for i := h.n - 1; i >= start; i-- {
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
		e := at(i)
		if hasAfter && e.Time <= after {
			continue
		}
		if q.Filter != nil && !q.Filter.Match(e) {
			continue
		}
		out = append(out, *e)
	}
	h.mu.Unlock()
	slices.Reverse(out)
	if out == nil {
		out = []Event{}
	}
	return out, nil
}
