package host_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// The hand-written WAT map of the orders workload (testplugins/wat/orders_map.wat)
// must give what the Go SDK map (testplugins/orders/map) gives: the same
// output events, and the same event errors, on every input both handle.

// goOrdersMapLimits are the Go map's limits here: a deadline long enough
// for the Go runtime's start on a busy machine.
var goOrdersMapLimits = host.Limits{Timeout: 20 * time.Second}

// loadOrdersMaps loads both maps.
func loadOrdersMaps(t *testing.T) (wat, goMap *host.Plugin) {
	t.Helper()
	h, _ := newHost(t)
	return load(t, h, "wat/orders_map", host.StepConfig{Name: "wat"}),
		load(t, h, "orders/map", host.StepConfig{Name: "go", Limits: goOrdersMapLimits})
}

// ordersMapResult is what a map step gave for a batch: its outputs and its event
// errors (nil when none failed).
type ordersMapResult struct {
	out  []engine.Event
	errs []engine.EventError
}

func runOrdersMap(t *testing.T, p *host.Plugin, in []engine.Event) ordersMapResult {
	t.Helper()
	out, err := p.Process(context.Background(), in, nil)
	var ee *engine.EventErrors
	switch {
	case err == nil:
		return ordersMapResult{out: out}
	case errors.As(err, &ee):
		return ordersMapResult{out: out, errs: ee.Errors}
	}
	t.Fatalf("%s: %v", p.Name(), err)
	return ordersMapResult{}
}

// sameOrdersMap runs both maps on in and fails the test unless they agree
// on every event error and every output event: type, id, source, time,
// metadata, and data equal as JSON objects (numbers compared as their
// text, so that large integers are compared exactly). It returns both
// results, the WAT map's first.
func sameOrdersMap(t *testing.T, wat, goMap *host.Plugin, in []engine.Event) (ordersMapResult, ordersMapResult) {
	t.Helper()
	w, g := runOrdersMap(t, wat, in), runOrdersMap(t, goMap, in)
	if !slices.Equal(w.errs, g.errs) {
		t.Fatalf("event errors differ:\n wat %+v\n  go %+v", w.errs, g.errs)
	}
	if len(w.out) != len(g.out) {
		t.Fatalf("wat gave %d events, go %d", len(w.out), len(g.out))
	}
	for i := range g.out {
		a, b := w.out[i], g.out[i]
		if a.Type != b.Type || a.ID != b.ID || a.Source != b.Source || a.Time != b.Time || !maps.Equal(a.Metadata, b.Metadata) {
			t.Fatalf("event %d differs:\n wat %s %s %q %d %v\n  go %s %s %q %d %v",
				i, a.ID, a.Type, a.Source, a.Time, a.Metadata, b.ID, b.Type, b.Source, b.Time, b.Metadata)
		}
		if x, y := decodeDataObject(t, a.Data), decodeDataObject(t, b.Data); !reflect.DeepEqual(x, y) {
			t.Fatalf("event %d: data differs:\n wat %s\n  go %s", i, a.Data, b.Data)
		}
	}
	return w, g
}

// decodeDataObject unmarshals JSON data into a map, keeping numbers as text.
func decodeDataObject(t *testing.T, d engine.EventData) map[string]any {
	t.Helper()
	raw := mustJSON(t, d)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("data %s: %v", raw, err)
	}
	return m
}

// orderWithData is the i-th orders event with its data replaced by doc.
func orderWithData(i int, doc string) engine.Event {
	e := orders.Event(i, 1)
	e.Data = engine.MustJSONData(doc)
	return e
}

// ordersWithAmounts returns one orders event per amount, the amount spelled as
// given (a JSON number, or any JSON value).
func ordersWithAmounts(amounts ...string) []engine.Event {
	in := make([]engine.Event, len(amounts))
	for i, a := range amounts {
		in[i] = orderWithData(i, `{"amount":`+a+`,"id":"evt-1","source":"urn:shop:checkout:eu-west-1:i:p","type":"order.paid"}`)
	}
	return in
}

func TestOrdersMapWATMatchesGo(t *testing.T) {
	wat, goMap := loadOrdersMaps(t)
	for _, n := range []int{1, 16, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			in := orders.Events(n, 1)
			r, g := sameOrdersMap(t, wat, goMap, in)
			if len(r.out) != n || r.errs != nil {
				t.Fatalf("%d events, errors %v", len(r.out), r.errs)
			}
			// The workload's payloads are compact, and then both write the
			// same bytes.
			for i := range g.out {
				if a, b := mustJSON(t, r.out[i].Data), mustJSON(t, g.out[i].Data); !bytes.Equal(a, b) {
					t.Fatalf("event %d:\n wat %s\n  go %s", i, a, b)
				}
			}
			// And the example of BENCHMARKS.md, as text.
			if n == 16 {
				got := decodeDataObject(t, r.out[1].Data)
				want := decodeDataObject(t, engine.MustJSONData(`{"amount":79.19,"amount_cents":7919,"id":"evt-0000000001-7f3a9c2e-4b1d-4e8a-9d0c","region":"eu-west-1","source":"urn:shop:checkout:eu-west-1:instance-07:partition-01","type":"ORDER.PAID"}`))
				if !reflect.DeepEqual(got, want) || r.out[1].Type != "ORDER.PAID" {
					t.Fatalf("event 1: %s %s", r.out[1].Type, r.out[1].Data)
				}
			}
		})
	}
}

func TestOrdersMapWATCases(t *testing.T) {
	wat, goMap := loadOrdersMaps(t)

	meta := orders.Events(4, 1)
	meta[0].Metadata = map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "k": "v"}
	meta[2].Metadata = map[string]string{"tenant": "acme", "empty": "", "ünï": "cødé"}

	sources := []string{"", "urn", "urn:shop", "urn:shop:checkout", "urn:shop:checkout:", ":::", "::::", "a:b:c:d", "a:b:c:d:e",
		"urn:shop:checkout:eu\"west\\1\n\t\r\b\f\x01\x1f\x7f\u2028\u2029\u2027é世界:rest"}
	var src []engine.Event
	for i, s := range sources {
		e := orders.Event(i, 1)
		e.Source = s
		src = append(src, e)
	}

	types := []engine.EventType{"order.paid", "Order.Paid", `order."quoted"`, `order\back`, "bestellung.bezahlt.ü", "x",
		"{}[]:,~", engine.EventType(strings.Repeat("abz", 85))}
	var typ []engine.Event
	for i, ty := range types {
		e := orders.Event(i, 1)
		e.Type = ty
		typ = append(typ, e)
	}

	// Good events between the bad ones: the rest of the batch maps.
	notObject := []engine.Event{orders.Event(0, 1), orderWithData(1, `[1,2]`), orderWithData(2, `"str"`), orderWithData(3, `42`),
		orderWithData(4, `null`), orderWithData(5, `true`), orders.Event(6, 1)}
	for i, d := range []engine.EventData{engine.IntData(5), engine.FloatData(79.19), engine.StringData(`{"amount":1}`),
		engine.NullData(), engine.BytesData([]byte(`{"amount":1}`)), engine.BoolData(true)} {
		e := orders.Event(7+i, 1)
		e.Data = d
		notObject = append(notObject, e, orders.Event(8+i, 1))
	}

	tests := []struct {
		name string
		in   []engine.Event
		errs int // event errors expected
	}{
		{name: "negative amounts", in: ordersWithAmounts("-79.19", "-0.5", "-2.5", "-0.285", "-1e2", "-0.004", "-0.005", "-123456789012.345")},
		{name: "delicate rounding", in: ordersWithAmounts("0.285", "1.005", "2.675", "79.19", "0.5", "1.5", "2.5", "0.125", "0.045",
			"1.115", "4.35", "8.345", "0.615", "1234567.895", "0.005", "0.015", "0.0049999999", "0.00500000000001",
			"1e2", "1E2", "1.5e-1", "2.675e0", "26.75e-1", "0.02675e2", "1e-2", "5e-3", "4.9e-3", "1e+2", "100.000",
			"0", "0.0", "-0", "-0.0", "0e10", "123456789012345", "1.23456789012345e5", "9007199254740992",
			"9007199254740993", "90071992547409.92", "0.1", "0.7", "1.1", "10.01", "1099.995", "42")},
		{name: "tiny and huge", in: ordersWithAmounts("1e-30", "-1e-300", "5e-324", "2e-324", "1e-400", "-1e-99999999999",
			"0.0009999999999999999999999", "9.3e16", "1e17", "-1e17", "1e20", "-1e20", "1e300", "-1e308",
			"1.7976931348623157e308", "1.7976931348623158e308", "-1.7976931348623158e308",
			"1.797693134862315808e308", "1.8e308", "-1e309", "1e400", "1e99999999999", "123456789012345678901234567890"),
			errs: 5}, // ParseFloat overflows: the SDK sees no number
		{name: "not an object", in: notObject, errs: 11},
		{name: "missing or bad amount", in: []engine.Event{orders.Event(0, 1), orderWithData(1, `{}`), orderWithData(2, `{"id":"x"}`),
			orderWithData(3, `{"amount":"79.19"}`), orderWithData(4, `{"amount":null}`), orderWithData(5, `{"amount":true}`),
			orderWithData(6, `{"amount":{"v":1}}`), orderWithData(7, `{"amount":[1]}`), orderWithData(8, `{"Amount":1}`),
			orderWithData(9, `{"nested":{"amount":1}}`), orderWithData(10, `{"amount":"-1"}`), orders.Event(11, 1)}, errs: 10},
		{name: "sources", in: src},
		{name: "types", in: typ},
		{name: "metadata", in: meta},
		{name: "payload shapes", in: []engine.Event{
			orderWithData(0, `{"amount":1}`),
			orderWithData(1, `{"type":"old","amount":2.5}`),
			orderWithData(2, `{"region":"old","amount_cents":1,"amount":3,"type":"old","x":1}`),
			orderWithData(3, `{"amount_cents":null,"amount":4.445}`),
			orderWithData(4, `{"type":[1,{"a":"]}"}],"amount":2,"region":{"a":[]}}`),
			orderWithData(5, `{"amount":1,"type":"a","type":"b","region":"r1","region":"r2"}`),
			orderWithData(6, `{"amount":1.25,"amount":99}`),
			orderWithData(7, `{"\u0061mount":1.5,"typ\u0065":"x","r\u0065gion":7,"amount\u005fcents":"c"}`),
			orderWithData(8, `{"a\"b":1,"amount\\":7,"amount":2,"\/type":3,"ty\npe":4}`),
			orderWithData(9, "  { \"amount\" : 1.25 ,\n\t\"x\" : [1, {\"a\":\"}\"}] , \"type\":\"t\"\r\n }  "),
			orderWithData(10, `{"note":"a \"quoted\" }, string","amount":0.1,"uni":"\u2028é\ud83d\ude00"}`),
			orderWithData(11, `{ "amount":6 }`),
			orderWithData(12, `{"amount":6,"deep":[[[[{"x":[{"y":"\\"}]}]]]],"z":-1.5e-7}`),
			orderWithData(13, `{"amountx":1,"amoun":2,"amount_centsx":3,"regions":4,"types":5,"amount":7}`),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := sameOrdersMap(t, wat, goMap, tt.in)
			if len(r.errs) != tt.errs || len(r.out) != len(tt.in)-tt.errs {
				t.Fatalf("%d events and %d errors (%v) from %d inputs; want %d errors", len(r.out), len(r.errs), r.errs, len(tt.in), tt.errs)
			}
			for _, e := range r.errs {
				if e.Code != 1 || e.Message != "amount is missing or not a number" {
					t.Fatalf("event error %+v", e)
				}
			}
		})
	}

	t.Run("random amounts", func(t *testing.T) {
		// Up to 15 significant digits, from about 1e-21 to 1e21, some
		// with an exponent: all of them parse exactly.
		rng := rand.New(rand.NewPCG(1, 2))
		amounts := make([]string, 4000)
		for i := range amounts {
			digits := make([]byte, 1+rng.IntN(15))
			for j := range digits {
				digits[j] = byte('0' + rng.IntN(10))
			}
			point := rng.IntN(len(digits) + 1)
			s := strings.TrimLeft(string(digits[:point]), "0")
			if s == "" {
				s = "0"
			}
			if point < len(digits) {
				s += "." + string(digits[point:])
			}
			if rng.IntN(2) == 0 {
				s = "-" + s
			}
			if rng.IntN(4) == 0 {
				s += fmt.Sprintf("e%d", rng.IntN(13)-6)
			}
			amounts[i] = s
		}
		r, _ := sameOrdersMap(t, wat, goMap, ordersWithAmounts(amounts...))
		if r.errs != nil {
			t.Fatalf("errors %v", r.errs)
		}
	})

	t.Run("empty batch", func(t *testing.T) {
		// The host calls no module for an empty batch;
		// TestOrdersMapWATBadInput calls the WAT map with one.
		r, _ := sameOrdersMap(t, wat, goMap, nil)
		if len(r.out) != 0 || r.errs != nil {
			t.Fatalf("%v", r)
		}
	})

	t.Run("escapes grow the result", func(t *testing.T) {
		// A region of control characters takes 6 bytes per byte in the
		// JSON: 5 events of 10 KB make 350 KB of output, beyond the 218 KB
		// aegis_alloc reserved for 64 KB of input, so aegis_map grows memory.
		in := orders.Events(5, 1)
		for i := range in {
			in[i].Source = "a:b:c:" + strings.Repeat("\x01", 10000+i) + "\"\\é:e"
		}
		r, _ := sameOrdersMap(t, wat, goMap, in)
		if len(r.out) != len(in) || len(mustJSON(t, r.out[0].Data)) < 60000 {
			t.Fatalf("%d events", len(r.out))
		}
	})
}

// TestOrdersMapWATDifferences: the amounts the WAT map does not parse, where
// the Go map gives a result: more significant digits than an exact
// f64(m) / 10^k can take, and a number whose first 19 digits cannot tell
// whether it overflows float64. They fail alone, with code 2.
func TestOrdersMapWATDifferences(t *testing.T) {
	wat, goMap := loadOrdersMaps(t)
	in := append(orders.Events(1, 1), ordersWithAmounts("12345678.901234567", "0.1000000000000000000001", "90071992547409.93",
		"1.7976931348623158079e308")...)
	g := runOrdersMap(t, goMap, in)
	if len(g.out) != len(in) || g.errs != nil {
		t.Fatalf("go: %d events, %v", len(g.out), g.errs)
	}
	w := runOrdersMap(t, wat, in)
	want := []engine.EventError{
		{Index: 1, Code: 2, Message: "amount has more digits than this plugin handles"},
		{Index: 2, Code: 2, Message: "amount has more digits than this plugin handles"},
		{Index: 3, Code: 2, Message: "amount has more digits than this plugin handles"},
		{Index: 4, Code: 2, Message: "amount is out of the range this plugin handles"},
	}
	if len(w.out) != 1 || !reflect.DeepEqual(w.errs, want) {
		t.Fatalf("wat: %d events, %+v", len(w.out), w.errs)
	}
}

// TestOrdersMapWATLimitedMemory: with too little memory for aegis_alloc's
// generous result buffer, the WAT map still maps, growing memory as it
// writes; when memory cannot hold the result, the call fails with status 3
// and the instance stays.
func TestOrdersMapWATLimitedMemory(t *testing.T) {
	h, _ := newHost(t)
	ctx := context.Background()
	in := orders.Events(300, 1)
	want := runOrdersMap(t, load(t, h, "orders/map", host.StepConfig{Limits: goOrdersMapLimits}), in)

	p := load(t, h, "wat/orders_map", host.StepConfig{Name: "small", Limits: host.Limits{MemoryPages: 5}})
	got := runOrdersMap(t, p, in)
	if len(got.out) != len(want.out) || got.errs != nil {
		t.Fatalf("%d events, %v", len(got.out), got.errs)
	}
	for i := range want.out {
		if got.out[i].Type != want.out[i].Type || !reflect.DeepEqual(decodeDataObject(t, got.out[i].Data), decodeDataObject(t, want.out[i].Data)) {
			t.Fatalf("event %d: %s, go %s", i, got.out[i].Data, want.out[i].Data)
		}
	}

	// 4 events of 10 KB whose region takes 60 KB escaped: 41 KB of input
	// fit in 3 pages, 280 KB of output do not.
	big := orders.Events(4, 1)
	for i := range big {
		big[i].Source = "a:b:c:" + strings.Repeat("\x01", 10000)
	}
	p = load(t, h, "wat/orders_map", host.StepConfig{Name: "tiny", Limits: host.Limits{MemoryPages: 3}})
	for round := 0; round < 2; round++ {
		_, err := p.Process(ctx, big, nil)
		if !errors.Is(err, host.ErrFailed) || !strings.Contains(err.Error(), "result does not fit in memory") {
			t.Fatalf("error %v; want the plugin's failure", err)
		}
	}
	if out, err := p.Process(ctx, in[:10], nil); err != nil || len(out) != 10 {
		t.Fatalf("a small batch after: %d events, %v", len(out), err)
	}
	if st := p.Stats(); st.Created != 1 || st.Discarded != 0 {
		t.Fatalf("instances created %d, discarded %d; want 1, 0", st.Created, st.Discarded)
	}
}

// TestOrdersMapWATConfig: like the SDK map, the WAT map takes no
// configuration.
func TestOrdersMapWATConfig(t *testing.T) {
	h, _ := newHost(t)
	for _, name := range []string{"wat/orders_map", "orders/map"} {
		_, err := h.LoadFile(context.Background(), plugintest.Path(t, name), host.StepConfig{Config: []byte(`{"x":1}`), Limits: goOrdersMapLimits})
		if !errors.Is(err, host.ErrConfig) || !strings.Contains(err.Error(), "this plugin takes no configuration") {
			t.Errorf("%s: %v", name, err)
		}
		p, err := h.LoadFile(context.Background(), plugintest.Path(t, name), host.StepConfig{Config: []byte(" { } "), Limits: goOrdersMapLimits})
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else {
			p.Close(context.Background())
		}
	}
}

// TestOrdersMapWATBadInput calls the module directly, as no conforming host
// would: an empty batch gives an empty result, and a malformed batch a
// status 1 result, never a trap.
func TestOrdersMapWATBadInput(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, plugintest.Bytes(t, "wat/orders_map"))
	if err != nil {
		t.Fatal(err)
	}
	call := func(name string, args ...uint64) uint64 {
		t.Helper()
		r, err := mod.ExportedFunction(name).Call(ctx, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r[0]
	}
	buf := uint32(call("aegis_alloc", 65536))
	mapRaw := func(ptr uint32, in []byte) []byte {
		t.Helper()
		if !mod.Memory().Write(buf, in) {
			t.Fatal("write")
		}
		rp, rl := abi.Unpack(call("aegis_map", uint64(ptr), uint64(len(in))))
		b, ok := mod.Memory().Read(rp, rl)
		if !ok {
			t.Fatalf("result %#x+%d outside memory", rp, rl)
		}
		return b
	}

	if r := mapRaw(buf, []byte{0, 0, 0, 0}); !bytes.Equal(r, make([]byte, 12)) {
		t.Fatalf("empty batch: % x", r)
	}

	e := orders.Event(1, 1)
	rec := make([]byte, engine.ABIRecordSize(&e))
	engine.PutABIRecord(rec, &e, 0)
	batch := func(count uint32, recs ...[]byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, count)
		for _, r := range recs {
			b = append(b, r...)
		}
		return b
	}
	patched := func(off int, v uint32) []byte {
		r := bytes.Clone(rec)
		binary.LittleEndian.PutUint32(r[off:], v)
		return r
	}
	// A good batch decodes.
	res, err := abi.ParseResult(mapRaw(buf, batch(2, rec, rec)), abi.BodyRecords, 2)
	if err != nil || res.Status != abi.StatusOK || res.Count != 2 || res.ErrorCount != 0 {
		t.Fatalf("good batch: %+v, %v", res, err)
	}
	tests := []struct {
		name string
		ptr  uint32
		in   []byte
		msg  string
	}{
		{"not in the buffer", buf + 1, batch(0), "input is not in the aegis_alloc buffer"},
		{"no count", buf, []byte{0, 0}, "batch shorter than its count"},
		{"count too big", buf, batch(10, rec), "batch shorter than its count"},
		{"record too short", buf, batch(1, patched(0, 47)), "record size out of bounds"},
		{"record past the end", buf, batch(1, patched(0, uint32(len(rec)+100))), "record size out of bounds"},
		{"record cut short", buf, batch(2, rec, rec[:40], make([]byte, 8)), "record size out of bounds"},
		{"type too long", buf, batch(1, patched(36, 1<<31)), "record fields longer than the record"},
		{"data too long", buf, batch(1, patched(44, uint32(len(rec)))), "record fields longer than the record"},
		{"lengths wrap", buf, batch(1, patched(40, 0xffffffff)), "record fields longer than the record"},
		{"trailing bytes", buf, batch(1, rec, []byte{1}), "bytes after the last record"},
	}
	for _, tt := range tests {
		res, err := abi.ParseResult(mapRaw(tt.ptr, tt.in), abi.BodyRecords, 0)
		if err != nil || res.Status != abi.StatusBadInput || res.Message() != tt.msg {
			t.Errorf("%s: %+v %q, %v; want status 1 %q", tt.name, res, res.Message(), err, tt.msg)
		}
	}

	// The instance is still good.
	res, err = abi.ParseResult(mapRaw(buf, batch(1, rec)), abi.BodyRecords, 1)
	if err != nil || res.Status != abi.StatusOK || res.Count != 1 {
		t.Fatalf("after bad input: %+v, %v", res, err)
	}
}
