package engine

import (
	"bytes"
	"maps"
	"strconv"
	"testing"
)

func sameEvent(a, b *Event) bool {
	return a.ID == b.ID && a.Type == b.Type && a.Source == b.Source && a.Time == b.Time &&
		a.Data.Equal(b.Data) && maps.Equal(a.Metadata, b.Metadata)
}

// TestStoredRoundTrip: every data kind, metadata and the limits of a
// persistent channel's stored form.
func TestStoredRoundTrip(t *testing.T) {
	for _, d := range []EventData{NullData(), BoolData(true), IntData(-7), FloatData(2.5), StringData("é"),
		BytesData([]byte{0, 0xff}), MustJSONData(`{"a":[1,2]}`)} {
		ev := Event{ID: NewEventID(), Type: "t.x", Source: "urn:s", Time: 42, Data: d, Metadata: map[string]string{"k": "v", "k2": ""}}
		b, err := appendStored([]byte("prefix"), &ev)
		if err != nil || !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("%s: %v", d.Kind(), err)
		}
		got, err := decodeStored(b[len("prefix"):])
		if err != nil || !sameEvent(&got, &ev) {
			t.Errorf("%s: got %+v, %v; want %+v", d.Kind(), got, err, ev)
		}
		if _, err := decodeStored(append(b[len("prefix"):], 0)); err == nil {
			t.Errorf("%s: a trailing byte accepted", d.Kind())
		}
	}
	many := Event{ID: NewEventID(), Type: "t", Data: NullData(), Metadata: map[string]string{}}
	for i := range ABIMetaLimit + 1 {
		many.Metadata[strconv.Itoa(i)] = ""
	}
	if _, err := appendStored(nil, &many); err == nil {
		t.Error("an event with more metadata entries than the form holds was encoded")
	}
	invalid := Event{ID: NewEventID(), Data: NullData()} // no type
	b, _ := appendStored(nil, &invalid)
	if _, err := decodeStored(b); err == nil {
		t.Error("an invalid event decoded")
	}
}

// FuzzDecodeStored feeds any bytes to the decoder of a persistent
// channel's messages, as another client could write them: it never panics,
// and what it accepts is a valid event that encodes and decodes to itself.
func FuzzDecodeStored(f *testing.F) {
	ev := Event{ID: NewEventID(), Type: "order.paid", Source: "urn:shop", Time: 1, Data: MustJSONData(`{"amount":1}`), Metadata: map[string]string{"k": "v"}}
	b, _ := appendStored(nil, &ev)
	f.Add(b)
	f.Add([]byte(`{"id":"x"}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeStored(b)
		if err != nil {
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
		again, err := appendStored(nil, &ev)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeStored(again)
		if err != nil || !sameEvent(&back, &ev) {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, ev)
		}
	})
}
