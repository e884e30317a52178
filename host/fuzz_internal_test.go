package host

import (
	"testing"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/orders"
)

// FuzzDecodeOutputs feeds any bytes to the host's decoding of a map's or a
// finish's result, as a hostile module would return them: it must never
// panic, and every event it accepts must be a valid event.
func FuzzDecodeOutputs(f *testing.F) {
	in := orders.Events(4, 1)
	in[1].Metadata = map[string]string{"k": "v"}
	var w abi.ResultWriter
	w.Reset()
	for i := range in {
		rec := make([]byte, engine.ABIRecordSize(&in[i]))
		engine.PutABIRecord(rec, &in[i], uint32(i))
		w.Added(append(w.Buffer(), rec...), 1)
	}
	w.AddError(2, 7, "odd")
	f.Add(append([]byte(nil), w.Finish()...), uint8(4), false)
	w.Reset()
	f.Add(append([]byte(nil), w.Fail(abi.StatusFailed, "no")...), uint8(1), true)

	f.Fuzz(func(t *testing.T, region []byte, n uint8, finish bool) {
		inputs := in[:min(int(n), len(in))]
		r, err := abi.ParseResult(region, abi.BodyRecords, len(inputs))
		if err != nil || r.Status != abi.StatusOK {
			return
		}
		inst := &instance{
			p:       &Plugin{name: "fuzz"},
			types:   map[string]engine.EventType{},
			sources: map[string]string{},
		}
		var out []engine.Event
		if finish {
			out, err = inst.decodeRecords(&r, nil, nil, false, 1000, abi.ExportFinish, 1)
		} else {
			errs := inst.eventErrors(&r, len(inputs))
			out, err = inst.decodeRecords(&r, inputs, nil, errs != nil, 0, abi.ExportMap, 1)
		}
		if err != nil {
			return
		}
		for i := range out {
			if err := out[i].Validate(); err != nil {
				t.Fatalf("accepted an invalid event %d: %v", i, err)
			}
			if !finish && out[i].ID.IsZero() {
				t.Fatalf("map output %d has no id", i) // a finish's zero ID is the aggregation's to derive
			}
		}
	})
}
