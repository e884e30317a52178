package host_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/internal/plugintest"
	"github.com/aegis-streaming/aegis/sdk"
)

var benchBatches = []int{1, 16, 256, 4096}

// benchStep runs step over the orders workload in batches of n and reports
// events in per second.
func benchStep(b *testing.B, step engine.Step, n int) {
	ctx := context.Background()
	in := orders.Events(n, time.Now().UnixNano())
	out := make([]engine.Event, 0, 2*n)
	var err error
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out, err = step.Process(ctx, in, out[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}

func loadBench(b *testing.B, name string, limits host.Limits) *host.Plugin {
	b.Helper()
	h, err := host.New(host.Options{})
	if err != nil {
		b.Fatal(err)
	}
	p, err := h.LoadFile(context.Background(), plugintest.Path(b, name), host.StepConfig{Limits: limits})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// BenchmarkOrders compares the orders workload's filter and map as native
// Go steps and as wasm plugins (Go SDK, and hand-written WAT), with the
// default limits, batch by batch, in one run. (BenchmarkLimits in the
// package's internal tests compares the limits themselves.)
func BenchmarkOrders(b *testing.B) {
	type variant struct {
		name string
		step func(b *testing.B) engine.Step
	}
	plugin := func(name string, l host.Limits) func(*testing.B) engine.Step {
		return func(b *testing.B) engine.Step { return loadBench(b, name, l) }
	}
	steps := map[string][]variant{
		"filter": {
			{"native", func(*testing.B) engine.Step { return orders.Filter }},
			{"go", plugin("orders/filter", host.Limits{})},
			{"wat", plugin("wat/orders_filter", host.Limits{})},
		},
		"map": {
			{"native", func(*testing.B) engine.Step { return orders.Map }},
			{"native-lazy", func(*testing.B) engine.Step { return mapLazy }},
			{"go", plugin("orders/map", host.Limits{})},
			{"wat", plugin("wat/orders_map", host.Limits{})},
			{"wat-copy", plugin("wat/keep_all_map", host.Limits{})},
		},
	}
	for _, kind := range []string{"filter", "map"} {
		for _, v := range steps[kind] {
			b.Run(kind+"/"+v.name, func(b *testing.B) {
				step := v.step(b)
				for _, n := range benchBatches {
					b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchStep(b, step, n) })
				}
			})
		}
	}
}

// mapLazy is the workload's map as a native step written the way the Go
// SDK's plugins are: one field read and the payload edited without
// decoding it (the SDK's JSON helpers, run natively). It is the fastest
// native baseline, against which the wasm map's own cost shows.
var mapLazy = engine.MapStep{Name: "orders-map-lazy", Map: func(e *engine.Event, out []engine.Event) ([]engine.Event, error) {
	raw, ok := e.Data.AsJSON()
	if !ok {
		return out, errors.New("data is not JSON")
	}
	amount, ok := sdk.Lookup(raw, "amount").Float()
	if !ok {
		return out, errors.New("amount is missing or not a number")
	}
	typ := strings.ToUpper(string(e.Type))
	var ed sdk.Editor
	doc, ok := ed.SetString("type", typ).SetInt("amount_cents", int64(math.Round(amount*100))).SetString("region", orders.Region(e.Source)).Apply(raw)
	if !ok {
		return out, errors.New("data is not a JSON object")
	}
	return orders.Mapped(e, typ, doc, out)
}}
