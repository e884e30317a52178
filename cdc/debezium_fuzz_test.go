package cdc_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/engine"
)

// FuzzParseDebezium checks that no input makes ParseDebezium panic, and
// that a change it parses makes a valid event that reads back as the same
// change.
func FuzzParseDebezium(f *testing.F) {
	for _, s := range []string{
		pgEnvelope("c", "null", `{"id":7,"status":"paid","total":12.5}`),
		pgEnvelope("u", `{"id":7}`, `{"id":7,"tags":["a","b"],"doc":{"k":null}}`),
		wrapped(pgEnvelope("d", `{"id":7}`, "null")),
		myEnvelope("r", "null", `{"id":1,"name":"caf\u00e9 \"quoted\""}`),
		`{"op":"t","source":{"table":"t"}}`,
		`{"op":"r","source":{"table":"t","snapshot":"last","lsn":"0/16B3748","txId":3},"after":{}}`,
		`{"op":"c","source":{"table":"t","ts_ms":-5},"after":{"a": [1, 2 ,3] }}`,
		`{"op":"x"}`, `{"op":"c"}`, `{"op":"c","source":{"table":5}}`, `{"payload":{}}`, `{"payload":[]}`,
		`[]`, `null`, `"op"`, ``, `{`, `{"op":"c","after":{"a":1,"a":2},"source":{"table":"\ud800"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := cdc.ParseDebezium(b)
		if err != nil {
			return
		}
		if doc := c.AppendJSON(nil); !json.Valid(doc) {
			t.Fatalf("AppendJSON of %q is not valid JSON: %s", b, doc)
		}
		e := c.Event(engine.HashEventID(b))
		back, err := cdc.FromEvent(e)
		if err != nil {
			t.Fatalf("FromEvent of %q: %v", b, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("%q: read back\n %+v\nparsed\n %+v", b, back, c)
		}
	})
}
