package sdk_test

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/aegis-streaming/aegis/sdk"
)

// decodeObject decodes a JSON object with encoding/json.
func decodeObject(t testing.TB, doc []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("decoding %s: %v", doc, err)
	}
	return m
}

func TestEditorApply(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		edits func(ed *sdk.Editor)
		want  string // the exact output
	}{
		{name: "no edits", doc: `{"a":1,"b":[1,2]}`, edits: func(ed *sdk.Editor) {},
			want: `{"a":1,"b":[1,2]}`},
		{name: "no edits on an empty object", doc: `{}`, edits: func(ed *sdk.Editor) {}, want: `{}`},
		{name: "replace keeps the position (first)", doc: `{"a":1,"b":2,"c":3}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("a", 10) },
			want:  `{"a":10,"b":2,"c":3}`},
		{name: "replace keeps the position (middle)", doc: `{"a":1,"b":2,"c":3}`,
			edits: func(ed *sdk.Editor) { ed.SetString("b", "two") },
			want:  `{"a":1,"b":"two","c":3}`},
		{name: "replace keeps the position (last)", doc: `{"a":1,"b":2,"c":3}`,
			edits: func(ed *sdk.Editor) { ed.SetBool("c", false) },
			want:  `{"a":1,"b":2,"c":false}`},
		{name: "replace a nested value with a scalar", doc: `{"a":{"x":[1,{"y":2}]},"b":2}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("a", 0) },
			want:  `{"a":0,"b":2}`},
		{name: "new keys come last, in order", doc: `{"a":1}`,
			edits: func(ed *sdk.Editor) { ed.SetString("z", "x").SetBool("y", true).SetInt("m", -3) },
			want:  `{"a":1,"z":"x","y":true,"m":-3}`},
		{name: "new and replaced mixed", doc: `{"a":1,"b":2}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("new", 1).SetInt("b", 20).SetInt("new2", 2).SetInt("a", 10) },
			want:  `{"a":10,"b":20,"new":1,"new2":2}`},
		{name: "set on an empty object", doc: `{}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("a", 1) },
			want:  `{"a":1}`},
		{name: "delete the first", doc: `{"a":1,"b":2,"c":3}`,
			edits: func(ed *sdk.Editor) { ed.Delete("a") },
			want:  `{"b":2,"c":3}`},
		{name: "delete the middle", doc: `{"a":1,"b":2,"c":3}`,
			edits: func(ed *sdk.Editor) { ed.Delete("b") },
			want:  `{"a":1,"c":3}`},
		{name: "delete the last", doc: `{"a":1,"b":2,"c":3}`,
			edits: func(ed *sdk.Editor) { ed.Delete("c") },
			want:  `{"a":1,"b":2}`},
		{name: "delete everything", doc: `{"a":1,"b":2}`,
			edits: func(ed *sdk.Editor) { ed.Delete("b").Delete("a") },
			want:  `{}`},
		{name: "delete a missing key", doc: `{"a":1}`,
			edits: func(ed *sdk.Editor) { ed.Delete("x") },
			want:  `{"a":1}`},
		{name: "delete then set others", doc: `{"a":1,"b":2}`,
			edits: func(ed *sdk.Editor) { ed.Delete("a").SetInt("c", 3) },
			want:  `{"b":2,"c":3}`},
		{name: "only top-level keys", doc: `{"a":{"b":1}}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("b", 2).Delete("x") },
			want:  `{"a":{"b":1},"b":2}`},
		{name: "white space between members is dropped", doc: " {\n \"a\" : [1, 2] ,\t\"b\":2 }\n",
			edits: func(ed *sdk.Editor) { ed.SetInt("b", 3) },
			want:  `{"a":[1, 2],"b":3}`},
		{name: "an escaped key is replaced, spelled as it was", doc: `{"\u0061":1,"b":2}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("a", 2) },
			want:  `{"\u0061":2,"b":2}`},
		{name: "an escaped key is deleted", doc: `{"a\"b":1,"c":2}`,
			edits: func(ed *sdk.Editor) { ed.Delete(`a"b`) },
			want:  `{"c":2}`},
		{name: "a new key is escaped", doc: `{}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("a\"b\\c\n", 1) },
			want:  `{"a\"b\\c\n":1}`},
		{name: "a key's spelling is not its text", doc: `{"\n":1}`,
			edits: func(ed *sdk.Editor) { ed.SetInt(`\n`, 2) },
			want:  `{"\n":1,"\\n":2}`},
		{name: "strings are escaped", doc: `{"a":1}`,
			edits: func(ed *sdk.Editor) { ed.SetString("a", "x\"y\\z\n\x01é😀\xff") },
			want:  `{"a":"x\"y\\z\n\u0001é😀\ufffd"}`},
		{name: "ints", doc: `{}`,
			edits: func(ed *sdk.Editor) {
				ed.SetInt("zero", 0).SetInt("max", math.MaxInt64).SetInt("min", math.MinInt64)
			},
			want: `{"zero":0,"max":9223372036854775807,"min":-9223372036854775808}`},
		{name: "floats", doc: `{}`,
			edits: func(ed *sdk.Editor) {
				ed.SetFloat("a", 1.5).SetFloat("b", -0.25).SetFloat("c", 1e21).SetFloat("d", 1e-7).
					SetFloat("e", 3).SetFloat("f", math.MaxFloat64).SetFloat("g", math.SmallestNonzeroFloat64).
					SetFloat("h", 0.1)
			},
			want: `{"a":1.5,"b":-0.25,"c":1e+21,"d":1e-07,"e":3,"f":1.7976931348623157e+308,"g":5e-324,"h":0.1}`},
		{name: "NaN and infinities become null", doc: `{"a":1}`,
			edits: func(ed *sdk.Editor) {
				ed.SetFloat("a", math.NaN()).SetFloat("b", math.Inf(1)).SetFloat("c", math.Inf(-1))
			},
			want: `{"a":null,"b":null,"c":null}`},
		{name: "bools", doc: `{"t":false}`,
			edits: func(ed *sdk.Editor) { ed.SetBool("t", true).SetBool("f", false) },
			want:  `{"t":true,"f":false}`},
		{name: "raw values", doc: `{"a":1}`,
			edits: func(ed *sdk.Editor) { ed.SetRaw("a", []byte(`{"x":[1,null]}`)).SetRaw("b", []byte(`null`)) },
			want:  `{"a":{"x":[1,null]},"b":null}`},

		// A key edited more than once: the last edit wins, the key keeps
		// its place in the document, or the place of its first edit when
		// it is new.
		{name: "set twice, new key", doc: `{}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("a", 1).SetInt("a", 2) },
			want:  `{"a":2}`},
		{name: "set twice, existing key", doc: `{"a":0,"b":1}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("a", 1).SetString("a", "x") },
			want:  `{"a":"x","b":1}`},
		{name: "set then delete, existing key", doc: `{"a":0,"b":1}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("a", 1).Delete("a") },
			want:  `{"b":1}`},
		{name: "set then delete, new key", doc: `{"b":1}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("a", 1).Delete("a") },
			want:  `{"b":1}`},
		{name: "delete then set, existing key", doc: `{"a":0,"b":1}`,
			edits: func(ed *sdk.Editor) { ed.Delete("a").SetInt("a", 5) },
			want:  `{"a":5,"b":1}`},
		{name: "new key set again after another", doc: `{}`,
			edits: func(ed *sdk.Editor) { ed.SetInt("x", 1).SetInt("y", 2).SetInt("x", 3) },
			want:  `{"x":3,"y":2}`},
		{name: "deleted twice", doc: `{"a":0,"b":1}`,
			edits: func(ed *sdk.Editor) { ed.Delete("a").Delete("a") },
			want:  `{"b":1}`},
	}
	var shared sdk.Editor // reused by every case: Reset must forget the previous edits
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, ed := range []*sdk.Editor{new(sdk.Editor), &shared} {
				tt.edits(ed.Reset())
				out, ok := ed.Apply([]byte(tt.doc))
				if !ok {
					t.Fatalf("Apply(%s) not ok", tt.doc)
				}
				if string(out) != tt.want {
					t.Fatalf("Apply(%s) = %s, want %s", tt.doc, out, tt.want)
				}
				if !json.Valid(out) {
					t.Fatalf("output %s is not valid JSON", out)
				}
				if got, want := decodeObject(t, out), decodeObject(t, []byte(tt.want)); !reflect.DeepEqual(got, want) {
					t.Errorf("output decodes to %v, want %v", got, want)
				}
				// Applying again gives the same output.
				if again, ok := ed.Apply([]byte(tt.doc)); !ok || string(again) != tt.want {
					t.Errorf("second Apply = %s, %t", again, ok)
				}
			}
		})
	}
}

func TestEditorApplyNotAnObject(t *testing.T) {
	for _, doc := range []string{``, ` `, `[1]`, `"s"`, `1`, `null`, `true`, `{"a":1`, `{"a"}`, `{"a":1,}`, `{,}`} {
		var ed sdk.Editor
		ed.SetInt("a", 1)
		if out, ok := ed.Apply([]byte(doc)); ok || out != nil {
			t.Errorf("Apply(%q) = %q, %t; want nil, false", doc, out, ok)
		}
		// The editor still works afterwards.
		if out, ok := ed.Apply([]byte(`{}`)); !ok || string(out) != `{"a":1}` {
			t.Errorf("Apply({}) after a failure = %s, %t", out, ok)
		}
	}
}

// TestEditorReuse applies one editor to many documents and checks every
// output against encoding/json.
func TestEditorReuse(t *testing.T) {
	var ed sdk.Editor
	docs := []string{`{"amount":1.5,"type":"a"}`, `{}`, `{"type":"b","extra":[1,2,3]}`, `{"region":"x"}`}
	for i := range 200 {
		doc := []byte(docs[i%len(docs)])
		ed.Reset().SetInt("n", int64(i)).SetString("region", "eu").Delete("extra")
		if i%3 == 0 {
			ed.SetFloat("ratio", float64(i)/7)
		}
		out, ok := ed.Apply(doc)
		if !ok || !json.Valid(out) {
			t.Fatalf("Apply #%d = %s, %t", i, out, ok)
		}
		want := decodeObject(t, doc)
		delete(want, "extra")
		want["n"] = float64(i)
		want["region"] = "eu"
		if i%3 == 0 {
			want["ratio"] = float64(i) / 7
		}
		if got := decodeObject(t, out); !reflect.DeepEqual(got, want) {
			t.Fatalf("Apply #%d = %v, want %v", i, got, want)
		}
	}
}

// TestEditorAllocs checks that an Editor reused across events allocates
// nothing once its buffers have grown.
func TestEditorAllocs(t *testing.T) {
	var ed sdk.Editor
	docs := [][]byte{
		[]byte(`{"amount":316.76,"id":"evt-0000000004","source":"urn:shop:checkout:eu-west-1","type":"order.created"}`),
		[]byte(`{"amount":79.19,"id":"evt-0000000001","type":"order.paid","tags":["a","b"]}`),
		[]byte(`{}`),
	}
	tags := []byte(`["x","y"]`)
	run := func() {
		for _, d := range docs {
			out, ok := ed.Reset().
				SetString("type", "ORDER.CREATED").
				SetInt("amount_cents", 31676).
				SetFloat("ratio", 0.25).
				SetFloat("bad", math.NaN()).
				SetBool("ok", true).
				SetRaw("tags", tags).
				SetString("note", "a \"quoted\"\nline é").
				Delete("id").
				Apply(d)
			if !ok || len(out) == 0 {
				panic("Apply failed")
			}
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("Editor allocates %v times per run, want 0", n)
	}
}

// TestEditorReappliesItsOwnOutput: the result of Apply can be edited again.
func TestEditorReappliesItsOwnOutput(t *testing.T) {
	var ed sdk.Editor
	doc, _ := ed.Reset().SetInt("a", 1).Apply([]byte(`{"x":"long enough to matter","y":[1,2,3]}`))
	for i := 0; i < 3; i++ {
		var ok bool
		doc, ok = ed.Reset().SetInt("b", int64(i)).Apply(doc)
		if !ok {
			t.Fatalf("round %d: not an object", i)
		}
	}
	if string(doc) != `{"x":"long enough to matter","y":[1,2,3],"a":1,"b":2}` {
		t.Fatalf("got %s", doc)
	}
}
