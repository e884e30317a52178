package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

var le = binary.LittleEndian

// HeaderSize is the size of the fixed part of an event record.
const HeaderSize = 48

// Header is the fixed part of an event record. Its layout (little-endian):
//
//	offset size field
//	0      4    Size       the whole record in bytes, header included
//	4      4    Index      position in the input batch (see ABI.md)
//	8      16   ID         event id (UUID bytes); all zero: none
//	24     8    Time       nanoseconds since the Unix epoch (UTC); 0: unset
//	32     1    Kind       DataKind of the data
//	33     1    Flags      reserved, 0
//	34     2    MetaCount  number of metadata entries
//	36     4    TypeLen
//	40     4    SourceLen
//	44     4    DataLen
//	48     ...  type, source, data, then MetaCount entries of
//	            (u32 key length, u32 value length, key, value)
type Header struct {
	Size      uint32
	Index     uint32
	ID        [16]byte
	Time      int64
	Kind      DataKind
	Flags     uint8
	MetaCount uint16
	TypeLen   uint32
	SourceLen uint32
	DataLen   uint32
}

// Put writes the header into dst[:HeaderSize].
func (h *Header) Put(dst []byte) {
	_ = dst[HeaderSize-1]
	le.PutUint32(dst[0:], h.Size)
	le.PutUint32(dst[4:], h.Index)
	copy(dst[8:24], h.ID[:])
	le.PutUint64(dst[24:], uint64(h.Time))
	dst[32] = byte(h.Kind)
	dst[33] = h.Flags
	le.PutUint16(dst[34:], h.MetaCount)
	le.PutUint32(dst[36:], h.TypeLen)
	le.PutUint32(dst[40:], h.SourceLen)
	le.PutUint32(dst[44:], h.DataLen)
}

func (h *Header) read(b []byte) {
	_ = b[HeaderSize-1]
	h.Size = le.Uint32(b[0:])
	h.Index = le.Uint32(b[4:])
	copy(h.ID[:], b[8:24])
	h.Time = int64(le.Uint64(b[24:]))
	h.Kind = DataKind(b[32])
	h.Flags = b[33]
	h.MetaCount = le.Uint16(b[34:])
	h.TypeLen = le.Uint32(b[36:])
	h.SourceLen = le.Uint32(b[40:])
	h.DataLen = le.Uint32(b[44:])
}

// MetaEntrySize is the encoded size of one metadata entry.
func MetaEntrySize(key, value string) int { return 8 + len(key) + len(value) }

// PutMeta writes one metadata entry at dst and returns its size.
func PutMeta(dst []byte, key, value string) int {
	le.PutUint32(dst, uint32(len(key)))
	le.PutUint32(dst[4:], uint32(len(value)))
	n := 8 + copy(dst[8:], key)
	return n + copy(dst[n:], value)
}

// AppendMeta appends one metadata entry.
func AppendMeta(b []byte, key, value string) []byte {
	b = le.AppendUint32(b, uint32(len(key)))
	b = le.AppendUint32(b, uint32(len(value)))
	return append(append(b, key...), value...)
}

// Limits of one record, checked by [DecodeRecord].
const (
	MaxTypeLen  = 255     // bytes of an event type
	MaxFieldLen = 1 << 30 // bytes of a source, data, key or value
)

// View is one decoded record: its header and its variable fields as slices
// of the encoded bytes, valid as long as they are. Decoding copies nothing.
type View struct {
	Header
	Type   []byte
	Source []byte
	Data   []byte
	Meta   []byte // MetaCount entries, checked; walk them with [NextMeta]
}

// Errors of the decoders. They are wrapped with where they happened.
var (
	ErrShort     = errors.New("truncated")
	ErrCorrupt   = errors.New("corrupt")
	ErrTrailing  = errors.New("trailing bytes")
	ErrTooLarge  = errors.New("too large")
	ErrBadUTF8   = errors.New("not valid UTF-8")
	ErrBadKind   = errors.New("unknown data kind")
	ErrBadLength = errors.New("wrong data length for its kind")
)

// DecodeRecord decodes the record at the start of b and returns it and the
// bytes after it. It checks every length, the data kind and length, that
// the type, source and metadata are UTF-8, that metadata keys are non-empty
// and unique, that the type is at most MaxTypeLen bytes and the other fields
// at most MaxFieldLen; it does not check that JSON data is well formed.
func DecodeRecord(b []byte) (v View, rest []byte, err error) {
	if len(b) < HeaderSize {
		return v, nil, fmt.Errorf("record header: %w (%d of %d bytes)", ErrShort, len(b), HeaderSize)
	}
	v.Header.read(b)
	if v.TypeLen > MaxTypeLen {
		return v, nil, fmt.Errorf("record type of %d bytes: %w (limit %d)", v.TypeLen, ErrTooLarge, MaxTypeLen)
	}
	if v.SourceLen > MaxFieldLen {
		return v, nil, fmt.Errorf("record source of %d bytes: %w (limit %d)", v.SourceLen, ErrTooLarge, MaxFieldLen)
	}
	if v.DataLen > MaxFieldLen {
		return v, nil, fmt.Errorf("record data of %d bytes: %w (limit %d)", v.DataLen, ErrTooLarge, MaxFieldLen)
	}
	r, rest, err := SplitRecord(b)
	if err != nil {
		return v, nil, err
	}
	if v.Flags != 0 {
		return v, nil, fmt.Errorf("record flags %#x: %w (must be 0)", v.Flags, ErrCorrupt)
	}
	p := []byte(r[HeaderSize:])
	v.Type, p = p[:v.TypeLen], p[v.TypeLen:]
	v.Source, p = p[:v.SourceLen], p[v.SourceLen:]
	v.Data, p = p[:v.DataLen], p[v.DataLen:]
	v.Meta = p
	if !utf8.Valid(v.Type) {
		return v, nil, fmt.Errorf("record type: %w", ErrBadUTF8)
	}
	if !utf8.Valid(v.Source) {
		return v, nil, fmt.Errorf("record source: %w", ErrBadUTF8)
	}
	if err := CheckData(v.Kind, v.Data); err != nil {
		return v, nil, fmt.Errorf("record data: %w", err)
	}
	for i := 0; i < int(v.MetaCount); i++ {
		if len(p) < 8 {
			return v, nil, fmt.Errorf("record metadata entry %d: %w", i, ErrShort)
		}
		kl, vl := uint64(le.Uint32(p)), uint64(le.Uint32(p[4:]))
		if kl > MaxFieldLen || vl > MaxFieldLen {
			return v, nil, fmt.Errorf("record metadata entry %d of %d+%d bytes: %w (limit %d each)", i, kl, vl, ErrTooLarge, MaxFieldLen)
		}
		if 8+kl+vl > uint64(len(p)) {
			return v, nil, fmt.Errorf("record metadata entry %d: %w", i, ErrShort)
		}
		k, val := p[8:8+kl], p[8+kl:8+kl+vl]
		if kl == 0 {
			return v, nil, fmt.Errorf("record metadata entry %d: empty key: %w", i, ErrCorrupt)
		}
		if !utf8.Valid(k) || !utf8.Valid(val) {
			return v, nil, fmt.Errorf("record metadata entry %d: %w", i, ErrBadUTF8)
		}
		p = p[8+kl+vl:]
	}
	if len(p) != 0 {
		return v, nil, fmt.Errorf("record: %d %w after the metadata", len(p), ErrTrailing)
	}
	if k := repeatedKey(v.Meta, int(v.MetaCount)); k != nil {
		return v, nil, fmt.Errorf("record metadata key %q appears twice: %w", k, ErrCorrupt)
	}
	return v, rest, nil
}

// repeatedKey returns a key that appears more than once among the n checked
// metadata entries m, or nil. A few entries, the common case, are compared
// pair by pair without allocating; many go through a map, so that a hostile
// record of 65535 entries costs linear time.
func repeatedKey(m []byte, n int) []byte {
	if n < 2 {
		return nil
	}
	if n <= 16 {
		for k, _, rest, ok := NextMeta(m); ok; k, _, rest, ok = NextMeta(rest) {
			for k2, _, r2, ok2 := NextMeta(rest); ok2; k2, _, r2, ok2 = NextMeta(r2) {
				if string(k) == string(k2) {
					return k
				}
			}
		}
		return nil
	}
	seen := make(map[string]struct{}, n)
	for k, _, rest, ok := NextMeta(m); ok; k, _, rest, ok = NextMeta(rest) {
		if _, dup := seen[string(k)]; dup {
			return k
		}
		seen[string(k)] = struct{}{}
	}
	return nil
}

// CheckData checks that d is data of kind k: the length of a number or a
// bool, UTF-8 for a string. (It does not check JSON; the host does.)
func CheckData(k DataKind, d []byte) error {
	switch k {
	case DataNull:
		if len(d) != 0 {
			return fmt.Errorf("null with %d bytes: %w", len(d), ErrBadLength)
		}
	case DataBool:
		if len(d) != 1 || d[0] > 1 {
			return fmt.Errorf("bool of %d bytes: %w", len(d), ErrBadLength)
		}
	case DataInt, DataFloat:
		if len(d) != 8 {
			return fmt.Errorf("number of %d bytes: %w", len(d), ErrBadLength)
		}
	case DataString:
		if !utf8.Valid(d) {
			return fmt.Errorf("string: %w", ErrBadUTF8)
		}
	case DataBytes, DataJSON:
	default:
		return fmt.Errorf("%w %d", ErrBadKind, k)
	}
	return nil
}

// NextMeta returns the first metadata entry of m (a [View.Meta], a
// [RawRecord.Meta] or a tail of one) and the entries after it; ok is false
// at the end, or where an entry does not fit in m.
func NextMeta(m []byte) (key, value, rest []byte, ok bool) {
	if len(m) < 8 {
		return nil, nil, nil, false
	}
	kl, vl := uint64(le.Uint32(m)), uint64(le.Uint32(m[4:]))
	if 8+kl+vl > uint64(len(m)) {
		return nil, nil, nil, false
	}
	return m[8 : 8+kl], m[8+kl : 8+kl+vl], m[8+kl+vl:], true
}

// LookupMeta returns the value of key in the metadata entries m.
func LookupMeta(m []byte, key string) (value []byte, ok bool) {
	for k, v, rest, more := NextMeta(m); more; k, v, rest, more = NextMeta(rest) {
		if string(k) == key {
			return v, true
		}
	}
	return nil, false
}

// Record is an event to encode, for code that builds records field by
// field (the SDK and tests). The host encodes its own events directly
// with [Header.Put] and [PutMeta].
type Record struct {
	Index  uint32
	ID     [16]byte
	Time   int64
	Kind   DataKind
	Type   []byte
	Source []byte
	Data   []byte
	// Meta holds MetaCount entries already encoded (a View's Meta, or
	// built with AppendMeta).
	Meta      []byte
	MetaCount uint16
}

// Size is the encoded size of the record.
func (r *Record) Size() int {
	return HeaderSize + len(r.Type) + len(r.Source) + len(r.Data) + len(r.Meta)
}

// AppendRecord appends the encoding of r.
func AppendRecord(b []byte, r *Record) []byte {
	h := Header{
		Size: uint32(r.Size()), Index: r.Index, ID: r.ID, Time: r.Time, Kind: r.Kind,
		MetaCount: r.MetaCount, TypeLen: uint32(len(r.Type)),
		SourceLen: uint32(len(r.Source)), DataLen: uint32(len(r.Data)),
	}
	n := len(b)
	b = append(b, make([]byte, HeaderSize)...)
	h.Put(b[n:])
	b = append(b, r.Type...)
	b = append(b, r.Source...)
	b = append(b, r.Data...)
	return append(b, r.Meta...)
}

// IntData and FloatData encode numbers as record data.
func IntData(v int64) [8]byte {
	var b [8]byte
	le.PutUint64(b[:], uint64(v))
	return b
}

// FloatData encodes a float as record data.
func FloatData(v float64) [8]byte { return IntData(int64(math.Float64bits(v))) }

// Int and Float decode number data checked by [DecodeRecord].
func Int(d []byte) int64 { return int64(le.Uint64(d)) }

// Float decodes float data.
func Float(d []byte) float64 { return math.Float64frombits(le.Uint64(d)) }

// RawRecord is an encoded record whose lengths [SplitRecord] has checked.
// Its accessors decode a field when asked, so code that reads one field of
// an event pays for that field only. It is what a module iterating over
// the host's input wants; the host, which trusts nothing, uses
// [DecodeRecord].
type RawRecord []byte

// SplitRecord returns the record at the start of b and the bytes after it,
// checking the record's size and that its type, source and data fit in it;
// the rest (metadata, data kinds, UTF-8) is left to the accessors.
func SplitRecord(b []byte) (r RawRecord, rest []byte, err error) {
	if len(b) < HeaderSize {
		return nil, nil, fmt.Errorf("record header: %w (%d of %d bytes)", ErrShort, len(b), HeaderSize)
	}
	size := uint64(le.Uint32(b))
	if size > uint64(len(b)) {
		return nil, nil, fmt.Errorf("record size %d: %w (%d bytes left)", size, ErrShort, len(b))
	}
	fixed := uint64(HeaderSize) + uint64(le.Uint32(b[36:])) + uint64(le.Uint32(b[40:])) + uint64(le.Uint32(b[44:]))
	if fixed > size {
		return nil, nil, fmt.Errorf("record of %d bytes has fields of %d: %w", size, fixed, ErrCorrupt)
	}
	return RawRecord(b[:size]), b[size:], nil
}

// Index, ID, Time, Kind and MetaCount read header fields.
func (r RawRecord) Index() uint32 { return le.Uint32(r[4:]) }

// ID returns the event id.
func (r RawRecord) ID() (id [16]byte) { copy(id[:], r[8:24]); return id }

// Time returns the event time.
func (r RawRecord) Time() int64 { return int64(le.Uint64(r[24:])) }

// Kind returns the data kind.
func (r RawRecord) Kind() DataKind { return DataKind(r[32]) }

// MetaCount returns the number of metadata entries.
func (r RawRecord) MetaCount() uint16 { return le.Uint16(r[34:]) }

// Type returns the event type's bytes.
func (r RawRecord) Type() []byte {
	return r[HeaderSize : HeaderSize+le.Uint32(r[36:])]
}

// Source returns the source's bytes.
func (r RawRecord) Source() []byte {
	s := HeaderSize + le.Uint32(r[36:])
	return r[s : s+le.Uint32(r[40:])]
}

// Data returns the data's bytes.
func (r RawRecord) Data() []byte {
	s := HeaderSize + le.Uint32(r[36:]) + le.Uint32(r[40:])
	return r[s : s+le.Uint32(r[44:])]
}

// Meta returns the metadata entries' bytes; walk them with [NextMeta].
func (r RawRecord) Meta() []byte {
	return r[HeaderSize+le.Uint32(r[36:])+le.Uint32(r[40:])+le.Uint32(r[44:]):]
}
