package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

func TestAggregateFnNames(t *testing.T) {
	tests := []struct {
		name string
		fn   engine.AggregateFn
	}{
		{name: "count", fn: engine.Count},
		{name: "sum", fn: engine.Sum},
		{name: "avg", fn: engine.Avg},
		{name: "min", fn: engine.Min},
		{name: "max", fn: engine.Max},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.fn.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			got, err := engine.ParseAggregateFn(tt.name)
			if err != nil || got != tt.fn {
				t.Errorf("ParseAggregateFn(%q) = %v, %v", tt.name, got, err)
			}
		})
	}
	if _, err := engine.ParseAggregateFn("median"); err == nil {
		t.Error("ParseAggregateFn(median) succeeded")
	}
}

func TestFunctionsConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		emitType string
		fns      []engine.AggregateFunction
		wantErr  string
	}{
		{name: "no functions", emitType: "stats", wantErr: "no functions"},
		{name: "bad emit type", emitType: "has space", fns: []engine.AggregateFunction{{Fn: engine.Count}}, wantErr: "emit type"},
		{name: "empty emit type", emitType: "", fns: []engine.AggregateFunction{{Fn: engine.Count}}, wantErr: "emit type"},
		{name: "count with a field", emitType: "stats", fns: []engine.AggregateFunction{{Fn: engine.Count, Field: "v"}}, wantErr: "count takes no field"},
		{name: "sum without a field", emitType: "stats", fns: []engine.AggregateFunction{{Fn: engine.Sum}}, wantErr: "sum field: the member path is empty"},
		{name: "bad field path", emitType: "stats", fns: []engine.AggregateFunction{{Fn: engine.Max, Field: "a..b"}}, wantErr: "empty member name"},
		{name: "unknown function", emitType: "stats", fns: []engine.AggregateFunction{{Fn: 42, Field: "v"}}, wantErr: "unknown aggregate function(42)"},
		{name: "duplicate names", emitType: "stats", fns: []engine.AggregateFunction{{Fn: engine.Sum, Field: "v"}, {Fn: engine.Sum, Field: "v"}}, wantErr: `name "sum_v" is already used`},
		{name: "dotted default collides", emitType: "stats", fns: []engine.AggregateFunction{{Fn: engine.Sum, Field: "a.b"}, {Fn: engine.Sum, Field: "a_b"}}, wantErr: `name "sum_a_b" is already used`},
		{name: "reserved name", emitType: "stats", fns: []engine.AggregateFunction{{Fn: engine.Count, As: "key"}}, wantErr: `name "key" is already used`},
		{name: "reserved window name", emitType: "stats", fns: []engine.AggregateFunction{{Fn: engine.Count, As: "window_end"}}, wantErr: `name "window_end" is already used`},
		{name: "invalid UTF-8 name", emitType: "stats", fns: []engine.AggregateFunction{{Fn: engine.Count, As: "\xff"}}, wantErr: "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agg, err := engine.Functions(tt.emitType, tt.fns...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Functions() = %v, %v; want an error containing %q", agg, err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "functions") {
				t.Errorf("error %q does not name what failed", err)
			}
		})
	}
}

// dataEvents makes events whose data are the given JSON documents.
func dataEvents(docs ...string) []engine.Event {
	evs := make([]engine.Event, len(docs))
	for i, d := range docs {
		evs[i] = engine.Event{Type: "in", Data: engine.MustJSONData(d)}
	}
	return evs
}

// vDocs makes documents {"v":<n>} for the given JSON numbers.
func vDocs(nums ...string) []string {
	docs := make([]string, len(nums))
	for i, n := range nums {
		docs[i] = `{"v":` + n + `}`
	}
	return docs
}

var testWindow = engine.Window{Start: 0, End: int64(time.Second)}

const testResultPrefix = `{"key":"k","window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:00:01Z",`

// finishData runs Finish and returns the result's data.
func finishData(t *testing.T, agg engine.Aggregator, key string, acc []byte) string {
	t.Helper()
	out, err := agg.Finish(context.Background(), key, acc, testWindow, nil)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if len(out) != 1 {
		t.Fatalf("Finish appended %d events, want 1", len(out))
	}
	raw, ok := out[0].Data.AsJSON()
	if !ok || !json.Valid(raw) {
		t.Fatalf("Finish data %v is not a JSON document", out[0].Data)
	}
	return string(raw)
}

func accumulate(t *testing.T, agg engine.Aggregator, acc []byte, evs []engine.Event) []byte {
	t.Helper()
	acc, err := agg.Accumulate(context.Background(), "k", acc, evs)
	if err != nil {
		t.Fatalf("Accumulate: %v", err)
	}
	return acc
}

var allFunctionsOfV = []engine.AggregateFunction{
	{Fn: engine.Count}, {Fn: engine.Sum, Field: "v"}, {Fn: engine.Avg, Field: "v"}, {Fn: engine.Min, Field: "v"}, {Fn: engine.Max, Field: "v"},
}

func TestFunctions(t *testing.T) {
	tests := []struct {
		name string
		fns  []engine.AggregateFunction
		docs []string
		want string // the members after window_end
	}{
		{name: "integers", fns: allFunctionsOfV, docs: vDocs("1", "2", "3"),
			want: `"count":3,"sum_v":6,"avg_v":2,"min_v":1,"max_v":3`},
		{name: "floats", fns: allFunctionsOfV, docs: vDocs("1.5", "2.25"),
			want: `"count":2,"sum_v":3.75,"avg_v":1.875,"min_v":1.5,"max_v":2.25`},
		{name: "mixed ints and floats", fns: allFunctionsOfV, docs: vDocs("1", "2.5", "-3"),
			want: `"count":3,"sum_v":0.5,"avg_v":0.16666666666666666,"min_v":-3,"max_v":2.5`},
		{name: "integers stay exact beyond 2^53", fns: allFunctionsOfV, docs: vDocs("9007199254740993", "2"),
			want: `"count":2,"sum_v":9007199254740995,"avg_v":4503599627370497,"min_v":2,"max_v":9007199254740993`},
		{name: "integer overflow becomes float", fns: allFunctionsOfV, docs: vDocs("9223372036854775807", "1"),
			want: `"count":2,"sum_v":9223372036854776000,"avg_v":4611686018427388000,"min_v":1,"max_v":9223372036854775807`},
		{name: "exponent is a float", fns: allFunctionsOfV, docs: vDocs("1e2", "1"),
			want: `"count":2,"sum_v":101,"avg_v":50.5,"min_v":1,"max_v":100`},
		{name: "integer beyond int64 is a float", fns: allFunctionsOfV, docs: vDocs("100000000000000000000"),
			want: `"count":1,"sum_v":100000000000000000000,"avg_v":100000000000000000000,"min_v":100000000000000000000,"max_v":100000000000000000000`},
		{name: "large floats use exponents", fns: allFunctionsOfV, docs: vDocs("1e21", "1e-7"),
			want: `"count":2,"sum_v":1e+21,"avg_v":500000000000000000000,"min_v":1e-7,"max_v":1e+21`},
		{name: "float overflow is null", fns: allFunctionsOfV, docs: vDocs("1e308", "1e308"),
			want: `"count":2,"sum_v":null,"avg_v":null,"min_v":1e+308,"max_v":1e+308`},
		{name: "negative zero is an integer", fns: allFunctionsOfV, docs: vDocs("-0"),
			want: `"count":1,"sum_v":0,"avg_v":0,"min_v":0,"max_v":0`},
		{name: "empty window", fns: allFunctionsOfV, docs: nil,
			want: `"count":0,"sum_v":0,"avg_v":null,"min_v":null,"max_v":null`},
		{name: "count only reads nothing", fns: []engine.AggregateFunction{{Fn: engine.Count}}, docs: []string{`"not an object"`, `[1]`},
			want: `"count":2`},
		{name: "nested field and default names", fns: []engine.AggregateFunction{{Fn: engine.Sum, Field: "order.total"}, {Fn: engine.Max, Field: "order.total"}},
			docs: []string{`{"order":{"total":5}}`, `{"order":{"total":7},"x":1}`},
			want: `"sum_order_total":12,"max_order_total":7`},
		{name: "custom names in order", fns: []engine.AggregateFunction{{Fn: engine.Max, Field: "v", As: "top"}, {Fn: engine.Count, As: "n"}, {Fn: engine.Sum, Field: "w", As: "total \"w\""}},
			docs: []string{`{"v":1,"w":10}`, `{"v":4,"w":20}`},
			want: `"top":4,"n":2,"total \"w\"":30`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agg, err := engine.Functions("stats", tt.fns...)
			if err != nil {
				t.Fatal(err)
			}
			acc := accumulate(t, agg, nil, dataEvents(tt.docs...))
			if got, want := finishData(t, agg, "k", acc), testResultPrefix+tt.want+"}"; got != want {
				t.Errorf("result\n got %s\nwant %s", got, want)
			}
			// One event at a time gives the same.
			acc = nil
			for _, e := range dataEvents(tt.docs...) {
				acc = accumulate(t, agg, acc, []engine.Event{e})
			}
			if got, want := finishData(t, agg, "k", acc), testResultPrefix+tt.want+"}"; got != want {
				t.Errorf("result event by event\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestFunctionsResultEvent(t *testing.T) {
	agg, err := engine.Functions("orders.stats", engine.AggregateFunction{Fn: engine.Count})
	if err != nil {
		t.Fatal(err)
	}
	out := []engine.Event{{Type: "before"}}
	w := engine.Window{Start: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano(), End: time.Date(2026, 11, 26, 12, 0, 1, 500, time.UTC).UnixNano()}
	out, err = agg.Finish(context.Background(), "a\"b\n\x01\xff\u2028", nil, w, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Type != "before" {
		t.Fatalf("Finish did not append to out: %v", out)
	}
	e := out[1]
	if e.Type != "orders.stats" || e.Source != "" || e.Time != 0 || !e.ID.IsZero() || e.Metadata != nil {
		t.Errorf("result event %+v: want only the type and data set", e)
	}
	want := `{"key":"a\"b\n\u0001\ufffd\u2028","window_start":"2026-11-26T12:00:00Z","window_end":"2026-11-26T12:00:01.0000005Z","count":0}`
	if raw, _ := e.Data.AsJSON(); string(raw) != want {
		t.Errorf("data\n got %s\nwant %s", raw, want)
	}
	if err := e.Validate(); err != nil {
		t.Errorf("result event is not valid: %v", err)
	}
}

func TestFunctionsEventErrors(t *testing.T) {
	agg, err := engine.Functions("stats", engine.AggregateFunction{Fn: engine.Count}, engine.AggregateFunction{Fn: engine.Sum, Field: "v"}, engine.AggregateFunction{Fn: engine.Min, Field: "w"})
	if err != nil {
		t.Fatal(err)
	}
	evs := dataEvents(
		`{"v":1,"w":1}`,       // 0 ok
		`{"w":1}`,             // 1 v missing
		`{"v":"2","w":1}`,     // 2 v is a string
		`{"v":2,"w":null}`,    // 3 w is null
		`{"v":{"x":1},"w":1}`, // 4 v is an object
		`[1,2]`,               // 5 not an object
		`{"v":3,"w":-1}`,      // 6 ok
	)
	evs = append(evs, engine.Event{Type: "in", Data: engine.IntData(5)}) // 7 not JSON
	acc, err := agg.Accumulate(context.Background(), "k", nil, evs)
	var ee *engine.EventErrors
	if !errors.As(err, &ee) {
		t.Fatalf("Accumulate error = %v, want *EventErrors", err)
	}
	want := []struct {
		index int
		msg   string
	}{
		{1, "data.v is missing"},
		{2, "data.v is a string, not a number"},
		{3, "data.w is null, not a number"},
		{4, "data.v is an object, not a number"},
		{5, "data is an array, not a JSON object"},
		{7, "data is int data, not a JSON object"},
	}
	if len(ee.Errors) != len(want) {
		t.Fatalf("errors = %+v, want %d", ee.Errors, len(want))
	}
	for i, w := range want {
		if got := ee.Errors[i]; got.Index != w.index || got.Message != w.msg {
			t.Errorf("error %d = %+v, want index %d message %q", i, got, w.index, w.msg)
		}
	}
	// The others were folded in: count 2, sum 4, min -1.
	if got, want := finishData(t, agg, "k", acc), testResultPrefix+`"count":2,"sum_v":4,"min_w":-1}`; got != want {
		t.Errorf("result\n got %s\nwant %s", got, want)
	}
}

func TestFunctionsMerge(t *testing.T) {
	tests := []struct {
		name string
		nums []string
	}{
		{name: "integers", nums: []string{"5", "-2", "9", "0", "3"}},
		{name: "floats", nums: []string{"0.5", "1.25", "-4.75", "8"}},
		{name: "int then float", nums: []string{"1", "2", "0.5"}},
		{name: "float then int", nums: []string{"0.25", "7", "-7"}},
		{name: "overflow across halves", nums: []string{"9223372036854775807", "9223372036854775807"}},
		{name: "one value", nums: []string{"42"}},
		{name: "none", nums: nil},
	}
	agg, err := engine.Functions("stats", allFunctionsOfV...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := dataEvents(vDocs(tt.nums...)...)
			want := finishData(t, agg, "k", accumulate(t, agg, nil, evs))
			for split := 0; split <= len(evs); split++ {
				a := accumulate(t, agg, nil, evs[:split])
				b := accumulate(t, agg, nil, evs[split:])
				for _, order := range [][2][]byte{{a, b}, {b, a}} {
					m, err := agg.Merge(ctx, "k", order[0], order[1])
					if err != nil {
						t.Fatalf("Merge: %v", err)
					}
					if got := finishData(t, agg, "k", m); got != want {
						t.Errorf("split %d: merged\n got %s\nwant %s", split, got, want)
					}
				}
			}
			// An empty accumulator is the identity.
			whole := accumulate(t, agg, nil, evs)
			for _, pair := range [][2][]byte{{nil, whole}, {whole, nil}, {whole, []byte{}}} {
				m, err := agg.Merge(ctx, "k", pair[0], pair[1])
				if err != nil {
					t.Fatalf("Merge: %v", err)
				}
				if got := finishData(t, agg, "k", m); got != want {
					t.Errorf("merged with empty\n got %s\nwant %s", got, want)
				}
			}
		})
	}
}

// TestFunctionsAccumulatorLayout pins the documented encoding.
func TestFunctionsAccumulatorLayout(t *testing.T) {
	agg, err := engine.Functions("stats", engine.AggregateFunction{Fn: engine.Count}, engine.AggregateFunction{Fn: engine.Sum, Field: "v"},
		engine.AggregateFunction{Fn: engine.Avg, Field: "v"}, engine.AggregateFunction{Fn: engine.Max, Field: "v"})
	if err != nil {
		t.Fatal(err)
	}
	acc := accumulate(t, agg, nil, dataEvents(vDocs("5", "7.5")...))
	var want []byte
	want = append(want, 1, 4)                                             // version, functions
	want = append(want, byte(engine.Count))                               // count
	want = binary.LittleEndian.AppendUint64(want, 2)                      //   2 events
	want = append(want, byte(engine.Sum), 2)                              // sum, a float
	want = binary.LittleEndian.AppendUint64(want, math.Float64bits(12.5)) //   12.5
	want = append(want, byte(engine.Avg))                                 // avg
	want = binary.LittleEndian.AppendUint64(want, 2)                      //   2 values
	want = binary.LittleEndian.AppendUint64(want, math.Float64bits(12.5)) //   summing to 12.5
	want = append(want, byte(engine.Max), 2)                              // max, a float
	want = binary.LittleEndian.AppendUint64(want, math.Float64bits(7.5))  //   7.5
	if !bytes.Equal(acc, want) {
		t.Errorf("accumulator\n got % x\nwant % x", acc, want)
	}
	intAcc := accumulate(t, agg, nil, dataEvents(vDocs("-3")...))
	if intAcc[11] != byte(engine.Sum) || intAcc[12] != 1 || int64(binary.LittleEndian.Uint64(intAcc[13:])) != -3 {
		t.Errorf("integer sum encoded as % x", intAcc[11:21])
	}
}

func TestFunctionsAccumulatorErrors(t *testing.T) {
	agg, err := engine.Functions("stats", engine.AggregateFunction{Fn: engine.Count}, engine.AggregateFunction{Fn: engine.Min, Field: "v"})
	if err != nil {
		t.Fatal(err)
	}
	good := accumulate(t, agg, nil, dataEvents(vDocs("1")...))
	corrupt := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name    string
		acc     []byte
		wantErr string
	}{
		{name: "too short", acc: good[:5], wantErr: "not one of this configuration"},
		{name: "too long", acc: append(bytes.Clone(good), 0), wantErr: "not one of this configuration"},
		{name: "version", acc: corrupt(func(b []byte) []byte { b[0] = 2; return b }), wantErr: "not one of this configuration"},
		{name: "function count", acc: corrupt(func(b []byte) []byte { b[1] = 3; return b }), wantErr: "not one of this configuration"},
		{name: "function code", acc: corrupt(func(b []byte) []byte { b[2] = byte(engine.Sum); return b }), wantErr: "holds sum where this configuration has count"},
		{name: "number kind", acc: corrupt(func(b []byte) []byte { b[12] = 9; return b }), wantErr: "unknown number kind 9"},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := agg.Accumulate(ctx, "k", tt.acc, nil); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Accumulate: %v, want an error containing %q", err, tt.wantErr)
			}
			if _, err := agg.Merge(ctx, "k", good, tt.acc); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Merge: %v, want an error containing %q", err, tt.wantErr)
			}
			if _, err := agg.Finish(ctx, "k", tt.acc, testWindow, nil); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Finish: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := agg.Accumulate(cancelled, "k", nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Accumulate with a cancelled context: %v", err)
	}
}

// FuzzFunctionsAccumulator feeds arbitrary accumulators to Merge and Finish:
// they must fail cleanly or give a valid result.
func FuzzFunctionsAccumulator(f *testing.F) {
	agg, err := engine.Functions("stats", allFunctionsOfV...)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	for _, nums := range [][]string{nil, {"1"}, {"1.5", "-2"}, {"9223372036854775807", "1"}} {
		acc, err := agg.Accumulate(ctx, "k", nil, dataEvents(vDocs(nums...)...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(acc)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, acc []byte) {
		if m, err := agg.Merge(ctx, "k", acc, acc); err == nil {
			acc = m
		}
		out, err := agg.Finish(ctx, "k", acc, testWindow, nil)
		if err != nil {
			return
		}
		raw, _ := out[0].Data.AsJSON()
		if !json.Valid(raw) {
			t.Fatalf("Finish gave invalid JSON %s", raw)
		}
	})
}

// refNumber reads the number at member "a" as the built-ins must: an int64
// when the JSON text has no fraction or exponent and fits, else a float64.
func refNumber(doc []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return "", false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	n, ok := m["a"].(json.Number)
	if !ok {
		return "", false
	}
	if !strings.ContainsAny(string(n), ".eE") {
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return strconv.FormatInt(i, 10), true
		}
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return "", false
	}
	b, _ := json.Marshal(f)
	return string(b), true
}

// FuzzFunctionsField reads a numeric field out of arbitrary JSON and checks
// it against encoding/json.
func FuzzFunctionsField(f *testing.F) {
	agg, err := engine.Functions("stats", engine.AggregateFunction{Fn: engine.Max, Field: "a"})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{`{"a":1}`, `{"a":-1.5e3}`, `{"a":"1"}`, `{"a":1e400}`, `{"b":1}`, `{"a":99999999999999999999}`, `{"a":1,"a":2.5}`, `[1]`, `{"\u0061":0.1}`} {
		f.Add(s)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, doc string) {
		data, err := engine.JSONData([]byte(doc))
		if err != nil {
			return
		}
		acc, err := agg.Accumulate(ctx, "k", nil, []engine.Event{{Data: data}})
		want, ok := refNumber([]byte(doc))
		if !ok {
			var ee *engine.EventErrors
			if !errors.As(err, &ee) || len(ee.Errors) != 1 {
				t.Fatalf("doc %s: Accumulate error %v, want one event error", doc, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("doc %s: %v", doc, err)
		}
		got := finishData(t, agg, "k", acc)
		if !strings.HasSuffix(got, `"max_a":`+want+`}`) {
			t.Fatalf("doc %s: result %s, want max_a %s", doc, got, want)
		}
	})
}
