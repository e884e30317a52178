package engine_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

func TestNewEvent(t *testing.T) {
	data := engine.MustJSONData(`{"amount":1}`)
	before := time.Now()
	e := engine.NewEvent(engine.Created, "urn:shop:checkout", data)
	after := time.Now()

	if e.ID.IsZero() {
		t.Fatal("NewEvent left the ID zero")
	}
	if v := e.ID.Version(); v != 7 {
		t.Errorf("ID version = %d, want 7", v)
	}
	if e.Time < before.UnixNano() || e.Time > after.UnixNano() {
		t.Errorf("Time = %d, want between %d and %d", e.Time, before.UnixNano(), after.UnixNano())
	}
	idTime, _ := e.ID.Time()
	if got := e.Timestamp().Truncate(time.Millisecond); idTime.Before(got.Add(-time.Second)) || idTime.After(got.Add(time.Second)) {
		t.Errorf("ID time %s is far from the event time %s", idTime, e.Timestamp())
	}
	if e.Type != engine.Created || e.Source != "urn:shop:checkout" || !e.Data.Equal(data) {
		t.Errorf("NewEvent = %+v, want the given type, source and data", e)
	}
	if e.Metadata != nil {
		t.Errorf("Metadata = %v, want nil", e.Metadata)
	}
	if err := e.Validate(); err != nil {
		t.Errorf("Validate(): %v", err)
	}
	if other := engine.NewEvent(engine.Created, "", engine.NullData()); other.ID.Compare(e.ID) <= 0 {
		t.Errorf("a later event has the id %s, not after %s", other.ID, e.ID)
	}
}

func TestEventTimestamp(t *testing.T) {
	tests := []struct {
		name string
		ns   int64
		want time.Time
	}{
		{name: "epoch", ns: 0, want: time.Unix(0, 0)},
		{name: "nanoseconds kept", ns: 1_795_000_000_123_456_789, want: time.Unix(1_795_000_000, 123_456_789)},
		{name: "before epoch", ns: -1, want: time.Unix(0, -1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engine.Event{Time: tt.ns}
			got := e.Timestamp()
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("Timestamp() = %s (%s), want %s in UTC", got, got.Location(), tt.want.UTC())
			}
		})
	}
}

func TestEventMeta(t *testing.T) {
	var e engine.Event
	if v, ok := e.Meta("k"); ok || v != "" {
		t.Errorf("Meta on nil metadata = %q, %t; want \"\", false", v, ok)
	}
	e.SetMeta("k", "v")
	e.SetMeta("empty", "")
	if v, ok := e.Meta("k"); !ok || v != "v" {
		t.Errorf("Meta(k) = %q, %t; want v, true", v, ok)
	}
	if v, ok := e.Meta("empty"); !ok || v != "" {
		t.Errorf("Meta(empty) = %q, %t; want \"\", true", v, ok)
	}
	e.SetMeta("k", "w")
	if v, _ := e.Meta("k"); v != "w" || len(e.Metadata) != 2 {
		t.Errorf("after overwrite Meta(k) = %q, metadata %v", v, e.Metadata)
	}
}

func TestEventValidate(t *testing.T) {
	id := mustParseEventID(t, "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b")
	valid := func() engine.Event {
		return engine.Event{
			ID:       id,
			Type:     "order.created",
			Source:   "urn:shop:checkout",
			Time:     1,
			Data:     engine.MustJSONData(`{"a":1}`),
			Metadata: map[string]string{"traceparent": "00-abc-def-01", "empty": ""},
		}
	}
	tests := []struct {
		name    string
		modify  func(e *engine.Event)
		wantErr string // a part of the message; "" for valid
	}{
		{name: "valid", modify: func(e *engine.Event) {}},
		{name: "no id, no time, no source, null data, nil metadata", modify: func(e *engine.Event) {
			*e = engine.Event{Type: engine.Deleted}
		}},
		{name: "unicode source", modify: func(e *engine.Event) { e.Source = "urn:boutique:caisse-éé" }},
		{name: "empty metadata value", modify: func(e *engine.Event) { e.Metadata = map[string]string{"k": ""} }},

		{name: "empty type", modify: func(e *engine.Event) { e.Type = "" }, wantErr: "event type is empty"},
		{name: "type with space", modify: func(e *engine.Event) { e.Type = "order created" }, wantErr: "white space"},
		{name: "type too long", modify: func(e *engine.Event) { e.Type = engine.EventType(strings.Repeat("t", 256)) }, wantErr: "limit"},
		{name: "type invalid UTF-8", modify: func(e *engine.Event) { e.Type = "t\xff" }, wantErr: "UTF-8"},
		{name: "source invalid UTF-8", modify: func(e *engine.Event) { e.Source = "urn:\xc3" }, wantErr: "source is not valid UTF-8"},
		{name: "data string invalid UTF-8", modify: func(e *engine.Event) { e.Data = engine.StringData("\xff") }, wantErr: "string is not valid UTF-8"},
		{name: "metadata empty key", modify: func(e *engine.Event) { e.Metadata[""] = "v" }, wantErr: "empty key"},
		{name: "metadata key invalid UTF-8", modify: func(e *engine.Event) { e.Metadata = map[string]string{"k\xff": "v"} }, wantErr: "metadata \"k\\xff\" is not valid UTF-8"},
		{name: "metadata value invalid UTF-8", modify: func(e *engine.Event) { e.Metadata = map[string]string{"k": "v\xff"} }, wantErr: `metadata "k" is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			tt.modify(&e)
			err := e.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(): %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.wantErr)
			}
			if !e.ID.IsZero() {
				if want := "event[" + e.ID.String() + "]: "; !strings.HasPrefix(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to start with %q", err, want)
				}
			}

			// Without an ID the error still says it is about an event.
			e.ID = engine.EventID{}
			err = e.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), "event: ") {
				t.Errorf("Validate() without an ID = %v, want an error starting with \"event: \"", err)
			}
		})
	}
}

func TestEventClone(t *testing.T) {
	orig := engine.NewEvent(engine.Updated, "src", engine.BytesData([]byte{1, 2}))
	orig.SetMeta("a", "1")

	c := orig.Clone()
	if c.ID != orig.ID || c.Type != orig.Type || c.Source != orig.Source || c.Time != orig.Time || !c.Data.Equal(orig.Data) {
		t.Fatalf("Clone() = %+v, want a copy of %+v", c, orig)
	}
	if !maps.Equal(c.Metadata, orig.Metadata) {
		t.Fatalf("Clone() metadata = %v, want %v", c.Metadata, orig.Metadata)
	}
	c.SetMeta("a", "changed")
	c.SetMeta("b", "new")
	if v, _ := orig.Meta("a"); v != "1" || len(orig.Metadata) != 1 {
		t.Errorf("changing the clone's metadata changed the original: %v", orig.Metadata)
	}

	// Changing the original does not reach the clone either.
	c2 := orig.Clone()
	orig.SetMeta("a", "again")
	if v, _ := c2.Meta("a"); v != "1" {
		t.Errorf("changing the original's metadata changed the clone: %v", c2.Metadata)
	}

	// A nil map stays nil, and SetMeta on the clone does not make one in the
	// original.
	bare := engine.Event{Type: engine.Created}
	bc := bare.Clone()
	if bc.Metadata != nil {
		t.Errorf("Clone() of nil metadata = %v, want nil", bc.Metadata)
	}
	bc.SetMeta("k", "v")
	if bare.Metadata != nil {
		t.Errorf("SetMeta on a clone made metadata in the original: %v", bare.Metadata)
	}
}

// sameEvent compares events field by field, data with EventData.Equal and
// a nil map as an empty one.
func sameEvent(a, b engine.Event) bool {
	return a.ID == b.ID && a.Type == b.Type && a.Source == b.Source && a.Time == b.Time &&
		a.Data.Equal(b.Data) && maps.Equal(a.Metadata, b.Metadata)
}

func TestEventJSONRoundTrip(t *testing.T) {
	id := engine.NewEventID()
	ts := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC).UnixNano()
	base := engine.Event{
		ID:       id,
		Type:     "order.created",
		Source:   "urn:shop:checkout:eu-west-1",
		Time:     ts,
		Metadata: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "ünï": "cödé", "empty": ""},
	}
	for _, d := range dataRoundTripCases() {
		t.Run(d.name, func(t *testing.T) {
			e := base
			e.Data = d.data
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			var got engine.Event
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", b, err)
			}
			if !sameEvent(got, e) {
				t.Errorf("round trip through %s:\n got %+v\nwant %+v", b, got, e)
			}
			// The same through the methods directly.
			b2, err := e.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			var got2 engine.Event
			if err := got2.UnmarshalJSON(b2); err != nil {
				t.Fatalf("UnmarshalJSON(%s): %v", b2, err)
			}
			if !sameEvent(got2, e) {
				t.Errorf("round trip through %s:\n got %+v\nwant %+v", b2, got2, e)
			}
		})
	}

	t.Run("times", func(t *testing.T) {
		for _, ns := range []int64{
			1, -1, 999_999_999, 1_000_000_000,
			time.Date(1970, 1, 1, 0, 0, 0, 1, time.UTC).UnixNano(),
			time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC).UnixNano(),
			time.Date(2262, 4, 11, 23, 47, 16, 854775807, time.UTC).UnixNano(), // max int64
			math.MaxInt64,
			math.MinInt64,
		} {
			e := engine.Event{Type: engine.Created, Time: ns}
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("json.Marshal(time %d): %v", ns, err)
			}
			var got engine.Event
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", b, err)
			}
			if got.Time != ns {
				t.Errorf("time %d came back as %d through %s", ns, got.Time, b)
			}
		}
	})
}

func TestEventMarshalJSONForm(t *testing.T) {
	id := mustParseEventID(t, "0190A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B")
	tests := []struct {
		name  string
		event engine.Event
		want  string
	}{
		{
			name: "full",
			event: engine.Event{
				ID:       id,
				Type:     "order.created",
				Source:   "urn:shop",
				Time:     time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC).UnixNano(),
				Data:     engine.MustJSONData(`{"amount":79.19}`),
				Metadata: map[string]string{"b": "2", "a": "1"},
			},
			want: `{"id":"0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b","type":"order.created","source":"urn:shop","time":"2026-11-26T12:00:00.123456789Z","data":{"kind":"json","value":{"amount":79.19}},"metadata":{"a":"1","b":"2"}}`,
		},
		{
			name:  "zero id and time are left out",
			event: engine.Event{Type: engine.Created},
			want:  `{"type":"created","data":{"kind":"null"}}`,
		},
		{
			name:  "empty metadata is left out",
			event: engine.Event{Type: engine.Deleted, Data: engine.IntData(1), Metadata: map[string]string{}},
			want:  `{"type":"deleted","data":{"kind":"int","value":1}}`,
		},
		{
			name:  "whole seconds have no fraction",
			event: engine.Event{Type: engine.Updated, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()},
			want:  `{"type":"updated","time":"2026-01-02T03:04:05Z","data":{"kind":"null"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.event)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			if string(b) != tt.want {
				t.Errorf("json.Marshal =\n%s\nwant\n%s", b, tt.want)
			}
		})
	}
}

// JSON data inside an event goes through encoding/json, which compacts the
// document and escapes <, > and &. The bytes may change (see
// sameEventModuloJSONLayout), the document must not.
func TestEventJSONRoundTripJSONDataLayout(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{name: "spaces", doc: "{ \"a\" : [1, 2,\n3] }"},
		{name: "HTML characters", doc: `{"html":"<b>&amp;</b>"}`},
		{name: "line separator", doc: "[\"a\u2028b\"]"},
		{name: "big number kept exactly", doc: `[ 123456789012345678901234567890 ]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engine.Event{Type: engine.Created, Data: engine.MustJSONData(tt.doc)}
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			var got engine.Event
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", b, err)
			}
			if got.Data.Kind() != engine.KindJSON {
				t.Fatalf("data came back as %v, want json", got.Data.Kind())
			}
			if !sameEventModuloJSONLayout(got, e) {
				t.Errorf("the document changed: %s came back as %s", tt.doc, got.Data)
			}
			want, err := decodeJSONNumbers(tt.doc)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := got.Data.AsJSON()
			have, err := decodeJSONNumbers(string(raw))
			if err != nil {
				t.Fatalf("round trip made invalid JSON %s: %v", raw, err)
			}
			if fmt.Sprint(have) != fmt.Sprint(want) {
				t.Errorf("document %s came back as %s, which means something else", tt.doc, raw)
			}
		})
	}
}

func decodeJSONNumbers(doc string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func TestEventMarshalJSONInvalidData(t *testing.T) {
	e := engine.Event{Type: engine.Created, Data: engine.StringData("\xff")}
	if b, err := json.Marshal(e); err == nil {
		t.Errorf("json.Marshal of an event with invalid UTF-8 string data = %s, want an error", b)
	}
}

func TestEventUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    engine.Event
		wantErr string // a part of the message; "" for success
	}{
		{name: "type only", in: `{"type":"created"}`, want: engine.Event{Type: engine.Created}},
		{name: "null data", in: `{"type":"created","data":null}`, want: engine.Event{Type: engine.Created}},
		{name: "null id", in: `{"id":null,"type":"created"}`, want: engine.Event{Type: engine.Created}},
		{name: "empty time", in: `{"type":"created","time":""}`, want: engine.Event{Type: engine.Created}},
		{name: "upper case id", in: `{"id":"0190A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B","type":"x"}`,
			want: engine.Event{ID: mustParseEventID(t, "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"), Type: "x"}},
		{name: "time with offset", in: `{"type":"x","time":"2026-11-26T14:00:00.5+02:00"}`,
			want: engine.Event{Type: "x", Time: time.Date(2026, 11, 26, 12, 0, 0, 5e8, time.UTC).UnixNano()}},
		{name: "time before epoch", in: `{"type":"x","time":"1969-12-31T23:59:59.999999999Z"}`,
			want: engine.Event{Type: "x", Time: -1}},

		{name: "missing type", in: `{"source":"s"}`, wantErr: `missing "type"`},
		{name: "empty type", in: `{"type":""}`, wantErr: `missing "type"`},
		{name: "null type", in: `{"type":null}`, wantErr: `missing "type"`},
		{name: "empty object", in: `{}`, wantErr: `missing "type"`},
		{name: "type not a string", in: `{"type":1}`, wantErr: "event: "},
		{name: "not an object", in: `[]`, wantErr: "event: "},
		{name: "bad time format", in: `{"type":"x","time":"26/11/2026"}`, wantErr: "time"},
		{name: "time without zone", in: `{"type":"x","time":"2026-11-26T12:00:00"}`, wantErr: "time"},
		{name: "time month 13", in: `{"type":"x","time":"2026-13-01T00:00:00Z"}`, wantErr: "time"},
		{name: "time as number", in: `{"type":"x","time":1795000000}`, wantErr: "time"},
		{name: "time before 1678", in: `{"type":"x","time":"0001-01-01T00:00:00Z"}`, wantErr: "time"},
		{name: "time after 2262", in: `{"type":"x","time":"3000-01-01T00:00:00Z"}`, wantErr: "time"},
		{name: "time just after max", in: `{"type":"x","time":"2262-04-11T23:47:16.854775808Z"}`, wantErr: "time"},
		{name: "bad id", in: `{"id":"nope","type":"x"}`, wantErr: "event id"},
		{name: "empty id", in: `{"id":"","type":"x"}`, wantErr: "event id"},
		{name: "bad data", in: `{"type":"x","data":{"kind":"int","value":1.5}}`, wantErr: "event data"},
		{name: "data without envelope", in: `{"type":"x","data":5}`, wantErr: "event data"},
		{name: "metadata not strings", in: `{"type":"x","metadata":{"k":1}}`, wantErr: "event: "},
		{name: "unknown field", in: `{"type":"x","color":"red"}`, wantErr: "color"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Decoding into a used event replaces every field.
			got := engine.Event{ID: engine.NewEventID(), Type: "old", Source: "old", Time: 7, Data: engine.IntData(7), Metadata: map[string]string{"old": "1"}}
			orig := got.Clone()
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("json.Unmarshal(%s) = %+v, want an error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("json.Unmarshal(%s) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if !sameEvent(got, orig) {
					t.Errorf("failed UnmarshalJSON changed the event to %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", tt.in, err)
			}
			if !sameEvent(got, tt.want) {
				t.Errorf("json.Unmarshal(%s) =\n%+v\nwant\n%+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestEventBatch(t *testing.T) {
	b := engine.NewEventBatch(4)
	if b.Len() != 0 || cap(b.Events) != 4 {
		t.Fatalf("NewEventBatch(4): len %d cap %d, want 0 and 4", b.Len(), cap(b.Events))
	}
	var zero engine.EventBatch
	filtered := zero.Filter(engine.All())
	if zero.Len() != 0 || zero.Size() != 0 || filtered.Len() != 0 {
		t.Error("the zero batch is not an empty batch")
	}
	zero.Append(engine.Event{Type: engine.Created})
	if zero.Len() != 1 {
		t.Errorf("Append on the zero batch: Len() = %d, want 1", zero.Len())
	}

	events := []engine.Event{
		{Type: engine.Created, Source: "a", Data: engine.StringData("héllo")}, // 6 bytes
		{Type: engine.Updated, Source: "b", Data: engine.IntData(1)},          // 8
		{Type: engine.Created, Source: "c", Data: engine.NullData()},          // 0
		{Type: engine.Deleted, Source: "d", Data: engine.BytesData(make([]byte, 100))},
		{Type: engine.Created, Source: "e", Data: engine.MustJSONData(`[1,2]`)}, // 5
	}
	b.Append(events[0])
	b.Append(events[1:]...)
	b.Append()
	if b.Len() != len(events) {
		t.Fatalf("Len() = %d, want %d", b.Len(), len(events))
	}
	for i := range events {
		if b.Events[i].Source != events[i].Source {
			t.Errorf("event %d has source %q, want %q (order kept)", i, b.Events[i].Source, events[i].Source)
		}
	}
	if got, want := b.Size(), 6+8+0+100+5; got != want {
		t.Errorf("Size() = %d, want %d", got, want)
	}

	tests := []struct {
		name   string
		filter engine.EventFilter
		want   string // the sources, in order
	}{
		{name: "all", filter: engine.All(), want: "abcde"},
		{name: "none", filter: engine.Or(), want: ""},
		{name: "created", filter: engine.TypeIs(engine.Created), want: "ace"},
		{name: "not created", filter: engine.Not(engine.TypeIs(engine.Created)), want: "bd"},
	}
	for _, tt := range tests {
		t.Run("filter "+tt.name, func(t *testing.T) {
			got := b.Filter(tt.filter)
			var sources strings.Builder
			for _, e := range got.Events {
				sources.WriteString(e.Source)
			}
			if sources.String() != tt.want {
				t.Errorf("Filter kept %q, want %q", sources.String(), tt.want)
			}
			if got.Len() > 0 {
				// The result is a new batch: appending to it leaves b alone.
				got.Events[0].Source = "changed"
				got.Append(engine.Event{Type: "x"})
				if b.Events[0].Source != "a" || b.Len() != len(events) {
					t.Errorf("changing the filtered batch changed the original")
				}
			}
		})
	}

	c := cap(b.Events)
	b.Reset()
	if b.Len() != 0 || b.Size() != 0 {
		t.Errorf("after Reset: Len() = %d, Size() = %d; want 0, 0", b.Len(), b.Size())
	}
	if cap(b.Events) != c {
		t.Errorf("Reset changed the capacity from %d to %d, want it kept", c, cap(b.Events))
	}
	// Reset drops its references to the old events (so their payloads can
	// be collected).
	for i, e := range b.Events[:c] {
		if e.Source != "" || !e.Data.IsNull() || e.Type != "" {
			t.Errorf("slot %d still holds %+v after Reset", i, e)
		}
	}
	b.Append(events[3])
	if b.Len() != 1 || b.Size() != 100 {
		t.Errorf("after Reset and Append: Len() = %d, Size() = %d; want 1, 100", b.Len(), b.Size())
	}
}

func FuzzEventJSON(f *testing.F) {
	id := engine.NewEventID()
	for _, d := range dataRoundTripCases() {
		e := engine.Event{ID: id, Type: "order.created", Source: "urn:x", Time: 1_795_000_000_123_456_789, Data: d.data, Metadata: map[string]string{"k": "v"}}
		b, err := json.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"type":"created"}`, `{}`, `null`, `[]`, `{"type":""}`,
		`{"type":"x","time":"1970-01-01T00:00:00Z"}`,
		`{"type":"x","time":"2262-04-11T23:47:16.854775807Z"}`,
		`{"type":"x","time":"1677-09-21T00:12:43.145224192Z"}`,
		`{"type":"x","time":"2026-11-26T14:00:00.5+02:00"}`,
		`{"type":"x","time":"0001-01-01T00:00:00Z"}`,
		`{"id":"00000000-0000-0000-0000-000000000000","type":"x"}`,
		`{"type":"x","metadata":{}}`, `{"type":"x","metadata":{"":""}}`,
		`{"type":"x","data":{"kind":"json","value":[1,2]}}`,
		`{"type":"x","data":{"kind":"json","value":[1, "<&>"]}}`,
		`{"type":"x","data":{"kind":"float","value":"NaN"}}`,
		`{"type":"x","extra":1}`, `{"TYPE":"x","Source":"s"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1024 {
			return // big inputs find nothing new and make minimising slow
		}
		var e engine.Event
		if err := e.UnmarshalJSON(in); err != nil {
			return
		}
		if e.Type == "" {
			t.Fatalf("UnmarshalJSON(%q) accepted an event without a type", in)
		}
		out, err := e.MarshalJSON()
		if err != nil {
			t.Fatalf("UnmarshalJSON(%q) accepted %+v, which does not marshal: %v", in, e, err)
		}
		if !json.Valid(out) || bytes.ContainsAny(out, "\n\r") {
			t.Fatalf("MarshalJSON of %q: %q is not one line of JSON", in, out)
		}
		var back engine.Event
		if err := back.UnmarshalJSON(out); err != nil {
			t.Fatalf("UnmarshalJSON(%q) (from input %q): %v", out, in, err)
		}
		if !sameEventModuloJSONLayout(back, e) {
			t.Fatalf("round trip changed the event: %q -> %+v -> %q -> %+v", in, e, out, back)
		}
		// From the second generation on, the round trip is exact.
		out2, err := back.MarshalJSON()
		if err != nil || !bytes.Equal(out2, out) {
			t.Fatalf("marshalling is not stable: %q then %q (%v)", out, out2, err)
		}
		var back2 engine.Event
		if err := back2.UnmarshalJSON(out2); err != nil || !sameEvent(back2, back) {
			t.Fatalf("second round trip changed the event: %+v -> %+v (%v)", back, back2, err)
		}
	})
}

// sameEventModuloJSONLayout is sameEvent, except that JSON data is
// compared after the layout normalisation encoding/json applies to the output
// of every json.Marshaler (insignificant white space removed, <, >, & and
// U+2028/U+2029 escaped). Event.MarshalJSON goes through encoding/json, so
// JSON data that arrives with spaces comes back compacted.
func sameEventModuloJSONLayout(a, b engine.Event) bool {
	if sameEvent(a, b) {
		return true
	}
	ra, okA := a.Data.AsJSON()
	rb, okB := b.Data.AsJSON()
	if !okA || !okB {
		return false
	}
	na, errA := json.Marshal(ra)
	nb, errB := json.Marshal(rb)
	if errA != nil || errB != nil || !bytes.Equal(na, nb) {
		return false
	}
	a.Data, b.Data = engine.NullData(), engine.NullData()
	return sameEvent(a, b)
}
