// Command loop is a misbehaving filter: it never returns, for the host's
// deadline tests.
package main

import "github.com/aegis-streaming/aegis/sdk"

var spins uint64

func init() {
	sdk.Filter(func(e sdk.Event) bool {
		for {
			spins++
		}
	})
}

func main() {}
