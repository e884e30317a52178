// Package orders is the orders workload of the benchmarks:
// its events and its filter and map written as native steps, the baseline
// that WebAssembly steps are measured against.
package orders

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strings"

	"github.com/aegis-streaming/aegis/engine"
)

// Payloads are the four payloads the workload cycles through.
var Payloads = [4]string{
	`{"amount":316.76,"id":"evt-0000000004-7f3a9c2e-4b1d-4e8a-9d0c","source":"urn:shop:checkout:eu-west-1:instance-07:partition-04","type":"order.created"}`,
	`{"amount":79.19,"id":"evt-0000000001-7f3a9c2e-4b1d-4e8a-9d0c","source":"urn:shop:checkout:eu-west-1:instance-07:partition-01","type":"order.paid"}`,
	`{"amount":158.38,"id":"evt-0000000002-7f3a9c2e-4b1d-4e8a-9d0c","source":"urn:shop:checkout:eu-west-1:instance-07:partition-02","type":"order.refunded"}`,
	`{"amount":237.57,"id":"evt-0000000003-7f3a9c2e-4b1d-4e8a-9d0c","source":"urn:shop:checkout:eu-west-1:instance-07:partition-03","type":"order.shipped"}`,
}

var fields [4]struct{ typ, source string }

var data [4]engine.EventData

func init() {
	for i, p := range Payloads {
		d := engine.MustJSONData(p)
		var f struct{ Type, Source string }
		if err := d.Decode(&f); err != nil {
			panic(err)
		}
		fields[i].typ, fields[i].source = f.Type, f.Source
		data[i] = d
	}
}

// Event returns the i-th event of the workload: the payload i%4, with its
// type and source, a new id, and a time i milliseconds after start.
func Event(i int, start int64) engine.Event {
	k := i % 4
	return engine.Event{
		ID:     engine.NewEventID(),
		Type:   engine.EventType(fields[k].typ),
		Source: fields[k].source,
		Time:   start + int64(i)*1e6,
		Data:   engine.MustJSONData(Payloads[k]),
	}
}

// Generated returns the i-th event of the workload as the generator source
// makes it: like [Event], but at start + i*interval and with an ID derived
// from start and i alone, so the same generator settings always produce
// the same events.
func Generated(i, start, interval int64) engine.Event {
	k := i % 4
	var id engine.EventID
	binary.BigEndian.PutUint64(id[:8], uint64(start))
	binary.BigEndian.PutUint64(id[8:], uint64(i))
	id[6] = id[6]&0x0f | 0x80 // version 8: custom
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return engine.Event{
		ID:     id,
		Type:   engine.EventType(fields[k].typ),
		Source: fields[k].source,
		Time:   start + i*interval,
		Data:   data[k],
	}
}

// Events returns n events of the workload.
func Events(n int, start int64) []engine.Event {
	evs := make([]engine.Event, n)
	for i := range evs {
		evs[i] = Event(i, start)
	}
	return evs
}

// Filter is the workload's filter as a native step: it drops refunds.
var Filter = engine.FilterStep{Filter: engine.Not(engine.TypeIs("order.refunded"))}

// Map is the workload's map as a native step, written as a Go user would:
// decode the payload, change it, encode it (encoding/json).
var Map = engine.MapStep{Name: "orders-map", Map: func(e *engine.Event, out []engine.Event) ([]engine.Event, error) {
	var doc map[string]any
	if err := e.Data.Decode(&doc); err != nil {
		return out, err
	}
	amount, ok := doc["amount"].(float64)
	if !ok {
		return out, errors.New("amount is missing or not a number")
	}
	typ := strings.ToUpper(string(e.Type))
	doc["type"] = typ
	doc["amount_cents"] = int64(math.Round(amount * 100))
	doc["region"] = Region(e.Source)
	raw, err := json.Marshal(doc)
	if err != nil {
		return out, err
	}
	return Mapped(e, typ, raw, out)
}}

// Mapped appends to out the output of the map for e: e with the new type
// and the JSON document doc as its data.
func Mapped(e *engine.Event, typ string, doc []byte, out []engine.Event) ([]engine.Event, error) {
	data, err := engine.JSONData(doc)
	if err != nil {
		return out, err
	}
	o := e.Clone()
	o.Type = engine.EventType(typ)
	o.Data = data
	return append(out, o), nil
}

// Region is the fourth ':'-separated field of an orders source, or "".
func Region(source string) string {
	if f := strings.Split(source, ":"); len(f) > 3 {
		return f[3]
	}
	return ""
}
