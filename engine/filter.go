package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// EventFilter selects events. Filters are immutable and safe for concurrent
// use; they compose with [And], [Or] and [Not].
type EventFilter interface {
	// Match reports whether the filter selects e. It must not modify e.
	Match(e *Event) bool
}

// FilterFunc adapts a function to [EventFilter].
type FilterFunc func(e *Event) bool

// Match calls f(e).
func (f FilterFunc) Match(e *Event) bool { return f(e) }

type matchAll struct{}

func (matchAll) Match(*Event) bool { return true }
func (matchAll) String() string    { return "all" }

// All matches every event.
func All() EventFilter { return matchAll{} }

type typeFilter []EventType

func (f typeFilter) Match(e *Event) bool {
	for _, t := range f {
		if e.Type == t {
			return true
		}
	}
	return false
}

func (f typeFilter) String() string { return fmt.Sprintf("type in %v", []EventType(f)) }

// TypeIs matches events of any of the given types. With no types it matches
// nothing.
func TypeIs(types ...EventType) EventFilter { return typeFilter(slices.Clone(types)) }

type sourceIs string

func (f sourceIs) Match(e *Event) bool { return e.Source == string(f) }
func (f sourceIs) String() string      { return fmt.Sprintf("source = %q", string(f)) }

// SourceIs matches events whose source is exactly s.
func SourceIs(s string) EventFilter { return sourceIs(s) }

type sourcePrefix string

func (f sourcePrefix) Match(e *Event) bool { return strings.HasPrefix(e.Source, string(f)) }
func (f sourcePrefix) String() string      { return fmt.Sprintf("source starts with %q", string(f)) }

// SourcePrefix matches events whose source starts with prefix.
func SourcePrefix(prefix string) EventFilter { return sourcePrefix(prefix) }

// SourceGlob matches events whose whole source matches a glob pattern: '*'
// stands for any run of characters (separators such as ':' and '/'
// included), '?' for exactly one character, and '\' makes the next character
// literal. For example "urn:shop:*:eu-*" matches
// "urn:shop:checkout:eu-west-1". The pattern is checked here, so a bad one
// fails early rather than never matching.
func SourceGlob(pattern string) (EventFilter, error) {
	g, err := compileGlob(pattern)
	if err != nil {
		return nil, fmt.Errorf("source glob %q: %w", pattern, err)
	}
	return g, nil
}

type timeRange struct {
	from, to int64
	noUpper  bool // a zero to: even the latest representable time matches
}

func (f timeRange) Match(e *Event) bool {
	return e.Time >= f.from && (f.noUpper || e.Time < f.to)
}
func (f timeRange) String() string {
	return fmt.Sprintf("time in [%s, %s)", time.Unix(0, f.from).UTC().Format(time.RFC3339Nano), time.Unix(0, f.to).UTC().Format(time.RFC3339Nano))
}

// TimeRange matches events whose [Event.Time] is in [from, to). A zero from
// means no lower bound and a zero to no upper bound.
func TimeRange(from, to time.Time) EventFilter {
	f := timeRange{from: minTime, to: maxTime, noUpper: true}
	if !from.IsZero() {
		f.from = from.UnixNano()
	}
	if !to.IsZero() {
		f.to = to.UnixNano()
		f.noUpper = false
	}
	return f
}

const (
	minTime = -1 << 63
	maxTime = 1<<63 - 1
)

type metaEquals struct{ key, value string }

func (f metaEquals) Match(e *Event) bool {
	v, ok := e.Metadata[f.key]
	return ok && v == f.value
}
func (f metaEquals) String() string { return fmt.Sprintf("metadata[%q] = %q", f.key, f.value) }

// MetadataIs matches events whose metadata has key set to value.
func MetadataIs(key, value string) EventFilter { return metaEquals{key, value} }

type metaExists string

func (f metaExists) Match(e *Event) bool {
	_, ok := e.Metadata[string(f)]
	return ok
}
func (f metaExists) String() string { return fmt.Sprintf("metadata has %q", string(f)) }

// HasMetadata matches events whose metadata has key, whatever its value.
func HasMetadata(key string) EventFilter { return metaExists(key) }

type and []EventFilter

func (f and) Match(e *Event) bool {
	for _, g := range f {
		if !g.Match(e) {
			return false
		}
	}
	return true
}
func (f and) String() string { return join("and", f) }

type or []EventFilter

func (f or) Match(e *Event) bool {
	for _, g := range f {
		if g.Match(e) {
			return true
		}
	}
	return false
}
func (f or) String() string { return join("or", f) }

type not struct{ f EventFilter }

func (f not) Match(e *Event) bool { return !f.f.Match(e) }
func (f not) String() string      { return fmt.Sprintf("not (%v)", f.f) }

// And matches events that every filter matches; with no filters, every
// event. Nil filters are ignored.
func And(filters ...EventFilter) EventFilter {
	fs := compact(filters)
	switch len(fs) {
	case 0:
		return All()
	case 1:
		return fs[0]
	}
	return and(fs)
}

// Or matches events that any filter matches; with no filters, none. Nil
// filters are ignored.
func Or(filters ...EventFilter) EventFilter {
	fs := compact(filters)
	if len(fs) == 1 {
		return fs[0]
	}
	return or(fs)
}

// Not matches the events f does not.
func Not(f EventFilter) EventFilter { return not{f} }

func compact(filters []EventFilter) []EventFilter {
	out := make([]EventFilter, 0, len(filters))
	for _, f := range filters {
		if f != nil {
			out = append(out, f)
		}
	}
	return out
}

func join(op string, fs []EventFilter) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = fmt.Sprintf("(%v)", f)
	}
	return strings.Join(parts, " "+op+" ")
}

// glob is a compiled source pattern: literal segments separated by '*', each
// segment a sequence of runes where '?' (unless escaped) matches any one.
type glob struct {
	pattern string
	parts   [][]globRune // the segments between stars
	star0   bool         // the pattern starts with '*'
	starN   bool         // the pattern ends with '*'
}

type globRune struct {
	r   rune
	any bool
}

func compileGlob(pattern string) (*glob, error) {
	if !utf8.ValidString(pattern) {
		return nil, fmt.Errorf("not valid UTF-8")
	}
	g := &glob{pattern: pattern}
	var cur []globRune
	stars := 0
	for i := 0; i < len(pattern); {
		r, n := utf8.DecodeRuneInString(pattern[i:])
		i += n
		switch r {
		case '*':
			if i == n {
				g.star0 = true
			} else {
				g.parts = append(g.parts, cur)
			}
			cur = nil
			stars++
			if i == len(pattern) {
				g.starN = true
			}
		case '?':
			cur = append(cur, globRune{any: true})
		case '\\':
			if i == len(pattern) {
				return nil, fmt.Errorf("ends with an unfinished escape")
			}
			r, n = utf8.DecodeRuneInString(pattern[i:])
			i += n
			cur = append(cur, globRune{r: r})
		default:
			cur = append(cur, globRune{r: r})
		}
	}
	if !g.starN {
		g.parts = append(g.parts, cur)
	}
	return g, nil
}

func (g *glob) String() string { return fmt.Sprintf("source matches %q", g.pattern) }

func (g *glob) Match(e *Event) bool { return g.match(e.Source) }

// match runs the classic greedy algorithm: anchor the first segment at the
// start (unless the pattern starts with '*'), the last at the end (unless it
// ends with '*'), and find the middle segments leftmost-first in between.
// Leftmost-first is optimal for segments separated by stars, so this never
// backtracks.
func (g *glob) match(s string) bool {
	parts := g.parts
	if len(parts) == 0 {
		return g.star0 || s == ""
	}
	if !g.star0 {
		n, ok := matchAt(parts[0], s)
		if !ok {
			return false
		}
		s = s[n:]
		parts = parts[1:]
		if len(parts) == 0 {
			return g.starN || s == ""
		}
	}
	var last []globRune
	if !g.starN {
		last, parts = parts[len(parts)-1], parts[:len(parts)-1]
	}
	for _, p := range parts {
		found := false
		for i := 0; i <= len(s); {
			if n, ok := matchAt(p, s[i:]); ok {
				s = s[i+n:]
				found = true
				break
			}
			if i == len(s) {
				break
			}
			_, w := utf8.DecodeRuneInString(s[i:])
			i += w
		}
		if !found {
			return false
		}
	}
	if g.starN {
		return true
	}
	// The last segment must match a suffix of what is left.
	for i := 0; i <= len(s); {
		if n, ok := matchAt(last, s[i:]); ok && i+n == len(s) {
			return true
		}
		if i == len(s) {
			break
		}
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	return false
}

// matchAt matches a segment at the start of s and returns how many bytes it
// consumed.
func matchAt(p []globRune, s string) (int, bool) {
	n := 0
	for _, gr := range p {
		if n >= len(s) {
			return 0, false
		}
		r, w := utf8.DecodeRuneInString(s[n:])
		if !gr.any && r != gr.r {
			return 0, false
		}
		n += w
	}
	return n, true
}
