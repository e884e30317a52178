package httpapi

import (
	"strconv"
	"testing"

	"github.com/aegis-streaming/aegis/engine"
)

func TestQueue(t *testing.T) {
	evs := func(from, n int) []engine.Event {
		out := make([]engine.Event, n)
		for i := range out {
			out[i] = engine.NewEvent("t", "", engine.IntData(int64(from+i)))
		}
		return out
	}
	q := newQueue(10)
	if n := q.push(evs(0, 6)); n != 6 {
		t.Fatalf("push 6: %d", n)
	}
	got := q.pop(nil, 4)
	if len(got) != 4 || got[0].Data.String() != "0" || got[3].Data.String() != "3" {
		t.Fatalf("pop 4: %v", got)
	}
	// 2 left; 8 more fit, the rest does not.
	if n := q.push(evs(6, 20)); n != 8 {
		t.Fatalf("push past the limit: %d", n)
	}
	var all []engine.Event
	for q.len() > 0 {
		all = q.pop(all, 3)
	}
	for i, ev := range all {
		if ev.Data.String() != strconv.Itoa(4+i) {
			t.Fatalf("event %d: %v, want %d", i, ev.Data, 4+i)
		}
	}
	if len(all) != 10 {
		t.Fatalf("%d events, want 10", len(all))
	}
	select {
	case <-q.space:
	default:
		t.Fatal("no space signal after pops")
	}
	big := newQueue(100_000)
	big.push(evs(0, 50_000))
	big.pop(nil, 50_000)
	if big.buf != nil {
		t.Fatalf("a drained burst keeps %d slots", cap(big.buf))
	}
}
