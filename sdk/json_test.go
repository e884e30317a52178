package sdk_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/aegis-streaming/aegis/sdk"
)

// value returns raw as a JSON value found in a document, the way plugin
// code gets one.
func value(t testing.TB, raw string) sdk.JSON {
	t.Helper()
	v := sdk.Lookup([]byte(`{"v":`+raw+`}`), "v")
	if string(v.Raw()) != raw {
		t.Fatalf("Lookup of %s gives %q", raw, v.Raw())
	}
	return v
}

func TestLookup(t *testing.T) {
	const missing = "<missing>"
	tests := []struct {
		name string
		doc  string
		key  string
		want string // raw value, or missing
	}{
		{name: "only member", doc: `{"a":1}`, key: "a", want: `1`},
		{name: "first of several", doc: `{"a":1,"b":2,"c":3}`, key: "a", want: `1`},
		{name: "middle", doc: `{"a":1,"b":2,"c":3}`, key: "b", want: `2`},
		{name: "last", doc: `{"a":1,"b":2,"c":3}`, key: "c", want: `3`},
		{name: "empty key", doc: `{"":5,"a":1}`, key: "", want: `5`},
		{name: "unicode key", doc: `{"é":1,"日本":2}`, key: "日本", want: `2`},

		// Values of every type, as spelled.
		{name: "string value", doc: `{"a":"x y"}`, key: "a", want: `"x y"`},
		{name: "empty string", doc: `{"a":""}`, key: "a", want: `""`},
		{name: "true", doc: `{"a":true,"b":0}`, key: "a", want: `true`},
		{name: "false", doc: `{"a":false}`, key: "a", want: `false`},
		{name: "null", doc: `{"a":null}`, key: "a", want: `null`},
		{name: "negative float with exponent", doc: `{"a":-1.5e+10,"b":1}`, key: "a", want: `-1.5e+10`},
		{name: "exponent without sign", doc: `{"a":1E3}`, key: "a", want: `1E3`},
		{name: "zero", doc: `{"a":0}`, key: "a", want: `0`},
		{name: "negative zero", doc: `{"a":-0}`, key: "a", want: `-0`},
		{name: "empty object", doc: `{"a":{},"b":1}`, key: "a", want: `{}`},
		{name: "empty array", doc: `{"a":[],"b":1}`, key: "a", want: `[]`},

		// Nested values are skipped whole and returned whole.
		{name: "nested object", doc: `{"a":{"b":{"c":[1,2]}},"d":4}`, key: "a", want: `{"b":{"c":[1,2]}}`},
		{name: "after a nested object", doc: `{"a":{"b":{"c":[1,2]}},"d":4}`, key: "d", want: `4`},
		{name: "after a nested array", doc: `{"a":[1,[2,[3,{"x":[]}]]],"b":true}`, key: "b", want: `true`},
		{name: "brackets in strings", doc: `{"a":"}]","b":["]}",{"c":"{["}],"d":5}`, key: "d", want: `5`},
		{name: "array with brackets in strings", doc: `{"b":["]}",{"c":"{["}],"d":5}`, key: "b", want: `["]}",{"c":"{["}]`},
		{name: "escaped quote in a string", doc: `{"a":"x\"}{,:[","b":1}`, key: "b", want: `1`},
		{name: "escaped quote in a nested string", doc: `{"a":{"s":"\"}"},"b":1}`, key: "b", want: `1`},
		{name: "string ending in a backslash", doc: `{"a":"x\\","b":2}`, key: "b", want: `2`},
		{name: "string of backslashes", doc: `{"a":"\\\\\"\\","b":2}`, key: "a", want: `"\\\\\"\\"`},
		{name: "key inside a nested object", doc: `{"a":{"b":1}}`, key: "b", want: missing},
		{name: "key spelled as a value", doc: `{"a":"b","c":1}`, key: "b", want: missing},
		{name: "key inside an array", doc: `{"a":[{"b":1}]}`, key: "b", want: missing},

		// White space wherever JSON allows it.
		{name: "white space everywhere", doc: " \t\n\r{ \n\"a\" \t: \r\n 1 \n, \"b\"\t:\t\"x\"\n,\"c\" : [ 1 , 2 ] }\n ", key: "b", want: `"x"`},
		{name: "white space after a number", doc: "{\"a\":1 ,\"b\":2}", key: "a", want: `1`},
		{name: "white space inside an array", doc: "{ \"c\" : [ 1 , { \"d\" : 2 } ] }", key: "c", want: "[ 1 , { \"d\" : 2 } ]"},
		{name: "empty object with space", doc: " { } ", key: "a", want: missing},

		// Keys spelled with escapes match the text they stand for.
		{name: "unicode escape key", doc: `{"\u0061":1}`, key: "a", want: `1`},
		{name: "escaped quote key", doc: `{"a\"b":1}`, key: `a"b`, want: `1`},
		{name: "escaped backslash key", doc: `{"\\":1}`, key: `\`, want: `1`},
		{name: "escaped slash key", doc: `{"\/":1}`, key: "/", want: `1`},
		{name: "escaped newline key", doc: `{"\n":1}`, key: "\n", want: `1`},
		{name: "control escapes key", doc: `{"\b\f\r\t":1}`, key: "\b\f\r\t", want: `1`},
		{name: "surrogate pair key", doc: `{"\ud83d\ude00":1}`, key: "😀", want: `1`},
		{name: "upper-case hex key", doc: `{"\u00E9":1}`, key: "é", want: `1`},
		{name: "lone surrogate key", doc: `{"\ud800":1}`, key: "\ufffd", want: `1`},
		{name: "escaped key among plain ones", doc: `{"x":0,"\u0062":2,"c":3}`, key: "b", want: `2`},
		// The key's own text is not its spelling: these keys are a
		// backslash and a newline, not the two characters of the escape.
		{name: "escape spelling is not the key (backslash)", doc: `{"\\\\":1}`, key: `\\\\`, want: missing},
		{name: "escape spelling is not the key (newline)", doc: `{"\n":1}`, key: `\n`, want: missing},
		{name: "escape spelling is not the key (unicode)", doc: `{"\u0061":1}`, key: `\u0061`, want: missing},
		{name: "two backslashes", doc: `{"\\\\":1}`, key: `\\`, want: `1`},
		{name: "bad escape in a key never matches", doc: `{"\x":1,"b":2}`, key: `\x`, want: missing},

		// Missing keys.
		{name: "missing", doc: `{"a":1}`, key: "b", want: missing},
		{name: "prefix of a key", doc: `{"ab":1}`, key: "a", want: missing},
		{name: "longer than a key", doc: `{"a":1}`, key: "ab", want: missing},
		{name: "case matters", doc: `{"A":1}`, key: "a", want: missing},
		{name: "empty object", doc: `{}`, key: "a", want: missing},
		{name: "duplicate keys: the first wins", doc: `{"a":1,"a":2}`, key: "a", want: `1`},

		// Not objects.
		{name: "array", doc: `[{"a":1}]`, key: "a", want: missing},
		{name: "string", doc: `"a"`, key: "a", want: missing},
		{name: "number", doc: `1`, key: "a", want: missing},
		{name: "null document", doc: `null`, key: "a", want: missing},
		{name: "true document", doc: `true`, key: "a", want: missing},
		{name: "empty document", doc: ``, key: "a", want: missing},
		{name: "only space", doc: " \n", key: "a", want: missing},

		// Malformed documents never give a value that is not there.
		{name: "unterminated key", doc: `{"a`, key: "a", want: missing},
		{name: "no colon", doc: `{"a" 1}`, key: "a", want: missing},
		{name: "no value", doc: `{"a":}`, key: "a", want: missing},
		{name: "no value at the end", doc: `{"a":`, key: "a", want: missing},
		{name: "unterminated string value", doc: `{"a":"xyz`, key: "a", want: missing},
		{name: "unterminated object value", doc: `{"a":{"b":1`, key: "a", want: missing},
		{name: "bare key", doc: `{a:1}`, key: "a", want: missing},
		{name: "after a bad separator", doc: `{"a":1;"b":2}`, key: "b", want: missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sdk.Lookup([]byte(tt.doc), tt.key)
			if tt.want == missing {
				if got.Exists() {
					t.Fatalf("Lookup(%s, %q) = %s, want a missing value", tt.doc, tt.key, got.Raw())
				}
				if got.Raw() != nil {
					t.Errorf("missing value has Raw %q", got.Raw())
				}
				return
			}
			if !got.Exists() || string(got.Raw()) != tt.want {
				t.Fatalf("Lookup(%s, %q) = %q (exists %t), want %s", tt.doc, tt.key, got.Raw(), got.Exists(), tt.want)
			}
			// The value is a slice of the document, not a copy.
			if !strings.Contains(tt.doc, string(got.Raw())) {
				t.Errorf("value %s is not in the document", got.Raw())
			}
		})
	}
}

func TestGet(t *testing.T) {
	doc := []byte(`{"order":{"id":"o-1","customer":{"address":{"city":"Lyon","zip":"69001"}},"lines":[{"sku":"a"}]},"n":1}`)
	tests := []struct {
		name string
		path []string
		want string // raw, "" when missing
	}{
		{name: "one level", path: []string{"n"}, want: `1`},
		{name: "two levels", path: []string{"order", "id"}, want: `"o-1"`},
		{name: "four levels", path: []string{"order", "customer", "address", "city"}, want: `"Lyon"`},
		{name: "an object", path: []string{"order", "customer", "address"}, want: `{"city":"Lyon","zip":"69001"}`},
		{name: "missing in the middle", path: []string{"order", "nope", "city"}},
		{name: "missing at the end", path: []string{"order", "customer", "nope"}},
		{name: "through a string", path: []string{"order", "id", "x"}},
		{name: "through an array", path: []string{"order", "lines", "sku"}},
		{name: "through a number", path: []string{"n", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := sdk.Lookup(doc, tt.path[0])
			for _, k := range tt.path[1:] {
				v = v.Get(k)
			}
			if string(v.Raw()) != tt.want || v.Exists() != (tt.want != "") {
				t.Errorf("Get %v = %q (exists %t), want %q", tt.path, v.Raw(), v.Exists(), tt.want)
			}
		})
	}
	var zero sdk.JSON
	if zero.Get("a").Exists() {
		t.Error("Get on a missing value found something")
	}
}

// none marks an accessor that must report ok == false.
type none struct{}

func TestJSONAccessors(t *testing.T) {
	tests := []struct {
		name string
		raw  string // "" for the zero (missing) value
		str  any    // string or none
		f    any    // float64 or none
		i    any    // int64 or none
		b    any    // bool or none
		null bool
	}{
		{name: "plain string", raw: `"plain"`, str: "plain", f: none{}, i: none{}, b: none{}},
		{name: "empty string", raw: `""`, str: "", f: none{}, i: none{}, b: none{}},
		{name: "simple escapes", raw: `"a\"b\\c\/d\n\t\r\b\f"`, str: "a\"b\\c/d\n\t\r\b\f", f: none{}, i: none{}, b: none{}},
		{name: "escape at each end", raw: `"\"x\""`, str: `"x"`, f: none{}, i: none{}, b: none{}},
		{name: "only an escape", raw: `"\\"`, str: `\`, f: none{}, i: none{}, b: none{}},
		{name: "unicode escapes", raw: `"\u00e9\u4e2d\u0041"`, str: "é中A", f: none{}, i: none{}, b: none{}},
		{name: "upper-case hex", raw: `"\u00E9\u00c9"`, str: "éÉ", f: none{}, i: none{}, b: none{}},
		{name: "NUL", raw: `"a\u0000b"`, str: "a\x00b", f: none{}, i: none{}, b: none{}},
		{name: "surrogate pair", raw: `"x\ud83d\ude00y"`, str: "x😀y", f: none{}, i: none{}, b: none{}},
		{name: "upper-case surrogate pair", raw: `"\uD83D\uDE00"`, str: "😀", f: none{}, i: none{}, b: none{}},
		{name: "two surrogate pairs", raw: `"\ud83d\ude00\ud83c\udf89"`, str: "😀🎉", f: none{}, i: none{}, b: none{}},
		{name: "lone high surrogate", raw: `"\ud83d"`, str: "\ufffd", f: none{}, i: none{}, b: none{}},
		{name: "lone high surrogate then text", raw: `"\ud83dabc"`, str: "\ufffdabc", f: none{}, i: none{}, b: none{}},
		{name: "lone low surrogate", raw: `"\ude00x"`, str: "\ufffdx", f: none{}, i: none{}, b: none{}},
		{name: "high surrogate then a letter escape", raw: `"\ud83d\u0041"`, str: "\ufffdA", f: none{}, i: none{}, b: none{}},
		{name: "high, high, low", raw: `"\ud83d\ud83d\ude00"`, str: "\ufffd😀", f: none{}, i: none{}, b: none{}},
		{name: "high surrogate then another escape", raw: `"\ud83d\n"`, str: "\ufffd\n", f: none{}, i: none{}, b: none{}},
		{name: "raw unicode", raw: `"日本 😀"`, str: "日本 😀", f: none{}, i: none{}, b: none{}},
		{name: "unknown escape", raw: `"\x41"`, str: none{}, f: none{}, i: none{}, b: none{}},
		{name: "short unicode escape", raw: `"\u12"`, str: none{}, f: none{}, i: none{}, b: none{}},
		{name: "bad hex", raw: `"\u12g4"`, str: none{}, f: none{}, i: none{}, b: none{}},

		{name: "zero", raw: `0`, str: none{}, f: 0.0, i: int64(0), b: none{}},
		{name: "negative zero", raw: `-0`, str: none{}, f: math.Copysign(0, -1), i: int64(0), b: none{}},
		{name: "int", raw: `42`, str: none{}, f: 42.0, i: int64(42), b: none{}},
		{name: "negative int", raw: `-17`, str: none{}, f: -17.0, i: int64(-17), b: none{}},
		{name: "max int64", raw: `9223372036854775807`, str: none{}, f: 9223372036854775807.0, i: int64(math.MaxInt64), b: none{}},
		{name: "min int64", raw: `-9223372036854775808`, str: none{}, f: -9223372036854775808.0, i: int64(math.MinInt64), b: none{}},
		{name: "beyond int64", raw: `9223372036854775808`, str: none{}, f: 9223372036854775808.0, i: none{}, b: none{}},
		{name: "float", raw: `1.5`, str: none{}, f: 1.5, i: none{}, b: none{}},
		{name: "negative float", raw: `-2.25`, str: none{}, f: -2.25, i: none{}, b: none{}},
		{name: "exponent", raw: `1e3`, str: none{}, f: 1000.0, i: none{}, b: none{}},
		{name: "upper-case exponent with sign", raw: `1E+2`, str: none{}, f: 100.0, i: none{}, b: none{}},
		{name: "negative exponent", raw: `-2.5e-3`, str: none{}, f: -0.0025, i: none{}, b: none{}},
		{name: "large exponent", raw: `6.02e23`, str: none{}, f: 6.02e23, i: none{}, b: none{}},
		{name: "smallest subnormal", raw: `5e-324`, str: none{}, f: 5e-324, i: none{}, b: none{}},
		{name: "beyond float64", raw: `1e400`, str: none{}, f: none{}, i: none{}, b: none{}},

		{name: "true", raw: `true`, str: none{}, f: none{}, i: none{}, b: true},
		{name: "false", raw: `false`, str: none{}, f: none{}, i: none{}, b: false},
		{name: "null", raw: `null`, str: none{}, f: none{}, i: none{}, b: none{}, null: true},
		{name: "object", raw: `{"a":1}`, str: none{}, f: none{}, i: none{}, b: none{}},
		{name: "array", raw: `[1,"a"]`, str: none{}, f: none{}, i: none{}, b: none{}},
		{name: "missing", raw: ``, str: none{}, f: none{}, i: none{}, b: none{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v sdk.JSON
			if tt.raw != "" {
				v = value(t, tt.raw)
			}
			if v.Exists() != (tt.raw != "") {
				t.Errorf("Exists() = %t", v.Exists())
			}
			if v.IsNull() != tt.null {
				t.Errorf("IsNull() = %t, want %t", v.IsNull(), tt.null)
			}
			s, ok := v.String()
			checkAccessor(t, "String", s, ok, tt.str)
			f, ok := v.Float()
			checkAccessor(t, "Float", f, ok, tt.f)
			if want, isFloat := tt.f.(float64); isFloat && ok && math.Signbit(f) != math.Signbit(want) {
				t.Errorf("Float() = %v, want %v", f, want)
			}
			i, ok := v.Int()
			checkAccessor(t, "Int", i, ok, tt.i)
			b, ok := v.Bool()
			checkAccessor(t, "Bool", b, ok, tt.b)

			// encoding/json agrees on the strings and numbers it accepts.
			if _, isString := tt.str.(string); isString {
				var want string
				if err := json.Unmarshal([]byte(tt.raw), &want); err != nil || want != s {
					t.Errorf("encoding/json reads %q (%v), String() %q", want, err, s)
				}
			}
		})
	}
}

func checkAccessor[T comparable](t *testing.T, name string, got T, ok bool, want any) {
	t.Helper()
	if _, isNone := want.(none); isNone {
		if ok {
			t.Errorf("%s() = %v, true; want false", name, got)
		}
		return
	}
	if !ok || any(got) != want {
		t.Errorf("%s() = %v, %t; want %v, true", name, got, ok, want)
	}
}

// TestStringSharesUnescaped checks that a string without escapes is not
// copied.
func TestStringSharesUnescaped(t *testing.T) {
	doc := []byte(`{"a":"hello"}`)
	s, _ := sdk.Lookup(doc, "a").String()
	doc[6] = 'j'
	if s != "jello" {
		t.Errorf("String() = %q after changing the document: it was copied", s)
	}
}

type member struct{ key, value string }

func TestMembers(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		stop     int // stop after this many members; 0: never
		want     []member
		walkedOK bool
	}{
		{name: "empty", doc: `{}`, walkedOK: true},
		{name: "empty with space", doc: " { \n } ", walkedOK: true},
		{name: "in order", doc: `{"b":1,"a":[2],"c":{"d":"e"}}`, walkedOK: true,
			want: []member{{`"b"`, `1`}, {`"a"`, `[2]`}, {`"c"`, `{"d":"e"}`}}},
		{name: "keys as spelled", doc: `{"\u0061":1,"a\"b":2}`, walkedOK: true,
			want: []member{{`"\u0061"`, `1`}, {`"a\"b"`, `2`}}},
		{name: "duplicates are all given", doc: `{"a":1,"a":2}`, walkedOK: true,
			want: []member{{`"a"`, `1`}, {`"a"`, `2`}}},
		{name: "white space", doc: "{ \"a\" :\t1 ,\n\"b\" : true }", walkedOK: true,
			want: []member{{`"a"`, `1`}, {`"b"`, `true`}}},
		{name: "early stop", doc: `{"a":1,"b":2,"c":3}`, stop: 2, walkedOK: true,
			want: []member{{`"a"`, `1`}, {`"b"`, `2`}}},
		{name: "stop at the first", doc: `{"a":1,"b":2}`, stop: 1, walkedOK: true,
			want: []member{{`"a"`, `1`}}},
		{name: "stop at the last", doc: `{"a":1,"b":2}`, stop: 2, walkedOK: true,
			want: []member{{`"a"`, `1`}, {`"b"`, `2`}}},
		{name: "array", doc: `[1,2]`},
		{name: "string", doc: `"{}"`},
		{name: "empty document", doc: ``},
		{name: "unterminated", doc: `{"a":1`, want: []member{{`"a"`, `1`}}},
		{name: "unterminated after a comma", doc: `{"a":1,`, want: []member{{`"a"`, `1`}}},
		{name: "trailing comma", doc: `{"a":1,}`, want: []member{{`"a"`, `1`}}},
		{name: "missing comma", doc: `{"a":1 "b":2}`, want: []member{{`"a"`, `1`}}},
		{name: "only an opening brace", doc: `{`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []member
			ok := sdk.Members([]byte(tt.doc), func(k, v []byte) bool {
				got = append(got, member{string(k), string(v)})
				return tt.stop == 0 || len(got) < tt.stop
			})
			if ok != tt.walkedOK {
				t.Errorf("Members = %t, want %t", ok, tt.walkedOK)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("members %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("member %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// encodingJSONString is encoding/json's encoding of s, without HTML
// escaping.
func encodingJSONString(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func TestAppendString(t *testing.T) {
	strs := []string{
		"", "a", "hello, world", `"`, `\`, `/`, `a"b\c/d`, `""`, `\\`, `\"`,
		"<script>&amp;</script>", // not escaped: no HTML escaping
		"\n\r\t\b\f", "\x7f", "é", "日本語", "😀", "\ufeffBOM", "\ufffd",
		"\u2028", "\u2029", "a\u2028b\u2029c", "\u2027\u202a",
		"\u00a0", "\U0010ffff",
		// Invalid UTF-8: each bad byte becomes \ufffd, as encoding/json does.
		"\xff", "a\xffb", "\xc3", "a\xc3", "\xc3\x28", "\xe2\x82", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "\xc0\x80", "\xf0\x9f\x98", "😀\xf0\x9f\x98", "\x80\x80\x80",
		strings.Repeat("long text without escapes ", 100),
		strings.Repeat("é\"\n\x01", 50),
	}
	// Every ASCII character, alone and in context.
	for c := range 128 {
		strs = append(strs, string(rune(c)), "x"+string(rune(c))+"y")
	}
	for _, s := range strs {
		want := encodingJSONString(t, s)
		if got := string(sdk.AppendString(nil, s)); got != want {
			t.Errorf("AppendString(%q) = %s, encoding/json %s", s, got, want)
			continue
		}
		// It appends.
		if got := string(sdk.AppendString([]byte("prefix:"), s)); got != "prefix:"+want {
			t.Errorf("AppendString to a prefix = %s", got)
		}
	}
}

// TestAppendStringRoundTrip checks that what AppendString writes reads back
// with JSON.String.
func TestAppendStringRoundTrip(t *testing.T) {
	for _, s := range []string{"", "a", "a\"b\\c", "\x00\x1f\n", "日本😀", "\u2028", "<&>"} {
		got, ok := value(t, string(sdk.AppendString(nil, s))).String()
		if !ok || got != s {
			t.Errorf("round trip of %q = %q, %t", s, got, ok)
		}
	}
}
