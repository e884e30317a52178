package host_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/host/conformance"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// The hand-written WAT aggregate of the orders workload
// (testplugins/wat/orders_aggregate.wat) must give what the Go SDK aggregate
// (testplugins/orders/aggregate) gives: the same accumulators (both encode
// the count and the sum as two little-endian int64s), the same event
// errors, and the same finish events, byte for byte.

// goOrdersAggregateLimits: a deadline long enough for the Go runtime's
// start on a busy machine, and fuel for long keys.
var goOrdersAggregateLimits = host.Limits{Timeout: 20 * time.Second, Fuel: 1_000_000_000}

// loadOrdersAggregates loads both aggregates. At the end of the test, the
// WAT aggregate must not have failed: one instance did all the work.
func loadOrdersAggregates(t *testing.T) (wat, goAgg *host.Plugin) {
	t.Helper()
	h, _ := newHost(t)
	wat = load(t, h, "wat/orders_aggregate", host.StepConfig{Name: "wat"})
	t.Cleanup(func() {
		if st := wat.Stats(); st.Created != 1 || st.Discarded != 0 {
			t.Errorf("wat: %d instances created, %d discarded; want 1 and 0", st.Created, st.Discarded)
		}
	})
	return wat, load(t, h, "orders/aggregate", host.StepConfig{Name: "go", Limits: goOrdersAggregateLimits})
}

// accumulateOrders runs Accumulate and returns the accumulator and the
// event errors (nil when none failed); any other error fails the test.
func accumulateOrders(t *testing.T, p *host.Plugin, key string, acc []byte, in []engine.Event) ([]byte, []engine.EventError) {
	t.Helper()
	next, err := p.Accumulate(context.Background(), key, acc, in)
	var ee *engine.EventErrors
	switch {
	case err == nil:
		return next, nil
	case errors.As(err, &ee):
		return next, ee.Errors
	}
	t.Fatalf("%s: accumulate: %v", p.Name(), err)
	return nil, nil
}

// sameOrdersAccumulate runs both aggregates on the same input and fails the
// test unless they give the same accumulator and the same event errors.
func sameOrdersAccumulate(t *testing.T, wat, goAgg *host.Plugin, key string, acc []byte, in []engine.Event) ([]byte, []engine.EventError) {
	t.Helper()
	a, ae := accumulateOrders(t, wat, key, acc, in)
	b, be := accumulateOrders(t, goAgg, key, acc, in)
	if !bytes.Equal(a, b) {
		t.Fatalf("accumulators differ: wat % x, go % x", a, b)
	}
	if !slices.Equal(ae, be) {
		t.Fatalf("event errors differ:\n wat %+v\n  go %+v", ae, be)
	}
	return a, ae
}

// sameOrdersMerge runs both merges and fails the test unless they give the
// same accumulator.
func sameOrdersMerge(t *testing.T, wat, goAgg *host.Plugin, key string, x, y []byte) []byte {
	t.Helper()
	ctx := context.Background()
	a, err := wat.Merge(ctx, key, x, y)
	if err != nil {
		t.Fatalf("wat: merge: %v", err)
	}
	b, err := goAgg.Merge(ctx, key, x, y)
	if err != nil {
		t.Fatalf("go: merge: %v", err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("merged accumulators differ: wat % x, go % x", a, b)
	}
	return a
}

// sameOrdersFinish runs both finishes and fails the test unless each gives
// one event and the two agree on everything but the id, which the host
// draws; it returns the WAT aggregate's data.
func sameOrdersFinish(t *testing.T, wat, goAgg *host.Plugin, key string, acc []byte, w engine.Window) []byte {
	t.Helper()
	ctx := context.Background()
	a, err := wat.Finish(ctx, key, acc, w, nil)
	if err != nil {
		t.Fatalf("wat: finish: %v", err)
	}
	b, err := goAgg.Finish(ctx, key, acc, w, nil)
	if err != nil {
		t.Fatalf("go: finish: %v", err)
	}
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("finish gave %d events (wat) and %d (go)", len(a), len(b))
	}
	x, y := a[0], b[0]
	if x.Type != "order.window" || x.Type != y.Type || x.Source != y.Source || x.Time != y.Time || x.Time != w.End ||
		!x.ID.IsZero() || !y.ID.IsZero() || !maps.Equal(x.Metadata, y.Metadata) { // zero IDs: the aggregation derives them
		t.Fatalf("finish events differ:\n wat %s %s %q %d %v\n  go %s %s %q %d %v",
			x.ID, x.Type, x.Source, x.Time, x.Metadata, y.ID, y.Type, y.Source, y.Time, y.Metadata)
	}
	if dx, dy := mustJSON(t, x.Data), mustJSON(t, y.Data); !bytes.Equal(dx, dy) {
		t.Fatalf("finish data differs:\n wat %s\n  go %s", dx, dy)
	}
	return mustJSON(t, x.Data)
}

// ordersAcc is the accumulator of a count and a sum.
func ordersAcc(count, sum int64) []byte {
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, uint64(count)), uint64(sum))
}

// ordersAmountCents is the amount_cents of a mapped orders event.
func ordersAmountCents(t *testing.T, e engine.Event) int64 {
	t.Helper()
	var d struct {
		AmountCents *int64 `json:"amount_cents"`
	}
	if err := e.Data.Decode(&d); err != nil || d.AmountCents == nil {
		t.Fatalf("data %s: %v", e.Data, err)
	}
	return *d.AmountCents
}

// mappedOrderEvents is n events of the orders workload after its native
// map: JSON data with an integer amount_cents.
func mappedOrderEvents(t *testing.T, n int) []engine.Event {
	t.Helper()
	out, err := orders.Map.Process(context.Background(), orders.Events(n, 1), nil)
	if err != nil || len(out) != n {
		t.Fatalf("map: %d events, %v", len(out), err)
	}
	return out
}

func TestOrdersAggregateWATMatchesGo(t *testing.T) {
	wat, goAgg := loadOrdersAggregates(t)
	in := mappedOrderEvents(t, 2000)
	groups := map[string][]engine.Event{}
	for _, e := range in {
		groups[string(e.Type)] = append(groups[string(e.Type)], e)
	}
	if len(groups) != 4 {
		t.Fatalf("%d groups", len(groups))
	}
	w := engine.Window{Start: 1_700_000_000_000_000_000, End: 1_700_000_060_000_000_000}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		evs := groups[key]
		var want int64
		for _, e := range evs {
			want += ordersAmountCents(t, e)
		}
		// One accumulator folded batch after batch, and partial ones
		// (one per batch, from an empty accumulator) merged in two
		// groupings; all four end the same.
		var whole []byte
		var parts [][]byte
		for i, size := 0, 1; i < len(evs); i, size = i+size, size*3 {
			batch := evs[i:min(i+size, len(evs))]
			whole, _ = sameOrdersAccumulate(t, wat, goAgg, key, whole, batch)
			part, _ := sameOrdersAccumulate(t, wat, goAgg, key, nil, batch)
			parts = append(parts, part)
		}
		left := parts[0]
		for _, p := range parts[1:] {
			left = sameOrdersMerge(t, wat, goAgg, key, left, p)
		}
		right := parts[len(parts)-1]
		for i := len(parts) - 2; i >= 0; i-- {
			right = sameOrdersMerge(t, wat, goAgg, key, parts[i], right)
		}
		if !bytes.Equal(whole, ordersAcc(int64(len(evs)), want)) || !bytes.Equal(left, whole) || !bytes.Equal(right, whole) {
			t.Fatalf("%s: folded % x, merged % x and % x; want count %d sum %d", key, whole, left, right, len(evs), want)
		}
		got := sameOrdersFinish(t, wat, goAgg, key, whole, w)
		if s := fmt.Sprintf(`{"key":%q,"count":%d,"sum_cents":%d,"start":%d,"end":%d}`, key, len(evs), want, w.Start, w.End); string(got) != s {
			t.Fatalf("finish data %s, want %s", got, s)
		}
	}

	// The accumulators of the two plugins mix.
	evs := groups["ORDER.PAID"]
	a, _ := accumulateOrders(t, wat, "ORDER.PAID", nil, evs[:10])
	b, _ := accumulateOrders(t, goAgg, "ORDER.PAID", a, evs[10:20])
	c, _ := accumulateOrders(t, wat, "ORDER.PAID", b, evs[20:30])
	d, _ := accumulateOrders(t, goAgg, "ORDER.PAID", nil, evs[:30])
	if !bytes.Equal(c, d) {
		t.Fatalf("mixed % x, go alone % x", c, d)
	}
}

func TestOrdersAggregateWATEmpty(t *testing.T) {
	wat, goAgg := loadOrdersAggregates(t)
	w := engine.Window{Start: 0, End: 60_000_000_000}
	zero := ordersAcc(0, 0)
	// An empty batch gives the zero accumulator, or the one it was given.
	if a, errs := sameOrdersAccumulate(t, wat, goAgg, "k", nil, nil); !bytes.Equal(a, zero) || errs != nil {
		t.Fatalf("empty batch: % x %v", a, errs)
	}
	if a, _ := sameOrdersAccumulate(t, wat, goAgg, "k", ordersAcc(3, -7), []engine.Event{}); !bytes.Equal(a, ordersAcc(3, -7)) {
		t.Fatalf("empty batch on an accumulator: % x", a)
	}
	// Merges with empty accumulators.
	for _, m := range []struct{ x, y, want []byte }{
		{nil, nil, zero},
		{ordersAcc(2, 5), nil, ordersAcc(2, 5)},
		{nil, ordersAcc(2, 5), ordersAcc(2, 5)},
		{ordersAcc(2, 5), ordersAcc(3, -9), ordersAcc(5, -4)},
		{ordersAcc(1, math.MaxInt64), ordersAcc(1, 1), ordersAcc(2, math.MinInt64)}, // wraps as Go's int64 does
	} {
		if got := sameOrdersMerge(t, wat, goAgg, "", m.x, m.y); !bytes.Equal(got, m.want) {
			t.Fatalf("merge % x and % x: % x, want % x", m.x, m.y, got, m.want)
		}
	}
	// An empty window still has its event, with count 0.
	if got := sameOrdersFinish(t, wat, goAgg, "", nil, w); string(got) != `{"key":"","count":0,"sum_cents":0,"start":0,"end":60000000000}` {
		t.Fatalf("empty window: %s", got)
	}
}

// TestOrdersAggregateWATFinish: keys that need escapes, and extreme numbers.
func TestOrdersAggregateWATFinish(t *testing.T) {
	wat, goAgg := loadOrdersAggregates(t)
	var ctl strings.Builder
	for c := range 0x20 {
		ctl.WriteByte(byte(c))
	}
	keys := []string{"", "ORDER.PAID", `a"b\c/d`, ctl.String(), "\x7f", "é世界😀", "\u2028\u2029\u2027\u202a\u0228",
		"x\u2028", "\u2029", `</script>&<>`, "\\u0000", strings.Repeat(`"`, 300),
		// longer than the first input buffer, and 6 times as long escaped
		strings.Repeat("\x01", 70000)}
	accs := [][]byte{nil, ordersAcc(0, 0), ordersAcc(1, -1), ordersAcc(math.MaxInt64, math.MinInt64), ordersAcc(math.MinInt64, math.MaxInt64),
		ordersAcc(-1, 1234567890123456789), ordersAcc(9, -10)}
	windows := []engine.Window{{Start: 0, End: 1}, {Start: -5, End: -1}, {Start: math.MinInt64, End: math.MaxInt64},
		{Start: 1_700_000_000_000_000_000, End: 1_700_000_000_100_000_000}}
	for i, key := range keys {
		acc, w := accs[i%len(accs)], windows[i%len(windows)]
		got := sameOrdersFinish(t, wat, goAgg, key, acc, w)
		if i < 2 && !strings.HasPrefix(string(got), `{"key":"`+key+`","count":`) {
			t.Fatalf("finish data %s", got)
		}
	}
	for i, acc := range accs {
		sameOrdersFinish(t, wat, goAgg, "k", acc, windows[i%len(windows)])
	}
}

// TestOrdersAggregateWATEventErrors: events without an integer amount_cents
// fail alone, with the same index, code and message in both, and the
// others are counted the same.
func TestOrdersAggregateWATEventErrors(t *testing.T) {
	wat, goAgg := loadOrdersAggregates(t)
	good := mappedOrderEvents(t, 4)
	withData := func(d engine.EventData) engine.Event {
		e := good[1].Clone()
		e.Data = d
		return e
	}
	tests := []struct {
		data string
		ok   bool
		v    int64 // the amount_cents of an event that is ok
	}{
		{`{"amount_cents":7919}`, true, 7919},
		{`{"amount_cents":0}`, true, 0},
		{`{"amount_cents":-0}`, true, 0},
		{`{"amount_cents":-42}`, true, -42},
		{`{"amount_cents":9223372036854775807}`, true, math.MaxInt64},
		{`{"amount_cents":-9223372036854775808}`, true, math.MinInt64},
		{`{"amount_cents":1234567890123456789}`, true, 1234567890123456789},
		{`  {  "amount_cents"  :  5  }  `, true, 5},
		{"\n{\r\n\t\"amount_cents\"\t:\n6\r}\n", true, 6},
		{`{"a":1,"amount_cents":8,"z":2}`, true, 8},
		{`{"amount_cents":1,"amount_cents":"x"}`, true, 1},
		{`{"x":{"amount_cents":"no"},"amount_cents":9}`, true, 9},
		{`{"x":"amount_cents","amount_cents":10}`, true, 10},
		{`{"x":["amount_cents",{"a":"}]"},[]],"y":"\"}","amount_cents":11}`, true, 11},
		{`{"a\"b":1,"c\\":2,"amount_cents":12}`, true, 12},
		{`{"\ud83d\ude00":1,"\u00e9":2,"amount_cents":13}`, true, 13},
		{`{"amount\u005fcents":14}`, true, 14},
		{`{"\u0061\u006D\u006f\u0075\u006E\u0074\u005F\u0063\u0065\u006e\u0074\u0073":15}`, true, 15},
		{`{"amount_cents":-9223372036854775807}`, true, -math.MaxInt64},
		{`{"amount_cents":100,"amount":1.5e300}`, true, 100},

		{`{}`, false, 0},
		{`{"amount":79.19}`, false, 0},
		{`{"amount_cents":"7919"}`, false, 0},
		{`{"amount_cents":79.19}`, false, 0},
		{`{"amount_cents":100.0}`, false, 0},
		{`{"amount_cents":1e2}`, false, 0},
		{`{"amount_cents":1E2}`, false, 0},
		{`{"amount_cents":1e+2}`, false, 0},
		{`{"amount_cents":-1.5}`, false, 0},
		{`{"amount_cents":null}`, false, 0},
		{`{"amount_cents":true}`, false, 0},
		{`{"amount_cents":false}`, false, 0},
		{`{"amount_cents":[1]}`, false, 0},
		{`{"amount_cents":{"v":1}}`, false, 0},
		{`{"amount_cents":9223372036854775808}`, false, 0},
		{`{"amount_cents":-9223372036854775809}`, false, 0},
		{`{"amount_cents":10000000000000000000}`, false, 0},
		{`{"amount_cents":18446744073709551616}`, false, 0},
		{`{"amount_cents":123456789012345678901234567890}`, false, 0},
		{`{"amount_cents":"x","amount_cents":1}`, false, 0},
		{`{"x":{"amount_cents":1}}`, false, 0},
		{`{"Amount_cents":1}`, false, 0},
		{`{"amount_cent":1}`, false, 0},
		{`{"amount_centss":1}`, false, 0},
		{`{"amount_cents ":1}`, false, 0},
		{`{"amount_cents\u0000":1}`, false, 0},
		{`{"amount_cents\"":1}`, false, 0},
		{`{"amount_cents\\":1}`, false, 0},
		{`{"amount_cent\u0073\u0073":1}`, false, 0},
		{`{"amount\ncents":1}`, false, 0},
		{`{"amount\u0000cents":1}`, false, 0},
		{`{"amount\u015fcents":1}`, false, 0},
		{`{"amount\u105fcents":1}`, false, 0},
		{`{"\ud800amount_cents":1}`, false, 0},
		{`{"x\u0002\u0000\u0000\u0000)\u0000\u0000\u0000amount_cents":1}`, false, 0},
		{`{"amount_cents\u0020is":1}`, false, 0},
		{`["amount_cents",1]`, false, 0},
		{`["x","amount_cents",2]`, false, 0},
		{`[1,"amount_cents" , 2]`, false, 0},
		{`{"a":["amount_cents",3]}`, false, 0},
		{`{"a":{"b":"amount_cents"},"c":"amount_cents"}`, false, 0},
		{`[{"amount_cents":1}]`, false, 0},
		{`"amount_cents"`, false, 0},
		{`42`, false, 0},
		{`null`, false, 0},
		{`true`, false, 0},
	}
	var in []engine.Event
	var wantErrs []engine.EventError
	var wantSum int64
	for _, tt := range tests {
		if !tt.ok {
			wantErrs = append(wantErrs, engine.EventError{Index: len(in), Code: 2, Message: "amount_cents is missing or not an integer"})
		} else {
			wantSum += tt.v // wraps
		}
		in = append(in, withData(engine.MustJSONData(tt.data)))
	}
	// Data of the other kinds, whatever it holds, has no amount_cents.
	for _, d := range []engine.EventData{engine.NullData(), engine.BoolData(true), engine.IntData(7919), engine.FloatData(79.19),
		engine.StringData(`{"amount_cents":1}`), engine.BytesData([]byte(`{"amount_cents":1}`)),
		engine.BytesData([]byte{0, 1, 2, 0xff, '{'}), engine.BytesData(nil), engine.StringData("")} {
		wantErrs = append(wantErrs, engine.EventError{Index: len(in), Code: 2, Message: "amount_cents is missing or not an integer"})
		in = append(in, withData(d))
	}
	in = append(in, good...)
	for _, e := range good {
		wantSum += ordersAmountCents(t, e)
	}
	acc, errs := sameOrdersAccumulate(t, wat, goAgg, "k", ordersAcc(100, 1), in)
	if !slices.Equal(errs, wantErrs) {
		t.Fatalf("event errors %+v\nwant %+v", errs, wantErrs)
	}
	if want := ordersAcc(int64(100+len(in)-len(wantErrs)), 1+wantSum); !bytes.Equal(acc, want) {
		t.Fatalf("accumulator % x, want % x", acc, want)
	}
	sameOrdersFinish(t, wat, goAgg, "k", acc, engine.Window{Start: 1, End: 2})

	// Every event at once, one by one, and a batch of failures only.
	for i := range in {
		sameOrdersAccumulate(t, wat, goAgg, "k", nil, in[i:i+1])
	}
	bad := make([]engine.Event, 3000)
	for i := range bad {
		bad[i] = withData(engine.MustJSONData(`{}`))
	}
	bad = append(bad, good...)
	acc, errs = sameOrdersAccumulate(t, wat, goAgg, "k", nil, bad)
	if len(errs) != 3000 || errs[2999].Index != 2999 || !bytes.Equal(acc[:8], ordersAcc(4, 0)[:8]) {
		t.Fatalf("%d errors, accumulator % x", len(errs), acc)
	}
}

// TestOrdersAggregateWATBigBatches: batches beyond the first input buffer,
// so that the host asks for a bigger one.
func TestOrdersAggregateWATBigBatches(t *testing.T) {
	wat, goAgg := loadOrdersAggregates(t)
	in := mappedOrderEvents(t, 3000)
	acc, errs := sameOrdersAccumulate(t, wat, goAgg, "all", nil, in)
	if errs != nil || binary.LittleEndian.Uint64(acc) != 3000 {
		t.Fatalf("% x %v", acc, errs)
	}
	acc, _ = sameOrdersAccumulate(t, wat, goAgg, "all", acc, in[:10])
	sameOrdersFinish(t, wat, goAgg, "all", acc, engine.Window{Start: 1, End: 2})
}

// TestOrdersAggregateWATConfig: like the SDK aggregate, the WAT aggregate
// takes no configuration (it has no aegis_init, so the host refuses one).
func TestOrdersAggregateWATConfig(t *testing.T) {
	h, _ := newHost(t)
	for _, name := range []string{"wat/orders_aggregate", "orders/aggregate"} {
		_, err := h.LoadFile(context.Background(), plugintest.Path(t, name), host.StepConfig{Config: []byte(`{"x":1}`), Limits: goOrdersAggregateLimits})
		if !errors.Is(err, host.ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
		p, err := h.LoadFile(context.Background(), plugintest.Path(t, name), host.StepConfig{Config: []byte(" { } "), Limits: goOrdersAggregateLimits})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if p.Kind() != 4 {
			t.Errorf("%s: kind %s", name, p.Kind())
		}
		p.Close(context.Background())
	}
}

// TestOrdersAggregateWATTopLevelValues: data that is a JSON string, number
// or literal, last in its batch, in a fresh instance (whose memory after
// the input is zero): the WAT aggregate does not read past the data.
func TestOrdersAggregateWATTopLevelValues(t *testing.T) {
	h, _ := newHost(t)
	goAgg := load(t, h, "orders/aggregate", host.StepConfig{Name: "go", Limits: goOrdersAggregateLimits})
	for _, doc := range []string{`"amount_cents"`, `"x"`, "\"amount_cents\" \n", `42`, `-7`, `true`, `null`, `[]`, `{}`, ` "" `} {
		wat := load(t, h, "wat/orders_aggregate", host.StepConfig{Name: "wat"})
		e := mappedOrderEvents(t, 1)[0]
		e.Data = engine.MustJSONData(doc)
		acc, errs := sameOrdersAccumulate(t, wat, goAgg, "k", nil, []engine.Event{e})
		if len(errs) != 1 || !bytes.Equal(acc, ordersAcc(0, 0)) {
			t.Fatalf("%s: % x %v", doc, acc, errs)
		}
		if st := wat.Stats(); st.Discarded != 0 {
			t.Fatalf("%s: %d instances discarded", doc, st.Discarded)
		}
	}
}

// TestOrdersAggregateWATConformance: the WAT aggregate passes every check
// of the conformance suite, as the Go one does.
func TestOrdersAggregateWATConformance(t *testing.T) {
	h, _ := newHost(t)
	r := conformance.Run(context.Background(), h, plugintest.Bytes(t, "wat/orders_aggregate"), conformance.Options{Name: "wat"})
	var out bytes.Buffer
	r.Write(&out)
	if !r.Passed() || len(r.Results) != 13 {
		t.Fatalf("passed %v with %d checks, want 13:\n%s", r.Passed(), len(r.Results), &out)
	}
}
