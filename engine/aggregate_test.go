package engine_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/orders"
)

// traceAgg is an Aggregator that keeps the list of the "v" values of the
// events folded in as its accumulator ("1,5,7"); Finish appends one event
// whose data is that list, sorted, as a string. It counts its calls and
// fails on demand.
type traceAgg struct {
	accumulates, merges, finishes int
	// fail the n-th call from now (1 is the next one); 0: never
	failAccumulate, failMerge, failFinish int
	reject                                int64 // events whose v is this are rejected; 0: none
}

var errInjected = errors.New("injected failure")

func traceValue(e *engine.Event) (int64, error) {
	var d struct{ V *int64 }
	if err := e.Data.Decode(&d); err != nil || d.V == nil {
		return 0, fmt.Errorf("no v in %v", e.Data)
	}
	return *d.V, nil
}

func (a *traceAgg) Accumulate(_ context.Context, _ string, acc []byte, in []engine.Event) ([]byte, error) {
	a.accumulates++
	if a.failAccumulate > 0 {
		if a.failAccumulate--; a.failAccumulate == 0 {
			return nil, errInjected
		}
	}
	var errs *engine.EventErrors
	out := string(acc)
	for i := range in {
		v, err := traceValue(&in[i])
		if err == nil && a.reject != 0 && v == a.reject {
			err = errors.New("rejected")
		}
		if err != nil {
			if errs == nil {
				errs = &engine.EventErrors{Step: "trace"}
			}
			errs.Errors = append(errs.Errors, engine.EventError{Index: i, Code: 7, Message: err.Error()})
			continue
		}
		if out != "" {
			out += ","
		}
		out += strconv.FormatInt(v, 10)
	}
	if errs != nil {
		return []byte(out), errs
	}
	return []byte(out), nil
}

func (a *traceAgg) Merge(_ context.Context, _ string, x, y []byte) ([]byte, error) {
	a.merges++
	if a.failMerge > 0 {
		if a.failMerge--; a.failMerge == 0 {
			return nil, errInjected
		}
	}
	switch {
	case len(x) == 0:
		return y, nil
	case len(y) == 0:
		return x, nil
	}
	return []byte(string(x) + "," + string(y)), nil
}

func (a *traceAgg) Finish(_ context.Context, _ string, acc []byte, _ engine.Window, out []engine.Event) ([]engine.Event, error) {
	a.finishes++
	if a.failFinish > 0 {
		if a.failFinish--; a.failFinish == 0 {
			return append(out, engine.Event{Type: "partial"}), errInjected
		}
	}
	var vals []int64
	if len(acc) > 0 {
		for _, s := range strings.Split(string(acc), ",") {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return out, err
			}
			vals = append(vals, v)
		}
	}
	slices.Sort(vals)
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = strconv.FormatInt(v, 10)
	}
	return append(out, engine.Event{Type: "trace", Data: engine.StringData(strings.Join(parts, ","))}), nil
}

// ev is an event of key k at time t whose value is t.
func ev(k string, t int64) engine.Event { return evv(k, t, t) }

// evv is an event of key k at time t with value v.
func evv(k string, t, v int64) engine.Event {
	return engine.Event{Type: "test", Time: t, Data: engine.MustJSONData(fmt.Sprintf(`{"k":%q,"v":%d}`, k, v))}
}

// evNoKey is an event at time t without a "k".
func evNoKey(t int64) engine.Event {
	return engine.Event{Type: "test", Time: t, Data: engine.MustJSONData(fmt.Sprintf(`{"v":%d}`, t))}
}

func metaTime(t *testing.T, e engine.Event, key string) int64 {
	t.Helper()
	s, ok := e.Meta(key)
	if !ok {
		t.Fatalf("result %+v has no metadata %q", e, key)
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("metadata %s = %q: %v", key, s, err)
	}
	if ts.Location() != time.UTC || !strings.HasSuffix(s, "Z") {
		t.Fatalf("metadata %s = %q is not in UTC", key, s)
	}
	return ts.UnixNano()
}

// summary renders results as "key[start,end)=values", with "late" after
// the window for a late firing.
func summary(t *testing.T, results []engine.Event) []string {
	t.Helper()
	out := make([]string, 0, len(results))
	for _, e := range results {
		start, end := metaTime(t, e, "aegis.window.start"), metaTime(t, e, "aegis.window.end")
		s := fmt.Sprintf("%s[%d,%d)", e.Metadata["aegis.key"], start, end)
		switch f := e.Metadata["aegis.window.firing"]; f {
		case "late":
			s += "late"
		case "on-time":
		default:
			t.Fatalf("result %+v: firing %q", e, f)
		}
		if v, ok := e.Data.AsString(); ok {
			s += "=" + v
		} else {
			s += "=" + e.Data.String()
		}
		out = append(out, s)
	}
	return out
}

func lateSummary(late []engine.Event) []string {
	out := make([]string, 0, len(late))
	for _, e := range late {
		var d struct{ K string }
		_ = e.Data.Decode(&d)
		out = append(out, fmt.Sprintf("%s@%d", d.K, e.Time))
	}
	return out
}

// aggStep is one call in an aggregation scenario: Process of in, or a
// Flush.
type aggStep struct {
	in     []engine.Event
	flush  string   // "": Process; "complete" or "all": Flush
	want   []string // results, see summary
	late   []string // late events, "key@time"
	failed []int    // indices reported in EventErrors
}

func keyData(t testing.TB) engine.KeyFunc {
	f, err := engine.KeyBy("data.k")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// runAggSteps runs steps through a, checking each one.
func runAggSteps(t *testing.T, a *engine.Aggregation, steps []aggStep) {
	t.Helper()
	ctx := context.Background()
	for i, st := range steps {
		var out, late []engine.Event
		var err error
		switch st.flush {
		case "":
			out, late, err = a.Process(ctx, st.in, nil, nil)
		case "complete", "all":
			out, err = a.Flush(ctx, nil, st.flush == "all")
		default:
			t.Fatalf("bad step %q", st.flush)
		}
		var failed []int
		var ee *engine.EventErrors
		if errors.As(err, &ee) {
			if ee.Step != "agg" {
				t.Errorf("step %d: EventErrors.Step = %q, want the aggregation's name", i, ee.Step)
			}
			for _, x := range ee.Errors {
				failed = append(failed, x.Index)
			}
		} else if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := summary(t, out); !slices.Equal(got, st.want) {
			t.Errorf("step %d: results\n got %q\nwant %q", i, got, st.want)
		}
		if got := lateSummary(late); !slices.Equal(got, st.late) {
			t.Errorf("step %d: late %q, want %q", i, got, st.late)
		}
		if !slices.Equal(failed, st.failed) {
			t.Errorf("step %d: failed %v, want %v (%v)", i, failed, st.failed, err)
		}
	}
}

func evs(e ...engine.Event) []engine.Event { return e }

func TestAggregation(t *testing.T) {
	tumbling := engine.WindowSpec{Kind: engine.Tumbling, Size: 10}
	tests := []struct {
		name  string
		cfg   engine.AggregationConfig
		agg   traceAgg
		steps []aggStep
		check func(t *testing.T, agg *traceAgg, s engine.AggregationStats)
	}{
		{
			name: "tumbling in order",
			cfg:  engine.AggregationConfig{Window: tumbling},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("a", 5), ev("b", 7), ev("a", 12)), want: []string{"a[0,10)=1,5", "b[0,10)=7"}},
				{flush: "all", want: []string{"a[10,20)=12", "b[10,20)="}},
			},
		},
		{
			name: "tumbling window end belongs to the next window",
			cfg:  engine.AggregationConfig{Window: tumbling},
			steps: []aggStep{
				{in: evs(ev("a", 9)), want: nil},
				{in: evs(ev("a", 10)), want: []string{"a[0,10)=9"}},
			},
		},
		{
			name: "tumbling negative times",
			cfg:  engine.AggregationConfig{Window: tumbling},
			steps: []aggStep{
				{in: evs(ev("a", -15), ev("a", -1), ev("a", -10), ev("a", 0)), want: []string{"a[-20,-10)=-15", "a[-10,0)=-10,-1"}},
			},
		},
		{
			name: "sliding",
			cfg:  engine.AggregationConfig{Window: engine.WindowSpec{Kind: engine.Sliding, Size: 10, Every: 5}},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("a", 7), ev("a", 12)), want: []string{"a[-5,5)=1", "a[0,10)=1,7"}},
				{flush: "all", want: []string{"a[5,15)=7,12", "a[10,20)=12"}},
			},
		},
		{
			name: "one group without a key function",
			cfg:  engine.AggregationConfig{Window: tumbling, Key: nil},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("b", 2), evNoKey(3), ev("a", 10)), want: []string{"[0,10)=1,2,3"}},
			},
		},
		{
			name: "session gap",
			cfg:  engine.AggregationConfig{Window: engine.WindowSpec{Kind: engine.Session, Gap: 10}},
			steps: []aggStep{
				// 9 after the last event joins; exactly 10 after does not.
				{in: evs(ev("b", 2), ev("a", 0), ev("a", 9), ev("a", 19), ev("a", 40)), want: []string{"b[2,12)=2", "a[0,19)=0,9", "a[19,29)=19"}},
				{flush: "all", want: []string{"a[40,50)=40"}},
			},
		},
		{
			name: "session bridged within one batch",
			cfg:  engine.AggregationConfig{Window: engine.WindowSpec{Kind: engine.Session, Gap: 10}, Watermark: 30},
			steps: []aggStep{
				{in: evs(ev("a", 0), ev("a", 18), ev("a", 9), ev("a", 70)), want: []string{"a[0,28)=0,9,18"}},
				{flush: "all", want: []string{"a[70,80)=70"}},
			},
			check: func(t *testing.T, agg *traceAgg, _ engine.AggregationStats) {
				if agg.merges != 0 {
					t.Errorf("%d Merge calls, want none: the batch's events are accumulated together", agg.merges)
				}
			},
		},
		{
			name: "sessions merge when an out-of-order event bridges two",
			cfg:  engine.AggregationConfig{Window: engine.WindowSpec{Kind: engine.Session, Gap: 10}, Watermark: 100},
			steps: []aggStep{
				{in: evs(ev("a", 0), ev("a", 18), ev("b", 5))},
				{in: evs(ev("a", 9))},
				{flush: "all", want: []string{"b[5,15)=5", "a[0,28)=0,9,18"}},
			},
			check: func(t *testing.T, agg *traceAgg, s engine.AggregationStats) {
				if agg.merges != 1 {
					t.Errorf("%d Merge calls, want 1", agg.merges)
				}
				if s.Groups != 0 || s.OpenWindows != 0 {
					t.Errorf("stats after Flush(all) = %+v, want no state", s)
				}
			},
		},
		{
			name: "session merged into a fired one fires late",
			cfg:  engine.AggregationConfig{Window: engine.WindowSpec{Kind: engine.Session, Gap: 10}, AllowedLateness: 20},
			steps: []aggStep{
				{in: evs(ev("a", 0), ev("a", 25)), want: []string{"a[0,10)=0"}},
				{in: evs(ev("a", 8)), want: []string{"a[0,18)late=0,8"}},
				{in: evs(ev("a", 17))}, // bridges [0,18) and [25,35)
				{flush: "all", want: []string{"a[0,35)late=0,8,17,25"}},
			},
			check: func(t *testing.T, agg *traceAgg, s engine.AggregationStats) {
				if agg.merges != 1 {
					t.Errorf("%d Merge calls, want 1", agg.merges)
				}
				if s.LateFirings != 2 || s.WindowsFired != 3 {
					t.Errorf("stats %+v: want 3 firings, 2 late", s)
				}
			},
		},
		{
			name: "session past its lateness is not merged",
			cfg:  engine.AggregationConfig{Window: engine.WindowSpec{Kind: engine.Session, Gap: 10}, AllowedLateness: 5},
			steps: []aggStep{
				// 16 closes [0,10) for good (10+5 <= 16): 9 joins [14,24) only.
				{in: evs(ev("a", 0), ev("a", 14), ev("a", 16), ev("a", 9)), want: []string{"a[0,10)=0"}},
				// 8 would join nothing that is still open, and its own
				// session would be past its lateness.
				{in: evs(ev("a", 40), ev("a", 8)), want: []string{"a[9,26)=9,14,16"}, late: []string{"a@8"}},
			},
		},
		{
			name: "watermark and allowed lateness",
			cfg:  engine.AggregationConfig{Window: tumbling, Watermark: 5, AllowedLateness: 10},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("a", 12))},                       // watermark 7
				{in: evs(ev("a", 16)), want: []string{"a[0,10)=1"}},      // watermark 11
				{in: evs(ev("a", 3)), want: []string{"a[0,10)late=1,3"}}, // late, within lateness
				{in: evs(ev("a", 26)), want: []string{"a[10,20)=12,16"}}, // watermark 21: [0,10) is gone
				{in: evs(ev("a", 4)), late: []string{"a@4"}},
			},
			check: func(t *testing.T, _ *traceAgg, s engine.AggregationStats) {
				want := engine.AggregationStats{Events: 5, Late: 1, WindowsFired: 3, LateFirings: 1, OpenWindows: 2, Groups: 1, Watermark: 21}
				if s != want {
					t.Errorf("stats %+v, want %+v", s, want)
				}
			},
		},
		{
			name: "no allowed lateness fires once",
			cfg:  engine.AggregationConfig{Window: tumbling, Watermark: 5},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("a", 15)), want: []string{"a[0,10)=1"}},
				{in: evs(ev("a", 5), ev("b", 9)), late: []string{"a@5", "b@9"}},
				{flush: "all", want: []string{"a[10,20)=15"}},
			},
		},
		{
			name: "the watermark advances within a batch",
			cfg:  engine.AggregationConfig{Window: tumbling},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("a", 15), ev("a", 5)), want: []string{"a[0,10)=1"}, late: []string{"a@5"}},
			},
		},
		{
			name: "late firing and late events in one batch",
			cfg:  engine.AggregationConfig{Window: tumbling, AllowedLateness: 10},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("a", 12)), want: []string{"a[0,10)=1"}},
				{in: evs(ev("a", 2), ev("a", 25), ev("a", 3)), want: []string{"a[0,10)late=1,2", "a[10,20)=12"}, late: []string{"a@3"}},
			},
		},
		{
			name: "sliding late event updates the windows still open",
			cfg:  engine.AggregationConfig{Window: engine.WindowSpec{Kind: engine.Sliding, Size: 10, Every: 5}, AllowedLateness: 3},
			steps: []aggStep{
				{in: evs(ev("a", 6), ev("a", 12)), want: []string{"a[0,10)=6"}}, // [0,10) kept until 13
				// 7 is in [0,10) (still kept) and [5,15) (open).
				{in: evs(ev("a", 7)), want: []string{"a[0,10)late=6,7"}},
				// watermark 13 closes [0,10) for good; 8 goes to [5,15) only.
				{in: evs(ev("a", 13), ev("a", 8))},
				{flush: "all", want: []string{"a[5,15)=6,7,8,12,13", "a[10,20)=12,13"}},
			},
		},
		{
			name: "empty windows",
			cfg:  engine.AggregationConfig{Window: tumbling},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("b", 2))},
				{in: evs(ev("a", 35)), want: []string{"a[0,10)=1", "b[0,10)=2", "a[10,20)=", "b[10,20)=", "a[20,30)=", "b[20,30)="}},
				{flush: "all", want: []string{"a[30,40)=35", "b[30,40)="}},
			},
		},
		{
			name: "max empty windows forgets the key until its next event",
			cfg:  engine.AggregationConfig{Window: tumbling, MaxEmptyWindows: 2},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("b", 2))},
				// a skips to its next window with events; b is forgotten.
				{in: evs(ev("a", 55)), want: []string{"a[0,10)=1", "b[0,10)=2", "a[10,20)=", "b[10,20)=", "a[20,30)=", "b[20,30)="}},
				{in: evs(ev("b", 61)), want: []string{"a[50,60)=55"}},
				{in: evs(ev("a", 75)), want: []string{"a[60,70)=", "b[60,70)=61"}},
			},
			check: func(t *testing.T, _ *traceAgg, s engine.AggregationStats) {
				// a holds [70,80); b has no window left but goes on firing
				// empty ones.
				if s.Groups != 2 || s.OpenWindows != 1 {
					t.Errorf("stats %+v: want 2 groups and 1 window", s)
				}
			},
		},
		{
			name: "negative max empty windows fires none",
			cfg:  engine.AggregationConfig{Window: tumbling, MaxEmptyWindows: -1},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("b", 2), ev("a", 35)), want: []string{"a[0,10)=1", "b[0,10)=2"}},
				{flush: "all", want: []string{"a[30,40)=35"}},
			},
		},
		{
			name: "an empty window fires late when an event arrives within lateness",
			cfg:  engine.AggregationConfig{Window: tumbling, AllowedLateness: 20},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("a", 25)), want: []string{"a[0,10)=1", "a[10,20)="}},
				{in: evs(ev("a", 15)), want: []string{"a[10,20)late=15"}},
			},
		},
		{
			name: "a key's first window moves back for an earlier event",
			cfg:  engine.AggregationConfig{Window: tumbling, Watermark: 100},
			steps: []aggStep{
				{in: evs(ev("a", 50))},
				{in: evs(ev("a", 20))},
				{flush: "all", want: []string{"a[20,30)=20", "a[30,40)=", "a[40,50)=", "a[50,60)=50"}},
			},
		},
		{
			name: "flush complete windows, then all",
			cfg:  engine.AggregationConfig{Window: tumbling, Watermark: 100},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("a", 12), ev("b", 25))},
				{flush: "complete", want: []string{"a[0,10)=1", "a[10,20)=12"}},
				{flush: "complete"},
				{in: evs(ev("a", 5))}, // not late: the watermark did not move
				{flush: "all", want: []string{"a[0,10)late=1,5", "a[20,30)=", "b[20,30)=25"}},
				{flush: "all"},
				{in: evs(ev("a", 3)), want: nil}, // afresh: no longer late
				{flush: "all", want: []string{"a[0,10)=3"}},
			},
			check: func(t *testing.T, _ *traceAgg, s engine.AggregationStats) {
				if s.Groups != 0 || s.OpenWindows != 0 || s.Watermark != math.MinInt64 {
					t.Errorf("stats after Flush(all) = %+v, want no state", s)
				}
				if s.WindowsFired != 6 || s.LateFirings != 1 || s.Events != 5 {
					t.Errorf("stats %+v: want 6 firings, 1 late, 5 events", s)
				}
			},
		},
		{
			name: "flush of sessions",
			cfg:  engine.AggregationConfig{Window: engine.WindowSpec{Kind: engine.Session, Gap: 10}, Watermark: 100},
			steps: []aggStep{
				{in: evs(ev("a", 1), ev("b", 5), ev("a", 30))},
				{flush: "complete", want: []string{"a[1,11)=1", "b[5,15)=5"}},
				{flush: "all", want: []string{"a[30,40)=30"}},
			},
		},
		{
			name: "events without a key and rejected events fail alone",
			cfg:  engine.AggregationConfig{Window: engine.WindowSpec{Kind: engine.Sliding, Size: 10, Every: 5}},
			agg:  traceAgg{reject: 13},
			steps: []aggStep{
				{
					in:     evs(ev("a", 1), evNoKey(2), ev("a", 3), ev("a", 13), ev("b", 13)),
					failed: []int{1, 3, 4},
					want:   []string{"a[-5,5)=1,3", "a[0,10)=1,3"},
				},
				{flush: "all", want: []string{"a[5,15)=", "a[10,20)="}},
			},
			check: func(t *testing.T, _ *traceAgg, s engine.AggregationStats) {
				if s.Failed != 3 || s.Events != 2 {
					t.Errorf("stats %+v: want 3 failed and 2 events", s)
				}
			},
		},
		{
			name: "times whose windows do not fit fail alone",
			cfg:  engine.AggregationConfig{Window: tumbling},
			steps: []aggStep{
				// Nor does such a time move the watermark.
				{in: evs(ev("a", 1), evv("a", math.MaxInt64, 0), ev("a", 2)), failed: []int{1}},
				{flush: "all", want: []string{"a[0,10)=1,2"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agg := tt.agg
			cfg := tt.cfg
			cfg.Name = "agg"
			cfg.Aggregator = &agg
			if cfg.Key == nil && !strings.HasPrefix(tt.name, "one group") {
				cfg.Key = keyData(t)
			}
			a, err := engine.NewAggregation(cfg)
			if err != nil {
				t.Fatal(err)
			}
			runAggSteps(t, a, tt.steps)
			if tt.check != nil {
				tt.check(t, &agg, a.Stats())
			}
		})
	}
}

func TestNewAggregationErrors(t *testing.T) {
	agg := &traceAgg{}
	tumbling := engine.WindowSpec{Kind: engine.Tumbling, Size: time.Second}
	tests := []struct {
		name    string
		cfg     engine.AggregationConfig
		wantErr string
	}{
		{name: "no name", cfg: engine.AggregationConfig{Window: tumbling, Aggregator: agg}, wantErr: "aggregation: name is empty"},
		{name: "no aggregator", cfg: engine.AggregationConfig{Name: "s", Window: tumbling}, wantErr: "aggregate[s]: no aggregator"},
		{name: "bad window", cfg: engine.AggregationConfig{Name: "s", Aggregator: agg}, wantErr: "aggregate[s]: window[tumbling]: size must be positive"},
		{name: "negative watermark", cfg: engine.AggregationConfig{Name: "s", Window: tumbling, Aggregator: agg, Watermark: -1}, wantErr: "watermark must not be negative"},
		{name: "negative lateness", cfg: engine.AggregationConfig{Name: "s", Window: tumbling, Aggregator: agg, AllowedLateness: -1}, wantErr: "allowed lateness must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := engine.NewAggregation(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewAggregation() = %v, %v; want an error containing %q", a, err, tt.wantErr)
			}
		})
	}
}

func TestAggregationOneAccumulatePerGroupAndWindow(t *testing.T) {
	agg := &traceAgg{}
	a, err := engine.NewAggregation(engine.AggregationConfig{Name: "agg", Key: keyData(t), Window: engine.WindowSpec{Kind: engine.Tumbling, Size: 100}, Aggregator: agg, Watermark: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var in []engine.Event
	for i := range 1000 {
		in = append(in, ev([]string{"a", "b"}[i%2], int64(i%300)))
	}
	if _, _, err := a.Process(context.Background(), in, nil, nil); err != nil {
		t.Fatal(err)
	}
	if agg.accumulates != 6 {
		t.Errorf("%d Accumulate calls for 2 keys and 3 windows, want 6", agg.accumulates)
	}
	if s := a.Stats(); s.Events != 1000 || s.OpenWindows != 6 || s.Groups != 2 {
		t.Errorf("stats %+v", s)
	}
}

// TestAggregationAtomicity fails one aggregator call in each batch and
// checks that the failed Process or Flush changed nothing: retrying gives
// exactly the results (and IDs) of a run where nothing failed.
func TestAggregationAtomicity(t *testing.T) {
	tumbling := engine.WindowSpec{Kind: engine.Tumbling, Size: 10}
	session := engine.WindowSpec{Kind: engine.Session, Gap: 10}
	batches := [][]engine.Event{
		evs(ev("a", 1), ev("b", 2), ev("c", 3)),
		evs(ev("b", 12), ev("a", 14), ev("c", 9), ev("a", 25)),
		evs(ev("a", 5), ev("b", 17), ev("c", 31), ev("a", 18)),
		evs(ev("b", 44), ev("a", 20), ev("c", 33), ev("b", 2)),
		evs(ev("a", 60), ev("c", 21), ev("b", 58)),
	}
	tests := []struct {
		name   string
		window engine.WindowSpec
		// fail sets up the failure of one call in the next batch
		fail func(agg *traceAgg)
		// flush: also fail the final Flush(all) once
		flush bool
	}{
		{name: "second accumulate of a batch", window: tumbling, fail: func(agg *traceAgg) { agg.failAccumulate = 2 }},
		{name: "first accumulate of a batch", window: tumbling, fail: func(agg *traceAgg) { agg.failAccumulate = 1 }},
		{name: "second finish of a batch", window: tumbling, fail: func(agg *traceAgg) { agg.failFinish = 2 }, flush: true},
		{name: "sessions: second accumulate", window: session, fail: func(agg *traceAgg) { agg.failAccumulate = 2 }},
		{name: "sessions: merge", window: session, fail: func(agg *traceAgg) { agg.failMerge = 1 }},
		{name: "sessions: first finish", window: session, fail: func(agg *traceAgg) { agg.failFinish = 1 }, flush: true},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newAgg := func(agg *traceAgg) *engine.Aggregation {
				a, err := engine.NewAggregation(engine.AggregationConfig{Name: "agg", Key: keyData(t), Window: tt.window, Watermark: 5, AllowedLateness: 10, Aggregator: agg})
				if err != nil {
					t.Fatal(err)
				}
				return a
			}
			// The reference run, where nothing fails.
			var wantOut, wantLate []engine.Event
			ref := newAgg(&traceAgg{})
			for _, b := range batches {
				var err error
				wantOut, wantLate, err = ref.Process(ctx, b, wantOut, wantLate)
				if err != nil {
					t.Fatal(err)
				}
			}
			wantOut, err := ref.Flush(ctx, wantOut, true)
			if err != nil {
				t.Fatal(err)
			}

			agg := &traceAgg{}
			a := newAgg(agg)
			sentinel := engine.Event{Type: "sentinel"}
			out, late := []engine.Event{sentinel}, []engine.Event{sentinel}
			failures := 0
			for i, b := range batches {
				before := a.Stats()
				tt.fail(agg)
				o, l, err := a.Process(ctx, b, out, late)
				if err != nil {
					failures++
					if !errors.Is(err, errInjected) || !strings.HasPrefix(err.Error(), "aggregate[agg]") {
						t.Fatalf("batch %d: error %v, want the injected failure named by the step", i, err)
					}
					if len(o) != len(out) || len(l) != len(late) {
						t.Fatalf("batch %d: a failed Process returned %d results and %d late events, want %d and %d", i, len(o), len(l), len(out), len(late))
					}
					if after := a.Stats(); after != before {
						t.Fatalf("batch %d: a failed Process changed the stats from %+v to %+v", i, before, after)
					}
					o, l, err = a.Process(ctx, b, out, late) // the retry
				}
				agg.failAccumulate, agg.failMerge, agg.failFinish = 0, 0, 0
				if err != nil {
					t.Fatalf("batch %d: %v", i, err)
				}
				out, late = o, l
			}
			if tt.flush {
				before := a.Stats()
				tt.fail(agg)
				o, err := a.Flush(ctx, out, true)
				if err == nil {
					t.Fatal("Flush did not fail")
				}
				failures++
				if len(o) != len(out) || a.Stats() != before {
					t.Fatalf("a failed Flush changed something")
				}
				agg.failAccumulate, agg.failMerge, agg.failFinish = 0, 0, 0
			}
			out, err = a.Flush(ctx, out, true)
			if err != nil {
				t.Fatal(err)
			}
			if failures < 1 {
				t.Fatalf("only %d calls failed: the scenario does not test much", failures)
			}
			if got, want := summary(t, out[1:]), summary(t, wantOut); !slices.Equal(got, want) {
				t.Errorf("results\n got %q\nwant %q", got, want)
			}
			if got, want := lateSummary(late[1:]), lateSummary(wantLate); !slices.Equal(got, want) {
				t.Errorf("late %q, want %q", got, want)
			}
			for i := range wantOut {
				if out[i+1].ID != wantOut[i].ID {
					t.Errorf("result %d: ID %v, want %v", i, out[i+1].ID, wantOut[i].ID)
				}
			}
		})
	}
}

func TestAggregationCancelledContext(t *testing.T) {
	a, err := engine.NewAggregation(engine.AggregationConfig{Name: "agg", Window: engine.WindowSpec{Kind: engine.Tumbling, Size: 10}, Aggregator: &traceAgg{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := a.Process(ctx, evs(ev("a", 1), ev("a", 20)), nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Process: %v, want context.Canceled", err)
	}
	if _, err := a.Flush(ctx, nil, true); !errors.Is(err, context.Canceled) {
		t.Errorf("Flush: %v, want context.Canceled", err)
	}
	if s := a.Stats(); s.Events != 0 || s.Watermark != math.MinInt64 {
		t.Errorf("stats %+v after cancelled calls", s)
	}
}

func TestAggregationBadEventErrorIndex(t *testing.T) {
	a, err := engine.NewAggregation(engine.AggregationConfig{Name: "agg", Window: engine.WindowSpec{Kind: engine.Tumbling, Size: 10}, Aggregator: &badIndexAgg{}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = a.Process(context.Background(), evs(ev("a", 1)), nil, nil)
	var ee *engine.EventErrors
	if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "rejected event 5 of a batch of 1") {
		t.Errorf("Process: %v, want a batch failure naming the bad index", err)
	}
}

type badIndexAgg struct{ traceAgg }

func (*badIndexAgg) Accumulate(context.Context, string, []byte, []engine.Event) ([]byte, error) {
	return nil, &engine.EventErrors{Errors: []engine.EventError{{Index: 5}}}
}

// decoratingAgg's Finish sets some fields of its results itself.
type decoratingAgg struct{ traceAgg }

func (d *decoratingAgg) Finish(ctx context.Context, key string, acc []byte, w engine.Window, out []engine.Event) ([]engine.Event, error) {
	out, err := d.traceAgg.Finish(ctx, key, acc, w, out)
	if err != nil {
		return out, err
	}
	own := engine.Event{Type: "own", Source: "mine", Time: 42, ID: mustParseEventIDForAgg(), Metadata: map[string]string{"user": "kept", "aegis.key": "overwritten"}}
	return append(out, own), nil
}

func mustParseEventIDForAgg() engine.EventID {
	id, err := engine.ParseEventID("0190f3a4-5b6c-7d8e-9f00-112233445566")
	if err != nil {
		panic(err)
	}
	return id
}

func TestAggregationResultFields(t *testing.T) {
	run := func(name string, agg engine.Aggregator) []engine.Event {
		a, err := engine.NewAggregation(engine.AggregationConfig{Name: name, Key: keyData(t), Window: engine.WindowSpec{Kind: engine.Tumbling, Size: 10}, AllowedLateness: 100, Aggregator: agg})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		out, _, err := a.Process(ctx, evs(ev("b", 1), ev("a", 2), ev("c", 13), ev("a", 25)), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err = a.Process(ctx, evs(ev("a", 3)), out, nil) // a late firing
		if err != nil {
			t.Fatal(err)
		}
		out, err = a.Flush(ctx, out, true)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := run("step-1", &traceAgg{})
	want := []string{
		"a[0,10)=2", "b[0,10)=1", "a[10,20)=", "b[10,20)=", "c[10,20)=13",
		"a[0,10)late=2,3",
		"a[20,30)=25", "b[20,30)=", "c[20,30)=",
	}
	if got := summary(t, out); !slices.Equal(got, want) {
		t.Fatalf("results\n got %q\nwant %q", got, want)
	}
	ids := map[engine.EventID]bool{}
	for i, e := range out {
		end := metaTime(t, e, "aegis.window.end")
		if e.Time != end-1 {
			t.Errorf("result %d: time %d, want the window end - 1 = %d", i, e.Time, end-1)
		}
		if e.Source != "aegis:aggregate:step-1" {
			t.Errorf("result %d: source %q", i, e.Source)
		}
		if e.Metadata["aegis.step"] != "step-1" {
			t.Errorf("result %d: aegis.step %q", i, e.Metadata["aegis.step"])
		}
		if e.ID.Version() != 8 || e.ID[8]&0xc0 != 0x80 {
			t.Errorf("result %d: ID %v is not a version 8 UUID", i, e.ID)
		}
		if ids[e.ID] {
			t.Errorf("result %d: ID %v is not unique", i, e.ID)
		}
		ids[e.ID] = true
		if err := e.Validate(); err != nil {
			t.Errorf("result %d: %v", i, err)
		}
	}
	// A replay gives the same IDs; another step name other ones.
	again := run("step-1", &traceAgg{})
	other := run("step-2", &traceAgg{})
	for i := range out {
		if again[i].ID != out[i].ID {
			t.Errorf("result %d: replay ID %v, want %v", i, again[i].ID, out[i].ID)
		}
		if ids[other[i].ID] {
			t.Errorf("result %d: another step made the same ID %v", i, other[i].ID)
		}
	}

	// What Finish sets itself is kept, but for the aggregation's metadata.
	out = run("step-1", &decoratingAgg{})
	for i := 1; i < len(out); i += 2 {
		e := out[i]
		if e.Type != "own" || e.Source != "mine" || e.Time != 42 || e.ID != mustParseEventIDForAgg() || e.Metadata["user"] != "kept" {
			t.Errorf("result %d: %+v: Finish's own fields were changed", i, e)
		}
		if e.Metadata["aegis.key"] != out[i-1].Metadata["aegis.key"] || e.Metadata["aegis.window.end"] == "" {
			t.Errorf("result %d: metadata %v", i, e.Metadata)
		}
	}
	if out[0].ID == out[1].ID || out[0].Metadata["aegis.key"] != "a" {
		t.Errorf("first results %+v", out[:2])
	}
}

// TestAggregationResultOrder checks the documented order: by window end,
// then start, then key, whatever the input order.
func TestAggregationResultOrder(t *testing.T) {
	a, err := engine.NewAggregation(engine.AggregationConfig{Name: "agg", Key: keyData(t), Window: engine.WindowSpec{Kind: engine.Sliding, Size: 20, Every: 10}, Watermark: 1000, Aggregator: &traceAgg{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := a.Process(ctx, evs(ev("z", 35), ev("m", 5), ev("a", 22), ev("m", 17), ev("z", 1)), nil, nil); err != nil {
		t.Fatal(err)
	}
	out, err := a.Flush(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	type win struct {
		end, start int64
		key        string
	}
	var got []win
	for _, e := range out {
		got = append(got, win{metaTime(t, e, "aegis.window.end"), metaTime(t, e, "aegis.window.start"), e.Metadata["aegis.key"]})
	}
	if !slices.IsSortedFunc(got, func(x, y win) int {
		return cmp.Or(cmp.Compare(x.end, y.end), cmp.Compare(x.start, y.start), cmp.Compare(x.key, y.key))
	}) {
		t.Errorf("results not in order: %v", got)
	}
	// From each key's first window to the one of the newest event: 5 for
	// z and m, 3 for a.
	if len(got) != 13 {
		t.Errorf("%d results, want 13: %v", len(got), summary(t, out))
	}
}

func TestAggregationCountOfEmptyWindowIsZero(t *testing.T) {
	fns, err := engine.Functions("counts", engine.AggregateFunction{Fn: engine.Count}, engine.AggregateFunction{Fn: engine.Avg, Field: "v"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := engine.NewAggregation(engine.AggregationConfig{Name: "agg", Key: keyData(t), Window: engine.WindowSpec{Kind: engine.Tumbling, Size: int64Dur(time.Second)}, Aggregator: fns})
	if err != nil {
		t.Fatal(err)
	}
	s := int64(time.Second)
	out, _, err := a.Process(context.Background(), evs(evv("a", 1, 4), evv("a", 2, 6), evv("a", 2*s+5, 1)), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range out {
		raw, _ := e.Data.AsJSON()
		got = append(got, string(raw))
	}
	want := []string{
		`{"key":"a","window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:00:01Z","count":2,"avg_v":5}`,
		`{"key":"a","window_start":"1970-01-01T00:00:01Z","window_end":"1970-01-01T00:00:02Z","count":0,"avg_v":null}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("results\n got %s\nwant %s", got, want)
	}
}

func int64Dur(d time.Duration) time.Duration { return d }

func TestAggregationStatsConcurrent(t *testing.T) {
	a, err := engine.NewAggregation(engine.AggregationConfig{Name: "agg", Key: keyData(t), Window: engine.WindowSpec{Kind: engine.Tumbling, Size: 10}, Aggregator: &traceAgg{}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var last uint64
		for {
			select {
			case <-done:
				return
			default:
			}
			s := a.Stats()
			if s.Events < last {
				t.Errorf("Events went back from %d to %d", last, s.Events)
			}
			last = s.Events
		}
	})
	ctx := context.Background()
	for i := range 200 {
		if _, _, err := a.Process(ctx, evs(ev("a", int64(i)), ev("b", int64(i))), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if s := a.Stats(); s.Events != 400 || s.WindowsFired != 2*19 || s.Watermark != 199 {
		t.Errorf("stats %+v", s)
	}
}

// refWindowKey is a window of a key in the reference computations.
type refWindowKey struct {
	key        string
	start, end int64
}

// collect reads trace results into a map, failing on a window that fired
// twice.
func collect(t *testing.T, out []engine.Event) map[refWindowKey]string {
	t.Helper()
	got := map[refWindowKey]string{}
	for _, e := range out {
		k := refWindowKey{e.Metadata["aegis.key"], metaTime(t, e, "aegis.window.start"), metaTime(t, e, "aegis.window.end")}
		if _, dup := got[k]; dup {
			t.Fatalf("window %v fired twice", k)
		}
		got[k], _ = e.Data.AsString()
	}
	return got
}

func joinInts(vs []int64) string {
	slices.Sort(vs)
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(s, ",")
}

// randomOutOfOrder returns n events over keys, with times that go up but
// are shuffled by up to disorder, each with a distinct value.
func randomOutOfOrder(r *rand.Rand, n int, keys []string, disorder int64) []engine.Event {
	out := make([]engine.Event, n)
	for i := range out {
		t := int64(i)*3 - 500 + r.Int64N(disorder)
		out[i] = evv(keys[r.IntN(len(keys))], t, int64(i))
	}
	return out
}

// processInRandomBatches processes in in batches of random sizes, then
// flushes everything.
func processInRandomBatches(t *testing.T, r *rand.Rand, a *engine.Aggregation, in []engine.Event) (out, late []engine.Event) {
	t.Helper()
	ctx := context.Background()
	for len(in) > 0 {
		n := min(len(in), 1+r.IntN(50))
		var err error
		out, late, err = a.Process(ctx, in[:n], out, late)
		if err != nil {
			t.Fatal(err)
		}
		in = in[n:]
	}
	out, err := a.Flush(ctx, out, true)
	if err != nil {
		t.Fatal(err)
	}
	return out, late
}

// TestAggregationMatchesReference processes out-of-order events, less out
// of order than the watermark allows, in random batches, and compares the
// results with a direct computation: every window of every key, from its
// first window to the last one, with the values that belong to it.
func TestAggregationMatchesReference(t *testing.T) {
	specs := []struct {
		name string
		spec engine.WindowSpec
	}{
		{name: "tumbling", spec: engine.WindowSpec{Kind: engine.Tumbling, Size: 40}},
		{name: "sliding", spec: engine.WindowSpec{Kind: engine.Sliding, Size: 60, Every: 20}},
		{name: "session", spec: engine.WindowSpec{Kind: engine.Session, Gap: 25}},
	}
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	for _, sp := range specs {
		for seed := range uint64(5) {
			t.Run(fmt.Sprintf("%s/seed=%d", sp.name, seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 7))
				in := randomOutOfOrder(r, 2000, keys, 200)
				a, err := engine.NewAggregation(engine.AggregationConfig{Name: "agg", Key: keyData(t), Window: sp.spec, Watermark: 200, Aggregator: &traceAgg{}})
				if err != nil {
					t.Fatal(err)
				}
				out, late := processInRandomBatches(t, r, a, in)
				if len(late) != 0 {
					t.Fatalf("%d late events", len(late))
				}
				got := collect(t, out)
				want := referenceWindows(t, sp.spec, in)
				if len(got) != len(want) {
					t.Errorf("%d windows, want %d", len(got), len(want))
				}
				for k, w := range want {
					if g, ok := got[k]; !ok || g != w {
						t.Errorf("window %v = %q (present %t), want %q", k, g, ok, w)
					}
				}
			})
		}
	}
}

func referenceWindows(t *testing.T, spec engine.WindowSpec, in []engine.Event) map[refWindowKey]string {
	vals := map[refWindowKey][]int64{}
	byKey := map[string][]engine.Event{}
	maxT := int64(math.MinInt64)
	for _, e := range in {
		var d struct {
			K string
			V int64
		}
		if err := e.Data.Decode(&d); err != nil {
			t.Fatal(err)
		}
		byKey[d.K] = append(byKey[d.K], e)
		maxT = max(maxT, e.Time)
	}
	if spec.Kind == engine.Session {
		for k, es := range byKey {
			slices.SortStableFunc(es, func(x, y engine.Event) int { return cmp.Compare(x.Time, y.Time) })
			var cur []int64
			start, last := es[0].Time, es[0].Time
			for _, e := range es {
				if e.Time-last >= int64(spec.Gap) {
					vals[refWindowKey{k, start, last + int64(spec.Gap)}] = cur
					cur, start = nil, e.Time
				}
				v, _ := traceValue(&e)
				cur = append(cur, v)
				last = e.Time
			}
			vals[refWindowKey{k, start, last + int64(spec.Gap)}] = cur
		}
	} else {
		lastWins, _ := spec.Windows(maxT, nil)
		lastEnd := lastWins[len(lastWins)-1].End
		for k, es := range byKey {
			first := int64(math.MaxInt64)
			for _, e := range es {
				ws, err := spec.Windows(e.Time, nil)
				if err != nil {
					t.Fatal(err)
				}
				first = min(first, ws[0].Start)
				for _, w := range ws {
					v, _ := traceValue(&e)
					vals[refWindowKey{k, w.Start, w.End}] = append(vals[refWindowKey{k, w.Start, w.End}], v)
				}
			}
			every := int64(spec.Every)
			if every == 0 {
				every = int64(spec.Size)
			}
			for s := first; s+int64(spec.Size) <= lastEnd; s += every {
				w := refWindowKey{k, s, s + int64(spec.Size)}
				if _, ok := vals[w]; !ok {
					vals[w] = nil // an empty window
				}
			}
		}
	}
	want := map[refWindowKey]string{}
	for k, v := range vals {
		want[k] = joinInts(v)
	}
	return want
}

// TestAggregationLateEventsMatchEventByEvent checks that the late events
// and the final value of every window do not depend on how the events are
// batched: events are judged against the watermark event by event.
func TestAggregationLateEventsMatchEventByEvent(t *testing.T) {
	for _, spec := range []engine.WindowSpec{
		{Kind: engine.Tumbling, Size: 40},
		{Kind: engine.Sliding, Size: 60, Every: 20},
		{Kind: engine.Session, Gap: 25},
	} {
		t.Run(spec.Kind.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 9))
			in := randomOutOfOrder(r, 1500, []string{"a", "b", "c"}, 300)
			run := func(batched bool) (map[refWindowKey]string, []string) {
				a, err := engine.NewAggregation(engine.AggregationConfig{Name: "agg", Key: keyData(t), Window: spec, Watermark: 100, AllowedLateness: 60, Aggregator: &traceAgg{}})
				if err != nil {
					t.Fatal(err)
				}
				var out, late []engine.Event
				if batched {
					out, late = processInRandomBatches(t, r, a, in)
				} else {
					ctx := context.Background()
					for i := range in {
						out, late, err = a.Process(ctx, in[i:i+1], out, late)
						if err != nil {
							t.Fatal(err)
						}
					}
					if out, err = a.Flush(ctx, out, true); err != nil {
						t.Fatal(err)
					}
				}
				// The view of a consumer that replaces results by later
				// ones: of the same window or, for sessions, of a session
				// that a later one grew out of (they overlap).
				final := map[refWindowKey]string{}
				for _, e := range out {
					k := refWindowKey{e.Metadata["aegis.key"], metaTime(t, e, "aegis.window.start"), metaTime(t, e, "aegis.window.end")}
					if spec.Kind == engine.Session {
						for old := range final {
							if old.key == k.key && old.start < k.end && k.start < old.end {
								delete(final, old)
							}
						}
					}
					final[k], _ = e.Data.AsString()
				}
				return final, lateSummary(late)
			}
			oneByOne, lateOne := run(false)
			batched, lateBatched := run(true)
			if len(lateOne) == 0 {
				t.Fatal("no late events: the scenario does not test much")
			}
			if !slices.Equal(lateOne, lateBatched) {
				t.Errorf("late events differ:\none by one %q\n   batched %q", lateOne, lateBatched)
			}
			if len(oneByOne) != len(batched) {
				t.Errorf("%d windows one by one, %d batched", len(oneByOne), len(batched))
			}
			for k, v := range oneByOne {
				if batched[k] != v {
					t.Errorf("window %v: %q one by one, %q batched", k, v, batched[k])
				}
			}
		})
	}
}

// TestAggregationBoundedState checks that a key that stops having events
// is forgotten after MaxEmptyWindows empty windows, and that sessions and
// windows past their lateness are dropped.
func TestAggregationBoundedState(t *testing.T) {
	for _, spec := range []engine.WindowSpec{
		{Kind: engine.Tumbling, Size: 10},
		{Kind: engine.Sliding, Size: 20, Every: 10},
		{Kind: engine.Session, Gap: 10},
	} {
		t.Run(spec.Kind.String(), func(t *testing.T) {
			a, err := engine.NewAggregation(engine.AggregationConfig{Name: "agg", Key: keyData(t), Window: spec, AllowedLateness: 30, MaxEmptyWindows: 5, Aggregator: &traceAgg{}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// 1000 keys with one event each, then one key going on.
			var in []engine.Event
			for i := range 1000 {
				in = append(in, ev(fmt.Sprintf("k%04d", i), int64(i%7)))
			}
			if _, _, err := a.Process(ctx, in, nil, nil); err != nil {
				t.Fatal(err)
			}
			if s := a.Stats(); s.Groups != 1000 {
				t.Fatalf("stats %+v, want 1000 groups", s)
			}
			for ts := int64(10); ts < 1000; ts += 10 {
				if _, _, err := a.Process(ctx, evs(ev("live", ts)), nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			s := a.Stats()
			if s.Groups != 1 || s.OpenWindows > 10 {
				t.Errorf("stats %+v: want only the live key, with a few windows", s)
			}
		})
	}
}

// ordersMapped runs the orders workload's filter and map
// over n events starting at start.
func ordersMapped(tb testing.TB, n int, start int64) []engine.Event {
	ctx := context.Background()
	filtered, err := orders.Filter.Process(ctx, orders.Events(n, start), nil)
	if err != nil {
		tb.Fatal(err)
	}
	mapped, err := orders.Map.Process(ctx, filtered, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return mapped
}

func ordersAggregation(tb testing.TB, groupBy string) *engine.Aggregation {
	key, err := engine.KeyBy(groupBy)
	if err != nil {
		tb.Fatal(err)
	}
	fns, err := engine.Functions("orders.stats", engine.AggregateFunction{Fn: engine.Sum, Field: "amount_cents"}, engine.AggregateFunction{Fn: engine.Count})
	if err != nil {
		tb.Fatal(err)
	}
	a, err := engine.NewAggregation(engine.AggregationConfig{
		Name:       "orders-by-type",
		Key:        key,
		Window:     engine.WindowSpec{Kind: engine.Tumbling, Size: time.Second},
		Aggregator: fns,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// TestAggregationOrders aggregates the orders workload as the benchmarks
// do (sum of amount_cents and count by type in tumbling windows of one
// second) and checks it against a direct computation.
func TestAggregationOrders(t *testing.T) {
	start := time.Date(2026, 11, 26, 12, 0, 0, 500_000_000, time.UTC).UnixNano() // not on a second
	mapped := ordersMapped(t, 10_000, start)

	type window struct {
		typ   string
		start int64
	}
	type stats struct{ count, sum int64 }
	want := map[window]stats{}
	for _, e := range mapped {
		var d struct {
			Type        string
			AmountCents int64 `json:"amount_cents"`
		}
		if err := e.Data.Decode(&d); err != nil {
			t.Fatal(err)
		}
		w := window{string(e.Type), e.Time - e.Time%int64(time.Second)}
		s := want[w]
		s.count++
		s.sum += d.AmountCents
		want[w] = s
	}

	for _, groupBy := range []string{"type", "data.type"} {
		for _, batch := range []int{1, 7, 100, 1000} {
			t.Run(fmt.Sprintf("%s/batch=%d", groupBy, batch), func(t *testing.T) {
				a := ordersAggregation(t, groupBy)
				ctx := context.Background()
				var out, late []engine.Event
				for i := 0; i < len(mapped); i += batch {
					var err error
					out, late, err = a.Process(ctx, mapped[i:min(i+batch, len(mapped))], out, late)
					if err != nil {
						t.Fatal(err)
					}
				}
				out, err := a.Flush(ctx, out, true)
				if err != nil {
					t.Fatal(err)
				}
				if len(late) != 0 {
					t.Errorf("%d late events", len(late))
				}
				got := map[window]stats{}
				for _, e := range out {
					var d struct {
						Key         string
						WindowStart time.Time `json:"window_start"`
						WindowEnd   time.Time `json:"window_end"`
						Count       int64
						Sum         int64 `json:"sum_amount_cents"`
					}
					if err := e.Data.Decode(&d); err != nil {
						t.Fatal(err)
					}
					if d.WindowEnd.Sub(d.WindowStart) != time.Second || e.Type != "orders.stats" {
						t.Errorf("result %s", e.Data)
					}
					w := window{d.Key, d.WindowStart.UnixNano()}
					if _, dup := got[w]; dup {
						t.Errorf("window %v twice", w)
					}
					got[w] = stats{d.Count, d.Sum}
				}
				if len(got) != len(want) {
					t.Errorf("%d windows, want %d", len(got), len(want))
				}
				for w, s := range want {
					if got[w] != s {
						t.Errorf("window %v: %+v, want %+v", w, got[w], s)
					}
				}
				if s := a.Stats(); s.Events != uint64(len(mapped)) || s.WindowsFired != uint64(len(want)) {
					t.Errorf("stats %+v", s)
				}
			})
		}
	}
}

// BenchmarkAggregation measures the orders workload's aggregate step (sum
// of amount_cents and count by type, tumbling windows of one second) over
// already mapped events, in batches of 1000; events/s is reported.
func BenchmarkAggregation(b *testing.B) {
	const batch = 1000
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano()
	pool := ordersMapped(b, 100_000, start)
	pool = pool[:len(pool)/batch*batch]
	span := pool[len(pool)-1].Time - pool[0].Time + int64(time.Millisecond)
	for _, groupBy := range []string{"type", "data.type"} {
		b.Run("group_by="+groupBy, func(b *testing.B) {
			evs := slices.Clone(pool)
			a := ordersAggregation(b, groupBy)
			ctx := context.Background()
			var out []engine.Event
			i, batches := 0, 0
			for b.Loop() {
				if i == len(evs) {
					// Go on in event time with the same events.
					for j := range evs {
						evs[j].Time += span
					}
					i = 0
				}
				var err error
				out, _, err = a.Process(ctx, evs[i:i+batch], out[:0], nil)
				if err != nil {
					b.Fatal(err)
				}
				i += batch
				batches++
			}
			b.ReportMetric(float64(batches*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func ExampleAggregation() {
	key, _ := engine.KeyBy("type")
	fns, _ := engine.Functions("orders.stats",
		engine.AggregateFunction{Fn: engine.Count},
		engine.AggregateFunction{Fn: engine.Sum, Field: "amount_cents"})
	a, err := engine.NewAggregation(engine.AggregationConfig{
		Name:       "orders-by-type",
		Key:        key,
		Window:     engine.WindowSpec{Kind: engine.Tumbling, Size: time.Second},
		Aggregator: fns,
	})
	if err != nil {
		panic(err)
	}
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano()
	order := func(typ string, ms int64, cents string) engine.Event {
		return engine.Event{Type: engine.EventType(typ), Time: t0 + ms*1e6, Data: engine.MustJSONData(`{"amount_cents":` + cents + `}`)}
	}
	in := []engine.Event{
		order("order.paid", 100, "7919"),
		order("order.created", 300, "31676"),
		order("order.paid", 700, "100"),
		order("order.paid", 1200, "5"), // closes the first second
	}
	ctx := context.Background()
	out, _, _ := a.Process(ctx, in, nil, nil)
	out, _ = a.Flush(ctx, out, true) // the end of the stream
	for _, e := range out {
		fmt.Println(e.Metadata["aegis.window.firing"], e.Data)
	}
	// Output:
	// on-time {"key":"order.created","window_start":"2026-11-26T12:00:00Z","window_end":"2026-11-26T12:00:01Z","count":1,"sum_amount_cents":31676}
	// on-time {"key":"order.paid","window_start":"2026-11-26T12:00:00Z","window_end":"2026-11-26T12:00:01Z","count":2,"sum_amount_cents":8019}
	// on-time {"key":"order.created","window_start":"2026-11-26T12:00:01Z","window_end":"2026-11-26T12:00:02Z","count":0,"sum_amount_cents":0}
	// on-time {"key":"order.paid","window_start":"2026-11-26T12:00:01Z","window_end":"2026-11-26T12:00:02Z","count":1,"sum_amount_cents":5}
}
