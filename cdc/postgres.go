package cdc

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/atomicfile"
)

// Postgres is a source of a PostgreSQL database's row changes, read from a
// logical replication slot with the pgoutput plugin. It is an
// [engine.Source] and an [engine.Acker]: the slot's confirmed position
// (where a restart resumes) advances past a transaction only once the
// pipeline has acknowledged every change of it, so a crash or a restart
// loses nothing; changes after the confirmed position are read again, with
// the IDs they had ([Postgres] names each event by its position), so that
// a persistent channel written exactly-once stores them once.
type Postgres struct {
	cfg   PostgresConfig
	rules *rules
	log   *slog.Logger
	keys  map[string][]string // schema.table: key columns
	idPre []byte              // the prefix of the events' IDs

	*chunks               // producer -> Read
	done    chan struct{} // closed by Close
	exited  chan struct{} // closed when the producer has ended
	close   sync.Once

	mu        sync.Mutex
	marks     []mark
	emitted   uint64 // events handed to Read's channel
	acked     uint64 // events acknowledged
	confirmed uint64 // the LSN that the slot may confirm
	state     pgState
	conn      *pgconn.PgConn // the replication connection, to interrupt it

	// stateMu orders the state file's writes (the producer saves the
	// confirmed position, Ack the snapshot's end): each writes what s.state
	// is when it holds it, so a write never puts back an older state.
	stateMu sync.Mutex

	snapshotDone atomic.Bool
	reconnects   atomic.Uint64
	serverWAL    atomic.Uint64 // the server's WAL end, as last heard
}

// PostgresStats counts what a [Postgres] source did.
type PostgresStats struct {
	// Changes is how many changes the source handed to the pipeline, and
	// Acknowledged how many of them the pipeline acknowledged.
	Changes, Acknowledged uint64
	// Reconnects counts the connections made again after one was lost.
	Reconnects uint64
	// Confirmed is the position the slot is told to confirm, ServerWAL
	// the server's WAL end as last heard (LSNs).
	Confirmed, ServerWAL uint64
}

// LagBytes is the WAL between the server's end and the confirmed
// position: what a restart would read again, or skip as other tables'.
func (st PostgresStats) LagBytes() uint64 {
	if st.ServerWAL > st.Confirmed {
		return st.ServerWAL - st.Confirmed
	}
	return 0
}

// Stats returns the source's counts.
func (s *Postgres) Stats() PostgresStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return PostgresStats{Changes: s.emitted, Acknowledged: s.acked, Reconnects: s.reconnects.Load(),
		Confirmed: s.confirmed, ServerWAL: s.serverWAL.Load()}
}

// A mark is a position that the slot may confirm, or the snapshot's end,
// once the first upTo events are acknowledged.
type mark struct {
	upTo     uint64
	lsn      uint64
	snapshot bool
}

// pgState is the content of the state file.
type pgState struct {
	// Slot and SystemID say which slot of which server the state is of.
	Slot     string `json:"slot"`
	SystemID string `json:"system_id"`
	// Epoch names the snapshot's reads: a snapshot taken again after a
	// crash keeps it, so that rows read again have the IDs they had.
	Epoch string `json:"epoch"`
	// Snapshot is "pending" (begun, not acknowledged whole), "done" or
	// "none" (not asked for).
	Snapshot string `json:"snapshot"`
	// Confirmed is the last position the slot was told to confirm.
	Confirmed string `json:"confirmed,omitempty"`
	// Updated is when the state was last written.
	Updated time.Time `json:"updated"`
}

func loadState(path string) (*pgState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	var st pgState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt (%v): move it away to start again from the slot", path, err)
	}
	return &st, nil
}

func saveState(path string, st pgState) error {
	st.Updated = time.Now().UTC()
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := atomicfile.Write(path, append(b, '\n')); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// NewPostgres connects to the database, checks the tables, creates or
// reuses the publication and the slot, begins the snapshot if one is due,
// and returns the source, which streams changes in the background from
// then on. An error names what is wrong: a server without wal_level
// logical, a missing table, a slot dropped since the last run, ...
func NewPostgres(ctx context.Context, cfg PostgresConfig) (_ *Postgres, err error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("cdc: postgres source %q: %w", cfg.Name, err)
	}
	cfg = cfg.withDefaults()
	defer func() {
		if err != nil {
			err = fmt.Errorf("cdc: postgres source %q: %w", cfg.Name, err)
		}
	}()
	rs, err := compileTables(cfg.Tables, "public")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Check(cfg.StateFile); err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	s := &Postgres{
		cfg: cfg, rules: rs, log: cfg.Logger.With("source", cfg.Name),
		chunks: newChunks(cfg.Config, 16), done: make(chan struct{}), exited: make(chan struct{}),
	}
	db, err := pgx.Connect(ctx, cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			db.Close(context.WithoutCancel(ctx))
		}
	}()
	if err := s.prepare(ctx, db); err != nil {
		return nil, err
	}
	repl, err := connectReplication(ctx, cfg.DSN)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !keep {
			repl.Close(context.WithoutCancel(ctx))
		}
	}()
	sys, err := pglogrepl.IdentifySystem(ctx, repl)
	if err != nil {
		return nil, fmt.Errorf("identify system: %w", err)
	}
	s.idPre = fmt.Appendf(nil, "aegis.cdc.postgres\x00%s\x00%s\x00", sys.SystemID, cfg.Slot)
	snap, err := s.openSlot(ctx, db, repl, sys.SystemID)
	if err != nil {
		return nil, err
	}
	keep = true
	s.conn = repl
	go s.run(db, repl, snap)
	return s, nil
}

// connectReplication opens a replication connection to the DSN's database.
func connectReplication(ctx context.Context, dsn string) (*pgconn.PgConn, error) {
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	pc.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("replication connection: %w", err)
	}
	return conn, nil
}

// prepare checks the server and the tables, and makes the publication.
func (s *Postgres) prepare(ctx context.Context, db *pgx.Conn) error {
	var level string
	if err := db.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		return fmt.Errorf("wal_level: %w", err)
	}
	if level != "logical" {
		return fmt.Errorf("the server's wal_level is %s: logical replication needs wal_level = logical (set it in postgresql.conf and restart the server)", level)
	}
	s.keys = make(map[string][]string, len(s.rules.byTable))
	names := s.rules.tables()
	var idents []string
	for _, t := range names {
		schema, table, _ := strings.Cut(t, ".")
		var oid uint32
		var ident string
		err := db.QueryRow(ctx, `SELECT c.oid, c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, schema, table).Scan(&oid, &ident)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("table %s does not exist", t)
		}
		if err != nil {
			return fmt.Errorf("table %s: %w", t, err)
		}
		rows, err := db.Query(ctx, `SELECT a.attname FROM pg_index i
			JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident)
			ORDER BY i.indisprimary DESC, i.indexrelid, k.ord`, oid)
		if err != nil {
			return fmt.Errorf("table %s: key: %w", t, err)
		}
		key, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("table %s: key: %w", t, err)
		}
		s.keys[t] = firstIndex(key)
		if ident == "n" || ident == "d" && len(key) == 0 {
			s.log.Warn("table has no replica identity: PostgreSQL refuses its updates and deletes while it is published; give it a primary key or REPLICA IDENTITY FULL", "table", t)
		}
		idents = append(idents, pgx.Identifier{schema, table}.Sanitize())
	}
	return s.publication(ctx, db, names, idents)
}

// firstIndex keeps the columns of the first index of a key query's rows
// (a primary key and a replica identity index can both be there): the
// query orders by index, and an index never names a column twice.
func firstIndex(cols []string) []string {
	for i, c := range cols {
		if slices.Contains(cols[:i], c) {
			return cols[:i]
		}
	}
	return cols
}

// publication creates the publication for the tables, or adds the tables
// it lacks.
func (s *Postgres) publication(ctx context.Context, db *pgx.Conn, names, idents []string) error {
	pub := s.cfg.Publication
	var all bool
	err := db.QueryRow(ctx, "SELECT puballtables FROM pg_publication WHERE pubname = $1", pub).Scan(&all)
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = db.Exec(ctx, "CREATE PUBLICATION "+pgx.Identifier{pub}.Sanitize()+" FOR TABLE "+strings.Join(idents, ", "))
		if err != nil {
			return fmt.Errorf("create publication %s: %w", pub, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("publication %s: %w", pub, err)
	}
	if all {
		return nil
	}
	rows, err := db.Query(ctx, "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1", pub)
	if err != nil {
		return fmt.Errorf("publication %s: %w", pub, err)
	}
	has, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("publication %s: %w", pub, err)
	}
	var add []string
	for i, t := range names {
		if !slices.Contains(has, t) {
			add = append(add, idents[i])
		}
	}
	if len(add) > 0 {
		s.log.Info("adding tables to the publication", "publication", pub, "tables", strings.Join(add, ", "))
		if _, err := db.Exec(ctx, "ALTER PUBLICATION "+pgx.Identifier{pub}.Sanitize()+" ADD TABLE "+strings.Join(add, ", ")); err != nil {
			return fmt.Errorf("publication %s: add tables: %w", pub, err)
		}
	}
	return nil
}

// snapshotPlan is a snapshot to read before streaming: db is in a
// transaction that has imported the slot's snapshot.
type snapshotPlan struct {
	at    uint64 // the slot's consistent point
	epoch string
	time  time.Time
}

// openSlot creates or resumes the slot, and begins the snapshot if one is
// due (nil if none).
func (s *Postgres) openSlot(ctx context.Context, db *pgx.Conn, repl *pgconn.PgConn, sysID string) (*snapshotPlan, error) {
	st, err := loadState(s.cfg.StateFile)
	if err != nil {
		return nil, err
	}
	if st != nil && (st.Slot != s.cfg.Slot || st.SystemID != sysID) {
		return nil, fmt.Errorf("state file %s is of slot %s on server %s, not of slot %s on server %s: move it away to start again",
			s.cfg.StateFile, st.Slot, st.SystemID, s.cfg.Slot, sysID)
	}
	var confirmed pglogrepl.LSN
	var plugin, database string
	var active bool
	err = db.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn, '0/0'), plugin, database, active
		FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&confirmed, &plugin, &database, &active)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("slot %s: %w", s.cfg.Slot, err)
	}
	if exists && plugin != "pgoutput" {
		return nil, fmt.Errorf("slot %s uses the %s plugin, not pgoutput: choose another slot name", s.cfg.Slot, plugin)
	}
	if exists && database != db.Config().Database {
		return nil, fmt.Errorf("slot %s is of database %s, not %s: choose another slot name", s.cfg.Slot, database, db.Config().Database)
	}
	switch {
	case exists && st != nil && st.Snapshot == "pending":
		// The last run died during its snapshot: the slot's snapshot is
		// gone with it, so take it again on a new slot (under the same
		// epoch: rows that did not change get the IDs they had).
		s.log.Warn("the snapshot of the last run did not complete: taking it again", "slot", s.cfg.Slot)
		if err := pglogrepl.DropReplicationSlot(ctx, repl, s.cfg.Slot, pglogrepl.DropReplicationSlotOptions{Wait: true}); err != nil {
			return nil, fmt.Errorf("slot %s: drop to take the snapshot again: %w", s.cfg.Slot, err)
		}
	case exists:
		if st == nil {
			s.log.Warn("resuming an existing slot that this source has no state of: no snapshot is taken", "slot", s.cfg.Slot, "confirmed", confirmed)
			st = &pgState{Slot: s.cfg.Slot, SystemID: sysID, Epoch: engine.NewEventID().String(), Snapshot: "none"}
			if err := saveState(s.cfg.StateFile, *st); err != nil {
				return nil, err
			}
		}
		s.state, s.confirmed = *st, uint64(confirmed)
		s.snapshotDone.Store(true)
		return nil, nil
	case st != nil:
		return nil, fmt.Errorf("replication slot %s is gone (dropped since the last run, or the database was replaced): the changes since position %s may be lost; to start again from now, move the state file %s away",
			s.cfg.Slot, orNone(st.Confirmed), s.cfg.StateFile)
	}
	if st == nil {
		st = &pgState{Slot: s.cfg.Slot, SystemID: sysID, Epoch: engine.NewEventID().String(), Snapshot: "none"}
	}
	if s.cfg.Snapshot {
		st.Snapshot = "pending"
	}
	// The state is saved before the slot exists, so that a slot found
	// without state is one this source did not make.
	if err := saveState(s.cfg.StateFile, *st); err != nil {
		return nil, err
	}
	action := "NOEXPORT_SNAPSHOT"
	if s.cfg.Snapshot {
		action = "EXPORT_SNAPSHOT"
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
	if err != nil {
		return nil, fmt.Errorf("create slot %s: %w", s.cfg.Slot, err)
	}
	at, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return nil, fmt.Errorf("create slot %s: consistent point: %w", s.cfg.Slot, err)
	}
	s.state, s.confirmed = *st, uint64(at)
	s.log.Info("created the replication slot", "slot", s.cfg.Slot, "at", res.ConsistentPoint)
	if !s.cfg.Snapshot {
		s.snapshotDone.Store(true)
		return nil, nil
	}
	// The exported snapshot lives until the replication connection's
	// next command: import it now.
	if _, err := db.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if _, err := db.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(res.SnapshotName)); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &snapshotPlan{at: uint64(at), epoch: st.Epoch, time: time.Now()}, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func orNone(s string) string {
	if s == "" {
		return "(none confirmed)"
	}
	return s
}

// Read returns the next changes, up to max (and the batch size), waiting
// for the first; with a batch timeout, it waits that long for more. After
// an error that stopped the stream, it returns the error.
func (s *Postgres) Read(ctx context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	return s.chunks.read(ctx, dst, max)
}

// Ack records that the pipeline is done with the first n events: the
// transactions wholly among them may be confirmed to the slot (at the next
// status update), and a snapshot wholly among them is complete.
func (s *Postgres) Ack(_ context.Context, n uint64) error {
	s.mu.Lock()
	s.acked = n
	snapshot := s.confirmMarks()
	s.mu.Unlock()
	if snapshot {
		return s.snapshotComplete()
	}
	return nil
}

// snapshotComplete records that the snapshot was acknowledged whole: the
// next run streams from the slot instead of taking it again.
func (s *Postgres) snapshotComplete() error {
	if err := s.updateState(func(st *pgState) bool { st.Snapshot = "done"; return true }); err != nil {
		return fmt.Errorf("cdc: postgres source %q: %w", s.cfg.Name, err)
	}
	s.snapshotDone.Store(true)
	s.log.Info("snapshot complete")
	return nil
}

// updateState changes s.state with change and, if it says it changed
// anything, writes it to the state file.
func (s *Postgres) updateState(change func(*pgState) bool) error {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.mu.Lock()
	changed := change(&s.state)
	st := s.state
	s.mu.Unlock()
	if !changed {
		return nil
	}
	return saveState(s.cfg.StateFile, st)
}

// confirmMarks takes the marks that the acknowledged events cover, and
// reports whether the snapshot's end was among them. s.mu is held.
func (s *Postgres) confirmMarks() (snapshot bool) {
	i := 0
	for ; i < len(s.marks) && s.marks[i].upTo <= s.acked; i++ {
		m := s.marks[i]
		snapshot = snapshot || m.snapshot
		if m.lsn > s.confirmed {
			s.confirmed = m.lsn
		}
	}
	s.marks = s.marks[i:]
	return snapshot
}

// Close stops the stream, tells the server the last confirmed position,
// and closes the connections.
func (s *Postgres) Close() error {
	s.close.Do(func() {
		close(s.done)
		s.mu.Lock()
		if s.conn != nil {
			// Wakes a producer waiting for the server.
			s.conn.Conn().SetReadDeadline(time.Now())
		}
		s.mu.Unlock()
	})
	<-s.exited
	return nil
}

func (s *Postgres) closing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// errClosed ends the producer when the source is closed.
var errClosed = errors.New("cdc: source closed")

// run is the producer: the snapshot (if due), then the stream, with
// reconnections, until Close or an error that retrying cannot mend.
func (s *Postgres) run(db *pgx.Conn, repl *pgconn.PgConn, snap *snapshotPlan) {
	defer close(s.exited)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	st := &streamState{}
	if snap != nil {
		err := s.snapshot(ctx, db, snap)
		if err != nil {
			db.Close(context.Background())
			repl.Close(context.Background())
			s.finish(err)
			return
		}
	}
	db.Close(ctx)
	backoff := 100 * time.Millisecond
	wait := func(err error) bool {
		s.log.Warn("replication connection lost: reconnecting", "error", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-s.done:
			return false
		}
		backoff = min(2*backoff, 10*time.Second)
		return true
	}
	for {
		if repl == nil {
			var err error
			repl, err = connectReplication(ctx, s.cfg.DSN)
			if err != nil {
				if s.closing() {
					s.finish(nil)
					return
				}
				if permanent(err) {
					s.finish(err)
					return
				}
				if !wait(err) {
					s.finish(nil)
					return
				}
				continue
			}
			s.mu.Lock()
			s.conn = repl
			s.mu.Unlock()
			s.reconnects.Add(1)
		}
		began := time.Now()
		err := s.stream(ctx, repl, st)
		s.goodbye(repl)
		repl = nil
		if s.closing() || errors.Is(err, errClosed) {
			s.finish(nil)
			return
		}
		if permanent(err) {
			s.finish(err)
			return
		}
		if time.Since(began) > 30*time.Second {
			backoff = 100 * time.Millisecond
		}
		if !wait(err) {
			s.finish(nil)
			return
		}
	}
}

// finish ends the stream: with the error that stopped the producer (a
// closed source's stream just ends).
func (s *Postgres) finish(err error) {
	if err != nil && !errors.Is(err, errClosed) {
		err = fmt.Errorf("cdc: postgres source %q: %w", s.cfg.Name, err)
		select {
		case s.ch <- chunk{err: err}:
		case <-s.done:
		}
	}
	close(s.ch)
}

// goodbye sends the last status update and closes the connection.
func (s *Postgres) goodbye(repl *pgconn.PgConn) {
	if repl == nil {
		return
	}
	repl.Conn().SetReadDeadline(time.Time{})
	repl.Conn().SetWriteDeadline(time.Now().Add(time.Second))
	s.status(repl, false)
	s.saveConfirmed()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	repl.Close(ctx)
}

// permanent tells the errors that retrying cannot mend from those of a
// lost connection or a server shutting down or restarting, which a new
// connection mends. Anything the server refused for good (a missing slot
// or publication, authentication, privileges) or the source did (a filter
// that fails, a value it cannot decode) is permanent.
func permanent(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "57P"), strings.HasPrefix(pe.Code, "53"):
			return false
		case pe.Code == "55006": // a slot still active for a connection the server has not yet noticed is gone
			return false
		}
		return true
	}
	var ne net.Error
	return !(errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE))
}

// send hands events to Read, counting them, and keeps the status updates
// going while Read is slow (a server that hears nothing drops the
// connection after wal_sender_timeout).
func (s *Postgres) send(ctx context.Context, repl *pgconn.PgConn, events []engine.Event) error {
	if len(events) == 0 {
		return nil
	}
	s.mu.Lock()
	s.emitted += uint64(len(events))
	s.mu.Unlock()
	tick := time.NewTicker(s.cfg.StatusInterval)
	defer tick.Stop()
	for {
		select {
		case s.ch <- chunk{events: events}:
			return nil
		case <-ctx.Done():
			return errClosed
		case <-tick.C:
			if repl != nil {
				if err := s.status(repl, false); err != nil {
					return err
				}
			}
		}
	}
}

// flushDelay is how long the stream waits for more of the server's
// messages before it hands on a batch that is not full.
const flushDelay = 200 * time.Microsecond

// addMarks records positions to confirm once the events before each are
// acknowledged.
func (s *Postgres) addMarks(ms []mark) {
	s.mu.Lock()
	s.marks = append(s.marks, ms...)
	snapshot := s.confirmMarks()
	s.mu.Unlock()
	if snapshot {
		// Every event of the snapshot was acknowledged before its end was
		// marked (or none was kept: empty tables, filters).
		if err := s.snapshotComplete(); err != nil {
			s.log.Warn("cannot record the snapshot's end: the next run takes it again", "error", err)
		}
	}
}

func (s *Postgres) emittedCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emitted
}

// snapshot reads the selected tables in the slot's snapshot.
func (s *Postgres) snapshot(ctx context.Context, db *pgx.Conn, plan *snapshotPlan) error {
	tm := pgtype.NewMap()
	var index uint32
	batch := make([]engine.Event, 0, s.cfg.BatchSize)
	for _, t := range s.rules.tables() {
		r := s.rules.byTable[t]
		schema, table, _ := strings.Cut(t, ".")
		rr := db.PgConn().ExecParams(ctx, "SELECT * FROM "+pgx.Identifier{schema, table}.Sanitize(), nil, nil, nil, nil)
		fds := rr.FieldDescriptions()
		encs := make([]valueEncoder, len(fds))
		for i, fd := range fds {
			encs[i] = encoderFor(tm, fd.DataTypeOID)
		}
		key := s.keys[t]
		idb := make([]byte, 0, 256)
		for rr.NextRow() {
			vals := rr.Values()
			row := make(Row, len(fds))
			buf := make([]byte, 0, 128)
			for i, fd := range fds {
				start := len(buf)
				if vals[i] == nil {
					buf = append(buf, "null"...)
				} else {
					var err error
					if buf, err = encs[i](buf, vals[i]); err != nil {
						rr.Close()
						return fmt.Errorf("snapshot of %s: column %s: %w", t, fd.Name, err)
					}
				}
				row[i] = Column{Name: fd.Name, Value: buf[start:len(buf):len(buf)]}
			}
			c := ChangeEvent{
				Type:   Read,
				Source: SourceInfo{Connector: "postgresql", Name: s.cfg.Name, Database: db.Config().Database, Schema: schema, Table: table, Snapshot: true},
				Key:    keyOf(row, key), After: row, CommitTime: plan.time,
				Position: Position{LSN: plan.at, Index: index},
			}
			index++
			keep, err := r.apply(&c)
			if err != nil {
				rr.Close()
				return err
			}
			if !keep {
				continue
			}
			// A snapshot's row is named by what it is, so that a snapshot
			// taken again (after a crash) repeats the IDs of the rows that
			// did not change, and gives the ones that did new ones.
			idb = append(idb[:0], s.idPre...)
			idb = append(idb, "snapshot\x00"...)
			idb = append(idb, plan.epoch...)
			idb = append(idb, 0)
			idb = append(idb, t...)
			idb = append(idb, 0)
			idb = row.AppendJSON(idb)
			batch = append(batch, c.Event(engine.HashEventID(idb)))
			if len(batch) == cap(batch) {
				if err := s.send(ctx, nil, batch); err != nil {
					rr.Close()
					return err
				}
				batch = make([]engine.Event, 0, s.cfg.BatchSize)
			}
		}
		if _, err := rr.Close(); err != nil {
			return fmt.Errorf("snapshot of %s: %w", t, err)
		}
	}
	if _, err := db.Exec(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := s.send(ctx, nil, batch); err != nil {
		return err
	}
	s.addMarks([]mark{{upTo: s.emittedCount(), lsn: plan.at, snapshot: true}})
	return nil
}

// keyOf returns the key columns of row (nil without a key).
func keyOf(row Row, key []string) Row {
	if len(key) == 0 || row == nil {
		return nil
	}
	k := make(Row, 0, len(key))
	for _, name := range key {
		if v, ok := row.Get(name); ok {
			k = append(k, Column{Name: name, Value: v})
		}
	}
	return k
}

// streamState is what the stream keeps across reconnections.
type streamState struct {
	last     Position // the last change handed on (or left out by the filters)
	lastMark uint64   // the commit LSN of the last transaction whose mark was pushed
}

// relation is what the stream knows of a table from its Relation message.
type relation struct {
	schema, table string
	cols          []*pglogrepl.RelationMessageColumn
	encs          []valueEncoder
	key           []string
	rule          *rule
}

// stream reads the slot from its confirmed position, until an error.
func (s *Postgres) stream(ctx context.Context, repl *pgconn.PgConn, st *streamState) error {
	s.mu.Lock()
	from := s.confirmed
	s.mu.Unlock()
	err := pglogrepl.StartReplication(ctx, repl, s.cfg.Slot, pglogrepl.LSN(from), pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names '" + s.cfg.Publication + "'"},
	})
	if err != nil {
		if s.closing() {
			return errClosed
		}
		return fmt.Errorf("start replication from slot %s: %w", s.cfg.Slot, explain(err, s.cfg))
	}
	tm := pgtype.NewMap()
	rels := make(map[uint32]*relation)
	var changes []pending // of the message at hand
	var (
		inTx      bool
		tx        Position
		txTime    time.Time
		txID      uint32
		batch     = make([]engine.Event, 0, s.cfg.BatchSize)
		nextState = time.Now().Add(s.cfg.StatusInterval)
		idb       = make([]byte, 0, 64)
		database  = repl.ParameterStatus("database")
	)
	if database == "" {
		database = dbName(s.cfg.DSN)
	}
	// Transactions' marks wait with the batch: a mark is pushed once the
	// events before it are handed on.
	var marks []mark
	emitted := s.emittedCount()
	// last and lastMark move on with the batch; st keeps what was handed
	// on, so that a connection lost before a flush reads it again.
	last, lastMark := st.last, st.lastMark
	flush := func() error {
		if len(batch) > 0 {
			if err := s.send(ctx, repl, batch); err != nil {
				return err
			}
			emitted += uint64(len(batch))
			batch = make([]engine.Event, 0, s.cfg.BatchSize)
		}
		if len(marks) > 0 {
			s.addMarks(marks)
			marks = marks[:0]
		}
		st.last, st.lastMark = last, lastMark
		return nil
	}
	for {
		if s.closing() {
			return errClosed
		}
		if !time.Now().Before(nextState) {
			if err := s.status(repl, false); err != nil {
				return err
			}
			s.saveConfirmed()
			nextState = time.Now().Add(s.cfg.StatusInterval)
		}
		deadline := nextState
		if len(batch) > 0 || len(marks) > 0 {
			// A batch goes as soon as the server pauses, or when full:
			// under a stream of small transactions, batches fill up
			// instead of going one transaction at a time.
			if t := time.Now().Add(flushDelay); t.Before(deadline) {
				deadline = t
			}
		}
		repl.Conn().SetReadDeadline(deadline)
		raw, err := repl.ReceiveMessage(context.Background())
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !repl.IsClosed() {
				if err := flush(); err != nil {
					return err
				}
				continue
			}
			if s.closing() {
				return errClosed
			}
			return err
		}
		var msg *pgproto3.CopyData
		switch m := raw.(type) {
		case *pgproto3.CopyData:
			msg = m
		case *pgproto3.ErrorResponse:
			return explain(pgconn.ErrorResponseToPgError(m), s.cfg)
		default:
			continue
		}
		if len(msg.Data) == 0 {
			continue
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return fmt.Errorf("keepalive: %w", err)
			}
			s.serverWAL.Store(uint64(ka.ServerWALEnd))
			if !inTx && len(batch) == 0 && len(marks) == 0 {
				s.idle(uint64(ka.ServerWALEnd))
			}
			if ka.ReplyRequested {
				if err := s.status(repl, false); err != nil {
					return err
				}
			}
			continue
		case pglogrepl.XLogDataByteID:
		default:
			continue
		}
		xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
		if err != nil {
			return fmt.Errorf("xlog data: %w", err)
		}
		s.serverWAL.Store(uint64(xld.ServerWALEnd))
		lm, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			return fmt.Errorf("pgoutput message at %s: %w", xld.WALStart, err)
		}
		changes = changes[:0]
		switch m := lm.(type) {
		case *pglogrepl.RelationMessage:
			rels[m.RelationID] = s.relation(tm, m)
			continue
		case *pglogrepl.BeginMessage:
			inTx, tx, txTime, txID = true, Position{LSN: uint64(m.FinalLSN)}, m.CommitTime, m.Xid
			continue
		case *pglogrepl.CommitMessage:
			inTx = false
			if uint64(m.CommitLSN) > lastMark {
				lastMark = uint64(m.CommitLSN)
				marks = append(marks, mark{upTo: emitted + uint64(len(batch)), lsn: uint64(m.TransactionEndLSN)})
			}
			continue
		case *pglogrepl.InsertMessage:
			changes, err = s.change(changes, rels, m.RelationID, Insert, 0, nil, m.Tuple)
		case *pglogrepl.UpdateMessage:
			changes, err = s.change(changes, rels, m.RelationID, Update, m.OldTupleType, m.OldTuple, m.NewTuple)
		case *pglogrepl.DeleteMessage:
			changes, err = s.change(changes, rels, m.RelationID, Delete, m.OldTupleType, m.OldTuple, nil)
		case *pglogrepl.TruncateMessage:
			for _, id := range m.RelationIDs {
				if changes, err = s.change(changes, rels, id, Truncate, 0, nil, nil); err != nil {
					break
				}
			}
		default:
			continue
		}
		if err != nil {
			return err
		}
		for i := range changes {
			// Every change takes its place in the transaction, read or
			// not, so that positions do not depend on the selection.
			pos := tx
			tx.Index++
			if !last.Less(pos) {
				continue // handed on before the connection was lost
			}
			last = pos
			p := &changes[i]
			if p.rule == nil {
				continue // a table the publication has and the source does not read
			}
			c := &p.change
			c.Position, c.Source.Database = pos, database
			c.CommitTime, c.TxID = txTime, uint64(txID)
			keep, err := p.rule.apply(c)
			if err != nil {
				return err
			}
			if !keep {
				continue
			}
			idb = append(idb[:0], s.idPre...)
			idb = binary.BigEndian.AppendUint64(idb, c.Position.LSN)
			idb = binary.BigEndian.AppendUint32(idb, c.Position.Index)
			batch = append(batch, c.Event(engine.HashEventID(idb)))
			if len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
}

// relation makes the stream's view of a table from its Relation message.
func (s *Postgres) relation(tm *pgtype.Map, m *pglogrepl.RelationMessage) *relation {
	r := &relation{schema: m.Namespace, table: m.RelationName, cols: m.Columns,
		encs: make([]valueEncoder, len(m.Columns))}
	for i, c := range m.Columns {
		r.encs[i] = encoderFor(tm, c.DataType)
	}
	key, ok := s.keys[m.Namespace+"."+m.RelationName]
	if !ok {
		for _, c := range m.Columns {
			if c.Flags&1 != 0 {
				key = append(key, c.Name)
			}
		}
	}
	r.key = key
	r.rule = s.rules.lookup(m.Namespace, m.RelationName)
	return r
}

// pending is a change of the message at hand, and the rule of its table;
// a nil rule is a change of a table the source does not read, left
// undecoded.
type pending struct {
	change ChangeEvent
	rule   *rule
}

// change appends the change of one Insert, Update, Delete or (with no
// tuples) Truncate message to dst.
func (s *Postgres) change(dst []pending, rels map[uint32]*relation, id uint32, t ChangeType, oldType uint8, old, new *pglogrepl.TupleData) ([]pending, error) {
	rel, ok := rels[id]
	if !ok {
		return dst, fmt.Errorf("a %s of relation %d came before its Relation message", t, id)
	}
	if rel.rule == nil {
		return append(dst, pending{}), nil
	}
	c := ChangeEvent{Type: t, Source: SourceInfo{Connector: "postgresql", Name: s.cfg.Name, Schema: rel.schema, Table: rel.table}}
	var unchanged []string
	var err error
	if new != nil {
		if c.After, unchanged, err = rel.row(new, false); err != nil {
			return dst, err
		}
	}
	// Without REPLICA IDENTITY FULL, an update that kept its key carries
	// no old row. Without IncludeBefore, only a delete keeps its before
	// image (it is all a delete has); the key comes from the after image.
	if old != nil && (s.cfg.IncludeBefore || t == Delete) {
		// 'K' is the replica identity's columns only (the others come as
		// NULL); 'O' is the whole old row (REPLICA IDENTITY FULL).
		if c.Before, _, err = rel.row(old, oldType == 'K'); err != nil {
			return dst, err
		}
	}
	switch {
	case c.After != nil:
		c.Key = keyOf(c.After, rel.key)
	case c.Before != nil:
		c.Key = keyOf(c.Before, rel.key)
	}
	if len(unchanged) > 0 {
		c.Metadata = map[string]string{MetaUnchanged: strings.Join(unchanged, ",")}
	}
	return append(dst, pending{change: c, rule: rel.rule}), nil
}

// MetaUnchanged lists, comma-separated, the columns an update left out of
// its after image: TOASTed values (large ones, stored apart) that the
// update did not change, which PostgreSQL does not send.
const MetaUnchanged = "cdc.unchanged"

// row decodes a tuple; keyOnly keeps the key columns only.
func (r *relation) row(t *pglogrepl.TupleData, keyOnly bool) (Row, []string, error) {
	if len(t.Columns) != len(r.cols) {
		return nil, nil, fmt.Errorf("table %s.%s: a tuple of %d columns for a relation of %d", r.schema, r.table, len(t.Columns), len(r.cols))
	}
	row := make(Row, 0, len(t.Columns))
	var unchanged []string
	n := 0
	for _, c := range t.Columns {
		n += len(c.Data) + 8
	}
	buf := make([]byte, 0, n)
	for i, c := range t.Columns {
		name := r.cols[i].Name
		if keyOnly && !slices.Contains(r.key, name) && r.cols[i].Flags&1 == 0 {
			continue
		}
		start := len(buf)
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			buf = append(buf, "null"...)
		case pglogrepl.TupleDataTypeToast:
			unchanged = append(unchanged, name)
			continue
		case pglogrepl.TupleDataTypeText:
			var err error
			if buf, err = r.encs[i](buf, c.Data); err != nil {
				return nil, nil, fmt.Errorf("table %s.%s: column %s: %w", r.schema, r.table, name, err)
			}
		default:
			return nil, nil, fmt.Errorf("table %s.%s: column %s: value in format %q, want text", r.schema, r.table, name, c.DataType)
		}
		row = append(row, Column{Name: name, Value: buf[start:len(buf):len(buf)]})
	}
	return row, unchanged, nil
}

// idle confirms a keepalive's position when nothing is awaiting an
// acknowledgement: the server has sent every transaction that committed
// before it, so a slot that stays idle (or sees only other tables'
// changes) does not hold the server's WAL back.
func (s *Postgres) idle(walEnd uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.marks) == 0 && s.acked == s.emitted && s.snapshotDone.Load() && walEnd > s.confirmed {
		s.confirmed = walEnd
	}
}

// status tells the server the confirmed position.
func (s *Postgres) status(repl *pgconn.PgConn, reply bool) error {
	if repl.IsClosed() {
		// A receive that failed closed it, and pgconn is still writing
		// its goodbye on it from a goroutine of its own: a write now
		// would race with that one. The slot keeps what it confirmed
		// last; the next connection confirms the rest.
		return errors.New("status update: the connection is closed")
	}
	s.mu.Lock()
	lsn := s.confirmed
	s.mu.Unlock()
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(lsn), ReplyRequested: reply,
	})
	if err != nil {
		return fmt.Errorf("status update: %w", err)
	}
	return nil
}

// saveConfirmed writes the confirmed position to the state file when it
// moved (for status; the slot is what a restart resumes from).
func (s *Postgres) saveConfirmed() {
	err := s.updateState(func(st *pgState) bool {
		pos := FormatLSN(s.confirmed) // s.mu is held
		if pos == st.Confirmed {
			return false
		}
		st.Confirmed = pos
		return true
	})
	if err != nil {
		s.log.Warn("cannot save the confirmed position", "error", err)
	}
}

// explain adds what to do to the server's refusals that a user can mend.
func explain(err error, cfg PostgresConfig) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	msg := pe.Message
	switch {
	case pe.Code == "42704" && strings.Contains(msg, "publication"):
		return fmt.Errorf("%w (the publication %s was dropped: create it again, or restart aegis-host to have it made)", err, cfg.Publication)
	case pe.Code == "42704" && strings.Contains(msg, "replication slot"):
		return fmt.Errorf("%w (the slot %s was dropped: changes since its last confirmed position may be lost; move the state file %s away to start again)", err, cfg.Slot, cfg.StateFile)
	}
	return err
}

// dbName returns the database of a DSN.
func dbName(dsn string) string {
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return pc.Database
}
