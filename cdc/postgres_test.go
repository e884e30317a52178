package cdc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/pgtest"
)

// pg is the package's PostgreSQL server, shared by its tests; each test
// has a database of its own.
var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

var dbSeq atomic.Int64

// newDB creates a database for the test and runs setup in it.
func newDB(t testing.TB, setup ...string) (dsn, name string) {
	t.Helper()
	ctx := context.Background()
	name = fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	dsn, err := pg.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range setup {
		exec(t, name, q)
	}
	return dsn, name
}

func exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	if err := pg.Exec(context.Background(), db, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// open starts a source on the database with cfg's gaps filled in.
func open(t *testing.T, dsn string, cfg cdc.PostgresConfig) *cdc.Postgres {
	t.Helper()
	s, err := tryOpen(t, dsn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tryOpen(t *testing.T, dsn string, cfg cdc.PostgresConfig) (*cdc.Postgres, error) {
	t.Helper()
	cfg.Name = sourceName(cfg.Name, dsn)
	cfg.DSN = dsn
	if cfg.StateFile == "" {
		cfg.StateFile = filepath.Join(t.TempDir(), "state.json")
	}
	if cfg.Tables == nil {
		cfg.Tables = []cdc.TableConfig{{Table: "items"}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := cdc.NewPostgres(ctx, cfg)
	t.Cleanup(func() {
		if err == nil {
			s.Close()
		}
		dropSlot(t, dsn, cfg)
	})
	return s, err
}

// dropSlot drops the source's slot, if any: the server has few.
func dropSlot(t testing.TB, dsn string, cfg cdc.PostgresConfig) {
	slot := cfg.Slot
	if slot == "" {
		slot = cdc.DefaultSlot(cfg.Name)
	}
	db, _, _ := strings.Cut(dsn[strings.LastIndex(dsn, "/")+1:], "?")
	if err := pg.Exec(context.Background(), db, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot); err != nil {
		t.Logf("drop slot %s: %v", slot, err)
	}
}

// sourceName makes a source's name unique to the test's database: slots
// are the server's, not a database's, and tests run more than once
// (-count) against one server.
func sourceName(name, dsn string) string {
	if name == "" {
		name = "src"
	}
	db, _, _ := strings.Cut(dsn[strings.LastIndex(dsn, "/")+1:], "?")
	if strings.HasSuffix(name, "_"+db) {
		return name
	}
	return name + "_" + db
}

// read reads n events (acknowledging them when ack), failing the test if
// they do not come within 20 s.
func read(t *testing.T, s *cdc.Postgres, n int, ack bool) []cdc.ChangeEvent {
	t.Helper()
	evs := readEvents(t, s, n, ack)
	out := make([]cdc.ChangeEvent, len(evs))
	for i, e := range evs {
		c, err := cdc.FromEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = c
	}
	return out
}

var acked sync.Map // *cdc.Postgres -> uint64 acknowledged so far

func readEvents(t *testing.T, s *cdc.Postgres, n int, ack bool) []engine.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var evs []engine.Event
	for len(evs) < n {
		var err error
		evs, err = s.Read(ctx, evs, n-len(evs))
		if err != nil {
			t.Fatalf("read after %d of %d events: %v", len(evs), n, err)
		}
	}
	if ack {
		v, _ := acked.LoadOrStore(s, uint64(0))
		total := v.(uint64) + uint64(n)
		acked.Store(s, total)
		if err := s.Ack(ctx, total); err != nil {
			t.Fatal(err)
		}
	}
	return evs
}

// none checks that nothing more arrives for a moment.
func none(t *testing.T, s *cdc.Postgres) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	evs, err := s.Read(ctx, nil, 100)
	if len(evs) > 0 {
		c, _ := cdc.FromEvent(evs[0])
		t.Fatalf("%d unexpected events, the first %s %s", len(evs), c.Type, evs[0].Data)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
}

func rowJSON(r cdc.Row) string { return string(r.AppendJSON(nil)) }

func TestPostgresChanges(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY, name text, qty int)`)
	s := open(t, dsn, cdc.PostgresConfig{Config: cdc.Config{IncludeBefore: true}})
	exec(t, db, `INSERT INTO items VALUES (1, 'apple', 3), (2, 'pear', 5)`)
	exec(t, db, `UPDATE items SET qty = 4 WHERE id = 1`)
	exec(t, db, `UPDATE items SET id = 3 WHERE id = 2`)
	exec(t, db, `DELETE FROM items WHERE id = 1`)
	exec(t, db, `TRUNCATE items`)
	got := read(t, s, 6, true)
	want := []struct {
		typ            cdc.ChangeType
		key, before, a string
	}{
		{cdc.Insert, `{"id":1}`, `null`, `{"id":1,"name":"apple","qty":3}`},
		{cdc.Insert, `{"id":2}`, `null`, `{"id":2,"name":"pear","qty":5}`},
		// Default replica identity: an update that keeps the key has no
		// old row; one that changes it has the old key.
		{cdc.Update, `{"id":1}`, `null`, `{"id":1,"name":"apple","qty":4}`},
		{cdc.Update, `{"id":3}`, `{"id":2}`, `{"id":3,"name":"pear","qty":5}`},
		{cdc.Delete, `{"id":1}`, `{"id":1}`, `null`},
		{cdc.Truncate, `null`, `null`, `null`},
	}
	var last cdc.Position
	for i, w := range want {
		c := got[i]
		if c.Type != w.typ || rowJSON(c.Key) != w.key || rowJSON(c.Before) != w.before || rowJSON(c.After) != w.a {
			t.Errorf("change %d: %s key %s before %s after %s; want %s key %s before %s after %s", i,
				c.Type, rowJSON(c.Key), rowJSON(c.Before), rowJSON(c.After), w.typ, w.key, w.before, w.a)
		}
		if c.Source.Database != db || c.Source.Schema != "public" || c.Source.Table != "items" || c.Source.Connector != "postgresql" || c.Source.Name != "src_"+db {
			t.Errorf("change %d: source %+v", i, c.Source)
		}
		if !last.Less(c.Position) {
			t.Errorf("change %d: position %s not after %s", i, c.Position, last)
		}
		last = c.Position
		if c.TxID == 0 || c.CommitTime.IsZero() || time.Since(c.CommitTime) > time.Minute {
			t.Errorf("change %d: tx %d at %s", i, c.TxID, c.CommitTime)
		}
	}
	// The first two are one transaction: same LSN, index 0 and 1.
	if got[0].Position.LSN != got[1].Position.LSN || got[0].Position.Index != 0 || got[1].Position.Index != 1 || got[0].TxID != got[1].TxID {
		t.Errorf("one transaction's changes at %s (tx %d) and %s (tx %d)", got[0].Position, got[0].TxID, got[1].Position, got[1].TxID)
	}
	none(t, s)
}

func TestPostgresReplicaIdentityFull(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY, name text, qty int)`, `ALTER TABLE items REPLICA IDENTITY FULL`)
	for _, include := range []bool{true, false} {
		t.Run(fmt.Sprintf("include_before=%v", include), func(t *testing.T) {
			exec(t, db, `DELETE FROM items`)
			s := open(t, dsn, cdc.PostgresConfig{Name: fmt.Sprintf("full%v", include), Config: cdc.Config{IncludeBefore: include}})
			exec(t, db, `INSERT INTO items VALUES (1, 'apple', 3)`)
			exec(t, db, `UPDATE items SET qty = 4 WHERE id = 1`)
			exec(t, db, `DELETE FROM items WHERE id = 1`)
			got := read(t, s, 3, true)
			wantBefore := []string{`null`, `{"id":1,"name":"apple","qty":3}`, `{"id":1,"name":"apple","qty":4}`}
			if !include {
				// A delete keeps its before image: it is the only image.
				wantBefore[1] = `null`
			}
			for i, c := range got {
				if rowJSON(c.Before) != wantBefore[i] || rowJSON(c.Key) != `{"id":1}` {
					t.Errorf("%s: key %s before %s, want before %s", c.Type, rowJSON(c.Key), rowJSON(c.Before), wantBefore[i])
				}
			}
		})
	}
}

func TestPostgresTypes(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (
		id bigint PRIMARY KEY, small smallint, big bigint, f4 real, f8 double precision, num numeric(30,10), nan numeric,
		ok boolean, name text, code varchar(4), ch char(3), doc json, docb jsonb, at timestamptz, local timestamp, day date,
		raw bytea, uid uuid, tags text[], nums int[], dur interval, addr inet, nothing text)`)
	s := open(t, dsn, cdc.PostgresConfig{Tables: []cdc.TableConfig{{Table: "public.items"}}, Snapshot: true})
	const values = `(1, -32768, 9223372036854775807, 1.5, 0.1, 12345678901234567890.0123456789, 'NaN',
		true, 'héllo "q" \ x', 'ab', 'a', '{"a": [1, 2]}', '{"b": {"c": null}}', '2026-11-27 20:45:46.123456+02', '2026-11-27 20:45:46',
		'2026-11-27', '\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{x,"y z"}', '{1,2,3}', '1 day 2 hours', '10.0.0.1/32', NULL)`
	exec(t, db, `INSERT INTO items VALUES `+values)
	got := read(t, s, 1, true)[0]
	want := map[string]string{
		"id": `1`, "small": `-32768`, "big": `9223372036854775807`, "f4": `1.5`, "f8": `0.1`,
		"num": `12345678901234567890.0123456789`, "nan": `"NaN"`, "ok": `true`, "name": `"héllo \"q\" \\ x"`,
		"code": `"ab"`, "ch": `"a  "`, "doc": `{"a": [1, 2]}`, "docb": `{"b": {"c": null}}`,
		"at": `"2026-11-27T18:45:46.123456Z"`, "local": `"2026-11-27T20:45:46Z"`, "day": `"2026-11-27"`,
		"raw": `"AP8Q"`, "uid": `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, "tags": `["x","y z"]`, "nums": `[1,2,3]`,
		"addr": `"10.0.0.1/32"`, "nothing": `null`,
	}
	check := func(label string, c cdc.ChangeEvent) {
		t.Helper()
		for col, w := range want {
			v, ok := c.After.Get(col)
			if !ok || string(v) != w {
				t.Errorf("%s: %s = %s, want %s", label, col, v, w)
			}
		}
		if v, _ := c.After.Get("dur"); !json.Valid(v) || len(v) == 0 {
			t.Errorf("%s: dur = %s, want a JSON value", label, v)
		}
	}
	check("stream", got)
	// A snapshot reads the same row in the same form.
	s2 := open(t, dsn, cdc.PostgresConfig{Name: "snap", Tables: []cdc.TableConfig{{Table: "public.items"}}, Snapshot: true})
	snap := read(t, s2, 1, true)[0]
	if snap.Type != cdc.Read || !snap.Source.Snapshot {
		t.Errorf("snapshot: %s snapshot=%v", snap.Type, snap.Source.Snapshot)
	}
	check("snapshot", snap)
	if rowJSON(snap.After) != rowJSON(got.After) {
		t.Errorf("snapshot row %s\nstream row   %s", rowJSON(snap.After), rowJSON(got.After))
	}
}

// TestPostgresSnapshotThenStream writes rows while a snapshot is taken:
// every row is in the snapshot or in the stream, exactly once.
func TestPostgresSnapshotThenStream(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY, v int)`,
		`INSERT INTO items SELECT g, 0 FROM generate_series(1, 3000) g`)
	stop := make(chan struct{})
	var wrote atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})
	go func() {
		defer wg.Done()
		for i := 3001; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := pg.Exec(context.Background(), db, `INSERT INTO items VALUES ($1, 1)`, i); err != nil {
				t.Error(err)
				return
			}
			wrote.Store(int64(i))
		}
	}()
	for wrote.Load() < 3100 {
		time.Sleep(5 * time.Millisecond)
	}
	s := open(t, dsn, cdc.PostgresConfig{Snapshot: true})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	total := int(wrote.Load())
	got := read(t, s, total, true)
	seen := make(map[string]cdc.ChangeType, total)
	reads := 0
	for _, c := range got {
		id, _ := c.Key.Get("id")
		if prev, dup := seen[string(id)]; dup {
			t.Fatalf("row %s twice: %s then %s", id, prev, c.Type)
		}
		seen[string(id)] = c.Type
		if c.Type == cdc.Read {
			reads++
			if reads != len(seen) {
				t.Fatalf("a snapshot read after a streamed change")
			}
		}
	}
	if len(seen) != total || reads < 3000 || reads == total {
		t.Fatalf("%d rows (%d from the snapshot), want %d with some streamed", len(seen), reads, total)
	}
	none(t, s)
}

func TestPostgresResume(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	state := filepath.Join(t.TempDir(), "state.json")
	cfg := cdc.PostgresConfig{Name: "resume", StateFile: state, StatusInterval: 50 * time.Millisecond}
	s := open(t, dsn, cfg)
	for i := range 10 {
		exec(t, db, `INSERT INTO items VALUES ($1)`, i)
	}
	first := readEvents(t, s, 4, true)   // acknowledged
	second := readEvents(t, s, 3, false) // read, not acknowledged
	time.Sleep(200 * time.Millisecond)   // a status update
	s.Close()

	exec(t, db, `INSERT INTO items VALUES (10)`)
	s = open(t, dsn, cfg)
	again := readEvents(t, s, 7, true)
	for i, e := range second {
		if again[i].ID != e.ID {
			t.Errorf("unacknowledged event %d came back as %s, was %s", i, again[i].ID, e.ID)
		}
	}
	for _, e := range again {
		for _, f := range first {
			if e.ID == f.ID {
				t.Errorf("acknowledged event %s came again", e.ID)
			}
		}
	}
	var ids []string
	for _, e := range again {
		c, _ := cdc.FromEvent(e)
		ids = append(ids, rowJSON(c.Key))
	}
	if want := `{"id":4} {"id":5} {"id":6} {"id":7} {"id":8} {"id":9} {"id":10}`; strings.Join(ids, " ") != want {
		t.Errorf("resumed with %s, want %s", strings.Join(ids, " "), want)
	}
	b, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(b), `"confirmed"`) {
		t.Errorf("state file: %s %v", b, err)
	}
}

// TestPostgresSnapshotRetaken: a run that dies before its snapshot is
// acknowledged takes it again; unchanged rows keep their IDs.
func TestPostgresSnapshotRetaken(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY, v int)`,
		`INSERT INTO items SELECT g, 0 FROM generate_series(1, 5) g`)
	cfg := cdc.PostgresConfig{Name: "retaken", StateFile: filepath.Join(t.TempDir(), "state.json"), Snapshot: true}
	s := open(t, dsn, cfg)
	first := readEvents(t, s, 5, false)
	s.Close()
	exec(t, db, `UPDATE items SET v = 1 WHERE id = 5`)
	s = open(t, dsn, cfg)
	again := readEvents(t, s, 5, true)
	for i := range 4 {
		if again[i].ID != first[i].ID {
			t.Errorf("row %d: id %s, was %s", i+1, again[i].ID, first[i].ID)
		}
	}
	if again[4].ID == first[4].ID {
		t.Errorf("changed row kept its id")
	}
	if c, _ := cdc.FromEvent(again[4]); rowJSON(c.After) != `{"id":5,"v":1}` {
		t.Errorf("changed row read as %s", rowJSON(c.After))
	}
	s.Close()
	// Acknowledged: the next run streams, with no snapshot.
	exec(t, db, `INSERT INTO items VALUES (6, 0)`)
	s = open(t, dsn, cfg)
	if c := read(t, s, 1, true)[0]; c.Type != cdc.Insert || rowJSON(c.Key) != `{"id":6}` {
		t.Errorf("after the snapshot: %s %s", c.Type, rowJSON(c.Key))
	}
	none(t, s)
}

func TestPostgresFilters(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY, status text, amount numeric, note text)`,
		`CREATE SCHEMA audit`, `CREATE TABLE audit.items (id int PRIMARY KEY)`, `CREATE TABLE other (id int PRIMARY KEY)`)
	s := open(t, dsn, cdc.PostgresConfig{Config: cdc.Config{IncludeBefore: true}, Tables: []cdc.TableConfig{
		{Table: "items", Types: []cdc.ChangeType{cdc.Insert, cdc.Update}, Columns: []string{"id", "amount"},
			Filter: `row.status == "paid" && row.amount != null && row.amount > 100`},
		{Table: "audit.items", Types: []cdc.ChangeType{cdc.Delete}},
	}})
	exec(t, db, `INSERT INTO items VALUES (1, 'paid', 150.5, 'x'), (2, 'paid', 50, 'y'), (3, 'open', 500, 'z'), (4, 'paid', NULL, 'n')`)
	exec(t, db, `INSERT INTO other VALUES (1)`)
	exec(t, db, `INSERT INTO audit.items VALUES (1)`)
	exec(t, db, `UPDATE items SET amount = 200 WHERE id = 2`)
	exec(t, db, `DELETE FROM items WHERE id = 1`)
	exec(t, db, `DELETE FROM audit.items WHERE id = 1`)
	got := read(t, s, 3, true)
	want := []string{
		`insert public.items {"id":1,"amount":150.5}`,
		`update public.items {"id":2,"amount":200}`,
		`delete audit.items null`,
	}
	for i, c := range got {
		if g := fmt.Sprintf("%s %s %s", c.Type, c.Source.QualifiedTable(), rowJSON(c.After)); g != want[i] {
			t.Errorf("change %d: %s, want %s", i, g, want[i])
		}
	}
	none(t, s)
}

func TestPostgresFilterErrors(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY, amount int)`)
	t.Run("compile", func(t *testing.T) {
		_, err := tryOpen(t, dsn, cdc.PostgresConfig{Tables: []cdc.TableConfig{{Table: "items", Filter: `row.amount >`}}})
		if err == nil || !strings.Contains(err.Error(), "public.items: filter") {
			t.Fatalf("err = %v", err)
		}
		_, err = tryOpen(t, dsn, cdc.PostgresConfig{Tables: []cdc.TableConfig{{Table: "items", Filter: `"yes"`}}})
		if err == nil || !strings.Contains(err.Error(), "want a bool") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("eval", func(t *testing.T) {
		s := open(t, dsn, cdc.PostgresConfig{Name: "eval", Tables: []cdc.TableConfig{{Table: "items", Filter: `row.amount > 1`}}})
		exec(t, db, `INSERT INTO items VALUES (1, NULL)`)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := s.Read(ctx, nil, 10)
		if err == nil || !strings.Contains(err.Error(), `filter "row.amount > 1" on the insert at`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("column", func(t *testing.T) {
		s := open(t, dsn, cdc.PostgresConfig{Name: "col", Tables: []cdc.TableConfig{{Table: "items", Columns: []string{"id", "amout"}}}})
		exec(t, db, `INSERT INTO items VALUES (2, 1)`)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := s.Read(ctx, nil, 10)
		if err == nil || !strings.Contains(err.Error(), `column "amout"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPostgresSetupErrors(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	state := filepath.Join(t.TempDir(), "state.json")
	tests := []struct {
		name string
		cfg  cdc.PostgresConfig
		dsn  string
		want string
	}{
		{"missing table", cdc.PostgresConfig{Tables: []cdc.TableConfig{{Table: "nope"}}}, dsn, "table public.nope does not exist"},
		{"bad slot", cdc.PostgresConfig{Slot: "Bad-Slot"}, dsn, `slot "Bad-Slot"`},
		{"no tables", cdc.PostgresConfig{Tables: []cdc.TableConfig{}}, dsn, "no tables"},
		{"twice", cdc.PostgresConfig{Tables: []cdc.TableConfig{{Table: "items"}, {Table: "public.items"}}}, dsn, "selected twice"},
		{"no database", cdc.PostgresConfig{}, pg.DSN("nosuchdb"), "nosuchdb"},
		{"unreachable", cdc.PostgresConfig{}, "postgres://postgres@127.0.0.1:1/x?connect_timeout=2", "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tryOpen(t, tt.dsn, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("slot dropped", func(t *testing.T) {
		s := open(t, dsn, cdc.PostgresConfig{Name: "dropped", StateFile: state})
		s.Close()
		exec(t, db, `SELECT pg_drop_replication_slot($1)`, "aegis_dropped_"+db)
		_, err := tryOpen(t, dsn, cdc.PostgresConfig{Name: "dropped", StateFile: state})
		if err == nil || !strings.Contains(err.Error(), "replication slot aegis_dropped_"+db+" is gone") || !strings.Contains(err.Error(), state) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("publication dropped", func(t *testing.T) {
		s := open(t, dsn, cdc.PostgresConfig{Name: "pubdrop"})
		exec(t, db, `DROP PUBLICATION `+"aegis_pubdrop_"+db)
		exec(t, db, `INSERT INTO items VALUES (100)`)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := s.Read(ctx, nil, 10)
		if err == nil || !strings.Contains(err.Error(), "publication aegis_pubdrop_"+db+" was dropped") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestPostgresReconnect restarts the server under a running source, after
// a crash and by a clean shutdown: it reconnects and goes on, losing and
// repeating nothing.
func TestPostgresReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the shared server")
	}
	for _, crash := range []bool{true, false} {
		t.Run(map[bool]string{true: "crash", false: "shutdown"}[crash], func(t *testing.T) {
			dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY)`)
			s := open(t, dsn, cdc.PostgresConfig{StatusInterval: 50 * time.Millisecond})
			exec(t, db, `INSERT INTO items SELECT generate_series(1, 100)`)
			got := read(t, s, 60, true) // 40 of the transaction are not yet read
			if crash {
				if err := pg.Kill(); err != nil {
					t.Fatal(err)
				}
				if err := pg.Restart(context.Background()); err != nil {
					t.Fatal(err)
				}
			} else {
				// A clean shutdown waits for the source to confirm what
				// the server sent: the pipeline goes on meanwhile.
				restarted := make(chan error, 1)
				go func() { restarted <- pg.Restart(context.Background()) }()
				got = append(got, read(t, s, 40, true)...)
				if err := <-restarted; err != nil {
					t.Fatal(err)
				}
			}
			exec(t, db, `INSERT INTO items SELECT generate_series(101, 150)`)
			got = append(got, read(t, s, 150-len(got), true)...)
			for i, c := range got {
				if id, _ := c.Key.Get("id"); string(id) != fmt.Sprint(i+1) {
					t.Fatalf("change %d is of row %s", i, id)
				}
			}
			none(t, s)
			if st := s.Stats(); st.Changes != 150 || st.Acknowledged != 150 || st.Reconnects == 0 || st.ServerWAL == 0 || st.Confirmed == 0 {
				t.Errorf("stats %+v, want 150 changes acknowledged and a reconnection", st)
			}
		})
	}
}

func TestPostgresStatus(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	cfg := cdc.PostgresConfig{Name: sourceName("status", dsn), DSN: dsn, StateFile: filepath.Join(t.TempDir(), "state.json"),
		Tables: []cdc.TableConfig{{Table: "items"}}, StatusInterval: 20 * time.Millisecond}
	ctx := context.Background()
	st, err := cdc.Status(ctx, cfg)
	if err != nil || st.SlotExists || st.PublicationExists || st.Snapshot != "" {
		t.Fatalf("before: %+v %v", st, err)
	}
	s := open(t, dsn, cfg)
	exec(t, db, `INSERT INTO items SELECT generate_series(1, 10)`)
	read(t, s, 10, false)
	st, err = cdc.Status(ctx, cfg)
	if err != nil || !st.SlotExists || !st.Active || !st.PublicationExists || st.Slot != "aegis_"+cfg.Name ||
		strings.Join(st.Tables, ",") != "public.items" || st.Snapshot != "none" || st.LagBytes == 0 {
		t.Fatalf("running, unacknowledged: %+v %v", st, err)
	}
	acked.Store(s, uint64(0))
	if err := s.Ack(ctx, 10); err != nil {
		t.Fatal(err)
	}
	s.Close()
	st, err = cdc.Status(ctx, cfg)
	if err != nil || st.Active || st.Confirmed == "" || st.LastConfirmed != st.Confirmed {
		t.Fatalf("closed: %+v %v", st, err)
	}
}

// TestPostgresSnapshotEmpty: a snapshot with nothing to read is complete
// once read, and the next run streams from the slot instead of taking it
// again.
func TestPostgresSnapshotEmpty(t *testing.T) {
	dsn, db := newDB(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	state := filepath.Join(t.TempDir(), "state.json")
	cfg := cdc.PostgresConfig{Name: "empty", StateFile: state, Snapshot: true}
	s := open(t, dsn, cfg)
	exec(t, db, `INSERT INTO items VALUES (1)`)
	if c := read(t, s, 1, true)[0]; c.Type != cdc.Insert {
		t.Fatalf("%s, want the insert", c.Type)
	}
	s.Close()
	b, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(b), `"snapshot": "done"`) {
		t.Fatalf("state file: %s %v", b, err)
	}
	exec(t, db, `INSERT INTO items VALUES (2)`)
	s = open(t, dsn, cfg)
	if c := read(t, s, 1, true)[0]; c.Type != cdc.Insert || rowJSON(c.Key) != `{"id":2}` {
		t.Fatalf("second run: %s %s, want the insert of 2", c.Type, rowJSON(c.Key))
	}
	none(t, s)
}
