// Command filter is the orders workload's filter step (see BENCHMARKS.md)
// written with the Go SDK: it drops refunds.
package main

import "github.com/aegis-streaming/aegis/sdk"

func init() {
	sdk.Filter(func(e sdk.Event) bool { return e.Type() != "order.refunded" })
}

func main() {}
