// Command panic is a misbehaving map: it panics on an event whose type is
// "boom" (which kills a Go guest's runtime) and passes the others through,
// so tests can show that the next batch gets a fresh instance. It also
// writes to stderr and logs, for the host's log tests.
package main

import (
	"fmt"
	"os"

	"github.com/aegis-streaming/aegis/sdk"
)

func init() {
	sdk.Map(func(e sdk.Event, out *sdk.Output) error {
		if e.Type() == "boom" {
			sdk.Warn("about to panic")
			fmt.Fprintln(os.Stderr, "stderr: going down")
			panic("boom at index " + fmt.Sprint(e.Index()))
		}
		o := e.Out()
		out.Emit(&o)
		return nil
	})
}

func main() {}
