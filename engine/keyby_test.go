package engine_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aegis-streaming/aegis/engine"
)

func TestKeyBy(t *testing.T) {
	id := mustParseEventID(t, "0190f3a4-5b6c-7d8e-9f00-112233445566")
	base := engine.Event{
		ID:       id,
		Type:     "order.paid",
		Source:   "urn:shop:eu-west-1",
		Metadata: map[string]string{"tenant": "acme", "empty": ""},
		Data:     engine.MustJSONData(`{"type":"x","n":1.50,"i":-7,"t":true,"f":false,"z":null,"s":"h\u00e9\"llo","o":{"a":{"b":"deep"},"arr":[1]},"dup":"first","dup":"last","e\u0073c":"escaped name","emoji":"\ud83d\ude00","lone":"a\ud800b","big":123456789012345678901234567890}`),
	}
	// JSON data decoded from its tagged form keeps invalid UTF-8 inside
	// strings, which JSONData would refuse.
	var badUTF8 engine.EventData
	if err := json.Unmarshal([]byte("{\"kind\":\"json\",\"value\":{\"k\":\"a\xffb\"}}"), &badUTF8); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		spec    string
		event   engine.Event
		want    string
		wantErr string // "" for no error
	}{
		{name: "data invalid UTF-8 reads as encoding/json does", spec: "data.k", event: engine.Event{Data: badUTF8}, want: "a\uFFFDb"},
		{name: "one group", spec: "", event: base, want: ""},
		{name: "one group for an empty event", spec: "", event: engine.Event{}, want: ""},
		{name: "type", spec: "type", event: base, want: "order.paid"},
		{name: "source", spec: "source", event: base, want: "urn:shop:eu-west-1"},
		{name: "empty source", spec: "source", event: engine.Event{Type: "t"}, want: ""},
		{name: "id", spec: "id", event: base, want: "0190f3a4-5b6c-7d8e-9f00-112233445566"},
		{name: "no id", spec: "id", event: engine.Event{Type: "t"}, wantErr: "key[id]: the event has no id"},
		{name: "metadata", spec: "meta.tenant", event: base, want: "acme"},
		{name: "empty metadata value", spec: "meta.empty", event: base, want: ""},
		{name: "missing metadata", spec: "meta.region", event: base, wantErr: `key[meta.region]: the event has no metadata "region"`},
		{name: "metadata key with dots", spec: "meta.a.b", event: engine.Event{Metadata: map[string]string{"a.b": "v"}}, want: "v"},
		{name: "data string", spec: "data.type", event: base, want: "x"},
		{name: "data number as written", spec: "data.n", event: base, want: "1.50"},
		{name: "data negative integer", spec: "data.i", event: base, want: "-7"},
		{name: "data big number as written", spec: "data.big", event: base, want: "123456789012345678901234567890"},
		{name: "data true", spec: "data.t", event: base, want: "true"},
		{name: "data false", spec: "data.f", event: base, want: "false"},
		{name: "data null", spec: "data.z", event: base, want: "null"},
		{name: "data escaped string", spec: "data.s", event: base, want: "hé\"llo"},
		{name: "data nested", spec: "data.o.a.b", event: base, want: "deep"},
		{name: "data last duplicate wins", spec: "data.dup", event: base, want: "last"},
		{name: "data escaped member name", spec: "data.esc", event: base, want: "escaped name"},
		{name: "data surrogate pair", spec: "data.emoji", event: base, want: "😀"},
		{name: "data lone surrogate", spec: "data.lone", event: base, want: "a\uFFFDb"},
		{name: "data missing", spec: "data.nope", event: base, wantErr: "key[data.nope]: data.nope is missing"},
		{name: "data nested missing", spec: "data.o.x.y", event: base, wantErr: "key[data.o.x.y]: data.o.x is missing"},
		{name: "data through a string", spec: "data.s.x", event: base, wantErr: "data.s is a string, not an object"},
		{name: "data through an array", spec: "data.o.arr.0", event: base, wantErr: "data.o.arr is an array, not an object"},
		{name: "data object", spec: "data.o", event: base, wantErr: "data.o is an object; a key must be"},
		{name: "data array", spec: "data.o.arr", event: base, wantErr: "data.o.arr is an array; a key must be"},
		{name: "data not JSON", spec: "data.x", event: engine.Event{Data: engine.StringData(`{"x":1}`)}, wantErr: "data is string data, not a JSON object"},
		{name: "data null data", spec: "data.x", event: engine.Event{}, wantErr: "data is null data, not a JSON object"},
		{name: "data JSON array", spec: "data.x", event: engine.Event{Data: engine.MustJSONData(`[{"x":1}]`)}, wantErr: "data is an array, not a JSON object"},
		{name: "data JSON string", spec: "data.x", event: engine.Event{Data: engine.MustJSONData(`"x"`)}, wantErr: "data is a string, not a JSON object"},
		{name: "data deeper than fastjson goes", spec: "data.a", event: engine.Event{Data: engine.MustJSONData(`{"a":"v","b":` + strings.Repeat("[", 400) + strings.Repeat("]", 400) + `}`)}, want: "v"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := engine.KeyBy(tt.spec)
			if err != nil {
				t.Fatalf("KeyBy(%q): %v", tt.spec, err)
			}
			e := tt.event.Clone()
			got, err := f(&e)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("key = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("key = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestKeyBySpecErrors(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		wantErr string
	}{
		{name: "unknown", spec: "region", wantErr: `unknown group_by`},
		{name: "case matters", spec: "Type", wantErr: `unknown group_by`},
		{name: "bare data", spec: "data", wantErr: `unknown group_by`},
		{name: "empty member", spec: "data.", wantErr: "member path is empty"},
		{name: "empty inner member", spec: "data.a..b", wantErr: "empty member name at position 2"},
		{name: "trailing dot", spec: "data.a.", wantErr: "empty member name at position 2"},
		{name: "empty metadata key", spec: "meta.", wantErr: "the metadata key is empty"},
		{name: "invalid UTF-8", spec: "data.\xff", wantErr: "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := engine.KeyBy(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("KeyBy(%q) = %v, want an error containing %q", tt.spec, err, tt.wantErr)
			}
			if f != nil {
				t.Errorf("KeyBy(%q) returned a function with its error", tt.spec)
			}
			if !strings.HasPrefix(err.Error(), "key[") {
				t.Errorf("error %q does not name the spec", err)
			}
		})
	}
}

func TestKeyByConcurrent(t *testing.T) {
	f, err := engine.KeyBy("data.customer.id")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				want := fmt.Sprintf("c-%d-%d", g, i)
				e := engine.Event{Data: engine.MustJSONData(`{"customer":{"id":"` + want + `","n":[1,2,3]}}`)}
				got, err := f(&e)
				if err != nil || got != want {
					t.Errorf("key = %q, %v; want %q", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// refDataKey is the key encoding/json reads for the member at path of doc:
// what KeyBy("data.<path>") must return.
func refDataKey(doc []byte, path []string) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", false
	}
	for _, m := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = obj[m]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	case nil:
		return "null", true
	}
	return "", false
}

// FuzzKeyByData checks that a data key reads every JSON document exactly as
// encoding/json does, and never panics.
func FuzzKeyByData(f *testing.F) {
	seeds := []struct{ doc, path string }{
		{`{"a":1}`, "a"},
		{`{"a":{"b":"x"}}`, "a.b"},
		{`{"a":"\ud800\u0041","b":2}`, "a"},
		{`{"\u0061":"esc"}`, "a"},
		{`{"a":1,"a":"two"}`, "a"},
		{`{"a":[1,{"b":2}]}`, "a.b"},
		{`{"a":-0.5e+10}`, "a"},
		{`{"a":"\\ud800"}`, "a"},
		{`{"a":"\udc00\ud800"}`, "a"},
		{`{"a":null,"b":true}`, "b"},
		{`["a"]`, "a"},
		{`"a"`, "a"},
		{` { "a" : "sp" } `, "a"},
	}
	for _, s := range seeds {
		f.Add(s.doc, s.path)
	}
	f.Fuzz(func(t *testing.T, doc, path string) {
		data, err := engine.JSONData([]byte(doc))
		if err != nil {
			return
		}
		key, err := engine.KeyBy("data." + path)
		if err != nil {
			return // not a valid member path
		}
		e := engine.Event{Data: data}
		got, gotErr := key(&e)
		want, ok := refDataKey([]byte(doc), strings.Split(path, "."))
		if !ok {
			if gotErr == nil {
				t.Fatalf("doc %q path %q: key %q, want an error", doc, path, got)
			}
			return
		}
		if gotErr != nil || got != want {
			t.Fatalf("doc %q path %q: key %q, %v; want %q", doc, path, got, gotErr, want)
		}
	})
}
