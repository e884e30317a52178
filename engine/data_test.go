package engine_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/aegis-streaming/aegis/engine"
)

func TestDataKind(t *testing.T) {
	tests := []struct {
		name string
		kind engine.DataKind
		num  int // the stable wire number
		want string
	}{
		{name: "null", kind: engine.KindNull, num: 0, want: "null"},
		{name: "bool", kind: engine.KindBool, num: 1, want: "bool"},
		{name: "int", kind: engine.KindInt, num: 2, want: "int"},
		{name: "float", kind: engine.KindFloat, num: 3, want: "float"},
		{name: "string", kind: engine.KindString, num: 4, want: "string"},
		{name: "bytes", kind: engine.KindBytes, num: 5, want: "bytes"},
		{name: "json", kind: engine.KindJSON, num: 6, want: "json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if int(tt.kind) != tt.num {
				t.Errorf("%s = %d, want the stable number %d", tt.want, tt.kind, tt.num)
			}
			if got := tt.kind.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			got, err := engine.ParseDataKind(tt.want)
			if err != nil || got != tt.kind {
				t.Errorf("ParseDataKind(%q) = %v, %v; want %v, nil", tt.want, got, err, tt.kind)
			}
		})
	}

	if got := engine.DataKind(99).String(); got != "kind(99)" {
		t.Errorf("DataKind(99).String() = %q, want %q", got, "kind(99)")
	}
	for _, bad := range []string{"", "INT", "Int", "integer", "kind(2)", " int"} {
		if k, err := engine.ParseDataKind(bad); err == nil {
			t.Errorf("ParseDataKind(%q) = %v, want an error", bad, k)
		}
	}
}

// dataAccessorWant is what every accessor of an EventData should report.
type dataAccessorWant struct {
	kind  engine.DataKind
	b     bool
	i     int64
	f     float64
	s     string
	bytes []byte
	json  string
}

func TestEventDataAccessors(t *testing.T) {
	tests := []struct {
		name string
		data engine.EventData
		want dataAccessorWant
	}{
		{name: "null", data: engine.NullData(), want: dataAccessorWant{kind: engine.KindNull}},
		{name: "zero value is null", data: engine.EventData{}, want: dataAccessorWant{kind: engine.KindNull}},
		{name: "true", data: engine.BoolData(true), want: dataAccessorWant{kind: engine.KindBool, b: true}},
		{name: "false", data: engine.BoolData(false), want: dataAccessorWant{kind: engine.KindBool, b: false}},
		{name: "int 0", data: engine.IntData(0), want: dataAccessorWant{kind: engine.KindInt}},
		{name: "int 1", data: engine.IntData(1), want: dataAccessorWant{kind: engine.KindInt, i: 1}},
		{name: "int -1", data: engine.IntData(-1), want: dataAccessorWant{kind: engine.KindInt, i: -1}},
		{name: "int max", data: engine.IntData(math.MaxInt64), want: dataAccessorWant{kind: engine.KindInt, i: math.MaxInt64}},
		{name: "int min", data: engine.IntData(math.MinInt64), want: dataAccessorWant{kind: engine.KindInt, i: math.MinInt64}},
		{name: "float", data: engine.FloatData(1.5), want: dataAccessorWant{kind: engine.KindFloat, f: 1.5}},
		{name: "float 1", data: engine.FloatData(1), want: dataAccessorWant{kind: engine.KindFloat, f: 1}},
		{name: "float -Inf", data: engine.FloatData(math.Inf(-1)), want: dataAccessorWant{kind: engine.KindFloat, f: math.Inf(-1)}},
		{name: "empty string", data: engine.StringData(""), want: dataAccessorWant{kind: engine.KindString}},
		{name: "string", data: engine.StringData("héllo"), want: dataAccessorWant{kind: engine.KindString, s: "héllo"}},
		{name: "nil bytes", data: engine.BytesData(nil), want: dataAccessorWant{kind: engine.KindBytes, bytes: []byte{}}},
		{name: "bytes", data: engine.BytesData([]byte{0, 1, 2, 0xff}), want: dataAccessorWant{kind: engine.KindBytes, bytes: []byte{0, 1, 2, 0xff}}},
		{name: "json object", data: engine.MustJSONData(`{"a":1}`), want: dataAccessorWant{kind: engine.KindJSON, json: `{"a":1}`}},
		{name: "json array", data: engine.MustJSONData(`[1,2]`), want: dataAccessorWant{kind: engine.KindJSON, json: `[1,2]`}},
		{name: "json true", data: engine.MustJSONData(`true`), want: dataAccessorWant{kind: engine.KindJSON, json: `true`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, w := tt.data, tt.want
			if got := d.Kind(); got != w.kind {
				t.Fatalf("Kind() = %v, want %v", got, w.kind)
			}
			if got := d.IsNull(); got != (w.kind == engine.KindNull) {
				t.Errorf("IsNull() = %t, want %t", got, w.kind == engine.KindNull)
			}
			// Each accessor answers ok only for its own kind, and the zero
			// value otherwise.
			if v, ok := d.AsBool(); ok != (w.kind == engine.KindBool) || v != w.b {
				t.Errorf("AsBool() = %t, %t; want %t, %t", v, ok, w.b, w.kind == engine.KindBool)
			}
			if v, ok := d.AsInt(); ok != (w.kind == engine.KindInt) || v != w.i {
				t.Errorf("AsInt() = %d, %t; want %d, %t", v, ok, w.i, w.kind == engine.KindInt)
			}
			if v, ok := d.AsFloat(); ok != (w.kind == engine.KindFloat) || math.Float64bits(v) != math.Float64bits(w.f) {
				t.Errorf("AsFloat() = %g, %t; want %g, %t", v, ok, w.f, w.kind == engine.KindFloat)
			}
			if v, ok := d.AsString(); ok != (w.kind == engine.KindString) || v != w.s {
				t.Errorf("AsString() = %q, %t; want %q, %t", v, ok, w.s, w.kind == engine.KindString)
			}
			v, ok := d.AsBytes()
			if ok != (w.kind == engine.KindBytes) || !bytes.Equal(v, w.bytes) || (ok && v == nil) {
				t.Errorf("AsBytes() = %#v, %t; want %#v, %t", v, ok, w.bytes, w.kind == engine.KindBytes)
			}
			if !ok && v != nil {
				t.Errorf("AsBytes() = %#v for %v data, want nil", v, w.kind)
			}
			j, ok := d.AsJSON()
			if ok != (w.kind == engine.KindJSON) || string(j) != w.json {
				t.Errorf("AsJSON() = %q, %t; want %q, %t", j, ok, w.json, w.kind == engine.KindJSON)
			}
			if !ok && j != nil {
				t.Errorf("AsJSON() = %q for %v data, want nil", j, w.kind)
			}
			if err := d.Validate(); err != nil {
				t.Errorf("Validate(): %v", err)
			}
		})
	}
}

func TestEventDataNoConversions(t *testing.T) {
	if f, ok := engine.IntData(3).AsFloat(); ok {
		t.Errorf("IntData(3).AsFloat() = %g, true; an int must not convert to a float", f)
	}
	if i, ok := engine.FloatData(3).AsInt(); ok {
		t.Errorf("FloatData(3).AsInt() = %d, true; a float must not convert to an int", i)
	}
	if b, ok := engine.IntData(1).AsBool(); ok || b {
		t.Errorf("IntData(1).AsBool() = %t, %t; want false, false", b, ok)
	}
	if s, ok := engine.MustJSONData(`"x"`).AsString(); ok {
		t.Errorf("JSON string .AsString() = %q, true; JSON data is not string data", s)
	}
	if b, ok := engine.StringData("x").AsBytes(); ok {
		t.Errorf("StringData.AsBytes() = %q, true; want false", b)
	}
	if j, ok := engine.BytesData([]byte(`{}`)).AsJSON(); ok {
		t.Errorf("BytesData.AsJSON() = %q, true; bytes are never JSON", j)
	}
}

func TestEventDataSize(t *testing.T) {
	tests := []struct {
		name string
		data engine.EventData
		want int
	}{
		{name: "null", data: engine.NullData(), want: 0},
		{name: "bool", data: engine.BoolData(true), want: 1},
		{name: "int", data: engine.IntData(math.MinInt64), want: 8},
		{name: "float", data: engine.FloatData(0.1), want: 8},
		{name: "empty string", data: engine.StringData(""), want: 0},
		{name: "string in bytes not runes", data: engine.StringData("héllo"), want: 6},
		{name: "empty bytes", data: engine.BytesData(nil), want: 0},
		{name: "bytes", data: engine.BytesData(make([]byte, 1000)), want: 1000},
		{name: "json", data: engine.MustJSONData(`{"a": [1, 2]}`), want: 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.data.Size(); got != tt.want {
				t.Errorf("Size() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestEventDataEqual(t *testing.T) {
	otherNaN := math.Float64frombits(math.Float64bits(math.NaN()) + 1) // another quiet NaN
	tests := []struct {
		name string
		a, b engine.EventData
		want bool
	}{
		{name: "null and zero value", a: engine.NullData(), b: engine.EventData{}, want: true},
		{name: "true and true", a: engine.BoolData(true), b: engine.BoolData(true), want: true},
		{name: "true and false", a: engine.BoolData(true), b: engine.BoolData(false)},
		{name: "false and null", a: engine.BoolData(false), b: engine.NullData()},
		{name: "bool true and int 1", a: engine.BoolData(true), b: engine.IntData(1)},
		{name: "int and int", a: engine.IntData(-7), b: engine.IntData(-7), want: true},
		{name: "int and other int", a: engine.IntData(1), b: engine.IntData(2)},
		{name: "int 0 and null", a: engine.IntData(0), b: engine.NullData()},
		{name: "int 1 and float 1", a: engine.IntData(1), b: engine.FloatData(1)},
		{name: "float and float", a: engine.FloatData(0.1), b: engine.FloatData(0.1), want: true},
		{name: "NaN and NaN", a: engine.FloatData(math.NaN()), b: engine.FloatData(math.NaN()), want: true},
		{name: "NaN and another NaN payload", a: engine.FloatData(math.NaN()), b: engine.FloatData(otherNaN)},
		{name: "0 and -0 differ by sign bit", a: engine.FloatData(0), b: engine.FloatData(math.Copysign(0, -1))},
		{name: "+Inf and +Inf", a: engine.FloatData(math.Inf(1)), b: engine.FloatData(math.Inf(1)), want: true},
		{name: "+Inf and -Inf", a: engine.FloatData(math.Inf(1)), b: engine.FloatData(math.Inf(-1))},
		{name: "strings", a: engine.StringData("é"), b: engine.StringData("é"), want: true},
		{name: "different strings", a: engine.StringData("e"), b: engine.StringData("é")},
		{name: "empty string and null", a: engine.StringData(""), b: engine.NullData()},
		{name: "string and bytes of the same content", a: engine.StringData("ab"), b: engine.BytesData([]byte("ab"))},
		{name: "bytes", a: engine.BytesData([]byte{1, 2}), b: engine.BytesData([]byte{1, 2}), want: true},
		{name: "nil and empty bytes", a: engine.BytesData(nil), b: engine.BytesData([]byte{}), want: true},
		{name: "different bytes", a: engine.BytesData([]byte{1, 2}), b: engine.BytesData([]byte{1, 3})},
		{name: "bytes and JSON of the same content", a: engine.BytesData([]byte(`[1]`)), b: engine.MustJSONData(`[1]`)},
		{name: "json", a: engine.MustJSONData(`{"a":1}`), b: engine.MustJSONData(`{"a":1}`), want: true},
		{name: "json compares byte for byte", a: engine.MustJSONData(`{"a":1}`), b: engine.MustJSONData(`{"a": 1}`)},
		{name: "json 1 and int 1", a: engine.MustJSONData(`1`), b: engine.IntData(1)},
		{name: "json string and string", a: engine.MustJSONData(`"x"`), b: engine.StringData("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Equal(tt.b); got != tt.want {
				t.Errorf("%v.Equal(%v) = %t, want %t", tt.a, tt.b, got, tt.want)
			}
			if got := tt.b.Equal(tt.a); got != tt.want {
				t.Errorf("%v.Equal(%v) = %t, want %t (Equal must be symmetric)", tt.b, tt.a, got, tt.want)
			}
		})
	}
}

func TestEventDataString(t *testing.T) {
	tests := []struct {
		name string
		data engine.EventData
		want string
	}{
		{name: "null", data: engine.NullData(), want: "null"},
		{name: "true", data: engine.BoolData(true), want: "true"},
		{name: "false", data: engine.BoolData(false), want: "false"},
		{name: "int", data: engine.IntData(math.MinInt64), want: "-9223372036854775808"},
		{name: "float", data: engine.FloatData(0.1), want: "0.1"},
		{name: "whole float", data: engine.FloatData(2), want: "2"},
		{name: "big float", data: engine.FloatData(1e308), want: "1e+308"},
		{name: "NaN", data: engine.FloatData(math.NaN()), want: "NaN"},
		{name: "-Inf", data: engine.FloatData(math.Inf(-1)), want: "-Inf"},
		{name: "string is quoted", data: engine.StringData("a \"b\"\n"), want: `"a \"b\"\n"`},
		{name: "bytes show their length", data: engine.BytesData([]byte{0, 1, 2}), want: "bytes[3]"},
		{name: "json as is", data: engine.MustJSONData(`{"a": 1}`), want: `{"a": 1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.data.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEventDataMarshalJSONTaggedForm(t *testing.T) {
	tests := []struct {
		name string
		data engine.EventData
		want string
	}{
		{name: "null", data: engine.NullData(), want: `{"kind":"null"}`},
		{name: "true", data: engine.BoolData(true), want: `{"kind":"bool","value":true}`},
		{name: "false", data: engine.BoolData(false), want: `{"kind":"bool","value":false}`},
		{name: "int 1", data: engine.IntData(1), want: `{"kind":"int","value":1}`},
		{name: "int min", data: engine.IntData(math.MinInt64), want: `{"kind":"int","value":-9223372036854775808}`},
		{name: "int max", data: engine.IntData(math.MaxInt64), want: `{"kind":"int","value":9223372036854775807}`},
		{name: "float 0.1", data: engine.FloatData(0.1), want: `{"kind":"float","value":0.1}`},
		{name: "whole float stays float", data: engine.FloatData(1), want: `{"kind":"float","value":1}`},
		{name: "float 1e308", data: engine.FloatData(1e308), want: `{"kind":"float","value":1e+308}`},
		{name: "float -0", data: engine.FloatData(math.Copysign(0, -1)), want: `{"kind":"float","value":-0}`},
		{name: "NaN", data: engine.FloatData(math.NaN()), want: `{"kind":"float","value":"NaN"}`},
		{name: "+Inf", data: engine.FloatData(math.Inf(1)), want: `{"kind":"float","value":"+Inf"}`},
		{name: "-Inf", data: engine.FloatData(math.Inf(-1)), want: `{"kind":"float","value":"-Inf"}`},
		{name: "string", data: engine.StringData("héllo"), want: `{"kind":"string","value":"héllo"}`},
		{name: "string escapes", data: engine.StringData("a\"\\\n\x00"), want: `{"kind":"string","value":"a\"\\\n\u0000"}`},
		{name: "bytes standard base64", data: engine.BytesData([]byte{0, 1, 2, 0xff}), want: `{"kind":"bytes","value":"AAEC/w=="}`},
		{name: "empty bytes", data: engine.BytesData(nil), want: `{"kind":"bytes","value":""}`},
		{name: "json object", data: engine.MustJSONData(`{"amount":79.19}`), want: `{"kind":"json","value":{"amount":79.19}}`},
		{name: "json array", data: engine.MustJSONData(`[1,"a",null]`), want: `{"kind":"json","value":[1,"a",null]}`},
		{name: "json null", data: engine.MustJSONData(`null`), want: `{"kind":"json","value":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.data.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJSON = %s, want %s", got, tt.want)
			}
			// Through encoding/json the form is the same (these inputs are
			// compact and have no HTML characters).
			got, err = json.Marshal(tt.data)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("json.Marshal = %s, want %s", got, tt.want)
			}
		})
	}
}

// dataRoundTripCases is the set of values every JSON round trip test uses.
func dataRoundTripCases() []struct {
	name string
	data engine.EventData
} {
	return []struct {
		name string
		data engine.EventData
	}{
		{name: "null", data: engine.NullData()},
		{name: "true", data: engine.BoolData(true)},
		{name: "false", data: engine.BoolData(false)},
		{name: "int 0", data: engine.IntData(0)},
		{name: "int -1", data: engine.IntData(-1)},
		{name: "int min", data: engine.IntData(math.MinInt64)},
		{name: "int max", data: engine.IntData(math.MaxInt64)},
		{name: "int beyond float precision", data: engine.IntData(1<<53 + 1)},
		{name: "float 0", data: engine.FloatData(0)},
		{name: "float -0", data: engine.FloatData(math.Copysign(0, -1))},
		{name: "float 0.1", data: engine.FloatData(0.1)},
		{name: "float 1", data: engine.FloatData(1)},
		{name: "float 1e308", data: engine.FloatData(1e308)},
		{name: "float max", data: engine.FloatData(math.MaxFloat64)},
		{name: "float smallest denormal", data: engine.FloatData(math.SmallestNonzeroFloat64)},
		{name: "float -1e-300", data: engine.FloatData(-1e-300)},
		{name: "float 1e21", data: engine.FloatData(1e21)},
		{name: "float 2^53+2", data: engine.FloatData(1<<53 + 2)},
		{name: "NaN", data: engine.FloatData(math.NaN())},
		{name: "+Inf", data: engine.FloatData(math.Inf(1))},
		{name: "-Inf", data: engine.FloatData(math.Inf(-1))},
		{name: "empty string", data: engine.StringData("")},
		{name: "accented string", data: engine.StringData("héllo wörld")},
		{name: "CJK string", data: engine.StringData("日本語のテキスト")},
		{name: "emoji string", data: engine.StringData("🎉 family: 👨‍👩‍👧")},
		{name: "string with controls and quotes", data: engine.StringData("\x00\x01\t\n\"\\/")},
		{name: "string with HTML", data: engine.StringData("<a href=\"x\">&amp;</a>")},
		{name: "string with line separators", data: engine.StringData("a\u2028b\u2029c")},
		{name: "string with replacement char", data: engine.StringData("\ufffd")},
		{name: "empty bytes", data: engine.BytesData([]byte{})},
		{name: "binary bytes", data: engine.BytesData([]byte{0, 1, 2, 0x7f, 0x80, 0xfe, 0xff})},
		{name: "invalid UTF-8 as bytes", data: engine.BytesData([]byte("\xff\xfe\xc3"))},
		{name: "all byte values", data: engine.BytesData(allByteValues())},
		{name: "json object", data: engine.MustJSONData(`{"amount":79.19,"items":[{"sku":"a"}]}`)},
		{name: "json array", data: engine.MustJSONData(`[1,2,3]`)},
		{name: "json empty array", data: engine.MustJSONData(`[]`)},
		{name: "json empty object", data: engine.MustJSONData(`{}`)},
		{name: "json string", data: engine.MustJSONData(`"text"`)},
		{name: "json number", data: engine.MustJSONData(`12345678901234567890.5e-3`)},
		{name: "json big integer kept exactly", data: engine.MustJSONData(`123456789012345678901234567890`)},
		{name: "json true", data: engine.MustJSONData(`true`)},
		{name: "json null", data: engine.MustJSONData(`null`)},
		{name: "json unicode", data: engine.MustJSONData(`{"ключ":"значение","e":"\u00e9"}`)},
	}
}

func allByteValues() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestEventDataJSONRoundTrip(t *testing.T) {
	for _, tt := range dataRoundTripCases() {
		t.Run(tt.name, func(t *testing.T) {
			check := func(how string, got engine.EventData) {
				t.Helper()
				if !got.Equal(tt.data) {
					t.Errorf("%s: got %v (%v), want %v (%v)", how, got, got.Kind(), tt.data, tt.data.Kind())
				}
				if got.Kind() != tt.data.Kind() {
					t.Errorf("%s: kind %v, want %v", how, got.Kind(), tt.data.Kind())
				}
				if f, ok := tt.data.AsFloat(); ok {
					g, _ := got.AsFloat()
					if math.Signbit(g) != math.Signbit(f) {
						t.Errorf("%s: sign bit of %g lost: got %g", how, f, g)
					}
				}
			}

			// The methods themselves.
			b, err := tt.data.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if !json.Valid(b) {
				t.Fatalf("MarshalJSON wrote invalid JSON: %s", b)
			}
			var got engine.EventData
			if err := got.UnmarshalJSON(b); err != nil {
				t.Fatalf("UnmarshalJSON(%s): %v", b, err)
			}
			check("methods", got)

			// Through encoding/json, alone and nested.
			b, err = json.Marshal(tt.data)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			var viaJSON engine.EventData
			if err := json.Unmarshal(b, &viaJSON); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", b, err)
			}
			check("encoding/json", viaJSON)

			type wrapper struct {
				Data  engine.EventData   `json:"data"`
				Ptr   *engine.EventData  `json:"ptr"`
				List  []engine.EventData `json:"list"`
				After string             `json:"after"`
			}
			in := wrapper{Data: tt.data, Ptr: &tt.data, List: []engine.EventData{tt.data, engine.IntData(1)}, After: "end"}
			b, err = json.Marshal(in)
			if err != nil {
				t.Fatalf("json.Marshal(wrapper): %v", err)
			}
			var out wrapper
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", b, err)
			}
			check("struct field", out.Data)
			if out.Ptr == nil {
				t.Fatalf("pointer field lost in %s", b)
			}
			check("pointer field", *out.Ptr)
			if len(out.List) != 2 {
				t.Fatalf("list has %d items, want 2: %s", len(out.List), b)
			}
			check("list item", out.List[0])
			if !out.List[1].Equal(engine.IntData(1)) || out.After != "end" {
				t.Errorf("neighbouring values damaged: %+v", out)
			}
		})
	}
}

func TestEventDataJSONArrayStaysJSON(t *testing.T) {
	// A JSON array must never come back as bytes (or a string), whatever
	// its content looks like.
	for _, doc := range []string{`[]`, `[1,2,3]`, `["AAEC/w=="]`, `[[]]`} {
		d := engine.MustJSONData(doc)
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var got engine.EventData
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", b, err)
		}
		if got.Kind() != engine.KindJSON {
			t.Errorf("%s came back as %v data, want json", doc, got.Kind())
		}
		if raw, _ := got.AsJSON(); string(raw) != doc {
			t.Errorf("%s came back as %s", doc, raw)
		}
	}
}

func TestEventDataUnmarshalJSONAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want engine.EventData
	}{
		{name: "JSON null is null data", in: `null`, want: engine.NullData()},
		{name: "JSON null with spaces", in: " \n null\t", want: engine.NullData()},
		{name: "null envelope", in: `{"kind":"null"}`, want: engine.NullData()},
		{name: "null envelope with null value", in: `{"kind":"null","value":null}`, want: engine.NullData()},
		{name: "value before kind", in: `{"value":5,"kind":"int"}`, want: engine.IntData(5)},
		{name: "white space around", in: " { \"kind\" : \"int\" , \"value\" : -5 } ", want: engine.IntData(-5)},
		{name: "int -0", in: `{"kind":"int","value":-0}`, want: engine.IntData(0)},
		{name: "float from a whole number", in: `{"kind":"float","value":3}`, want: engine.FloatData(3)},
		{name: "float exponent", in: `{"kind":"float","value":1E-2}`, want: engine.FloatData(0.01)},
		{name: "float Infinity spelling", in: `{"kind":"float","value":"Infinity"}`, want: engine.FloatData(math.Inf(1))},
		{name: "float -Infinity spelling", in: `{"kind":"float","value":"-Infinity"}`, want: engine.FloatData(math.Inf(-1))},
		{name: "string escapes", in: `{"kind":"string","value":"\u00e9\ud83c\udf89"}`, want: engine.StringData("é🎉")},
		{name: "bytes", in: `{"kind":"bytes","value":"AAEC/w=="}`, want: engine.BytesData([]byte{0, 1, 2, 0xff})},
		{name: "json keeps inner spacing", in: `{"kind":"json","value":[1, 2]}`, want: engine.MustJSONData(`[1, 2]`)},
		{name: "json null document", in: `{"kind":"json","value":null}`, want: engine.MustJSONData(`null`)},
		{name: "json scalar string", in: `{"kind":"json","value":"AAEC"}`, want: engine.MustJSONData(`"AAEC"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := engine.IntData(42) // whatever was there is replaced
			if err := got.UnmarshalJSON([]byte(tt.in)); err != nil {
				t.Fatalf("UnmarshalJSON(%s): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("UnmarshalJSON(%s) = %v (%v), want %v (%v)", tt.in, got, got.Kind(), tt.want, tt.want.Kind())
			}
		})
	}
}

func TestEventDataUnmarshalJSONRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "empty input", in: ``},
		{name: "truncated", in: `{"kind":"int","value":1`},
		{name: "array", in: `[]`},
		{name: "number", in: `1`},
		{name: "string", in: `"int"`},
		{name: "bool", in: `true`},
		{name: "empty object: missing kind", in: `{}`},
		{name: "missing kind", in: `{"value":1}`},
		{name: "null kind", in: `{"kind":null,"value":1}`},
		{name: "kind is a number", in: `{"kind":2,"value":1}`},
		{name: "unknown kind", in: `{"kind":"integer","value":1}`},
		{name: "empty kind", in: `{"kind":"","value":1}`},
		{name: "unknown field", in: `{"kind":"int","value":1,"unit":"ms"}`},
		{name: "unknown field only", in: `{"kind":"null","extra":true}`},
		{name: "null with value", in: `{"kind":"null","value":1}`},
		{name: "null with empty object value", in: `{"kind":"null","value":{}}`},
		{name: "null with false value", in: `{"kind":"null","value":false}`},

		{name: "bool value missing", in: `{"kind":"bool"}`},
		{name: "bool value null", in: `{"kind":"bool","value":null}`},
		{name: "bool as string", in: `{"kind":"bool","value":"true"}`},
		{name: "bool as number", in: `{"kind":"bool","value":1}`},

		{name: "int value missing", in: `{"kind":"int"}`},
		{name: "int value null", in: `{"kind":"int","value":null}`},
		{name: "int with fraction", in: `{"kind":"int","value":1.5}`},
		{name: "int with zero fraction", in: `{"kind":"int","value":1.0}`},
		{name: "int with exponent", in: `{"kind":"int","value":1e3}`},
		{name: "int overflow", in: `{"kind":"int","value":9223372036854775808}`},
		{name: "int underflow", in: `{"kind":"int","value":-9223372036854775809}`},
		{name: "int as string", in: `{"kind":"int","value":"1"}`},
		{name: "int as bool", in: `{"kind":"int","value":true}`},

		{name: "float value missing", in: `{"kind":"float"}`},
		{name: "float value null", in: `{"kind":"float","value":null}`},
		{name: "float overflow", in: `{"kind":"float","value":1e309}`},
		{name: "float lower-case nan", in: `{"kind":"float","value":"nan"}`},
		{name: "float Inf without sign", in: `{"kind":"float","value":"Inf"}`},
		{name: "float as bool", in: `{"kind":"float","value":true}`},
		{name: "float as word", in: `{"kind":"float","value":"many"}`},

		{name: "string value missing", in: `{"kind":"string"}`},
		{name: "string value null", in: `{"kind":"string","value":null}`},
		{name: "string as number", in: `{"kind":"string","value":1}`},
		{name: "string as array", in: `{"kind":"string","value":["a"]}`},

		{name: "bytes value missing", in: `{"kind":"bytes"}`},
		{name: "bytes value null", in: `{"kind":"bytes","value":null}`},
		{name: "bytes bad base64", in: `{"kind":"bytes","value":"!!!!"}`},
		{name: "bytes missing padding", in: `{"kind":"bytes","value":"AAE"}`},
		{name: "bytes URL alphabet", in: `{"kind":"bytes","value":"AAEC_w=="}`},
		{name: "bytes as array", in: `{"kind":"bytes","value":[0,1,2]}`},
		{name: "bytes as number", in: `{"kind":"bytes","value":12}`},

		{name: "json value missing", in: `{"kind":"json"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := engine.IntData(42)
			d := orig
			err := d.UnmarshalJSON([]byte(tt.in))
			if err == nil {
				t.Fatalf("UnmarshalJSON(%s) = %v (%v), want an error", tt.in, d, d.Kind())
			}
			if !strings.HasPrefix(err.Error(), "event data: ") {
				t.Errorf("error %q does not start with \"event data: \"", err)
			}
			if !d.Equal(orig) {
				t.Errorf("failed UnmarshalJSON changed the value to %v", d)
			}
			if err := json.Unmarshal([]byte(tt.in), &d); err == nil {
				t.Errorf("json.Unmarshal(%s) = %v, want an error", tt.in, d)
			}
		})
	}
}

func TestEventDataInvalidUTF8String(t *testing.T) {
	for _, s := range []string{"\xff", "abc\xc3", "\xed\xa0\x80"} {
		d := engine.StringData(s)
		if err := d.Validate(); err == nil {
			t.Errorf("StringData(%q).Validate() = nil, want an error", s)
		}
		if b, err := d.MarshalJSON(); err == nil {
			t.Errorf("StringData(%q).MarshalJSON() = %s, want an error", s, b)
		}
		if b, err := json.Marshal(d); err == nil {
			t.Errorf("json.Marshal(StringData(%q)) = %s, want an error", s, b)
		}
		// The same content is fine as bytes.
		if err := engine.BytesData([]byte(s)).Validate(); err != nil {
			t.Errorf("BytesData(%q).Validate(): %v", s, err)
		}
	}
}

func TestJSONData(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "object", in: `{"a":1}`},
		{name: "array", in: `[1,"x",null]`},
		{name: "string", in: `"x"`},
		{name: "number", in: `-1.5e10`},
		{name: "true", in: `true`},
		{name: "null", in: `null`},
		{name: "surrounding white space", in: " {\"a\": 1}\n"},

		{name: "empty", in: ``, wantErr: true},
		{name: "only white space", in: `  `, wantErr: true},
		{name: "truncated object", in: `{"a":1`, wantErr: true},
		{name: "two documents", in: `{"a":1}{"b":2}`, wantErr: true},
		{name: "two scalars", in: `1 2`, wantErr: true},
		{name: "trailing comma", in: `[1,]`, wantErr: true},
		{name: "single quotes", in: `'x'`, wantErr: true},
		{name: "bare word", in: `hello`, wantErr: true},
		{name: "NaN", in: `NaN`, wantErr: true},
		{name: "unquoted key", in: `{a:1}`, wantErr: true},
		{name: "leading zero", in: `01`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := engine.JSONData([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("JSONData(%q) = %v, want an error", tt.in, d)
				}
				if !d.IsNull() {
					t.Errorf("JSONData(%q) returned %v with its error, want null data", tt.in, d)
				}
				func() {
					defer func() {
						if recover() == nil {
							t.Errorf("MustJSONData(%q) did not panic", tt.in)
						}
					}()
					engine.MustJSONData(tt.in)
				}()
				return
			}
			if err != nil {
				t.Fatalf("JSONData(%q): %v", tt.in, err)
			}
			if d.Kind() != engine.KindJSON {
				t.Errorf("JSONData(%q).Kind() = %v, want json", tt.in, d.Kind())
			}
			if raw, _ := d.AsJSON(); string(raw) != tt.in {
				t.Errorf("AsJSON() = %q, want the document unchanged %q", raw, tt.in)
			}
			if !engine.MustJSONData(tt.in).Equal(d) {
				t.Errorf("MustJSONData(%q) differs from JSONData", tt.in)
			}
		})
	}
}

func TestEventDataDecode(t *testing.T) {
	type order struct {
		Amount float64  `json:"amount"`
		Items  []string `json:"items"`
	}
	d := engine.MustJSONData(`{"amount":79.19,"items":["a","b"]}`)
	var o order
	if err := d.Decode(&o); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if o.Amount != 79.19 || len(o.Items) != 2 || o.Items[1] != "b" {
		t.Errorf("Decode = %+v", o)
	}

	var n []int
	if err := engine.MustJSONData(`[1,2,3]`).Decode(&n); err != nil || len(n) != 3 || n[2] != 3 {
		t.Errorf("Decode array = %v, %v", n, err)
	}

	var wrong int
	if err := d.Decode(&wrong); err == nil {
		t.Error("Decode of an object into an int: want an error")
	}

	tests := []struct {
		name string
		data engine.EventData
	}{
		{name: "null", data: engine.NullData()},
		{name: "int", data: engine.IntData(1)},
		{name: "string holding JSON", data: engine.StringData(`{"amount":1}`)},
		{name: "bytes holding JSON", data: engine.BytesData([]byte(`{"amount":1}`))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			err := tt.data.Decode(&v)
			if err == nil {
				t.Fatalf("Decode of %v data = %v, want an error", tt.data.Kind(), v)
			}
			if !strings.Contains(err.Error(), tt.data.Kind().String()) {
				t.Errorf("error %q does not name the kind %v", err, tt.data.Kind())
			}
		})
	}
}

func FuzzEventDataJSON(f *testing.F) {
	for _, tt := range dataRoundTripCases() {
		b, err := tt.data.MarshalJSON()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`null`, ` null `, `{}`, `[]`, `{"kind":"null","value":null}`,
		`{"kind":"int","value":9223372036854775808}`, `{"kind":"int","value":1.0}`,
		`{"kind":"float","value":"Infinity"}`, `{"kind":"float","value":1e309}`, `{"kind":"float","value":"1"}`,
		`{"kind":"bytes","value":"AAE"}`, `{"kind":"bytes","value":"AA\nEC"}`,
		`{"kind":"json","value": [1, {"a" : null}] }`, `{"kind":"json","value":"\u00e9"}`,
		`{"kind":"string","value":"\ud800"}`, "{\"kind\":\"string\",\"value\":\"\xff\"}",
		`{"KIND":"int","Value":1}`, `{"kind":"int","kind":"bool","value":true}`,
		`{"kind":"bool","value":null}`, `{"kind":"null","value":0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1024 {
			return // big inputs find nothing new and make minimising slow
		}
		var d engine.EventData
		if err := d.UnmarshalJSON(in); err != nil {
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("UnmarshalJSON(%q) accepted %v, which does not validate: %v", in, d, err)
		}
		out, err := d.MarshalJSON()
		if err != nil {
			t.Fatalf("UnmarshalJSON(%q) accepted %v, which does not marshal: %v", in, d, err)
		}
		if !json.Valid(out) {
			t.Fatalf("MarshalJSON of %v wrote invalid JSON %q", d, out)
		}
		var back engine.EventData
		if err := back.UnmarshalJSON(out); err != nil {
			t.Fatalf("UnmarshalJSON(%q) (from input %q): %v", out, in, err)
		}
		if !back.Equal(d) {
			t.Fatalf("round trip changed the value: %q -> %v (%v) -> %q -> %v (%v)", in, d, d.Kind(), out, back, back.Kind())
		}
		if out2, err := back.MarshalJSON(); err != nil || !bytes.Equal(out2, out) {
			t.Fatalf("marshalling is not stable: %q then %q (%v)", out, out2, err)
		}
		// encoding/json hands the same bytes to UnmarshalJSON, so it must
		// agree whenever the input is one valid JSON value.
		if json.Valid(in) {
			var viaJSON engine.EventData
			if err := json.Unmarshal(in, &viaJSON); err != nil {
				t.Fatalf("UnmarshalJSON(%q) succeeded but json.Unmarshal failed: %v", in, err)
			}
			if !viaJSON.Equal(d) {
				t.Fatalf("json.Unmarshal(%q) = %v, UnmarshalJSON = %v", in, viaJSON, d)
			}
		}
	})
}
