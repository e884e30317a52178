package engine_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// History on a persistent channel reads its stream, with the meaning the
// in-memory history has (TestHistoryQuery): the same table runs here.
func TestDurableHistoryQuery(t *testing.T) {
	e := openDurable(t, t.TempDir())
	psCreate(t, e, "ch", engine.ChannelConfig{Persistent: true})
	testHistoryQuery(t, e, ctxFor(t, 20*time.Second), "ch")
}

func TestDurableHistoryAfterIDNotFound(t *testing.T) {
	e := openDurable(t, t.TempDir())
	psCreate(t, e, "count", engine.ChannelConfig{Persistent: true, Retention: engine.Retention{MaxEvents: 3}})
	psCreate(t, e, "empty", engine.ChannelConfig{Persistent: true})
	evs := durEvents(5)
	for _, ev := range evs {
		if err := e.Publish(ctxFor(t, 10*time.Second), "count", ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name, channel string
		id            engine.EventID
	}{
		{"unknown id", "count", engine.NewEventID()},
		{"evicted by count", "count", evs[1].ID},
		{"empty channel", "empty", evs[4].ID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkEventNotFound(t, e, tt.channel, tt.id)
		})
	}
	// What is retained answers as usual.
	got, err := e.History("count", engine.HistoryQuery{AfterID: evs[2].ID})
	if err != nil || !slices.Equal(ids(got), ids(evs[3:])) {
		t.Fatalf("History after the oldest retained: %v, %v; want the two after it", ids(got), err)
	}
	got, err = e.History("empty", engine.HistoryQuery{})
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("History of an empty channel: %v, %v; want an empty slice", got, err)
	}
}

// AfterSeq cuts a persistent channel's history after a sequence number,
// the oldest retained after it when retention removed it, together with
// AfterID the later cut; an in-memory channel refuses it.
func TestDurableHistoryAfterSeq(t *testing.T) {
	e := openDurable(t, t.TempDir())
	psCreate(t, e, "count", engine.ChannelConfig{Persistent: true, Retention: engine.Retention{MaxEvents: 4}})
	evs := durEvents(6) // sequences 1 to 6; 3 to 6 retained
	for _, ev := range evs {
		if err := e.Publish(ctxFor(t, 10*time.Second), "count", ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name string
		q    engine.HistoryQuery
		want []engine.Event
	}{
		{"after 4", engine.HistoryQuery{AfterSeq: 4}, evs[4:]},
		{"after an evicted one", engine.HistoryQuery{AfterSeq: 1}, evs[2:]},
		{"after the last", engine.HistoryQuery{AfterSeq: 6}, nil},
		{"past the end", engine.HistoryQuery{AfterSeq: 100}, nil},
		{"with a later AfterID", engine.HistoryQuery{AfterSeq: 3, AfterID: evs[4].ID}, evs[5:]},
		{"with an earlier AfterID", engine.HistoryQuery{AfterSeq: 5, AfterID: evs[2].ID}, evs[5:]},
		{"with a limit", engine.HistoryQuery{AfterSeq: 2, Limit: 2}, evs[4:]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.History("count", tt.q)
			if err != nil || got == nil || !slices.Equal(ids(got), ids(tt.want)) {
				t.Fatalf("got %v, %v; want %v", ids(got), err, ids(tt.want))
			}
		})
	}
	mem := engine.New(engine.Config{})
	defer mem.Close()
	if err := mem.CreateChannel("m", engine.ChannelConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.History("m", engine.HistoryQuery{AfterSeq: 1}); !errors.Is(err, engine.ErrUnsupported) {
		t.Fatalf("in memory: %v, want ErrUnsupported", err)
	}
}

// A limited query reads the stream backward a window at a time, widening
// it while the selection finds too few: a sparse selection far back and a
// dense one near the end both come out right.
func TestDurableHistoryWindows(t *testing.T) {
	e := openDurable(t, t.TempDir())
	psCreate(t, e, "ch", engine.ChannelConfig{Persistent: true})
	const n = 3000
	batch := engine.NewEventBatch(n)
	for i := range n {
		ev := psEvent(i)
		ev.ID = engine.NewEventID()
		if i%1000 == 7 {
			ev.Type = "rare" // 7, 1007, 2007
		}
		batch.Append(ev)
	}
	if err := e.PublishBatch(ctxFor(t, 30*time.Second), "ch", batch); err != nil {
		t.Fatal(err)
	}
	rare := engine.TypeIs("rare")
	for _, tt := range []struct {
		name string
		q    engine.HistoryQuery
		want []int
	}{
		{name: "newest 5", q: engine.HistoryQuery{Limit: 5}, want: psRange(n-5, n)},
		{name: "newest 1000 but rare, over windows", q: engine.HistoryQuery{Limit: 1000, Filter: engine.Not(rare)}, want: slices.DeleteFunc(psRange(n-1001, n), func(i int) bool { return i == 2007 })},
		{name: "sparse, all of them", q: engine.HistoryQuery{Limit: 3, Filter: rare}, want: []int{7, 1007, 2007}},
		{name: "sparse, the newest two", q: engine.HistoryQuery{Limit: 2, Filter: rare}, want: []int{1007, 2007}},
		{name: "sparse, more than there are", q: engine.HistoryQuery{Limit: 10, Filter: rare}, want: []int{7, 1007, 2007}},
		{name: "sparse, unlimited", q: engine.HistoryQuery{Filter: rare}, want: []int{7, 1007, 2007}},
		{name: "everything", want: psRange(0, n)},
		{name: "limit of everything", q: engine.HistoryQuery{Limit: n}, want: psRange(0, n)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := e.History("ch", tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := psNums(t, evs); !slices.Equal(got, tt.want) {
				t.Errorf("History = %d events %v, want %d %v", len(got), abbrev(got), len(tt.want), abbrev(tt.want))
			}
		})
	}
}

func abbrev(s []int) []int {
	if len(s) <= 10 {
		return s
	}
	return append(slices.Clone(s[:5]), s[len(s)-5:]...)
}

// The history of a persistent channel survives a restart, and events
// published meanwhile by another engine are not read twice.
func TestDurableHistoryAfterRestart(t *testing.T) {
	dir := t.TempDir()
	e := openDurable(t, dir)
	psCreate(t, e, "ch", engine.ChannelConfig{Persistent: true})
	evs := durEvents(4)
	if err := e.PublishBatch(ctxFor(t, 10*time.Second), "ch", engine.EventBatch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openDurable(t, dir)
	psCreate(t, e, "ch", engine.ChannelConfig{Persistent: true})
	got, err := e.History("ch", engine.HistoryQuery{})
	if err != nil || !slices.Equal(ids(got), ids(evs)) {
		t.Fatalf("History after a restart: %v, %v; want %v", ids(got), err, ids(evs))
	}
	got, err = e.History("ch", engine.HistoryQuery{AfterID: evs[1].ID, Limit: 1})
	if err != nil || !slices.Equal(ids(got), ids(evs[3:])) {
		t.Fatalf("History after an id, limit 1, after a restart: %v, %v", ids(got), err)
	}
	// Reading history leaves no consumer behind on the channel's stream.
	if in, err := e.Channel("ch"); err != nil || in.Stats.Subscribers != 0 {
		t.Fatalf("channel after history reads: %+v, %v", in.Stats, err)
	}
}
