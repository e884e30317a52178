package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// The orders workload's four payloads (see the README's performance section).
var orderPayloads = []string{
	`{"amount":316.76,"id":"evt-0000000004-7f3a9c2e-4b1d-4e8a-9d0c","source":"urn:shop:checkout:eu-west-1:instance-07:partition-04","type":"order.created"}`,
	`{"amount":79.19,"id":"evt-0000000001-7f3a9c2e-4b1d-4e8a-9d0c","source":"urn:shop:checkout:eu-west-1:instance-07:partition-01","type":"order.paid"}`,
	`{"amount":158.38,"id":"evt-0000000002-7f3a9c2e-4b1d-4e8a-9d0c","source":"urn:shop:checkout:eu-west-1:instance-07:partition-02","type":"order.refunded"}`,
	`{"amount":237.57,"id":"evt-0000000003-7f3a9c2e-4b1d-4e8a-9d0c","source":"urn:shop:checkout:eu-west-1:instance-07:partition-03","type":"order.shipped"}`,
}

var orderTypes = []engine.EventType{"order.created", "order.paid", "order.refunded", "order.shipped"}

const orderSource = "urn:shop:checkout:eu-west-1:instance-07:partition-0"

// orderEvents returns n events of the orders workload with IDs and times
// assigned, as a producer that brings its own would publish them.
func orderEvents(n int) []engine.Event {
	out := make([]engine.Event, n)
	for i := range out {
		k := i % len(orderPayloads)
		out[i] = engine.NewEvent(orderTypes[k], orderSource+fmt.Sprint(k+1), engine.MustJSONData(orderPayloads[k]))
	}
	return out
}

// BenchmarkPublishReceive measures publish-to-receive throughput: one
// publisher, S subscribers each draining with RecvBatch, batches of B events
// (B = 1 uses Publish). An op is one event published and received by every
// subscriber; events/s is reported as a metric.
func BenchmarkPublishReceive(b *testing.B) {
	for _, subs := range []int{1, 10, 100} {
		for _, batch := range []int{1, 100} {
			b.Run(fmt.Sprintf("subs=%d/batch=%d", subs, batch), func(b *testing.B) {
				benchPublishReceive(b, subs, batch)
			})
		}
	}
}

func benchPublishReceive(b *testing.B, subs, batch int) {
	e := engine.New(engine.Config{})
	defer e.Close()
	if err := e.CreateChannel("bench", engine.ChannelConfig{BufferSize: 4096, Retention: engine.Retention{MaxEvents: -1}}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for range subs {
		s, err := e.Subscribe("bench", engine.SubscribeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf engine.EventBatch
			for got := 0; got < b.N; {
				var err error
				buf, err = s.RecvBatch(ctx, buf, 256)
				if err != nil {
					b.Error(err)
					return
				}
				got += buf.Len()
			}
		}()
	}
	pool := orderEvents(1024)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if batch == 1 {
		for i := 0; i < b.N; i++ {
			if err := e.Publish(ctx, "bench", pool[i%len(pool)]); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		evs := engine.EventBatch{Events: make([]engine.Event, 0, batch)}
		for i := 0; i < b.N; i += batch {
			n := min(batch, b.N-i)
			evs.Events = evs.Events[:0]
			for j := 0; j < n; j++ {
				evs.Events = append(evs.Events, pool[(i+j)%len(pool)])
			}
			if err := e.PublishBatch(ctx, "bench", evs); err != nil {
				b.Fatal(err)
			}
		}
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkPublishReceiveLatency measures the time from Publish to the
// subscriber holding the event, one event in flight at a time, and reports
// its median and 99th percentile.
func BenchmarkPublishReceiveLatency(b *testing.B) {
	e := engine.New(engine.Config{})
	defer e.Close()
	if err := e.CreateChannel("lat", engine.ChannelConfig{Retention: engine.Retention{MaxEvents: -1}}); err != nil {
		b.Fatal(err)
	}
	s, err := e.Subscribe("lat", engine.SubscribeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	pool := orderEvents(64)
	lat := make([]time.Duration, 0, b.N)
	done := make(chan struct{})
	received := make(chan time.Duration, 1)
	go func() {
		defer close(done)
		for range b.N {
			ev, err := s.Recv(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			received <- time.Since(time.Unix(0, ev.Time))
		}
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := pool[i%len(pool)]
		ev.Time = time.Now().UnixNano()
		if err := e.Publish(ctx, "lat", ev); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, <-received)
	}
	<-done
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
