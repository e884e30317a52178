package sdk_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aegis-streaming/aegis/sdk"
)

// rawMember is a member of a JSON object as encoding/json reads it.
type rawMember struct {
	key   string
	value json.RawMessage
}

// objectMembers returns the members of doc, a valid JSON document, in
// order, as encoding/json's tokenizer reads them; ok is false when doc is
// not an object.
func objectMembers(t testing.TB, doc []byte) (ms []rawMember, ok bool) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber() // numbers beyond float64 are valid JSON
	tok, err := dec.Token()
	if err != nil {
		t.Fatalf("first token of %q: %v", doc, err)
	}
	if tok != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("key in %q: %v", doc, err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("value in %q: %v", doc, err)
		}
		ms = append(ms, rawMember{k.(string), v})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		t.Fatalf("end of %q: %v %v", doc, tok, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("after %q: %v", doc, err)
	}
	return ms, true
}

func hasDuplicates(ms []rawMember) bool {
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		if seen[m.key] {
			return true
		}
		seen[m.key] = true
	}
	return false
}

func compact(t testing.TB, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compacting %q: %v", raw, err)
	}
	return b.String()
}

var fuzzDocs = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":1,"b":2}`, `{"a":1,"a":2}`, `[1,2]`, `"s"`, `null`, `1`, ``,
	`{"a":{"b":[1,{"c":"}"}]},"d":-1.5e+10,"e":true,"f":false,"g":null,"h":"x\"y\\"}`,
	"\t{ \"a\" :\n[ 1 , 2 ] ,\r\"b\" : { } }\n",
	`{"\u0061":1,"a\"b":2,"\\":3,"\/":4,"\n":5,"\ud83d\ude00":6,"\ud800":7,"é":8}`,
	`{"\\\\":1}`, `{"\x":1}`, `{"a":1`, `{"a":"\u12"}`, `{"a":[}`, `{"a":1,}`, `{"":0}`,
}

// FuzzLookup checks that Lookup and Members never panic, and that on a
// valid object they agree with encoding/json.
func FuzzLookup(f *testing.F) {
	keys := []string{"a", "b", "", `a"b`, `\`, `\\`, `\n`, "\n", "😀", "\ufffd", "é", "/", `\u0061`}
	for i, d := range fuzzDocs {
		f.Add([]byte(d), keys[i%len(keys)])
	}
	f.Add([]byte(`{"\\\\":1}`), `\\\\`)
	f.Add([]byte(`{"\n":1}`), `\n`)
	f.Fuzz(func(t *testing.T, doc []byte, key string) {
		v := sdk.Lookup(doc, key)
		v.String()
		v.Float()
		v.Int()
		v.Bool()
		v.Get(key)
		var got []rawMember
		walked := sdk.Members(doc, func(k, v []byte) bool {
			if len(k) < 2 || k[0] != '"' || k[len(k)-1] != '"' {
				t.Fatalf("Members gave the key %q", k)
			}
			if len(v) == 0 {
				t.Fatalf("Members gave an empty value for %q", k)
			}
			got = append(got, rawMember{string(k), v})
			return true
		})
		// Documents are UTF-8 (ABI.md); encoding/json replaces invalid
		// bytes in keys, which Lookup does not look at.
		if !json.Valid(doc) || !utf8.Valid(doc) {
			return
		}
		want, isObject := objectMembers(t, doc)
		if !isObject {
			if walked || v.Exists() || len(got) != 0 {
				t.Fatalf("non-object %q: Members %t with %d members, Lookup %q", doc, walked, len(got), v.Raw())
			}
			return
		}
		if !walked {
			t.Fatalf("Members(%q) = false on a valid object", doc)
		}
		if len(got) != len(want) {
			t.Fatalf("Members(%q) gave %d members, encoding/json %d", doc, len(got), len(want))
		}
		for i := range got {
			var k string
			if err := json.Unmarshal([]byte(got[i].key), &k); err != nil || k != want[i].key {
				t.Fatalf("member %d of %q: key %s reads %q (%v), encoding/json %q", i, doc, got[i].key, k, err, want[i].key)
			}
			if g, w := compact(t, got[i].value), compact(t, want[i].value); g != w {
				t.Fatalf("member %d of %q: value %s, encoding/json %s", i, doc, g, w)
			}
		}
		// encoding/json keeps the last of duplicate keys, Lookup the first.
		if hasDuplicates(want) {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		raw, ok := m[key]
		if ok != v.Exists() {
			t.Fatalf("Lookup(%q, %q) exists %t, encoding/json %t", doc, key, v.Exists(), ok)
		}
		if ok && compact(t, v.Raw()) != compact(t, raw) {
			t.Fatalf("Lookup(%q, %q) = %s, encoding/json %s", doc, key, v.Raw(), raw)
		}
		for k, raw := range m {
			if v := sdk.Lookup(doc, k); compact(t, v.Raw()) != compact(t, raw) {
				t.Fatalf("Lookup(%q, %q) = %s, encoding/json %s", doc, k, v.Raw(), raw)
			}
		}
	})
}

// editValues are the raw values SetRaw uses in FuzzEditor.
var editValues = []string{`null`, `[1,{"a":"b"}]`, `{}`, `"s"`, `-0.5e3`}

// FuzzEditor applies a list of edits, which ops describes, to a document,
// and checks the output against a model: the last edit of a key wins, a
// key of the document keeps its place, and new keys come last in the order
// of their first edit.
func FuzzEditor(f *testing.F) {
	for i, d := range fuzzDocs {
		f.Add([]byte(d), []byte{byte(i), byte(7 * i), 3, 20, 41}, "k", "a", "s\"\n", int64(i), 1.5, i%2 == 0)
	}
	f.Add([]byte(`{"a":1,"b":2}`), []byte{0, 7, 5, 12, 6}, "a", "b", "x", int64(-1), math.Inf(1), true)
	f.Fuzz(func(t *testing.T, doc, ops []byte, k1, k2, s string, n int64, x float64, b bool) {
		if len(ops) > 32 {
			ops = ops[:32]
		}
		var ed sdk.Editor
		if !json.Valid(doc) || !utf8.Valid(doc) {
			ed.SetInt(k1, n).Delete(k2)
			ed.Apply(doc) // must not panic
			return
		}
		members, isObject := objectMembers(t, doc)
		if hasDuplicates(members) {
			return
		}
		// Keys in the document and of the edits; AppendString writes
		// invalid UTF-8 as U+FFFD, so keys are valid UTF-8 here.
		keys := []string{strings.ToValidUTF8(k1, ""), strings.ToValidUTF8(k2, "")}
		for _, m := range members {
			keys = append(keys, m.key)
		}

		// The model: the document's members in order, then new keys.
		type entry struct {
			key string
			val any
			del bool
		}
		var model []entry
		for _, m := range members {
			model = append(model, entry{key: m.key, val: decodeAny(t, m.value)})
		}
		find := func(k string) int {
			for i := range model {
				if model[i].key == k {
					return i
				}
			}
			model = append(model, entry{key: k, del: true})
			return len(model) - 1
		}
		for _, op := range ops {
			k := keys[int(op/7)%len(keys)]
			e := &model[find(k)]
			e.del = false
			switch op % 7 {
			case 0:
				ed.SetInt(k, n)
				e.val = decodeAny(t, mustMarshal(t, n))
			case 1:
				ed.SetFloat(k, x)
				if math.IsNaN(x) || math.IsInf(x, 0) {
					e.val = nil
				} else {
					e.val = decodeAny(t, mustMarshal(t, x))
				}
			case 2:
				ed.SetString(k, s)
				e.val = decodeAny(t, mustMarshal(t, s))
			case 3:
				ed.SetBool(k, b)
				e.val = b
			case 4:
				raw := editValues[int(op)%len(editValues)]
				ed.SetRaw(k, []byte(raw))
				e.val = decodeAny(t, []byte(raw))
			default:
				ed.Delete(k)
				e.del = true
			}
		}

		out, ok := ed.Apply(doc)
		if !isObject {
			if ok || out != nil {
				t.Fatalf("Apply(%q) = %q, %t on a non-object", doc, out, ok)
			}
			return
		}
		if !ok {
			t.Fatalf("Apply(%q) not ok", doc)
		}
		if !json.Valid(out) {
			t.Fatalf("Apply(%q) = %q, not valid JSON", doc, out)
		}
		got, _ := objectMembers(t, out)
		var want []entry
		for _, e := range model {
			if !e.del {
				want = append(want, e)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("Apply(%q) = %s: %d members, want %d (%v)", doc, out, len(got), len(want), want)
		}
		for i := range got {
			if got[i].key != want[i].key || !reflect.DeepEqual(decodeAny(t, got[i].value), want[i].val) {
				t.Fatalf("Apply(%q) = %s: member %d is %q: %s, want %q: %v", doc, out, i, got[i].key, got[i].value, want[i].key, want[i].val)
			}
		}
	})
}

func decodeAny(t testing.TB, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decoding %q: %v", raw, err)
	}
	return v
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzUnescape checks JSON.String on the JSON string "s" against
// encoding/json, that a key spelled "s" is found by its text and by
// nothing else, and AppendString against encoding/json.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{``, `a`, `a\"b`, `\\`, `\\\\`, `\/`, `\n\r\t\b\f`, `\u00e9`, `\u00E9`,
		`\ud83d\ude00`, `\ud83d`, `\ude00`, `\ud83d\u0041`, `\ud83d\ud83d\ude00`, `\u0000`, `日本😀`,
		`\x`, `\u12`, `"`, `\`, "\x01", "\xff", "\u2028", `\n`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// encoding/json's encoding of any Go string.
		if got, want := string(sdk.AppendString(nil, s)), encodingJSONString(t, s); got != want {
			t.Fatalf("AppendString(%q) = %s, encoding/json %s", s, got, want)
		}

		q := `"` + s + `"`
		got, ok := sdk.Lookup([]byte(`{"v":`+q+`}`), "v").String()
		key := sdk.Lookup([]byte(`{`+q+`:1}`), s)
		if !json.Valid([]byte(q)) || !utf8.ValidString(q) {
			return
		}
		var want string
		if err := json.Unmarshal([]byte(q), &want); err != nil {
			t.Fatal(err)
		}
		if !ok || got != want {
			t.Fatalf("String() of %s = %q, %t; encoding/json %q", q, got, ok, want)
		}
		// The key spelled s is want: looking up its spelling finds it
		// only when the two are the same.
		if key.Exists() != (s == want) {
			t.Fatalf("Lookup({%s:1}, %q) exists %t; its text is %q", q, s, key.Exists(), want)
		}
		if !sdk.Lookup([]byte(`{`+q+`:1}`), want).Exists() {
			t.Fatalf("Lookup({%s:1}, %q) is missing", q, want)
		}
		// And what AppendString writes reads back.
		if back, ok := sdk.Lookup(append(sdk.AppendString([]byte(`{"v":`), want), '}'), "v").String(); !ok || back != want {
			t.Fatalf("round trip of %q = %q, %t", want, back, ok)
		}
	})
}
