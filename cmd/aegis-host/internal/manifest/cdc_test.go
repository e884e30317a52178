package manifest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
)

// cdcSource is a manifest whose source "db" (line 3, its mapping from
// column 7) is src, read by one pipeline into stdout, with a channel x
// for dead letters.
func cdcSource(src string) string {
	return `apiVersion: aegis/v1
channels: {x: {}}
sources:
  db: ` + src + `
sinks: {out: {type: stdout}}
pipelines: [{name: p, from: db, to: [out]}]
`
}

// pg is cdcSource with a postgres-cdc source: its type and dsn, then
// more (line 4, from column 60).
func pg(more string) string {
	return cdcSource(`{type: postgres-cdc, dsn: "postgres://localhost/shop"` + more + `}`)
}

func init() {
	validManifests["postgres-cdc"] = `apiVersion: aegis/v1
channels: {paid: {persistent: true}}
sources:
  shop:
    type: postgres-cdc
    dsn: postgres://aegis@localhost:5432/shop
    tables:
      - table: public.orders
        changes: [insert, update, delete]
        columns: [id, status, amount]
        filter: row.status == "paid" || op == "d"
      - {table: customers}
  other:
    type: postgres-cdc
    dsn: "host=localhost dbname=shop"
    slot: shop_slot
    publication: ShopPub
    snapshot: true
    include_before: false
    batch_size: 16
    batch_timeout: 5ms
    status_interval: 250ms
    tables: [{table: audit.log, changes: [read]}]
sinks: {out: {type: stdout}}
pipelines:
  - {name: p, from: shop, to: [paid]}
  - {name: q, from: other, to: [out]}
  - {name: r, from: paid, to: [out], delivery: {mode: exactly-once}}
`
	validManifests["debezium"] = `apiVersion: aegis/v1
channels: {dead: {}}
sources:
  file: {type: debezium, path: input.jsonl, dead_letter: dead, include_before: false}
  http:
    type: debezium
    listen: 127.0.0.1:0
    batch_size: 10
    batch_timeout: 1ms
    tables: [{table: inventory.orders, filter: 'after.status == "paid"'}]
  console: {type: debezium, path: "-"}
sinks: {out: {type: stdout}}
pipelines:
  - {name: a, from: file, to: [out]}
  - {name: b, from: http, to: [out]}
  - {name: c, from: console, to: [out]}
  - {name: d, from: dead, to: [out]}
`
}

// TestCDCErrors has a case for each problem validation finds with
// postgres-cdc and debezium sources.
func TestCDCErrors(t *testing.T) {
	dir, _ := fixture(t)
	for _, tc := range []struct {
		name string
		text string
		want []string
	}{
		// postgres-cdc.
		{"dsn missing", cdcSource(`{type: postgres-cdc, tables: [{table: orders}]}`),
			[]string{`4:7: sources.db.dsn: required for a postgres-cdc source: the database to connect to`}},
		{"tables missing", pg(``),
			[]string{`4:7: sources.db.tables: required for a postgres-cdc source: at least one table`}},
		{"tables empty", pg(`, tables: []`),
			[]string{`4:70: sources.db.tables: required for a postgres-cdc source: at least one table`}},
		{"table missing", pg(`, tables: [{changes: [insert]}]`),
			[]string{`4:71: sources.db.tables[0].table: required: the table's name, schema.table or table (in the schema public)`}},
		{"table malformed", pg(`, tables: [{table: a.b.c}]`),
			[]string{`4:79: sources.db.tables[0].table: must be schema.table or table, got "a.b.c"`}},
		{"table without a name", pg(`, tables: [{table: "shop."}]`),
			[]string{`4:79: sources.db.tables[0].table: must be schema.table or table, got "shop."`}},
		{"table twice", pg(`, tables: [{table: orders}, {table: public.orders}]`),
			[]string{`4:96: sources.db.tables[1].table: table public.orders is already listed (tables[0])`}},
		{"change unknown", pg(`, tables: [{table: orders, changes: [insert, upsert]}]`),
			[]string{`4:105: sources.db.tables[0].changes[1]: unknown value "upsert": want insert, update, delete, truncate or read (did you mean "insert"?)`}},
		{"change twice", pg(`, tables: [{table: orders, changes: [delete, delete]}]`),
			[]string{`4:105: sources.db.tables[0].changes[1]: "delete" is listed twice`}},
		{"column empty", pg(`, tables: [{table: orders, columns: [id, ""]}]`),
			[]string{`4:101: sources.db.tables[0].columns[1]: cannot be empty: a column's name`}},
		{"filter syntax error", pg(`, tables: [{table: orders, filter: "row.status =="}]`),
			[]string{`4:95: sources.db.tables[0].filter: invalid CEL expression: 1:14 in the expression: Syntax error`}},
		{"filter unknown variable", pg(`, tables: [{table: orders, filter: "status == 'paid'"}]`),
			[]string{`4:95: sources.db.tables[0].filter: invalid CEL expression: 1:1 in the expression: undeclared reference to 'status'`}},
		{"filter not a bool", pg(`, tables: [{table: orders, filter: "op + 'x'"}]`),
			[]string{`4:95: sources.db.tables[0].filter: invalid CEL expression: is string, want a bool`}},
		{"filter empty", pg(`, tables: [{table: orders, filter: ""}]`),
			[]string{`4:95: sources.db.tables[0].filter: cannot be empty`}},
		{"filter on a later line", cdcSource("\n    type: postgres-cdc\n    dsn: x\n    tables:\n      - table: orders\n        filter: |\n          row.id >\n"),
			[]string{`9:17: sources.db.tables[0].filter: invalid CEL expression: 2:1 in the expression: Syntax error`}},
		{"slot invalid", pg(`, slot: Shop-Slot, tables: [{table: orders}]`),
			[]string{`4:68: sources.db.slot: must be 1 to 63 lowercase letters, digits or underscores, got "Shop-Slot" (leave it out for the default, aegis_db)`}},
		{"publication invalid", pg(`, publication: "1pub", tables: [{table: orders}]`),
			[]string{`4:75: sources.db.publication: must be a letter or underscore, then letters, digits or underscores (at most 63), got "1pub"`}},
		{"batch_size zero", pg(`, batch_size: 0, tables: [{table: orders}]`),
			[]string{`4:74: sources.db.batch_size: must be between 1 and 1000000, got 0`}},
		{"batch_timeout negative", pg(`, batch_timeout: -1s, tables: [{table: orders}]`),
			[]string{`4:77: sources.db.batch_timeout: negative duration "-1s"`}},
		{"status_interval zero", pg(`, status_interval: 0s, tables: [{table: orders}]`),
			[]string{`4:79: sources.db.status_interval: must be positive (leave it out for the default, 1s)`}},
		{"snapshot a string", pg(`, snapshot: yes, tables: [{table: orders}]`),
			[]string{`4:72: sources.db.snapshot: expected true or false, got a string`}},
		{"table field unknown", pg(`, tables: [{table: orders, column: [id]}]`),
			[]string{`4:87: sources.db.tables[0].column: unknown field "column" (did you mean "columns"?)`}},
		{"listen on postgres-cdc", pg(`, listen: ":8083", tables: [{table: orders}]`),
			[]string{`4:70: sources.db.listen: listen applies to type debezium`}},
		{"path on postgres-cdc", pg(`, path: input.jsonl, tables: [{table: orders}]`),
			[]string{`4:68: sources.db.path: path applies to types file and debezium`}},

		// debezium.
		{"debezium without path or listen", cdcSource(`{type: debezium}`),
			[]string{`4:14: sources.db.type: a debezium source needs path (a file of envelopes, or - for stdin) or listen (host:port of an HTTP endpoint)`}},
		{"debezium with path and listen", cdcSource(`{type: debezium, path: input.jsonl, listen: ":8083"}`),
			[]string{`4:51: sources.db.listen: a debezium source reads path or listens on listen, not both`}},
		{"debezium file missing", cdcSource(`{type: debezium, path: nope.jsonl}`),
			[]string{`4:30: sources.db.path: no such file: nope.jsonl`}},
		{"debezium listen a URL", cdcSource(`{type: debezium, listen: "http://localhost:8083"}`),
			[]string{`4:32: sources.db.listen: is a URL; give host:port, such as 127.0.0.1:8083 or :8083 (every interface)`}},
		{"debezium dead_letter a sink", cdcSource(`{type: debezium, path: "-", dead_letter: out}`),
			[]string{`4:48: sources.db.dead_letter: "out" is a sink; this takes a channel`}},
		{"debezium dead_letter unknown", cdcSource(`{type: debezium, path: "-", dead_letter: y}`),
			[]string{`4:48: sources.db.dead_letter: no channel named "y" (did you mean "x"?)`}},
		{"debezium ack_timeout without listen", cdcSource(`{type: debezium, path: "-", ack_timeout: 5s}`),
			[]string{`4:48: sources.db.ack_timeout: applies to an HTTP endpoint (listen) only`}},
		{"debezium ack_timeout zero", cdcSource(`{type: debezium, listen: "127.0.0.1:8083", ack_timeout: 0s}`),
			[]string{`4:63: sources.db.ack_timeout: must be positive (leave it out for the default, 30s)`}},
		{"debezium table malformed", cdcSource(`{type: debezium, path: "-", tables: [{table: ".x"}]}`),
			[]string{`4:52: sources.db.tables[0].table: must be schema.table or table, got ".x"`}},
		{"dsn on debezium", cdcSource(`{type: debezium, path: "-", dsn: x}`),
			[]string{`4:40: sources.db.dsn: dsn applies to type postgres-cdc`}},
		{"snapshot on debezium", cdcSource(`{type: debezium, path: "-", snapshot: true}`),
			[]string{`4:45: sources.db.snapshot: snapshot applies to type postgres-cdc`}},

		// Fields of CDC sources on others.
		{"tables on a generator", cdcSource(`{type: generator, tables: [{table: x}]}`),
			[]string{`4:33: sources.db.tables: tables applies to types postgres-cdc and debezium`}},
		{"dead_letter on a file source", cdcSource(`{type: file, path: input.jsonl, dead_letter: x}`),
			[]string{`4:52: sources.db.dead_letter: dead_letter applies to type debezium`}},
		{"include_before on stdin", cdcSource(`{type: stdin, include_before: true}`),
			[]string{`4:37: sources.db.include_before: include_before applies to types postgres-cdc and debezium`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkParseErrors(t, dir, tc.text, tc.want)
		})
	}
}

// TestCDCDebeziumStdin checks that a debezium source on stdin and a stdin
// source exclude each other, as two stdin sources do.
func TestCDCDebeziumStdin(t *testing.T) {
	dir, _ := fixture(t)
	text := `apiVersion: aegis/v1
sources:
  a: {type: stdin}
  b: {type: debezium, path: "-"}
sinks: {out: {type: stdout}}
pipelines: [{name: p, from: a, to: [out]}, {name: q, from: b, to: [out]}]
`
	checkParseErrors(t, dir, text, []string{`4:29: sources.b.path: source "a" already reads stdin; only one source can`})
}

// TestCDCDefaults checks what Load sets on postgres-cdc and debezium
// sources, and that it leaves what the manifest sets.
func TestCDCDefaults(t *testing.T) {
	dir, sha := fixture(t)
	m, err := parse(t, dir, withSHA(validManifests["postgres-cdc"], sha), nil)
	if err != nil {
		t.Fatal(err)
	}
	shop := m.Sources["shop"]
	if shop.Slot != "aegis_shop" || shop.Publication != "aegis_shop" {
		t.Errorf("slot, publication = %q, %q; want aegis_shop twice", shop.Slot, shop.Publication)
	}
	if shop.IncludeBefore == nil || !*shop.IncludeBefore {
		t.Errorf("include_before = %v, want true", shop.IncludeBefore)
	}
	if shop.BatchSize != manifest.DefaultCDCBatchSize || shop.BatchTimeout != 0 || shop.StatusInterval != manifest.DefaultStatusInterval {
		t.Errorf("batch_size, batch_timeout, status_interval = %d, %v, %v; want %d, 0, %v",
			shop.BatchSize, shop.BatchTimeout, shop.StatusInterval, manifest.DefaultCDCBatchSize, manifest.DefaultStatusInterval)
	}
	if shop.Tables[1].Changes != nil || shop.Tables[1].Columns != nil {
		t.Errorf("tables[1] = %+v, want no changes and no columns", shop.Tables[1])
	}
	other := m.Sources["other"]
	if other.Slot != "shop_slot" || other.Publication != "ShopPub" || *other.IncludeBefore ||
		other.BatchSize != 16 || other.BatchTimeout.D() != 5*time.Millisecond || other.StatusInterval.D() != 250*time.Millisecond {
		t.Errorf("other = %+v, want what the manifest sets", other)
	}

	m, err = parse(t, dir, validManifests["debezium"], nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range m.Sources {
		if s.IncludeBefore == nil || s.BatchSize == 0 || s.Slot != "" || s.StatusInterval != 0 {
			t.Errorf("source %s = %+v, want include_before and batch_size set, no slot or status_interval", name, s)
		}
	}
	if *m.Sources["file"].IncludeBefore || !*m.Sources["http"].IncludeBefore {
		t.Errorf("include_before of file, http = %v, %v; want false, true", *m.Sources["file"].IncludeBefore, *m.Sources["http"].IncludeBefore)
	}
	if m.Sources["http"].BatchSize != 10 || m.Sources["console"].BatchSize != manifest.DefaultCDCBatchSize {
		t.Errorf("batch_size of http, console = %d, %d; want 10, %d", m.Sources["http"].BatchSize, m.Sources["console"].BatchSize, manifest.DefaultCDCBatchSize)
	}
}

// TestCDCEnv checks that a dsn takes ${VAR}, and that its secret is not
// in an error about another field.
func TestCDCEnv(t *testing.T) {
	dir, _ := fixture(t)
	text := pg(`, tables: [{table: orders}]`)
	text = strings.Replace(text, "postgres://localhost/shop", "postgres://aegis:${PGPASS}@localhost/shop", 1)
	m, err := parse(t, dir, text, map[string]string{"PGPASS": "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Sources["db"].DSN; got != "postgres://aegis:s3cret@localhost/shop" {
		t.Errorf("dsn = %q", got)
	}
}
