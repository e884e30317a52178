// Command membomb is a misbehaving filter: it allocates without bound, for
// the host's memory cap tests.
package main

import "github.com/aegis-streaming/aegis/sdk"

var hoard [][]byte

func init() {
	sdk.Filter(func(e sdk.Event) bool {
		for {
			b := make([]byte, 1<<20)
			b[len(b)-1] = 1
			hoard = append(hoard, b)
		}
	})
}

func main() {}
