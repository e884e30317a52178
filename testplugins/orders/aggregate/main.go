// Command aggregate is the orders workload's aggregate step (see
// BENCHMARKS.md) written with the Go SDK: the sum of amount_cents and the
// count of the events of a group (the host groups them by type and windows
// them). It emits one event per group and window:
//
//	{"key":"ORDER.PAID","count":2,"sum_cents":15838,"start":...,"end":...}
package main

import (
	"github.com/aegis-streaming/aegis/sdk"
)

type state struct {
	Count    int64
	SumCents int64
}

var ed sdk.Editor

func init() {
	sdk.Aggregate(sdk.AggregateFuncs[state]{
		Add: func(s *state, e sdk.Event) error {
			c, ok := e.Field("amount_cents").Int()
			if !ok {
				return sdk.EventError(2, "amount_cents is missing or not an integer")
			}
			s.Count++
			s.SumCents += c
			return nil
		},
		Merge: func(s, o *state) {
			s.Count += o.Count
			s.SumCents += o.SumCents
		},
		Finish: func(key string, s *state, w sdk.Window, out *sdk.Output) error {
			doc, _ := ed.Reset().
				SetString("key", key).
				SetInt("count", s.Count).
				SetInt("sum_cents", s.SumCents).
				SetInt("start", w.Start).
				SetInt("end", w.End).
				Apply([]byte("{}"))
			o := sdk.OutEvent{Type: "order.window", Source: "aggregate"}
			o.SetJSON(doc)
			out.Emit(&o)
			return nil
		},
	})
}

func main() {}
