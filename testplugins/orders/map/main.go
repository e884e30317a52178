// Command map is the orders workload's map step (see BENCHMARKS.md)
// written with the Go SDK: it upper-cases the type and adds amount_cents and
// region (the fourth ':'-separated field of source) to the payload.
package main

import (
	"errors"
	"math"
	"strings"

	"github.com/aegis-streaming/aegis/sdk"
)

var (
	ed    sdk.Editor
	upper []byte
)

func init() {
	sdk.Map(func(e sdk.Event, out *sdk.Output) error {
		amount, ok := e.Field("amount").Float()
		if !ok {
			return errors.New("amount is missing or not a number")
		}
		upper = appendUpper(upper[:0], e.Type())
		doc, ok := ed.Reset().
			SetString("type", string(upper)).
			SetInt("amount_cents", int64(math.Round(amount*100))).
			SetString("region", field(e.Source(), ':', 3)).
			Apply(e.Data())
		if !ok {
			return errors.New("data is not a JSON object")
		}
		o := e.Out()
		o.Type = string(upper)
		o.SetJSON(doc)
		out.Emit(&o)
		return nil
	})
}

// appendUpper appends the ASCII upper case of s.
func appendUpper(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// field returns the n-th (0-based) sep-separated field of s, or "".
func field(s string, sep byte, n int) string {
	for ; n > 0; n-- {
		i := strings.IndexByte(s, sep)
		if i < 0 {
			return ""
		}
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i]
	}
	return s
}

func main() {}
