package engine_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aegis-streaming/aegis/engine"
)

// Create a channel, subscribe to the events of one type, publish and
// receive.
func ExampleEngine() {
	e := engine.New(engine.Config{})
	defer e.Close()

	if err := e.CreateChannel("orders", engine.ChannelConfig{BufferSize: 64}); err != nil {
		log.Fatal(err)
	}
	paid, err := e.Subscribe("orders", engine.SubscribeOptions{
		Subscriber: "billing",
		Filter:     engine.TypeIs("order.paid"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer paid.Close()

	ctx := context.Background()
	for _, typ := range []engine.EventType{"order.created", "order.paid", "order.shipped"} {
		ev := engine.Event{Type: typ, Source: "urn:shop:checkout", Data: engine.MustJSONData(`{"order":"A-1001"}`)}
		if err := e.Publish(ctx, "orders", ev); err != nil {
			log.Fatal(err)
		}
	}

	ev, err := paid.Recv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.Type, ev.Source, ev.Data)

	st, err := e.ChannelStats("orders")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("published %d, delivered %d\n", st.Published, st.Delivered)
	// Output:
	// order.paid urn:shop:checkout {"order":"A-1001"}
	// published 3, delivered 1
}

// Replay what a channel retains: the newest events, or those after one a
// consumer already has.
func ExampleEngine_History() {
	e := engine.New(engine.Config{})
	defer e.Close()

	if err := e.CreateChannel("temperatures", engine.ChannelConfig{Retention: engine.Retention{MaxEvents: 4}}); err != nil {
		log.Fatal(err)
	}
	batch := engine.NewEventBatch(6)
	for i, celsius := range []float64{18.5, 19, 19.5, 21, 22.5, 20} {
		batch.Append(engine.Event{Type: "reading", Source: fmt.Sprintf("urn:sensor:%d", i%2), Data: engine.FloatData(celsius)})
	}
	if err := e.PublishBatch(context.Background(), "temperatures", batch); err != nil {
		log.Fatal(err)
	}

	// The channel keeps its 4 newest events; take the newest 2.
	newest, err := e.History("temperatures", engine.HistoryQuery{Limit: 2})
	if err != nil {
		log.Fatal(err)
	}
	for _, ev := range newest {
		fmt.Println("newest:", ev.Source, ev.Data)
	}

	// Those of sensor 1 published after the fourth reading (PublishBatch
	// filled in the IDs of the batch).
	after, err := e.History("temperatures", engine.HistoryQuery{
		AfterID: batch.Events[3].ID,
		Filter:  engine.SourceIs("urn:sensor:1"),
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, ev := range after {
		fmt.Println("sensor 1 after the fourth:", ev.Data)
	}
	// Output:
	// newest: urn:sensor:0 22.5
	// newest: urn:sensor:1 20
	// sensor 1 after the fourth: 20
}
