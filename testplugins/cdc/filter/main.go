// Command filter is a filter step for change events (package cdc's
// Debezium-shaped envelope) written with the Go SDK: it keeps the deletes,
// and the other changes whose row is paid (after.status is "paid").
package main

import "github.com/aegis-streaming/aegis/sdk"

func init() {
	sdk.Filter(func(e sdk.Event) bool {
		if op, _ := e.Field("op").String(); op == "d" {
			return true
		}
		status, _ := e.Field("after").Get("status").String()
		return status == "paid"
	})
}

func main() {}
