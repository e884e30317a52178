package jetstream_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

// readSeqs reads with o and returns the sequences read.
func readSeqs(t *testing.T, st *jetstream.Stream, o jetstream.ReadOptions) ([]uint64, error) {
	t.Helper()
	var seqs []uint64
	err := st.Read(ctxT(t, 20*time.Second), o, func(m jetstream.RawMsg) (bool, error) {
		if want := fmt.Sprintf("m-%d", m.Seq-1); m.ID != want {
			t.Errorf("seq %d has ID %q, want %q", m.Seq, m.ID, want)
		}
		seqs = append(seqs, m.Seq)
		return true, nil
	})
	return seqs, err
}

// readCase is a read of a stream and the sequences it should read.
type readCase struct {
	name string
	o    jetstream.ReadOptions
	want []uint64
}

// checkReads runs each read on st in a subtest of its own.
func checkReads(t *testing.T, st *jetstream.Stream, tests []readCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readSeqs(t, st, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("read %v, want %v", got, tt.want)
			}
		})
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestRead(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st := ensure(t, b, channel(t), jetstream.StreamOptions{})
		acks := publishN(t, st, "m", 10, 20) // IDs m-0..m-9 at sequences 1..10
		if acks[9].Seq != 10 {
			t.Fatalf("last sequence %d, want 10", acks[9].Seq)
		}
		fifth, err := st.GetMsg(ctxT(t, 5*time.Second), 5)
		if err != nil {
			t.Fatal(err)
		}
		checkReads(t, st, []readCase{
			{name: "from the start", want: seqRange(1, 10)},
			{name: "from a sequence", o: jetstream.ReadOptions{Start: jetstream.StartAtSeq(4)}, want: seqRange(4, 10)},
			{name: "from sequence 0", o: jetstream.ReadOptions{Start: jetstream.StartAtSeq(0)}, want: seqRange(1, 10)},
			{name: "from the last", o: jetstream.ReadOptions{Start: jetstream.StartAtSeq(10)}, want: []uint64{10}},
			{name: "from beyond the last", o: jetstream.ReadOptions{Start: jetstream.StartAtSeq(11)}, want: nil},
			{name: "a window", o: jetstream.ReadOptions{Start: jetstream.StartAtSeq(3), Until: 6}, want: seqRange(3, 6)},
			{name: "a window of one", o: jetstream.ReadOptions{Start: jetstream.StartAtSeq(7), Until: 7}, want: []uint64{7}},
			{name: "until before start", o: jetstream.ReadOptions{Start: jetstream.StartAtSeq(7), Until: 6}, want: nil},
			{name: "from a time", o: jetstream.ReadOptions{Start: jetstream.StartAtTime(fifth.Time)}, want: seqRange(5, 10)},
			{name: "from a time before all", o: jetstream.ReadOptions{Start: jetstream.StartAtTime(fifth.Time.Add(-time.Hour))}, want: seqRange(1, 10)},
			{name: "after an event", o: jetstream.ReadOptions{Start: jetstream.StartAfterEvent("m-2")}, want: seqRange(4, 10)},
			{name: "after the last event", o: jetstream.ReadOptions{Start: jetstream.StartAfterEvent("m-9")}, want: nil},
			{name: "after an event until", o: jetstream.ReadOptions{Start: jetstream.StartAfterEvent("m-0"), Until: 2}, want: []uint64{2}},
			{name: "new", o: jetstream.ReadOptions{Start: jetstream.StartNew()}, want: nil},
		})

		t.Run("unknown event", func(t *testing.T) {
			_, err := readSeqs(t, st, jetstream.ReadOptions{Start: jetstream.StartAfterEvent("nope")})
			if !errors.Is(err, jetstream.ErrEventNotFound) {
				t.Fatalf("read after an unknown event: %v, want ErrEventNotFound", err)
			}
		})
		t.Run("fn stops", func(t *testing.T) {
			var seqs []uint64
			err := st.Read(ctxT(t, 20*time.Second), jetstream.ReadOptions{}, func(m jetstream.RawMsg) (bool, error) {
				seqs = append(seqs, m.Seq)
				return len(seqs) < 3, nil
			})
			if err != nil || !slices.Equal(seqs, []uint64{1, 2, 3}) {
				t.Fatalf("read %v, %v; want [1 2 3], nil", seqs, err)
			}
		})
		t.Run("fn fails", func(t *testing.T) {
			boom := errors.New("boom")
			err := st.Read(ctxT(t, 20*time.Second), jetstream.ReadOptions{}, func(m jetstream.RawMsg) (bool, error) {
				return true, boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("read: %v, want fn's error", err)
			}
		})
		t.Run("a snapshot", func(t *testing.T) {
			// Messages published during the read are not read.
			n := 0
			err := st.Read(ctxT(t, 20*time.Second), jetstream.ReadOptions{}, func(m jetstream.RawMsg) (bool, error) {
				if n == 0 {
					if _, err := st.Publish(ctxT(t, 5*time.Second), jetstream.Msg{ID: "late"}); err != nil {
						return false, err
					}
				}
				n++
				return true, nil
			})
			if err != nil || n != 10 {
				t.Fatalf("read %d messages, %v; want the 10 there when it began", n, err)
			}
		})
		t.Run("no consumer left behind", func(t *testing.T) {
			// Deletes are sent when a read ends; the server handles them soon.
			deadline := time.Now().Add(10 * time.Second)
			for {
				in, err := st.Info(ctxT(t, 5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				if in.Consumers == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d consumers left after the reads", in.Consumers)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	})
}

func TestReadEmptyAndTrimmed(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st := ensure(t, b, channel(t), jetstream.StreamOptions{MaxMsgs: 5})
		got, err := readSeqs(t, st, jetstream.ReadOptions{})
		if err != nil || got != nil {
			t.Fatalf("read of an empty stream: %v, %v", got, err)
		}
		if _, err := readSeqs(t, st, jetstream.ReadOptions{Start: jetstream.StartAfterEvent("m-0")}); !errors.Is(err, jetstream.ErrEventNotFound) {
			t.Fatalf("read after an event of an empty stream: %v, want ErrEventNotFound", err)
		}
		publishN(t, st, "m", 12, 10) // keeps m-7..m-11 at sequences 8..12
		checkReads(t, st, []readCase{
			{name: "all", want: seqRange(8, 12)},
			{name: "from a removed sequence", o: jetstream.ReadOptions{Start: jetstream.StartAtSeq(2)}, want: seqRange(8, 12)},
			{name: "a removed window", o: jetstream.ReadOptions{Start: jetstream.StartAtSeq(2), Until: 6}, want: nil},
			{name: "a window across the cut", o: jetstream.ReadOptions{Start: jetstream.StartAtSeq(6), Until: 9}, want: []uint64{8, 9}},
		})
		if _, err := readSeqs(t, st, jetstream.ReadOptions{Start: jetstream.StartAfterEvent("m-1")}); !errors.Is(err, jetstream.ErrEventNotFound) {
			t.Fatalf("read after a removed event: %v, want ErrEventNotFound", err)
		}
	})
}
