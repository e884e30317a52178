package jetstream_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

// publishN publishes n messages with IDs prefix-0 .. prefix-(n-1) and a body
// of size bytes, failing the test on an error.
func publishN(t *testing.T, st *jetstream.Stream, prefix string, n, size int) []jetstream.PubAck {
	t.Helper()
	msgs := make([]jetstream.Msg, n)
	for i := range msgs {
		msgs[i] = jetstream.Msg{ID: fmt.Sprintf("%s-%d", prefix, i), Data: make([]byte, size)}
	}
	acks, err := st.PublishBatch(ctxT(t, 20*time.Second), msgs)
	if err != nil {
		t.Fatal(err)
	}
	return acks
}

func TestRetention(t *testing.T) {
	tests := []struct {
		name    string
		opts    jetstream.StreamOptions
		publish int
		// wantMsgs is what the stream holds after publish messages of 100 bytes.
		wantMsgs  uint64
		wantFirst uint64
		// wantFullAt is the index of the first publish refused with ErrStreamFull; -1 none.
		wantFullAt int
	}{
		{name: "count discard old", opts: jetstream.StreamOptions{MaxMsgs: 5}, publish: 12, wantMsgs: 5, wantFirst: 8, wantFullAt: -1},
		{name: "count discard new", opts: jetstream.StreamOptions{MaxMsgs: 5, Discard: jetstream.DiscardNew}, publish: 12, wantMsgs: 5, wantFirst: 1, wantFullAt: 5},
		// A 100-byte body with its headers and subject takes ~220 stored bytes.
		{name: "bytes discard old", opts: jetstream.StreamOptions{MaxBytes: 1200}, publish: 12, wantMsgs: 5, wantFirst: 8, wantFullAt: -1},
		{name: "bytes discard new", opts: jetstream.StreamOptions{MaxBytes: 1200, Discard: jetstream.DiscardNew}, publish: 12, wantMsgs: 5, wantFirst: 1, wantFullAt: 5},
	}
	eachBackend(t, func(t *testing.T, b backend) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st := ensure(t, b, channel(t), tt.opts)
				fullAt := -1
				for i := range tt.publish {
					_, err := st.Publish(ctxT(t, 5*time.Second), jetstream.Msg{ID: fmt.Sprint(i), Data: make([]byte, 100)})
					if errors.Is(err, jetstream.ErrStreamFull) {
						if fullAt < 0 {
							fullAt = i
						}
						continue
					}
					if err != nil {
						t.Fatalf("publish %d: %v", i, err)
					}
				}
				in, err := st.Info(ctxT(t, 5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				if in.Msgs != tt.wantMsgs || in.FirstSeq != tt.wantFirst || fullAt != tt.wantFullAt {
					t.Errorf("msgs=%d first=%d full at %d; want msgs=%d first=%d full at %d (bytes %d)",
						in.Msgs, in.FirstSeq, fullAt, tt.wantMsgs, tt.wantFirst, tt.wantFullAt, in.Bytes)
				}
				if in.Channel != channel(t) {
					t.Errorf("info channel %q, want %q", in.Channel, channel(t))
				}
			})
		}
		t.Run("age", func(t *testing.T) {
			st := ensure(t, b, channel(t), jetstream.StreamOptions{MaxAge: time.Second})
			publishN(t, st, "old", 3, 10)
			in, err := st.Info(ctxT(t, 5*time.Second))
			if err != nil || in.Msgs != 3 || in.Options.DuplicateWindow != time.Second {
				t.Fatalf("before expiry: %+v, %v", in, err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for in.Msgs > 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				if in, err = st.Info(ctxT(t, 5*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			if in.Msgs != 0 || in.LastSeq != 3 {
				t.Errorf("after max age: msgs=%d last=%d, want 0 and 3", in.Msgs, in.LastSeq)
			}
		})
	})
}

func TestStreamLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := ctxT(t, 10*time.Second)
		name := channel(t)
		if _, err := b.conn.Stream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatalf("lookup before create: %v", err)
		}
		st := ensure(t, b, name, jetstream.StreamOptions{MaxMsgs: 10})
		publishN(t, st, "x", 3, 1)
		// Update: a lower limit applies to what is stored.
		if _, err := b.conn.EnsureStream(ctx, name, jetstream.StreamOptions{MaxMsgs: 2, Replicas: b.replicas}); err != nil {
			t.Fatal(err)
		}
		st2, err := b.conn.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		in, err := st2.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if in.Msgs != 2 || in.FirstSeq != 2 || in.LastSeq != 3 || in.Options.MaxMsgs != 2 || in.Options.Replicas != b.replicas {
			t.Errorf("after update: %+v", in)
		}
		if b.replicas > 1 && (in.Leader == "" || in.Replicas != b.replicas-1) {
			t.Errorf("cluster info: leader %q, %d replicas", in.Leader, in.Replicas)
		}
		if err := b.conn.CheckChannels(ctx, []string{name}); err != nil {
			t.Errorf("check existing: %v", err)
		}
		if err := b.conn.DeleteStream(ctx, name); err != nil {
			t.Fatal(err)
		}
		err = b.conn.CheckChannels(ctx, []string{name, "never-made"})
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("check after delete: %v", err)
		}
		if err := b.conn.DeleteStream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("second delete: %v", err)
		}
	})
}

func TestStreamOptionsRefused(t *testing.T) {
	tests := []struct {
		name string
		opts jetstream.StreamOptions
	}{
		{"negative", jetstream.StreamOptions{MaxMsgs: -1}},
		{"too many replicas", jetstream.StreamOptions{Replicas: 6}},
		{"window beyond age", jetstream.StreamOptions{MaxAge: time.Second, DuplicateWindow: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := embedded.Conn().EnsureStream(ctxT(t, time.Second), "refused", tt.opts); err == nil {
				t.Error("accepted")
			}
		})
	}
}
