package pgtest_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// pg is the package's shared server, started by pgtest.Main.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(child(dir))
	}
	os.Exit(pgtest.Main(m, &pg))
}

// query returns the first column of the first row of sql in dsn's
// database, as text.
func query(t *testing.T, ctx context.Context, dsn, sql string, args ...any) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if dsn := pg.DSN("x"); !strings.HasPrefix(dsn, "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(dsn, "/x?sslmode=disable") {
		t.Errorf("DSN %q", dsn)
	}
	tests := []struct {
		name string
		sql  string
		want string
	}{
		{name: "wal_level", sql: "SHOW wal_level", want: "logical"},
		{name: "max_replication_slots", sql: "SHOW max_replication_slots", want: "32"},
		{name: "max_wal_senders", sql: "SHOW max_wal_senders", want: "32"},
		{name: "max_connections", sql: "SHOW max_connections", want: "200"},
		{name: "fsync", sql: "SHOW fsync", want: "off"},
		{name: "encoding", sql: "SHOW server_encoding", want: "UTF8"},
		{name: "listen_addresses", sql: "SHOW listen_addresses", want: "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := query(t, ctx, pg.DSN("postgres"), tt.sql); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.sql, got, tt.want)
			}
		})
	}
}

// run counts the runs of TestDatabases.
var run int

func TestDatabases(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Two databases, each with a table of the same name and its own row.
	// The test runs -count times against the same server.
	run++
	names := []string{fmt.Sprintf("databases_a%d", run), fmt.Sprintf("Databases B%d", run)}
	var dsns []string
	for _, name := range names {
		dsn, err := pg.CreateDatabase(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if dsn != pg.DSN(name) {
			t.Errorf("CreateDatabase(%q) = %q, want %q", name, dsn, pg.DSN(name))
		}
		dsns = append(dsns, dsn)
		if err := pg.Exec(ctx, name, "CREATE TABLE t (v text)"); err != nil {
			t.Fatal(err)
		}
		if err := pg.Exec(ctx, name, "INSERT INTO t VALUES ($1)", "in "+name); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range names {
		if got := query(t, ctx, dsns[i], "SELECT v FROM t"); got != "in "+name {
			t.Errorf("database %q has row %q", name, got)
		}
		if got := query(t, ctx, dsns[i], "SELECT current_database()"); got != name {
			t.Errorf("current_database() = %q, want %q", got, name)
		}
	}

	// What fails is named.
	if _, err := pg.CreateDatabase(ctx, names[0]); err == nil || !strings.Contains(err.Error(), "create database["+names[0]+"]") {
		t.Errorf("second CreateDatabase: %v", err)
	}
	if err := pg.Exec(ctx, "databases_none", "SELECT 1"); err == nil || !strings.Contains(err.Error(), "database[databases_none]") {
		t.Errorf("Exec in a missing database: %v", err)
	}
	if err := pg.Exec(ctx, names[0], "SELECT nope"); err == nil || !strings.Contains(err.Error(), "database["+names[0]+"]") {
		t.Errorf("Exec of bad SQL: %v", err)
	}
}

// TestLifecycle runs a server of its own: it stops and crashes it.
func TestLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "aegis-pgtest-lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := pgtest.Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	port := s.Port()
	dsn, err := s.CreateDatabase(ctx, "life")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "life", "CREATE TABLE t (n int)"); err != nil {
		t.Fatal(err)
	}
	count := func(t *testing.T) string {
		t.Helper()
		return query(t, ctx, dsn, "SELECT count(*)::text FROM t")
	}
	insert := func(t *testing.T) {
		t.Helper()
		if err := s.Exec(ctx, "life", "INSERT INTO t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
	}

	// A connection open across a restart is broken; the data stays.
	insert(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Port() != port {
		t.Errorf("port %d after restart, was %d", s.Port(), port)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("a connection from before the restart still works")
	}
	if got := count(t); got != "1" {
		t.Errorf("after Restart: %s rows, want 1", got)
	}

	// A crash: no connections until the restart, which recovers
	// what was committed (synchronous_commit=off may lose the last
	// commits in a crash; a checkpoint makes them durable).
	insert(t)
	if err := s.Exec(ctx, "life", "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "life", "SELECT 1"); err == nil {
		t.Error("Exec on a killed server works")
	}
	if err := s.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(t); got != "2" {
		t.Errorf("after Kill and Restart: %s rows, want 2", got)
	}
	if !strings.Contains(s.Log(), "database system was interrupted") {
		t.Errorf("no crash recovery in the log:\n%s", s.Log())
	}

	// Stop twice, then a restart from stopped.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := s.Exec(ctx, "life", "SELECT 1"); err == nil {
		t.Error("Exec on a stopped server works")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(t); got != "2" {
		t.Errorf("after Stop and Restart: %s rows, want 2", got)
	}
}

func TestStartErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "aegis-pgtest-errors")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Mkdir(dir+"/data", 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		want string
	}{
		{name: "data directory exists", dir: dir, want: "data directory"},
		{name: "socket path too long", dir: dir + "/" + strings.Repeat("d", 100), want: "more than 107"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := pgtest.Start(ctx, tt.dir)
			if err == nil {
				s.Stop()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
	if err := pgtest.Available(); err != nil {
		t.Errorf("Available: %v", err)
	}
}
