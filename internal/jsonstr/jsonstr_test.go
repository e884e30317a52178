package jsonstr_test

import (
	"encoding/json"
	"testing"

	"github.com/aegis-streaming/aegis/internal/jsonstr"
)

func TestAppend(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{"q\"b\\", `"q\"b\\"`},
		{"\n\r\t\x01", `"\n\r\t\u0001"`},
		{"héllo", `"héllo"`},
		{"a\xffb", `"a\ufffdb"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
	}
	for _, tt := range tests {
		if got := string(jsonstr.Append([]byte("x"), tt.in)); got != "x"+tt.want {
			t.Errorf("Append(%q) = %s, want %s", tt.in, got[1:], tt.want)
		}
	}
}

// FuzzAppend: the result is a JSON string that decodes to the input (with
// invalid UTF-8 replaced, as encoding/json does).
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00\x1f", "é\xff", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := jsonstr.Append(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, out, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("%q -> %s -> %q, want %q", s, out, back, wantBack)
		}
	})
}
