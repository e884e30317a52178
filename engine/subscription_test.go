package engine_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

func TestRecvContext(t *testing.T) {
	tests := []struct {
		name string
		ctx  func(t *testing.T) context.Context
		want error
	}{
		{name: "already cancelled", want: context.Canceled, ctx: func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}},
		{name: "deadline", want: context.DeadlineExceeded, ctx: func(t *testing.T) context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			t.Cleanup(cancel)
			return ctx
		}},
		{name: "cancelled while waiting", want: context.Canceled, ctx: func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(psQuiet, cancel)
			t.Cleanup(cancel)
			return ctx
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := psEngine(t, engine.Config{})
			psCreate(t, e, "ch", engine.ChannelConfig{})
			s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
			ctx := tt.ctx(t)
			done := psGo(func() error { _, err := s.Recv(ctx); return err })
			if err := psAwait(t, done, "Recv to honour its context"); !errors.Is(err, tt.want) {
				t.Errorf("Recv: %v, want %v", err, tt.want)
			}
			done = psGo(func() error { _, err := s.RecvBatch(ctx, engine.EventBatch{}, 4); return err })
			if err := psAwait(t, done, "RecvBatch to honour its context"); !errors.Is(err, tt.want) {
				t.Errorf("RecvBatch: %v, want %v", err, tt.want)
			}
			// The subscription still works.
			psPublish(t, e, "ch", 1)
			if got := psRecvNums(t, s, 1); !slices.Equal(got, []int{1}) {
				t.Errorf("Recv after the context ended: %v, want [1]", got)
			}
		})
	}
}

func TestTryRecv(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "ch", engine.ChannelConfig{})
	s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
	ev, ok, err := s.TryRecv()
	if ok || err != nil || !ev.ID.IsZero() {
		t.Fatalf("TryRecv on an empty subscription = %v, %v, %v; want a zero event, false, nil", ev.ID, ok, err)
	}
	psPublish(t, e, "ch", 1, 2)
	if got := psDrain(t, s); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("TryRecv took %v, want [1 2]", got)
	}
	if info := s.Info(); info.Received != 2 || info.Pending != 0 {
		t.Errorf("Info: Received %d, Pending %d; want 2, 0", info.Received, info.Pending)
	}
	psNoEvent(t, s)
	s.Close()
	if _, ok, err := s.TryRecv(); ok || !errors.Is(err, engine.ErrSubscriptionClosed) {
		t.Errorf("TryRecv after Close = %v, %v; want false, ErrSubscriptionClosed", ok, err)
	}
}

func TestRecvBatch(t *testing.T) {
	tests := []struct {
		name    string
		pending int
		max     int
		dstCap  int
		want    [][]int // successive batches
	}{
		{name: "max respected", pending: 5, max: 2, want: [][]int{{0, 1}, {2, 3}, {4}}},
		{name: "fewer than max waiting", pending: 3, max: 10, want: [][]int{{0, 1, 2}}},
		{name: "max of one", pending: 2, max: 1, want: [][]int{{0}, {1}}},
		{name: "reuses a big enough dst", pending: 6, max: 4, dstCap: 8, want: [][]int{{0, 1, 2, 3}, {4, 5}}},
		{name: "grows a small dst", pending: 6, max: 4, dstCap: 2, want: [][]int{{0, 1, 2, 3}, {4, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := psEngine(t, engine.Config{})
			psCreate(t, e, "ch", engine.ChannelConfig{})
			s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
			psPublish(t, e, "ch", psRange(0, tt.pending)...)
			dst := engine.EventBatch{Events: make([]engine.Event, 0, tt.dstCap)}
			// Leftovers in dst are not part of the result.
			if tt.dstCap > 0 {
				dst.Append(psEvent(-1))
			}
			var first *engine.Event
			for i, want := range tt.want {
				got, err := s.RecvBatch(psContext(t), dst, tt.max)
				if err != nil {
					t.Fatalf("RecvBatch %d: %v", i, err)
				}
				if nums := psNums(t, got.Events); !slices.Equal(nums, want) {
					t.Errorf("RecvBatch %d = %v, want %v", i, nums, want)
				}
				if first == nil {
					first = &got.Events[:1][0]
				} else if &got.Events[:1][0] != first {
					t.Errorf("RecvBatch %d did not reuse the storage of the batch it was given back", i)
				}
				if tt.dstCap >= tt.max && &got.Events[:1][0] != &dst.Events[:1][0] {
					t.Errorf("RecvBatch %d allocated though dst had room for %d", i, tt.dstCap)
				}
				dst = got
			}
			psNoEvent(t, s)
		})
	}
	t.Run("max not positive", func(t *testing.T) {
		e := psEngine(t, engine.Config{})
		psCreate(t, e, "ch", engine.ChannelConfig{})
		s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
		psPublish(t, e, "ch", 1)
		for _, max := range []int{0, -1} {
			if _, err := s.RecvBatch(psContext(t), engine.EventBatch{}, max); err == nil || !strings.Contains(err.Error(), "batch size") {
				t.Errorf("RecvBatch(max %d): %v, want an error about the batch size", max, err)
			}
		}
		if got := psDrain(t, s); !slices.Equal(got, []int{1}) {
			t.Errorf("a refused RecvBatch took events: %v left, want [1]", got)
		}
	})
	t.Run("waits for the first event", func(t *testing.T) {
		e := psEngine(t, engine.Config{})
		psCreate(t, e, "ch", engine.ChannelConfig{})
		s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
		got := make(chan []int, 1)
		go func() {
			b, err := s.RecvBatch(psContext(t), engine.EventBatch{}, 8)
			if err != nil {
				t.Errorf("RecvBatch: %v", err)
			}
			got <- psNums(t, b.Events)
		}()
		psNotYet(t, got, "RecvBatch on an empty subscription returning")
		psPublish(t, e, "ch", 1)
		if nums := psAwait(t, got, "RecvBatch"); !slices.Equal(nums, []int{1}) {
			t.Errorf("RecvBatch = %v, want [1]", nums)
		}
	})
}

func TestSubscriptionClose(t *testing.T) {
	e := psEngine(t, engine.Config{})
	// Block with a tiny buffer: a subscription that was not detached would
	// make the publisher time out.
	psCreate(t, e, "ch", engine.ChannelConfig{BufferSize: 1, BlockTimeout: 10 * time.Millisecond})
	s := psSubscribe(t, e, "ch", engine.SubscribeOptions{Subscriber: "alice"})
	other := psSubscribe(t, e, "ch", engine.SubscribeOptions{Subscriber: "bob", BufferSize: 100})
	psPublish(t, e, "ch", 0)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// It held event 0: Close discards it.
	if _, err := s.Recv(psContext(t)); !errors.Is(err, engine.ErrSubscriptionClosed) {
		t.Errorf("Recv after Close: %v, want ErrSubscriptionClosed", err)
	}
	if _, err := s.RecvBatch(psContext(t), engine.EventBatch{}, 4); !errors.Is(err, engine.ErrSubscriptionClosed) {
		t.Errorf("RecvBatch after Close: %v, want ErrSubscriptionClosed", err)
	}
	if _, ok, err := s.TryRecv(); ok || !errors.Is(err, engine.ErrSubscriptionClosed) {
		t.Errorf("TryRecv after Close: %v, %v; want false, ErrSubscriptionClosed", ok, err)
	}
	// The publisher no longer delivers to it (and is not blocked by it).
	psPublish(t, e, "ch", 1, 2)
	if info := s.Info(); info.Pending != 0 || info.Received != 0 {
		t.Errorf("closed subscription Info: Pending %d, Received %d; want 0, 0", info.Pending, info.Received)
	}
	if ids := psSubscriptionIDs(t, e, "ch"); !slices.Equal(ids, []string{other.ID()}) {
		t.Errorf("Subscriptions = %v, want only %s", ids, other.ID())
	}
	psCheckSubscribers(t, e, []engine.SubscriberInfo{{Name: "bob", Subscriptions: []string{other.ID()}}})
	if st := e.Stats(); st.Subscribers != 1 {
		t.Errorf("engine Subscribers = %d, want 1", st.Subscribers)
	}
	if st := psChannelStats(t, e, "ch"); st.Subscribers != 1 || st.Lag != 3 || st.Delivered != 0 {
		t.Errorf("channel stats %+v, want 1 subscriber, Lag 3 (the other's), Delivered 0", st)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if st := e.Stats(); st.Subscribers != 1 {
		t.Errorf("engine Subscribers = %d after a second Close, want 1", st.Subscribers)
	}
	if got := psDrain(t, other); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("the other subscription received %v, want [0 1 2]", got)
	}
}

func TestCloseWakesWaitingReceivers(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "ch", engine.ChannelConfig{})
	s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
	ended := make(chan error, 3)
	go func() { _, err := s.Recv(psContext(t)); ended <- err }()
	go func() { _, err := s.Recv(psContext(t)); ended <- err }()
	go func() { _, err := s.RecvBatch(psContext(t), engine.EventBatch{}, 4); ended <- err }()
	psNotYet(t, ended, "a receiver of an empty subscription returning")
	s.Close()
	for range 3 {
		if err := psAwait(t, ended, "a waiting receiver to wake"); !errors.Is(err, engine.ErrSubscriptionClosed) {
			t.Errorf("waiting receiver got %v, want ErrSubscriptionClosed", err)
		}
	}
}

func TestReceiversShareASubscription(t *testing.T) {
	const events, receivers = 2000, 4
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "ch", engine.ChannelConfig{BufferSize: 8, BlockTimeout: psWait})
	s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = make(map[int]int)
	)
	ctx := psContext(t)
	for r := range receivers {
		wg.Go(func() {
			var batch engine.EventBatch
			for {
				var err error
				var nums []int
				if r%2 == 0 {
					var ev engine.Event
					ev, err = s.Recv(ctx)
					if err == nil {
						nums = []int{psNum(t, ev)}
					}
				} else {
					batch, err = s.RecvBatch(ctx, batch, 5)
					nums = psNums(t, batch.Events)
				}
				if err != nil {
					if !errors.Is(err, engine.ErrSubscriptionClosed) {
						t.Errorf("receiver %d: %v", r, err)
					}
					return
				}
				mu.Lock()
				for _, n := range nums {
					seen[n]++
				}
				done := len(seen) == events
				mu.Unlock()
				if done {
					s.Close() // ends the other receivers
				}
			}
		})
	}
	for n := 0; n < events; n += 10 {
		if err := e.PublishBatch(ctx, "ch", psBatch(psRange(n, n+10)...)); err != nil {
			t.Errorf("PublishBatch at %d: %v", n, err)
			s.Close()
			break
		}
	}
	wg.Wait()
	if len(seen) != events {
		t.Errorf("the receivers took %d distinct events, want %d", len(seen), events)
	}
	for n, count := range seen {
		if count != 1 {
			t.Errorf("event %d was received %d times, want once", n, count)
		}
	}
	if info := s.Info(); info.Received != events {
		t.Errorf("Info().Received = %d, want %d", info.Received, events)
	}
}

func TestSubscriptionInfo(t *testing.T) {
	created := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	e := psEngine(t, engine.Config{Now: psNewClock(created).Now})
	psCreate(t, e, "ch", engine.ChannelConfig{BufferSize: 16})
	meta := map[string]string{"team": "payments", "region": "eu"}
	s := psSubscribe(t, e, "ch", engine.SubscribeOptions{
		Subscriber: "alice",
		Filter:     engine.TypeIs("test.event"),
		AckMode:    engine.AckNone,
		Metadata:   meta,
		BufferSize: 7,
	})
	plain := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
	psPublish(t, e, "ch", 1, 2, 3)
	psRecvNums(t, s, 1)

	info := s.Info()
	if info.ID == "" || info.ID != s.ID() || info.Channel != "ch" || s.Channel() != "ch" {
		t.Errorf("ID %q (s.ID() %q), Channel %q (s.Channel() %q); want the subscription's ID and \"ch\"", info.ID, s.ID(), info.Channel, s.Channel())
	}
	if info.Subscriber != "alice" || info.DeliveryMode != engine.AtMostOnce || info.AckMode != engine.AckNone {
		t.Errorf("Subscriber %q, DeliveryMode %v, AckMode %v; want alice, at-most-once, none", info.Subscriber, info.DeliveryMode, info.AckMode)
	}
	if info.Filter == "" || !strings.Contains(info.Filter, "test.event") {
		t.Errorf("Filter = %q, want a description of the type filter", info.Filter)
	}
	if !info.Created.Equal(created) || info.BufferSize != 7 {
		t.Errorf("Created %v, BufferSize %d; want %v (Config.Now) and 7", info.Created, info.BufferSize, created)
	}
	if info.Received != 1 || info.Acknowledged != 0 || info.Dropped != 0 || info.Pending != 2 {
		t.Errorf("Received %d, Acknowledged %d, Dropped %d, Pending %d; want 1, 0, 0, 2", info.Received, info.Acknowledged, info.Dropped, info.Pending)
	}
	wantMeta := maps.Clone(meta)
	if !maps.Equal(info.Metadata, wantMeta) {
		t.Errorf("Metadata = %v, want %v", info.Metadata, wantMeta)
	}
	// The record keeps a copy: neither the caller's map nor a returned one
	// changes it.
	meta["team"] = "changed"
	meta["new"] = "x"
	info.Metadata["region"] = "changed"
	if got := s.Info().Metadata; !maps.Equal(got, wantMeta) {
		t.Errorf("Metadata after the maps were modified = %v, want %v", got, wantMeta)
	}

	pi := plain.Info()
	if pi.Subscriber != pi.ID || pi.Filter != "" || pi.BufferSize != 16 || pi.AckMode != engine.AckAuto || len(pi.Metadata) != 0 {
		t.Errorf("defaults: Subscriber %q (ID %q), Filter %q, BufferSize %d, AckMode %v, Metadata %v; want the ID, \"\", 16, auto, none",
			pi.Subscriber, pi.ID, pi.Filter, pi.BufferSize, pi.AckMode, pi.Metadata)
	}
	if pi.ID == info.ID {
		t.Errorf("two subscriptions share the ID %q", pi.ID)
	}

	infos, err := e.Subscriptions("ch")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].ID != s.ID() || infos[1].ID != plain.ID() {
		t.Fatalf("Subscriptions = %+v, want the two, oldest first", infos)
	}
	if infos[0].Pending != 2 || infos[0].Received != 1 || infos[1].Pending != 3 || !maps.Equal(infos[0].Metadata, wantMeta) {
		t.Errorf("Subscriptions records %+v, want the same as Info()", infos)
	}
}
