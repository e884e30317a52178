package engine

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/aegis-streaming/aegis/internal/jsonstr"
)

// DataKind is the kind of value an [EventData] holds.
type DataKind uint8

// The kinds of event data. The numbers are stable: they are part of the wire
// formats built on this package.
const (
	KindNull DataKind = iota
	KindBool
	KindInt
	KindFloat
	KindString
	KindBytes
	KindJSON
)

var kindNames = [...]string{
	KindNull:   "null",
	KindBool:   "bool",
	KindInt:    "int",
	KindFloat:  "float",
	KindString: "string",
	KindBytes:  "bytes",
	KindJSON:   "json",
}

// String returns the stable name of the kind: "null", "bool", "int", "float",
// "string", "bytes" or "json".
func (k DataKind) String() string { return enumName(kindNames[:], int(k), "kind") }

// ParseDataKind is the inverse of [DataKind.String].
func ParseDataKind(s string) (DataKind, error) {
	v, err := parseEnum(kindNames[:], s, "data kind")
	return DataKind(v), err
}

// EventData is the payload of an event: one value of a [DataKind]. The zero
// EventData is null. It is a small value type; copying it does not copy the
// bytes of a string, bytes or JSON payload, which are shared and must not be
// modified after the data is made.
//
// Its JSON form is tagged with the kind, so that every value round-trips
// through JSON without loss: an int stays an int (all 64 bits), a float keeps
// NaN and the infinities, bytes stay bytes and a JSON array stays JSON:
//
//	{"kind":"null"}
//	{"kind":"bool","value":true}
//	{"kind":"int","value":-9223372036854775808}
//	{"kind":"float","value":0.1}    {"kind":"float","value":"NaN"}
//	{"kind":"string","value":"héllo"}
//	{"kind":"bytes","value":"AAEC/w=="}          (standard base64)
//	{"kind":"json","value":{"amount":79.19}}
//
// A JSON document comes back with the same meaning, not always the same
// bytes: encoding/json removes insignificant white space and escapes '<',
// '>' and '&' in its strings. [EventData.Equal] compares documents byte for
// byte.
type EventData struct {
	kind DataKind
	num  uint64 // bool (0 or 1), int (two's complement) or float (IEEE 754 bits)
	str  string // string
	raw  []byte // bytes or JSON
}

// NullData returns the null value (the zero EventData).
func NullData() EventData { return EventData{} }

// BoolData returns a bool value.
func BoolData(b bool) EventData {
	d := EventData{kind: KindBool}
	if b {
		d.num = 1
	}
	return d
}

// IntData returns a 64-bit signed integer value.
func IntData(i int64) EventData { return EventData{kind: KindInt, num: uint64(i)} }

// FloatData returns a 64-bit floating-point value.
func FloatData(f float64) EventData { return EventData{kind: KindFloat, num: math.Float64bits(f)} }

// StringData returns a text value. The text should be valid UTF-8; binary
// content belongs in [BytesData] ([EventData.Validate] checks).
func StringData(s string) EventData { return EventData{kind: KindString, str: s} }

// BytesData returns an opaque binary value. The slice is kept, not copied.
func BytesData(b []byte) EventData {
	if b == nil {
		b = []byte{}
	}
	return EventData{kind: KindBytes, raw: b}
}

// JSONData returns a JSON document value after checking that raw is one valid
// JSON value in UTF-8. The slice is kept, not copied.
func JSONData(raw []byte) (EventData, error) {
	if !json.Valid(raw) {
		return EventData{}, errors.New("event data: not a valid JSON document")
	}
	// encoding/json accepts invalid UTF-8 inside strings; JSON text is
	// UTF-8 (RFC 8259), and consumers downstream rely on it.
	if !utf8.Valid(raw) {
		return EventData{}, errors.New("event data: JSON document is not valid UTF-8")
	}
	return EventData{kind: KindJSON, raw: raw}, nil
}

// TrustedJSONData returns a JSON document value without checking it, for
// encoders that write JSON themselves on a hot path (the CDC sources): the
// caller guarantees that raw is one valid JSON value in UTF-8, as
// [JSONData] would check. The slice is kept, not copied.
func TrustedJSONData(raw []byte) EventData { return EventData{kind: KindJSON, raw: raw} }

// MustJSONData is [JSONData] for documents known to be valid, such as
// literals in tests; it panics on invalid JSON.
func MustJSONData(raw string) EventData {
	d, err := JSONData([]byte(raw))
	if err != nil {
		panic(err)
	}
	return d
}

// Kind returns the kind of the value.
func (d EventData) Kind() DataKind { return d.kind }

// IsNull reports whether the value is null.
func (d EventData) IsNull() bool { return d.kind == KindNull }

// AsBool returns the value if it is a bool.
func (d EventData) AsBool() (v bool, ok bool) {
	if d.kind != KindBool {
		return false, false
	}
	return d.num == 1, true
}

// AsInt returns the value if it is an int.
func (d EventData) AsInt() (v int64, ok bool) {
	if d.kind != KindInt {
		return 0, false
	}
	return int64(d.num), true
}

// AsFloat returns the value if it is a float. An int is not converted.
func (d EventData) AsFloat() (v float64, ok bool) {
	if d.kind != KindFloat {
		return 0, false
	}
	return math.Float64frombits(d.num), true
}

// AsString returns the value if it is a string.
func (d EventData) AsString() (v string, ok bool) { return d.str, d.kind == KindString }

// AsBytes returns the value if it is bytes. The slice is shared: do not
// modify it.
func (d EventData) AsBytes() (v []byte, ok bool) {
	if d.kind != KindBytes {
		return nil, false
	}
	return d.raw, true
}

// AsJSON returns the document if the value is JSON. The slice is shared: do
// not modify it.
func (d EventData) AsJSON() (v json.RawMessage, ok bool) {
	if d.kind != KindJSON {
		return nil, false
	}
	return d.raw, true
}

// Decode unmarshals a JSON value into v, as [json.Unmarshal] does.
func (d EventData) Decode(v any) error {
	raw, ok := d.AsJSON()
	if !ok {
		return fmt.Errorf("event data: cannot decode %s data as JSON", d.kind)
	}
	return json.Unmarshal(raw, v)
}

// Size is the payload size in bytes: the length of a string, bytes or JSON
// value, 8 for numbers, 1 for a bool and 0 for null.
func (d EventData) Size() int {
	switch d.kind {
	case KindString:
		return len(d.str)
	case KindBytes, KindJSON:
		return len(d.raw)
	case KindInt, KindFloat:
		return 8
	case KindBool:
		return 1
	}
	return 0
}

// Equal reports whether two values are of the same kind and hold the same
// value. Floats compare by bits, so NaN equals the same NaN; JSON documents
// compare byte for byte.
func (d EventData) Equal(o EventData) bool {
	if d.kind != o.kind {
		return false
	}
	switch d.kind {
	case KindNull:
		return true
	case KindBool, KindInt, KindFloat:
		return d.num == o.num
	case KindString:
		return d.str == o.str
	default:
		return bytes.Equal(d.raw, o.raw)
	}
}

// Validate checks what the constructors cannot: that a string is valid UTF-8
// and that the kind is known.
func (d EventData) Validate() error {
	switch {
	case d.kind > KindJSON:
		return fmt.Errorf("event data: unknown kind %d", d.kind)
	case d.kind == KindString && !utf8.ValidString(d.str):
		return errors.New("event data: string is not valid UTF-8 (binary content belongs in bytes data)")
	}
	return nil
}

// String formats the value for people (logs, errors), not for machines.
func (d EventData) String() string {
	switch d.kind {
	case KindNull:
		return "null"
	case KindBool:
		return strconv.FormatBool(d.num == 1)
	case KindInt:
		return strconv.FormatInt(int64(d.num), 10)
	case KindFloat:
		return strconv.FormatFloat(math.Float64frombits(d.num), 'g', -1, 64)
	case KindString:
		return strconv.Quote(d.str)
	case KindBytes:
		return fmt.Sprintf("bytes[%d]", len(d.raw))
	case KindJSON:
		return string(d.raw)
	}
	return d.kind.String()
}

// MarshalJSON implements json.Marshaler with the tagged form described on
// [EventData].
func (d EventData) MarshalJSON() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	b, err := d.appendTagged(make([]byte, 0, 32+d.Size()*4/3))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// appendTagged appends the tagged form of d, {"kind":...,"value":...}, on
// one line. d must be valid.
func (d EventData) appendTagged(b []byte) ([]byte, error) {
	b = append(b, `{"kind":"`...)
	b = append(b, d.kind.String()...)
	b = append(b, '"')
	if d.kind == KindNull {
		return append(b, '}'), nil
	}
	b = append(b, `,"value":`...)
	b, err := d.appendValue(b)
	if err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

// appendValue appends the JSON value of d, the "value" of its tagged form
// (null for null data), on one line. d must be valid.
func (d EventData) appendValue(b []byte) ([]byte, error) {
	switch d.kind {
	case KindNull:
		b = append(b, "null"...)
	case KindBool:
		b = strconv.AppendBool(b, d.num == 1)
	case KindInt:
		b = strconv.AppendInt(b, int64(d.num), 10)
	case KindFloat:
		f := math.Float64frombits(d.num)
		switch {
		case math.IsNaN(f):
			b = append(b, `"NaN"`...)
		case math.IsInf(f, 1):
			b = append(b, `"+Inf"`...)
		case math.IsInf(f, -1):
			b = append(b, `"-Inf"`...)
		default:
			b = strconv.AppendFloat(b, f, 'g', -1, 64)
		}
	case KindString:
		b = jsonstr.Append(b, d.str)
	case KindBytes:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, d.raw)
		b = append(b, '"')
	case KindJSON:
		if !bytes.ContainsAny(d.raw, "\n\r") {
			return append(b, d.raw...), nil
		}
		// A document with line breaks, compacted to one line.
		buf := bytes.NewBuffer(b)
		if err := json.Compact(buf, d.raw); err != nil {
			return b, err
		}
		b = buf.Bytes()
	}
	return b, nil
}

// UnmarshalJSON implements json.Unmarshaler for the tagged form described on
// [EventData]. A JSON null (no envelope at all) is accepted as null data.
func (d *EventData) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		*d = EventData{}
		return nil
	}
	var env taggedData
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return fmt.Errorf("event data: %w", err)
	}
	return d.fromTagged(&env)
}

// taggedData is the tagged JSON form of [EventData], decoded but not yet
// checked; an event's decoder reads its data into one directly, so that the
// payload is scanned with the event and not again on its own.
type taggedData struct {
	Kind  *string         `json:"kind"`
	Value json.RawMessage `json:"value"`
}

// fromTagged sets d from its decoded tagged form.
func (d *EventData) fromTagged(env *taggedData) error {
	if env.Kind == nil {
		return errors.New(`event data: missing "kind"`)
	}
	kind, err := ParseDataKind(*env.Kind)
	if err != nil {
		return fmt.Errorf("event data: %w", err)
	}
	if kind == KindNull {
		if len(env.Value) != 0 && string(env.Value) != "null" {
			return errors.New(`event data: null data has no "value"`)
		}
		*d = EventData{}
		return nil
	}
	// A JSON null is a value only for JSON data; for the other kinds it would
	// silently become false, "" or no bytes.
	if len(env.Value) == 0 || (kind != KindJSON && string(env.Value) == "null") {
		return fmt.Errorf(`event data: %s data needs a "value"`, kind)
	}
	v := env.Value
	var out EventData
	switch kind {
	case KindBool:
		var x bool
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("event data: bool value: %w", err)
		}
		out = BoolData(x)
	case KindInt:
		x, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("event data: int value %s: want a whole number that fits in 64 bits", v)
		}
		out = IntData(x)
	case KindFloat:
		f, err := parseJSONFloat(v)
		if err != nil {
			return err
		}
		out = FloatData(f)
	case KindString:
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("event data: string value: %w", err)
		}
		out = StringData(s)
	case KindBytes:
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("event data: bytes value: want a base64 string: %w", err)
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("event data: bytes value: %w", err)
		}
		out = BytesData(raw)
	case KindJSON:
		// The decoder copied it out of the input, and checked it.
		out = EventData{kind: KindJSON, raw: v}
	}
	*d = out
	return nil
}

func parseJSONFloat(v []byte) (float64, error) {
	switch string(v) {
	case `"NaN"`:
		return math.NaN(), nil
	case `"+Inf"`, `"Infinity"`:
		return math.Inf(1), nil
	case `"-Inf"`, `"-Infinity"`:
		return math.Inf(-1), nil
	}
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		return 0, fmt.Errorf("event data: float value %s: want a number, \"NaN\", \"+Inf\" or \"-Inf\"", v)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return 0, fmt.Errorf("event data: float value %s: %w", v, err)
	}
	return f, nil
}
