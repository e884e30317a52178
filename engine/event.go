package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/aegis-streaming/aegis/internal/jsonstr"
)

// Event is one thing that happened. Events are values; once published they
// are shared by every subscriber and must not be modified ([Event.Clone]
// first).
type Event struct {
	// ID identifies the event; see [EventID]. [Engine.Publish] assigns one
	// when it is zero.
	ID EventID
	// Type says what happened; required.
	Type EventType
	// Source names where it happened, for example a URN or a table.
	Source string
	// Time is when it happened, in nanoseconds since the Unix epoch (UTC).
	// [Engine.Publish] sets it to the publishing time when it is zero.
	Time int64
	// Data is the payload.
	Data EventData
	// Metadata holds string attributes (trace context, routing keys, ...).
	// A nil map is an empty one.
	Metadata map[string]string
}

// NewEvent returns an event with a new ID, the current time and the given
// type, source and data.
func NewEvent(typ EventType, source string, data EventData) Event {
	return Event{ID: NewEventID(), Type: typ, Source: source, Time: time.Now().UnixNano(), Data: data}
}

// Timestamp returns [Event.Time] as a time.Time in UTC.
func (e *Event) Timestamp() time.Time { return time.Unix(0, e.Time).UTC() }

// SetMeta sets a metadata attribute, making the map if needed.
func (e *Event) SetMeta(key, value string) {
	if e.Metadata == nil {
		e.Metadata = make(map[string]string, 4)
	}
	e.Metadata[key] = value
}

// Meta returns a metadata attribute.
func (e *Event) Meta(key string) (value string, ok bool) {
	value, ok = e.Metadata[key]
	return value, ok
}

// Clone returns a copy whose metadata can be modified without touching e.
// The payload bytes stay shared, as they are immutable.
func (e Event) Clone() Event {
	e.Metadata = maps.Clone(e.Metadata)
	return e
}

// Validate checks the event: a valid type, a UTF-8 source, valid data and
// UTF-8 metadata. It does not require an ID or a time, which publishing
// assigns.
func (e *Event) Validate() error {
	if err := e.Type.Validate(); err != nil {
		return e.errorf("%w", err)
	}
	if !utf8.ValidString(e.Source) {
		return e.errorf("source is not valid UTF-8")
	}
	if err := e.Data.Validate(); err != nil {
		return e.errorf("%w", err)
	}
	for k, v := range e.Metadata {
		if k == "" {
			return e.errorf("metadata has an empty key")
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return e.errorf("metadata %q is not valid UTF-8", k)
		}
	}
	return nil
}

func (e *Event) errorf(format string, args ...any) error {
	if e.ID.IsZero() {
		return fmt.Errorf("event: "+format, args...)
	}
	return fmt.Errorf("event[%s]: "+format, append([]any{e.ID}, args...)...)
}

// eventJSON is the JSON form of an event; time is RFC 3339 with nanoseconds.
type eventJSON struct {
	ID       *EventID          `json:"id,omitempty"`
	Type     EventType         `json:"type"`
	Source   string            `json:"source,omitempty"`
	Time     string            `json:"time,omitempty"`
	Data     *taggedData       `json:"data"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// MarshalJSON implements json.Marshaler:
//
//	{"id":"0190...","type":"order.created","source":"urn:...","time":"2026-11-26T12:00:00.123456789Z","data":{"kind":"json","value":{...}},"metadata":{"k":"v"}}
//
// A zero ID or time is left out. It is [Event.AppendJSON] into a new
// slice.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 160+e.Data.Size()))
}

// AppendJSON appends the event's JSON form (see [Event.MarshalJSON]) to
// dst, without reflection: what the sinks, the network API and its streams
// write per event. The document is on one line: a JSON payload with line
// breaks is compacted. Metadata keys are in sorted order.
func (e *Event) AppendJSON(dst []byte) ([]byte, error) {
	if err := e.Data.Validate(); err != nil {
		return dst, e.errorf("%w", err)
	}
	dst = append(dst, '{')
	if !e.ID.IsZero() {
		dst = append(dst, `"id":"`...)
		dst = append(dst, e.ID.String()...)
		dst = append(dst, `",`...)
	}
	dst = append(dst, `"type":`...)
	dst = jsonstr.Append(dst, string(e.Type))
	if e.Source != "" {
		dst = append(dst, `,"source":`...)
		dst = jsonstr.Append(dst, e.Source)
	}
	if e.Time != 0 {
		dst = append(dst, `,"time":"`...)
		dst = e.Timestamp().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"data":`...)
	dst, err := e.Data.appendTagged(dst)
	if err != nil {
		return dst, e.errorf("data: %w", err)
	}
	if len(e.Metadata) > 0 {
		dst = append(dst, `,"metadata":{`...)
		for i, k := range slices.Sorted(maps.Keys(e.Metadata)) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonstr.Append(dst, k)
			dst = append(dst, ':')
			dst = jsonstr.Append(dst, e.Metadata[k])
		}
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}

// UnmarshalJSON implements json.Unmarshaler for the form written by
// [Event.MarshalJSON]. Unknown fields are an error.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j eventJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			switch te.Field {
			case "data":
				return fmt.Errorf(`event: event data: want the tagged form {"kind":...,"value":...}, not a JSON %s`, te.Value)
			case "data.kind":
				return fmt.Errorf(`event: event data: "kind" is a string, not a JSON %s`, te.Value)
			}
		}
		return fmt.Errorf("event: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		// Called directly (not through json.Unmarshal, which checks
		// the whole input first), b may hold more than the event.
		return errors.New("event: more than one JSON value")
	}
	out := Event{Type: j.Type, Source: j.Source, Metadata: j.Metadata}
	if j.Data != nil {
		if err := out.Data.fromTagged(j.Data); err != nil {
			return fmt.Errorf("event: %w", err)
		}
	}
	if j.ID != nil {
		out.ID = *j.ID
	}
	if j.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, j.Time)
		if err != nil {
			return fmt.Errorf("event: time: %w", err)
		}
		out.Time = t.UnixNano()
		if !time.Unix(0, out.Time).Equal(t) {
			return fmt.Errorf("event: time %s is outside the nanosecond range (years 1678 to 2262)", j.Time)
		}
	}
	if out.Type == "" {
		return errors.New(`event: missing "type"`)
	}
	*e = out
	return nil
}

// EventBatch is an ordered group of events, the unit the engine publishes
// and delivers in one step. Its zero value is an empty batch.
type EventBatch struct {
	Events []Event
}

// NewEventBatch returns an empty batch with room for n events.
func NewEventBatch(n int) EventBatch { return EventBatch{Events: make([]Event, 0, n)} }

// Len is the number of events.
func (b EventBatch) Len() int { return len(b.Events) }

// Append adds events at the end.
func (b *EventBatch) Append(events ...Event) { b.Events = append(b.Events, events...) }

// Reset empties the batch, keeping its storage.
func (b *EventBatch) Reset() {
	clear(b.Events)
	b.Events = b.Events[:0]
}

// Filter returns a new batch with the events that f matches, in order.
func (b EventBatch) Filter(f EventFilter) EventBatch {
	out := EventBatch{}
	for i := range b.Events {
		if f.Match(&b.Events[i]) {
			out.Events = append(out.Events, b.Events[i])
		}
	}
	return out
}

// Size is the total payload size of the events, in bytes.
func (b EventBatch) Size() int {
	n := 0
	for i := range b.Events {
		n += b.Events[i].Data.Size()
	}
	return n
}
