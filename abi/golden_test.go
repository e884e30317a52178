package abi_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/aegis-streaming/aegis/abi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the encoders")

// The values of the golden vectors; testdata/README.md describes them in
// words. t0 is 2023-11-14T22:13:20Z in nanoseconds since the Unix epoch.
const t0 int64 = 1_700_000_000_000_000_000

// goldenSmall is the record of ABI.md's worked example.
var goldenSmall = rec{
	index: 1, id: testID(0), time: t0, kind: abi.DataInt,
	typ: "tick", source: "s", data: intData(42), meta: []kv{{"k", "v"}},
}

// goldenKinds is one record of each data kind.
var goldenKinds = func() []rec {
	data := []struct {
		kind abi.DataKind
		name string
		data []byte
	}{
		{abi.DataNull, "null", nil},
		{abi.DataBool, "bool", []byte{1}},
		{abi.DataInt, "int", intData(-2)},
		{abi.DataFloat, "float", floatData(-1.5)},
		{abi.DataString, "string", []byte("héllo, 世界 🌍")},
		{abi.DataBytes, "bytes", []byte{0x00, 0xff, 0x01, 0xfe, 0x80, 0x7f}},
		{abi.DataJSON, "json", []byte(`{"a":[1,2.5,"ü"],"b":null}`)},
	}
	rs := make([]rec, len(data))
	for i, d := range data {
		rs[i] = rec{
			index: uint32(i), id: testID(i), time: t0 + int64(i), kind: d.kind,
			typ: "kind." + d.name, source: "urn:aegis:test", data: d.data,
		}
	}
	return rs
}()

// goldenMeta is three records with 0, 1 and 2 metadata entries.
var goldenMeta = []rec{
	{index: 0, id: testID(0), time: t0, kind: abi.DataInt, typ: "order.created", data: intData(0)},
	{index: 1, id: testID(1), time: t0 + 1, kind: abi.DataInt, typ: "order.created", data: intData(1),
		meta: []kv{{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}},
	{index: 2, id: testID(2), time: t0 + 2, kind: abi.DataInt, typ: "order.created", data: intData(2),
		meta: []kv{{"région", "Île-de-France"}, {"empty", ""}}},
}

// goldenMapOut is the two records of the map result.
var goldenMapOut = []rec{
	{index: 0, kind: abi.DataString, typ: "order.enriched", data: []byte("A")},
	{index: 1, id: testID(2), time: t0 + 5, kind: abi.DataJSON, typ: "order.enriched",
		source: "urn:aegis:enrich", data: []byte(`{"ok":true}`), meta: []kv{{"tenant", "acme"}}},
}

// goldenAggBatch is the batch of the aggregate input.
var goldenAggBatch = []rec{
	{index: 0, id: testID(0), time: t0, kind: abi.DataInt, typ: "sale", source: "shop", data: intData(3)},
	{index: 1, id: testID(1), time: t0 + 1, kind: abi.DataInt, typ: "sale", source: "shop", data: intData(4)},
}

const (
	goldenFailMsg = "lookup failed: café ☕"
	goldenWindowA = t0
	goldenWindowB = t0 + 60_000_000_000
)

type golden struct {
	name  string                       // file name without ".bin"
	build func() []byte                // the encoding, from the package's encoders
	check func(t *testing.T, b []byte) // decodes b and checks it field by field
}

var goldens = []golden{
	{
		name:  "record_small",
		build: func() []byte { r := goldenSmall.record(); return abi.AppendRecord(nil, &r) },
		check: func(t *testing.T, b []byte) {
			v, rest, err := abi.DecodeRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(rest) != 0 {
				t.Errorf("%d bytes after the record", len(rest))
			}
			checkView(t, "record", v, goldenSmall)
		},
	},
	{
		name:  "batch_empty",
		build: func() []byte { return abi.AppendBatch(nil) },
		check: func(t *testing.T, b []byte) {
			batch, err := abi.ParseBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			checkBatch(t, "batch", batch, nil)
		},
	},
	{
		name:  "batch_kinds",
		build: func() []byte { return abi.AppendBatch(nil, records(goldenKinds)...) },
		check: func(t *testing.T, b []byte) {
			batch, err := abi.ParseBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			checkBatch(t, "batch", batch, goldenKinds)
			// The typed views of the number kinds.
			batch, _ = abi.ParseBatch(b)
			for {
				v, ok, _ := batch.Next()
				if !ok {
					break
				}
				switch v.Kind {
				case abi.DataInt:
					if got := abi.Int(v.Data); got != -2 {
						t.Errorf("int data = %d, want -2", got)
					}
				case abi.DataFloat:
					if got := abi.Float(v.Data); got != -1.5 {
						t.Errorf("float data = %v, want -1.5", got)
					}
				}
			}
		},
	},
	{
		name:  "batch_meta",
		build: func() []byte { return abi.AppendBatch(nil, records(goldenMeta)...) },
		check: func(t *testing.T, b []byte) {
			batch, err := abi.ParseBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			checkBatch(t, "batch", batch, goldenMeta)
		},
	},
	{
		name: "result_filter",
		build: func() []byte {
			var w abi.ResultWriter
			w.Reset()
			w.AppendIndex(0)
			w.AppendIndex(2)
			w.AddError(1, 7, "amount missing")
			return w.Finish()
		},
		check: func(t *testing.T, b []byte) {
			r, err := abi.ParseResult(b, abi.BodyIndices, 3)
			if err != nil {
				t.Fatal(err)
			}
			checkResultHeader(t, r, abi.StatusOK, 2, 1)
			if r.Index(0) != 0 || r.Index(1) != 2 {
				t.Errorf("indices = %d, %d; want 0, 2", r.Index(0), r.Index(1))
			}
			checkErrors(t, r.Errors, []abi.EventError{{Index: 1, Code: 7, Message: []byte("amount missing")}})
		},
	},
	{
		name: "result_map",
		build: func() []byte {
			var w abi.ResultWriter
			w.Reset()
			for _, r := range records(goldenMapOut) {
				w.AppendRecord(&r)
			}
			return w.Finish()
		},
		check: func(t *testing.T, b []byte) {
			r, err := abi.ParseResult(b, abi.BodyRecords, 2)
			if err != nil {
				t.Fatal(err)
			}
			checkResultHeader(t, r, abi.StatusOK, 2, 0)
			checkBatch(t, "records", r.Records(), goldenMapOut)
			checkErrors(t, r.Errors, nil)
		},
	},
	{
		name: "result_aggregate",
		build: func() []byte {
			var w abi.ResultWriter
			w.Reset()
			w.AppendBytes(intData(12))
			w.AddError(0, 2, "not a number")
			return w.Finish()
		},
		check: func(t *testing.T, b []byte) {
			r, err := abi.ParseResult(b, abi.BodyBytes, 2)
			if err != nil {
				t.Fatal(err)
			}
			checkResultHeader(t, r, abi.StatusOK, 8, 1)
			if !bytes.Equal(r.Body, intData(12)) {
				t.Errorf("accumulator = %x, want int 12", r.Body)
			}
			checkErrors(t, r.Errors, []abi.EventError{{Index: 0, Code: 2, Message: []byte("not a number")}})
		},
	},
	{
		name: "result_failed",
		build: func() []byte {
			var w abi.ResultWriter
			w.Reset()
			w.AppendIndex(5) // discarded by Fail
			return w.Fail(abi.StatusFailed, goldenFailMsg)
		},
		check: func(t *testing.T, b []byte) {
			for _, body := range []abi.Body{abi.BodyEmpty, abi.BodyIndices, abi.BodyRecords, abi.BodyBytes} {
				r, err := abi.ParseResult(b, body, 0)
				if err != nil {
					t.Fatalf("body %d: %v", body, err)
				}
				checkResultHeader(t, r, abi.StatusFailed, uint32(len(goldenFailMsg)), 0)
				if r.Message() != goldenFailMsg {
					t.Errorf("Message() = %q, want %q", r.Message(), goldenFailMsg)
				}
			}
		},
	},
	{
		name: "input_aggregate",
		build: func() []byte {
			b := abi.AppendState(nil, &abi.State{Key: []byte("eu-west"), Acc: intData(5)})
			return abi.AppendBatch(b, records(goldenAggBatch)...)
		},
		check: func(t *testing.T, b []byte) {
			s, batch, err := abi.ParseAggregateInput(b)
			if err != nil {
				t.Fatal(err)
			}
			checkState(t, s, "eu-west", intData(5))
			checkBatch(t, "batch", batch, goldenAggBatch)
		},
	},
	{
		name: "input_merge",
		build: func() []byte {
			b := abi.AppendState(nil, &abi.State{Key: []byte{}, Acc: intData(5)})
			b = le.AppendUint32(b, 8)
			return append(b, intData(7)...)
		},
		check: func(t *testing.T, b []byte) {
			s, other, err := abi.ParseMergeInput(b)
			if err != nil {
				t.Fatal(err)
			}
			checkState(t, s, "", intData(5))
			if !bytes.Equal(other, intData(7)) {
				t.Errorf("second accumulator = %x, want int 7", other)
			}
		},
	},
	{
		name: "input_finish",
		build: func() []byte {
			b := abi.AppendState(nil, &abi.State{Key: []byte("eu-west")})
			b = append(b, make([]byte, abi.WindowSize)...)
			abi.PutWindow(b[len(b)-abi.WindowSize:], goldenWindowA, goldenWindowB)
			return b
		},
		check: func(t *testing.T, b []byte) {
			s, start, end, err := abi.ParseFinishInput(b)
			if err != nil {
				t.Fatal(err)
			}
			checkState(t, s, "eu-west", nil)
			if start != goldenWindowA || end != goldenWindowB {
				t.Errorf("window = [%d, %d), want [%d, %d)", start, end, goldenWindowA, goldenWindowB)
			}
		},
	},
}

func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			path := filepath.Join("testdata", g.name+".bin")
			want := g.build()
			if *update {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the encoders' output at byte %d:\n file    %x\n encoder %x",
					path, firstDiff(got, want), got, want)
			}
			g.check(t, got)
		})
	}
}

// TestGoldenFilesListed checks that every file in testdata has a vector, so
// that a stale file cannot linger.
func TestGoldenFilesListed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, g := range goldens {
		known[filepath.Join("testdata", g.name+".bin")] = true
	}
	for _, f := range files {
		if !known[f] {
			t.Errorf("%s has no golden vector", f)
		}
	}
	if len(files) != len(goldens) {
		t.Errorf("%d files for %d vectors", len(files), len(goldens))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func checkResultHeader(t *testing.T, r abi.Result, status abi.Status, count, nerrs uint32) {
	t.Helper()
	if r.Status != status || r.Count != count || r.ErrorCount != nerrs {
		t.Errorf("result status %d count %d errors %d, want %d %d %d",
			r.Status, r.Count, r.ErrorCount, status, count, nerrs)
	}
}

func checkErrors(t *testing.T, e []byte, want []abi.EventError) {
	t.Helper()
	i := 0
	for ee, rest, ok := abi.NextError(e); ok; ee, rest, ok = abi.NextError(rest) {
		if i >= len(want) {
			t.Errorf("extra event error %d: %+v", i, ee)
		} else if ee.Index != want[i].Index || ee.Code != want[i].Code || !bytes.Equal(ee.Message, want[i].Message) {
			t.Errorf("event error %d = {%d %d %q}, want {%d %d %q}", i,
				ee.Index, ee.Code, ee.Message, want[i].Index, want[i].Code, want[i].Message)
		}
		i++
	}
	if i < len(want) {
		t.Errorf("%d event errors, want %d", i, len(want))
	}
}

func checkState(t *testing.T, s abi.State, key string, acc []byte) {
	t.Helper()
	if string(s.Key) != key || !bytes.Equal(s.Acc, acc) {
		t.Errorf("state = key %q acc %x, want key %q acc %x", s.Key, s.Acc, key, acc)
	}
}

// readGolden reads testdata/name.bin.
func readGolden(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", name+".bin"))
}
