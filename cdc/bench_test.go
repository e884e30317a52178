package cdc_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/engine"
)

// The benchmarks stream the orders workload's rows (BENCHMARKS.md) out of
// PostgreSQL: a table with a row per order event, inserted in transactions
// of 1, 100 or 1000 rows before the clock starts. Each iteration makes two
// slots before the inserts and then reads one through the source into an
// in-memory channel (decoding, filtering nothing, converting each change
// to an event, publishing, acknowledging), and the other with a bare
// pglogrepl loop that only parses pgoutput's messages: how fast the server
// can send, the ceiling. Both read the same WAL, one after the other (each
// going first in every other iteration), in the same iteration.

const ordersTable = `CREATE TABLE orders (id text PRIMARY KEY, type text NOT NULL, source text NOT NULL, amount numeric(10,2) NOT NULL)`

// insertOrders inserts rows from..to-1 in transactions of perTx rows.
func insertOrders(b testing.TB, db string, from, to, perTx int) {
	b.Helper()
	// DO takes no parameters: inline them.
	q := fmt.Sprintf(`DO $$
		DECLARE i int := %d; types text[] := ARRAY['order.created','order.paid','order.refunded','order.shipped'];
		BEGIN
			WHILE i < %d LOOP
				INSERT INTO orders SELECT format('evt-%%s-7f3a9c2e-4b1d-4e8a-9d0c', lpad(g::text, 10, '0')), types[g %% 4 + 1],
					format('urn:shop:checkout:eu-west-1:instance-07:partition-%%s', lpad((g %% 4)::text, 2, '0')), (g %% 4 + 1) * 79.19
				FROM generate_series(i, least(i + %d, %d) - 1) g;
				COMMIT;
				i := i + %d;
			END LOOP;
		END $$`, from, to, perTx, to, perTx)
	if err := pg.Exec(context.Background(), db, q); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkPostgresIntake(b *testing.B) {
	const rows = 100_000
	for _, perTx := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("rows_per_tx=%d", perTx), func(b *testing.B) {
			dsn, db := newDB(b, ordersTable, `CREATE PUBLICATION bench FOR TABLE orders`)
			eng := engine.New(engine.Config{})
			defer eng.Close()
			if err := eng.CreateChannel("orders", engine.ChannelConfig{Retention: engine.Retention{MaxEvents: 1024}}); err != nil {
				b.Fatal(err)
			}
			var aegis, raw time.Duration
			next := 0
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				slotA, slotB := fmt.Sprintf("bench_a_%d", i), fmt.Sprintf("bench_b_%d", i)
				for _, s := range []string{slotA, slotB} {
					if err := pg.Exec(context.Background(), db, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, s); err != nil {
						b.Fatal(err)
					}
				}
				insertOrders(b, db, next, next+rows, perTx)
				next += rows
				// The two take turns going first: the second reads WAL
				// that the first has just brought into the server's cache.
				if i%2 == 0 {
					b.StartTimer()
					aegis += readSource(b, dsn, slotA, eng, rows)
					b.StopTimer()
					raw += readRaw(b, dsn, slotB, rows)
				} else {
					raw += readRaw(b, dsn, slotB, rows)
					b.StartTimer()
					aegis += readSource(b, dsn, slotA, eng, rows)
					b.StopTimer()
				}
				for _, s := range []string{slotA, slotB} {
					pg.Exec(context.Background(), db, `SELECT pg_drop_replication_slot($1)`, s)
				}
			}
			n := float64(rows * b.N)
			b.ReportMetric(n/aegis.Seconds(), "changes/s")
			b.ReportMetric(n/raw.Seconds(), "raw-changes/s")
			b.ReportMetric(raw.Seconds()/aegis.Seconds(), "aegis/raw")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// readSource reads n changes of the slot through the source into the
// channel, and returns how long it took from the source's start.
func readSource(b *testing.B, dsn, slot string, eng *engine.Engine, n int) time.Duration {
	b.Helper()
	start := time.Now()
	s, err := cdc.NewPostgres(context.Background(), cdc.PostgresConfig{
		Name: slot, DSN: dsn, Slot: slot, Publication: "bench", Tables: []cdc.TableConfig{{Table: "orders"}},
		StateFile: filepath.Join(b.TempDir(), "state.json"),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var batch []engine.Event
	done := uint64(0)
	for done < uint64(n) {
		batch, err = s.Read(ctx, batch[:0], 256)
		if err != nil {
			b.Fatal(err)
		}
		if err := eng.PublishBatch(ctx, "orders", engine.EventBatch{Events: batch}); err != nil {
			b.Fatal(err)
		}
		done += uint64(len(batch))
		if err := s.Ack(ctx, done); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// readRaw reads n changes of the slot with pglogrepl alone: parse each
// message, keep nothing.
func readRaw(b *testing.B, dsn, slot string, n int) time.Duration {
	b.Helper()
	start := time.Now()
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	pc.RuntimeParams["replication"] = "database"
	ctx := context.Background()
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	err = pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication, PluginArgs: []string{"proto_version '1'", "publication_names 'bench'"}})
	if err != nil {
		b.Fatal(err)
	}
	var last pglogrepl.LSN
	for seen := 0; seen < n; {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		x, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			b.Fatal(err)
		}
		m, err := pglogrepl.Parse(x.WALData)
		if err != nil {
			b.Fatal(err)
		}
		switch m := m.(type) {
		case *pglogrepl.InsertMessage:
			seen++
		case *pglogrepl.CommitMessage:
			last = m.TransactionEndLSN
		}
	}
	pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: last})
	return time.Since(start)
}

// BenchmarkPostgresLag writes orders at a steady rate while the source
// streams them into a channel, and reports how long after its commit each
// change reached the channel.
func BenchmarkPostgresLag(b *testing.B) {
	for _, rate := range []int{5_000, 20_000} {
		b.Run(fmt.Sprintf("rows_per_s=%d", rate), func(b *testing.B) {
			dsn, db := newDB(b, ordersTable, `CREATE PUBLICATION bench FOR TABLE orders`)
			eng := engine.New(engine.Config{})
			defer eng.Close()
			if err := eng.CreateChannel("orders", engine.ChannelConfig{Retention: engine.Retention{MaxEvents: 1024}}); err != nil {
				b.Fatal(err)
			}
			s, err := cdc.NewPostgres(context.Background(), cdc.PostgresConfig{
				Name: "lag_" + db, DSN: dsn, Publication: "bench", Tables: []cdc.TableConfig{{Table: "orders"}},
				StateFile: filepath.Join(b.TempDir(), "state.json"),
			})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const perTx = 10
			const seconds = 3
			total := rate * seconds * b.N
			var wg sync.WaitGroup
			wg.Add(1)
			conn, err := pgconn.Connect(context.Background(), dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(context.Background())
			// The test server commits asynchronously (its WAL is flushed
			// every 200 ms, and only flushed WAL is decoded): this writer
			// commits as a production server would.
			if _, err := conn.Exec(context.Background(), "SET synchronous_commit = on").ReadAll(); err != nil {
				b.Fatal(err)
			}
			go func() {
				defer wg.Done()
				// Transactions of perTx rows, paced to the rate.
				start := time.Now()
				for i := 0; i < total; i += perTx {
					if d := time.Until(start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))); d > 0 {
						time.Sleep(d)
					}
					if _, err := conn.Exec(context.Background(), fmt.Sprintf(
						`INSERT INTO orders SELECT 'evt-' || g, 'order.paid', 'urn:shop:checkout:eu-west-1:instance-07:partition-01', 79.19 FROM generate_series(%d, %d) g`,
						i, i+perTx-1)).ReadAll(); err != nil {
						b.Error(err)
						return
					}
				}
			}()
			lags := make([]time.Duration, 0, total)
			ctx := context.Background()
			var batch []engine.Event
			for len(lags) < total {
				batch, err = s.Read(ctx, batch[:0], 256)
				if err != nil && !errors.Is(err, context.Canceled) {
					b.Fatal(err)
				}
				now := time.Now()
				if err := eng.PublishBatch(ctx, "orders", engine.EventBatch{Events: batch}); err != nil {
					b.Fatal(err)
				}
				for _, e := range batch {
					lags = append(lags, now.Sub(e.Timestamp()))
				}
				if err := s.Ack(ctx, uint64(len(lags))); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			slices.Sort(lags)
			b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
