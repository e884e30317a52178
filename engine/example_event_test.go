package engine_test

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/aegis-streaming/aegis/engine"
)

// An event with a JSON payload: NewEvent assigns the ID and the time.
func ExampleNewEvent() {
	orderCreated, err := engine.CustomType("order.created")
	if err != nil {
		panic(err)
	}
	data, err := engine.JSONData([]byte(`{"order":"A-17","amount":79.19}`))
	if err != nil {
		panic(err)
	}
	e := engine.NewEvent(orderCreated, "urn:shop:checkout:eu-west-1", data)
	e.SetMeta("region", "eu")

	var order struct {
		Order  string  `json:"order"`
		Amount float64 `json:"amount"`
	}
	if err := e.Data.Decode(&order); err != nil {
		panic(err)
	}
	fmt.Println("type:", e.Type, "custom:", e.Type.IsCustom())
	fmt.Println("source:", e.Source)
	fmt.Println("data:", e.Data.Kind(), e.Data)
	fmt.Println("decoded:", order.Order, order.Amount)
	fmt.Println("has id:", !e.ID.IsZero(), "version:", e.ID.Version())
	fmt.Println("has time:", e.Time != 0)
	fmt.Println("valid:", e.Validate() == nil)
	// Output:
	// type: order.created custom: true
	// source: urn:shop:checkout:eu-west-1
	// data: json {"order":"A-17","amount":79.19}
	// decoded: A-17 79.19
	// has id: true version: 7
	// has time: true
	// valid: true
}

// Filters compose: this one selects created events from any European
// checkout.
func ExampleAnd() {
	euCheckout, err := engine.SourceGlob("urn:shop:checkout:eu-*")
	if err != nil {
		panic(err)
	}
	f := engine.And(engine.TypeIs(engine.Created), euCheckout)

	events := []engine.Event{
		engine.NewEvent(engine.Created, "urn:shop:checkout:eu-west-1", engine.IntData(1)),
		engine.NewEvent(engine.Created, "urn:shop:checkout:us-east-1", engine.IntData(2)),
		engine.NewEvent(engine.Deleted, "urn:shop:checkout:eu-central-1", engine.IntData(3)),
		engine.NewEvent(engine.Created, "urn:shop:checkout:eu-central-1", engine.IntData(4)),
	}
	for i := range events {
		fmt.Printf("%-7s %-31s %t\n", events[i].Type, events[i].Source, f.Match(&events[i]))
	}
	// Output:
	// created urn:shop:checkout:eu-west-1     true
	// created urn:shop:checkout:us-east-1     false
	// deleted urn:shop:checkout:eu-central-1  false
	// created urn:shop:checkout:eu-central-1  true
}

// The JSON form of event data is tagged with its kind, so every value
// comes back as it was: an int stays an int, bytes stay bytes, a float keeps
// NaN and the infinities.
func ExampleEventData_MarshalJSON() {
	for _, d := range []engine.EventData{
		engine.NullData(),
		engine.BoolData(true),
		engine.IntData(math.MinInt64),
		engine.FloatData(0.1),
		engine.FloatData(math.Inf(-1)),
		engine.StringData("héllo"),
		engine.BytesData([]byte{0, 1, 2, 0xff}),
		engine.MustJSONData(`[1,2,3]`),
	} {
		b, err := json.Marshal(d)
		if err != nil {
			panic(err)
		}
		var back engine.EventData
		if err := json.Unmarshal(b, &back); err != nil {
			panic(err)
		}
		fmt.Println(string(b), back.Equal(d))
	}
	// Output:
	// {"kind":"null"} true
	// {"kind":"bool","value":true} true
	// {"kind":"int","value":-9223372036854775808} true
	// {"kind":"float","value":0.1} true
	// {"kind":"float","value":"-Inf"} true
	// {"kind":"string","value":"héllo"} true
	// {"kind":"bytes","value":"AAEC/w=="} true
	// {"kind":"json","value":[1,2,3]} true
}
