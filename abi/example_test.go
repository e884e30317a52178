package abi_test

import (
	"fmt"

	"github.com/aegis-streaming/aegis/abi"
)

// A filter step end to end: the host encodes a batch, the guest's
// aegis_filter keeps the payments of at least 100 and reports the event
// whose amount is not a number, and the host reads the result in place.
func Example() {
	// Host: encode the batch into the buffer the guest gave it.
	amount := func(v int64) []byte { d := abi.IntData(v); return d[:] }
	in := abi.AppendBatch(nil,
		abi.Record{Index: 0, Time: 1, Kind: abi.DataInt, Type: []byte("payment"), Data: amount(120)},
		abi.Record{Index: 1, Time: 2, Kind: abi.DataInt, Type: []byte("payment"), Data: amount(5)},
		abi.Record{Index: 2, Time: 3, Kind: abi.DataString, Type: []byte("payment"), Data: []byte("n/a")},
		abi.Record{Index: 3, Time: 4, Kind: abi.DataInt, Type: []byte("payment"), Data: amount(100)},
	)
	fmt.Printf("batch: %d bytes, header % x\n", len(in), in[:abi.BatchHeaderSize])

	// Guest: aegis_filter(ptr, len) reads the batch and builds its result
	// in a writer it keeps from call to call.
	var w abi.ResultWriter
	w.Reset()
	batch, err := abi.ParseBatch(in)
	if err != nil {
		fmt.Println(w.Fail(abi.StatusBadInput, err.Error()))
		return
	}
	for {
		v, ok, err := batch.Next()
		if err != nil {
			fmt.Println(w.Fail(abi.StatusBadInput, err.Error()))
			return
		}
		if !ok {
			break
		}
		switch {
		case v.Kind != abi.DataInt:
			w.AddError(v.Index, 1, "amount is not a number")
		case abi.Int(v.Data) >= 100:
			w.AppendIndex(v.Index)
		}
	}
	out := w.Finish()
	fmt.Printf("result: % x\n", out)

	// Host: read the result region in place.
	r, err := abi.ParseResult(out, abi.BodyIndices, batch.Len())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("status:", r.Status)
	for i := range int(r.Count) {
		fmt.Println("keep event", r.Index(i))
	}
	for e, rest, ok := abi.NextError(r.Errors); ok; e, rest, ok = abi.NextError(rest) {
		fmt.Printf("event %d failed, code %d: %s\n", e.Index, e.Code, e.Message)
	}
	// Output:
	// batch: 251 bytes, header 04 00 00 00
	// result: 00 00 00 00 02 00 00 00 01 00 00 00 00 00 00 00 03 00 00 00 02 00 00 00 01 00 00 00 16 00 00 00 61 6d 6f 75 6e 74 20 69 73 20 6e 6f 74 20 61 20 6e 75 6d 62 65 72
	// status: ok
	// keep event 0
	// keep event 3
	// event 2 failed, code 1: amount is not a number
}
