package engine

import (
	"errors"
	"fmt"
	"slices"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

// MaxDurableHistory is the most events [Engine.History] returns from a
// persistent channel for a query without a Limit: a stream may hold far
// more than fits in memory. A selection beyond it fails with
// [ErrHistoryTooLarge]; set a Limit, or subscribe with a
// [SubscribeOptions.Start] position to read it all as a stream.
const MaxDurableHistory = 100_000

// ErrHistoryTooLarge: a History query without a Limit selected more than
// [MaxDurableHistory] events of a persistent channel.
var ErrHistoryTooLarge = errors.New("history too large")

const (
	// historyWindow and historyMaxWindow bound the span of the stream one
	// step of a limited query reads, newest first: the window doubles while
	// the query's selection keeps finding too few events.
	historyWindow    = 256
	historyMaxWindow = 1 << 16
)

// historyDurable answers q from the channel's stream, with the same
// meaning as the in-memory history: AfterID and AfterSeq cut the stream
// after that event (in stream order), After and Filter select, Limit keeps the newest,
// oldest first. It reads the stream as it was when the query began.
//
// Without a Limit it reads forward from the cut, a window at a time. With
// one it reads windows of the stream from the newest backward, keeping
// only the selected events, until it has Limit of them or reaches the cut:
// memory stays bounded by the Limit and one window, however long the
// stream. Each read of a window has the store's timeout.
func (c *channel) historyDurable(q HistoryQuery) ([]Event, error) {
	d := c.eng.dur
	ctx, cancel := d.ctx()
	in, err := c.st.Info(ctx)
	cancel()
	if err != nil {
		return nil, durableErr(err)
	}
	lo, hi := in.FirstSeq, in.LastSeq
	if !q.AfterID.IsZero() {
		// A scan of the headers from the event's time on, within the
		// store's timeout.
		ctx, cancel := d.ctx()
		seq, err := c.st.FindEvent(ctx, q.AfterID.String())
		cancel()
		if err != nil {
			return nil, durableErr(err)
		}
		lo = max(lo, seq+1)
	}
	if q.AfterSeq > 0 {
		lo = max(lo, q.AfterSeq+1)
	}
	if in.Msgs == 0 || lo > hi {
		return []Event{}, nil
	}
	hasAfter, after := !q.After.IsZero(), q.After.UnixNano()
	sel := func(ev *Event) bool {
		return (!hasAfter || ev.Time > after) && (q.Filter == nil || q.Filter.Match(ev))
	}
	if q.Limit <= 0 {
		out := []Event{}
		for start := lo; start <= hi; start += historyMaxWindow {
			err := c.readStream(start, min(hi, start+historyMaxWindow-1), func(ev *Event) error {
				if !sel(ev) {
					return nil
				}
				if len(out) == MaxDurableHistory {
					return fmt.Errorf("%w: more than %d events selected; set a Limit or subscribe with a Start position", ErrHistoryTooLarge, MaxDurableHistory)
				}
				out = append(out, *ev)
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	// Newest first: chunks[0] is the newest window's selection.
	var chunks [][]Event
	total := 0
	w := uint64(q.Limit)
	if hasAfter || q.Filter != nil {
		w = max(w, historyWindow) // a selection may skip most of a window
	}
	w = min(w, historyMaxWindow)
	for end := hi; ; {
		start := lo
		if end-lo+1 > w {
			start = end - w + 1
		}
		var chunk []Event
		err := c.readStream(start, end, func(ev *Event) error {
			if sel(ev) {
				chunk = append(chunk, *ev)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if need := q.Limit - total; len(chunk) > need {
			chunk = chunk[len(chunk)-need:]
		}
		chunks = append(chunks, chunk)
		total += len(chunk)
		if total == q.Limit || start == lo {
			break
		}
		end = start - 1
		w = min(w*2, historyMaxWindow)
	}
	out := make([]Event, 0, total)
	for _, chunk := range slices.Backward(chunks) {
		out = append(out, chunk...)
	}
	return out, nil
}

// readStream calls fn with each event of the stream from sequence from to
// until, in order, skipping (with a warning) a message that does not
// decode, as subscriptions do.
func (c *channel) readStream(from, until uint64, fn func(*Event) error) error {
	// One store timeout per read of at most one window.
	ctx, cancel := c.eng.dur.ctx()
	defer cancel()
	err := c.st.Read(ctx, jetstream.ReadOptions{Start: jetstream.StartAtSeq(from), Until: until}, func(m jetstream.RawMsg) (bool, error) {
		ev, err := decodeDelivery(&jetstream.Delivery{ID: m.ID, Data: m.Data, Seq: m.Seq})
		if err != nil {
			c.eng.dur.logger().Warn("undecodable event skipped by history", "channel", c.name, "error", err)
			return true, nil
		}
		return true, fn(&ev)
	})
	return durableErr(err)
}
