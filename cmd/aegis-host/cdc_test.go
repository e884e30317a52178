package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/internal/pgtest"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// pg is the PostgreSQL server the package's tests share; each test has a
// database of its own (see cdcDB).
var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

var dbSeq atomic.Int64

// cdcDB creates a database for the test and runs setup in it. Its name,
// unique on the server for the whole test process (go test -count=n
// included), also names the test's source, whose slot is server-wide.
func cdcDB(t *testing.T, setup string) (name, dsn string) {
	t.Helper()
	name = fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	dsn, err := pg.CreateDatabase(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	if setup != "" {
		if err := pg.Exec(t.Context(), name, setup); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// The slot keeps WAL on the server: drop it with the test.
		ctx := context.Background()
		pg.Exec(ctx, name, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active")
	})
	return name, dsn
}

// sql runs statements in database db.
func sql(t *testing.T, db string, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if err := pg.Exec(t.Context(), db, s); err != nil {
			t.Fatal(err)
		}
	}
}

// slotActive reports whether a connection reads the slot (false when it
// does not exist).
func slotActive(t *testing.T, db, slot string) (exists, active bool) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(t.Context(), "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true, active
}

// waitFor polls cond until it holds, failing the test after d with what
// it waited for and more().
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool, more func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v\n%s", what, d, more())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a buffer that a run writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bgRun is a run of the CLI in-process, in the background.
type bgRun struct {
	stdout, stderr syncBuffer
	code           int
	done           chan struct{}
}

// startCLI runs the CLI in-process in the background; stop ends it with
// SIGINT.
func startCLI(t *testing.T, args ...string) *bgRun {
	t.Helper()
	r := &bgRun{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.code = run(append([]string{appName}, args...), &r.stdout, &r.stderr)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			interrupt(t)
			<-r.done
		}
	})
	return r
}

func (r *bgRun) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// stop interrupts the run, waits for it and checks that it exited 0.
func (r *bgRun) stop(t *testing.T) {
	t.Helper()
	if r.ended() {
		t.Fatalf("the run ended by itself: exit code %d; stderr:\n%s", r.code, r.stderr.String())
	}
	interrupt(t)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not stop 30s after SIGINT")
	}
	if r.code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr.String())
	}
}

// change is what the tests read of a change event's data.
type change struct {
	Op    string         `json:"op"`
	Key   map[string]any `json:"key"`
	After map[string]any `json:"after"`
}

// changes reads the change events of a file written in the data format;
// a line cut by a kill is counted in bad.
func changes(t *testing.T, path string) (out []change, bad int) {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c change
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			bad++
			continue
		}
		out = append(out, c)
	}
	return out, bad
}

// opKeys are the op and id key of changes, as "c:4".
func opKeys(cs []change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s:%v", c.Op, c.Key["id"])
	}
	return out
}

// TestRunPostgresCDC reads a table's changes through the wasm filter of
// paid orders into a file: the snapshot's rows, then inserts, updates and
// deletes as they are committed; then cdc status shows the slot and the
// WAL it holds back.
func TestRunPostgresCDC(t *testing.T) {
	plugin := plugintest.Path(t, "cdc/filter")
	src, dsn := cdcDB(t, `CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL, amount numeric(10, 2));
		INSERT INTO orders VALUES (1, 'paid', 12.50), (2, 'pending', 3)`)
	dir := t.TempDir()
	m := writeFile(t, dir, "m.yaml", fmt.Sprintf(`apiVersion: aegis/v1
data_dir: data
telemetry:
  metrics: {exporter: stdout, interval: 1h}
sources:
  %s:
    type: postgres-cdc
    dsn: %q
    snapshot: true
    tables: [{table: public.orders}]
sinks:
  out: {type: file, path: out.jsonl, format: data}
pipelines:
  - name: capture
    from: %[1]s
    batch: {max_wait: 5ms}
    steps: [{name: paid, plugin: %[3]q}]
    to: [out]
`, src, dsn, plugin))
	out := filepath.Join(dir, "out.jsonl")
	r := startCLI(t, "run", "-f", m)
	has := func(n int) func() bool {
		return func() bool { cs, _ := changes(t, out); return len(cs) >= n || r.ended() }
	}
	stderr := func() string { return r.stderr.String() }
	waitFor(t, "the snapshot's paid order", 30*time.Second, has(1), stderr)
	sql(t, src,
		"UPDATE orders SET status = 'paid' WHERE id = 2",
		"INSERT INTO orders VALUES (3, 'pending', 1)",
		"DELETE FROM orders WHERE id = 1",
		"INSERT INTO orders VALUES (4, 'paid', 40)",
		"UPDATE orders SET status = 'shipped' WHERE id = 4",
		"INSERT INTO orders VALUES (5, 'paid', 50)")
	waitFor(t, "the streamed changes", 30*time.Second, has(5), stderr)
	r.stop(t)
	cs, bad := changes(t, out)
	want := []string{"r:1", "u:2", "d:1", "c:4", "c:5"}
	if got := opKeys(cs); bad != 0 || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("changes %v (%d bad lines), want %v; stderr:\n%s", got, bad, want, r.stderr.String())
	}
	if cs[1].After["status"] != "paid" || cs[3].After["amount"] != 40.0 {
		t.Errorf("after images: %v, %v", cs[1].After, cs[3].After)
	}
	// The stdout exporter's last collection, at shutdown: the 2 rows of
	// the snapshot and the 6 changes were read and acknowledged (the
	// filter runs after the source).
	metrics := r.stdout.String()
	i := strings.LastIndex(metrics, `"Name":"aegis.cdc.changes"`)
	acked := regexp.MustCompile(`"Value":"acknowledged"\}\}\],"StartTime":"[^"]*","Time":"[^"]*","Value":8\}`)
	if i < 0 || !acked.MatchString(metrics[i:]) || !strings.Contains(metrics, `"Name":"aegis.cdc.lag"`) {
		t.Errorf("aegis.cdc.changes: want 8 acknowledged, and aegis.cdc.lag:\n%.2000s", metrics[max(i, 0):])
	}

	// The WAL written since the run stopped is the slot's lag (once the
	// server has written it out: commits do not wait for that here).
	sql(t, src, "INSERT INTO orders VALUES (6, 'paid', 60)")
	var s sourceStatus
	waitFor(t, "a lag", 10*time.Second, func() bool {
		code, stdout, errOut := runCLI(t, "cdc", "status", "-f", m, "--json")
		if code != exitOK {
			t.Fatalf("cdc status: exit code %d; stderr:\n%s", code, errOut)
		}
		var st []sourceStatus
		if err := json.Unmarshal([]byte(stdout), &st); err != nil || len(st) != 1 {
			t.Fatalf("cdc status --json: %v\n%s", err, stdout)
		}
		s = st[0]
		return s.LagBytes > 0
	}, func() string { return fmt.Sprintf("%+v", s) })
	if s.Name != src || s.Slot != cdc.DefaultSlot(src) || !s.SlotExists || s.Active || s.LagBytes <= 0 ||
		!s.PublicationExists || strings.Join(s.Tables, ",") != "public.orders" || s.Snapshot != "done" ||
		s.LastConfirmed == "" || s.Updated.IsZero() || s.Error != "" {
		t.Errorf("cdc status --json: %+v", s)
	}
	code, stdout, errOut := runCLI(t, "cdc", "status", "-f", m)
	if code != exitOK {
		t.Fatalf("cdc status: exit code %d; stderr:\n%s", code, errOut)
	}
	row := regexp.MustCompile(`(?m)^` + src + `\s+` + s.Slot + `\s+yes\s+no\s+\S+\s+\S+\s+[0-9.]+ (bytes|KiB \([0-9]+ bytes\))\s+\S+\s+` + s.Slot + `\s+public\.orders\s+done\s`)
	t.Logf("cdc status:\n%s", stdout)
	if !strings.HasPrefix(stdout, "SOURCE ") || !row.MatchString(stdout) {
		t.Errorf("cdc status: want a header and a row of %s, its slot, no reader and a lag:\n%s", src, stdout)
	}
}

// TestRunPostgresCDCKilled kills (SIGKILL) the binary twice while a writer
// inserts rows and the run copies their changes into a persistent
// channel, then lets a last run catch up: the channel holds every row's
// insert exactly once.
func TestRunPostgresCDCKilled(t *testing.T) {
	bin := buildHost(t, "builds the binary and runs it for seconds")
	src, dsn := cdcDB(t, "CREATE TABLE items (id int PRIMARY KEY)")
	dir := t.TempDir()
	m := writeFile(t, dir, "m.yaml", fmt.Sprintf(`apiVersion: aegis/v1
channels:
  x: {persistent: true}
sources:
  %s: {type: postgres-cdc, dsn: %q, status_interval: 50ms, tables: [{table: items}]}
sinks:
  out: {type: file, path: out.jsonl, append: true, format: data}
pipelines:
  - name: a
    from: %[1]s
    batch: {max_events: 50, max_wait: 5ms}
    to: [x, out]
`, src, dsn))
	out := filepath.Join(dir, "out.jsonl")
	slot := cdc.DefaultSlot(src)
	count := func() int { cs, _ := changes(t, out); return len(cs) }

	r := startRun(t, bin, m)
	waitFor(t, "the slot", 30*time.Second, func() bool { ok, _ := slotActive(t, src, slot); return ok || r.cmd.ProcessState != nil },
		func() string { return r.stderr.String() })

	// 3000 rows in 300 transactions, over a few seconds.
	const total, per = 3000, 10
	writer := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := 1; i <= total; i += per {
			if err := pg.Exec(ctx, src, "INSERT INTO items SELECT generate_series($1::int, $2::int)", i, i+per-1); err != nil {
				writer <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		writer <- nil
	}()
	restart := func() *hostRun {
		t.Helper()
		// The killed run's server process lets go of the slot once it
		// sees the connection gone.
		waitFor(t, "the killed run's slot let go", 30*time.Second, func() bool { _, active := slotActive(t, src, slot); return !active },
			func() string { return "" })
		return startRun(t, bin, m)
	}
	r.waitLines(t, out, 300, 60*time.Second)
	r.kill(t)
	killed := count()
	t.Logf("%d changes written before the first kill -9", killed)
	r = restart()
	r.waitLines(t, out, killed+600, 60*time.Second)
	r.kill(t)
	r = restart()
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	ids := func() map[float64]int {
		cs, _ := changes(t, out)
		seen := map[float64]int{}
		for _, c := range cs {
			if id, ok := c.Key["id"].(float64); ok && c.Op == "c" {
				seen[id]++
			}
		}
		return seen
	}
	waitFor(t, "every row in out.jsonl", 60*time.Second, func() bool { return len(ids()) == total || r.cmd.ProcessState != nil },
		func() string { return r.stderr.String() })
	r.signal(t, syscall.SIGTERM)
	if err := r.wait(); err != nil {
		t.Fatalf("last run: %v\n%s", err, r.stderr.String())
	}
	_, bad := changes(t, out)
	if n := count(); len(ids()) != total || bad > 2 {
		t.Fatalf("out.jsonl: %d rows of %d, %d cut lines", len(ids()), total, bad)
	} else {
		t.Logf("out.jsonl: %d changes for %d rows (%d again after kill -9), %d cut lines", n, total, n-total, bad)
	}

	// Exactly once in the persistent channel.
	reader := writeFile(t, dir, "reader.yaml", `apiVersion: aegis/v1
channels:
  x: {persistent: true}
sinks:
  out: {type: file, path: out2.jsonl, format: data}
pipelines:
  - {name: c, from: x, delivery: {mode: exactly-once}, to: [out]}
`)
	code, _, errs := runCLI(t, "run", "-f", reader)
	if code != exitOK {
		t.Fatalf("reader: exit code %d; stderr:\n%s", code, errs)
	}
	cs, bad := changes(t, filepath.Join(dir, "out2.jsonl"))
	seen := map[float64]int{}
	for _, c := range cs {
		id, _ := c.Key["id"].(float64)
		seen[id]++
	}
	for id := 1; id <= total; id++ {
		if seen[float64(id)] != 1 {
			t.Fatalf("row %d is %d times in x, want once", id, seen[float64(id)])
		}
	}
	if len(cs) != total || bad != 0 {
		t.Fatalf("x holds %d changes (%d bad lines), want %d", len(cs), bad, total)
	}
}

// TestRunCDCExample runs examples/cdc.yaml against the test server: the
// paid order of the table as the header's SQL makes it, then one paid
// later, printed by the second pipeline.
func TestRunCDCExample(t *testing.T) {
	db, dsn := cdcDB(t, `CREATE TABLE public.orders (
		id     bigserial PRIMARY KEY,
		status text NOT NULL,
		amount numeric(10, 2) NOT NULL
	);
	INSERT INTO orders (status, amount) VALUES ('paid', 12.50), ('pending', 3.00)`)
	t.Setenv("AEGIS_PG_DSN", dsn)
	t.Setenv("AEGIS_PLUGINS", pluginDir(t, map[string]string{"cdc-filter.wasm": "cdc/filter"}))
	t.Setenv("DATA_DIR", t.TempDir())
	// The example's source is named shop, as its slot (aegis_shop): one
	// run of this test at a time on the server, and its slot dropped after.
	t.Cleanup(func() {
		pg.Exec(context.Background(), db, "SELECT pg_drop_replication_slot('aegis_shop')")
	})
	r := startCLI(t, "run", "-f", "../../examples/cdc.yaml")
	printed := func(n int) func() bool {
		return func() bool { return len(lines(r.stdout.String())) >= n || r.ended() }
	}
	stderr := func() string { return r.stderr.String() }
	waitFor(t, "the snapshot's paid order", 30*time.Second, printed(1), stderr)
	sql(t, db, "UPDATE orders SET status = 'paid' WHERE id = 2")
	waitFor(t, "the order paid later", 30*time.Second, printed(2), stderr)
	r.stop(t)
	var got []string
	for _, l := range lines(r.stdout.String()) {
		var c change
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		got = append(got, fmt.Sprintf("%s:%v:%v:%v", c.Op, c.After["id"], c.After["status"], c.After["amount"]))
	}
	if want := "r:1:paid:12.5 u:2:paid:3"; strings.Join(got, " ") != want {
		t.Errorf("printed %v, want %s", got, want)
	}
}

// TestRunPostgresCDCErrors checks what a user sees of a wrong filter, a
// table the database lacks, and a database that cannot be reached.
func TestRunPostgresCDCErrors(t *testing.T) {
	src, dsn := cdcDB(t, "CREATE TABLE orders (id int PRIMARY KEY)")
	dir := t.TempDir()
	manifest := func(file, dsn, tables string) string {
		return writeFile(t, dir, file, fmt.Sprintf(`apiVersion: aegis/v1
data_dir: data
sources:
  %s:
    type: postgres-cdc
    dsn: %q
    tables:
%s
sinks: {out: {type: drop}}
pipelines: [{name: p, from: %[1]s, to: [out]}]
`, src, dsn, tables))
	}
	unreachable := "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=5"
	for _, tc := range []struct {
		name   string
		args   []string
		m      string
		code   int
		stderr []string
	}{
		{"filter syntax error", []string{"run"}, manifest("m.yaml", dsn, "      - table: orders\n        filter: row.id >"),
			exitError, []string{"m.yaml:9:17: sources." + src + ".tables[0].filter: invalid CEL expression: 1:9 in the expression: Syntax error"}},
		{"filter of another type", []string{"validate"}, manifest("type.yaml", dsn, "      - {table: orders, filter: 'row.id + 1'}"),
			exitError, []string{"type.yaml:8:33: sources." + src + ".tables[0].filter: invalid CEL expression: is int, want a bool"}},
		{"table missing", []string{"run"}, manifest("nope.yaml", dsn, "      - table: public.orders\n      - table: public.nope"),
			exitError, []string{`postgres source "` + src + `"`, "public.nope"}},
		{"unreachable", []string{"run"}, manifest("unreachable.yaml", unreachable, "      - table: orders"),
			exitError, []string{`postgres source "` + src + `"`, "connect"}},
		{"status unreachable", []string{"cdc", "status"}, manifest("unreachable.yaml", unreachable, "      - table: orders"),
			exitError, []string{"source " + src + ": cannot get its status from the database (is it reachable?)"}},
		{"status without postgres-cdc", []string{"cdc", "status"}, writeFile(t, dir, "none.yaml", "apiVersion: aegis/v1\nsources: {gen: {type: generator, count: 1}}\nsinks: {out: {type: drop}}\npipelines: [{name: p, from: gen, to: [out]}]\n"),
			exitOK, []string{"none.yaml has no postgres-cdc source"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append(tc.args, "-f", tc.m)...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			for _, w := range tc.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
	if exists, _ := slotActive(t, src, cdc.DefaultSlot(src)); exists {
		t.Error("a failed start left a slot behind")
	}
}
