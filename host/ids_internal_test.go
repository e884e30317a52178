package host

import (
	"testing"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/orders"
)

// TestMapOutputIDs checks the IDs the host gives a map's outputs: a module's
// own ID is kept, a zero ID or one that an earlier output of the same input
// took is derived from the input's ID, the same on a replay; a finish's
// zero ID is left to the aggregation.
func TestMapOutputIDs(t *testing.T) {
	in := orders.Events(3, 1)
	own := engine.NewEventID()
	// Each output: the input it came from, and its ID (zero: none).
	outs := []struct {
		index uint32
		id    engine.EventID
	}{
		{0, in[0].ID}, // a copy of the input's ID: kept
		{0, in[0].ID}, // the same again: derived, 2nd output of input 0
		{0, engine.EventID{}},
		{1, engine.EventID{}}, // derived, 1st output of input 1
		{2, own},              // a module's own ID: kept
		{2, own},              // taken by the output before: derived
	}
	result := func() abi.Result {
		var w abi.ResultWriter
		w.Reset()
		for _, o := range outs {
			ev := in[o.index]
			ev.ID = o.id
			rec := make([]byte, engine.ABIRecordSize(&ev))
			engine.PutABIRecord(rec, &ev, o.index)
			w.Added(append(w.Buffer(), rec...), 1)
		}
		r, err := abi.ParseResult(append([]byte(nil), w.Finish()...), abi.BodyRecords, len(in))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	decode := func(step string) []engine.Event {
		inst := &instance{p: &Plugin{name: step}, types: map[string]engine.EventType{}, sources: map[string]string{}}
		r := result()
		out, err := inst.decodeRecords(&r, in, nil, false, 0, abi.ExportMap, 1)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := decode("enrich")
	want := []engine.EventID{
		in[0].ID,
		engine.DerivedEventID("enrich", in[0].ID, 1),
		engine.DerivedEventID("enrich", in[0].ID, 2),
		engine.DerivedEventID("enrich", in[1].ID, 0),
		own,
		engine.DerivedEventID("enrich", in[2].ID, 1),
	}
	if len(got) != len(want) {
		t.Fatalf("%d outputs, want %d", len(got), len(want))
	}
	seen := map[engine.EventID]bool{}
	for i := range want {
		if got[i].ID != want[i] {
			t.Errorf("output %d: id %s, want %s", i, got[i].ID, want[i])
		}
		if seen[got[i].ID] {
			t.Errorf("output %d: id %s given twice", i, got[i].ID)
		}
		seen[got[i].ID] = true
	}
	for i, ev := range decode("enrich") {
		if ev.ID != got[i].ID {
			t.Errorf("replay: output %d: id %s, first run %s", i, ev.ID, got[i].ID)
		}
	}
	if other := decode("other-step"); other[2].ID == got[2].ID {
		t.Errorf("two steps derived the same id %s", got[2].ID)
	}

	// A finish's zero ID stays zero: the aggregation derives it from the
	// window (engine's resultID).
	var w abi.ResultWriter
	w.Reset()
	ev := in[0]
	ev.ID = engine.EventID{}
	rec := make([]byte, engine.ABIRecordSize(&ev))
	engine.PutABIRecord(rec, &ev, 0)
	w.Added(append(w.Buffer(), rec...), 1)
	r, err := abi.ParseResult(append([]byte(nil), w.Finish()...), abi.BodyRecords, 0)
	if err != nil {
		t.Fatal(err)
	}
	inst := &instance{p: &Plugin{name: "agg"}, types: map[string]engine.EventType{}, sources: map[string]string{}}
	fin, err := inst.decodeRecords(&r, nil, nil, false, 1000, abi.ExportFinish, 1)
	if err != nil || len(fin) != 1 || !fin[0].ID.IsZero() {
		t.Fatalf("finish: %v, %d events, id %v; want one with a zero id", err, len(fin), fin)
	}
}
