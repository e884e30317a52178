package cdc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/engine"
)

// pgEnvelope is a change of public.orders as Debezium's PostgreSQL
// connector writes it, without the schema wrapper.
func pgEnvelope(op, before, after string) string {
	return `{"before":` + before + `,"after":` + after + `,"source":{"version":"2.5.0.Final","connector":"postgresql","name":"shop",` +
		`"ts_ms":1700000000123,"snapshot":"false","db":"app","sequence":"[null,\"23809864\"]","schema":"public","table":"orders",` +
		`"txId":757,"lsn":23809864,"xmin":null},"op":"` + op + `","ts_ms":1700000000200,"transaction":null}`
}

// wrapped puts a payload into Debezium's schema wrapper.
func wrapped(payload string) string {
	return `{"schema":{"type":"struct","fields":[],"optional":false,"name":"shop.public.orders.Envelope"},"payload":` + payload + `}`
}

// myEnvelope is a change of shop.orders as Debezium's MySQL connector
// writes it: a database, no schema.
func myEnvelope(op, before, after string) string {
	return `{"before":` + before + `,"after":` + after + `,"source":{"version":"2.5.0.Final","connector":"mysql","name":"dbserver1",` +
		`"ts_ms":0,"snapshot":"false","db":"shop","table":"orders","server_id":223344,"gtid":null,"file":"mysql-bin.000003",` +
		`"pos":484,"row":0,"thread":7,"query":null},"op":"` + op + `","ts_ms":1700000000456,"transaction":null}`
}

var pgSource = cdc.SourceInfo{Connector: "postgresql", Name: "shop", Database: "app", Schema: "public", Table: "orders"}

func row(kv ...string) cdc.Row {
	r := cdc.Row{}
	for i := 0; i < len(kv); i += 2 {
		r = append(r, cdc.Column{Name: kv[i], Value: json.RawMessage(kv[i+1])})
	}
	return r
}

func TestParseDebezium(t *testing.T) {
	commit := time.UnixMilli(1700000000123).UTC()
	pos := cdc.Position{LSN: 23809864}
	after := `{"id":7,"status":"paid","total":12.5}`
	afterRow := row("id", "7", "status", `"paid"`, "total", "12.5")
	before := `{"id":7,"status":"new","total":12.5}`
	beforeRow := row("id", "7", "status", `"new"`, "total", "12.5")
	snap := pgSource
	snap.Snapshot = true
	tests := []struct {
		name string
		in   string
		want cdc.ChangeEvent
	}{
		{"insert", pgEnvelope("c", "null", after),
			cdc.ChangeEvent{Type: cdc.Insert, Source: pgSource, After: afterRow, CommitTime: commit, TxID: 757, Position: pos}},
		{"insert wrapped", wrapped(pgEnvelope("c", "null", after)),
			cdc.ChangeEvent{Type: cdc.Insert, Source: pgSource, After: afterRow, CommitTime: commit, TxID: 757, Position: pos}},
		{"update", pgEnvelope("u", before, after),
			cdc.ChangeEvent{Type: cdc.Update, Source: pgSource, Before: beforeRow, After: afterRow, CommitTime: commit, TxID: 757, Position: pos}},
		{"update without before", pgEnvelope("u", "null", after),
			cdc.ChangeEvent{Type: cdc.Update, Source: pgSource, After: afterRow, CommitTime: commit, TxID: 757, Position: pos}},
		{"delete", wrapped(pgEnvelope("d", `{"id":7}`, "null")),
			cdc.ChangeEvent{Type: cdc.Delete, Source: pgSource, Before: row("id", "7"), CommitTime: commit, TxID: 757, Position: pos}},
		{"read", strings.Replace(pgEnvelope("r", "null", after), `"snapshot":"false"`, `"snapshot":"true"`, 1),
			cdc.ChangeEvent{Type: cdc.Read, Source: snap, After: afterRow, CommitTime: commit, TxID: 757, Position: pos}},
		{"truncate", `{"op":"t","source":{"connector":"postgresql","db":"app","schema":"public","table":"orders"},"ts_ms":1700000000123}`,
			cdc.ChangeEvent{Type: cdc.Truncate, Source: cdc.SourceInfo{Connector: "postgresql", Database: "app", Schema: "public", Table: "orders"}, CommitTime: commit}},
		{"mysql", myEnvelope("c", "null", `{"id":1}`),
			cdc.ChangeEvent{Type: cdc.Insert, Source: cdc.SourceInfo{Connector: "mysql", Name: "dbserver1", Database: "shop", Table: "orders"},
				After: row("id", "1"), CommitTime: time.UnixMilli(1700000000456).UTC()}},
		{"column order kept", `{"op":"c","source":{"table":"t"},"after":{"z":1,"a":{"n":[1,2]},"m":null}}`,
			cdc.ChangeEvent{Type: cdc.Insert, Source: cdc.SourceInfo{Table: "t"}, After: row("z", "1", "a", `{"n":[1,2]}`, "m", "null")}},
		{"lsn as a string", `{"op":"c","source":{"table":"t","lsn":"0/16B3748","txId":null},"after":{}}`,
			cdc.ChangeEvent{Type: cdc.Insert, Source: cdc.SourceInfo{Table: "t"}, After: cdc.Row{}, Position: cdc.Position{LSN: 0x16B3748}}},
		{"lsn as a decimal string", `{"op":"c","source":{"table":"t","lsn":"42"},"after":{}}`,
			cdc.ChangeEvent{Type: cdc.Insert, Source: cdc.SourceInfo{Table: "t"}, After: cdc.Row{}, Position: cdc.Position{LSN: 42}}},
		{"another database's position", `{"op":"c","source":{"table":"t","lsn":"00000027:00000758:0005"},"after":{}}`,
			cdc.ChangeEvent{Type: cdc.Insert, Source: cdc.SourceInfo{Table: "t"}, After: cdc.Row{}}},
		{"white space around", " \t" + pgEnvelope("c", "null", after) + "\r\n",
			cdc.ChangeEvent{Type: cdc.Insert, Source: pgSource, After: afterRow, CommitTime: commit, TxID: 757, Position: pos}},
	}
	for _, s := range []struct {
		v    string
		snap bool
	}{{`true`, true}, {`false`, false}, {`"true"`, true}, {`"false"`, false}, {`"last"`, true}, {`"first"`, true},
		{`"incremental"`, true}, {`"last_in_data_collection"`, true}, {`null`, false}} {
		tests = append(tests, struct {
			name string
			in   string
			want cdc.ChangeEvent
		}{"snapshot " + s.v, `{"op":"r","source":{"table":"t","snapshot":` + s.v + `},"after":{}}`,
			cdc.ChangeEvent{Type: cdc.Read, Source: cdc.SourceInfo{Table: "t", Snapshot: s.snap}, After: cdc.Row{}}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cdc.ParseDebezium([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseDebeziumErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", ``, `debezium envelope: want a JSON object, got nothing`},
		{"not JSON", `hello`, `debezium envelope: not JSON: invalid character 'h' looking for beginning of value`},
		{"broken JSON", `{"op":"c",`, `debezium envelope: not JSON: unexpected end of JSON input`},
		{"trailing garbage", `{"op":"c"} x`, `debezium envelope: not JSON: invalid character 'x' after top-level value`},
		{"array", `[1]`, `debezium envelope: want a JSON object, got an array`},
		{"null", `null`, `debezium envelope: want a JSON object, got null`},
		{"invalid UTF-8", "{\"op\":\"c\xff\"}", `debezium envelope: not valid UTF-8`},
		{"payload null", `{"schema":{},"payload":null}`, `debezium envelope: "payload": want an object, got null`},
		{"no op", `{"source":{"table":"t"},"after":{}}`, `debezium envelope: "op" is missing`},
		{"op null", `{"op":null}`, `debezium envelope: "op" is missing`},
		{"op a number", `{"op":1}`, `debezium envelope: "op": want a string, got a number`},
		{"unknown op", `{"op":"x"}`, `debezium envelope: "op": "x" is not one of c, u, d, r, t`},
		{"message op", `{"op":"m"}`, `debezium envelope: "op": "m" is not one of c, u, d, r, t`},
		{"op by name", `{"op":"insert"}`, `debezium envelope: "op": "insert" is not one of c, u, d, r, t`},
		{"create without after", `{"op":"c","source":{"table":"t"}}`, `debezium envelope: "after" is missing or null: op "c" needs the row after the change`},
		{"read with null after", `{"op":"r","source":{"table":"t"},"after":null}`, `debezium envelope: "after" is missing or null: op "r" needs the row after the change`},
		{"update without after", `{"op":"u","source":{"table":"t"},"before":{}}`, `debezium envelope: "after" is missing or null: op "u" needs the row after the change`},
		{"delete without before", `{"op":"d","source":{"table":"t"},"after":{}}`, `debezium envelope: "before" is missing or null: op "d" needs the row before the change`},
		{"after an array", `{"op":"c","source":{"table":"t"},"after":[1]}`, `debezium envelope: "after": want an object or null, got an array`},
		{"before a string", `{"op":"u","source":{"table":"t"},"before":"x","after":{}}`, `debezium envelope: "before": want an object or null, got a string`},
		{"no source", `{"op":"c","after":{}}`, `debezium envelope: "source.table" is missing or empty`},
		{"no table", `{"op":"c","source":{"db":"d"},"after":{}}`, `debezium envelope: "source.table" is missing or empty`},
		{"source a string", `{"op":"c","source":"pg","after":{}}`, `debezium envelope: "source": want an object, got a string`},
		{"table a number", `{"op":"c","source":{"table":5},"after":{}}`, `debezium envelope: "source.table": want a string, got a number`},
		{"db an object", `{"op":"c","source":{"table":"t","db":{}},"after":{}}`, `debezium envelope: "source.db": want a string, got an object`},
		{"snapshot unknown", `{"op":"r","source":{"table":"t","snapshot":"maybe"},"after":{}}`, `debezium envelope: "source.snapshot": "maybe" is not one of true, false, first, first_in_data_collection, last, last_in_data_collection, incremental`},
		{"snapshot a number", `{"op":"r","source":{"table":"t","snapshot":1},"after":{}}`, `debezium envelope: "source.snapshot": want a bool or a string, got a number`},
		{"txId a string", `{"op":"c","source":{"table":"t","txId":"757"},"after":{}}`, `debezium envelope: "source.txId": want an integer, got a string`},
		{"txId negative", `{"op":"c","source":{"table":"t","txId":-1},"after":{}}`, `debezium envelope: "source.txId": -1 is not an integer from 0 to 18446744073709551615`},
		{"lsn a fraction", `{"op":"c","source":{"table":"t","lsn":1.5},"after":{}}`, `debezium envelope: "source.lsn": want an integer or a string, got 1.5`},
		{"lsn a bool", `{"op":"c","source":{"table":"t","lsn":true},"after":{}}`, `debezium envelope: "source.lsn": want an integer or a string, got a boolean`},
		{"ts_ms a string", `{"op":"c","source":{"table":"t"},"after":{},"ts_ms":"now"}`, `debezium envelope: "ts_ms": want an integer (Unix milliseconds), got a string`},
		{"ts_ms too large", `{"op":"c","source":{"table":"t","ts_ms":9223372036854775807},"after":{}}`, `debezium envelope: "source.ts_ms": 9223372036854775807 is not a time in Unix milliseconds (an integer of at most 9223372036854)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cdc.ParseDebezium([]byte(tt.in))
			if err == nil {
				t.Fatalf("no error; got %+v", c)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

// readAll reads a source to its end, acknowledging as it goes when it is
// an Acker, and returns the events and the error that ended it.
func readAll(t *testing.T, s engine.Source, max int) ([]engine.Event, []int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []engine.Event
	var sizes []int
	for {
		n := len(out)
		var err error
		out, err = s.Read(ctx, out, max)
		if len(out) > n {
			sizes = append(sizes, len(out)-n)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return out, sizes, err
		}
	}
}

func changes(t *testing.T, events []engine.Event) []cdc.ChangeEvent {
	t.Helper()
	out := make([]cdc.ChangeEvent, len(events))
	for i, e := range events {
		c, err := cdc.FromEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = c
	}
	return out
}

func ids(c []cdc.ChangeEvent, col string) []string {
	var out []string
	for _, x := range c {
		r := x.After
		if r == nil {
			r = x.Before
		}
		v, _ := r.Get(col)
		out = append(out, string(v))
	}
	return out
}

func newDebezium(t *testing.T, in string, cfg cdc.DebeziumConfig) *cdc.Debezium {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "dbz"
	}
	s, err := cdc.NewDebezium(strings.NewReader(in), "changes.jsonl", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDebeziumMalformedLine(t *testing.T) {
	lines := []string{
		pgEnvelope("c", "null", `{"id":1}`),
		"",
		pgEnvelope("c", "null", `{"id":2}`),
		`{"op":"x"}`,
		"   ",
		wrapped(pgEnvelope("u", "null", `{"id":3}`)),
		pgEnvelope("d", `{"id":1}`, "null"), // no newline at the end
	}
	var got []cdc.Malformed
	s := newDebezium(t, strings.Join(lines, "\n"), cdc.DebeziumConfig{OnMalformed: func(m cdc.Malformed) { got = append(got, m) }})
	events, _, err := readAll(t, s, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(changes(t, events), "id"); !slices.Equal(got, []string{"1", "2", "3", "1"}) {
		t.Errorf("ids %v, want 1 2 3 1", got)
	}
	if len(got) != 1 || got[0].Line != 4 || got[0].Input != "changes.jsonl" || string(got[0].Raw) != `{"op":"x"}` ||
		got[0].Err.Error() != `debezium envelope: "op": "x" is not one of c, u, d, r, t` {
		t.Errorf("malformed %+v, want line 4 of changes.jsonl", got)
	}
	if s.Malformed() != 1 {
		t.Errorf("Malformed() = %d, want 1", s.Malformed())
	}
}

func TestDebeziumLineTooLong(t *testing.T) {
	long := `{"op":"c","source":{"table":"t"},"after":{"x":"` + strings.Repeat("a", engine.MaxLineSize) + `"}}`
	in := pgEnvelope("c", "null", `{"id":1}`) + "\n" + long + "\n" + pgEnvelope("c", "null", `{"id":2}`) + "\n"
	s := newDebezium(t, in, cdc.DebeziumConfig{})
	events, _, err := readAll(t, s, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(changes(t, events), "id"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("ids %v, want 1 2", got)
	}
	if s.Malformed() != 1 {
		t.Errorf("Malformed() = %d, want 1", s.Malformed())
	}
}

func TestDebeziumIDs(t *testing.T) {
	line := pgEnvelope("c", "null", `{"id":1}`)
	in := line + "\n" + pgEnvelope("c", "null", `{"id":2}`) + "\n  " + line + "  \n"
	read := func(name string) []engine.EventID {
		events, _, err := readAll(t, newDebezium(t, in, cdc.DebeziumConfig{Name: name}), 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []engine.EventID
		for _, e := range events {
			out = append(out, e.ID)
		}
		return out
	}
	a, b, other := read("dbz"), read("dbz"), read("other")
	if len(a) != 3 || !slices.Equal(a, b) {
		t.Fatalf("two reads of the same input: %v and %v", a, b)
	}
	if a[0] != a[2] || a[0] == a[1] {
		t.Errorf("ids %v: want the same envelope (white space aside) to have the same id, others not", a)
	}
	if want := engine.HashEventID([]byte("aegis.cdc.debezium\x00dbz\x00" + line)); a[0] != want {
		t.Errorf("id %s, want %s", a[0], want)
	}
	if other[0] == a[0] {
		t.Errorf("intakes of different names gave the same id %s", a[0])
	}
}

func TestDebeziumTables(t *testing.T) {
	in := strings.Join([]string{
		pgEnvelope("c", "null", `{"id":1,"status":"new","total":5}`),
		pgEnvelope("c", "null", `{"id":2,"status":"new","total":500}`),
		pgEnvelope("u", `{"id":2,"status":"new","total":500}`, `{"id":2,"status":"paid","total":500}`),
		pgEnvelope("d", `{"id":1,"status":"new","total":5}`, "null"),
		strings.Replace(pgEnvelope("c", "null", `{"id":3,"status":"new","total":900}`), `"table":"orders"`, `"table":"other"`, 1),
		myEnvelope("c", "null", `{"id":4,"status":"new","total":700}`),
		myEnvelope("c", "null", `{"id":5,"status":"new","total":7}`),
	}, "\n")
	tests := []struct {
		name   string
		tables []cdc.TableConfig
		want   []string // the kept changes: op, then the id, then the after image
	}{
		{"every table", nil, []string{"c1", "c2", "u2", "d1", "c3", "c4", "c5"}},
		{"one table", []cdc.TableConfig{{Table: "orders"}}, []string{"c1", "c2", "u2", "d1"}},
		{"schema named", []cdc.TableConfig{{Table: "public.other"}}, []string{"c3"}},
		{"mysql by database", []cdc.TableConfig{{Table: "shop.orders"}}, []string{"c4", "c5"}},
		{"types", []cdc.TableConfig{{Table: "orders", Types: []cdc.ChangeType{cdc.Update, cdc.Delete}}}, []string{"u2", "d1"}},
		{"filter", []cdc.TableConfig{{Table: "orders", Filter: `row.total > 100`}}, []string{"c2", "u2"}},
		{"filter on op", []cdc.TableConfig{{Table: "orders", Filter: `op == "d" || after.status == "paid"`}}, []string{"u2", "d1"}},
		{"mysql filter", []cdc.TableConfig{{Table: "shop.orders", Filter: `row.total > 100 && schema == ""`}}, []string{"c4"}},
		{"columns", []cdc.TableConfig{{Table: "orders", Columns: []string{"status", "id"}, Types: []cdc.ChangeType{cdc.Insert}}},
			[]string{`c1{"status":"new","id":1}`, `c2{"status":"new","id":2}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, _, err := readAll(t, newDebezium(t, in, cdc.DebeziumConfig{Tables: tt.tables}), 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range changes(t, events) {
				r := c.After
				if r == nil {
					r = c.Before
				}
				id, _ := r.Get("id")
				s := c.Type.Op() + string(id)
				if tt.tables != nil && tt.tables[0].Columns != nil {
					s = c.Type.Op() + string(id) + string(c.After.AppendJSON(nil))
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDebeziumFilterErrorStops(t *testing.T) {
	in := pgEnvelope("c", "null", `{"id":1,"total":5}`) + "\n" +
		pgEnvelope("c", "null", `{"id":2,"total":null}`) + "\n" +
		pgEnvelope("c", "null", `{"id":3,"total":500}`) + "\n"
	s := newDebezium(t, in, cdc.DebeziumConfig{Name: "dbz", Tables: []cdc.TableConfig{{Table: "orders", Filter: `row.total < 100`}}})
	events, _, err := readAll(t, s, 100)
	if err == nil || !strings.HasPrefix(err.Error(), `cdc: debezium source "dbz": changes.jsonl: line 2: table public.orders: filter "row.total < 100"`) {
		t.Fatalf("error %v, want the filter's failure on line 2", err)
	}
	if got := ids(changes(t, events), "id"); !slices.Equal(got, []string{"1"}) {
		t.Errorf("ids %v, want 1", got)
	}
}

func TestDebeziumIncludeBefore(t *testing.T) {
	in := pgEnvelope("u", `{"id":1,"v":1}`, `{"id":1,"v":2}`) + "\n" + pgEnvelope("d", `{"id":1,"v":2}`, "null") + "\n"
	for _, include := range []bool{false, true} {
		t.Run(fmt.Sprint(include), func(t *testing.T) {
			events, _, err := readAll(t, newDebezium(t, in, cdc.DebeziumConfig{Config: cdc.Config{IncludeBefore: include}}), 100)
			if err != nil {
				t.Fatal(err)
			}
			c := changes(t, events)
			if len(c) != 2 {
				t.Fatalf("%d changes, want 2", len(c))
			}
			if got := c[0].Before != nil; got != include {
				t.Errorf("update's before image kept: %v, want %v", got, include)
			}
			if c[1].Before == nil {
				t.Error("delete's before image dropped")
			}
		})
	}
}

func TestDebeziumBatchSize(t *testing.T) {
	var lines []string
	for i := range 10 {
		lines = append(lines, pgEnvelope("c", "null", fmt.Sprintf(`{"id":%d}`, i)))
	}
	tests := []struct {
		name      string
		batch     int
		max       int
		wantSizes []int
	}{
		{"batch size", 3, 100, []int{3, 3, 3, 1}},
		{"max", 100, 4, []int{4, 4, 2}},
		{"batch timeout", 3, 100, []int{3, 3, 3, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cdc.DebeziumConfig{Config: cdc.Config{BatchSize: tt.batch}}
			if tt.name == "batch timeout" {
				cfg.BatchTimeout = 10 * time.Millisecond
			}
			events, sizes, err := readAll(t, newDebezium(t, strings.Join(lines, "\n"), cfg), tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 10 {
				t.Fatalf("%d events, want 10", len(events))
			}
			for _, n := range sizes {
				if n > min(tt.batch, tt.max) {
					t.Errorf("a read of %d events (sizes %v), want at most %d", n, sizes, min(tt.batch, tt.max))
				}
			}
		})
	}
}

func TestDebeziumReadHonoursContext(t *testing.T) {
	r, w := io.Pipe()
	s, err := cdc.NewDebezium(r, "stdin", cdc.DebeziumConfig{Name: "dbz"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Read(ctx, nil, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read on a blocked reader: %v, want the context's error", err)
	}
	go fmt.Fprintln(w, pgEnvelope("c", "null", `{"id":1}`))
	events, err := s.Read(context.Background(), nil, 10)
	if err != nil || len(events) != 1 {
		t.Fatalf("Read: %d events, %v; want 1", len(events), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x\n")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write after Close: %v, want the pipe closed", err)
	}
	w.Close()
}

func TestDebeziumConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  cdc.DebeziumConfig
		want string
	}{
		{"no name", cdc.DebeziumConfig{}, `cdc: debezium source "": name is empty`},
		{"negative batch", cdc.DebeziumConfig{Name: "d", Config: cdc.Config{BatchSize: -1}}, `cdc: debezium source "d": batch size -1: must not be negative`},
		{"bad filter", cdc.DebeziumConfig{Name: "d", Tables: []cdc.TableConfig{{Table: "t", Filter: "row.x >"}}}, `cdc: debezium source "d": tables[0]: table public.t: filter "row.x >"`},
		{"bad table", cdc.DebeziumConfig{Name: "d", Tables: []cdc.TableConfig{{Table: "a.b.c"}}}, `cdc: debezium source "d": tables[0]: table "a.b.c": want schema.table or table`},
		{"negative ack timeout", cdc.DebeziumConfig{Name: "d", AckTimeout: -1}, `cdc: debezium source "d": ack timeout -1ns: must not be negative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cdc.NewDebezium(strings.NewReader(""), "in", tt.cfg)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %v, want %s", err, tt.want)
			}
			_, err = cdc.NewDebeziumHandler(tt.cfg)
			if want := strings.Replace(tt.want, "source", "handler", 1); err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("handler: error %v, want %s", err, want)
			}
		})
	}
}

// The HTTP intake.

type response struct {
	status int
	header http.Header
	body   map[string]any
	err    error
}

func post(url, contentType, body string) response {
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	r := response{status: resp.StatusCode, header: resp.Header}
	r.err = json.NewDecoder(resp.Body).Decode(&r.body)
	return r
}

// postAsync posts in the background.
func postAsync(url, body string) <-chan response {
	ch := make(chan response, 1)
	go func() { ch <- post(url, "application/x-ndjson", body) }()
	return ch
}

func newHandler(t *testing.T, cfg cdc.DebeziumConfig) (*cdc.DebeziumHandler, *httptest.Server) {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "dbz"
	}
	h, err := cdc.NewDebeziumHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return h, srv
}

// ackAll is a pipeline that acknowledges whatever h gives it, until h is
// closed.
func ackAll(h *cdc.DebeziumHandler) {
	var n uint64
	for {
		events, err := h.Read(context.Background(), nil, 100)
		if err != nil {
			return
		}
		n += uint64(len(events))
		h.Ack(context.Background(), n)
	}
}

// readN reads n events from s.
func readN(t *testing.T, s engine.Source, n int) []engine.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []engine.Event
	for len(out) < n {
		var err error
		if out, err = s.Read(ctx, out, n-len(out)); err != nil {
			t.Fatalf("Read after %d events: %v", len(out), err)
		}
	}
	return out
}

func errorCode(r response) string {
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func pending(ch <-chan response) bool {
	// A response that came too early would most likely be here by now.
	time.Sleep(30 * time.Millisecond)
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

func TestDebeziumHandlerAnswersAfterAck(t *testing.T) {
	h, srv := newHandler(t, cdc.DebeziumConfig{})
	body := pgEnvelope("c", "null", `{"id":1}`) + "\n" + pgEnvelope("c", "null", `{"id":2}`) + "\n"
	ch := postAsync(srv.URL, body)
	events := readN(t, h, 2)
	if got := ids(changes(t, events), "id"); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("ids %v, want 1 2", got)
	}
	if !pending(ch) {
		t.Fatal("the request was answered before the events were acknowledged")
	}
	h.Ack(context.Background(), 1)
	if !pending(ch) {
		t.Fatal("the request was answered when only one of its events was acknowledged")
	}
	h.Ack(context.Background(), 2)
	r := <-ch
	if r.err != nil || r.status != http.StatusOK || r.body["accepted"] != 2.0 || len(r.body["rejected"].([]any)) != 0 {
		t.Fatalf("response %d %v %v, want 200 with 2 accepted", r.status, r.body, r.err)
	}
	// One pretty-printed envelope, as application/json.
	var pretty bytes.Buffer
	json.Indent(&pretty, []byte(wrapped(pgEnvelope("c", "null", `{"id":3}`))), "", "  ")
	ch2 := make(chan response, 1)
	go func() { ch2 <- post(srv.URL, "application/json", pretty.String()) }()
	events = readN(t, h, 1)
	if got := ids(changes(t, events), "id"); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("ids %v, want 3", got)
	}
	h.Ack(context.Background(), 3)
	if r := <-ch2; r.status != http.StatusOK || r.body["accepted"] != 1.0 {
		t.Fatalf("response %d %v %v, want 200 with 1 accepted", r.status, r.body, r.err)
	}
}

func TestDebeziumHandlerRejections(t *testing.T) {
	var mu sync.Mutex
	var malformed []cdc.Malformed
	h, srv := newHandler(t, cdc.DebeziumConfig{OnMalformed: func(m cdc.Malformed) {
		mu.Lock()
		defer mu.Unlock()
		malformed = append(malformed, m)
	}})
	go ackAll(h) // the pipeline
	mixed := pgEnvelope("c", "null", `{"id":1}`) + "\n\n" + `{"op":"c","source":{"table":"t"}}` + "\n" + pgEnvelope("c", "null", `{"id":2}`) + "\nnope\n"
	r := post(srv.URL, "application/x-ndjson", mixed)
	want := []any{
		map[string]any{"line": 3.0, "error": `debezium envelope: "after" is missing or null: op "c" needs the row after the change`},
		map[string]any{"line": 5.0, "error": `debezium envelope: not JSON: invalid character 'o' in literal null (expecting 'u')`},
	}
	if r.err != nil || r.status != http.StatusOK || r.body["accepted"] != 2.0 || !reflect.DeepEqual(r.body["rejected"], want) {
		t.Errorf("mixed: response %d %v %v, want 200 with 2 accepted and lines 3 and 5 rejected", r.status, r.body, r.err)
	}
	r = post(srv.URL, "application/json", `{"op":"x"}`)
	if r.status != http.StatusBadRequest || errorCode(r) != "rejected" || r.body["accepted"] != 0.0 || len(r.body["rejected"].([]any)) != 1 {
		t.Errorf("all rejected: response %d %v %v, want 400 rejected", r.status, r.body, r.err)
	}
	r = post(srv.URL, "application/json", " \n\n")
	if r.status != http.StatusBadRequest || errorCode(r) != "empty" {
		t.Errorf("empty: response %d %v %v, want 400 empty", r.status, r.body, r.err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(malformed) != 3 || malformed[0].Line != 3 || malformed[0].Input != "http" || malformed[1].Line != 5 || malformed[2].Line != 1 {
		t.Errorf("malformed %+v, want lines 3, 5 and 1 of http", malformed)
	}
	if h.Malformed() != 3 {
		t.Errorf("Malformed() = %d, want 3", h.Malformed())
	}
}

func TestDebeziumHandlerErrors(t *testing.T) {
	h, srv := newHandler(t, cdc.DebeziumConfig{AckTimeout: 50 * time.Millisecond})
	t.Run("method", func(t *testing.T) {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || errorCode(response{body: body}) != "method_not_allowed" {
			t.Errorf("GET: %d, Allow %q, %v; want 405, POST", resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	})
	t.Run("too large", func(t *testing.T) {
		line := pgEnvelope("c", "null", `{"id":1}`) + "\n"
		body := strings.Repeat(line, cdc.MaxDebeziumBody/len(line)+1)
		r := post(srv.URL, "application/x-ndjson", body)
		if r.status != http.StatusRequestEntityTooLarge || errorCode(r) != "too_large" {
			t.Errorf("response %d %v %v, want 413", r.status, r.body, r.err)
		}
		// Without a Content-Length.
		req, _ := http.NewRequest(http.MethodPost, srv.URL, io.MultiReader(strings.NewReader(body)))
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked: status %d, want 413", resp.StatusCode)
		}
	})
	t.Run("ack timeout", func(t *testing.T) {
		r := post(srv.URL, "application/x-ndjson", pgEnvelope("c", "null", `{"id":1}`))
		if r.status != http.StatusGatewayTimeout || errorCode(r) != "ack_timeout" {
			t.Errorf("response %d %v %v, want 504", r.status, r.body, r.err)
		}
		// The change is still queued.
		if got := ids(changes(t, readN(t, h, 1)), "id"); !slices.Equal(got, []string{"1"}) {
			t.Errorf("ids %v, want 1", got)
		}
	})
}

func TestDebeziumHandlerClose(t *testing.T) {
	h, srv := newHandler(t, cdc.DebeziumConfig{})
	ch := postAsync(srv.URL, pgEnvelope("c", "null", `{"id":1}`)+"\n"+pgEnvelope("c", "null", `{"id":2}`))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Wait for the request's events to be queued, then read one only.
	first, err := h.Read(ctx, nil, 1)
	if err != nil || len(first) != 1 {
		t.Fatalf("Read: %d events, %v", len(first), err)
	}
	h.Close()
	if r := <-ch; r.status != http.StatusServiceUnavailable || errorCode(r) != "closed" {
		t.Errorf("pending request: response %d %v %v, want 503", r.status, r.body, r.err)
	}
	if r := post(srv.URL, "application/json", pgEnvelope("c", "null", `{"id":3}`)); r.status != http.StatusServiceUnavailable || errorCode(r) != "closed" {
		t.Errorf("later request: response %d %v %v, want 503", r.status, r.body, r.err)
	}
	rest, err := h.Read(ctx, nil, 10)
	if err != nil || len(rest) != 1 {
		t.Fatalf("Read after Close: %d events, %v; want the queued one", len(rest), err)
	}
	if got := ids(changes(t, append(first, rest...)), "id"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("ids %v, want 1 2", got)
	}
	if _, err := h.Read(ctx, nil, 10); err != io.EOF {
		t.Errorf("Read once drained: %v, want io.EOF", err)
	}
}

func TestDebeziumHandlerBusy(t *testing.T) {
	h, srv := newHandler(t, cdc.DebeziumConfig{AckTimeout: 50 * time.Millisecond})
	// Fill the queue (nobody reads it): the first request is queued and
	// times out waiting for its acknowledgement, the next finds no room.
	var body strings.Builder
	for i := range 1100 {
		body.WriteString(pgEnvelope("c", "null", fmt.Sprintf(`{"id":%d}`, i)) + "\n")
	}
	if r := post(srv.URL, "application/x-ndjson", body.String()); r.status != http.StatusGatewayTimeout {
		t.Fatalf("first request: %d %v %v, want 504", r.status, r.body, r.err)
	}
	r := post(srv.URL, "application/x-ndjson", pgEnvelope("c", "null", `{"id":-1}`))
	if r.status != http.StatusServiceUnavailable || errorCode(r) != "busy" || r.header.Get("Retry-After") == "" {
		t.Errorf("second request: %d %v %v, want 503 busy", r.status, r.body, r.err)
	}
	events, _, err := readAll(t, closeAfter(h, 1100), 1000)
	if err != nil || len(events) != 1100 {
		t.Errorf("read %d events, %v; want the 1100 of the first request", len(events), err)
	}
}

// closeAfter closes h once n events are read from it.
func closeAfter(h *cdc.DebeziumHandler, n int) engine.Source {
	return &closing{h: h, left: n}
}

type closing struct {
	h    *cdc.DebeziumHandler
	left int
}

func (c *closing) Read(ctx context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	n := len(dst)
	dst, err := c.h.Read(ctx, dst, max)
	if c.left -= len(dst) - n; c.left <= 0 {
		c.h.Close()
	}
	return dst, err
}

func (c *closing) Close() error { return c.h.Close() }

func TestDebeziumHandlerHammer(t *testing.T) {
	const clients, requests, perRequest = 8, 50, 3
	h, srv := newHandler(t, cdc.DebeziumConfig{Config: cdc.Config{BatchSize: 7}})
	var read []engine.Event
	pipeline := make(chan error, 1)
	go func() {
		var n uint64
		for {
			var err error
			k := len(read)
			read, err = h.Read(context.Background(), read, 5)
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				pipeline <- err
				return
			}
			n += uint64(len(read) - k)
			if err := h.Ack(context.Background(), n); err != nil {
				pipeline <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, clients*requests)
	for c := range clients {
		wg.Go(func() {
			for r := range requests {
				var body strings.Builder
				for k := range perRequest {
					body.WriteString(pgEnvelope("c", "null", fmt.Sprintf(`{"client":%d,"request":%d,"k":%d}`, c, r, k)) + "\n")
				}
				resp := post(srv.URL, "application/x-ndjson", body.String())
				if resp.err != nil || resp.status != http.StatusOK || resp.body["accepted"] != float64(perRequest) {
					errs <- fmt.Errorf("client %d request %d: %d %v %v", c, r, resp.status, resp.body, resp.err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.Close()
	if err := <-pipeline; err != nil {
		t.Fatal(err)
	}
	if len(read) != clients*requests*perRequest {
		t.Fatalf("%d events read, want %d", len(read), clients*requests*perRequest)
	}
	type next struct{ request, k int }
	at := make([]next, clients)
	seen := make(map[engine.EventID]bool)
	for _, c := range changes(t, read) {
		var v struct{ Client, Request, K int }
		json.Unmarshal(c.After.AppendJSON(nil), &v)
		if want := at[v.Client]; v.Request != want.request || v.K != want.k {
			t.Fatalf("client %d: read request %d event %d, want request %d event %d", v.Client, v.Request, v.K, want.request, want.k)
		}
		if at[v.Client].k++; at[v.Client].k == perRequest {
			at[v.Client] = next{v.Request + 1, 0}
		}
	}
	for _, e := range read {
		if seen[e.ID] {
			t.Fatalf("event %s read twice", e.ID)
		}
		seen[e.ID] = true
	}
}

// TestDebeziumHandlerPipeline runs the handler as a real pipeline's source.
func TestDebeziumHandlerPipeline(t *testing.T) {
	h, srv := newHandler(t, cdc.DebeziumConfig{})
	sink := &recordSink{}
	p, err := engine.NewPipeline(engine.PipelineConfig{Name: "p", Source: h, Sinks: []engine.Sink{sink}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	r := post(srv.URL, "application/x-ndjson", pgEnvelope("c", "null", `{"id":1}`)+"\n"+pgEnvelope("c", "null", `{"id":2}`))
	if r.status != http.StatusOK {
		t.Fatalf("response %d %v %v, want 200", r.status, r.body, r.err)
	}
	// Answered after the acknowledgement: the sink has them.
	if got := ids(changes(t, sink.events()), "id"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("sink has %v, want 1 2", got)
	}
	h.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type recordSink struct {
	mu sync.Mutex
	ev []engine.Event
}

func (s *recordSink) Write(_ context.Context, events []engine.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ev = append(s.ev, events...)
	return nil
}

func (s *recordSink) events() []engine.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ev)
}

func (s *recordSink) Close() error { return nil }

func TestDebeziumHandlerFilterError(t *testing.T) {
	h, srv := newHandler(t, cdc.DebeziumConfig{Tables: []cdc.TableConfig{{Table: "orders", Filter: `row.total < 100`}}})
	go ackAll(h) // the pipeline
	body := pgEnvelope("c", "null", `{"id":1,"total":5}`) + "\n" + pgEnvelope("c", "null", `{"id":2,"total":null}`) + "\n" +
		pgEnvelope("c", "null", `{"id":3,"total":500}`) + "\n" + strings.Replace(pgEnvelope("c", "null", `{"id":4}`), `"orders"`, `"other"`, 1)
	r := post(srv.URL, "application/x-ndjson", body)
	rejected, _ := r.body["rejected"].([]any)
	if r.status != http.StatusOK || r.body["accepted"] != 3.0 || len(rejected) != 1 || rejected[0].(map[string]any)["line"] != 2.0 {
		t.Errorf("response %d %v %v, want 200 with 3 accepted (one kept, two left out) and line 2 rejected", r.status, r.body, r.err)
	}
}

func TestDebeziumHandlerReadHonoursContext(t *testing.T) {
	h, _ := newHandler(t, cdc.DebeziumConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Read(ctx, nil, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read of an empty queue: %v, want the context's error", err)
	}
}
