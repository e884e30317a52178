package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/host/conformance"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// languages are the orders workload's plugins in every language the
// repository builds: their prefix in testplugins, and the names of the
// filter, map and aggregate there.
var languages = []struct {
	name                   string
	filter, mapper, aggreg string
}{
	{"go", "orders/filter", "orders/map", "orders/aggregate"},
	{"wat", "wat/orders_filter", "wat/orders_map", "wat/orders_aggregate"},
	{"rust", "rust/orders_filter", "rust/orders_map", "rust/orders_aggregate"},
	{"assemblyscript", "as/orders_filter", "as/orders_map", "as/orders_aggregate"},
}

// TestOrdersInEveryLanguage: the orders plugins of every language pass the
// conformance suite, and give what the Go ones give on the orders
// workload: the same events out of the filter and the map (payloads equal
// as JSON), and the same window results out of the aggregate.
func TestOrdersInEveryLanguage(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	const n = 4000
	start := int64(1767225600000000000)
	in := make([]engine.Event, n)
	for i := range in {
		in[i] = orders.Generated(int64(i), start, int64(time.Millisecond))
	}
	type outputs struct{ filtered, mapped, windows []engine.Event }
	run := func(t *testing.T, filter, mapper, aggreg string) outputs {
		var o outputs
		load := func(name string) *host.Plugin {
			p, err := h.Load(ctx, plugintest.Bytes(t, name), host.StepConfig{Name: name})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close(ctx) })
			return p
		}
		f, m, a := load(filter), load(mapper), load(aggreg)
		for i := 0; i < n; i += 256 {
			batch := in[i:min(i+256, n)]
			kept, err := f.Process(ctx, batch, nil)
			if err != nil {
				t.Fatal(err)
			}
			o.filtered = append(o.filtered, kept...)
			mapped, err := m.Process(ctx, kept, nil)
			if err != nil {
				t.Fatal(err)
			}
			o.mapped = append(o.mapped, mapped...)
		}
		key, err := engine.KeyBy("type")
		if err != nil {
			t.Fatal(err)
		}
		agg, err := engine.NewAggregation(engine.AggregationConfig{Name: "totals", Key: key, Aggregator: a,
			Window: engine.WindowSpec{Kind: engine.Tumbling, Size: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(o.mapped); i += 300 {
			res, _, err := agg.Process(ctx, o.mapped[i:min(i+300, len(o.mapped))], nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			o.windows = append(o.windows, res...)
		}
		res, err := agg.Flush(ctx, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		o.windows = append(o.windows, res...)
		return o
	}
	want := run(t, languages[0].filter, languages[0].mapper, languages[0].aggreg)
	if len(want.filtered) != 3000 || len(want.mapped) != 3000 || len(want.windows) != 12 {
		t.Fatalf("the Go plugins: %d filtered, %d mapped, %d windows; want 3000, 3000 and 12 (4 seconds, 3 types)",
			len(want.filtered), len(want.mapped), len(want.windows))
	}
	for _, lang := range languages[1:] {
		t.Run(lang.name, func(t *testing.T) {
			for _, p := range []string{lang.filter, lang.mapper, lang.aggreg} {
				r := conformance.Run(ctx, h, plugintest.Bytes(t, p), conformance.Options{Name: p})
				if !r.Passed() {
					var out bytes.Buffer
					r.Write(&out)
					t.Errorf("%s fails the conformance suite:\n%s", p, &out)
				}
			}
			got := run(t, lang.filter, lang.mapper, lang.aggreg)
			for _, c := range []struct {
				step      string
				got, want []engine.Event
			}{{"filter", got.filtered, want.filtered}, {"map", got.mapped, want.mapped}, {"aggregate", got.windows, want.windows}} {
				if len(c.got) != len(c.want) {
					t.Errorf("%s: %d events, the Go plugin %d", c.step, len(c.got), len(c.want))
					continue
				}
				for i := range c.got {
					if msg := sameEvent(c.got[i], c.want[i], c.step != "aggregate"); msg != "" {
						t.Errorf("%s: event %d: %s", c.step, i, msg)
						break
					}
				}
			}
		})
	}
}

// sameEvent compares an event with the Go plugin's: type, source, time,
// metadata, the payload as JSON (key order is free), and the ID when the
// step keeps it.
func sameEvent(got, want engine.Event, sameID bool) string {
	var g, w any
	gd, _ := got.Data.AsJSON()
	wd, _ := want.Data.AsJSON()
	if err := json.Unmarshal(gd, &g); err != nil {
		return "payload: " + err.Error()
	}
	if err := json.Unmarshal(wd, &w); err != nil {
		return "Go's payload: " + err.Error()
	}
	switch {
	case got.Type != want.Type || got.Source != want.Source || got.Time != want.Time:
		return "got " + string(got.Type) + " " + got.Source + ", want " + string(want.Type) + " " + want.Source
	case !reflect.DeepEqual(g, w):
		return "payload " + string(gd) + ", want " + string(wd)
	case sameID && got.ID != want.ID:
		return "id " + got.ID.String() + ", want " + want.ID.String()
	case len(got.Metadata)+len(want.Metadata) > 0 && !reflect.DeepEqual(got.Metadata, want.Metadata):
		return "metadata differs"
	}
	return ""
}
