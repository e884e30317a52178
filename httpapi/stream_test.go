package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
)

// bigEvent is an order with a payload of n bytes, to fill socket buffers.
func bigEvent(i, n int) engine.Event {
	return engine.NewEvent("order.created", "shop", engine.MustJSONData(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", n))))
}

func eventN(t testing.TB, ev engine.Event) int {
	t.Helper()
	v, _ := ev.Data.AsJSON()
	var d struct{ N int }
	if err := json.Unmarshal(v, &d); err != nil {
		t.Fatalf("event %s: %v", ev.ID, err)
	}
	return d.N
}

func TestSSEFilterAndLive(t *testing.T) {
	h := newHost(t, nil, httpapi.Config{})
	h.channel(t, "orders", engine.ChannelConfig{})
	c := h.client(t, "")
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "orders", url.Values{"type": {"order.paid"}, "meta.region": {"eu"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var want []engine.EventID
	for i := range 20 {
		ev := orderEvent(i)
		if i%2 == 0 {
			ev.Type = "order.paid"
		}
		if i%4 == 0 {
			ev.SetMeta("region", "eu")
		}
		if err := h.eng.Publish(ctx, "orders", ev); err != nil {
			t.Fatal(err)
		}
	}
	hist, _ := h.eng.History("orders", engine.HistoryQuery{})
	for _, ev := range hist {
		if r, _ := ev.Meta("region"); ev.Type == "order.paid" && r == "eu" {
			want = append(want, ev.ID)
		}
	}
	for i, id := range want {
		ev, err := sub.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID != id {
			t.Fatalf("event %d: %s, want %s", i, ev.ID, id)
		}
	}
	if sub.ID() == "" {
		t.Fatal("no subscription ID")
	}
}

// TestSSESlowClientResumes: a reader that stops while the channel goes
// on is disconnected (slow_client) without ever holding the publisher up,
// and its client resumes from the channel's history with Last-Event-ID:
// every event once, in order.
func TestSSESlowClientResumes(t *testing.T) {
	h := serveHost(t, nil, httpapi.Config{SubscriberBuffer: 8, WriteTimeout: time.Second}, true)
	h.channel(t, "orders", engine.ChannelConfig{Retention: engine.Retention{MaxEvents: 10_000}, BlockTimeout: 10 * time.Second})
	c := h.smallClient(t)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	const n, size = 1000, 1 << 10
	published := make(chan error, 1)
	first := make(chan struct{})
	go func() {
		for i := range n {
			if i == 100 {
				<-first
			}
			if err := h.eng.Publish(ctx, "orders", bigEvent(i, size)); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	for i := range n {
		if i == 100 {
			close(first)
			// Stop reading until the publisher is done: 1 MB, more than
			// the connection holds.
			if err := <-published; err != nil {
				t.Fatalf("the publisher was held up: %v", err)
			}
		}
		ev, err := sub.Next()
		if err != nil {
			t.Fatalf("event %d: %v (%d reconnections)", i, err, sub.Reconnects())
		}
		if got := eventN(t, ev); got != i {
			t.Fatalf("event %d: got %d", i, got)
		}
	}
	t.Logf("%d reconnections", sub.Reconnects())
	if sub.Reconnects() == 0 {
		t.Fatal("the slow reader was never disconnected: the test proves nothing")
	}
}

// TestSlowClientDoesNotBlockOthers: a connection that never reads does
// not hold up the publisher or a reader that keeps up.
func TestSlowClientDoesNotBlockOthers(t *testing.T) {
	h := serveHost(t, nil, httpapi.Config{SubscriberBuffer: 16, WriteTimeout: 500 * time.Millisecond}, true)
	h.channel(t, "orders", engine.ChannelConfig{BlockTimeout: 10 * time.Second})
	ctx := ctxT(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(smallBuffer)
	fmt.Fprintf(conn, "GET /v1/channels/orders/stream HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("stream: %q %v", line, err)
	}
	fast, err := h.client(t, "").Subscribe(ctx, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	const n = 500
	done := make(chan error, 1)
	// The publisher stays at most 4 events ahead of the reader that keeps
	// up, which is never disconnected then; the connection that does not
	// read falls behind by all of them.
	read := make(chan int, n)
	go func() {
		for i := range n {
			if i >= 4 {
				<-read
			}
			if err := h.eng.Publish(ctx, "orders", bigEvent(i, 4<<10)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range n {
		if i > 0 {
			read <- i
		}
		ev, err := fast.Next()
		if err != nil {
			t.Fatal(err)
		}
		if eventN(t, ev) != i {
			t.Fatalf("event %d: got %d", i, eventN(t, ev))
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the publisher was held up: %v", err)
	}
	if fast.Reconnects() != 0 {
		t.Fatalf("the reader that kept up was disconnected %d times", fast.Reconnects())
	}
	for {
		st, _ := h.eng.ChannelStats("orders")
		if st.Subscribers == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the slow connection's subscription is still there: %+v", st)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestSSEResume: Last-Event-ID (header or parameter) and start=all replay
// an in-memory channel's history before its live events.
func TestSSEResume(t *testing.T) {
	h := newHost(t, nil, httpapi.Config{})
	h.channel(t, "orders", engine.ChannelConfig{})
	ctx := ctxT(t)
	for i := range 5 {
		if err := h.eng.Publish(ctx, "orders", orderEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	hist, _ := h.eng.History("orders", engine.HistoryQuery{})
	tests := []struct {
		name  string
		q     url.Values
		first int
	}{
		{"start all", url.Values{"start": {"all"}}, 0},
		{"after id", url.Values{"after_id": {hist[1].ID.String()}}, 2},
		{"last event id", url.Values{"last_event_id": {hist[3].ID.String()}}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := h.client(t, "").Subscribe(ctx, "orders", tt.q)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			for i := tt.first; i < 5; i++ {
				ev, err := sub.Next()
				if err != nil || ev.ID != hist[i].ID {
					t.Fatalf("event %d: %v %v", i, ev.ID, err)
				}
			}
		})
	}
	a := h.do(t, "GET", "/v1/channels/orders/stream", "", "Last-Event-ID: "+engine.NewEventID().String())
	if a.status != 404 || a.err.Code != httpapi.CodeEventNotFound {
		t.Fatalf("an ID no longer retained: %d %s", a.status, a.body)
	}
	for _, tt := range []struct{ q, code string }{
		{"ack=manual", httpapi.CodeUnsupported},
		{"durable=x", httpapi.CodeUnsupported},
		{"after_seq=3", httpapi.CodeUnsupported},
		{"colour=red", httpapi.CodeBadRequest},
		{"after_id=nope", httpapi.CodeBadRequest},
		{"source_glob=%FF", httpapi.CodeBadRequest},
	} {
		if a := h.do(t, "GET", "/v1/channels/orders/stream?"+tt.q, ""); a.err == nil || a.err.Code != tt.code {
			t.Errorf("%s: %d %s, want %s", tt.q, a.status, a.body, tt.code)
		}
	}
}

func TestStreamLimitAndShutdown(t *testing.T) {
	eng := engine.New(engine.Config{})
	defer eng.Close()
	eng.CreateChannel("orders", engine.ChannelConfig{})
	srv, err := httpapi.New(eng, httpapi.Config{MaxStreams: 1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	h := &host{eng: eng, srv: srv, url: "http://" + l.Addr().String()}
	ctx := ctxT(t)
	sub, err := h.client(t, "").Subscribe(ctx, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := h.do(t, "GET", "/v1/channels/orders/stream", ""); a.status != 429 || a.err.Code != httpapi.CodeLimit {
		t.Fatalf("second stream: %d %s", a.status, a.body)
	}
	next := make(chan error, 1)
	go func() {
		_, err := sub.Next()
		next <- err
	}()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	sub.Close()
	if err := <-next; err == nil {
		t.Fatal("the stream went on after the shutdown")
	}
}

func TestSSEChannelDeleted(t *testing.T) {
	h := newHost(t, nil, httpapi.Config{})
	h.channel(t, "orders", engine.ChannelConfig{})
	ctx := ctxT(t)
	sub, err := h.client(t, "").Subscribe(ctx, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	h.eng.Publish(ctx, "orders", orderEvent(1))
	if _, err := sub.Next(); err != nil {
		t.Fatal(err)
	}
	h.eng.DeleteChannel("orders")
	_, err = sub.Next()
	var e *httpapi.Error
	if !errors.As(err, &e) || e.Code != httpapi.CodeChannelDeleted {
		t.Fatalf("after the delete: %v", err)
	}
}

// TestDurableManualAck: a durable subscription with ack=manual gets again
// what it did not acknowledge, and not what it did, across connections.
func TestDurableManualAck(t *testing.T) {
	h := newHost(t, durableEngine(t), httpapi.Config{Tokens: testTokens})
	h.channel(t, "orders", engine.ChannelConfig{Persistent: true})
	ctx := ctxT(t)
	var ids []engine.EventID
	for i := range 10 {
		ev := orderEvent(i)
		if err := h.eng.Publish(ctx, "orders", ev); err != nil {
			t.Fatal(err)
		}
	}
	hist, _ := h.eng.History("orders", engine.HistoryQuery{})
	for _, ev := range hist {
		ids = append(ids, ev.ID)
	}
	// An ack wait longer than the test: what the first stream did not
	// settle comes again at once, because closing its subscription gave it
	// back.
	q := url.Values{"durable": {"worker"}, "ack": {"manual"}, "start": {"all"}, "ack_wait": {"1h"}}
	c := h.client(t, subToken)
	sub, err := c.Subscribe(ctx, "orders", q)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		ev, err := sub.Next()
		if err != nil || ev.ID != ids[i] {
			t.Fatalf("event %d: %v %v", i, ev.ID, err)
		}
	}
	if err := sub.Ack(ctx, ids[:3]...); err != nil {
		t.Fatal(err)
	}
	var e *httpapi.Error
	if err := sub.Ack(ctx, ids[0]); !errors.As(err, &e) || e.Code != httpapi.CodeNotPending {
		t.Fatalf("acked twice: %v", err)
	}
	// Another token may not settle this stream's events, nor learn it exists.
	other := h.do(t, "POST", "/v1/subscriptions/"+url.PathEscape(sub.ID())+"/ack", `{"ids":["`+ids[3].String()+`"]}`, bearer(pubToken))
	if other.status != 404 || other.err.Code != httpapi.CodeSubscriptionGone {
		t.Fatalf("ack by a publisher: %d %s", other.status, other.body)
	}
	sub.Close()
	sub, err = c.Subscribe(ctx, "orders", q)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := map[engine.EventID]bool{}
	for len(got) < 7 {
		ev, err := sub.Next()
		if err != nil {
			t.Fatal(err)
		}
		for _, acked := range ids[:3] {
			if ev.ID == acked {
				t.Fatalf("acknowledged event %s delivered again", ev.ID)
			}
		}
		got[ev.ID] = true
		if err := sub.Ack(ctx, ev.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWebSocket(t *testing.T) {
	h := newHost(t, durableEngine(t), httpapi.Config{Tokens: testTokens})
	h.channel(t, "orders", engine.ChannelConfig{})
	h.channel(t, "orders.jobs", engine.ChannelConfig{Persistent: true})
	ctx := ctxT(t)
	wsURL := "ws" + strings.TrimPrefix(h.url, "http")
	dial := func(path string) *websocket.Conn {
		t.Helper()
		c, _, err := websocket.Dial(ctx, wsURL+path, &websocket.DialOptions{HTTPHeader: map[string][]string{"Authorization": {"Bearer " + subToken}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
	read := func(c *websocket.Conn) httpapi.WSMessage {
		t.Helper()
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m httpapi.WSMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	send := func(c *websocket.Conn, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("filtered live events", func(t *testing.T) {
		c := dial("/v1/channels/orders/ws?type=order.paid")
		if m := read(c); m.Type != "subscribed" || m.Subscribed.Channel != "orders" {
			t.Fatalf("first message: %+v", m)
		}
		for i := range 6 {
			ev := orderEvent(i)
			if i%3 == 0 {
				ev.Type = "order.paid"
			}
			h.eng.Publish(ctx, "orders", ev)
		}
		for _, want := range []int{0, 3} {
			m := read(c)
			if m.Type != "event" || eventN(t, *m.Event) != want {
				t.Fatalf("got %+v, want event %d", m, want)
			}
		}
		send(c, map[string]any{"type": "ack", "ids": []string{engine.NewEventID().String()}})
		if m := read(c); m.Type != "error" || m.Error.Code != httpapi.CodeUnsupported {
			t.Fatalf("ack on an auto stream: %+v", m)
		}
	})
	t.Run("manual acks", func(t *testing.T) {
		for i := range 4 {
			h.eng.Publish(ctx, "orders.jobs", orderEvent(i))
		}
		c := dial("/v1/channels/orders.jobs/ws?durable=w&ack=manual&start=all&ack_wait=1s")
		if m := read(c); m.Type != "subscribed" || m.Subscribed.Ack != "manual" || m.Subscribed.Durable != "w" {
			t.Fatalf("first message: %+v", m)
		}
		var got []engine.Event
		for range 4 {
			got = append(got, *read(c).Event)
		}
		send(c, map[string]any{"type": "ack", "ids": []string{got[0].ID.String(), got[1].ID.String()}})
		send(c, map[string]any{"type": "term", "ids": []string{got[2].ID.String()}, "reason": "bad"})
		send(c, map[string]any{"type": "shout"})
		if m := read(c); m.Type != "error" || m.Error.Code != httpapi.CodeBadRequest {
			t.Fatalf("unknown message: %+v", m)
		}
		// The fourth, not settled, comes again after its ack wait.
		if m := read(c); m.Type != "event" || m.Event.ID != got[3].ID {
			t.Fatalf("redelivery: %+v", m)
		}
	})
	t.Run("refused before the upgrade", func(t *testing.T) {
		_, resp, err := websocket.Dial(ctx, wsURL+"/v1/channels/orders/ws", nil)
		if err == nil || resp == nil || resp.StatusCode != 401 {
			t.Fatalf("no token: %v %v", resp, err)
		}
	})
}

// TestSSEHammer: publishers and subscribers that come and go on several
// channels; every subscriber that stays gets every event of its channel
// once, in order.
func TestSSEHammer(t *testing.T) {
	h := newHost(t, nil, httpapi.Config{})
	ctx := ctxT(t)
	const channels, subs, n = 3, 4, 300
	var wg sync.WaitGroup
	errs := make(chan error, channels*(subs+1))
	for ch := range channels {
		name := fmt.Sprintf("orders.%d", ch)
		h.channel(t, name, engine.ChannelConfig{})
		var ready sync.WaitGroup
		for range subs {
			sub, err := h.client(t, "").Subscribe(ctx, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			ready.Add(1)
			wg.Go(func() {
				defer sub.Close()
				ready.Done()
				for i := range n {
					ev, err := sub.Next()
					if err != nil {
						errs <- err
						return
					}
					if eventN(t, ev) != i {
						errs <- fmt.Errorf("%s: event %d: got %d", name, i, eventN(t, ev))
						return
					}
				}
			})
		}
		ready.Wait()
		wg.Go(func() {
			c := h.client(t, "")
			for i := 0; i < n; i += 10 {
				batch := make([]engine.Event, 10)
				for j := range batch {
					batch[j] = orderEvent(i + j)
				}
				if _, err := c.Publish(ctx, name, batch...); err != nil {
					errs <- err
					return
				}
			}
		})
		// Streams that come and go meanwhile.
		wg.Go(func() {
			for range 20 {
				s, err := h.client(t, "").Subscribe(ctx, name, url.Values{"start": {"all"}})
				if err != nil {
					errs <- err
					return
				}
				s.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSSEBurst: one publish of a large batch reaches a stream whole: a
// burst is not a slow client.
func TestSSEBurst(t *testing.T) {
	h := newHost(t, nil, httpapi.Config{})
	h.channel(t, "orders", engine.ChannelConfig{})
	ctx := ctxT(t)
	sub, err := h.client(t, "").Subscribe(ctx, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var nd strings.Builder
	const n = httpapi.DefaultMaxBatch
	for i := range n {
		b, _ := orderEvent(i).MarshalJSON()
		nd.Write(b)
		nd.WriteByte('\n')
	}
	if _, err := h.client(t, "").PublishNDJSON(ctx, "orders", strings.NewReader(nd.String())); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ev, err := sub.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if eventN(t, ev) != i {
			t.Fatalf("event %d: got %d", i, eventN(t, ev))
		}
	}
	if sub.Reconnects() != 0 {
		t.Fatalf("the stream was cut %d times by one publish", sub.Reconnects())
	}
}

// TestDurableHammer: three clients share one durable subscription with
// manual acks, leaving some events unacknowledged at first: every event
// ends acknowledged, whatever client took it.
func TestDurableHammer(t *testing.T) {
	h := newHost(t, durableEngine(t), httpapi.Config{})
	h.channel(t, "jobs", engine.ChannelConfig{Persistent: true})
	ctx := ctxT(t)
	const n = 300
	for i := 0; i < n; i += 50 {
		batch := make([]engine.Event, 50)
		for j := range batch {
			batch[j] = orderEvent(i + j)
		}
		if err := h.eng.PublishBatch(ctx, "jobs", engine.EventBatch{Events: batch}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	acked := map[int]bool{}
	skipped := map[int]bool{}
	done := make(chan struct{})
	var finish sync.Once
	subCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	q := url.Values{"durable": {"workers"}, "ack": {"manual"}, "start": {"all"}, "ack_wait": {"500ms"}}
	for w := range 3 {
		sub, err := h.client(t, "").Subscribe(subCtx, "jobs", q)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer sub.Close()
			for {
				ev, err := sub.Next()
				if err != nil {
					select {
					case <-done:
					default:
						t.Errorf("worker %d: %v", w, err)
					}
					return
				}
				i := eventN(t, ev)
				mu.Lock()
				// Every 7th event is left unacknowledged the first time it
				// comes: it must come again.
				skip := i%7 == 0 && !skipped[i]
				skipped[i] = skipped[i] || skip
				mu.Unlock()
				if skip {
					continue
				}
				if err := sub.Ack(ctx, ev.ID); err != nil {
					var e *httpapi.Error
					if errors.As(err, &e) && e.Code == httpapi.CodeNotPending {
						continue // redelivered to another worker meanwhile
					}
					t.Errorf("worker %d: ack: %v", w, err)
					return
				}
				mu.Lock()
				acked[i] = true
				all := len(acked) == n
				mu.Unlock()
				if all {
					finish.Do(func() { close(done) })
				}
			}
		})
	}
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Errorf("%d of %d events acknowledged", len(acked), n)
		mu.Unlock()
	}
	// The others are still reading: ending their context ends them.
	stop()
	wg.Wait()
}

// TestClientGivesUp: a subscription whose host is gone stops trying after
// ReconnectFor, and one whose connection goes silent (a host that went
// away without closing it) takes it for dead after three keep-alives.
func TestClientGivesUp(t *testing.T) {
	t.Run("host gone", func(t *testing.T) {
		eng := engine.New(engine.Config{})
		defer eng.Close()
		eng.CreateChannel("orders", engine.ChannelConfig{})
		srv, err := httpapi.New(eng, httpapi.Config{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		c, _ := httpapi.NewClient("http://"+l.Addr().String(), "", nil)
		c.ReconnectFor = 500 * time.Millisecond
		sub, err := c.Subscribe(ctxT(t), "orders", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		srv.Shutdown(ctxT(t))
		if _, err := sub.Next(); err == nil || !strings.Contains(err.Error(), "no connection for 500ms") {
			t.Fatalf("after the host went away: %v", err)
		}
	})
	t.Run("silent connection", func(t *testing.T) {
		var conns atomic.Int32
		silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conns.Add(1)
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "retry: 10\n\nevent: subscribed\ndata: {\"subscription\":\"s\",\"channel\":\"orders\",\"ack\":\"auto\",\"heartbeat\":\"50ms\"}\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done() // then nothing, as a host that is gone
		}))
		defer silent.Close()
		c, _ := httpapi.NewClient(silent.URL, "", nil)
		ctx, cancel := context.WithCancel(ctxT(t))
		sub, err := c.Subscribe(ctx, "orders", nil)
		if err != nil {
			t.Fatal(err)
		}
		next := make(chan error, 1)
		go func() {
			_, err := sub.Next()
			next <- err
		}()
		for conns.Load() < 3 {
			select {
			case err := <-next:
				t.Fatalf("Next ended: %v", err)
			case <-ctx.Done():
				t.Fatalf("%d connections: the silent one was not taken for dead", conns.Load())
			case <-time.After(10 * time.Millisecond):
			}
		}
		cancel()
		<-next
		sub.Close()
	})
}
