package cdc_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/engine"
)

// crashSink writes to the channel, and after some batches fails right
// after a write: the pipeline stops with the batch written but not
// acknowledged, as a crash between the two would leave it.
type crashSink struct {
	engine.Sink
	after atomic.Int64
}

var errCrash = errors.New("crash after the write")

func (c *crashSink) Write(ctx context.Context, events []engine.Event) error {
	if err := c.Sink.Write(ctx, events); err != nil {
		return err
	}
	if c.after.Add(-1) == 0 {
		return errCrash
	}
	return nil
}

// TestPostgresPipelineExactlyOnce runs the source in pipelines into a
// persistent channel: one that "crashes" after writing a batch it did not
// acknowledge, then one that goes on. The channel holds every row once.
func TestPostgresPipelineExactlyOnce(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY, v text)`)
	ctx := context.Background()
	eng, err := engine.Open(ctx, engine.Config{Durable: &engine.DurableConfig{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateChannel("changes", engine.ChannelConfig{Persistent: true}); err != nil {
		t.Fatal(err)
	}
	cfg := cdc.PostgresConfig{Name: "exactly", StateFile: filepath.Join(t.TempDir(), "state.json"),
		StatusInterval: 20 * time.Millisecond, Config: cdc.Config{BatchSize: 50}}
	const rows = 1000
	open(t, dsn, cfg).Close() // makes the slot
	exec(t, db, `INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 400) g`)

	run := func(sink engine.Sink, until func() bool) error {
		t.Helper()
		s := open(t, dsn, cfg)
		defer s.Close()
		p, err := engine.NewPipeline(engine.PipelineConfig{Name: "cdc", Source: s, Sinks: []engine.Sink{sink}, MaxBatch: 50, MaxWait: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- p.Run(rctx) }()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case err := <-done:
				return err
			case <-deadline:
				st, _ := eng.ChannelStats("changes")
				t.Fatalf("the pipeline did not finish in 30s: %+v", st)
			case <-time.After(20 * time.Millisecond):
				if until != nil && until() {
					cancel()
					return <-done
				}
			}
		}
	}
	crash := &crashSink{Sink: eng.ChannelSink("changes")}
	crash.after.Store(3)
	if err := run(crash, nil); !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v", err)
	}
	exec(t, db, `INSERT INTO items SELECT g, 'row ' || g FROM generate_series(401, 1000) g`)
	count := func() bool {
		st, err := eng.ChannelStats("changes")
		return err == nil && st.Retained >= rows
	}
	run(eng.ChannelSink("changes"), count)

	events, err := eng.History("changes", engine.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]int)
	for _, e := range events {
		c, err := cdc.FromEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := c.Key.Get("id")
		seen[string(id)]++
	}
	if len(events) != rows || len(seen) != rows {
		t.Fatalf("the channel holds %d events of %d rows, want %d of %d", len(events), len(seen), rows, rows)
	}
}
