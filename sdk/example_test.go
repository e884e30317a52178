package sdk_test

import (
	"fmt"

	"github.com/aegis-streaming/aegis/sdk"
)

// An Editor rewrites the top-level members of a JSON object without
// decoding it: replaced members keep their place, new ones come last, and
// one Editor is reused from event to event.
func ExampleEditor() {
	var ed sdk.Editor // keep one: it reuses its buffers
	for _, doc := range []string{
		`{"id":"o-1","amount":12.5,"type":"order.created","debug":true}`,
		`{"id":"o-2","amount":3,"type":"order.paid"}`,
	} {
		amount, _ := sdk.Lookup([]byte(doc), "amount").Float()
		out, ok := ed.Reset().
			SetString("type", "ORDER").
			SetInt("amount_cents", int64(amount*100)).
			Delete("debug").
			Apply([]byte(doc))
		fmt.Println(string(out), ok)
	}
	_, ok := ed.Apply([]byte(`[1,2]`))
	fmt.Println("an array:", ok)
	// Output:
	// {"id":"o-1","amount":12.5,"type":"ORDER","amount_cents":1250} true
	// {"id":"o-2","amount":3,"type":"ORDER","amount_cents":300} true
	// an array: false
}

// Lookup reads one member of a JSON object without decoding the rest.
func ExampleLookup() {
	doc := []byte(`{"order":{"id":"o-1","total":{"amount":12.5,"currency":"EUR"}},"tags":["a"]}`)
	currency, _ := sdk.Lookup(doc, "order").Get("total").Get("currency").String()
	amount, _ := sdk.Lookup(doc, "order").Get("total").Get("amount").Float()
	fmt.Println(currency, amount)
	fmt.Println(string(sdk.Lookup(doc, "tags").Raw()), sdk.Lookup(doc, "nope").Exists())
	// Output:
	// EUR 12.5
	// ["a"] false
}
