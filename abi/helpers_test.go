package abi_test

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"testing"

	"github.com/aegis-streaming/aegis/abi"
)

var le = binary.LittleEndian

// kv is one metadata entry of a test record.
type kv struct{ k, v string }

// rec is a test record described field by field, independently of the
// encoder, so that decoded views can be compared with it.
type rec struct {
	index  uint32
	id     [16]byte
	time   int64
	kind   abi.DataKind
	typ    string
	source string
	data   []byte
	meta   []kv
}

// record converts r to the encoder's input.
func (r rec) record() abi.Record {
	var m []byte
	for _, e := range r.meta {
		m = abi.AppendMeta(m, e.k, e.v)
	}
	return abi.Record{
		Index: r.index, ID: r.id, Time: r.time, Kind: r.kind,
		Type: []byte(r.typ), Source: []byte(r.source), Data: r.data,
		Meta: m, MetaCount: uint16(len(r.meta)),
	}
}

// encode returns the encoding of r.
func (r rec) encode() []byte {
	x := r.record()
	return abi.AppendRecord(nil, &x)
}

// size is the encoded size of r, computed from the layout.
func (r rec) size() int {
	n := abi.HeaderSize + len(r.typ) + len(r.source) + len(r.data)
	for _, e := range r.meta {
		n += 8 + len(e.k) + len(e.v)
	}
	return n
}

// records converts test records to the encoder's input.
func records(rs []rec) []abi.Record {
	out := make([]abi.Record, len(rs))
	for i, r := range rs {
		out[i] = r.record()
	}
	return out
}

// checkView compares a decoded record with what it should be, field by field.
func checkView(t *testing.T, what string, v abi.View, want rec) {
	t.Helper()
	if v.Size != uint32(want.size()) {
		t.Errorf("%s: Size = %d, want %d", what, v.Size, want.size())
	}
	if v.Index != want.index {
		t.Errorf("%s: Index = %d, want %d", what, v.Index, want.index)
	}
	if v.ID != want.id {
		t.Errorf("%s: ID = %x, want %x", what, v.ID, want.id)
	}
	if v.Time != want.time {
		t.Errorf("%s: Time = %d, want %d", what, v.Time, want.time)
	}
	if v.Kind != want.kind {
		t.Errorf("%s: Kind = %d, want %d", what, v.Kind, want.kind)
	}
	if v.Flags != 0 {
		t.Errorf("%s: Flags = %#x, want 0", what, v.Flags)
	}
	if v.TypeLen != uint32(len(want.typ)) || string(v.Type) != want.typ {
		t.Errorf("%s: Type = %q (TypeLen %d), want %q", what, v.Type, v.TypeLen, want.typ)
	}
	if v.SourceLen != uint32(len(want.source)) || string(v.Source) != want.source {
		t.Errorf("%s: Source = %q (SourceLen %d), want %q", what, v.Source, v.SourceLen, want.source)
	}
	if v.DataLen != uint32(len(want.data)) || !bytes.Equal(v.Data, want.data) {
		t.Errorf("%s: Data = %x (DataLen %d), want %x", what, v.Data, v.DataLen, want.data)
	}
	if int(v.MetaCount) != len(want.meta) {
		t.Errorf("%s: MetaCount = %d, want %d", what, v.MetaCount, len(want.meta))
	}
	i := 0
	for k, val, rest, ok := abi.NextMeta(v.Meta); ok; k, val, rest, ok = abi.NextMeta(rest) {
		if i >= len(want.meta) {
			t.Errorf("%s: extra metadata entry %d: %q=%q", what, i, k, val)
		} else if string(k) != want.meta[i].k || string(val) != want.meta[i].v {
			t.Errorf("%s: metadata entry %d = %q=%q, want %q=%q", what, i, k, val, want.meta[i].k, want.meta[i].v)
		}
		i++
	}
	if i < len(want.meta) {
		t.Errorf("%s: %d metadata entries, want %d", what, i, len(want.meta))
	}
}

// checkBatch reads every record of b and compares them with want.
func checkBatch(t *testing.T, what string, b abi.Batch, want []rec) {
	t.Helper()
	if b.Len() != len(want) {
		t.Errorf("%s: Len = %d, want %d", what, b.Len(), len(want))
	}
	for i := 0; ; i++ {
		v, ok, err := b.Next()
		if err != nil {
			t.Fatalf("%s: Next after %d records: %v", what, i, err)
		}
		if !ok {
			if i != len(want) {
				t.Errorf("%s: %d records, want %d", what, i, len(want))
			}
			return
		}
		if i >= len(want) {
			t.Fatalf("%s: more than %d records", what, len(want))
		}
		checkView(t, what+" record "+strconv.Itoa(i), v, want[i])
	}
}

// recordOf converts a decoded view back to the encoder's input.
func recordOf(v abi.View) abi.Record {
	return abi.Record{
		Index: v.Index, ID: v.ID, Time: v.Time, Kind: v.Kind,
		Type: v.Type, Source: v.Source, Data: v.Data, Meta: v.Meta, MetaCount: v.MetaCount,
	}
}

// u32 and i64 build little-endian bytes for hand-made inputs.
func u32(v uint32) []byte { return le.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func intData(v int64) []byte {
	d := abi.IntData(v)
	return d[:]
}

func floatData(v float64) []byte {
	d := abi.FloatData(v)
	return d[:]
}

// testID returns an ID whose byte j is 16*i + j.
func testID(i int) [16]byte {
	var id [16]byte
	for j := range id {
		id[j] = byte(16*i + j)
	}
	return id
}
