package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/aegis-streaming/aegis/abi"
)

// This file converts events to and from the plugin ABI's record encoding
// (abi/ABI.md), for the host that feeds WebAssembly steps. The engine's
// data kinds and the ABI's are the same values.

// ABIRecordSize is the size of e's ABI record.
func ABIRecordSize(e *Event) int {
	n := abi.HeaderSize + len(e.Type) + len(e.Source) + e.Data.Size()
	for k, v := range e.Metadata {
		n += abi.MetaEntrySize(k, v)
	}
	return n
}

// PutABIRecord writes e's ABI record, with the given index, at the start of
// dst, which has at least [ABIRecordSize] bytes, and returns its size.
// The metadata entries are in map order.
func PutABIRecord(dst []byte, e *Event, index uint32) int {
	size := ABIRecordSize(e)
	h := abi.Header{
		Size: uint32(size), Index: index, ID: e.ID, Time: e.Time,
		Kind: abi.DataKind(e.Data.kind), MetaCount: uint16(len(e.Metadata)),
		TypeLen: uint32(len(e.Type)), SourceLen: uint32(len(e.Source)), DataLen: uint32(e.Data.Size()),
	}
	h.Put(dst)
	n := abi.HeaderSize
	n += copy(dst[n:], e.Type)
	n += copy(dst[n:], e.Source)
	d := &e.Data
	switch d.kind {
	case KindString:
		n += copy(dst[n:], d.str)
	case KindBytes, KindJSON:
		n += copy(dst[n:], d.raw)
	case KindInt, KindFloat:
		b := abi.IntData(int64(d.num)) // the bits, little-endian, either way
		n += copy(dst[n:], b[:])
	case KindBool:
		dst[n] = byte(d.num)
		n++
	}
	for k, v := range e.Metadata {
		n += abi.PutMeta(dst[n:], k, v)
	}
	return n
}

// ABIMetaLimit is the most metadata entries an event can carry into a
// plugin: the ABI counts them in 16 bits.
const ABIMetaLimit = math.MaxUint16

// DataFromABI makes event data of an ABI data kind from b, which it keeps
// (the caller hands over memory it will not change). It checks what the
// engine's constructors check: that JSON is one valid document and a string
// is UTF-8, and the fixed sizes of numbers and bools.
func DataFromABI(kind abi.DataKind, b []byte) (EventData, error) {
	switch kind {
	case abi.DataNull:
		if len(b) == 0 {
			return NullData(), nil
		}
	case abi.DataBool:
		if len(b) == 1 && b[0] <= 1 {
			return BoolData(b[0] == 1), nil
		}
	case abi.DataInt:
		if len(b) == 8 {
			return IntData(abi.Int(b)), nil
		}
	case abi.DataFloat:
		if len(b) == 8 {
			return FloatData(abi.Float(b)), nil
		}
	case abi.DataString:
		if !utf8.Valid(b) {
			return EventData{}, errors.New("event data: string is not valid UTF-8")
		}
		return StringData(string(b)), nil
	case abi.DataBytes:
		return BytesData(b), nil
	case abi.DataJSON:
		return JSONData(b)
	default:
		return EventData{}, fmt.Errorf("event data: unknown kind %d", kind)
	}
	return EventData{}, fmt.Errorf("event data: %d bytes for %s data", len(b), DataKind(kind))
}

// appendStored appends e's stored form (a persistent channel's message
// body) to dst: its ABI record, with index 0. Events that the ABI cannot
// carry (more than [ABIMetaLimit] metadata entries) are refused.
func appendStored(dst []byte, e *Event) ([]byte, error) {
	if len(e.Metadata) > ABIMetaLimit {
		return dst, fmt.Errorf("%d metadata entries, more than a stored event holds (%d)", len(e.Metadata), ABIMetaLimit)
	}
	n := ABIRecordSize(e)
	dst = slices.Grow(dst, n)
	PutABIRecord(dst[len(dst):len(dst)+n], e, 0)
	return dst[:len(dst)+n], nil
}

// decodeStored decodes an event's stored form, the whole of b, keeping b
// for its data. It checks all that [abi.DecodeRecord] and [DataFromABI]
// check, and that the event is valid.
func decodeStored(b []byte) (Event, error) {
	var ev Event
	v, rest, err := abi.DecodeRecord(b)
	if err != nil {
		return ev, err
	}
	if len(rest) > 0 {
		return ev, fmt.Errorf("%w: %d bytes after the record", abi.ErrTrailing, len(rest))
	}
	ev.ID, ev.Time = v.ID, v.Time
	ev.Type, ev.Source = EventType(v.Type), string(v.Source)
	if ev.Data, err = DataFromABI(v.Kind, v.Data); err != nil {
		return ev, err
	}
	if v.MetaCount > 0 {
		ev.Metadata = make(map[string]string, v.MetaCount)
		for k, val, rest, ok := abi.NextMeta(v.Meta); ok; k, val, rest, ok = abi.NextMeta(rest) {
			ev.Metadata[string(k)] = string(val)
		}
	}
	return ev, ev.Validate()
}
