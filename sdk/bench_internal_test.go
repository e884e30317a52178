package sdk

import (
	"testing"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/internal/orders"
)

// encodeOrders returns a batch of n orders events as the host encodes it.
func encodeOrders(n int) []byte {
	var b []byte
	var recs []abi.Record
	for i, e := range orders.Events(n, 1) {
		raw, _ := e.Data.AsJSON()
		recs = append(recs, abi.Record{Index: uint32(i), ID: e.ID, Time: e.Time, Kind: abi.DataJSON,
			Type: []byte(e.Type), Source: []byte(e.Source), Data: raw})
	}
	return abi.AppendBatch(b, recs...)
}

// BenchmarkHandleFilter measures the SDK's side of a filter call natively:
// what a Go guest does, before the cost of Go's wasm code generation.
func BenchmarkHandleFilter(b *testing.B) {
	defer func() { filterFn = nil }()
	filterFn = func(e Event) bool { return e.Type() != "order.refunded" }
	in := encodeOrders(256)
	for b.Loop() {
		handleFilter(in)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/event")
}

// BenchmarkHandleMap measures the SDK's side of the orders map natively.
func BenchmarkHandleMap(b *testing.B) {
	defer func() { mapFn = nil }()
	var ed Editor
	var upper []byte
	mapFn = func(e Event, out *Output) error {
		amount, _ := e.Field("amount").Float()
		upper = append(upper[:0], e.Type()...)
		doc, _ := ed.Reset().SetString("type", string(upper)).SetInt("amount_cents", int64(amount*100)).SetString("region", "eu-west-1").Apply(e.Data())
		o := e.Out()
		o.SetJSON(doc)
		out.Emit(&o)
		return nil
	}
	in := encodeOrders(256)
	for b.Loop() {
		handleMap(in)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/event")
}
