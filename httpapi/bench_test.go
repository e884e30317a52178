package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
	"github.com/aegis-streaming/aegis/internal/orders"
)

// The API's benchmarks use the orders workload's events, an in-memory
// channel, and the API served over TCP on the loopback interface with a
// token, as a deployment would; client and host share the machine's cores.
// An op is one event everywhere, so ns/op compares across them; events/s
// is reported as a metric. go tool task bench:api runs them all.

// benchPublishers is how many clients publish at once, each over its own
// keep-alive connection (and, for the engine, how many goroutines).
const benchPublishers = 4

// benchBatch is the events of one bulk request or one PublishBatch.
const benchBatch = 1000

const benchToken = "bench-token-0123456789"

// newBenchAPI is an engine with the orders channel, and its API served
// over TCP with benchToken until the benchmark ends.
func newBenchAPI(b *testing.B) *host {
	b.Helper()
	h := newHost(b, nil, httpapi.Config{
		Tokens: []httpapi.Token{{Name: "bench", Secret: benchToken, Grants: []httpapi.Grant{{Channels: []string{"*"}, Actions: []httpapi.Action{httpapi.Admin}}}}},
	})
	h.channel(b, "orders", engine.ChannelConfig{})
	return h
}

// benchTransport is a client transport that keeps a connection per
// concurrent client.
func benchTransport(b *testing.B, conns int) *http.Client {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// BenchmarkPublishHTTP publishes the orders workload to an in-memory
// channel without subscribers by POST /v1/channels/orders/events from
// benchPublishers concurrent keep-alive clients: one event per request
// (single), or benchBatch per request as newline-delimited JSON
// (bulk-ndjson-1000) or as a JSON array (bulk-json-1000). The bodies are
// encoded before the clock starts, so that the clients' share of the
// machine is HTTP alone. Compare with BenchmarkPublishEngine, the same
// events published in-process.
func BenchmarkPublishHTTP(b *testing.B) {
	events := orders.Events(benchBatch, time.Now().UnixNano())
	single := make([][]byte, len(events))
	var ndjson bytes.Buffer
	for i := range events {
		line, err := json.Marshal(events[i])
		if err != nil {
			b.Fatal(err)
		}
		single[i] = line
		ndjson.Write(line)
		ndjson.WriteByte('\n')
	}
	array, err := json.Marshal(events)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("single", func(b *testing.B) {
		benchPublishHTTP(b, 1, func(i, n int) ([]byte, string) { return single[i%len(single)], "application/json" })
	})
	b.Run("bulk-ndjson-1000", func(b *testing.B) {
		benchPublishHTTP(b, benchBatch, func(_, n int) ([]byte, string) {
			if n == benchBatch {
				return ndjson.Bytes(), "application/x-ndjson"
			}
			// The last request of a run may be short: the first n lines.
			body := ndjson.Bytes()
			end := 0
			for range n {
				end += bytes.IndexByte(body[end:], '\n') + 1
			}
			return body[:end], "application/x-ndjson"
		})
	})
	b.Run("bulk-json-1000", func(b *testing.B) {
		benchPublishHTTP(b, benchBatch, func(_, n int) ([]byte, string) {
			if n == benchBatch {
				return array, "application/json"
			}
			short, err := json.Marshal(events[:n])
			if err != nil {
				b.Fatal(err)
			}
			return short, "application/json"
		})
	})
}

// benchPublishHTTP publishes b.N events in requests of per events (the
// last may have fewer), whose bodies body returns (request i, of n
// events), from benchPublishers clients.
func benchPublishHTTP(b *testing.B, per int, body func(i, n int) ([]byte, string)) {
	api := newBenchAPI(b)
	hc := benchTransport(b, benchPublishers)
	url := api.url + "/v1/channels/orders/events"
	requests := (b.N + per - 1) / per
	// A short last request's body is made before the clock starts.
	lastBody, lastType := body(requests-1, b.N-(requests-1)*per)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range benchPublishers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				reqBody, ctype := lastBody, lastType
				if i < requests-1 {
					reqBody, ctype = body(i, per)
				}
				if err := post(hc, url, ctype, reqBody); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	checkPublished(b, api.eng, b.N)
}

// post sends one publish request and reads the whole answer.
func post(hc *http.Client, url, ctype string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+benchToken)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish: %s: %s", resp.Status, answer)
	}
	return nil
}

// checkPublished checks that the channel took n events.
func checkPublished(b *testing.B, eng *engine.Engine, n int) {
	b.Helper()
	st, err := eng.ChannelStats("orders")
	if err != nil {
		b.Fatal(err)
	}
	if st.Published != uint64(n) {
		b.Fatalf("the channel took %d events, want %d", st.Published, n)
	}
}

// BenchmarkPublishEngine publishes the events of BenchmarkPublishHTTP to
// the same channel in-process with Engine.PublishBatch, from as many
// goroutines: one event per call (single), or benchBatch (batch-1000).
// Its events/s over BenchmarkPublishHTTP's is what the network API costs.
func BenchmarkPublishEngine(b *testing.B) {
	events := orders.Events(benchBatch, time.Now().UnixNano())
	for _, per := range []int{1, benchBatch} {
		name := "single"
		if per > 1 {
			name = fmt.Sprintf("batch-%d", per)
		}
		b.Run(name, func(b *testing.B) {
			eng := engine.New(engine.Config{})
			defer eng.Close()
			if err := eng.CreateChannel("orders", engine.ChannelConfig{}); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			calls := (b.N + per - 1) / per
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for range benchPublishers {
				wg.Go(func() {
					// Each goroutine its own copy: PublishBatch may fill
					// in the events it is given.
					own := slices.Clone(events)
					for {
						i := int(next.Add(1)) - 1
						if i >= calls {
							return
						}
						n := min(per, b.N-i*per)
						off := i * per % len(own)
						if off+n > len(own) {
							off = 0
						}
						if err := eng.PublishBatch(ctx, "orders", engine.EventBatch{Events: own[off : off+n]}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			checkPublished(b, eng, b.N)
		})
	}
}

// fanoutSubscribers is how many streams BenchmarkSSEFanout opens.
const fanoutSubscribers = 100

// BenchmarkSSEFanout measures delivery by Server-Sent Events to
// fanoutSubscribers streams of an in-memory channel, each read by its own
// goroutine, of b.N events of the orders workload published in-process
// (Engine.PublishBatch), until every subscriber got every event:
//
//   - throughput: batches of 100 as fast as the slowest subscriber takes
//     them, at most 512 events behind; its latency is mostly that queue's.
//   - latency: one event at a time, the next once every subscriber got
//     the last: the time one event takes to reach them all.
//
// Each runs with two kinds of subscribers: go-client (Client.Subscribe,
// which decodes every event into an engine.Event) and raw (a reader of
// the SSE lines that decodes nothing but the sampled events' times, as a
// client in another process costs the host nothing to decode). The
// clients share the machine's cores with the host, so go-client measures
// mostly the clients' JSON decoding, raw mostly the host.
//
// Reported: events/s delivered in total and per subscriber, and the p50
// and p99 time from publishing (the event time the engine sets) to a
// subscriber having read the event, over every event (latency) or every
// 8th (throughput).
func BenchmarkSSEFanout(b *testing.B) {
	for _, raw := range []bool{false, true} {
		name := map[bool]string{false: "go-client", true: "raw"}[raw]
		b.Run("throughput/"+name, func(b *testing.B) { benchFanout(b, 100, 512, 8, raw) })
		b.Run("latency/"+name, func(b *testing.B) { benchFanout(b, 1, 1, 1, raw) })
	}
}

// fanoutReader reads one subscriber's events: the next one's time, in
// nanoseconds since the epoch, when want is set.
type fanoutReader interface {
	next(want bool) (int64, error)
}

type clientReader struct{ s *httpapi.Subscription }

func (r clientReader) next(bool) (int64, error) {
	ev, err := r.s.Next()
	return ev.Time, err
}

// rawReader reads SSE lines and parses nothing but the times it is asked
// for.
type rawReader struct {
	br *bufio.Reader
}

func (r rawReader) next(want bool) (int64, error) {
	for {
		line, err := r.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		data, ok := bytes.CutPrefix(line, []byte("data: {\"id\""))
		if !ok {
			continue
		}
		if !want {
			return 0, nil
		}
		_, rest, _ := bytes.Cut(data, []byte(`"time":"`))
		ts, _, _ := bytes.Cut(rest, []byte(`"`))
		t, err := time.Parse(time.RFC3339Nano, string(ts))
		if err != nil {
			return 0, fmt.Errorf("event time %q: %w", ts, err)
		}
		return t.UnixNano(), nil
	}
}

// benchFanout publishes b.N events in batches of batch, keeping at most
// window of them not yet received by every subscriber, and samples the
// latency of every sample-th event.
func benchFanout(b *testing.B, batch, window, sample int, raw bool) {
	api := newBenchAPI(b)
	hc := benchTransport(b, fanoutSubscribers)
	c, err := httpapi.NewClient(api.url, benchToken, hc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	f := newFanoutProgress(fanoutSubscribers)
	subs := make([]fanoutReader, fanoutSubscribers)
	var clients []*httpapi.Subscription
	for i := range subs {
		if !raw {
			s, err := c.Subscribe(ctx, "orders", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			clients = append(clients, s)
			subs[i] = clientReader{s}
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api.url+"/v1/channels/orders/stream", nil)
		req.Header.Set("Authorization", "Bearer "+benchToken)
		resp, err := hc.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("stream: %v %v", resp, err)
		}
		defer resp.Body.Close()
		subs[i] = rawReader{bufio.NewReaderSize(resp.Body, 64<<10)}
	}
	// Subscribe returns once the host answered, and the host answers once
	// it subscribed: every stream gets the first event.
	if st, err := api.eng.ChannelStats("orders"); err != nil || st.Subscribers != fanoutSubscribers {
		b.Fatalf("the channel has %d subscribers (%v), want %d", st.Subscribers, err, fanoutSubscribers)
	}

	lat := make([][]time.Duration, fanoutSubscribers)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for i, sub := range subs {
		wg.Go(func() {
			own := make([]time.Duration, 0, b.N/sample+1)
			defer func() { lat[i] = own }()
			for n := 1; n <= b.N; n++ {
				at, err := sub.next(n%sample == 0)
				if err != nil {
					if ctx.Err() == nil {
						b.Errorf("subscriber %d, event %d: %v", i, n, err)
					}
					f.fail()
					cancel() // the others stop too
					return
				}
				if n%sample == 0 {
					own = append(own, time.Duration(time.Now().UnixNano()-at))
				}
				f.received(i, n)
			}
		})
	}
	pool := orders.Events(1024, 0)
	events := make([]engine.Event, batch)
	for sent := 0; sent < b.N; {
		n := min(batch, b.N-sent)
		if !f.waitFor(sent + n - window) {
			break
		}
		for j := range n {
			ev := pool[(sent+j)%len(pool)]
			ev.ID, ev.Time = engine.EventID{}, 0 // the engine assigns both as it publishes
			events[j] = ev
		}
		if err := api.eng.PublishBatch(ctx, "orders", engine.EventBatch{Events: events[:n]}); err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	wg.Wait()
	b.StopTimer()
	if b.Failed() {
		return
	}
	for i, sub := range clients {
		if r := sub.Reconnects(); r > 0 {
			b.Fatalf("subscriber %d reconnected %d times: it fell behind", i, r)
		}
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)*fanoutSubscribers/secs, "delivered-ev/s")
	b.ReportMetric(float64(b.N)/secs, "ev/s/subscriber")
	all := slices.Concat(lat...)
	if len(all) > 0 {
		slices.Sort(all)
		q := func(p float64) float64 {
			return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond)
		}
		b.ReportMetric(q(0.50), "p50-ms")
		b.ReportMetric(q(0.99), "p99-ms")
	}
}

// fanoutProgress is how many events each subscriber has received, for
// the publisher to wait on.
type fanoutProgress struct {
	got []atomic.Int64
	// want is what the publisher waits for (math.MaxInt64: nothing), so
	// that only the receipt it waits for takes the lock.
	want   atomic.Int64
	mu     sync.Mutex
	cond   *sync.Cond
	failed bool
}

func newFanoutProgress(subscribers int) *fanoutProgress {
	f := &fanoutProgress{got: make([]atomic.Int64, subscribers)}
	f.cond = sync.NewCond(&f.mu)
	f.want.Store(math.MaxInt64)
	return f
}

// received records that subscriber i has received n events.
func (f *fanoutProgress) received(i, n int) {
	f.got[i].Store(int64(n))
	// The publisher stores want before it reads got: either it sees this
	// store, or this load sees its want.
	if int64(n) >= f.want.Load() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	}
}

// fail wakes the publisher for good.
func (f *fanoutProgress) fail() {
	f.mu.Lock()
	f.failed = true
	f.cond.Broadcast()
	f.mu.Unlock()
}

// waitFor waits until every subscriber has received at least n events;
// false if a subscriber failed.
func (f *fanoutProgress) waitFor(n int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.want.Store(int64(n))
	for !f.failed && f.slowest() < int64(n) {
		f.cond.Wait()
	}
	f.want.Store(math.MaxInt64)
	return !f.failed
}

func (f *fanoutProgress) slowest() int64 {
	m := f.got[0].Load()
	for i := range f.got {
		m = min(m, f.got[i].Load())
	}
	return m
}
