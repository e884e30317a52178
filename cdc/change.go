// Package cdc is aegis-host's change-data-capture intake: the changes of a
// database's rows as events. A [ChangeEvent] is one change (an insert, an
// update, a delete, a truncate, or a row read by an initial snapshot) with
// its before and after images, its key, where it happened (database,
// schema, table), when it was committed, in which transaction and at which
// [Position]. Sources make them: [NewPostgres] reads PostgreSQL's logical
// replication (pgoutput), and [NewDebezium] and [DebeziumHandler] accept
// Debezium's JSON change envelope. Both are engine sources, so a change
// flows through a pipeline's steps like any event; [ChangeEvent.Event] is
// the form it takes, and [FromEvent] reads it back.
package cdc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/jsonstr"
)

// ChangeType is what happened to a row.
type ChangeType uint8

const (
	// Insert is a new row: After only.
	Insert ChangeType = iota + 1
	// Update is a changed row: After, and Before when the source has it.
	Update
	// Delete is a removed row: Before (the whole row, or its key only).
	Delete
	// Truncate is every row of a table removed at once: no images.
	Truncate
	// Read is a row as an initial snapshot read it: After only.
	Read
)

// ops are the one-letter codes of Debezium's envelope ("op"), by type.
var ops = [...]string{Insert: "c", Update: "u", Delete: "d", Truncate: "t", Read: "r"}

var typeNames = [...]string{Insert: "insert", Update: "update", Delete: "delete", Truncate: "truncate", Read: "read"}

// String returns the type's name: insert, update, delete, truncate, read.
func (t ChangeType) String() string {
	if t == 0 || int(t) >= len(typeNames) {
		return "ChangeType(" + strconv.Itoa(int(t)) + ")"
	}
	return typeNames[t]
}

// Op returns the type's one-letter code in Debezium's envelope: c, u, d,
// t or r.
func (t ChangeType) Op() string {
	if t == 0 || int(t) >= len(ops) {
		return ""
	}
	return ops[t]
}

// EventType returns the type of the events of this change type:
// "cdc.insert", "cdc.update", ...
func (t ChangeType) EventType() engine.EventType { return engine.EventType("cdc." + t.String()) }

// ParseChangeType parses a type's name (insert, update, delete, truncate,
// read) or its one-letter code (c, u, d, t, r).
func ParseChangeType(s string) (ChangeType, error) {
	for t := Insert; t <= Read; t++ {
		if s == typeNames[t] || s == ops[t] {
			return t, nil
		}
	}
	return 0, fmt.Errorf("change type %q: want one of insert, update, delete, truncate, read (or c, u, d, t, r)", s)
}

// SourceInfo says where a change happened.
type SourceInfo struct {
	// Connector is the kind of database: "postgresql" for the PostgreSQL
	// source; what the envelope says for Debezium intake.
	Connector string
	// Name is the source's name in the manifest (Debezium: the logical
	// server name).
	Name string
	// Database, Schema and Table name the table. The schema is always
	// kept: "public.orders" and "audit.orders" are different tables.
	Database string
	Schema   string
	Table    string
	// Snapshot is true for rows read by an initial snapshot.
	Snapshot bool
}

// QualifiedTable returns "schema.table" (or "table" without a schema).
func (s SourceInfo) QualifiedTable() string {
	if s.Schema == "" {
		return s.Table
	}
	return s.Schema + "." + s.Table
}

// Position is where a change is in its source's stream, and what a source
// resumes from. For PostgreSQL, LSN is the log sequence number of the
// transaction's commit record (of the snapshot's consistent point for
// snapshot reads) and Index the change's place in its transaction (in the
// snapshot), from 0: positions order changes in commit order, and a change
// read again after a restart has the position it had.
type Position struct {
	LSN   uint64
	Index uint32
}

// String returns the position as "LSN:index", the LSN in PostgreSQL's
// form: "0/16B3748:2".
func (p Position) String() string {
	return FormatLSN(p.LSN) + ":" + strconv.FormatUint(uint64(p.Index), 10)
}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	return p.LSN < q.LSN || p.LSN == q.LSN && p.Index < q.Index
}

// IsZero reports whether p is the zero position (none).
func (p Position) IsZero() bool { return p == Position{} }

// ParsePosition parses [Position.String]'s form.
func ParsePosition(s string) (Position, error) {
	lsn, idx, ok := strings.Cut(s, ":")
	if !ok {
		return Position{}, fmt.Errorf("position %q: want LSN:index, as in 0/16B3748:2", s)
	}
	l, err := ParseLSN(lsn)
	if err != nil {
		return Position{}, fmt.Errorf("position %q: %w", s, err)
	}
	i, err := strconv.ParseUint(idx, 10, 32)
	if err != nil {
		return Position{}, fmt.Errorf("position %q: index: %w", s, err)
	}
	return Position{LSN: l, Index: uint32(i)}, nil
}

// FormatLSN writes a log sequence number as PostgreSQL does: two
// hexadecimal halves, "0/16B3748".
func FormatLSN(lsn uint64) string {
	return strconv.FormatUint(lsn>>32, 16) + "/" + strings.ToUpper(strconv.FormatUint(lsn&0xffffffff, 16))
}

// ParseLSN parses PostgreSQL's form of a log sequence number.
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("lsn %q: want two hexadecimal halves, as in 0/16B3748", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("lsn %q: want two hexadecimal halves, as in 0/16B3748", s)
	}
	return h<<32 | l, nil
}

// Column is one column of a row image: its name and its value as JSON.
// Values keep their type: numbers are JSON numbers, json and jsonb columns
// are JSON documents, timestamps are RFC 3339 strings, bytea is base64,
// NULL is null (see the README for the whole mapping).
type Column struct {
	Name  string
	Value json.RawMessage
}

// Row is a row image, its columns in the table's order. A nil Row is no
// image (an insert has no before image); an empty one is a row of no
// columns.
type Row []Column

// Get returns the value of the named column.
func (r Row) Get(name string) (json.RawMessage, bool) {
	for i := range r {
		if r[i].Name == name {
			return r[i].Value, true
		}
	}
	return nil, false
}

// AppendJSON appends the row as a JSON object ("null" for a nil row).
func (r Row) AppendJSON(b []byte) []byte {
	if r == nil {
		return append(b, "null"...)
	}
	b = append(b, '{')
	for i, c := range r {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, c.Name)
		b = append(b, ':')
		if len(c.Value) == 0 {
			b = append(b, "null"...)
		} else {
			b = append(b, c.Value...)
		}
	}
	return append(b, '}')
}

// MarshalJSON encodes the row as [Row.AppendJSON] does.
func (r Row) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }

// UnmarshalJSON decodes a JSON object (or null) into a row, keeping the
// order of its members.
func (r *Row) UnmarshalJSON(b []byte) error {
	row, err := parseRow(b)
	if err != nil {
		return err
	}
	*r = row
	return nil
}

// parseRow decodes a JSON object into a Row in member order; null gives
// nil.
func parseRow(b []byte) (Row, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("row: want a JSON object or null")
	}
	row := Row{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("row: column %q: %w", name, err)
		}
		row = append(row, Column{Name: name, Value: v})
	}
	if _, err := d.Token(); err != nil {
		return nil, err
	}
	return row, nil
}

// ChangeEvent is one change of one row (or, for a truncate, of a table).
type ChangeEvent struct {
	Type   ChangeType
	Source SourceInfo
	// Key is the row's key columns (the primary key, or the replica
	// identity's columns); nil when the table has none.
	Key Row
	// Before is the row before the change: the whole row for updates and
	// deletes of a table with REPLICA IDENTITY FULL, the key columns only
	// for deletes otherwise, nil when the source does not have it.
	Before Row
	// After is the row after an insert, update or snapshot read.
	After Row
	// CommitTime is when the change's transaction committed (for
	// snapshot reads: when the snapshot was taken).
	CommitTime time.Time
	// TxID is the transaction's id (0 when unknown).
	TxID uint64
	// Position is where the change is in the source's stream.
	Position Position
	// Metadata holds further attributes, copied into the event's.
	Metadata map[string]string
}

// Metadata keys of change events (also in [ChangeEvent.Event]'s metadata,
// so that steps and routing can use them without decoding the data).
const (
	MetaOp       = "cdc.op"       // c, u, d, t or r
	MetaDatabase = "cdc.database" // the database
	MetaSchema   = "cdc.schema"   // the schema
	MetaTable    = "cdc.table"    // the table, without its schema
	MetaPosition = "cdc.position" // Position.String()
	MetaTxID     = "cdc.tx_id"    // the transaction id, in decimal
)

// Event returns the change as an engine event: its type is
// Type.EventType() ("cdc.insert", ...), its source
// "database.schema.table", its time the commit time, its ID id, its
// metadata the change's plus the cdc.* keys above, and its data a JSON
// document shaped like Debezium's envelope (see [ChangeEvent.AppendJSON]).
//
// The rows' values must be valid JSON (as the sources make them, and
// [Row.UnmarshalJSON] keeps them): they are written as they are, unchecked.
func (c *ChangeEvent) Event(id engine.EventID) engine.Event {
	// Every part is valid JSON by construction: names and strings go
	// through jsonstr, values are checked where they are made. Checking
	// the document again cost a fifth of the PostgreSQL source's time.
	data := engine.TrustedJSONData(c.AppendJSON(make([]byte, 0, 256)))
	meta := make(map[string]string, len(c.Metadata)+6)
	for k, v := range c.Metadata {
		meta[k] = v
	}
	meta[MetaOp] = c.Type.Op()
	meta[MetaDatabase] = c.Source.Database
	meta[MetaSchema] = c.Source.Schema
	meta[MetaTable] = c.Source.Table
	if !c.Position.IsZero() {
		meta[MetaPosition] = c.Position.String()
	}
	if c.TxID != 0 {
		meta[MetaTxID] = strconv.FormatUint(c.TxID, 10)
	}
	src := c.Source.QualifiedTable()
	if c.Source.Database != "" {
		src = c.Source.Database + "." + src
	}
	var t int64
	if !c.CommitTime.IsZero() {
		t = c.CommitTime.UnixNano()
	}
	return engine.Event{ID: id, Type: c.Type.EventType(), Source: src, Time: t, Data: data, Metadata: meta}
}

// AppendJSON appends the change as a JSON document shaped like Debezium's
// envelope, with the key and the position added:
//
//	{"op":"u","ts_ms":1700000000123,
//	 "source":{"connector":"postgresql","name":"shop","db":"app","schema":"public","table":"orders",
//	           "snapshot":false,"txId":757,"lsn":"0/16B3748","ts_ms":1700000000123},
//	 "position":"0/16B3748:0","key":{"id":7},"before":null,"after":{"id":7,"status":"paid"}}
//
// ts_ms is the commit time in Unix milliseconds; the commit time with
// nanoseconds is the event's time.
func (c *ChangeEvent) AppendJSON(b []byte) []byte {
	ms := int64(0)
	if !c.CommitTime.IsZero() {
		ms = c.CommitTime.UnixMilli()
	}
	b = append(b, `{"op":`...)
	b = jsonstr.Append(b, c.Type.Op())
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, ms, 10)
	b = append(b, `,"source":{"connector":`...)
	b = jsonstr.Append(b, c.Source.Connector)
	b = append(b, `,"name":`...)
	b = jsonstr.Append(b, c.Source.Name)
	b = append(b, `,"db":`...)
	b = jsonstr.Append(b, c.Source.Database)
	b = append(b, `,"schema":`...)
	b = jsonstr.Append(b, c.Source.Schema)
	b = append(b, `,"table":`...)
	b = jsonstr.Append(b, c.Source.Table)
	b = append(b, `,"snapshot":`...)
	b = strconv.AppendBool(b, c.Source.Snapshot)
	b = append(b, `,"txId":`...)
	b = strconv.AppendUint(b, c.TxID, 10)
	b = append(b, `,"lsn":`...)
	b = jsonstr.Append(b, FormatLSN(c.Position.LSN))
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, ms, 10)
	b = append(b, `},"position":`...)
	b = jsonstr.Append(b, c.Position.String())
	b = append(b, `,"key":`...)
	b = c.Key.AppendJSON(b)
	b = append(b, `,"before":`...)
	b = c.Before.AppendJSON(b)
	b = append(b, `,"after":`...)
	b = c.After.AppendJSON(b)
	return append(b, '}')
}

// FromEvent reads a change back from an event that [ChangeEvent.Event]
// made (after any steps that kept its shape). The commit time comes from
// the event's time; the metadata is the event's, without the cdc.* keys.
func FromEvent(e engine.Event) (ChangeEvent, error) {
	raw, ok := e.Data.AsJSON()
	if !ok {
		return ChangeEvent{}, fmt.Errorf("cdc: event %s: data is %s, not a JSON change", e.ID, e.Data.Kind())
	}
	var doc struct {
		Op     string `json:"op"`
		Source struct {
			Connector string `json:"connector"`
			Name      string `json:"name"`
			DB        string `json:"db"`
			Schema    string `json:"schema"`
			Table     string `json:"table"`
			Snapshot  bool   `json:"snapshot"`
			TxID      uint64 `json:"txId"`
		} `json:"source"`
		Position string          `json:"position"`
		Key      json.RawMessage `json:"key"`
		Before   json.RawMessage `json:"before"`
		After    json.RawMessage `json:"after"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return ChangeEvent{}, fmt.Errorf("cdc: event %s: %w", e.ID, err)
	}
	t, err := ParseChangeType(doc.Op)
	if err != nil {
		return ChangeEvent{}, fmt.Errorf("cdc: event %s: %w", e.ID, err)
	}
	c := ChangeEvent{Type: t, TxID: doc.Source.TxID, Source: SourceInfo{
		Connector: doc.Source.Connector, Name: doc.Source.Name, Database: doc.Source.DB,
		Schema: doc.Source.Schema, Table: doc.Source.Table, Snapshot: doc.Source.Snapshot,
	}}
	if doc.Position != "" {
		if c.Position, err = ParsePosition(doc.Position); err != nil {
			return ChangeEvent{}, fmt.Errorf("cdc: event %s: %w", e.ID, err)
		}
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *Row
	}{{"key", doc.Key, &c.Key}, {"before", doc.Before, &c.Before}, {"after", doc.After, &c.After}} {
		if *f.dst, err = parseRow(f.raw); err != nil {
			return ChangeEvent{}, fmt.Errorf("cdc: event %s: %s: %w", e.ID, f.name, err)
		}
	}
	if e.Time != 0 {
		c.CommitTime = time.Unix(0, e.Time).UTC()
	}
	for k, v := range e.Metadata {
		if strings.HasPrefix(k, "cdc.") {
			continue
		}
		if c.Metadata == nil {
			c.Metadata = make(map[string]string)
		}
		c.Metadata[k] = v
	}
	return c, nil
}
