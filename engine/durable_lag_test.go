package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// durEventually polls cond until it holds, failing after d with what cond
// last described.
func durEventually(t *testing.T, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, what := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The lag of a persistent subscription is its backlog: events not yet
// delivered plus those delivered and not yet acknowledged. It falls only
// as events are acknowledged, whether the receiver took them or they were
// only fetched ahead, and a redelivered event stays in it. Stats and the
// lag metric say the same.
func TestDurableLagStats(t *testing.T) {
	e := openDurable(t, t.TempDir())
	meter, reader := omNew(t)
	if err := e.Instrument(meter); err != nil {
		t.Fatal(err)
	}
	psCreate(t, e, "jobs", engine.ChannelConfig{Persistent: true})
	s, err := e.Subscribe("jobs", engine.SubscribeOptions{
		Subscriber: "worker", Durable: "w", AckMode: engine.AckManual, DeliveryMode: engine.AtLeastOnce,
		AckWait: time.Minute, BufferSize: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := durEvents(10)
	if err := e.PublishBatch(ctxFor(t, 10*time.Second), "jobs", engine.EventBatch{Events: evs}); err != nil {
		t.Fatal(err)
	}

	type counts struct{ lag, pending, ackPending, redelivered uint64 }
	check := func(what string, want func(c counts) bool) {
		t.Helper()
		durEventually(t, 10*time.Second, func() (bool, string) {
			in := s.Info()
			cs, err := e.ChannelStats("jobs")
			if err != nil {
				t.Fatal(err)
			}
			sub := counts{in.Lag, uint64(in.Pending), uint64(in.AckPending), uint64(in.Redelivered)}
			ch := counts{cs.Lag, cs.Pending, cs.AckPending, cs.Redelivered}
			ok := in.Err == "" && want(sub) && sub == ch && cs.MaxLag == sub.lag &&
				sub.lag == sub.pending+sub.ackPending
			return ok, fmt.Sprintf("%s: subscription %+v (err %q), channel %+v (max lag %d)", what, sub, in.Err, ch, cs.MaxLag)
		})
		lag := omCollect(t, reader)[engine.MetricSubscriptionLag]
		omWant(t, lag, int64(s.Info().Lag), engine.AttrChannel.String("jobs"), engine.AttrSubscriber.String("worker"), engine.AttrSubscription.String(s.ID()))
	}

	check("before any receive", func(c counts) bool { return c == counts{lag: 10, pending: 10} })

	got := recvN(t, s, 3, 10*time.Second)
	if len(got) != 3 {
		t.Fatalf("received %d events, want 3", len(got))
	}
	// Three taken and more fetched ahead: delivered, none acknowledged.
	check("after receiving 3", func(c counts) bool { return c.lag == 10 && c.ackPending >= 3 && c.redelivered == 0 })

	if err := s.Ack(ctxFor(t, 5*time.Second), got[0].ID, got[1].ID); err != nil {
		t.Fatal(err)
	}
	check("after 2 acks", func(c counts) bool { return c.lag == 8 })

	if err := s.Nak(got[2].ID, 0); err != nil {
		t.Fatal(err)
	}
	// The nak'd event comes again (behind the ones fetched ahead), still
	// counted, now as redelivered.
	var rest []engine.Event
	for len(rest) < 8 {
		more := recvN(t, s, 8-len(rest), 10*time.Second)
		if len(more) == 0 {
			t.Fatalf("received %d of the 8 left", len(rest))
		}
		rest = append(rest, more...)
	}
	if d, err := s.Delivery(got[2].ID); err != nil || d.Delivered != 2 {
		t.Fatalf("the nak'd event: %+v, %v; want its second delivery", d, err)
	}
	check("after the redelivery", func(c counts) bool { return c.lag == 8 && c.ackPending == 8 && c.redelivered == 1 })

	if err := s.Ack(ctxFor(t, 5*time.Second), ids(rest)...); err != nil {
		t.Fatal(err)
	}
	check("after acking everything", func(c counts) bool { return c == counts{} })
}

// An in-memory subscription's lag is what waits in its buffer; the
// persistent-only counts stay zero.
func TestDurableLagInMemory(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "ch", engine.ChannelConfig{})
	s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
	psPublish(t, e, "ch", 1, 2, 3)
	if in := s.Info(); in.Lag != 3 || in.Pending != 3 || in.AckPending != 0 {
		t.Fatalf("info %+v, want lag and pending 3", in)
	}
	cs, err := e.ChannelStats("ch")
	if err != nil || cs.Lag != 3 || cs.Pending != 0 || cs.AckPending != 0 || cs.Redelivered != 0 {
		t.Fatalf("stats %+v, %v; want lag 3 and no persistent counts", cs, err)
	}
}
