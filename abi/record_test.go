package abi_test

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/aegis-streaming/aegis/abi"
)

func TestHeaderLayout(t *testing.T) {
	h := abi.Header{
		Size: 0x04030201, Index: 0x08070605, ID: testID(1), Time: -2,
		Kind: abi.DataJSON, Flags: 0xaa, MetaCount: 0x0201,
		TypeLen: 0x11, SourceLen: 0x22, DataLen: 0x33,
	}
	b := make([]byte, abi.HeaderSize)
	h.Put(b)
	want := cat(
		u32(0x04030201), // Size
		u32(0x08070605), // Index
		[]byte{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f},
		[]byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // Time -2
		[]byte{6, 0xaa}, // Kind, Flags
		[]byte{1, 2},    // MetaCount
		u32(0x11),       // TypeLen
		u32(0x22),       // SourceLen
		u32(0x33),       // DataLen
	)
	if !bytes.Equal(b, want) {
		t.Fatalf("Header.Put:\n got %x\nwant %x", b, want)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	many := make([]kv, 40)
	for i := range many {
		many[i] = kv{"key" + strconv.Itoa(i), strings.Repeat("v", i)}
	}
	tests := []struct {
		name string
		rec  rec
	}{
		{name: "zero", rec: rec{}},
		{name: "null", rec: rec{index: 3, id: testID(1), time: 1, typ: "t", kind: abi.DataNull}},
		{name: "bool false", rec: rec{typ: "t", kind: abi.DataBool, data: []byte{0}}},
		{name: "bool true", rec: rec{typ: "t", kind: abi.DataBool, data: []byte{1}}},
		{name: "int min", rec: rec{typ: "t", kind: abi.DataInt, data: intData(math.MinInt64)}},
		{name: "float nan", rec: rec{typ: "t", kind: abi.DataFloat, data: floatData(math.NaN())}},
		{name: "empty string", rec: rec{typ: "t", kind: abi.DataString, data: []byte{}}},
		{name: "unicode string", rec: rec{typ: "t", kind: abi.DataString, data: []byte("日本語 ✓ 🌍")}},
		{name: "binary bytes", rec: rec{typ: "t", kind: abi.DataBytes, data: []byte{0, 0xff, 0xc3, 0x28}}},
		{name: "json", rec: rec{typ: "t", kind: abi.DataJSON, data: []byte(`[1,{"a":null}]`)}},
		{name: "json not checked", rec: rec{typ: "t", kind: abi.DataJSON, data: []byte(`{not json`)}},
		{name: "negative time", rec: rec{typ: "t", time: -1}},
		{name: "max index", rec: rec{typ: "t", index: math.MaxUint32}},
		{name: "type of 255 bytes", rec: rec{typ: strings.Repeat("x", abi.MaxTypeLen)}},
		{name: "unicode type and source", rec: rec{typ: "ordre.créé", source: "urn:ünï"}},
		{name: "one metadata entry", rec: rec{typ: "t", meta: []kv{{"k", "v"}}}},
		{name: "empty metadata value", rec: rec{typ: "t", meta: []kv{{"k", ""}, {"ü", "ö"}}}},
		{name: "16 metadata entries", rec: rec{typ: "t", meta: many[:16]}},
		{name: "40 metadata entries", rec: rec{typ: "t", meta: many}},
		{name: "keys that share a prefix", rec: rec{typ: "t", meta: []kv{{"a", "1"}, {"ab", "2"}, {"abc", "3"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rec.record()
			if r.Size() != tt.rec.size() {
				t.Errorf("Size() = %d, want %d", r.Size(), tt.rec.size())
			}
			prefix := []byte("prefix")
			b := abi.AppendRecord(prefix, &r)
			if !bytes.Equal(b[:len(prefix)], prefix) {
				t.Fatalf("AppendRecord overwrote the bytes before it")
			}
			enc := b[len(prefix):]
			if len(enc) != tt.rec.size() {
				t.Fatalf("encoded %d bytes, want %d", len(enc), tt.rec.size())
			}
			v, rest, err := abi.DecodeRecord(append(enc, "next"...))
			if err != nil {
				t.Fatal(err)
			}
			if string(rest) != "next" {
				t.Errorf("rest = %q, want %q", rest, "next")
			}
			checkView(t, "record", v, tt.rec)
			// Re-encoding the view gives the same bytes.
			again := recordOf(v)
			if got := abi.AppendRecord(nil, &again); !bytes.Equal(got, enc) {
				t.Errorf("re-encoded:\n got %x\nwant %x", got, enc)
			}
			// The host's way: Header.Put and PutMeta into a buffer.
			host := make([]byte, len(enc))
			h := v.Header
			h.Put(host)
			n := abi.HeaderSize
			n += copy(host[n:], tt.rec.typ)
			n += copy(host[n:], tt.rec.source)
			n += copy(host[n:], tt.rec.data)
			for _, e := range tt.rec.meta {
				if m := abi.PutMeta(host[n:], e.k, e.v); m != abi.MetaEntrySize(e.k, e.v) {
					t.Errorf("PutMeta wrote %d bytes, MetaEntrySize says %d", m, abi.MetaEntrySize(e.k, e.v))
				}
				n += abi.MetaEntrySize(e.k, e.v)
			}
			if !bytes.Equal(host, enc) {
				t.Errorf("Header.Put and PutMeta:\n got %x\nwant %x", host, enc)
			}
		})
	}
}

func TestDecodeRecordTruncated(t *testing.T) {
	full := rec{index: 1, id: testID(3), time: 9, kind: abi.DataString, typ: "type", source: "src",
		data: []byte("data"), meta: []kv{{"k1", "v1"}, {"k2", ""}}}.encode()
	for n := range len(full) {
		_, _, err := abi.DecodeRecord(full[:n])
		if !errors.Is(err, abi.ErrShort) {
			t.Errorf("%d of %d bytes: err = %v, want %v", n, len(full), err, abi.ErrShort)
		}
	}
}

// patch returns a copy of b with v written at off.
func patch(b []byte, off int, v ...byte) []byte {
	c := bytes.Clone(b)
	copy(c[off:], v)
	return c
}

func TestDecodeRecordErrors(t *testing.T) {
	base := rec{typ: "t", kind: abi.DataInt, data: intData(1), meta: []kv{{"k", "v"}}}
	enc := base.encode() // type at 48, data at 49, metadata entry at 57
	withData := func(kind abi.DataKind, d []byte) []byte {
		return rec{typ: "t", kind: kind, data: d}.encode()
	}
	withMeta := func(m ...kv) []byte { return rec{typ: "t", meta: m}.encode() }
	manyDup := make([]kv, 30)
	for i := range manyDup {
		manyDup[i] = kv{"key" + strconv.Itoa(i), ""}
	}
	manyDup[29].k = "key3"
	big := u32(abi.MaxFieldLen + 1)

	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{name: "empty", in: nil, want: abi.ErrShort},
		{name: "unknown kind 7", in: patch(enc, 32, 7), want: abi.ErrBadKind},
		{name: "unknown kind 255", in: patch(enc, 32, 255), want: abi.ErrBadKind},
		{name: "null with data", in: withData(abi.DataNull, []byte{0}), want: abi.ErrBadLength},
		{name: "bool of 0 bytes", in: withData(abi.DataBool, nil), want: abi.ErrBadLength},
		{name: "bool of 2 bytes", in: withData(abi.DataBool, []byte{1, 0}), want: abi.ErrBadLength},
		{name: "bool of value 2", in: withData(abi.DataBool, []byte{2}), want: abi.ErrBadLength},
		{name: "int of 7 bytes", in: withData(abi.DataInt, make([]byte, 7)), want: abi.ErrBadLength},
		{name: "int of 0 bytes", in: withData(abi.DataInt, nil), want: abi.ErrBadLength},
		{name: "float of 9 bytes", in: withData(abi.DataFloat, make([]byte, 9)), want: abi.ErrBadLength},
		{name: "string not UTF-8", in: withData(abi.DataString, []byte("a\xffb")), want: abi.ErrBadUTF8},
		{name: "string with a surrogate", in: withData(abi.DataString, []byte("\xed\xa0\x80")), want: abi.ErrBadUTF8},
		{name: "type not UTF-8", in: rec{typ: "\xc3"}.encode(), want: abi.ErrBadUTF8},
		{name: "source not UTF-8", in: rec{typ: "t", source: "\x80"}.encode(), want: abi.ErrBadUTF8},
		{name: "metadata key not UTF-8", in: withMeta(kv{"\xff", "v"}), want: abi.ErrBadUTF8},
		{name: "metadata value not UTF-8", in: withMeta(kv{"k", "\xfe"}), want: abi.ErrBadUTF8},
		{name: "type of 256 bytes", in: rec{typ: strings.Repeat("x", 256)}.encode(), want: abi.ErrTooLarge},
		{name: "type length over the limit", in: patch(enc, 36, 0xff, 0xff, 0xff, 0xff), want: abi.ErrTooLarge},
		{name: "source length over the limit", in: patch(enc, 40, big...), want: abi.ErrTooLarge},
		{name: "data length over the limit", in: patch(enc, 44, big...), want: abi.ErrTooLarge},
		{name: "metadata key length over the limit", in: patch(enc, 57, big...), want: abi.ErrTooLarge},
		{name: "metadata value length over the limit", in: patch(enc, 61, big...), want: abi.ErrTooLarge},
		{name: "flags", in: patch(enc, 33, 1), want: abi.ErrCorrupt},
		{name: "flags high bit", in: patch(enc, 33, 0x80), want: abi.ErrCorrupt},
		{name: "size 0", in: patch(enc, 0, 0, 0, 0, 0), want: abi.ErrCorrupt},
		{name: "size below the header", in: patch(enc, 0, abi.HeaderSize-1), want: abi.ErrCorrupt},
		{name: "size below the fields", in: patch(enc, 0, abi.HeaderSize+1+8-1), want: abi.ErrCorrupt},
		{name: "size beyond the bytes", in: patch(enc, 0, byte(len(enc)+1)), want: abi.ErrShort},
		{name: "size of 4 GiB", in: patch(enc, 0, 0xff, 0xff, 0xff, 0xff), want: abi.ErrShort},
		{name: "type length beyond the size", in: patch(enc, 36, 200), want: abi.ErrCorrupt},
		{name: "data length beyond the size", in: patch(enc, 44, 0xff, 0xff, 0xff, 0x3f), want: abi.ErrCorrupt},
		{name: "bytes after the metadata", in: patch(append(bytes.Clone(enc), 0), 0, byte(len(enc)+1)), want: abi.ErrTrailing},
		{name: "bytes and no metadata", in: patch(append(bytes.Clone(enc), 0), 34, 0, 0), want: abi.ErrTrailing},
		{name: "fewer metadata entries than the count", in: patch(enc, 34, 2), want: abi.ErrShort},
		{name: "metadata count of 65535", in: patch(enc, 34, 0xff, 0xff), want: abi.ErrShort},
		{name: "metadata count below the entries", in: withMetaCount(withMeta(kv{"a", ""}, kv{"b", ""}), 1), want: abi.ErrTrailing},
		{name: "metadata key beyond the record", in: patch(enc, 57, 2), want: abi.ErrShort},
		{name: "metadata value beyond the record", in: patch(enc, 61, 2), want: abi.ErrShort},
		{name: "metadata lengths at the limit", in: patch(enc, 57, 0, 0, 0, 0x40, 0, 0, 0, 0x40), want: abi.ErrShort},
		{name: "empty metadata key", in: withMeta(kv{"", "v"}), want: abi.ErrCorrupt},
		{name: "repeated metadata key", in: withMeta(kv{"k", "1"}, kv{"x", ""}, kv{"k", "2"}), want: abi.ErrCorrupt},
		{name: "repeated metadata key and value", in: withMeta(kv{"k", "v"}, kv{"k", "v"}), want: abi.ErrCorrupt},
		{name: "repeated key among many entries", in: withMeta(manyDup...), want: abi.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rest, err := abi.DecodeRecord(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if rest != nil {
				t.Errorf("rest = %x after an error, want nil", rest)
			}
			if !strings.HasPrefix(err.Error(), "record") {
				t.Errorf("error %q does not say it is about a record", err)
			}
		})
	}
}

func withMetaCount(b []byte, n uint16) []byte {
	le.PutUint16(b[34:], n)
	return b
}

func TestMetaHelpers(t *testing.T) {
	m := abi.AppendMeta(nil, "a", "1")
	m = abi.AppendMeta(m, "ü", "")
	m = abi.AppendMeta(m, "c", "3")
	tests := []struct {
		name  string
		key   string
		value string
		ok    bool
	}{
		{name: "first", key: "a", value: "1", ok: true},
		{name: "empty value", key: "ü", value: "", ok: true},
		{name: "last", key: "c", value: "3", ok: true},
		{name: "missing", key: "b"},
		{name: "prefix of a key", key: "", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := abi.LookupMeta(m, tt.key)
			if ok != tt.ok || string(v) != tt.value {
				t.Errorf("LookupMeta(%q) = %q, %t; want %q, %t", tt.key, v, ok, tt.value, tt.ok)
			}
		})
	}
	if _, _, _, ok := abi.NextMeta(nil); ok {
		t.Error("NextMeta(nil) reported an entry")
	}
	buf := make([]byte, abi.MetaEntrySize("ü", ""))
	abi.PutMeta(buf, "ü", "")
	if want := abi.AppendMeta(nil, "ü", ""); !bytes.Equal(buf, want) {
		t.Errorf("PutMeta = %x, AppendMeta = %x", buf, want)
	}
}

func TestNumberData(t *testing.T) {
	tests := []struct {
		name string
		i    int64
		f    float64
	}{
		{name: "zero", i: 0, f: 0},
		{name: "negative", i: -1, f: math.Copysign(0, -1)},
		{name: "extremes", i: math.MinInt64, f: math.MaxFloat64},
		{name: "max", i: math.MaxInt64, f: math.Inf(-1)},
		{name: "fraction", i: 42, f: 0.1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := abi.IntData(tt.i)
			if got := abi.Int(id[:]); got != tt.i {
				t.Errorf("Int(IntData(%d)) = %d", tt.i, got)
			}
			if got := int64(le.Uint64(id[:])); got != tt.i {
				t.Errorf("IntData(%d) is not little-endian two's complement: %x", tt.i, id)
			}
			fd := abi.FloatData(tt.f)
			if got := abi.Float(fd[:]); math.Float64bits(got) != math.Float64bits(tt.f) {
				t.Errorf("Float(FloatData(%v)) = %v", tt.f, got)
			}
			if got := le.Uint64(fd[:]); got != math.Float64bits(tt.f) {
				t.Errorf("FloatData(%v) is not little-endian binary64: %x", tt.f, fd)
			}
		})
	}
}

func TestKindsAndStatus(t *testing.T) {
	tests := []struct {
		name    string
		kind    abi.Kind
		str     string
		exports []string
	}{
		{name: "filter", kind: abi.KindFilter, str: "filter", exports: []string{abi.ExportFilter}},
		{name: "map", kind: abi.KindMap, str: "map", exports: []string{abi.ExportMap}},
		{name: "aggregate", kind: abi.KindAggregate, str: "aggregate",
			exports: []string{abi.ExportAggregate, abi.ExportMerge, abi.ExportFinish}},
		{name: "set", kind: abi.KindFilter | abi.KindMap, str: "filter,map"},
		{name: "none", kind: 0, str: "none"},
		{name: "unknown bits", kind: abi.KindFilter | 0x18, str: "filter,unknown(0x18)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.kind.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if got := tt.kind.Exports(); strings.Join(got, " ") != strings.Join(tt.exports, " ") {
				t.Errorf("Exports() = %v, want %v", got, tt.exports)
			}
			if tt.exports != nil {
				k, err := abi.ParseKind(tt.str)
				if err != nil || k != tt.kind {
					t.Errorf("ParseKind(%q) = %v, %v", tt.str, k, err)
				}
			}
		})
	}
	if _, err := abi.ParseKind("reduce"); err == nil {
		t.Error("ParseKind(reduce) succeeded")
	}
	if abi.Version != 0x00010000 || abi.VersionString(abi.Version) != "1.0" {
		t.Errorf("Version = %#x (%s), want 0x10000 (1.0)", abi.Version, abi.VersionString(abi.Version))
	}
	if got := abi.VersionString(2<<16 | 13); got != "2.13" {
		t.Errorf("VersionString = %q, want 2.13", got)
	}
	for s, want := range map[abi.Status]string{abi.StatusOK: "ok", abi.StatusBadInput: "bad input",
		abi.StatusBadConfig: "bad config", abi.StatusFailed: "failed", abi.StatusUnsupported: "unsupported", 9: "status(9)"} {
		if s.String() != want {
			t.Errorf("Status(%d).String() = %q, want %q", uint32(s), s.String(), want)
		}
	}
	if p, l := abi.Unpack(abi.Pack(0xfffffff0, 0x80000001)); p != 0xfffffff0 || l != 0x80000001 {
		t.Errorf("Unpack(Pack) = %#x, %#x", p, l)
	}
	if abi.Pack(1, 2) != 0x0000000100000002 {
		t.Errorf("Pack(1, 2) = %#x", abi.Pack(1, 2))
	}
}
