package sdk

import (
	"errors"
	"fmt"
	"unicode/utf8"
	"unsafe"

	"github.com/aegis-streaming/aegis/abi"
)

// DataKind is the kind of an event's data.
type DataKind = abi.DataKind

// The data kinds.
const (
	DataNull   = abi.DataNull
	DataBool   = abi.DataBool
	DataInt    = abi.DataInt
	DataFloat  = abi.DataFloat
	DataString = abi.DataString
	DataBytes  = abi.DataBytes
	DataJSON   = abi.DataJSON
)

// Event is a read-only view of one input event. It copies nothing: it and
// its strings and slices point into the input the host wrote, and are valid
// until the function it was given to returns. Keep a string or slice beyond
// that with strings.Clone or bytes.Clone.
type Event struct {
	r abi.RawRecord
}

// Index is the event's position in its batch.
func (e Event) Index() int { return int(e.r.Index()) }

// ID is the event's id (UUID bytes).
func (e Event) ID() [16]byte { return e.r.ID() }

// Time is when the event happened, in nanoseconds since the Unix epoch.
func (e Event) Time() int64 { return e.r.Time() }

// Type is the event's type, such as "order.created".
func (e Event) Type() string { return view(e.r.Type()) }

// Source is where the event happened.
func (e Event) Source() string { return view(e.r.Source()) }

// Kind is the kind of the event's data.
func (e Event) Kind() DataKind { return e.r.Kind() }

// Data is the event's data as encoded (see ABI.md): a JSON document for
// DataJSON, UTF-8 for DataString, 8 bytes for numbers.
func (e Event) Data() []byte { return e.r.Data() }

// Int, Float, Bool and Text decode data of those kinds.
func (e Event) Int() (int64, bool) {
	d := e.r.Data()
	if e.r.Kind() != DataInt || len(d) != 8 {
		return 0, false
	}
	return abi.Int(d), true
}

// Float returns float data.
func (e Event) Float() (float64, bool) {
	d := e.r.Data()
	if e.r.Kind() != DataFloat || len(d) != 8 {
		return 0, false
	}
	return abi.Float(d), true
}

// Bool returns bool data.
func (e Event) Bool() (v, ok bool) {
	d := e.r.Data()
	if e.r.Kind() != DataBool || len(d) != 1 {
		return false, false
	}
	return d[0] == 1, true
}

// Text returns string data.
func (e Event) Text() (string, bool) {
	if e.r.Kind() != DataString {
		return "", false
	}
	return view(e.r.Data()), true
}

// Field returns the top-level member name of JSON data, without decoding the
// document; a missing value when the data is not JSON or has no such member.
func (e Event) Field(name string) JSON {
	if e.r.Kind() != DataJSON {
		return JSON{}
	}
	return Lookup(e.r.Data(), name)
}

// JSON returns the whole JSON document; a missing value when the data is
// not JSON.
func (e Event) JSON() JSON {
	if e.r.Kind() != DataJSON {
		return JSON{}
	}
	return JSON{raw: e.r.Data()}
}

// Meta returns a metadata attribute.
func (e Event) Meta(key string) (string, bool) {
	v, ok := abi.LookupMeta(e.r.Meta(), key)
	return view(v), ok
}

// EachMeta calls fn for each metadata attribute until it returns false.
func (e Event) EachMeta(fn func(key, value string) bool) {
	for k, v, rest, ok := abi.NextMeta(e.r.Meta()); ok; k, v, rest, ok = abi.NextMeta(rest) {
		if !fn(view(k), view(v)) {
			return
		}
	}
}

// Out returns an output event that starts as a copy of e (id, time, type,
// source, data and metadata), to change and [Output.Emit]. Like e, it points
// into the input until changed.
func (e Event) Out() OutEvent {
	return OutEvent{
		ID: e.r.ID(), Time: e.r.Time(), Type: e.Type(), Source: e.Source(),
		Kind: e.r.Kind(), Data: e.r.Data(), meta: e.r.Meta(), metaCount: e.r.MetaCount(),
	}
}

// OutEvent is an event a map or an aggregate's finish emits. A zero ID asks
// the host for a new one; a zero Time means the input event's time (map) or
// the window's end (finish).
type OutEvent struct {
	ID     [16]byte
	Time   int64
	Type   string
	Source string
	Kind   DataKind
	Data   []byte

	meta      []byte // encoded entries
	metaCount uint16
}

// SetJSON sets JSON data.
func (o *OutEvent) SetJSON(doc []byte) { o.Kind, o.Data = DataJSON, doc }

// SetMeta sets a metadata attribute, replacing one of the same key.
func (o *OutEvent) SetMeta(key, value string) {
	b, n := o.metaWithout(key)
	o.meta, o.metaCount = abi.AppendMeta(b, key, value), n+1
}

// DeleteMeta removes a metadata attribute.
func (o *OutEvent) DeleteMeta(key string) {
	o.meta, o.metaCount = o.metaWithout(key)
}

// metaWithout returns a new copy of the metadata entries without key.
func (o *OutEvent) metaWithout(key string) ([]byte, uint16) {
	var b []byte
	var n uint16
	for k, v, rest, ok := abi.NextMeta(o.meta); ok; k, v, rest, ok = abi.NextMeta(rest) {
		if string(k) != key {
			b = abi.AppendMeta(b, view(k), view(v))
			n++
		}
	}
	return b, n
}

// takeErr returns and forgets the first refused event's error.
func (out *Output) takeErr() error {
	err := out.err
	out.err = nil
	return err
}

// badRunes reports whether s has white space or a control character
// beyond ASCII, as ABI section 7 lists them (the sets of Go's
// unicode.IsSpace and unicode.IsControl). The list is written out rather
// than taken from package unicode, whose tables would make every Go plugin
// carry, and collect, their maps.
//
//go:noinline
func badRunes(s string) bool {
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
		case r <= 0xa0, // C1 controls U+0080 to U+009F, U+0085 among them; U+00A0
			r == 0x1680, r >= 0x2000 && r <= 0x200a, r == 0x2028, r == 0x2029,
			r == 0x202f, r == 0x205f, r == 0x3000:
			return true
		}
	}
	return false
}

const badType = "output event type %q contains white space or a control character"

// check applies the host's rules for output events.
func (o *OutEvent) check() error {
	if len(o.Type) == 0 || len(o.Type) > abi.MaxTypeLen {
		return fmt.Errorf("output event type %q: must be 1 to %d bytes", o.Type, abi.MaxTypeLen)
	}
	// The host's sets (ABI section 7): Unicode white space, and the C0 and
	// C1 control characters. ASCII, every type's usual letters, is checked
	// a byte at a time, the rest apart, with as few branches as can be:
	// this runs for every event a plugin emits.
	var all byte
	for i := 0; i < len(o.Type); i++ {
		c := o.Type[i]
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf(badType, o.Type)
		}
		all |= c
	}
	if all >= utf8.RuneSelf && badRunes(o.Type) {
		return fmt.Errorf(badType, o.Type)
	}
	if !utf8.ValidString(o.Type) || !utf8.ValidString(o.Source) {
		return errors.New("output event type or source is not valid UTF-8")
	}
	if err := abi.CheckData(o.Kind, o.Data); err != nil {
		return fmt.Errorf("output event data: %w", err)
	}
	if o.Kind == DataJSON && !utf8.Valid(o.Data) {
		return errors.New("output event data: JSON is not valid UTF-8")
	}
	for k, v, rest, ok := abi.NextMeta(o.meta); ok; k, v, rest, ok = abi.NextMeta(rest) {
		if len(k) == 0 || !utf8.Valid(k) || !utf8.Valid(v) {
			return fmt.Errorf("output event metadata %q: keys must be non-empty and both UTF-8", k)
		}
	}
	return nil
}

func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// Output collects the events a map or finish emits.
type Output struct {
	w      *abi.ResultWriter
	origin uint32
	err    error // the first event Emit refused
}

// Emit adds an output event. Its bytes are copied at once, so o and what it
// points to may be reused after Emit returns. An event the host would
// refuse (a type that is empty, longer than 255 bytes or has white space or
// control characters; text that is not UTF-8; data that does not fit its
// kind) is not emitted: it fails the input event it came from (map) or the
// call (finish), with the reason.
func (out *Output) Emit(o *OutEvent) {
	if err := o.check(); err != nil {
		if out.err == nil {
			out.err = err
		}
		return
	}
	r := abi.Record{
		Index: out.origin, ID: o.ID, Time: o.Time, Kind: o.Kind,
		Type: bytesOf(o.Type), Source: bytesOf(o.Source), Data: o.Data,
		Meta: o.meta, MetaCount: o.metaCount,
	}
	out.w.AppendRecord(&r)
}
