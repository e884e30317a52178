package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// BenchmarkDurable measures persistent channels through the engine's
// public API on the embedded store, each beside the same work done with
// nats.go's jetstream package directly on the same server over its own
// in-process connection (the transport the engine uses), in the same
// benchmark op: the target is 70% of raw JetStream.
//
// An op is one event, done once through the engine and once raw; the two
// alternate in chunks (raw, engine, raw, engine) so that both see the same
// machine. Reported: aegis-ev/s, raw-ev/s and aegis/raw-% (throughput), or
// p50/p99 in µs of each (latency); ns/op covers both sides and setup, and
// means nothing. Raw messages carry the same bodies (the events' stored form) and
// message IDs; what the engine adds is its own work: encoding and decoding
// events, its publish and subscription paths, the pipeline.
//
// Run it with a fixed count (-benchtime 20000x) and several rounds: see
// the Taskfile's bench:durable.
func BenchmarkDurable(b *testing.B) {
	ctx := context.Background()
	e, err := Open(ctx, Config{Durable: &DurableConfig{Dir: b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	nc, err := nats.Connect("", nats.InProcessServer(e.dur.srv.InProcessConnProvider()))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	raw, err := njs.New(nc, njs.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	bb := &durBench{e: e, raw: raw}
	b.Run("publish-sync", func(b *testing.B) { bb.throughput(b, bb.publishSync) })
	b.Run("publish-batch256", func(b *testing.B) { bb.throughput(b, bb.publishBatch) })
	b.Run("consume-pipeline", func(b *testing.B) { bb.throughput(b, bb.consume) })
	b.Run("latency", bb.latency)
}

type durBench struct {
	e    *Engine
	raw  njs.JetStream
	next atomic.Int64 // for channel names
}

// durBenchChunks is how many chunks each side's share of b.N is split
// into; the sides alternate chunk by chunk.
const durBenchChunks = 2

// channel creates a fresh persistent channel and returns its name and its
// stream's name and subject.
func (bb *durBench) channel(b *testing.B) (name, stream, subject string) {
	name = fmt.Sprintf("bench-%d", bb.next.Add(1))
	if err := bb.e.CreateChannel(name, ChannelConfig{Persistent: true}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bb.e.DeleteChannel(name) })
	c, err := bb.e.lookup(name)
	if err != nil {
		b.Fatal(err)
	}
	return name, c.st.Name(), c.st.Subject()
}

// durBenchEvents returns n events of about 150-byte JSON payloads, each
// with an ID of its own.
func durBenchEvents(n int) []Event {
	payloads := []string{
		`{"amount":316.76,"id":"evt-0000000004-7f3a9c2e-4b1d-4e8a-9d0c","source":"urn:shop:checkout:eu-west-1:instance-07:partition-04","type":"order.created"}`,
		`{"amount":79.19,"id":"evt-0000000001-7f3a9c2e-4b1d-4e8a-9d0c","source":"urn:shop:checkout:eu-west-1:instance-07:partition-01","type":"order.paid"}`,
	}
	out := make([]Event, n)
	for i := range out {
		out[i] = NewEvent("order.created", "urn:shop:checkout", MustJSONData(payloads[i%len(payloads)]))
	}
	return out
}

// durBenchBody is the encoded form of a benchmark event: what the raw side
// publishes.
func durBenchBody(b *testing.B) []byte {
	body, err := appendStored(nil, &durBenchEvents(1)[0])
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// side does n events of work one way and returns the time it took, not
// counting its own setup.
type side func(b *testing.B, n int, raw bool) time.Duration

// durChunks splits n events into durBenchChunks chunks, the first with the
// remainder, and returns the sizes of those that are not empty.
func durChunks(n int) []int {
	var sizes []int
	for c := range durBenchChunks {
		size := n / durBenchChunks
		if c == 0 {
			size += n % durBenchChunks
		}
		if size > 0 {
			sizes = append(sizes, size)
		}
	}
	return sizes
}

// throughput runs f for b.N events on each side, alternating chunks, and
// reports both rates and their ratio.
func (bb *durBench) throughput(b *testing.B, f side) {
	var took [2]time.Duration // raw, aegis
	for _, n := range durChunks(b.N) {
		took[0] += f(b, n, true)
		took[1] += f(b, n, false)
	}
	rawRate := float64(b.N) / took[0].Seconds()
	aegisRate := float64(b.N) / took[1].Seconds()
	b.ReportMetric(aegisRate, "aegis-ev/s")
	b.ReportMetric(rawRate, "raw-ev/s")
	b.ReportMetric(100*aegisRate/rawRate, "aegis/raw-%")
}

// publishSync publishes one event per call, waiting for each to be stored.
func (bb *durBench) publishSync(b *testing.B, n int, raw bool) time.Duration {
	ctx := context.Background()
	name, _, subject := bb.channel(b)
	evs := durBenchEvents(1)
	body := durBenchBody(b)
	start := time.Now()
	for range n {
		if raw {
			if _, err := bb.raw.Publish(ctx, subject, body, njs.WithMsgID(NewEventID().String())); err != nil {
				b.Fatal(err)
			}
			continue
		}
		ev := evs[0]
		ev.ID = NewEventID()
		if err := bb.e.Publish(ctx, name, ev); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

const durBenchBatch = 256

// publishBatch publishes batches of 256 events, each call waiting for the
// whole batch to be stored: the engine's PublishBatch, and raw async
// publishes followed by a wait for their acknowledgements.
func (bb *durBench) publishBatch(b *testing.B, n int, raw bool) time.Duration {
	ctx := context.Background()
	name, _, subject := bb.channel(b)
	evs := durBenchEvents(durBenchBatch)
	body := durBenchBody(b)
	futs := make([]njs.PubAckFuture, 0, durBenchBatch)
	start := time.Now()
	for done := 0; done < n; {
		k := min(durBenchBatch, n-done)
		done += k
		if raw {
			futs = futs[:0]
			for range k {
				m := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
				m.Header.Set(njs.MsgIDHeader, NewEventID().String())
				f, err := bb.raw.PublishMsgAsync(m, njs.WithStallWait(time.Second))
				if err != nil {
					b.Fatal(err)
				}
				futs = append(futs, f)
			}
			for _, f := range futs {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
			continue
		}
		batch := EventBatch{Events: evs[:k]}
		for i := range batch.Events {
			batch.Events[i].ID = NewEventID()
		}
		if err := bb.e.PublishBatch(ctx, name, batch); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// consume reads n events stored beforehand, acknowledging each one on its
// own: through the engine, a pipeline whose source is the channel (it acks
// each event once the sink has it); raw, a durable consumer acking each
// message as it arrives. Each is done when the server holds n events as
// acknowledged. The channel holds more than n, so that the pipeline's
// last batch never waits to fill (MaxWait) on a channel run dry: that
// would measure the end of a finite backlog, not throughput.
func (bb *durBench) consume(b *testing.B, n int, raw bool) time.Duration {
	ctx := context.Background()
	name, stream, _ := bb.channel(b)
	const extra = 4 * DefaultBufferSize
	evs := durBenchEvents(1000)
	for done := 0; done < n+extra; {
		k := min(len(evs), n+extra-done)
		done += k
		batch := EventBatch{Events: evs[:k]}
		for i := range batch.Events {
			batch.Events[i].ID = NewEventID()
		}
		if err := bb.e.PublishBatch(ctx, name, batch); err != nil {
			b.Fatal(err)
		}
	}
	if raw {
		return bb.consumeRaw(b, stream, n, extra)
	}
	src, err := bb.e.ChannelSource(name, "pipeline:bench")
	if err != nil {
		b.Fatal(err)
	}
	sink := &durBenchSink{}
	p, err := NewPipeline(PipelineConfig{Name: "bench", Source: src, Sinks: []Sink{sink}})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	start := time.Now()
	go func() { ran <- p.Run(runCtx) }()
	durBenchWait(b, func() (bool, error) { return sink.got.Load() >= int64(n), nil })
	durBenchWait(b, func() (bool, error) {
		subs, err := bb.e.Subscriptions(name)
		if err != nil || len(subs) != 1 {
			return false, fmt.Errorf("subscriptions %v: %w", subs, err)
		}
		return subs[0].Lag <= extra, nil
	})
	took := time.Since(start)
	stop()
	if err := <-ran; err != nil && !errors.Is(err, context.Canceled) {
		b.Fatal(err)
	}
	_ = p.Close()
	_ = src.Close()
	return took
}

func (bb *durBench) consumeRaw(b *testing.B, stream string, n, extra int) time.Duration {
	ctx := context.Background()
	st, err := bb.raw.Stream(ctx, stream)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, njs.ConsumerConfig{Durable: "raw", AckPolicy: njs.AckExplicitPolicy, AckWait: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	start := time.Now()
	cc, err := cons.Consume(func(m njs.Msg) {
		if err := m.Ack(); err != nil {
			b.Error(err)
		}
		got.Add(1)
	}, njs.PullMaxMessages(DefaultBufferSize))
	if err != nil {
		b.Fatal(err)
	}
	durBenchWait(b, func() (bool, error) { return got.Load() >= int64(n), nil })
	durBenchWait(b, func() (bool, error) {
		in, err := cons.Info(ctx)
		if err != nil {
			return false, err
		}
		return in.NumPending+uint64(in.NumAckPending) <= uint64(extra), nil
	})
	took := time.Since(start)
	cc.Stop()
	return took
}

// durBenchWait polls cond until it holds. A consume waits first for its
// reader to have seen n events (no request to the server), then for the
// server to hold them as acknowledged.
func durBenchWait(b *testing.B, cond func() (bool, error)) {
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := cond()
		if err != nil {
			b.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("not all events acknowledged after a minute")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// durBenchSink counts events and drops them.
type durBenchSink struct{ got atomic.Int64 }

func (s *durBenchSink) Write(_ context.Context, evs []Event) error {
	s.got.Add(int64(len(evs)))
	return nil
}

func (s *durBenchSink) Close() error { return nil }

// latency measures publish-to-receive time with one event in flight: a
// synchronous publish (stored before it returns), received by a
// subscription that acknowledges on receipt; raw, a publish and a
// consumer acking each message.
func (bb *durBench) latency(b *testing.B) {
	var lat [2][]time.Duration // raw, aegis
	for _, n := range durChunks(b.N) {
		lat[0] = append(lat[0], bb.latencyRaw(b, n)...)
		lat[1] = append(lat[1], bb.latencyAegis(b, n)...)
	}
	for i, who := range []string{"raw", "aegis"} {
		slices.Sort(lat[i])
		q := func(p float64) float64 {
			return float64(lat[i][int(p*float64(len(lat[i])-1))]) / float64(time.Microsecond)
		}
		b.ReportMetric(q(0.50), who+"-p50-µs")
		b.ReportMetric(q(0.99), who+"-p99-µs")
	}
}

func (bb *durBench) latencyAegis(b *testing.B, n int) []time.Duration {
	ctx := context.Background()
	name, _, _ := bb.channel(b)
	s, err := bb.e.Subscribe(name, SubscribeOptions{DeliveryMode: AtLeastOnce})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	got := make(chan error, 1)
	go func() {
		for range n {
			_, err := s.Recv(ctx)
			got <- err
			if err != nil {
				return
			}
		}
	}()
	evs := durBenchEvents(1)
	out := make([]time.Duration, n)
	for i := range out {
		ev := evs[0]
		ev.ID = NewEventID()
		start := time.Now()
		if err := bb.e.Publish(ctx, name, ev); err != nil {
			b.Fatal(err)
		}
		if err := <-got; err != nil {
			b.Fatal(err)
		}
		out[i] = time.Since(start)
	}
	return out
}

func (bb *durBench) latencyRaw(b *testing.B, n int) []time.Duration {
	ctx := context.Background()
	_, stream, subject := bb.channel(b)
	st, err := bb.raw.Stream(ctx, stream)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, njs.ConsumerConfig{AckPolicy: njs.AckExplicitPolicy, DeliverPolicy: njs.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan struct{}, 1)
	cc, err := cons.Consume(func(m njs.Msg) {
		_ = m.Ack()
		got <- struct{}{}
	}, njs.PullMaxMessages(DefaultBufferSize))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	body := durBenchBody(b)
	out := make([]time.Duration, n)
	for i := range out {
		start := time.Now()
		if _, err := bb.raw.Publish(ctx, subject, body, njs.WithMsgID(NewEventID().String())); err != nil {
			b.Fatal(err)
		}
		<-got
		out[i] = time.Since(start)
	}
	return out
}
