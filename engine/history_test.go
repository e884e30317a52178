package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

func TestHistoryQuery(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "ch", engine.ChannelConfig{})
	testHistoryQuery(t, e, psContext(t), "ch")
}

// testHistoryQuery publishes to channel ten events, 0..9, one second apart
// by their own time, except event 7, which a producer stamped earlier
// (1.5 s): time order and publish order differ. Even events are of type
// "even". Then it checks what History answers to a table of queries on
// them. The in-memory and the persistent history run it alike.
func testHistoryQuery(t *testing.T, e *engine.Engine, ctx context.Context, channel string) {
	t.Helper()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ids := make([]engine.EventID, 10)
	batch := engine.NewEventBatch(10)
	for n := range 10 {
		ev := psEvent(n)
		ev.Time = base.Add(time.Duration(n) * time.Second).UnixNano()
		if n == 7 {
			ev.Time = base.Add(1500 * time.Millisecond).UnixNano()
		}
		if n%2 == 0 {
			ev.Type = "even"
		}
		ids[n] = engine.NewEventID()
		ev.ID = ids[n]
		batch.Append(ev)
	}
	if err := e.PublishBatch(ctx, channel, batch); err != nil {
		t.Fatal(err)
	}
	sec := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name string
		q    engine.HistoryQuery
		want []int
	}{
		{name: "everything", want: psRange(0, 10)},
		{name: "newest 3", q: engine.HistoryQuery{Limit: 3}, want: []int{7, 8, 9}},
		{name: "limit 1", q: engine.HistoryQuery{Limit: 1}, want: []int{9}},
		{name: "limit 0 is no limit", q: engine.HistoryQuery{Limit: 0}, want: psRange(0, 10)},
		{name: "negative limit is no limit", q: engine.HistoryQuery{Limit: -1}, want: psRange(0, 10)},
		{name: "limit above retained", q: engine.HistoryQuery{Limit: 50}, want: psRange(0, 10)},
		{name: "after a time, by event time", q: engine.HistoryQuery{After: sec(3.5)}, want: []int{4, 5, 6, 8, 9}},
		{name: "after is strict", q: engine.HistoryQuery{After: sec(4)}, want: []int{5, 6, 8, 9}},
		{name: "after just before", q: engine.HistoryQuery{After: sec(4).Add(-time.Nanosecond)}, want: []int{4, 5, 6, 8, 9}},
		{name: "after everything", q: engine.HistoryQuery{After: sec(9)}, want: []int{}},
		{name: "after long ago", q: engine.HistoryQuery{After: base.Add(-time.Hour)}, want: psRange(0, 10)},
		{name: "after an id, by publish order", q: engine.HistoryQuery{AfterID: ids[3]}, want: []int{4, 5, 6, 7, 8, 9}},
		{name: "after the first id", q: engine.HistoryQuery{AfterID: ids[0]}, want: psRange(1, 10)},
		{name: "after the newest id", q: engine.HistoryQuery{AfterID: ids[9]}, want: []int{}},
		{name: "filter", q: engine.HistoryQuery{Filter: engine.TypeIs("even")}, want: []int{0, 2, 4, 6, 8}},
		{name: "filter selecting nothing", q: engine.HistoryQuery{Filter: engine.TypeIs("odd")}, want: []int{}},
		{name: "after id and filter", q: engine.HistoryQuery{AfterID: ids[3], Filter: engine.TypeIs("even")}, want: []int{4, 6, 8}},
		{name: "after id and limit", q: engine.HistoryQuery{AfterID: ids[3], Limit: 2}, want: []int{8, 9}},
		{name: "after id and after time", q: engine.HistoryQuery{AfterID: ids[2], After: sec(3)}, want: []int{4, 5, 6, 8, 9}},
		{name: "limit counts selected events", q: engine.HistoryQuery{Filter: engine.TypeIs("even"), Limit: 2}, want: []int{6, 8}},
		{name: "all four", q: engine.HistoryQuery{AfterID: ids[1], After: sec(1), Filter: engine.Not(engine.TypeIs("even")), Limit: 2}, want: []int{7, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := e.History(channel, tt.q)
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			if evs == nil {
				t.Error("History returned nil, want an empty slice")
			}
			if got := psNums(t, evs); !slices.Equal(got, tt.want) {
				t.Errorf("History = %v, want %v (oldest first)", got, tt.want)
			}
			for _, ev := range evs {
				if n := psNum(t, ev); ev.ID != ids[n] || ev.Source != "urn:test" {
					t.Errorf("event %d is %v from %q, want %v from urn:test", n, ev.ID, ev.Source, ids[n])
				}
			}
		})
	}
}

func TestHistoryReturnsCopies(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "ch", engine.ChannelConfig{})
	psPublish(t, e, "ch", 1, 2)
	first, err := e.History("ch", engine.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	first[0].Source = "changed"
	first[1] = psEvent(99)
	again, err := e.History("ch", engine.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Source != "urn:test" || psNum(t, again[1]) != 2 {
		t.Errorf("changing a returned slice changed the history: %v", again)
	}
}

func TestHistoryAfterIDNotFound(t *testing.T) {
	clock := psNewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e := psEngine(t, engine.Config{Now: clock.Now})
	psCreate(t, e, "count", engine.ChannelConfig{Retention: engine.Retention{MaxEvents: 3}})
	psCreate(t, e, "age", engine.ChannelConfig{Retention: engine.Retention{MaxAge: time.Minute}})
	psCreate(t, e, "none", engine.ChannelConfig{Retention: engine.Retention{MaxEvents: -1}})
	publish := func(channel string) engine.EventID {
		ev := psEvent(0)
		ev.ID = engine.NewEventID()
		if err := e.Publish(psContext(t), channel, ev); err != nil {
			t.Fatal(err)
		}
		return ev.ID
	}
	evictedByCount := publish("count")
	for range 3 {
		publish("count")
	}
	expired := publish("age")
	clock.Advance(time.Minute + time.Nanosecond)
	publish("age")
	neverKept := publish("none")
	tests := []struct {
		name    string
		channel string
		id      engine.EventID
	}{
		{name: "unknown id", channel: "count", id: engine.NewEventID()},
		{name: "evicted by count", channel: "count", id: evictedByCount},
		{name: "expired by age", channel: "age", id: expired},
		{name: "no retention", channel: "none", id: neverKept},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkEventNotFound(t, e, tt.channel, tt.id)
		})
	}
}

// checkEventNotFound checks that a history query after id on channel fails
// with ErrEventNotFound and an error that names the channel and the event.
func checkEventNotFound(t *testing.T, e *engine.Engine, channel string, id engine.EventID) {
	t.Helper()
	evs, err := e.History(channel, engine.HistoryQuery{AfterID: id})
	if !errors.Is(err, engine.ErrEventNotFound) {
		t.Fatalf("History(AfterID) = %d events, %v; want ErrEventNotFound", len(evs), err)
	}
	if !strings.Contains(err.Error(), id.String()) || !strings.Contains(err.Error(), channel) {
		t.Errorf("error %q does not name the channel and the event", err)
	}
}

func TestHistoryRetentionByCount(t *testing.T) {
	tests := []struct {
		name      string
		maxEvents int
		publish   int
		batch     bool
		want      []int
	}{
		{name: "newest kept", maxEvents: 3, publish: 10, want: []int{7, 8, 9}},
		{name: "batch bigger than retention", maxEvents: 3, publish: 10, batch: true, want: []int{7, 8, 9}},
		{name: "exactly full", maxEvents: 4, publish: 4, want: []int{0, 1, 2, 3}},
		{name: "one", maxEvents: 1, publish: 5, batch: true, want: []int{4}},
		{name: "default", maxEvents: 0, publish: engine.DefaultRetentionEvents + 5, batch: true, want: psRange(5, engine.DefaultRetentionEvents+5)},
		{name: "negative keeps nothing", maxEvents: -1, publish: 5, want: []int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := psEngine(t, engine.Config{})
			psCreate(t, e, "ch", engine.ChannelConfig{Retention: engine.Retention{MaxEvents: tt.maxEvents}, BufferSize: 2 * engine.DefaultRetentionEvents})
			s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
			if tt.batch {
				if err := e.PublishBatch(psContext(t), "ch", psBatch(psRange(0, tt.publish)...)); err != nil {
					t.Fatal(err)
				}
			} else {
				psPublish(t, e, "ch", psRange(0, tt.publish)...)
			}
			if got := psHistory(t, e, "ch", engine.HistoryQuery{}); !slices.Equal(got, tt.want) {
				t.Errorf("History = %v, want %v", got, tt.want)
			}
			if st := psChannelStats(t, e, "ch"); st.Retained != len(tt.want) || st.Published != uint64(tt.publish) {
				t.Errorf("Retained %d, Published %d; want %d, %d", st.Retained, st.Published, len(tt.want), tt.publish)
			}
			// Retention bounds the history, not delivery.
			if info := s.Info(); info.Pending != tt.publish {
				t.Errorf("the subscription holds %d events, want all %d", info.Pending, tt.publish)
			}
		})
	}
}

func TestHistoryRetentionByAge(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := psNewClock(start)
	e := psEngine(t, engine.Config{Now: clock.Now})
	psCreate(t, e, "ch", engine.ChannelConfig{Retention: engine.Retention{MaxAge: time.Minute}})
	check := func(step string, want []int) {
		t.Helper()
		if got := psHistory(t, e, "ch", engine.HistoryQuery{}); !slices.Equal(got, want) {
			t.Errorf("%s: History = %v, want %v", step, got, want)
		}
		if st := psChannelStats(t, e, "ch"); st.Retained != len(want) {
			t.Errorf("%s: Retained = %d, want %d", step, st.Retained, len(want))
		}
	}
	psPublish(t, e, "ch", 0)
	clock.Advance(30 * time.Second)
	// The age counts from when the channel accepted the event, not from the
	// event's own time, which a producer sets.
	old := psEvent(1)
	old.Time = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	if err := e.Publish(psContext(t), "ch", old); err != nil {
		t.Fatal(err)
	}
	check("at 30s", []int{0, 1})
	clock.Advance(30 * time.Second)
	check("event 0 exactly one minute old", []int{0, 1})
	clock.Advance(time.Nanosecond)
	check("event 0 older than a minute", []int{1})
	clock.Advance(30 * time.Second)
	check("both older than a minute", []int{})
	// Expiry also happens on write.
	psPublish(t, e, "ch", 2)
	clock.Advance(10 * time.Second)
	psPublish(t, e, "ch", 3)
	clock.Advance(55 * time.Second)
	psPublish(t, e, "ch", 4)
	check("after writes", []int{3, 4})
}

func TestHistoryRetentionBothBounds(t *testing.T) {
	clock := psNewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e := psEngine(t, engine.Config{Now: clock.Now})
	psCreate(t, e, "ch", engine.ChannelConfig{Retention: engine.Retention{MaxEvents: 3, MaxAge: time.Minute}})
	psPublish(t, e, "ch", 0, 1, 2, 3)
	if got := psHistory(t, e, "ch", engine.HistoryQuery{}); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("History = %v, want the newest 3: [1 2 3]", got)
	}
	clock.Advance(2 * time.Minute)
	psPublish(t, e, "ch", 4)
	if got := psHistory(t, e, "ch", engine.HistoryQuery{}); !slices.Equal(got, []int{4}) {
		t.Errorf("History = %v, want only the event younger than a minute: [4]", got)
	}
}
