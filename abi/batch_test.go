package abi_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/aegis-streaming/aegis/abi"
)

func TestBatchRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		recs []rec
	}{
		{name: "empty", recs: nil},
		{name: "one", recs: []rec{{typ: "t", kind: abi.DataString, data: []byte("x")}}},
		{name: "every kind", recs: goldenKinds},
		{name: "metadata", recs: goldenMeta},
		{name: "many", recs: func() []rec {
			rs := make([]rec, 300)
			for i := range rs {
				rs[i] = rec{index: uint32(i), typ: "t", kind: abi.DataInt, data: intData(int64(i))}
			}
			return rs
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := abi.AppendBatch(nil, records(tt.recs)...)
			// The host's way: a header, then records.
			host := make([]byte, abi.BatchHeaderSize)
			abi.PutBatchHeader(host, uint32(len(tt.recs)))
			for _, r := range tt.recs {
				host = append(host, r.encode()...)
			}
			if !bytes.Equal(b, host) {
				t.Fatalf("AppendBatch:\n got %x\nwant %x", b, host)
			}
			batch, err := abi.ParseBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := batch.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			// Validate works on a copy: the batch is still unread.
			checkBatch(t, "batch", batch, tt.recs)
			// After the end, Next keeps reporting the end.
			for range tt.recs {
				batch.Next()
			}
			if _, ok, err := batch.Next(); ok || err != nil {
				t.Errorf("Next after the end = %t, %v", ok, err)
			}
		})
	}
}

func TestBatchZeroValue(t *testing.T) {
	var b abi.Batch
	if b.Len() != 0 {
		t.Errorf("Len = %d", b.Len())
	}
	if _, ok, err := b.Next(); ok || err != nil {
		t.Errorf("Next = %t, %v; want false, nil", ok, err)
	}
	if err := b.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}

// readAll parses b as a batch and reads it to the end, returning the first
// error.
func readAll(b []byte) error {
	batch, err := abi.ParseBatch(b)
	if err != nil {
		return err
	}
	for {
		_, ok, err := batch.Next()
		if !ok {
			return err
		}
	}
}

func TestParseBatchErrors(t *testing.T) {
	two := abi.AppendBatch(nil, records(goldenMeta[1:])...)
	r0 := goldenMeta[1].encode()
	bad := rec{typ: "t", kind: abi.DataBool, data: []byte{2}}.encode()
	tests := []struct {
		name    string
		in      []byte
		want    error
		wantMsg string
	}{
		{name: "no header", in: nil, want: abi.ErrShort, wantMsg: "batch header"},
		{name: "short header", in: []byte{0, 0, 0}, want: abi.ErrShort, wantMsg: "batch header"},
		{name: "count too large for the bytes", in: cat(u32(2), goldenSmall.encode()), want: abi.ErrShort, wantMsg: "batch of 2 records"},
		{name: "count of 4 billion", in: cat(u32(0xffffffff), make([]byte, 100)), want: abi.ErrShort},
		{name: "count 1 with no record", in: cat(u32(1), make([]byte, 10)), want: abi.ErrShort},
		{name: "bytes after the records", in: append(bytes.Clone(two), 0), want: abi.ErrTrailing, wantMsg: "after 2 records"},
		{name: "bytes after an empty batch", in: cat(u32(0), []byte{1}), want: abi.ErrTrailing},
		{name: "a bad second record", in: cat(u32(2), r0, bad), want: abi.ErrBadLength, wantMsg: "batch record 1"},
		{name: "a bad first record", in: cat(u32(1), bad), want: abi.ErrBadLength, wantMsg: "batch record 0"},
		{name: "count below the records", in: cat(u32(1), r0, r0), want: abi.ErrTrailing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readAll(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantMsg)
			}
			if batch, perr := abi.ParseBatch(tt.in); perr == nil {
				if verr := batch.Validate(); !errors.Is(verr, tt.want) {
					t.Errorf("Validate = %v, want %v", verr, tt.want)
				}
			}
		})
	}
}

func TestParseBatchTruncated(t *testing.T) {
	for _, g := range []string{"batch_kinds", "batch_meta"} {
		full := goldenFile(t, g)
		for n := range len(full) {
			if err := readAll(full[:n]); !errors.Is(err, abi.ErrShort) {
				t.Errorf("%s cut to %d bytes: err = %v, want %v", g, n, err, abi.ErrShort)
			}
		}
	}
}

// TestBatchStopsEarly checks that records are decoded as they are read: a
// consumer that stops before a bad record never sees its error.
func TestBatchStopsEarly(t *testing.T) {
	bad := rec{typ: "t", kind: 9}.encode()
	b, err := abi.ParseBatch(cat(u32(2), goldenSmall.encode(), bad))
	if err != nil {
		t.Fatal(err)
	}
	v, ok, err := b.Next()
	if !ok || err != nil {
		t.Fatalf("first Next = %t, %v", ok, err)
	}
	checkView(t, "first record", v, goldenSmall)
	if _, ok, err := b.Next(); ok || !errors.Is(err, abi.ErrBadKind) {
		t.Errorf("second Next = %t, %v; want false, %v", ok, err, abi.ErrBadKind)
	}
	// A failed record stays failed.
	if _, ok, err := b.Next(); ok || !errors.Is(err, abi.ErrBadKind) {
		t.Errorf("third Next = %t, %v; want false, %v", ok, err, abi.ErrBadKind)
	}
}

func TestStateRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		s    abi.State
	}{
		{name: "empty", s: abi.State{}},
		{name: "ungrouped with accumulator", s: abi.State{Acc: intData(5)}},
		{name: "key without accumulator", s: abi.State{Key: []byte("eu-west")}},
		{name: "both", s: abi.State{Key: []byte("région"), Acc: []byte{0, 0xff, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := cat(u32(uint32(len(tt.s.Key))), tt.s.Key, u32(uint32(len(tt.s.Acc))), tt.s.Acc)
			if got := abi.AppendState(nil, &tt.s); !bytes.Equal(got, want) {
				t.Errorf("AppendState = %x, want %x", got, want)
			}
			put := make([]byte, tt.s.StateSize())
			if n := abi.PutState(put, &tt.s); n != len(want) || !bytes.Equal(put, want) {
				t.Errorf("PutState = %d bytes %x, want %x", n, put, want)
			}
			s, rest, err := abi.ParseState(append(want, 0xaa))
			if err != nil {
				t.Fatal(err)
			}
			checkState(t, s, string(tt.s.Key), tt.s.Acc)
			if !bytes.Equal(rest, []byte{0xaa}) {
				t.Errorf("rest = %x, want aa", rest)
			}

			// Each input that starts with a state.
			batch := abi.AppendBatch(nil, records(goldenAggBatch)...)
			s, b, err := abi.ParseAggregateInput(cat(want, batch))
			if err != nil {
				t.Fatalf("ParseAggregateInput: %v", err)
			}
			checkState(t, s, string(tt.s.Key), tt.s.Acc)
			checkBatch(t, "aggregate batch", b, goldenAggBatch)

			s, other, err := abi.ParseMergeInput(cat(want, u32(3), []byte("abc")))
			if err != nil {
				t.Fatalf("ParseMergeInput: %v", err)
			}
			checkState(t, s, string(tt.s.Key), tt.s.Acc)
			if string(other) != "abc" {
				t.Errorf("second accumulator = %q, want abc", other)
			}

			win := make([]byte, abi.WindowSize)
			abi.PutWindow(win, -5, 1<<62)
			if !bytes.Equal(win, cat(le.AppendUint64(nil, uint64(0xfffffffffffffffb)), le.AppendUint64(nil, 1<<62))) {
				t.Errorf("PutWindow = %x", win)
			}
			s, start, end, err := abi.ParseFinishInput(cat(want, win))
			if err != nil {
				t.Fatalf("ParseFinishInput: %v", err)
			}
			checkState(t, s, string(tt.s.Key), tt.s.Acc)
			if start != -5 || end != 1<<62 {
				t.Errorf("window = [%d, %d)", start, end)
			}
		})
	}
}

func TestAggregateInputErrors(t *testing.T) {
	state := abi.AppendState(nil, &abi.State{Key: []byte("k"), Acc: []byte("acc")})
	batch := abi.AppendBatch(nil, records(goldenAggBatch)...)
	win := make([]byte, abi.WindowSize)
	tests := []struct {
		name    string
		parse   func([]byte) error
		in      []byte
		want    error
		wantMsg string
	}{
		{name: "state: no key length", parse: parseState, in: []byte{1, 0}, want: abi.ErrShort, wantMsg: "key length"},
		{name: "state: key beyond the bytes", parse: parseState, in: cat(u32(2), []byte("k")), want: abi.ErrShort, wantMsg: "key of 2 bytes"},
		{name: "state: key of 4 GiB", parse: parseState, in: cat(u32(0xffffffff), make([]byte, 8)), want: abi.ErrShort},
		{name: "state: no accumulator length", parse: parseState, in: cat(u32(1), []byte("k"), []byte{0}), want: abi.ErrShort, wantMsg: "accumulator length"},
		{name: "state: accumulator beyond the bytes", parse: parseState, in: cat(u32(0), u32(1)), want: abi.ErrShort, wantMsg: "accumulator of 1 bytes"},
		{name: "aggregate: bad state", parse: parseAggregate, in: []byte{9}, want: abi.ErrShort},
		{name: "aggregate: no batch", parse: parseAggregate, in: state, want: abi.ErrShort, wantMsg: "batch header"},
		{name: "aggregate: batch truncated", parse: parseAggregate, in: cat(state, batch[:len(batch)-1]), want: abi.ErrShort},
		{name: "aggregate: bytes after the batch", parse: parseAggregate, in: cat(state, batch, []byte{0}), want: abi.ErrTrailing},
		{name: "merge: bad state", parse: parseMerge, in: cat(u32(5)), want: abi.ErrShort},
		{name: "merge: no second accumulator", parse: parseMerge, in: state, want: abi.ErrShort, wantMsg: "second accumulator length"},
		{name: "merge: second accumulator beyond the bytes", parse: parseMerge, in: cat(state, u32(4), []byte("abc")), want: abi.ErrShort},
		{name: "merge: bytes after the second accumulator", parse: parseMerge, in: cat(state, u32(1), []byte("ab")), want: abi.ErrTrailing},
		{name: "finish: bad state", parse: parseFinish, in: nil, want: abi.ErrShort},
		{name: "finish: no window", parse: parseFinish, in: state, want: abi.ErrCorrupt, wantMsg: "window of 0 bytes"},
		{name: "finish: short window", parse: parseFinish, in: cat(state, win[:15]), want: abi.ErrCorrupt},
		{name: "finish: long window", parse: parseFinish, in: cat(state, win, []byte{0}), want: abi.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestAggregateInputsTruncated(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		parse func([]byte) error
	}{
		{name: "aggregate", file: "input_aggregate", parse: parseAggregate},
		{name: "merge", file: "input_merge", parse: parseMerge},
		{name: "finish", file: "input_finish", parse: parseFinish},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			full := goldenFile(t, tt.file)
			if err := tt.parse(full); err != nil {
				t.Fatalf("full input: %v", err)
			}
			for n := range len(full) {
				err := tt.parse(full[:n])
				if !errors.Is(err, abi.ErrShort) && !errors.Is(err, abi.ErrCorrupt) {
					t.Errorf("cut to %d bytes: err = %v, want %v or %v", n, err, abi.ErrShort, abi.ErrCorrupt)
				}
			}
		})
	}
}

func parseState(b []byte) error {
	_, rest, err := abi.ParseState(b)
	if err == nil && len(rest) != 0 {
		return abi.ErrTrailing
	}
	return err
}

func parseAggregate(b []byte) error {
	_, batch, err := abi.ParseAggregateInput(b)
	if err != nil {
		return err
	}
	return batch.Validate()
}

func parseMerge(b []byte) error {
	_, _, err := abi.ParseMergeInput(b)
	return err
}

func parseFinish(b []byte) error {
	_, _, _, err := abi.ParseFinishInput(b)
	return err
}

func goldenFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := readGolden(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
