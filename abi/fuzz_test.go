package abi_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/aegis-streaming/aegis/abi"
)

// goldenSeeds returns every golden vector, the seeds of every fuzz target.
func goldenSeeds(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.bin"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden files: %v", err)
	}
	var seeds [][]byte
	for _, name := range files {
		seeds = append(seeds, goldenFile(f, name[len("testdata/"):len(name)-len(".bin")]))
	}
	return seeds
}

func FuzzDecodeRecord(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
		if len(s) > abi.BatchHeaderSize {
			f.Add(s[abi.BatchHeaderSize:]) // the first record of a batch
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, rest, err := abi.DecodeRecord(b)
		if err != nil {
			return
		}
		size := len(b) - len(rest)
		if int(v.Size) != size {
			t.Fatalf("Size = %d, but %d bytes were used", v.Size, size)
		}
		r := recordOf(v)
		if enc := abi.AppendRecord(nil, &r); !bytes.Equal(enc, b[:size]) {
			t.Fatalf("re-encoded:\n got %x\nwant %x", enc, b[:size])
		}
		n := 0
		for k, val, rest, ok := abi.NextMeta(v.Meta); ok; k, val, rest, ok = abi.NextMeta(rest) {
			// Keys are unique, so a lookup finds this entry.
			if got, ok := abi.LookupMeta(v.Meta, string(k)); !ok || !bytes.Equal(got, val) {
				t.Fatalf("LookupMeta(%q) = %q, %t; want %q", k, got, ok, val)
			}
			n++
		}
		if n != int(v.MetaCount) {
			t.Fatalf("%d metadata entries, MetaCount %d", n, v.MetaCount)
		}
	})
}

// readBatch reads every record of b and returns them, or the first error.
func readBatch(b abi.Batch) ([]abi.Record, error) {
	var recs []abi.Record
	for {
		v, ok, err := b.Next()
		if !ok {
			return recs, err
		}
		recs = append(recs, recordOf(v))
	}
}

func FuzzParseBatch(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := abi.ParseBatch(in)
		if err != nil {
			return
		}
		verr := b.Validate()
		recs, err := readBatch(b)
		if (err == nil) != (verr == nil) {
			t.Fatalf("Next ended with %v, Validate with %v", err, verr)
		}
		if err != nil {
			return
		}
		if len(recs) != b.Len() {
			t.Fatalf("%d records, Len %d", len(recs), b.Len())
		}
		if enc := abi.AppendBatch(nil, recs...); !bytes.Equal(enc, in) {
			t.Fatalf("re-encoded:\n got %x\nwant %x", enc, in)
		}
	})
}

func FuzzParseResult(f *testing.F) {
	seeds := map[string]struct {
		body     abi.Body
		inputLen uint16
	}{
		"result_filter":    {abi.BodyIndices, 3},
		"result_map":       {abi.BodyRecords, 2},
		"result_aggregate": {abi.BodyBytes, 2},
		"result_failed":    {abi.BodyEmpty, 0},
	}
	for name, s := range seeds {
		f.Add(goldenFile(f, name), uint8(s.body), s.inputLen)
	}
	for _, s := range goldenSeeds(f) {
		f.Add(s, uint8(abi.BodyRecords), uint16(8))
	}
	f.Fuzz(func(t *testing.T, in []byte, body uint8, inputLen uint16) {
		// Body values 0 to 3 are the kinds; 4 stands for an unknown one.
		r, err := abi.ParseResult(in, abi.Body(body%5), int(inputLen))
		if err != nil {
			return
		}
		var w abi.ResultWriter
		w.Reset()
		var enc []byte
		if r.Status != abi.StatusOK {
			enc = w.Fail(r.Status, r.Message())
		} else {
			switch abi.Body(body % 5) {
			case abi.BodyIndices:
				for i := range int(r.Count) {
					if x := r.Index(i); x >= uint32(inputLen) || (i > 0 && x <= r.Index(i-1)) {
						t.Fatalf("index %d is %d after %d, input of %d", i, x, r.Index(max(i-1, 0)), inputLen)
					}
				}
			case abi.BodyRecords:
				recs, err := readBatch(r.Records())
				if err == nil && !bytes.Equal(abi.AppendBatch(nil, recs...)[abi.BatchHeaderSize:], r.Body) {
					t.Fatalf("records re-encoded differ from the body %x", r.Body)
				}
			case abi.BodyBytes:
				if len(r.Body) != int(r.Count) {
					t.Fatalf("accumulator of %d bytes, count %d", len(r.Body), r.Count)
				}
			}
			w.Added(append(w.Buffer(), r.Body...), int(r.Count))
			n := 0
			for e, rest, ok := abi.NextError(r.Errors); ok; e, rest, ok = abi.NextError(rest) {
				if e.Index >= uint32(inputLen) {
					t.Fatalf("error index %d, input of %d", e.Index, inputLen)
				}
				w.AddError(e.Index, e.Code, string(e.Message))
				n++
			}
			if n != int(r.ErrorCount) {
				t.Fatalf("%d errors, ErrorCount %d", n, r.ErrorCount)
			}
			enc = w.Finish()
		}
		if !bytes.Equal(enc, in) {
			t.Fatalf("re-encoded:\n got %x\nwant %x", enc, in)
		}
	})
}

func FuzzParseAggregateInput(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, b, err := abi.ParseAggregateInput(in)
		if err != nil {
			return
		}
		recs, err := readBatch(b)
		if err != nil {
			return
		}
		enc := abi.AppendBatch(abi.AppendState(nil, &s), recs...)
		if !bytes.Equal(enc, in) {
			t.Fatalf("re-encoded:\n got %x\nwant %x", enc, in)
		}
	})
}

func FuzzParseMergeInput(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, other, err := abi.ParseMergeInput(in)
		if err != nil {
			return
		}
		enc := make([]byte, s.StateSize())
		abi.PutState(enc, &s)
		enc = append(le.AppendUint32(enc, uint32(len(other))), other...)
		if !bytes.Equal(enc, in) {
			t.Fatalf("re-encoded:\n got %x\nwant %x", enc, in)
		}
	})
}

func FuzzParseFinishInput(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, start, end, err := abi.ParseFinishInput(in)
		if err != nil {
			return
		}
		enc := abi.AppendState(nil, &s)
		enc = append(enc, make([]byte, abi.WindowSize)...)
		abi.PutWindow(enc[len(enc)-abi.WindowSize:], start, end)
		if !bytes.Equal(enc, in) {
			t.Fatalf("re-encoded:\n got %x\nwant %x", enc, in)
		}
	})
}
