package engine

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

// White-box tests of the subscription ring buffer and of the Block
// policy's chunking arithmetic.

func qEvents(ns ...int) []Event {
	out := make([]Event, len(ns))
	for i, n := range ns {
		out[i] = Event{Type: "q", Data: IntData(int64(n))}
	}
	return out
}

func qNums(evs []Event) []int {
	out := make([]int, len(evs))
	for i, ev := range evs {
		n, _ := ev.Data.AsInt()
		out[i] = int(n)
	}
	return out
}

func TestQueueRing(t *testing.T) {
	// A step pushes (push != nil) or pops up to pop events.
	type step struct {
		push            []int
		idx             []int32
		overwrite       bool
		wantStored      int
		wantOverwritten int
		pop             int
		wantPopped      []int
	}
	tests := []struct {
		name     string
		capacity int
		steps    []step
	}{
		{name: "fill and empty", capacity: 3, steps: []step{
			{push: []int{1, 2, 3}, wantStored: 3},
			{pop: 5, wantPopped: []int{1, 2, 3}},
			{pop: 1, wantPopped: []int{}},
		}},
		{name: "wraps around", capacity: 3, steps: []step{
			{push: []int{1, 2}, wantStored: 2},
			{pop: 1, wantPopped: []int{1}},
			{push: []int{3, 4}, wantStored: 2},
			{pop: 2, wantPopped: []int{2, 3}},
			{push: []int{5, 6}, wantStored: 2},
			{pop: 10, wantPopped: []int{4, 5, 6}},
		}},
		{name: "stops when full", capacity: 2, steps: []step{
			{push: []int{1, 2, 3, 4}, wantStored: 2},
			{pop: 10, wantPopped: []int{1, 2}},
		}},
		{name: "overwrites the oldest", capacity: 3, steps: []step{
			{push: []int{1, 2}, wantStored: 2},
			{push: []int{3, 4, 5}, overwrite: true, wantStored: 3, wantOverwritten: 2},
			{pop: 10, wantPopped: []int{3, 4, 5}},
		}},
		{name: "overwrites within one push", capacity: 2, steps: []step{
			{push: []int{1, 2, 3, 4, 5}, overwrite: true, wantStored: 5, wantOverwritten: 3},
			{pop: 10, wantPopped: []int{4, 5}},
		}},
		{name: "indexed push", capacity: 4, steps: []step{
			{push: []int{10, 11, 12, 13, 14}, idx: []int32{1, 3, 4}, wantStored: 3},
			{pop: 10, wantPopped: []int{11, 13, 14}},
		}},
		{name: "indexed push stops when full", capacity: 2, steps: []step{
			{push: []int{10, 11, 12, 13}, idx: []int32{0, 2, 3}, wantStored: 2},
			{pop: 10, wantPopped: []int{10, 12}},
		}},
		{name: "indexed push overwrites", capacity: 2, steps: []step{
			{push: []int{10, 11, 12, 13}, idx: []int32{0, 2, 3}, overwrite: true, wantStored: 3, wantOverwritten: 1},
			{pop: 10, wantPopped: []int{12, 13}},
		}},
		{name: "empty index list stores nothing", capacity: 2, steps: []step{
			{push: []int{10, 11}, idx: []int32{}, wantStored: 0},
			{pop: 10, wantPopped: []int{}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(tt.capacity)
			held := 0
			for i, st := range tt.steps {
				if st.push != nil {
					stored, overwritten := q.push(qEvents(st.push...), st.idx, st.overwrite)
					if stored != st.wantStored || overwritten != st.wantOverwritten {
						t.Fatalf("step %d: push = %d stored, %d overwritten; want %d, %d", i, stored, overwritten, st.wantStored, st.wantOverwritten)
					}
					held = min(tt.capacity, held+stored)
				} else {
					dst := make([]Event, st.pop)
					n, err := q.pop(dst)
					if err != nil {
						t.Fatalf("step %d: pop: %v", i, err)
					}
					if got := qNums(dst[:n]); !slices.Equal(got, st.wantPopped) {
						t.Fatalf("step %d: pop = %v, want %v", i, got, st.wantPopped)
					}
					held -= n
				}
				if q.len() != held || q.free() != tt.capacity-held {
					t.Fatalf("step %d: len %d, free %d; want %d, %d", i, q.len(), q.free(), held, tt.capacity-held)
				}
			}
			// Popped slots are cleared, so the ring does not keep payloads alive.
			for i := range q.buf {
				held := (i-q.head+len(q.buf))%len(q.buf) < q.n
				if !held && q.buf[i].Type != "" {
					t.Errorf("slot %d is free but still holds %v", i, q.buf[i].Data)
				}
			}
		})
	}
}

func TestQueueClose(t *testing.T) {
	errEnd := errors.New("end")
	tests := []struct {
		name       string
		drain      bool
		wantPopped []int
	}{
		{name: "drain hands out what it holds", drain: true, wantPopped: []int{1, 2}},
		{name: "discard drops what it holds", drain: false, wantPopped: []int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(3)
			q.push(qEvents(1, 2), nil, false)
			discarded := q.close(errEnd, tt.drain)
			if want := 2; !tt.drain && discarded != want {
				t.Errorf("close discarded %d, want %d", discarded, want)
			}
			select {
			case <-q.done:
			default:
				t.Fatal("done is not closed")
			}
			if got := q.close(errors.New("second"), !tt.drain); got != 0 || q.closed() != errEnd {
				t.Errorf("second close: discarded %d, reason %v; want 0 and the first reason", got, q.closed())
			}
			if stored, _ := q.push(qEvents(3), nil, true); stored != 0 {
				t.Errorf("push after close stored %d", stored)
			}
			if q.free() != math.MaxInt {
				t.Errorf("free() = %d after close, want unlimited (a closed queue never blocks a publisher)", q.free())
			}
			var got []int
			dst := make([]Event, 1)
			for {
				n, err := q.pop(dst)
				if err != nil {
					if err != errEnd {
						t.Errorf("pop error %v, want %v", err, errEnd)
					}
					break
				}
				if n == 0 {
					t.Fatal("pop on a closed queue returned nothing and no error")
				}
				got = append(got, qNums(dst[:n])...)
			}
			if !slices.Equal(got, tt.wantPopped) {
				t.Errorf("popped %v after close, want %v", got, tt.wantPopped)
			}
		})
	}
}

func TestQueueSignals(t *testing.T) {
	q := newQueue(2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	waited := make(chan error, 1)
	go func() { waited <- q.wait(ctx) }()
	select {
	case err := <-waited:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("wait on an empty queue with a cancelled context: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait on an empty queue ignored its cancelled context")
	}
	q.push(qEvents(1, 2), nil, false)
	select {
	case <-q.notEmpty:
	default:
		t.Error("push did not signal notEmpty")
	}
	q.pop(make([]Event, 1))
	select {
	case <-q.notFull:
	default:
		t.Error("pop did not signal notFull")
	}
	// One event is left, so another waiting receiver is woken.
	select {
	case <-q.notEmpty:
	default:
		t.Error("a pop that left events did not pass notEmpty on")
	}
	q.pop(make([]Event, 1))
	select {
	case <-q.notFull:
	default:
		t.Error("the second pop did not signal notFull")
	}
	select {
	case <-q.notEmpty:
		t.Error("a pop that emptied the queue signalled notEmpty")
	default:
	}
	if stored, _ := q.push(nil, []int32{}, false); stored != 0 {
		t.Fatalf("empty push stored %d", stored)
	}
	select {
	case <-q.notEmpty:
		t.Error("a push that stored nothing signalled notEmpty")
	default:
	}
}

func TestFit(t *testing.T) {
	// Each target: a queue with free slots; all, or the indices it selects.
	type tgt struct {
		free int
		all  bool
		idx  []int32
	}
	tests := []struct {
		name        string
		targets     []tgt
		pos, limit  int
		wantEnd     int
		wantBlocker int // index of the blocking target, -1 for none
	}{
		{name: "no targets", pos: 0, limit: 5, wantEnd: 5, wantBlocker: -1},
		{name: "all fit", targets: []tgt{{free: 10, all: true}}, pos: 0, limit: 5, wantEnd: 5, wantBlocker: -1},
		{name: "smallest room wins", targets: []tgt{{free: 4, all: true}, {free: 2, all: true}, {free: 3, all: true}}, pos: 1, limit: 9, wantEnd: 3, wantBlocker: -1},
		{name: "full blocks", targets: []tgt{{free: 4, all: true}, {free: 0, all: true}}, pos: 2, limit: 9, wantEnd: 2, wantBlocker: 1},
		{name: "filtered, nothing selected", targets: []tgt{{free: 0, idx: []int32{}}}, pos: 0, limit: 9, wantEnd: 9, wantBlocker: -1},
		{name: "filtered, selected beyond limit", targets: []tgt{{free: 0, idx: []int32{9, 12}}}, pos: 0, limit: 9, wantEnd: 9, wantBlocker: -1},
		{name: "filtered, stops at the first it has no room for", targets: []tgt{{free: 1, idx: []int32{1, 4, 6}}}, pos: 0, limit: 9, wantEnd: 4, wantBlocker: -1},
		{name: "filtered, full at the next selected", targets: []tgt{{free: 0, idx: []int32{3, 4}}}, pos: 3, limit: 9, wantEnd: 3, wantBlocker: 0},
		{name: "filtered, counts only from pos", targets: []tgt{{free: 1, idx: []int32{0, 1, 5, 7}}}, pos: 2, limit: 9, wantEnd: 7, wantBlocker: -1},
		{name: "mixed", targets: []tgt{{free: 5, all: true}, {free: 1, idx: []int32{2, 3}}}, pos: 0, limit: 9, wantEnd: 3, wantBlocker: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targets := make([]target, len(tt.targets))
			for i, tg := range tt.targets {
				size := tg.free + 1
				q := newQueue(size)
				q.push(qEvents(0), nil, false) // one held: free is tg.free
				targets[i] = target{s: &Subscription{q: q}, all: tg.all, idx: tg.idx}
			}
			end, blocker := fit(targets, tt.pos, tt.limit)
			if end != tt.wantEnd {
				t.Errorf("fit end = %d, want %d", end, tt.wantEnd)
			}
			wantBlocker := (*Subscription)(nil)
			if tt.wantBlocker >= 0 {
				wantBlocker = targets[tt.wantBlocker].s
			}
			if blocker != wantBlocker {
				t.Errorf("fit blocker = %p, want %p (target %d)", blocker, wantBlocker, tt.wantBlocker)
			}
		})
	}
}
