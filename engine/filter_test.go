package engine_test

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aegis-streaming/aegis/engine"
)

// modelFilterCase is one event a filter is asked about and the expected answer.
type modelFilterCase struct {
	name  string
	event engine.Event
	want  bool
}

func runModelFilterCases(t *testing.T, f engine.EventFilter, cases []modelFilterCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.event
			before := e.Clone()
			if got := f.Match(&e); got != c.want {
				t.Errorf("%v.Match(%+v) = %t, want %t", f, c.event, got, c.want)
			}
			if !sameEvent(e, before) {
				t.Errorf("Match modified the event: %+v", e)
			}
		})
	}
}

func TestFilterTypeIs(t *testing.T) {
	custom, err := engine.CustomType("order.created")
	if err != nil {
		t.Fatal(err)
	}
	created := engine.Event{Type: engine.Created}
	updated := engine.Event{Type: engine.Updated}
	deleted := engine.Event{Type: engine.Deleted}
	order := engine.Event{Type: custom}
	tests := []struct {
		name   string
		filter engine.EventFilter
		cases  []modelFilterCase
	}{
		{name: "one type", filter: engine.TypeIs(engine.Created), cases: []modelFilterCase{
			{name: "created", event: created, want: true},
			{name: "updated", event: updated},
			{name: "custom", event: order},
			{name: "no type", event: engine.Event{}},
		}},
		{name: "two types", filter: engine.TypeIs(engine.Created, engine.Deleted), cases: []modelFilterCase{
			{name: "created", event: created, want: true},
			{name: "deleted", event: deleted, want: true},
			{name: "updated", event: updated},
		}},
		{name: "custom type", filter: engine.TypeIs(custom), cases: []modelFilterCase{
			{name: "custom", event: order, want: true},
			{name: "prefix of custom", event: engine.Event{Type: "order"}},
			{name: "created", event: created},
			{name: "differs in case", event: engine.Event{Type: "Order.Created"}},
		}},
		{name: "no types matches nothing", filter: engine.TypeIs(), cases: []modelFilterCase{
			{name: "created", event: created},
			{name: "custom", event: order},
			{name: "no type", event: engine.Event{}},
		}},
		{name: "duplicates", filter: engine.TypeIs(engine.Updated, engine.Updated), cases: []modelFilterCase{
			{name: "updated", event: updated, want: true},
			{name: "created", event: created},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runModelFilterCases(t, tt.filter, tt.cases) })
	}

	t.Run("the filter keeps its own copy of the types", func(t *testing.T) {
		types := []engine.EventType{engine.Created}
		f := engine.TypeIs(types...)
		types[0] = engine.Deleted
		if !f.Match(&created) || f.Match(&deleted) {
			t.Error("changing the slice passed to TypeIs changed the filter")
		}
	})
}

func TestFilterSourceIs(t *testing.T) {
	tests := []struct {
		name   string
		filter engine.EventFilter
		cases  []modelFilterCase
	}{
		{name: "urn", filter: engine.SourceIs("urn:shop:checkout"), cases: []modelFilterCase{
			{name: "same", event: engine.Event{Source: "urn:shop:checkout"}, want: true},
			{name: "prefix", event: engine.Event{Source: "urn:shop"}},
			{name: "longer", event: engine.Event{Source: "urn:shop:checkout:eu"}},
			{name: "different case", event: engine.Event{Source: "URN:shop:checkout"}},
			{name: "empty", event: engine.Event{}},
		}},
		{name: "empty source", filter: engine.SourceIs(""), cases: []modelFilterCase{
			{name: "empty", event: engine.Event{}, want: true},
			{name: "not empty", event: engine.Event{Source: "x"}},
		}},
		{name: "glob characters are literal", filter: engine.SourceIs("a*"), cases: []modelFilterCase{
			{name: "literal star", event: engine.Event{Source: "a*"}, want: true},
			{name: "would match a glob", event: engine.Event{Source: "ab"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runModelFilterCases(t, tt.filter, tt.cases) })
	}
}

func TestFilterSourcePrefix(t *testing.T) {
	tests := []struct {
		name   string
		filter engine.EventFilter
		cases  []modelFilterCase
	}{
		{name: "urn", filter: engine.SourcePrefix("urn:shop:"), cases: []modelFilterCase{
			{name: "longer", event: engine.Event{Source: "urn:shop:checkout"}, want: true},
			{name: "exactly the prefix", event: engine.Event{Source: "urn:shop:"}, want: true},
			{name: "shorter", event: engine.Event{Source: "urn:shop"}},
			{name: "in the middle", event: engine.Event{Source: "x:urn:shop:y"}},
			{name: "empty", event: engine.Event{}},
		}},
		{name: "empty prefix matches all", filter: engine.SourcePrefix(""), cases: []modelFilterCase{
			{name: "empty", event: engine.Event{}, want: true},
			{name: "any", event: engine.Event{Source: "any"}, want: true},
		}},
		{name: "unicode", filter: engine.SourcePrefix("café"), cases: []modelFilterCase{
			{name: "match", event: engine.Event{Source: "café:1"}, want: true},
			{name: "no accent", event: engine.Event{Source: "cafe:1"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runModelFilterCases(t, tt.filter, tt.cases) })
	}
}

// sourceGlobCases are (pattern, source, match) triples for SourceGlob. They are
// also the seeds of FuzzSourceGlob.
var sourceGlobCases = []struct {
	name    string
	pattern string
	source  string
	want    bool
}{
	{name: "star alone, empty", pattern: "*", source: "", want: true},
	{name: "star alone, text", pattern: "*", source: "anything", want: true},
	{name: "star alone, separators", pattern: "*", source: "a:b/c", want: true},
	{name: "empty pattern, empty source", pattern: "", source: "", want: true},
	{name: "empty pattern, some source", pattern: "", source: "a"},
	{name: "literal same", pattern: "abc", source: "abc", want: true},
	{name: "literal longer source", pattern: "abc", source: "abcd"},
	{name: "literal source with prefix", pattern: "abc", source: "xabc"},
	{name: "literal shorter source", pattern: "abc", source: "ab"},
	{name: "literal empty source", pattern: "abc", source: ""},
	{name: "anchored at start", pattern: "b", source: "abc"},
	{name: "anchored at both ends", pattern: "abc", source: "abcabc"},
	{name: "trailing star, exact", pattern: "a*", source: "a", want: true},
	{name: "trailing star, longer", pattern: "a*", source: "abc", want: true},
	{name: "trailing star, wrong start", pattern: "a*", source: "ba"},
	{name: "leading star, exact", pattern: "*c", source: "c", want: true},
	{name: "leading star, longer", pattern: "*c", source: "abc", want: true},
	{name: "leading star, wrong end", pattern: "*c", source: "cb"},
	{name: "middle star, nothing between", pattern: "a*c", source: "ac", want: true},
	{name: "middle star, one between", pattern: "a*c", source: "abc", want: true},
	{name: "middle star, repeats", pattern: "a*c", source: "abcbc", want: true},
	{name: "middle star, wrong end", pattern: "a*c", source: "abcb"},
	{name: "middle star, only start", pattern: "a*c", source: "a"},
	{name: "middle star, only end", pattern: "a*c", source: "c"},
	{name: "two stars", pattern: "a*b*c", source: "abc", want: true},
	{name: "two stars, filled", pattern: "a*b*c", source: "aXbYc", want: true},
	{name: "two stars, wrong order", pattern: "a*b*c", source: "acb"},
	{name: "two stars, repeated", pattern: "a*b*c", source: "abcabc", want: true},
	{name: "stars both ends, found", pattern: "*a*", source: "bab", want: true},
	{name: "stars both ends, alone", pattern: "*a*", source: "a", want: true},
	{name: "stars both ends, missing", pattern: "*a*", source: "bbb"},
	{name: "double star, empty", pattern: "**", source: "", want: true},
	{name: "double star, text", pattern: "**", source: "x/y", want: true},
	{name: "double star in middle", pattern: "a**b", source: "ab", want: true},
	{name: "double star in middle, filled", pattern: "a**b", source: "a/x/b", want: true},
	{name: "double star in middle, wrong end", pattern: "a**b", source: "a/x/c"},
	{name: "many stars", pattern: "***a***", source: "a", want: true},
	{name: "question, empty", pattern: "?", source: ""},
	{name: "question, one", pattern: "?", source: "a", want: true},
	{name: "question, two", pattern: "?", source: "ab"},
	{name: "question, two-byte rune", pattern: "?", source: "é", want: true},
	{name: "question, four-byte rune", pattern: "?", source: "🎉", want: true},
	{name: "two questions, one rune", pattern: "??", source: "é"},
	{name: "two questions, two runes", pattern: "??", source: "éé", want: true},
	{name: "question for accent", pattern: "caf?", source: "café", want: true},
	{name: "too many questions", pattern: "caf??", source: "café"},
	{name: "question in middle", pattern: "a?c", source: "abc", want: true},
	{name: "question needs a rune", pattern: "a?c", source: "ac"},
	{name: "question first", pattern: "?a", source: "ba", want: true},
	{name: "question then star, empty", pattern: "?*", source: ""},
	{name: "question then star", pattern: "?*", source: "a", want: true},
	{name: "star then question, empty", pattern: "*?", source: ""},
	{name: "star question star", pattern: "*?*", source: "x", want: true},
	{name: "star, letter, question", pattern: "*a?", source: "xab", want: true},
	{name: "star, letter, question, too short", pattern: "*a?", source: "xa"},
	{name: "question in a middle segment", pattern: "*a?c*", source: "xxabcyy", want: true},
	{name: "question in a middle segment, missing", pattern: "*a?c*", source: "xxacyy"},
	{name: "question in last segment, rune widths", pattern: "*?é", source: "日é", want: true},
	// '?' is one rune, never one byte of a multi-byte rune, wherever the
	// segment is searched for.
	{name: "two questions, one 3-byte rune, first segment", pattern: "??*", source: "日"},
	{name: "two questions, one 3-byte rune, middle segment", pattern: "*??*", source: "日"},
	{name: "two questions, one 3-byte rune, last segment", pattern: "*??", source: "日"},
	{name: "question then letter across a rune, middle segment", pattern: "*?x*", source: "日x", want: true},
	{name: "question then letter, no split rune, middle segment", pattern: "*??x*", source: "日x"},
	{name: "escaped star, star", pattern: `\*`, source: "*", want: true},
	{name: "escaped star, letter", pattern: `\*`, source: "a"},
	{name: "escaped star, empty", pattern: `\*`, source: ""},
	{name: "escaped question, question", pattern: `\?`, source: "?", want: true},
	{name: "escaped question, letter", pattern: `\?`, source: "a"},
	{name: "escaped star in middle", pattern: `a\*b`, source: "a*b", want: true},
	{name: "escaped star in middle, not a wildcard", pattern: `a\*b`, source: "axb"},
	{name: "escaped backslash", pattern: `\\`, source: `\`, want: true},
	{name: "escaped backslash then star", pattern: `\\*`, source: `\abc`, want: true},
	{name: "escaped ordinary letter", pattern: `\a`, source: "a", want: true},
	{name: "escaped multi-byte rune", pattern: `\é`, source: "é", want: true},
	{name: "star then escaped star", pattern: `*\*`, source: "abc*", want: true},
	{name: "star then escaped star, missing", pattern: `*\*`, source: "abc"},
	{name: "escaped star then star", pattern: `\**`, source: "*abc", want: true},
	{name: "escaped star then star, missing", pattern: `\**`, source: "abc"},
	{name: "urn example", pattern: "urn:shop:*:eu-*", source: "urn:shop:checkout:eu-west-1", want: true},
	{name: "urn example, other region", pattern: "urn:shop:*:eu-*", source: "urn:shop:checkout:us-east-1"},
	{name: "star crosses colons", pattern: "urn:shop:*:eu-*", source: "urn:shop:a:b:c:eu-x", want: true},
	{name: "star crosses slashes", pattern: "/var/*/log", source: "/var/a/b/log", want: true},
	{name: "question crosses a slash", pattern: "a?b", source: "a/b", want: true},
	{name: "overlap: suffix after repeated letters", pattern: "*aab", source: "aaab", want: true},
	{name: "overlap: prefix and suffix share a letter", pattern: "a*a", source: "a"},
	{name: "overlap: two letters", pattern: "a*a", source: "aa", want: true},
	{name: "overlap: filled", pattern: "a*a", source: "aba", want: true},
	{name: "overlap: prefix and suffix share two", pattern: "ab*ba", source: "aba"},
	{name: "overlap: prefix and suffix adjacent", pattern: "ab*ba", source: "abba", want: true},
	{name: "overlap: repeated segment", pattern: "*ab*ab", source: "abab", want: true},
	{name: "overlap: repeated segment, one copy", pattern: "*ab*ab", source: "ab"},
	{name: "overlap: middle and last share", pattern: "*ab*b", source: "ab"},
	{name: "overlap: middle found early", pattern: "*aa*a", source: "aaa", want: true},
	{name: "overlap: first and middle", pattern: "a*a*a", source: "aa"},
	{name: "overlap: first and middle, enough", pattern: "a*a*a", source: "aaa", want: true},
	{name: "last segment suffix after partial match", pattern: "*abc", source: "ababc", want: true},
	{name: "unicode star", pattern: "日*語", source: "日本語", want: true},
	{name: "unicode question", pattern: "日?語", source: "日本語", want: true},
	{name: "unicode too many questions", pattern: "日??語", source: "日本語"},
	{name: "extension", pattern: "*.json", source: ".json", want: true},
	{name: "extension, other", pattern: "*.json", source: "a.jsonl"},
	{name: "regexp characters are literal", pattern: "a.b+(c)", source: "a.b+(c)", want: true},
	{name: "regexp dot is not a wildcard", pattern: "a.b", source: "axb"},
	{name: "brackets are literal", pattern: "[ab]", source: "a"},
	{name: "newline matched by star", pattern: "a*b", source: "a\nb", want: true},
	{name: "newline matched by question", pattern: "a?b", source: "a\nb", want: true},
}

func TestSourceGlob(t *testing.T) {
	for _, tt := range sourceGlobCases {
		t.Run(tt.name, func(t *testing.T) {
			f, err := engine.SourceGlob(tt.pattern)
			if err != nil {
				t.Fatalf("SourceGlob(%q): %v", tt.pattern, err)
			}
			e := engine.Event{Source: tt.source}
			if got := f.Match(&e); got != tt.want {
				t.Errorf("SourceGlob(%q) on %q = %t, want %t", tt.pattern, tt.source, got, tt.want)
			}
			// The reference implementation agrees with the table, so the
			// fuzz test below checks the right thing.
			if ref := globRegexp(t, tt.pattern); ref.MatchString(tt.source) != tt.want {
				t.Errorf("reference %s on %q = %t, want %t", ref, tt.source, !tt.want, tt.want)
			}
		})
	}
}

func TestSourceGlobErrors(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		wantErr string
	}{
		{name: "backslash alone", pattern: `\`, wantErr: "escape"},
		{name: "trailing backslash", pattern: `urn:shop:\`, wantErr: "escape"},
		{name: "escaped backslash then lone backslash", pattern: `a\\\`, wantErr: "escape"},
		{name: "invalid UTF-8", pattern: "urn:\xff", wantErr: "UTF-8"},
		{name: "truncated rune", pattern: "caf\xc3", wantErr: "UTF-8"},
		{name: "invalid UTF-8 after escape", pattern: "\\\xff", wantErr: "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := engine.SourceGlob(tt.pattern)
			if err == nil {
				t.Fatalf("SourceGlob(%q) = %v, want an error", tt.pattern, f)
			}
			if f != nil {
				t.Errorf("SourceGlob(%q) returned the filter %v with its error", tt.pattern, f)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "source glob") {
				t.Errorf("SourceGlob(%q) error = %q, want it to say \"source glob\" and %q", tt.pattern, err, tt.wantErr)
			}
		})
	}
}

func TestFilterTimeRange(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	at := func(tm time.Time) engine.Event { return engine.Event{Time: tm.UnixNano()} }
	atNS := func(ns int64) engine.Event { return engine.Event{Time: ns} }
	tests := []struct {
		name   string
		filter engine.EventFilter
		cases  []modelFilterCase
	}{
		{name: "half-open", filter: engine.TimeRange(t0, t1), cases: []modelFilterCase{
			{name: "before from", event: at(t0.Add(-time.Nanosecond))},
			{name: "at from", event: at(t0), want: true},
			{name: "inside", event: at(t0.Add(time.Minute)), want: true},
			{name: "just before to", event: at(t1.Add(-time.Nanosecond)), want: true},
			{name: "at to", event: at(t1)},
			{name: "after to", event: at(t1.Add(time.Nanosecond))},
			{name: "time not set", event: atNS(0)},
		}},
		{name: "other time zone is the same instant", filter: engine.TimeRange(t0.In(time.FixedZone("UTC+5", 5*3600)), t1), cases: []modelFilterCase{
			{name: "at from", event: at(t0), want: true},
			{name: "before from", event: at(t0.Add(-time.Nanosecond))},
		}},
		{name: "zero from: no lower bound", filter: engine.TimeRange(time.Time{}, t1), cases: []modelFilterCase{
			{name: "earliest", event: atNS(math.MinInt64), want: true},
			{name: "epoch", event: atNS(0), want: true},
			{name: "just before to", event: at(t1.Add(-time.Nanosecond)), want: true},
			{name: "at to", event: at(t1)},
		}},
		{name: "zero to: no upper bound", filter: engine.TimeRange(t0, time.Time{}), cases: []modelFilterCase{
			{name: "before from", event: at(t0.Add(-time.Nanosecond))},
			{name: "at from", event: at(t0), want: true},
			{name: "latest", event: atNS(math.MaxInt64), want: true},
		}},
		{name: "both zero: everything", filter: engine.TimeRange(time.Time{}, time.Time{}), cases: []modelFilterCase{
			{name: "earliest", event: atNS(math.MinInt64), want: true},
			{name: "epoch", event: atNS(0), want: true},
			{name: "now", event: at(t0), want: true},
			{name: "latest", event: atNS(math.MaxInt64), want: true},
		}},
		{name: "empty range", filter: engine.TimeRange(t0, t0), cases: []modelFilterCase{
			{name: "at the instant", event: at(t0)},
		}},
		{name: "inverted range", filter: engine.TimeRange(t1, t0), cases: []modelFilterCase{
			{name: "between", event: at(t0.Add(time.Minute))},
			{name: "at from", event: at(t1)},
		}},
		{name: "epoch is a bound, not zero", filter: engine.TimeRange(time.Unix(0, 0), time.Unix(0, 10)), cases: []modelFilterCase{
			{name: "before epoch", event: atNS(-1)},
			{name: "at epoch", event: atNS(0), want: true},
			{name: "at to", event: atNS(10)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runModelFilterCases(t, tt.filter, tt.cases) })
	}
}

func TestFilterMetadata(t *testing.T) {
	withMeta := func(kv ...string) engine.Event {
		e := engine.Event{Type: engine.Created}
		for i := 0; i < len(kv); i += 2 {
			e.SetMeta(kv[i], kv[i+1])
		}
		return e
	}
	tests := []struct {
		name   string
		filter engine.EventFilter
		cases  []modelFilterCase
	}{
		{name: "MetadataIs", filter: engine.MetadataIs("region", "eu"), cases: []modelFilterCase{
			{name: "equal", event: withMeta("region", "eu"), want: true},
			{name: "equal among others", event: withMeta("a", "1", "region", "eu"), want: true},
			{name: "other value", event: withMeta("region", "us")},
			{name: "value differs in case", event: withMeta("region", "EU")},
			{name: "key differs in case", event: withMeta("Region", "eu")},
			{name: "value under another key", event: withMeta("zone", "eu")},
			{name: "nil metadata", event: withMeta()},
			{name: "empty metadata", event: engine.Event{Metadata: map[string]string{}}},
		}},
		{name: "MetadataIs empty value", filter: engine.MetadataIs("flag", ""), cases: []modelFilterCase{
			{name: "present and empty", event: withMeta("flag", ""), want: true},
			{name: "absent", event: withMeta()},
			{name: "present and set", event: withMeta("flag", "1")},
		}},
		{name: "HasMetadata", filter: engine.HasMetadata("traceparent"), cases: []modelFilterCase{
			{name: "present", event: withMeta("traceparent", "00-abc"), want: true},
			{name: "present and empty", event: withMeta("traceparent", ""), want: true},
			{name: "absent", event: withMeta("tracestate", "x")},
			{name: "nil metadata", event: withMeta()},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runModelFilterCases(t, tt.filter, tt.cases) })
	}
}

func TestFilterCombinators(t *testing.T) {
	never := engine.FilterFunc(func(*engine.Event) bool { return false })
	always := engine.FilterFunc(func(*engine.Event) bool { return true })
	isCreated := engine.TypeIs(engine.Created)
	fromA := engine.SourceIs("a")

	createdA := engine.Event{Type: engine.Created, Source: "a"}
	createdB := engine.Event{Type: engine.Created, Source: "b"}
	updatedA := engine.Event{Type: engine.Updated, Source: "a"}
	updatedB := engine.Event{Type: engine.Updated, Source: "b"}
	all := func(want bool) []modelFilterCase {
		return []modelFilterCase{
			{name: "created a", event: createdA, want: want},
			{name: "updated b", event: updatedB, want: want},
			{name: "empty event", event: engine.Event{}, want: want},
		}
	}
	tests := []struct {
		name   string
		filter engine.EventFilter
		cases  []modelFilterCase
	}{
		{name: "All", filter: engine.All(), cases: all(true)},
		{name: "empty And matches all", filter: engine.And(), cases: all(true)},
		{name: "And of nils matches all", filter: engine.And(nil, nil), cases: all(true)},
		{name: "empty Or matches none", filter: engine.Or(), cases: all(false)},
		{name: "Or of nils matches none", filter: engine.Or(nil, nil), cases: all(false)},
		{name: "Not All", filter: engine.Not(engine.All()), cases: all(false)},
		{name: "Not of empty Or", filter: engine.Not(engine.Or()), cases: all(true)},
		{name: "And with one false", filter: engine.And(always, never, always), cases: all(false)},
		{name: "Or with one true", filter: engine.Or(never, always, never), cases: all(true)},
		{name: "And of one", filter: engine.And(isCreated), cases: []modelFilterCase{
			{name: "created", event: createdA, want: true},
			{name: "updated", event: updatedA},
		}},
		{name: "Or of one", filter: engine.Or(nil, isCreated, nil), cases: []modelFilterCase{
			{name: "created", event: createdA, want: true},
			{name: "updated", event: updatedA},
		}},
		{name: "And", filter: engine.And(isCreated, nil, fromA), cases: []modelFilterCase{
			{name: "both", event: createdA, want: true},
			{name: "type only", event: createdB},
			{name: "source only", event: updatedA},
			{name: "neither", event: updatedB},
		}},
		{name: "Or", filter: engine.Or(isCreated, nil, fromA), cases: []modelFilterCase{
			{name: "both", event: createdA, want: true},
			{name: "type only", event: createdB, want: true},
			{name: "source only", event: updatedA, want: true},
			{name: "neither", event: updatedB},
		}},
		{name: "Not", filter: engine.Not(isCreated), cases: []modelFilterCase{
			{name: "created", event: createdA},
			{name: "updated", event: updatedA, want: true},
		}},
		{name: "Not Not", filter: engine.Not(engine.Not(isCreated)), cases: []modelFilterCase{
			{name: "created", event: createdA, want: true},
			{name: "updated", event: updatedA},
		}},
		{name: "nested: created from a, or anything from b", filter: engine.Or(engine.And(isCreated, fromA), engine.SourceIs("b")), cases: []modelFilterCase{
			{name: "created a", event: createdA, want: true},
			{name: "updated a", event: updatedA},
			{name: "created b", event: createdB, want: true},
			{name: "updated b", event: updatedB, want: true},
		}},
		{name: "De Morgan: not (created or a)", filter: engine.And(engine.Not(isCreated), engine.Not(fromA)), cases: []modelFilterCase{
			{name: "created a", event: createdA},
			{name: "created b", event: createdB},
			{name: "updated a", event: updatedA},
			{name: "updated b", event: updatedB, want: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runModelFilterCases(t, tt.filter, tt.cases) })
	}

	t.Run("combinators keep their own copy of the filters", func(t *testing.T) {
		fs := []engine.EventFilter{isCreated, fromA}
		and, or := engine.And(fs...), engine.Or(fs...)
		fs[0], fs[1] = never, never
		if !and.Match(&createdA) || !or.Match(&createdB) {
			t.Error("changing the slice passed to And or Or changed the filter")
		}
	})
}

func TestFilterFunc(t *testing.T) {
	var seen *engine.Event
	f := engine.FilterFunc(func(e *engine.Event) bool {
		seen = e
		return e.Source == "yes"
	})
	tests := []struct {
		name   string
		source string
		want   bool
	}{
		{name: "true", source: "yes", want: true},
		{name: "false", source: "no"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engine.Event{Source: tt.source}
			if got := f.Match(&e); got != tt.want {
				t.Errorf("Match = %t, want %t", got, tt.want)
			}
			if seen != &e {
				t.Errorf("the function got %p, want the event itself %p", seen, &e)
			}
		})
	}
}

func TestFilterDescribesItself(t *testing.T) {
	glob, err := engine.SourceGlob("urn:*")
	if err != nil {
		t.Fatal(err)
	}
	filters := map[string]engine.EventFilter{
		"All":          engine.All(),
		"TypeIs":       engine.TypeIs(engine.Created),
		"SourceIs":     engine.SourceIs("a"),
		"SourcePrefix": engine.SourcePrefix("a"),
		"SourceGlob":   glob,
		"TimeRange":    engine.TimeRange(time.Time{}, time.Unix(1, 0)),
		"MetadataIs":   engine.MetadataIs("k", "v"),
		"HasMetadata":  engine.HasMetadata("k"),
		"And":          engine.And(engine.SourceIs("a"), engine.SourceIs("b")),
		"Or":           engine.Or(engine.SourceIs("a"), engine.SourceIs("b")),
		"Not":          engine.Not(engine.All()),
	}
	for name, f := range filters {
		s, ok := f.(fmt.Stringer)
		if !ok {
			t.Errorf("%s filter %T is not a fmt.Stringer; filters show up in logs and errors", name, f)
			continue
		}
		if s.String() == "" {
			t.Errorf("%s filter describes itself as \"\"", name)
		}
	}
}

// TestFiltersConcurrentMatch runs one composed filter from many goroutines;
// with -race it checks that matching does not write shared state.
func TestFilterConcurrentMatch(t *testing.T) {
	glob, err := engine.SourceGlob("urn:shop:*:eu-?")
	if err != nil {
		t.Fatal(err)
	}
	f := engine.And(
		engine.TypeIs(engine.Created, engine.Updated),
		engine.Or(glob, engine.SourcePrefix("urn:test:")),
		engine.Not(engine.HasMetadata("skip")),
		engine.TimeRange(time.Unix(0, 1), time.Time{}),
	)
	events := []engine.Event{
		{Type: engine.Created, Source: "urn:shop:x:eu-1", Time: 5},
		{Type: engine.Created, Source: "urn:shop:x:us-1", Time: 5},
		{Type: engine.Updated, Source: "urn:test:1", Time: 5},
		{Type: engine.Created, Source: "urn:test:1", Time: 5, Metadata: map[string]string{"skip": ""}},
	}
	want := []bool{true, false, true, false}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				for i := range events {
					if got := f.Match(&events[i]); got != want[i] {
						errs <- fmt.Sprintf("event %d: Match = %t, want %t", i, got, want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// globRegexp translates a glob into an anchored regular expression: '*'
// is any run of characters, '?' one character, '\' quotes the next one and
// everything else is literal. It reports ok=false for a pattern SourceGlob
// must reject (a trailing '\').
func globRegexpOK(pattern string) (*regexp.Regexp, bool) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); {
		r, n := utf8.DecodeRuneInString(pattern[i:])
		i += n
		switch r {
		case '*':
			b.WriteString(`(?s:.*)`)
		case '?':
			b.WriteString(`(?s:.)`)
		case '\\':
			if i == len(pattern) {
				return nil, false
			}
			r, n = utf8.DecodeRuneInString(pattern[i:])
			i += n
			b.WriteString(regexp.QuoteMeta(string(r)))
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, false
	}
	return re, true
}

func globRegexp(t *testing.T, pattern string) *regexp.Regexp {
	t.Helper()
	re, ok := globRegexpOK(pattern)
	if !ok {
		t.Fatalf("no reference regexp for %q", pattern)
	}
	return re
}

func FuzzSourceGlob(f *testing.F) {
	for _, c := range sourceGlobCases {
		f.Add(c.pattern, c.source)
	}
	f.Add(`\`, "x")
	f.Add("a*b?c*d", "aXbYcZZd")
	f.Add("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaa")
	// The minimiser calls the target with the same pattern many times;
	// compiling its regexp once keeps each call cheap.
	refs := map[string]*regexp.Regexp{}
	reference := func(pattern string) (*regexp.Regexp, bool) {
		if re, ok := refs[pattern]; ok {
			return re, re != nil
		}
		if len(refs) > 10_000 {
			clear(refs)
		}
		re, ok := globRegexpOK(pattern)
		refs[pattern] = re
		return re, ok
	}
	f.Fuzz(func(t *testing.T, pattern, source string) {
		if !utf8.ValidString(pattern) || !utf8.ValidString(source) {
			return
		}
		// Glob bugs show on short inputs; long ones only make the regexp
		// reference slow (O(len(pattern)*len(source))), which starves the
		// fuzzer while it minimises.
		if len(pattern) > 64 || len(source) > 256 {
			return
		}
		g, err := engine.SourceGlob(pattern)
		re, ok := reference(pattern)
		if err != nil {
			if strings.HasSuffix(pattern, `\`) && !ok {
				return // a trailing escape is the one valid-UTF-8 error
			}
			t.Fatalf("SourceGlob(%q): %v", pattern, err)
		}
		if !ok {
			t.Fatalf("SourceGlob(%q) accepted a pattern with no reference translation", pattern)
		}
		e := engine.Event{Source: source}
		if got, want := g.Match(&e), re.MatchString(source); got != want {
			t.Fatalf("SourceGlob(%q) on %q = %t, reference %s says %t", pattern, source, got, re, want)
		}
	})
}
