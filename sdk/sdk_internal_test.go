package sdk

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/aegis-streaming/aegis/abi"
)

// isolate clears the registered steps for the duration of a test and
// restores them after it, since registration sets package globals.
func isolate(t testing.TB) {
	t.Helper()
	f, m, a, c := filterFn, mapFn, aggImpl, configFn
	filterFn, mapFn, aggImpl, configFn = nil, nil, nil, nil
	t.Cleanup(func() { filterFn, mapFn, aggImpl, configFn = f, m, a, c })
}

type kv struct{ k, v string }

func meta(entries ...kv) (b []byte, n uint16) {
	for _, e := range entries {
		b = abi.AppendMeta(b, e.k, e.v)
	}
	return b, uint16(len(entries))
}

// rec is an input record at position i.
func rec(i int, typ string, kind abi.DataKind, data []byte, entries ...kv) abi.Record {
	m, n := meta(entries...)
	return abi.Record{
		Index: uint32(i), ID: [16]byte{byte(i + 1), 0xaa}, Time: 1_700_000_000_000_000_000 + int64(i),
		Kind: kind, Type: []byte(typ), Source: []byte("src-" + typ), Data: data, Meta: m, MetaCount: n,
	}
}

func intData(v int64) []byte     { d := abi.IntData(v); return d[:] }
func floatData(v float64) []byte { d := abi.FloatData(v); return d[:] }

func batch(recs ...abi.Record) []byte { return abi.AppendBatch(nil, recs...) }

// call runs a handler on in and decodes its result as the host does.
func call(t testing.TB, h func([]byte) []byte, in []byte, body abi.Body, inputLen int) abi.Result {
	t.Helper()
	out := bytes.Clone(h(in))
	r, err := abi.ParseResult(out, body, inputLen)
	if err != nil {
		t.Fatalf("result %x: %v", out, err)
	}
	if r.Status == abi.StatusOK && body == abi.BodyRecords {
		if err := r.Records().Validate(); err != nil {
			t.Fatalf("output records: %v", err)
		}
	}
	return r
}

func wantStatus(t testing.TB, r abi.Result, status abi.Status, msg string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %v (%q), want %v", r.Status, r.Message(), status)
	}
	if status != abi.StatusOK && !strings.Contains(r.Message(), msg) {
		t.Errorf("message %q, want it to contain %q", r.Message(), msg)
	}
}

type evErr struct {
	index, code uint32
	msg         string
}

func eventErrors(r abi.Result) []evErr {
	var out []evErr
	for e, rest, ok := abi.NextError(r.Errors); ok; e, rest, ok = abi.NextError(rest) {
		out = append(out, evErr{e.Index, e.Code, string(e.Message)})
	}
	return out
}

func indices(r abi.Result) []uint32 {
	var out []uint32
	for i := range int(r.Count) {
		out = append(out, r.Index(i))
	}
	return out
}

func outputs(t testing.TB, r abi.Result) []abi.View {
	t.Helper()
	var out []abi.View
	b := r.Records()
	for {
		v, ok, err := b.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, v)
	}
}

func metaMap(m []byte) map[string]string {
	out := map[string]string{}
	for k, v, rest, ok := abi.NextMeta(m); ok; k, v, rest, ok = abi.NextMeta(rest) {
		out[string(k)] = string(v)
	}
	return out
}

func TestHandleFilter(t *testing.T) {
	isolate(t)
	Filter(func(e Event) bool {
		if v, ok := e.Int(); ok {
			return v > 0
		}
		return e.Type() == "keep"
	})
	pos, neg := intData(5), intData(-1)
	tests := []struct {
		name string
		recs []abi.Record
		want []uint32
	}{
		{name: "empty batch"},
		{name: "keep some", want: []uint32{0, 2, 4}, recs: []abi.Record{
			rec(0, "n", abi.DataInt, pos), rec(1, "n", abi.DataInt, neg), rec(2, "keep", abi.DataString, []byte("x")),
			rec(3, "drop", abi.DataNull, nil), rec(4, "n", abi.DataInt, pos)}},
		{name: "keep all", want: []uint32{0, 1, 2}, recs: []abi.Record{
			rec(0, "keep", abi.DataNull, nil), rec(1, "n", abi.DataInt, pos), rec(2, "keep", abi.DataNull, nil)}},
		{name: "keep none", recs: []abi.Record{rec(0, "n", abi.DataInt, neg), rec(1, "drop", abi.DataNull, nil)}},
		{name: "keep the last", want: []uint32{2}, recs: []abi.Record{
			rec(0, "drop", abi.DataNull, nil), rec(1, "drop", abi.DataNull, nil), rec(2, "keep", abi.DataNull, nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, handleFilter, batch(tt.recs...), abi.BodyIndices, len(tt.recs))
			wantStatus(t, r, abi.StatusOK, "")
			if got := indices(r); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("kept %v, want %v", got, tt.want)
			}
			if r.ErrorCount != 0 {
				t.Errorf("%d event errors", r.ErrorCount)
			}
		})
	}
}

// TestEvent checks the accessors of the events a step receives.
func TestEvent(t *testing.T) {
	isolate(t)
	recs := []abi.Record{
		rec(0, "order.created", abi.DataJSON, []byte(` {"amount": 12.5, "id":"o-1"} `), kv{"traceparent", "00-ab"}, kv{"k", "v"}),
		rec(1, "n.int", abi.DataInt, intData(-42)),
		rec(2, "n.float", abi.DataFloat, floatData(2.5)),
		rec(3, "b.true", abi.DataBool, []byte{1}),
		rec(4, "b.false", abi.DataBool, []byte{0}),
		rec(5, "s", abi.DataString, []byte("héllo")),
		rec(6, "nil", abi.DataNull, nil),
		rec(7, "raw", abi.DataBytes, []byte{0, 1, 2}),
	}
	checks := map[int]func(t *testing.T, e Event){
		0: func(t *testing.T, e Event) {
			if e.Index() != 0 || e.ID() != recs[0].ID || e.Time() != recs[0].Time {
				t.Errorf("header: index %d id %x time %d", e.Index(), e.ID(), e.Time())
			}
			if e.Type() != "order.created" || e.Source() != "src-order.created" || e.Kind() != DataJSON {
				t.Errorf("type %q source %q kind %d", e.Type(), e.Source(), e.Kind())
			}
			if f, ok := e.Field("amount").Float(); !ok || f != 12.5 {
				t.Errorf("Field(amount) = %v, %t", f, ok)
			}
			if s, ok := e.JSON().Get("id").String(); !ok || s != "o-1" {
				t.Errorf("JSON().Get(id) = %q, %t", s, ok)
			}
			if e.Field("nope").Exists() {
				t.Error("Field(nope) exists")
			}
			if v, ok := e.Meta("k"); !ok || v != "v" {
				t.Errorf("Meta(k) = %q, %t", v, ok)
			}
			if _, ok := e.Meta("nope"); ok {
				t.Error("Meta(nope) found")
			}
			var keys []string
			e.EachMeta(func(k, v string) bool { keys = append(keys, k+"="+v); return true })
			if want := []string{"traceparent=00-ab", "k=v"}; !reflect.DeepEqual(keys, want) {
				t.Errorf("EachMeta = %v, want %v", keys, want)
			}
			keys = nil
			e.EachMeta(func(k, v string) bool { keys = append(keys, k); return false })
			if len(keys) != 1 {
				t.Errorf("EachMeta did not stop: %v", keys)
			}
			if _, ok := e.Int(); ok {
				t.Error("Int() of JSON data")
			}
			if _, ok := e.Text(); ok {
				t.Error("Text() of JSON data")
			}
		},
		1: func(t *testing.T, e Event) {
			if v, ok := e.Int(); !ok || v != -42 {
				t.Errorf("Int() = %d, %t", v, ok)
			}
			if _, ok := e.Float(); ok {
				t.Error("Float() of an int")
			}
			if e.Field("a").Exists() || e.JSON().Exists() {
				t.Error("JSON of an int")
			}
			e.EachMeta(func(k, v string) bool { t.Errorf("metadata %s=%s", k, v); return true })
		},
		2: func(t *testing.T, e Event) {
			if v, ok := e.Float(); !ok || v != 2.5 {
				t.Errorf("Float() = %v, %t", v, ok)
			}
			if _, ok := e.Int(); ok {
				t.Error("Int() of a float")
			}
		},
		3: func(t *testing.T, e Event) {
			if v, ok := e.Bool(); !ok || !v {
				t.Errorf("Bool() = %t, %t", v, ok)
			}
		},
		4: func(t *testing.T, e Event) {
			if v, ok := e.Bool(); !ok || v {
				t.Errorf("Bool() = %t, %t", v, ok)
			}
		},
		5: func(t *testing.T, e Event) {
			if v, ok := e.Text(); !ok || v != "héllo" {
				t.Errorf("Text() = %q, %t", v, ok)
			}
			if _, ok := e.Bool(); ok {
				t.Error("Bool() of a string")
			}
		},
		6: func(t *testing.T, e Event) {
			if e.Kind() != DataNull || len(e.Data()) != 0 {
				t.Errorf("kind %d data %x", e.Kind(), e.Data())
			}
			if _, ok := e.Text(); ok {
				t.Error("Text() of null")
			}
		},
		7: func(t *testing.T, e Event) {
			if e.Kind() != DataBytes || !bytes.Equal(e.Data(), []byte{0, 1, 2}) {
				t.Errorf("kind %d data %x", e.Kind(), e.Data())
			}
		},
	}
	seen := 0
	Filter(func(e Event) bool {
		seen++
		checks[e.Index()](t, e)
		return true
	})
	call(t, handleFilter, batch(recs...), abi.BodyIndices, len(recs))
	if seen != len(recs) {
		t.Errorf("filter saw %d events, want %d", seen, len(recs))
	}
}

func TestHandleMap(t *testing.T) {
	isolate(t)
	scratch := []byte(`{"n":1}`)
	Map(func(e Event, out *Output) error {
		switch e.Type() {
		case "copy":
			o := e.Out()
			out.Emit(&o)
		case "two":
			o := e.Out()
			o.Type = "two.a"
			o.SetMeta("k", "new")
			o.SetMeta("added", "1")
			o.DeleteMeta("gone")
			o.DeleteMeta("never there")
			out.Emit(&o)
			o2 := e.Out()
			o2.Type, o2.Source, o2.ID, o2.Time = "two.b", "", [16]byte{}, 0
			o2.SetJSON(scratch)
			out.Emit(&o2)
			scratch[5] = '2' // Emit copied the data
		case "coded":
			o := e.Out()
			out.Emit(&o)
			return EventError(7, "bad amount")
		case "plain":
			return errors.New("boom")
		case "wrapped":
			return fmt.Errorf("wrapped: %w", EventError(9, "inner"))
		case "bad-utf8":
			return errors.New("bad \xff byte")
		}
		return nil
	})
	m := []kv{{"k", "v"}, {"gone", "x"}, {"keep", "y"}}
	recs := []abi.Record{
		rec(0, "copy", abi.DataJSON, []byte(`{"a":1}`), m...),
		rec(1, "skip", abi.DataNull, nil),
		rec(2, "two", abi.DataString, []byte("text"), m...),
		rec(3, "coded", abi.DataInt, intData(3)),
		rec(4, "plain", abi.DataNull, nil),
		rec(5, "wrapped", abi.DataNull, nil),
		rec(6, "copy", abi.DataBool, []byte{1}),
		rec(7, "bad-utf8", abi.DataNull, nil),
	}
	r := call(t, handleMap, batch(recs...), abi.BodyRecords, len(recs))
	wantStatus(t, r, abi.StatusOK, "")
	type out struct {
		index  uint32
		id     [16]byte
		time   int64
		typ    string
		source string
		kind   abi.DataKind
		data   string
		meta   map[string]string
	}
	inMeta := map[string]string{"k": "v", "gone": "x", "keep": "y"}
	want := []out{
		{0, recs[0].ID, recs[0].Time, "copy", "src-copy", abi.DataJSON, `{"a":1}`, inMeta},
		{2, recs[2].ID, recs[2].Time, "two.a", "src-two", abi.DataString, "text", map[string]string{"k": "new", "keep": "y", "added": "1"}},
		{2, [16]byte{}, 0, "two.b", "", abi.DataJSON, `{"n":1}`, inMeta},
		// The records of a failed event are there; the host discards them.
		{3, recs[3].ID, recs[3].Time, "coded", "src-coded", abi.DataInt, string(intData(3)), map[string]string{}},
		{6, recs[6].ID, recs[6].Time, "copy", "src-copy", abi.DataBool, "\x01", map[string]string{}},
	}
	views := outputs(t, r)
	if len(views) != len(want) {
		t.Fatalf("%d output records, want %d", len(views), len(want))
	}
	for i, v := range views {
		got := out{v.Index, v.ID, v.Time, string(v.Type), string(v.Source), v.Kind, string(v.Data), metaMap(v.Meta)}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("output %d = %+v\nwant %+v", i, got, want[i])
		}
		if int(v.MetaCount) != len(want[i].meta) {
			t.Errorf("output %d: MetaCount %d, want %d", i, v.MetaCount, len(want[i].meta))
		}
	}
	wantErrs := []evErr{{3, 7, "bad amount"}, {4, 1, "boom"}, {5, 9, "wrapped: inner"}, {7, 1, "bad \ufffd byte"}}
	if got := eventErrors(r); !reflect.DeepEqual(got, wantErrs) {
		t.Errorf("event errors %v, want %v", got, wantErrs)
	}

	// The next call starts afresh.
	r = call(t, handleMap, batch(rec(0, "skip", abi.DataNull, nil)), abi.BodyRecords, 1)
	if r.Count != 0 || r.ErrorCount != 0 {
		t.Errorf("second call: %d records, %d errors", r.Count, r.ErrorCount)
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want uint32
	}{
		{name: "plain", err: errors.New("x"), want: 1},
		{name: "coded", err: EventError(42, "x"), want: 42},
		{name: "code 0", err: EventError(0, "x"), want: 0},
		{name: "wrapped", err: fmt.Errorf("a: %w", EventError(5, "x")), want: 5},
		{name: "joined", err: errors.Join(errors.New("a"), EventError(6, "b")), want: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorCode(tt.err); got != tt.want {
				t.Errorf("ErrorCode = %d, want %d", got, tt.want)
			}
		})
	}
	if EventError(3, "msg").Error() != "msg" {
		t.Error("EventError message")
	}
}

func TestHandleInitWithoutOnConfig(t *testing.T) {
	isolate(t)
	tests := []struct {
		config string
		ok     bool
	}{
		{`{}`, true},
		{` { } `, true},
		{"\t{\r\n}\n", true},
		{`{"a":1}`, false},
		{`{"":null}`, false},
		{`[]`, false},
		{`null`, false},
		{``, false},
		{`{`, false},
		{`"{}"`, false},
	}
	for _, tt := range tests {
		r := call(t, handleInit, []byte(tt.config), abi.BodyEmpty, 0)
		if tt.ok {
			wantStatus(t, r, abi.StatusOK, "")
		} else {
			wantStatus(t, r, abi.StatusBadConfig, "no configuration")
		}
	}
}

func TestHandleInitWithOnConfig(t *testing.T) {
	isolate(t)
	type config struct {
		Min   int    `json:"min"`
		Field string `json:"field"`
	}
	var (
		got  config
		kept Config
	)
	OnConfig(func(c Config) error {
		got = config{}
		if err := c.Decode(&got); err != nil {
			return err
		}
		if got.Min < 0 {
			return fmt.Errorf("min must be at least 0, not %d", got.Min)
		}
		if n, ok := c.Get("min").Int(); c.Get("min").Exists() && (!ok || n != int64(got.Min)) {
			return fmt.Errorf("Get(min) = %d, %t", n, ok)
		}
		kept = c
		return nil
	})
	tests := []struct {
		name   string
		config string
		status abi.Status
		msg    string
		want   config
	}{
		{name: "full", config: `{"min":5,"field":"amount"}`, want: config{5, "amount"}},
		{name: "empty", config: `{}`},
		{name: "refused by the plugin", config: `{"min":-1}`, status: abi.StatusBadConfig, msg: "min must be at least 0, not -1"},
		{name: "does not decode", config: `{"min":"x"}`, status: abi.StatusBadConfig, msg: "json"},
		{name: "not JSON", config: `{`, status: abi.StatusBadConfig, msg: "JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.config)
			r := call(t, handleInit, in, abi.BodyEmpty, 0)
			wantStatus(t, r, tt.status, tt.msg)
			if tt.status != abi.StatusOK {
				return
			}
			if got != tt.want {
				t.Errorf("decoded %+v, want %+v", got, tt.want)
			}
			if string(kept.Raw()) != tt.config {
				t.Errorf("Raw() = %s", kept.Raw())
			}
			// The host reuses its input buffer for the next call; a
			// Config kept by the plugin must not change with it.
			for i := range in {
				in[i] = ' '
			}
			if string(kept.Raw()) != tt.config {
				t.Errorf("Raw() = %q after the input buffer was reused", kept.Raw())
			}
			if s, _ := kept.Get("field").String(); s != tt.want.Field {
				t.Errorf("Get(field) = %q after the input buffer was reused", s)
			}
		})
	}
}

// stats is an aggregate state of fixed size, encoded with encoding/binary.
type stats struct {
	Count, Sum, Min int64
}

func statsAgg() AggregateFuncs[stats] {
	return AggregateFuncs[stats]{
		Init: func() stats { return stats{Min: math.MaxInt64} },
		Add: func(s *stats, e Event) error {
			v, ok := e.Int()
			if !ok {
				return EventError(3, "not an int")
			}
			s.Count++
			s.Sum += v
			s.Min = min(s.Min, v)
			return nil
		},
		Merge: func(s, o *stats) {
			s.Count += o.Count
			s.Sum += o.Sum
			s.Min = min(s.Min, o.Min)
		},
		Finish: func(key string, s *stats, w Window, out *Output) error {
			if key == "fail" {
				return errors.New("cannot finish")
			}
			var ed Editor
			doc, _ := ed.SetString("key", key).SetInt("count", s.Count).SetInt("sum", s.Sum).SetInt("min", s.Min).
				SetInt("start", w.Start).SetInt("end", w.End).Apply([]byte(`{}`))
			out.Emit(&OutEvent{Type: "stats", Kind: DataJSON, Data: doc})
			return nil
		},
	}
}

func statsAcc(s stats) []byte {
	b, err := binary.Append(nil, binary.LittleEndian, &s)
	if err != nil {
		panic(err)
	}
	return b
}

func aggInput(key string, acc, batch []byte) []byte {
	return append(abi.AppendState(nil, &abi.State{Key: []byte(key), Acc: acc}), batch...)
}

func mergeInput(key string, a, b []byte) []byte {
	in := abi.AppendState(nil, &abi.State{Key: []byte(key), Acc: a})
	in = binary.LittleEndian.AppendUint32(in, uint32(len(b)))
	return append(in, b...)
}

func finishInput(key string, acc []byte, start, end int64) []byte {
	in := abi.AppendState(nil, &abi.State{Key: []byte(key), Acc: acc})
	var w [abi.WindowSize]byte
	abi.PutWindow(w[:], start, end)
	return append(in, w[:]...)
}

func TestAggregateBinary(t *testing.T) {
	isolate(t)
	Aggregate(statsAgg())
	ints := func(vs ...int64) []byte {
		var recs []abi.Record
		for i, v := range vs {
			recs = append(recs, rec(i, "n", abi.DataInt, intData(v)))
		}
		return batch(recs...)
	}
	initial := stats{Min: math.MaxInt64}

	t.Run("aggregate", func(t *testing.T) {
		tests := []struct {
			name  string
			acc   []byte
			batch []byte
			n     int
			want  stats
			errs  []evErr
		}{
			{name: "empty accumulator, empty batch", batch: ints(), want: initial},
			{name: "from empty", batch: ints(1, 2, 4), n: 3, want: stats{3, 7, 1}},
			{name: "from an accumulator", acc: statsAcc(stats{3, 7, 1}), batch: ints(-5), n: 1, want: stats{4, 2, -5}},
			{name: "an accumulator, empty batch", acc: statsAcc(stats{3, 7, 1}), batch: ints(), want: stats{3, 7, 1}},
			{name: "an event fails", n: 4, want: stats{3, 7, 1}, errs: []evErr{{2, 3, "not an int"}},
				batch: batch(rec(0, "n", abi.DataInt, intData(1)), rec(1, "n", abi.DataInt, intData(2)),
					rec(2, "s", abi.DataString, []byte("x")), rec(3, "n", abi.DataInt, intData(4)))},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := call(t, handleAggregate, aggInput("g", tt.acc, tt.batch), abi.BodyBytes, tt.n)
				wantStatus(t, r, abi.StatusOK, "")
				if !bytes.Equal(r.Body, statsAcc(tt.want)) {
					t.Errorf("accumulator %x, want %x (%+v)", r.Body, statsAcc(tt.want), tt.want)
				}
				if got := eventErrors(r); !reflect.DeepEqual(got, tt.errs) {
					t.Errorf("event errors %v, want %v", got, tt.errs)
				}
			})
		}
	})

	t.Run("merge", func(t *testing.T) {
		a, b := stats{3, 7, 1}, stats{2, -10, -6}
		tests := []struct {
			name string
			a, b []byte
			want stats
		}{
			{name: "both", a: statsAcc(a), b: statsAcc(b), want: stats{5, -3, -6}},
			{name: "empty first", b: statsAcc(b), want: b},
			{name: "empty second", a: statsAcc(a), want: a},
			{name: "both empty", want: initial},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := call(t, handleMerge, mergeInput("g", tt.a, tt.b), abi.BodyBytes, 0)
				wantStatus(t, r, abi.StatusOK, "")
				if !bytes.Equal(r.Body, statsAcc(tt.want)) {
					t.Errorf("accumulator %x, want %x (%+v)", r.Body, statsAcc(tt.want), tt.want)
				}
			})
		}
	})

	t.Run("finish", func(t *testing.T) {
		tests := []struct {
			name string
			key  string
			acc  []byte
			want string
		}{
			{name: "an accumulator", key: "g", acc: statsAcc(stats{3, 7, 1}),
				want: `{"key":"g","count":3,"sum":7,"min":1,"start":100,"end":200}`},
			{name: "an empty window", key: "", acc: nil,
				want: `{"key":"","count":0,"sum":0,"min":9223372036854775807,"start":100,"end":200}`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := call(t, handleFinish, finishInput(tt.key, tt.acc, 100, 200), abi.BodyRecords, 0)
				wantStatus(t, r, abi.StatusOK, "")
				views := outputs(t, r)
				if len(views) != 1 {
					t.Fatalf("%d records, want 1", len(views))
				}
				v := views[0]
				if v.Index != 0 || v.ID != [16]byte{} || v.Time != 0 || string(v.Type) != "stats" || v.Kind != abi.DataJSON {
					t.Errorf("record header %+v", v.Header)
				}
				if string(v.Data) != tt.want {
					t.Errorf("data %s, want %s", v.Data, tt.want)
				}
			})
		}
	})

	t.Run("failures", func(t *testing.T) {
		r := call(t, handleFinish, finishInput("fail", nil, 0, 1), abi.BodyRecords, 0)
		wantStatus(t, r, abi.StatusFailed, "cannot finish")
		short := []byte{1, 2, 3}
		r = call(t, handleFinish, finishInput("g", short, 0, 1), abi.BodyRecords, 0)
		wantStatus(t, r, abi.StatusFailed, "accumulator")
		r = call(t, handleAggregate, aggInput("g", short, ints(1)), abi.BodyBytes, 1)
		wantStatus(t, r, abi.StatusFailed, "accumulator")
		r = call(t, handleMerge, mergeInput("g", statsAcc(stats{}), short), abi.BodyBytes, 0)
		wantStatus(t, r, abi.StatusFailed, "accumulator")
	})
}

// tally is an aggregate state that is not of fixed size, encoded with
// encoding/json.
type tally struct {
	Name string
	Tags map[string]int
	Last string `json:",omitempty"`
}

func tallyAgg() AggregateFuncs[tally] {
	return AggregateFuncs[tally]{
		Add: func(s *tally, e Event) error {
			if e.Source() == "src-bad" {
				return EventError(4, "bad source")
			}
			s.Name = e.Type()
			if s.Tags == nil {
				s.Tags = map[string]int{}
			}
			s.Tags[e.Source()]++
			if v, ok := e.Text(); ok {
				s.Last = strings.Clone(v)
			}
			return nil
		},
		Merge: func(s, o *tally) {
			if s.Tags == nil {
				s.Tags = map[string]int{}
			}
			for k, v := range o.Tags {
				s.Tags[k] += v
			}
			if o.Last != "" {
				s.Last = o.Last
			}
		},
		Finish: func(key string, s *tally, w Window, out *Output) error {
			doc, err := json.Marshal(s)
			if err != nil {
				return err
			}
			out.Emit(&OutEvent{Type: "tally", Source: key, Kind: DataJSON, Data: doc, Time: w.End})
			return nil
		},
	}
}

func TestAggregateJSON(t *testing.T) {
	isolate(t)
	Aggregate(tallyAgg())
	decode := func(t *testing.T, acc []byte) tally {
		t.Helper()
		if !json.Valid(acc) {
			t.Fatalf("accumulator %q is not JSON", acc)
		}
		var s tally
		if err := json.Unmarshal(acc, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	text := func(i int, typ, source, s string) abi.Record {
		r := rec(i, typ, abi.DataString, []byte(s))
		r.Source = []byte(source)
		return r
	}

	// Group a, from nothing.
	r := call(t, handleAggregate, aggInput("a", nil, batch(text(0, "a", "x", "hello"), text(1, "a", "src-bad", "no"), text(2, "a", "x", "again"))), abi.BodyBytes, 3)
	wantStatus(t, r, abi.StatusOK, "")
	if got, want := decode(t, r.Body), (tally{"a", map[string]int{"x": 2}, "again"}); !reflect.DeepEqual(got, want) {
		t.Errorf("group a: %+v, want %+v", got, want)
	}
	if got, want := eventErrors(r), []evErr{{1, 4, "bad source"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("event errors %v, want %v", got, want)
	}

	// Group b, from an accumulator: nothing of group a may leak into it.
	r = call(t, handleAggregate, aggInput("b", []byte(`{"Name":"b","Tags":{"y":1}}`), batch(rec(0, "b", abi.DataNull, nil))), abi.BodyBytes, 1)
	wantStatus(t, r, abi.StatusOK, "")
	if got, want := decode(t, r.Body), (tally{"b", map[string]int{"y": 1, "src-b": 1}, ""}); !reflect.DeepEqual(got, want) {
		t.Errorf("group b: %+v, want %+v", got, want)
	}

	// Empty accumulator and batch: the zero state (no Init).
	r = call(t, handleAggregate, aggInput("c", nil, batch()), abi.BodyBytes, 0)
	if got := decode(t, r.Body); !reflect.DeepEqual(got, tally{}) {
		t.Errorf("empty: %+v", got)
	}

	// Merge.
	r = call(t, handleMerge, mergeInput("a", []byte(`{"Name":"a","Tags":{"x":1},"Last":"l"}`), []byte(`{"Name":"a","Tags":{"x":2,"z":1}}`)), abi.BodyBytes, 0)
	wantStatus(t, r, abi.StatusOK, "")
	if got, want := decode(t, r.Body), (tally{"a", map[string]int{"x": 3, "z": 1}, "l"}); !reflect.DeepEqual(got, want) {
		t.Errorf("merged: %+v, want %+v", got, want)
	}
	r = call(t, handleMerge, mergeInput("a", nil, []byte(`{"Name":"q","Tags":{"w":1}}`)), abi.BodyBytes, 0)
	if got, want := decode(t, r.Body), (tally{"", map[string]int{"w": 1}, ""}); !reflect.DeepEqual(got, want) {
		t.Errorf("merged into nothing: %+v, want %+v", got, want)
	}

	// Finish, with and without events.
	for _, tt := range []struct {
		name, acc, want string
	}{
		{name: "events", acc: `{"Name":"a","Tags":{"x":1}}`, want: `{"Name":"a","Tags":{"x":1}}`},
		{name: "empty window", acc: ``, want: `{"Name":"","Tags":null}`},
	} {
		r = call(t, handleFinish, finishInput("k", []byte(tt.acc), 10, 20), abi.BodyRecords, 0)
		wantStatus(t, r, abi.StatusOK, "")
		views := outputs(t, r)
		if len(views) != 1 || string(views[0].Data) != tt.want || string(views[0].Source) != "k" || views[0].Time != 20 {
			t.Errorf("%s: finish emitted %+v", tt.name, views)
		}
	}

	// An accumulator that is not JSON fails the call.
	r = call(t, handleAggregate, aggInput("a", []byte(`{"Name":`), batch()), abi.BodyBytes, 0)
	wantStatus(t, r, abi.StatusFailed, "accumulator")
}

func TestAggregateCustomCodec(t *testing.T) {
	isolate(t)
	a := statsAgg()
	a.Marshal = func(s *stats, b []byte) []byte { return fmt.Appendf(b, "%d/%d/%d", s.Count, s.Sum, s.Min) }
	a.Unmarshal = func(b []byte, s *stats) error {
		_, err := fmt.Sscanf(string(b), "%d/%d/%d", &s.Count, &s.Sum, &s.Min)
		return err
	}
	Aggregate(a)
	r := call(t, handleAggregate, aggInput("g", []byte("1/5/5"), batch(rec(0, "n", abi.DataInt, intData(2)))), abi.BodyBytes, 1)
	if string(r.Body) != "2/7/2" {
		t.Errorf("accumulator %q, want 2/7/2", r.Body)
	}
	r = call(t, handleMerge, mergeInput("g", []byte("1/5/5"), []byte("2/1/-1")), abi.BodyBytes, 0)
	if string(r.Body) != "3/6/-1" {
		t.Errorf("merged %q, want 3/6/-1", r.Body)
	}
}

func TestUnsupported(t *testing.T) {
	isolate(t)
	b := batch(rec(0, "x", abi.DataNull, nil))
	for _, tt := range []struct {
		name string
		h    func([]byte) []byte
		in   []byte
		body abi.Body
		msg  string
	}{
		{name: "filter", h: handleFilter, in: b, body: abi.BodyIndices, msg: "no filter"},
		{name: "map", h: handleMap, in: b, body: abi.BodyRecords, msg: "no map"},
		{name: "aggregate", h: handleAggregate, in: aggInput("", nil, b), body: abi.BodyBytes, msg: "no aggregate"},
		{name: "merge", h: handleMerge, in: mergeInput("", nil, nil), body: abi.BodyBytes, msg: "no aggregate"},
		{name: "finish", h: handleFinish, in: finishInput("", nil, 0, 1), body: abi.BodyRecords, msg: "no aggregate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantStatus(t, call(t, tt.h, tt.in, tt.body, 1), abi.StatusUnsupported, tt.msg)
		})
	}
}

// registerAll registers a step of every kind, each of which accepts
// anything.
func registerAll(t testing.TB) {
	isolate(t)
	Filter(func(e Event) bool { return e.Kind() != DataNull })
	Map(func(e Event, out *Output) error {
		o := e.Out()
		o.SetMeta("m", "1")
		out.Emit(&o)
		if e.Kind() == DataNull {
			return errors.New("null")
		}
		return nil
	})
	Aggregate(statsAgg())
}

// validInputs returns well-formed inputs of every step export.
func validInputs() []struct {
	name string
	h    func([]byte) []byte
	in   []byte
} {
	b := batch(rec(0, "n", abi.DataInt, intData(1), kv{"k", "v"}), rec(1, "s", abi.DataString, []byte("x")), rec(2, "z", abi.DataNull, nil))
	return []struct {
		name string
		h    func([]byte) []byte
		in   []byte
	}{
		{"filter", handleFilter, b},
		{"map", handleMap, b},
		{"aggregate", handleAggregate, aggInput("key", statsAcc(stats{1, 2, 3}), b)},
		{"merge", handleMerge, mergeInput("key", statsAcc(stats{1, 2, 3}), statsAcc(stats{4, 5, 6}))},
		{"finish", handleFinish, finishInput("key", statsAcc(stats{1, 2, 3}), 5, 6)},
	}
}

func TestBadInput(t *testing.T) {
	registerAll(t)
	rec0 := rec(0, "n", abi.DataInt, intData(1))
	one := batch(rec0)
	withCount := func(b []byte, n uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b, n)
		return b
	}
	withSize := func(b []byte, size uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[abi.BatchHeaderSize:], size)
		return b
	}
	batches := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short header", []byte{1, 0}},
		{"count without records", withCount(batch(), 1)},
		{"count beyond the records", withCount(one, 2)},
		{"count of 4 billion", withCount(one, math.MaxUint32)},
		{"bytes after the records", append(bytes.Clone(one), 0)},
		{"record cut short", one[:len(one)-1]},
		{"record header cut short", one[:abi.BatchHeaderSize+abi.HeaderSize-1]},
		{"record size below its fields", withSize(one, abi.HeaderSize)},
		{"record size beyond the input", withSize(one, 1<<31)},
		{"record size 0", withSize(one, 0)},
	}
	for _, b := range batches {
		t.Run("filter/"+b.name, func(t *testing.T) {
			wantStatus(t, call(t, handleFilter, b.in, abi.BodyIndices, 0), abi.StatusBadInput, "")
		})
		t.Run("map/"+b.name, func(t *testing.T) {
			wantStatus(t, call(t, handleMap, b.in, abi.BodyRecords, 0), abi.StatusBadInput, "")
		})
		t.Run("aggregate/"+b.name, func(t *testing.T) {
			wantStatus(t, call(t, handleAggregate, aggInput("k", nil, b.in), abi.BodyBytes, 0), abi.StatusBadInput, "")
		})
	}
	acc := statsAcc(stats{1, 2, 3})
	others := []struct {
		name string
		h    func([]byte) []byte
		in   []byte
	}{
		{"aggregate: no state", handleAggregate, nil},
		{"aggregate: key beyond the input", handleAggregate, []byte{9, 0, 0, 0, 'k'}},
		{"aggregate: accumulator beyond the input", handleAggregate, append(abi.AppendState(nil, &abi.State{Acc: acc}), 0)[:10]},
		{"merge: empty", handleMerge, nil},
		{"merge: no second accumulator", handleMerge, abi.AppendState(nil, &abi.State{Acc: acc})},
		{"merge: second accumulator cut short", handleMerge, mergeInput("", acc, acc)[:20]},
		{"merge: bytes after it", handleMerge, append(mergeInput("", acc, acc), 0)},
		{"finish: empty", handleFinish, nil},
		{"finish: no window", handleFinish, abi.AppendState(nil, &abi.State{Acc: acc})},
		{"finish: window cut short", handleFinish, finishInput("", acc, 1, 2)[:8+len(acc)+15]},
		{"finish: bytes after the window", handleFinish, append(finishInput("", acc, 1, 2), 0)},
	}
	for _, tt := range others {
		t.Run(tt.name, func(t *testing.T) {
			body := abi.BodyBytes
			if strings.HasPrefix(tt.name, "finish") {
				body = abi.BodyRecords
			}
			wantStatus(t, call(t, tt.h, tt.in, body, 0), abi.StatusBadInput, "")
		})
	}
}

// TestTruncatedInput cuts valid inputs of every export at every length:
// each is bad input, never a panic.
func TestTruncatedInput(t *testing.T) {
	registerAll(t)
	for _, tt := range validInputs() {
		body := map[string]abi.Body{"filter": abi.BodyIndices, "map": abi.BodyRecords, "finish": abi.BodyRecords}[tt.name]
		if body == 0 {
			body = abi.BodyBytes
		}
		// The whole input works.
		n := 3
		if tt.name == "merge" || tt.name == "finish" {
			n = 0
		}
		wantStatus(t, call(t, tt.h, tt.in, body, n), abi.StatusOK, "")
		for i := range len(tt.in) {
			r := call(t, tt.h, tt.in[:i], body, n)
			if r.Status != abi.StatusBadInput {
				t.Errorf("%s cut to %d of %d bytes: status %v (%q)", tt.name, i, len(tt.in), r.Status, r.Message())
			}
		}
	}
}

// TestGarbageInput feeds random bytes, and valid inputs with random bytes
// changed, to every export: never a panic, always a result.
func TestGarbageInput(t *testing.T) {
	registerAll(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range validInputs() {
		for range 500 {
			in := bytes.Clone(tt.in)
			if rng.IntN(4) == 0 {
				in = make([]byte, rng.IntN(200))
			}
			for range 1 + rng.IntN(4) {
				if len(in) > 0 {
					in[rng.IntN(len(in))] = byte(rng.Uint32())
				}
			}
			out := tt.h(in)
			if len(out) < abi.ResultHeaderSize {
				t.Fatalf("%s(%x): result of %d bytes", tt.name, in, len(out))
			}
		}
	}
}

// FuzzHandlers checks that no export panics on any input, whatever the
// plugin's functions do with the events they are given.
func FuzzHandlers(f *testing.F) {
	registerAll(f)
	for _, tt := range validInputs() {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, h := range []func([]byte) []byte{handleFilter, handleMap, handleAggregate, handleMerge, handleFinish, handleInit} {
			if out := h(in); len(out) < abi.ResultHeaderSize {
				t.Fatalf("result of %d bytes", len(out))
			}
		}
	})
}

func TestKinds(t *testing.T) {
	isolate(t)
	if k := kinds(); k != 0 {
		t.Errorf("kinds() = %d with nothing registered", k)
	}
	Filter(func(Event) bool { return true })
	if k := kinds(); k != uint32(abi.KindFilter) {
		t.Errorf("kinds() = %d, want filter", k)
	}
	filterFn = nil
	Map(func(Event, *Output) error { return nil })
	if k := kinds(); k != uint32(abi.KindMap) {
		t.Errorf("kinds() = %d, want map", k)
	}
	mapFn = nil
	Aggregate(statsAgg())
	if k := kinds(); k != uint32(abi.KindAggregate) {
		t.Errorf("kinds() = %d, want aggregate", k)
	}
	Filter(func(Event) bool { return true })
	Map(func(Event, *Output) error { return nil })
	if k := kinds(); k != 7 {
		t.Errorf("kinds() = %d, want 7", k)
	}
	OnConfig(func(Config) error { return nil })
	if k := kinds(); k != 7 {
		t.Errorf("kinds() = %d after OnConfig, want 7", k)
	}
}

func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	fn()
}

func TestRegisterTwice(t *testing.T) {
	isolate(t)
	Filter(func(Event) bool { return true })
	mustPanic(t, "a second Filter", func() { Filter(func(Event) bool { return false }) })
	Map(func(Event, *Output) error { return nil })
	mustPanic(t, "a second Map", func() { Map(func(Event, *Output) error { return nil }) })
	OnConfig(func(Config) error { return nil })
	mustPanic(t, "a second OnConfig", func() { OnConfig(func(Config) error { return nil }) })
	Aggregate(statsAgg())
	mustPanic(t, "a second Aggregate", func() { Aggregate(tallyAgg()) })

	isolate(t)
	for _, tt := range []struct {
		name string
		edit func(a *AggregateFuncs[stats])
	}{
		{"no Add", func(a *AggregateFuncs[stats]) { a.Add = nil }},
		{"no Merge", func(a *AggregateFuncs[stats]) { a.Merge = nil }},
		{"no Finish", func(a *AggregateFuncs[stats]) { a.Finish = nil }},
	} {
		a := statsAgg()
		tt.edit(&a)
		mustPanic(t, "Aggregate with "+tt.name, func() { Aggregate(a) })
		if aggImpl != nil {
			t.Errorf("Aggregate with %s registered it", tt.name)
		}
	}
}

// TestHandlerAllocs checks that the filter and map handlers allocate
// nothing per call once the result buffer has grown.
func TestHandlerAllocs(t *testing.T) {
	isolate(t)
	var ed Editor
	Filter(func(e Event) bool { return e.Type() != "order.refunded" })
	Map(func(e Event, out *Output) error {
		amount, _ := e.Field("amount").Float()
		doc, _ := ed.Reset().SetInt("amount_cents", int64(amount*100)).SetString("region", "eu-west-1").Apply(e.Data())
		o := e.Out()
		o.SetJSON(doc)
		out.Emit(&o)
		return nil
	})
	in := encodeOrders(64)
	run := func() {
		handleFilter(in)
		handleMap(in)
	}
	run()
	if n := testing.AllocsPerRun(20, run); n != 0 {
		t.Errorf("filter and map allocate %v times per call, want 0", n)
	}
}

// TestEmitRefusesWhatTheHostWould: an output the host would refuse fails
// its input event (map) or the call (finish) instead of the whole batch.
func TestEmitRefusesWhatTheHostWould(t *testing.T) {
	isolate(t)
	Map(func(e Event, out *Output) error {
		o := e.Out()
		switch e.Index() {
		case 1:
			o.Type = "has space"
		case 2:
			o.Kind, o.Data = DataInt, []byte{1, 2}
		case 3:
			o.SetJSON([]byte("\"\xff\""))
		case 4:
			o.Type = "no\u00a0break" // Unicode white space, as the host sees it
		case 5:
			o.Type = "c1\u0085control"
		case 6:
			o.Type = "näive.✓" // fine
		}
		out.Emit(&o)
		return nil
	})
	in := batch(rec(0, "ok", DataNull, nil), rec(1, "ok", DataNull, nil), rec(2, "ok", DataNull, nil), rec(3, "ok", DataNull, nil),
		rec(4, "ok", DataNull, nil), rec(5, "ok", DataNull, nil), rec(6, "ok", DataNull, nil))
	r := call(t, handleMap, in, abi.BodyRecords, 7)
	if got := outputs(t, r); len(got) != 2 || got[0].Index != 0 || got[1].Index != 6 {
		t.Fatalf("outputs %v", got)
	}
	errs := eventErrors(r)
	if len(errs) != 5 || errs[0].index != 1 || errs[1].index != 2 || errs[2].index != 3 || errs[3].index != 4 || errs[4].index != 5 {
		t.Fatalf("event errors %+v", errs)
	}
}

func TestAggregateStateMustBeEncodable(t *testing.T) {
	isolate(t)
	type hidden struct{ count, sum int64 }
	mustPanic(t, "unexported fields", func() {
		Aggregate(AggregateFuncs[hidden]{
			Add:    func(h *hidden, _ Event) error { h.count++; h.sum += h.count; return nil },
			Merge:  func(*hidden, *hidden) {},
			Finish: func(string, *hidden, Window, *Output) error { return nil },
		})
	})
	type open struct{ Count int64 }
	mustPanic(t, "Marshal without Unmarshal", func() {
		Aggregate(AggregateFuncs[open]{
			Add:     func(*open, Event) error { return nil },
			Merge:   func(*open, *open) {},
			Finish:  func(string, *open, Window, *Output) error { return nil },
			Marshal: func(s *open, b []byte) []byte { return b },
		})
	})
}

// TestBadRunesIsTheHostsSet: the SDK's list of white space and control
// characters beyond ASCII is exactly Go's unicode.IsSpace and
// unicode.IsControl, the host's sets.
func TestBadRunesIsTheHostsSet(t *testing.T) {
	for r := rune(utf8.RuneSelf); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		want := unicode.IsSpace(r) || unicode.IsControl(r)
		if got := badRunes(string(r)); got != want {
			t.Errorf("U+%04X: %v, want %v", r, got, want)
		}
	}
}
