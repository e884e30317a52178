package engine

import (
	"fmt"
	"time"
)

// WindowKind is how an [Aggregation] cuts event time into windows.
type WindowKind uint8

// The kinds of windows. The numbers are stable: they may be stored.
const (
	// Tumbling windows are consecutive, non-overlapping windows of one size,
	// aligned to the Unix epoch: [k*Size, (k+1)*Size) for every integer k.
	// Each event belongs to exactly one.
	Tumbling WindowKind = iota
	// Sliding windows are windows of Size that start every Every, aligned to
	// the Unix epoch: [k*Every, k*Every+Size). Each event belongs to
	// Size/Every of them.
	Sliding
	// Session windows are per group key: a session is a run of events each
	// less than Gap after the one before; it closes after Gap without an
	// event. Its window is [first event time, last event time + Gap).
	Session
)

var windowKindNames = [...]string{
	Tumbling: "tumbling",
	Sliding:  "sliding",
	Session:  "session",
}

// String returns the stable name of the kind: "tumbling", "sliding" or
// "session".
func (k WindowKind) String() string { return enumName(windowKindNames[:], int(k), "window kind") }

// ParseWindowKind is the inverse of [WindowKind.String].
func ParseWindowKind(s string) (WindowKind, error) {
	v, err := parseEnum(windowKindNames[:], s, "window kind")
	return WindowKind(v), err
}

// WindowSpec says how an [Aggregation] windows event time. Each kind uses
// its own fields and requires the others to be zero:
//
//	Tumbling: Size > 0
//	Sliding:  Size > 0, 0 < Every <= Size, Size a whole multiple of Every
//	Session:  Gap > 0
//
// Durations are whole nanoseconds of event time ([Event.Time]).
type WindowSpec struct {
	Kind WindowKind
	// Size is the length of a tumbling or sliding window.
	Size time.Duration
	// Every is the slide of sliding windows: a window starts every Every.
	Every time.Duration
	// Gap is the inactivity that closes a session.
	Gap time.Duration
}

// Validate checks that the fields the kind uses are valid and the others
// zero.
func (w WindowSpec) Validate() error {
	switch w.Kind {
	case Tumbling:
		switch {
		case w.Size <= 0:
			return fmt.Errorf("window[tumbling]: size must be positive, got %v", w.Size)
		case w.Every != 0:
			return fmt.Errorf("window[tumbling]: every is for sliding windows (got %v)", w.Every)
		case w.Gap != 0:
			return fmt.Errorf("window[tumbling]: gap is for session windows (got %v)", w.Gap)
		}
	case Sliding:
		switch {
		case w.Size <= 0:
			return fmt.Errorf("window[sliding]: size must be positive, got %v", w.Size)
		case w.Every <= 0:
			return fmt.Errorf("window[sliding]: every must be positive, got %v", w.Every)
		case w.Every > w.Size:
			return fmt.Errorf("window[sliding]: every (%v) is longer than size (%v), which would leave events in no window", w.Every, w.Size)
		case w.Size%w.Every != 0:
			return fmt.Errorf("window[sliding]: size (%v) must be a whole multiple of every (%v)", w.Size, w.Every)
		case w.Gap != 0:
			return fmt.Errorf("window[sliding]: gap is for session windows (got %v)", w.Gap)
		}
	case Session:
		switch {
		case w.Gap <= 0:
			return fmt.Errorf("window[session]: gap must be positive, got %v", w.Gap)
		case w.Size != 0:
			return fmt.Errorf("window[session]: size is for tumbling and sliding windows (got %v)", w.Size)
		case w.Every != 0:
			return fmt.Errorf("window[session]: every is for sliding windows (got %v)", w.Every)
		}
	default:
		return fmt.Errorf("window: unknown %v (want tumbling, sliding or session)", w.Kind)
	}
	return nil
}

// Windows appends to dst the windows an event at time t (nanoseconds since
// the Unix epoch) belongs to, in increasing order of start, and returns the
// extended slice. For a session it is the window the event would open on
// its own, [t, t+Gap), before merging with its neighbours. It fails for an
// invalid spec and for a time so close to the ends of int64 that a window
// would not fit.
func (w WindowSpec) Windows(t int64, dst []Window) ([]Window, error) {
	if err := w.Validate(); err != nil {
		return dst, err
	}
	if w.Kind == Session {
		end, ok := addNoOverflow(t, int64(w.Gap))
		if !ok {
			return dst, errTimeRange(t)
		}
		return append(dst, Window{t, end}), nil
	}
	first, last, ok := w.startRange(t)
	if !ok {
		return dst, errTimeRange(t)
	}
	size := int64(w.Size)
	for s := first; ; s += w.every() {
		dst = append(dst, Window{s, s + size})
		if s == last {
			break
		}
	}
	return dst, nil
}

// every is the step between window starts: Size for tumbling windows.
func (w WindowSpec) every() int64 {
	if w.Kind == Sliding {
		return int64(w.Every)
	}
	return int64(w.Size)
}

// startRange returns the first and last start of the tumbling or sliding
// windows that hold t; ok is false when they do not fit in int64.
func (w WindowSpec) startRange(t int64) (first, last int64, ok bool) {
	every, size := w.every(), int64(w.Size)
	mod := t % every
	if mod < 0 {
		mod += every
	}
	if t < minTime+mod {
		return 0, 0, false // the window's start would overflow
	}
	last = t - mod
	if last > maxTime-size {
		return 0, 0, false // the window's end would overflow
	}
	first, ok = addNoOverflow(last, -(size - every))
	return first, last, ok
}

// lastEnd is the end of the last tumbling or sliding window that holds t,
// saturated at the largest time.
func (w WindowSpec) lastEnd(t int64) int64 {
	_, last, ok := w.startRange(t)
	if !ok {
		return maxTime
	}
	return last + int64(w.Size)
}

func errTimeRange(t int64) error {
	return fmt.Errorf("event time %d is too close to the limits of int64 for its windows to fit", t)
}

// addNoOverflow returns a+b and whether it did not overflow.
func addNoOverflow(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// satAdd returns a+b saturated to [minTime, maxTime].
func satAdd(a, b int64) int64 {
	s, ok := addNoOverflow(a, b)
	if ok {
		return s
	}
	if b > 0 {
		return maxTime
	}
	return minTime
}

// formatNanos formats nanoseconds since the epoch as RFC 3339 with
// nanoseconds, in UTC.
func formatNanos(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
