package cdc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// PostgresStatus is where a PostgreSQL source stands: its slot on the
// server, and its state file.
type PostgresStatus struct {
	// Name is the source's name.
	Name string `json:"name"`
	// Slot and SlotExists: whether the slot is on the server.
	Slot       string `json:"slot"`
	SlotExists bool   `json:"slot_exists"`
	// Active says whether a connection is reading the slot now, and
	// ActivePID is its server process.
	Active    bool `json:"active"`
	ActivePID int  `json:"active_pid,omitempty"`
	// Confirmed is the slot's confirmed position: a restart resumes after
	// it. CurrentWAL is the server's current WAL position, and LagBytes
	// the WAL between the two that the slot keeps the server from
	// recycling (changes of other tables included).
	Confirmed  string `json:"confirmed,omitempty"`
	CurrentWAL string `json:"current_wal"`
	LagBytes   int64  `json:"lag_bytes"`
	// WALStatus is PostgreSQL's view of the slot's WAL: reserved,
	// extended, unreserved or lost (lost: the slot can no longer stream).
	WALStatus string `json:"wal_status,omitempty"`
	// Publication and PublicationExists: whether the publication is on
	// the server; Tables are the tables it publishes.
	Publication       string   `json:"publication"`
	PublicationExists bool     `json:"publication_exists"`
	Tables            []string `json:"tables,omitempty"`
	// Snapshot is the state file's snapshot state: none, pending or done
	// ("" without a state file). LastConfirmed is the position the source
	// last confirmed, and Updated when its state was last written.
	Snapshot      string    `json:"snapshot,omitempty"`
	LastConfirmed string    `json:"last_confirmed,omitempty"`
	Updated       time.Time `json:"updated,omitzero"`
}

// Status connects to the source's database and reports where the source
// stands, without changing anything (the slot and the publication are not
// created, the state file is not written).
func Status(ctx context.Context, cfg PostgresConfig) (PostgresStatus, error) {
	cfg = cfg.withDefaults()
	st := PostgresStatus{Name: cfg.Name, Slot: cfg.Slot, Publication: cfg.Publication}
	if cfg.StateFile != "" {
		s, err := loadState(cfg.StateFile)
		if err != nil {
			return st, err
		}
		if s != nil {
			st.Snapshot, st.LastConfirmed, st.Updated = s.Snapshot, s.Confirmed, s.Updated
		}
	}
	db, err := pgx.Connect(ctx, cfg.DSN)
	if err != nil {
		return st, fmt.Errorf("cdc: postgres source %q: connect: %w", cfg.Name, err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	var current pglogrepl.LSN
	if err := db.QueryRow(ctx, "SELECT pg_current_wal_lsn()").Scan(&current); err != nil {
		return st, fmt.Errorf("cdc: postgres source %q: %w", cfg.Name, err)
	}
	st.CurrentWAL = current.String()
	var confirmed pglogrepl.LSN
	var pid *int32
	var walStatus *string
	err = db.QueryRow(ctx, `SELECT active, active_pid, coalesce(confirmed_flush_lsn, '0/0'), wal_status
		FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot).Scan(&st.Active, &pid, &confirmed, &walStatus)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return st, fmt.Errorf("cdc: postgres source %q: slot: %w", cfg.Name, err)
	default:
		st.SlotExists = true
		st.Confirmed = confirmed.String()
		if current > confirmed {
			st.LagBytes = int64(current - confirmed)
		}
		if pid != nil {
			st.ActivePID = int(*pid)
		}
		if walStatus != nil {
			st.WALStatus = *walStatus
		}
	}
	err = db.QueryRow(ctx, "SELECT true FROM pg_publication WHERE pubname = $1", cfg.Publication).Scan(&st.PublicationExists)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("cdc: postgres source %q: publication: %w", cfg.Name, err)
	}
	if st.PublicationExists {
		rows, err := db.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables
			WHERE pubname = $1 ORDER BY 1`, cfg.Publication)
		if err == nil {
			st.Tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			return st, fmt.Errorf("cdc: postgres source %q: publication: %w", cfg.Name, err)
		}
	}
	return st, nil
}
