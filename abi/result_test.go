package abi_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/aegis-streaming/aegis/abi"
)

func TestResultRoundTrip(t *testing.T) {
	outs := goldenMapOut
	tests := []struct {
		name     string
		body     abi.Body
		inputLen int
		write    func(w *abi.ResultWriter) []byte
		// what the result must hold
		status  abi.Status
		count   uint32
		bodyLen int
		errs    []abi.EventError
	}{
		{
			name: "init ok", body: abi.BodyEmpty, inputLen: 0,
			write: func(w *abi.ResultWriter) []byte { return w.Finish() },
		},
		{
			name: "init bad config", body: abi.BodyEmpty, inputLen: 0,
			write:  func(w *abi.ResultWriter) []byte { return w.Fail(abi.StatusBadConfig, `"limit" must be a number`) },
			status: abi.StatusBadConfig, count: 24, bodyLen: 24,
		},
		{
			name: "filter keeps nothing", body: abi.BodyIndices, inputLen: 3,
			write: func(w *abi.ResultWriter) []byte { return w.Finish() },
		},
		{
			name: "filter keeps all", body: abi.BodyIndices, inputLen: 3,
			write: func(w *abi.ResultWriter) []byte {
				w.AppendIndex(0)
				w.AppendIndex(1)
				w.AppendIndex(2)
				return w.Finish()
			},
			count: 3, bodyLen: 12,
		},
		{
			name: "filter with errors", body: abi.BodyIndices, inputLen: 5,
			write: func(w *abi.ResultWriter) []byte {
				w.AddError(4, 1, "")
				w.AppendIndex(1)
				w.AddError(0, 0xffffffff, "ünïcode")
				return w.Finish()
			},
			count: 1, bodyLen: 4,
			errs: []abi.EventError{{Index: 4, Code: 1, Message: []byte{}}, {Index: 0, Code: 0xffffffff, Message: []byte("ünïcode")}},
		},
		{
			name: "map with no output", body: abi.BodyRecords, inputLen: 1,
			write: func(w *abi.ResultWriter) []byte { return w.Finish() },
		},
		{
			name: "map with outputs", body: abi.BodyRecords, inputLen: 2,
			write: func(w *abi.ResultWriter) []byte {
				for _, r := range records(outs) {
					w.AppendRecord(&r)
				}
				w.AddError(1, 3, "x")
				return w.Finish()
			},
			count: 2, bodyLen: outs[0].size() + outs[1].size(),
			errs: []abi.EventError{{Index: 1, Code: 3, Message: []byte("x")}},
		},
		{
			name: "map through Buffer and Added", body: abi.BodyRecords, inputLen: 2,
			write: func(w *abi.ResultWriter) []byte {
				b := w.Buffer()
				for _, r := range records(outs) {
					b = abi.AppendRecord(b, &r)
				}
				w.Added(b, len(outs))
				return w.Finish()
			},
			count: 2, bodyLen: outs[0].size() + outs[1].size(),
		},
		{
			name: "aggregate", body: abi.BodyBytes, inputLen: 2,
			write: func(w *abi.ResultWriter) []byte {
				w.AppendBytes([]byte("ab"))
				w.AppendBytes([]byte("c"))
				w.AddError(1, 9, "nope")
				return w.Finish()
			},
			count: 3, bodyLen: 3, errs: []abi.EventError{{Index: 1, Code: 9, Message: []byte("nope")}},
		},
		{
			name: "merge with an empty accumulator", body: abi.BodyBytes, inputLen: 0,
			write: func(w *abi.ResultWriter) []byte { return w.Finish() },
		},
		{
			name: "failed after a body", body: abi.BodyIndices, inputLen: 2,
			write: func(w *abi.ResultWriter) []byte {
				w.AppendIndex(0)
				w.AddError(1, 1, "x")
				return w.Fail(abi.StatusFailed, "boom")
			},
			status: abi.StatusFailed, count: 4, bodyLen: 4,
		},
		{
			name: "failed with an empty message", body: abi.BodyRecords, inputLen: 0,
			write:  func(w *abi.ResultWriter) []byte { return w.Fail(abi.StatusBadInput, "") },
			status: abi.StatusBadInput,
		},
		{
			name: "unsupported", body: abi.BodyBytes, inputLen: 0,
			write:  func(w *abi.ResultWriter) []byte { return w.Fail(abi.StatusUnsupported, "no aggregate") },
			status: abi.StatusUnsupported, count: 12, bodyLen: 12,
		},
	}
	// One writer for every case: Reset must clear what the previous one left.
	var w abi.ResultWriter
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.Reset()
			b := bytes.Clone(tt.write(&w))
			r, err := abi.ParseResult(b, tt.body, tt.inputLen)
			if err != nil {
				t.Fatal(err)
			}
			checkResultHeader(t, r, tt.status, tt.count, uint32(len(tt.errs)))
			if len(r.Body) != tt.bodyLen {
				t.Errorf("body of %d bytes, want %d", len(r.Body), tt.bodyLen)
			}
			checkErrors(t, r.Errors, tt.errs)
			if want := abi.ResultHeaderSize + tt.bodyLen + len(r.Errors); len(b) != want {
				t.Errorf("result of %d bytes, want %d", len(b), want)
			}
			if tt.status != abi.StatusOK {
				if r.Message() != string(r.Body) {
					t.Errorf("Message() = %q, body %q", r.Message(), r.Body)
				}
				return
			}
			if r.Message() != "" {
				t.Errorf("Message() of a successful result = %q", r.Message())
			}
			switch tt.body {
			case abi.BodyIndices:
				for i := range int(r.Count) {
					if r.Index(i) != le.Uint32(r.Body[4*i:]) {
						t.Errorf("Index(%d) = %d", i, r.Index(i))
					}
				}
			case abi.BodyRecords:
				var want []rec
				if r.Count > 0 {
					want = outs
				}
				checkBatch(t, "records", r.Records(), want)
			}
		})
	}
}

// okResult builds a successful result by hand.
func okResult(count, nerrs uint32, rest ...[]byte) []byte {
	return cat(append([][]byte{u32(0), u32(count), u32(nerrs)}, rest...)...)
}

// errEntry builds an event error entry by hand.
func errEntry(index, code uint32, msg string) []byte {
	return cat(u32(index), u32(code), u32(uint32(len(msg))), []byte(msg))
}

func TestParseResultErrors(t *testing.T) {
	r1 := goldenMapOut[0].encode()
	tests := []struct {
		name     string
		in       []byte
		body     abi.Body
		inputLen int
		want     error
	}{
		{name: "no header", in: nil, body: abi.BodyEmpty, want: abi.ErrShort},
		{name: "short header", in: make([]byte, 11), body: abi.BodyBytes, want: abi.ErrShort},
		{name: "failed: message longer than the count", in: cat(u32(3), u32(1), u32(0), []byte("ab")), body: abi.BodyIndices, want: abi.ErrCorrupt},
		{name: "failed: message shorter than the count", in: cat(u32(3), u32(3), u32(0), []byte("ab")), body: abi.BodyIndices, want: abi.ErrCorrupt},
		{name: "failed: with errors", in: cat(u32(3), u32(1), u32(1), []byte("a"), errEntry(0, 0, "")), body: abi.BodyIndices, inputLen: 1, want: abi.ErrCorrupt},
		{name: "failed: message not UTF-8", in: cat(u32(3), u32(2), u32(0), []byte{0xc3, 0x28}), body: abi.BodyRecords, want: abi.ErrBadUTF8},
		{name: "failed: unknown status", in: cat(u32(77), u32(1), u32(0), []byte("ab")), body: abi.BodyBytes, want: abi.ErrCorrupt},
		{name: "failed: unknown body", in: cat(u32(3), u32(1), u32(1), []byte("a")), body: abi.Body(9), want: abi.ErrCorrupt},
		{name: "empty: count 1", in: okResult(1, 0), body: abi.BodyEmpty, want: abi.ErrCorrupt},
		{name: "empty: bytes after it", in: okResult(0, 0, []byte{0}), body: abi.BodyEmpty, want: abi.ErrTrailing},
		{name: "empty: an event error", in: okResult(0, 1, errEntry(0, 1, "x")), body: abi.BodyEmpty, want: abi.ErrCorrupt},
		{name: "indices: fewer than the count", in: okResult(3, 0, u32(0), u32(1)), body: abi.BodyIndices, inputLen: 5, want: abi.ErrShort},
		{name: "indices: count of 4 billion", in: okResult(0xffffffff, 0, u32(0)), body: abi.BodyIndices, inputLen: 5, want: abi.ErrShort},
		{name: "indices: decreasing", in: okResult(2, 0, u32(2), u32(1)), body: abi.BodyIndices, inputLen: 5, want: abi.ErrCorrupt},
		{name: "indices: repeated", in: okResult(2, 0, u32(1), u32(1)), body: abi.BodyIndices, inputLen: 5, want: abi.ErrCorrupt},
		{name: "indices: equal to the input length", in: okResult(1, 0, u32(5)), body: abi.BodyIndices, inputLen: 5, want: abi.ErrCorrupt},
		{name: "indices: beyond the input length", in: okResult(2, 0, u32(0), u32(0xffffffff)), body: abi.BodyIndices, inputLen: 5, want: abi.ErrCorrupt},
		{name: "indices: any of an empty input", in: okResult(1, 0, u32(0)), body: abi.BodyIndices, inputLen: 0, want: abi.ErrCorrupt},
		{name: "indices: bytes after them", in: okResult(1, 0, u32(0), []byte{0, 0}), body: abi.BodyIndices, inputLen: 5, want: abi.ErrTrailing},
		{name: "records: count too large for the bytes", in: okResult(2, 0, r1), body: abi.BodyRecords, inputLen: 1, want: abi.ErrShort},
		{name: "records: size below the header", in: okResult(1, 0, patch(r1, 0, 47)), body: abi.BodyRecords, inputLen: 1, want: abi.ErrCorrupt},
		{name: "records: size 0", in: okResult(1, 0, patch(r1, 0, 0, 0, 0, 0)), body: abi.BodyRecords, inputLen: 1, want: abi.ErrCorrupt},
		{name: "records: size beyond the bytes", in: okResult(1, 0, patch(r1, 0, 0, 0, 0, 1)), body: abi.BodyRecords, inputLen: 1, want: abi.ErrCorrupt},
		{name: "records: second record cut short", in: okResult(2, 0, r1, make([]byte, 2*abi.HeaderSize-len(r1))), body: abi.BodyRecords, inputLen: 1, want: abi.ErrShort},
		{name: "records: bytes after them", in: okResult(1, 0, r1, []byte{1}), body: abi.BodyRecords, inputLen: 1, want: abi.ErrTrailing},
		{name: "bytes: fewer than the count", in: okResult(4, 0, []byte("abc")), body: abi.BodyBytes, want: abi.ErrShort},
		{name: "bytes: bytes after them", in: okResult(1, 0, []byte("ab")), body: abi.BodyBytes, want: abi.ErrTrailing},
		{name: "unknown body", in: okResult(0, 0), body: abi.Body(4), want: abi.ErrCorrupt},
		{name: "errors: fewer entries than the count", in: okResult(0, 2, errEntry(0, 1, "a")), body: abi.BodyIndices, inputLen: 3, want: abi.ErrShort},
		{name: "errors: entry header cut short", in: okResult(0, 1, errEntry(0, 1, "")[:11]), body: abi.BodyIndices, inputLen: 3, want: abi.ErrShort},
		{name: "errors: message beyond the bytes", in: okResult(0, 1, errEntry(0, 1, "abc")[:14]), body: abi.BodyIndices, inputLen: 3, want: abi.ErrShort},
		{name: "errors: message of 4 GiB", in: okResult(0, 1, u32(0), u32(1), u32(0xffffffff)), body: abi.BodyBytes, inputLen: 3, want: abi.ErrShort},
		{name: "errors: message not UTF-8", in: okResult(0, 1, errEntry(0, 1, "\xff")), body: abi.BodyIndices, inputLen: 3, want: abi.ErrBadUTF8},
		{name: "errors: filter index out of range", in: okResult(0, 1, errEntry(3, 1, "")), body: abi.BodyIndices, inputLen: 3, want: abi.ErrCorrupt},
		{name: "errors: map index out of range", in: okResult(0, 1, errEntry(7, 1, "")), body: abi.BodyRecords, inputLen: 3, want: abi.ErrCorrupt},
		{name: "errors: aggregate index out of range", in: okResult(1, 1, []byte{0}, errEntry(2, 1, "")), body: abi.BodyBytes, inputLen: 2, want: abi.ErrCorrupt},
		{name: "errors: any in a merge result", in: okResult(1, 1, []byte{0}, errEntry(0, 1, "")), body: abi.BodyBytes, inputLen: 0, want: abi.ErrCorrupt},
		{name: "errors: any in a finish result", in: okResult(0, 1, errEntry(0, 1, "")), body: abi.BodyRecords, inputLen: 0, want: abi.ErrCorrupt},
		{name: "errors: bytes after them", in: okResult(0, 1, errEntry(0, 1, "a"), []byte{0}), body: abi.BodyIndices, inputLen: 3, want: abi.ErrTrailing},
		{name: "errors: an event twice", in: okResult(0, 3, errEntry(2, 1, "a"), errEntry(0, 1, "b"), errEntry(2, 2, "c")), body: abi.BodyIndices, inputLen: 3, want: abi.ErrCorrupt},
		{name: "errors: an event twice among many", in: okResult(0, 40, manyErrors(40, 5)), body: abi.BodyRecords, inputLen: 100, want: abi.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := abi.ParseResult(tt.in, tt.body, tt.inputLen)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "result") {
				t.Errorf("error %q does not say it is about a result", err)
			}
		})
	}
}

// TestParseResultUnknownStatus checks that any status but 0 is a failed
// call, whatever the body kind.
func TestParseResultUnknownStatus(t *testing.T) {
	for _, body := range []abi.Body{abi.BodyEmpty, abi.BodyIndices, abi.BodyRecords, abi.BodyBytes, abi.Body(9)} {
		r, err := abi.ParseResult(cat(u32(77), u32(2), u32(0), []byte("ab")), body, 0)
		if err != nil {
			t.Fatalf("body %d: %v", body, err)
		}
		if r.Status != 77 || r.Message() != "ab" {
			t.Errorf("body %d: status %v message %q", body, r.Status, r.Message())
		}
	}
}

// TestResultRecordsCheckedWhenRead checks that ParseResult checks only the
// structure of a records body and Result.Records checks each record.
func TestResultRecordsCheckedWhenRead(t *testing.T) {
	bad := patch(goldenMapOut[0].encode(), 33, 1) // flags
	r, err := abi.ParseResult(okResult(1, 0, bad), abi.BodyRecords, 1)
	if err != nil {
		t.Fatalf("ParseResult: %v", err)
	}
	recs := r.Records()
	if recs.Len() != 1 {
		t.Errorf("Len = %d", recs.Len())
	}
	if _, ok, err := recs.Next(); ok || !errors.Is(err, abi.ErrCorrupt) {
		t.Errorf("Next = %t, %v; want false, %v", ok, err, abi.ErrCorrupt)
	}
}

func TestParseResultTruncated(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		body     abi.Body
		inputLen int
	}{
		{name: "filter", file: "result_filter", body: abi.BodyIndices, inputLen: 3},
		{name: "map", file: "result_map", body: abi.BodyRecords, inputLen: 2},
		{name: "aggregate", file: "result_aggregate", body: abi.BodyBytes, inputLen: 2},
		{name: "failed", file: "result_failed", body: abi.BodyRecords},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			full := goldenFile(t, tt.file)
			for n := range len(full) {
				if _, err := abi.ParseResult(full[:n], tt.body, tt.inputLen); err == nil {
					t.Errorf("cut to %d of %d bytes: no error", n, len(full))
				}
			}
		})
	}
}

// TestEncodeAllocs checks that encoding allocates nothing once the buffers
// have grown: the host encodes every batch and a guest every result.
func TestEncodeAllocs(t *testing.T) {
	r := goldenMeta[2].record()
	key, value := "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	acc := intData(7)
	var batch []byte
	host := make([]byte, 4096) // as guest memory: the host writes in place
	var w abi.ResultWriter
	run := func() {
		// A batch with AppendRecord.
		batch = append(batch[:0], make([]byte, abi.BatchHeaderSize)...)
		for i := range 16 {
			r.Index = uint32(i)
			batch = abi.AppendRecord(batch, &r)
		}
		abi.PutBatchHeader(batch, 16)
		// A record the host's way, in place.
		s := abi.State{Key: []byte("k"), Acc: acc}
		n := abi.PutState(host, &s)
		abi.PutBatchHeader(host[n:], 1)
		n += abi.BatchHeaderSize
		h := abi.Header{Size: uint32(abi.HeaderSize + 1 + abi.MetaEntrySize(key, value)), TypeLen: 1, MetaCount: 1}
		h.Put(host[n:])
		host[n+abi.HeaderSize] = 't'
		abi.PutMeta(host[n+abi.HeaderSize+1:], key, value)
		// Results.
		for range 4 {
			w.Reset()
			w.AppendIndex(1)
			w.AppendRecord(&r)
			w.AppendBytes(acc)
			w.AddError(2, 3, "bad amount")
			w.Finish()
			w.Reset()
			w.Fail(abi.StatusFailed, "boom")
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("encoding allocates %v times per run, want 0", n)
	}
}

// TestDecodeAllocs checks that decoding valid input allocates nothing.
func TestDecodeAllocs(t *testing.T) {
	kinds := goldenFile(t, "batch_kinds")
	meta := goldenFile(t, "batch_meta")
	mapRes := goldenFile(t, "result_map")
	filterRes := goldenFile(t, "result_filter")
	agg := goldenFile(t, "input_aggregate")
	run := func() {
		for _, in := range [][]byte{kinds, meta} {
			b, err := abi.ParseBatch(in)
			if err != nil {
				panic(err)
			}
			if err := b.Validate(); err != nil {
				panic(err)
			}
		}
		r, err := abi.ParseResult(mapRes, abi.BodyRecords, 2)
		if err != nil {
			panic(err)
		}
		if err := r.Records().Validate(); err != nil {
			panic(err)
		}
		if _, err := abi.ParseResult(filterRes, abi.BodyIndices, 3); err != nil {
			panic(err)
		}
		if _, b, err := abi.ParseAggregateInput(agg); err != nil || b.Validate() != nil {
			panic(err)
		}
	}
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("decoding allocates %v times per run, want 0", n)
	}
}

// manyErrors is n event errors, of events 0 to n-1 but the last, which
// names event dup.
func manyErrors(n, dup int) []byte {
	var b []byte
	for i := range n {
		if i == n-1 {
			i = dup
		}
		b = append(b, errEntry(uint32(i), 1, "")...)
	}
	return b
}
