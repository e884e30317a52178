package shared

import (
	"fmt"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/plugins/internal/pb"
)

// ToProto converts an event to its protobuf form. The protobuf event shares
// the event's bytes and metadata map: it is for marshalling, not to keep.
func ToProto(e *engine.Event) *pb.Event {
	p := &pb.Event{Type: string(e.Type), Source: e.Source, Time: e.Time, Metadata: e.Metadata}
	if !e.ID.IsZero() {
		p.Id = e.ID[:]
	}
	d := e.Data
	switch d.Kind() {
	case engine.KindBool:
		v, _ := d.AsBool()
		p.Data = &pb.Event_Bool{Bool: v}
	case engine.KindInt:
		v, _ := d.AsInt()
		p.Data = &pb.Event_Int{Int: v}
	case engine.KindFloat:
		v, _ := d.AsFloat()
		p.Data = &pb.Event_Float{Float: v}
	case engine.KindString:
		v, _ := d.AsString()
		p.Data = &pb.Event_String_{String_: v}
	case engine.KindBytes:
		v, _ := d.AsBytes()
		p.Data = &pb.Event_Bytes{Bytes: v}
	case engine.KindJSON:
		v, _ := d.AsJSON()
		p.Data = &pb.Event_Json{Json: v}
	}
	return p
}

// FromProto converts a protobuf event to an event and checks it as
// [engine.Event.Validate] does. An event without an ID gets a new one, and
// one without a time gets now. The event keeps p's bytes and metadata map.
func FromProto(p *pb.Event) (engine.Event, error) {
	e := engine.Event{Type: engine.EventType(p.Type), Source: p.Source, Time: p.Time, Metadata: p.Metadata}
	switch len(p.Id) {
	case 0:
		e.ID = engine.NewEventID()
	case len(e.ID):
		e.ID = engine.EventID(p.Id)
	default:
		return e, fmt.Errorf("event: id is %d bytes, not %d", len(p.Id), len(e.ID))
	}
	if e.Time == 0 {
		e.Time = time.Now().UnixNano()
	}
	var err error
	if e.Data, err = dataFromProto(p); err != nil {
		return e, fmt.Errorf("event[%s]: %w", e.ID, err)
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	return e, nil
}

func dataFromProto(p *pb.Event) (engine.EventData, error) {
	switch v := p.Data.(type) {
	case nil:
		return engine.NullData(), nil
	case *pb.Event_Bool:
		return engine.BoolData(v.Bool), nil
	case *pb.Event_Int:
		return engine.IntData(v.Int), nil
	case *pb.Event_Float:
		return engine.FloatData(v.Float), nil
	case *pb.Event_String_:
		return engine.StringData(v.String_), nil
	case *pb.Event_Bytes:
		return engine.BytesData(v.Bytes), nil
	case *pb.Event_Json:
		return engine.JSONData(v.Json)
	}
	return engine.EventData{}, fmt.Errorf("data of an unknown kind %T", p.Data)
}

// EventsToProto converts events for a request or a response.
func EventsToProto(events []engine.Event) []*pb.Event {
	out := make([]*pb.Event, len(events))
	for i := range events {
		out[i] = ToProto(&events[i])
	}
	return out
}

// EventsFromProto appends the events of ps to dst; the first that is not
// valid stops it with an error naming its index.
func EventsFromProto(dst []engine.Event, ps []*pb.Event) ([]engine.Event, error) {
	for i, p := range ps {
		e, err := FromProto(p)
		if err != nil {
			return dst, fmt.Errorf("event %d of %d: %w", i, len(ps), err)
		}
		dst = append(dst, e)
	}
	return dst, nil
}
