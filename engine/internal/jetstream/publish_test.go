package jetstream_test

import (
	"errors"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

func TestDedupe(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st := ensure(t, b, channel(t), jetstream.StreamOptions{DuplicateWindow: 500 * time.Millisecond})
		ctx := ctxT(t, 10*time.Second)
		first, err := st.Publish(ctx, jetstream.Msg{ID: "a", Data: []byte("1")})
		if err != nil || first.Duplicate {
			t.Fatalf("first: %+v %v", first, err)
		}
		if _, err := st.Publish(ctx, jetstream.Msg{ID: "b", Data: []byte("2")}); err != nil {
			t.Fatal(err)
		}
		// A retry within the window: acknowledged with the original sequence.
		dup, err := st.Publish(ctx, jetstream.Msg{ID: "a", Data: []byte("1 again")})
		if err != nil || !dup.Duplicate || dup.Seq != first.Seq {
			t.Fatalf("retry: %+v %v, want duplicate of seq %d", dup, err, first.Seq)
		}
		// The same within an async batch.
		acks, err := st.PublishBatch(ctx, []jetstream.Msg{{ID: "a"}, {ID: "c"}, {ID: "c"}})
		if err != nil || !acks[0].Duplicate || acks[1].Duplicate || !acks[2].Duplicate || acks[2].Seq != acks[1].Seq {
			t.Fatalf("batch: %+v %v", acks, err)
		}
		// After the window the ID is forgotten.
		time.Sleep(700 * time.Millisecond)
		again, err := st.Publish(ctx, jetstream.Msg{ID: "a"})
		if err != nil || again.Duplicate {
			t.Fatalf("after window: %+v %v", again, err)
		}
		in, _ := st.Info(ctx)
		if in.Msgs != 4 {
			t.Errorf("stream holds %d messages, want 4 (a, b, c, a)", in.Msgs)
		}
	})
}

// TestEventRoundTrip stores engine events in their JSON form, the encoding
// the engine uses for now, with the event ID as the message ID.
func TestEventRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st := ensure(t, b, channel(t), jetstream.StreamOptions{})
		ctx := ctxT(t, 10*time.Second)
		ev := engine.Event{ID: engine.NewEventID(), Type: "order.created", Source: "test", Time: time.Now().UnixNano(),
			Data: engine.StringData("hello"), Metadata: map[string]string{"k": "v"}}
		body, err := ev.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Publish(ctx, jetstream.Msg{ID: ev.ID.String(), Data: body, Header: map[string]string{"Aegis-Type": string(ev.Type)}}); err != nil {
			t.Fatal(err)
		}
		c := consumer(t, ctx, st, "reader", jetstream.ConsumerOptions{})
		ds, err := c.Fetch(ctx, 10)
		if err != nil || len(ds) != 1 {
			t.Fatalf("fetch: %d, %v", len(ds), err)
		}
		var got engine.Event
		if err := got.UnmarshalJSON(ds[0].Data); err != nil {
			t.Fatal(err)
		}
		if got.ID != ev.ID || got.Type != ev.Type || got.Metadata["k"] != "v" || ds[0].ID != ev.ID.String() || ds[0].Header["Aegis-Type"] != "order.created" {
			t.Errorf("got %+v (delivery %+v)", got, ds[0])
		}
		if _, err := st.Publish(ctx, jetstream.Msg{Header: map[string]string{"Nats-Expected-Stream": "x"}}); err == nil {
			t.Error("a Nats- header was accepted")
		}
	})
}

func TestPublishToMissingStream(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		name := channel(t)
		st := ensure(t, b, name, jetstream.StreamOptions{})
		if err := b.conn.DeleteStream(ctxT(t, 5*time.Second), name); err != nil {
			t.Fatal(err)
		}
		_, err := st.Publish(ctxT(t, 2*time.Second), jetstream.Msg{ID: "x"})
		if err == nil {
			t.Fatal("publish to a deleted stream succeeded")
		}
		// No stream listens: the server has no responder for the subject.
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("error %v, want ErrStreamNotFound", err)
		}
	})
}
