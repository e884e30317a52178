package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// Hammer tests: many goroutines at once, checked for loss, duplicates,
// order, stuck goroutines and counters. Run them with -race.

// hammerSafety bounds a hammer test; if it fires, something is stuck.
const hammerSafety = 30 * time.Second

// psHammerEvent encodes a publisher and its sequence number.
func psHammerEvent(pub, seq int) engine.Event {
	return engine.Event{
		Type:   "hammer",
		Source: fmt.Sprintf("pub-%d", pub),
		Data:   engine.IntData(int64(pub)<<32 | int64(seq)),
	}
}

func psHammerDecode(ev engine.Event) (pub, seq int, ok bool) {
	n, ok := ev.Data.AsInt()
	return int(n >> 32), int(n & (1<<32 - 1)), ok
}

// psOrder checks that each publisher's events arrive in increasing order;
// with gapless, also that none is missing or repeated.
type psOrder struct {
	next    map[int]int // publisher -> next expected sequence number
	gapless bool
	count   int
}

func (o *psOrder) add(ev engine.Event) error {
	pub, seq, ok := psHammerDecode(ev)
	if !ok {
		return fmt.Errorf("event %v carries %v, not a hammer event", ev.ID, ev.Data)
	}
	if o.next == nil {
		o.next = make(map[int]int)
	}
	want := o.next[pub]
	if seq < want || (o.gapless && seq != want) {
		return fmt.Errorf("publisher %d: got sequence %d, want %d (loss, duplicate or reordering)", pub, seq, want)
	}
	o.next[pub] = seq + 1
	o.count++
	return nil
}

// psWaitGroup waits for wg. The hammer goroutines wait with contexts that
// end after hammerSafety, so they end by then even when events go missing;
// one still running well after that is stuck and fails the test. The engine
// is then closed, which should end them, so that they do not outlive the
// test.
func psWaitGroup(t *testing.T, e *engine.Engine, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(2 * hammerSafety):
	}
	t.Errorf("%s: goroutines still running after %v: stuck", what, 2*hammerSafety)
	e.Close()
	select {
	case <-done:
	case <-time.After(hammerSafety):
		t.Fatalf("%s: goroutines still running after the engine closed", what)
	}
}

func TestHammerBlockDeliversEverythingOnce(t *testing.T) {
	const (
		publishers  = 8
		perPub      = 1500
		subscribers = 8
		total       = publishers * perPub
		filtered    = 2 // extra subscriptions that select one publisher each
	)
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "ch", engine.ChannelConfig{BufferSize: 16, BlockTimeout: hammerSafety, Retention: engine.Retention{MaxEvents: 100}})
	ctx, cancel := context.WithTimeout(context.Background(), hammerSafety)
	defer cancel()

	type receiver struct {
		s    *engine.Subscription
		want int // events it must receive
	}
	var receivers []receiver
	for range subscribers {
		receivers = append(receivers, receiver{psSubscribe(t, e, "ch", engine.SubscribeOptions{}), total})
	}
	for i := range filtered {
		s := psSubscribe(t, e, "ch", engine.SubscribeOptions{Filter: engine.SourceIs(fmt.Sprintf("pub-%d", 3*i+1))})
		receivers = append(receivers, receiver{s, perPub})
	}

	var wg sync.WaitGroup
	for i, r := range receivers {
		wg.Go(func() {
			order := psOrder{gapless: true}
			var batch engine.EventBatch
			for order.count < r.want {
				var evs []engine.Event
				switch i % 3 {
				case 0:
					ev, err := r.s.Recv(ctx)
					if err != nil {
						t.Errorf("receiver %d after %d events: %v", i, order.count, err)
						return
					}
					evs = []engine.Event{ev}
				case 1:
					var err error
					if batch, err = r.s.RecvBatch(ctx, batch, 7); err != nil {
						t.Errorf("receiver %d after %d events: %v", i, order.count, err)
						return
					}
					evs = batch.Events
				case 2:
					ev, ok, err := r.s.TryRecv()
					if err == nil && !ok {
						ev, err = r.s.Recv(ctx)
					}
					if err != nil {
						t.Errorf("receiver %d after %d events: %v", i, order.count, err)
						return
					}
					evs = []engine.Event{ev}
				}
				for _, ev := range evs {
					if err := order.add(ev); err != nil {
						t.Errorf("receiver %d: %v", i, err)
						return
					}
				}
			}
			if order.count != r.want {
				t.Errorf("receiver %d got %d events, want %d", i, order.count, r.want)
			}
		})
	}
	for p := range publishers {
		wg.Go(func() {
			if p%2 == 0 {
				for seq := range perPub {
					if err := e.Publish(ctx, "ch", psHammerEvent(p, seq)); err != nil {
						t.Errorf("publisher %d, event %d: %v", p, seq, err)
						return
					}
				}
				return
			}
			// Batches of 1 to 40 events, some larger than the buffers.
			for seq, size := 0, 1; seq < perPub; size = size%40 + 1 {
				batch := engine.NewEventBatch(size)
				for ; batch.Len() < size && seq < perPub; seq++ {
					batch.Append(psHammerEvent(p, seq))
				}
				if err := e.PublishBatch(ctx, "ch", batch); err != nil {
					t.Errorf("publisher %d, batch ending at %d: %v", p, seq, err)
					return
				}
			}
		})
	}
	psWaitGroup(t, e, &wg, "publishers and receivers")
	if t.Failed() {
		return
	}

	wantDelivered := uint64(total*subscribers + filtered*perPub)
	want := engine.ChannelStats{Name: "ch", Published: total, Delivered: wantDelivered, Subscribers: subscribers + filtered, Retained: 100}
	if got := psChannelStats(t, e, "ch"); got != want {
		t.Errorf("ChannelStats = %+v, want %+v", got, want)
	}
	if st := e.Stats(); st.Published != total || st.Delivered != wantDelivered || st.Dropped != 0 || st.Lag != 0 {
		t.Errorf("Stats = %+v, want Published %d, Delivered %d, Dropped 0, Lag 0", st, total, wantDelivered)
	}
	for i, r := range receivers {
		if info := r.s.Info(); info.Received != uint64(r.want) || info.Acknowledged != uint64(r.want) || info.Dropped != 0 || info.Pending != 0 {
			t.Errorf("receiver %d Info = %+v, want Received = Acknowledged = %d, nothing dropped or pending", i, info, r.want)
		}
	}
}

func TestHammerSubscribeCloseChurn(t *testing.T) {
	const (
		pubsPerChannel     = 2
		perPub             = 2000
		churnersPerChannel = 6
		rounds             = 100
	)
	channels := []struct {
		name   string
		policy engine.SlowSubscriberPolicy
	}{{"drop", engine.DropOldest}, {"disc", engine.Disconnect}}
	e := psEngine(t, engine.Config{})
	for _, ch := range channels {
		psCreate(t, e, ch.name, engine.ChannelConfig{BufferSize: 8, SlowSubscriber: ch.policy})
	}
	safety, cancel := context.WithTimeout(context.Background(), hammerSafety)
	defer cancel()
	// published ends when every publisher is done: receivers stop waiting.
	published, publishersDone := context.WithCancel(safety)
	defer publishersDone()

	var (
		mu   sync.Mutex
		subs = map[string][]*engine.Subscription{} // every subscription ever made, by channel
	)
	var pubs, others sync.WaitGroup
	for _, ch := range channels {
		for p := range pubsPerChannel {
			pubs.Go(func() {
				for seq := 0; seq < perPub; {
					var err error
					if seq%20 < 10 {
						err = e.Publish(safety, ch.name, psHammerEvent(p, seq))
						seq++
					} else {
						batch := engine.NewEventBatch(10)
						for range 10 {
							batch.Append(psHammerEvent(p, seq))
							seq++
						}
						err = e.PublishBatch(safety, ch.name, batch)
					}
					if err != nil {
						t.Errorf("publisher %d on %s: %v", p, ch.name, err)
						return
					}
				}
			})
		}
		for c := range churnersPerChannel {
			others.Go(func() {
				for round := range rounds {
					opts := engine.SubscribeOptions{Subscriber: fmt.Sprintf("churner-%d", c%3)}
					switch round % 4 {
					case 1:
						opts.Filter = engine.SourceIs("pub-0")
					case 2:
						opts.BufferSize = 2
					case 3:
						opts.AckMode = engine.AckNone
					}
					s, err := e.Subscribe(ch.name, opts)
					if err != nil {
						t.Errorf("Subscribe to %s: %v", ch.name, err)
						return
					}
					mu.Lock()
					subs[ch.name] = append(subs[ch.name], s)
					mu.Unlock()
					order := psOrder{}
					for range round % 7 * 3 {
						ev, err := s.Recv(published)
						if err != nil {
							if published.Err() == nil && !errors.Is(err, engine.ErrSlowSubscriber) {
								t.Errorf("Recv on %s: %v", ch.name, err)
							}
							break
						}
						if err := order.add(ev); err != nil {
							t.Errorf("subscription on %s: %v", ch.name, err)
						}
					}
					if _, _, err := s.TryRecv(); err != nil && !errors.Is(err, engine.ErrSlowSubscriber) {
						t.Errorf("TryRecv on %s: %v", ch.name, err)
					}
					if round%5 != 4 { // some are left to the end
						s.Close()
					}
				}
			})
		}
	}
	// A reader of the records and counters runs all along.
	stopReader := make(chan struct{})
	others.Go(func() {
		for {
			select {
			case <-stopReader:
				return
			default:
			}
			st := e.Stats()
			if st.Subscribers < 0 {
				t.Errorf("Stats().Subscribers = %d", st.Subscribers)
			}
			for _, cs := range st.PerChannel {
				if cs.Subscribers < 0 || cs.MaxLag > cs.Lag || cs.Lag > uint64(cs.Subscribers)*8 {
					t.Errorf("inconsistent channel stats %+v", cs)
				}
			}
			for _, sub := range e.Subscribers() {
				if len(sub.Subscriptions) == 0 {
					t.Errorf("subscriber record %q without subscriptions", sub.Name)
				}
			}
			for _, ch := range channels {
				if _, err := e.Subscriptions(ch.name); err != nil {
					t.Errorf("Subscriptions(%s): %v", ch.name, err)
				}
			}
		}
	})
	psWaitGroup(t, e, &pubs, "publishers")
	publishersDone()
	close(stopReader)
	psWaitGroup(t, e, &others, "churners")

	for _, ch := range channels {
		var received, dropped uint64
		for _, s := range subs[ch.name] {
			info := s.Info()
			received += info.Received
			dropped += info.Dropped
			s.Close()
		}
		st := psChannelStats(t, e, ch.name)
		if st.Published != pubsPerChannel*perPub || st.Delivered != received || st.Dropped != dropped {
			t.Errorf("%s: stats %+v; want Published %d, Delivered %d and Dropped %d as the subscriptions counted",
				ch.name, st, pubsPerChannel*perPub, received, dropped)
		}
		if st.Subscribers != 0 || st.Lag != 0 {
			t.Errorf("%s: %d subscribers, Lag %d after every subscription closed; want 0", ch.name, st.Subscribers, st.Lag)
		}
		if ids := psSubscriptionIDs(t, e, ch.name); len(ids) != 0 {
			t.Errorf("%s: Subscriptions = %v after every subscription closed", ch.name, ids)
		}
	}
	if st := e.Stats(); st.Subscribers != 0 {
		t.Errorf("engine Subscribers = %d after every subscription closed, want 0", st.Subscribers)
	}
	if recs := e.Subscribers(); len(recs) != 0 {
		t.Errorf("Subscribers() = %+v after every subscription closed, want none", recs)
	}
}

func TestHammerDeleteWhileBusy(t *testing.T) {
	const (
		rounds      = 24
		publishers  = 4
		receivers   = 4
		progressMin = 64 // events published before the channel goes
	)
	policies := []engine.SlowSubscriberPolicy{engine.Block, engine.DropOldest, engine.Disconnect}
	for round := range rounds {
		policy := policies[round%len(policies)]
		closeEngine := round%4 == 3
		name := fmt.Sprintf("round %d %s", round, policy)
		if closeEngine {
			name += " engine closed"
		}
		// The reason the channel goes, and what a later lookup says.
		endErr, goneErr := engine.ErrChannelDeleted, engine.ErrChannelNotFound
		if closeEngine {
			endErr, goneErr = engine.ErrEngineClosed, engine.ErrEngineClosed
		}

		e := psEngine(t, engine.Config{})
		psCreate(t, e, "ch", engine.ChannelConfig{BufferSize: 4, SlowSubscriber: policy, BlockTimeout: hammerSafety})
		safety, cancel := context.WithTimeout(context.Background(), hammerSafety)
		var wg sync.WaitGroup
		for r := range receivers {
			s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
			wg.Go(func() {
				order := psOrder{gapless: policy == engine.Block}
				for {
					ev, err := s.Recv(safety)
					if err != nil {
						if !errors.Is(err, endErr) && !(policy == engine.Disconnect && errors.Is(err, engine.ErrSlowSubscriber)) {
							t.Errorf("%s: receiver %d ended with %v, want %v", name, r, err, endErr)
						}
						return
					}
					if err := order.add(ev); err != nil {
						t.Errorf("%s: receiver %d: %v", name, r, err)
					}
				}
			})
		}
		var published atomic.Int64
		progress := make(chan struct{})
		var progressOnce sync.Once
		for p := range publishers {
			wg.Go(func() {
				for seq := 0; ; {
					var err error
					if p%2 == 0 {
						err = e.Publish(safety, "ch", psHammerEvent(p, seq))
						if err == nil {
							seq++
						}
					} else {
						batch := engine.NewEventBatch(5)
						for i := range 5 {
							batch.Append(psHammerEvent(p, seq+i))
						}
						err = e.PublishBatch(safety, "ch", batch)
						var pe *engine.PublishError
						if err == nil {
							seq += 5
						} else if errors.As(err, &pe) {
							seq += pe.Published
						}
					}
					if err != nil {
						if !errors.Is(err, endErr) && !errors.Is(err, goneErr) {
							t.Errorf("%s: publisher %d ended with %v, want %v or %v", name, p, err, endErr, goneErr)
						}
						return
					}
					if published.Add(1) >= progressMin {
						progressOnce.Do(func() { close(progress) })
					}
				}
			})
		}
		wg.Go(func() { // subscribes and closes until the channel is gone
			for {
				s, err := e.Subscribe("ch", engine.SubscribeOptions{BufferSize: 2})
				if err != nil {
					if !errors.Is(err, endErr) && !errors.Is(err, goneErr) {
						t.Errorf("%s: Subscribe: %v, want %v or %v", name, err, endErr, goneErr)
					}
					return
				}
				s.TryRecv()
				s.Close()
			}
		})

		select {
		case <-progress:
		case <-safety.Done():
			// Everyone ends on the safety context; wait for them below.
			t.Errorf("%s: no progress: %d publishes in %v", name, published.Load(), hammerSafety)
		}
		var err error
		if closeEngine {
			err = e.Close()
		} else {
			err = e.DeleteChannel("ch")
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		psWaitGroup(t, e, &wg, name)
		cancel()
		if st := e.Stats(); st.Subscribers != 0 || st.Channels != 0 {
			t.Errorf("%s: after the end, Stats() = %+v; want no channels and no subscribers", name, st)
		}
		if t.Failed() {
			return
		}
	}
}
