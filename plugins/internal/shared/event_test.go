package shared

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/plugins/internal/pb"
)

func TestEventRoundTrip(t *testing.T) {
	for _, d := range []engine.EventData{
		engine.NullData(), engine.BoolData(true), engine.BoolData(false), engine.IntData(math.MinInt64),
		engine.FloatData(math.NaN()), engine.FloatData(-0.5), engine.StringData("héllo"),
		engine.BytesData([]byte{0, 1, 255}), engine.MustJSONData(`{"amount":79.19}`),
	} {
		e := engine.NewEvent("order.paid", "urn:shop", d)
		e.SetMeta("k", "v")
		b, err := proto.Marshal(ToProto(&e))
		if err != nil {
			t.Fatal(err)
		}
		var p pb.Event
		if err := proto.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		got, err := FromProto(&p)
		if err != nil {
			t.Fatalf("%v: %v", d, err)
		}
		if got.ID != e.ID || got.Type != e.Type || got.Source != e.Source || got.Time != e.Time ||
			!got.Data.Equal(e.Data) || got.Metadata["k"] != "v" {
			t.Errorf("%v came back as %+v", e, got)
		}
	}
}

func TestFromProtoRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *pb.Event
		want string
	}{
		{"short id", &pb.Event{Id: []byte{1, 2}, Type: "t"}, "id is 2 bytes"},
		{"no type", &pb.Event{}, "type"},
		{"bad type", &pb.Event{Type: "bad type!"}, "type"},
		{"bad json", &pb.Event{Type: "t", Data: &pb.Event_Json{Json: []byte(`{"a":`)}}, "JSON"},
		{"json not utf-8", &pb.Event{Type: "t", Data: &pb.Event_Json{Json: []byte("\"\xff\"")}}, "UTF-8"},
		{"source not utf-8", &pb.Event{Type: "t", Source: "\xff"}, "UTF-8"},
		{"empty metadata key", &pb.Event{Type: "t", Metadata: map[string]string{"": "v"}}, "empty key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromProto(tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	// The first bad event of a batch is named by its index.
	_, err := EventsFromProto(nil, []*pb.Event{{Type: "ok"}, {Type: "bad type!"}})
	if err == nil || !strings.Contains(err.Error(), "event 1 of 2") {
		t.Fatalf("err %v", err)
	}
}

// FuzzFromProto: whatever a connector sends, decoding it either fails or
// gives a valid event that goes back and forth unchanged.
func FuzzFromProto(f *testing.F) {
	e := engine.NewEvent("order.paid", "urn:shop", engine.MustJSONData(`{"a":1}`))
	e.SetMeta("traceparent", "00-x")
	seed, _ := proto.Marshal(ToProto(&e))
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p pb.Event
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		got, err := FromProto(&p)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("FromProto gave an event that is not valid: %v", err)
		}
		again, err := FromProto(ToProto(&got))
		if err != nil || again.ID != got.ID || !again.Data.Equal(got.Data) || again.Type != got.Type {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}
