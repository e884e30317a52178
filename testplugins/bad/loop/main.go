// Command loop is a misbehaving filter: it never returns, for the host's
// deadline tests.
package main

import "github.com/aegis-streaming/aegis/sdk"

// spins is read by the loop's condition, so the compiler cannot drop the
// loop; it never reaches -1.
var spins int64

func init() {
	sdk.Filter(func(e sdk.Event) bool {
		for spins != -1 {
			spins++
		}
		return true
	})
}

func main() {}
