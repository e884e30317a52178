package cdc

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config is how a CDC source hands its changes to a pipeline.
type Config struct {
	// BatchSize is the most changes one Read returns (the pipeline's own
	// batch size may be smaller). Default [DefaultBatchSize].
	BatchSize int
	// BatchTimeout is how long a Read that has some changes waits for
	// more to fill its batch. 0 returns at once what has arrived, which
	// gives the lowest latency; a few milliseconds make fuller batches
	// under a trickle of changes.
	BatchTimeout time.Duration
	// IncludeBefore keeps before images in the events. Without it, updates
	// and deletes carry the key and the after image only, and events are
	// smaller. (The manifest's include_before defaults to true.)
	IncludeBefore bool
}

// DefaultBatchSize is [Config.BatchSize]'s default.
const DefaultBatchSize = 256

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	return c
}

func (c Config) validate() error {
	if c.BatchSize < 0 {
		return fmt.Errorf("batch size %d: must not be negative", c.BatchSize)
	}
	if c.BatchTimeout < 0 {
		return fmt.Errorf("batch timeout %s: must not be negative", c.BatchTimeout)
	}
	return nil
}

// TableConfig selects a table's changes and shapes them.
type TableConfig struct {
	// Table is "schema.table", or "table" for a table of the source's
	// default schema (public for PostgreSQL).
	Table string
	// Types are the change types to keep; none keeps them all.
	Types []ChangeType
	// Columns, when set, are the only columns kept in before and after
	// images (the key is kept whole). A column that the table does not
	// have is an error when the first change of the table arrives.
	Columns []string
	// Filter is a CEL expression that a change must make true to be kept
	// (https://cel.dev). It sees:
	//
	//	op      string               c, u, d, t or r
	//	schema  string               the table's schema
	//	table   string               the table's name
	//	row     map(string, dyn)     after, or before for a delete
	//	before  map(string, dyn)     {} when there is no before image
	//	after   map(string, dyn)     {} when there is no after image
	//
	// Column values have their JSON types: int for integral numbers,
	// double for others, string, bool, null, map and list; ints and
	// doubles compare with each other. A filter that fails on a change
	// (a NULL column compared with a number, say) stops the source with
	// an error naming the table, the position and the expression: guard
	// nullable columns (row.amount != null && row.amount > 100).
	// Columns dropped by Columns are still visible to the filter.
	Filter string
}

// schemaTable splits a table's name into its schema (def when it has
// none) and its name.
func schemaTable(name, def string) (schema, table string) {
	if s, t, ok := strings.Cut(name, "."); ok {
		return s, t
	}
	return def, name
}

// validateTables checks tables' names and that no table is selected
// twice; the filters are compiled by compileTables.
func validateTables(tables []TableConfig, def string) error {
	seen := make(map[string]bool, len(tables))
	for i, t := range tables {
		if t.Table == "" {
			return fmt.Errorf("tables[%d]: table name is empty", i)
		}
		s, n := schemaTable(t.Table, def)
		if s == "" || n == "" || strings.Count(t.Table, ".") > 1 {
			return fmt.Errorf("tables[%d]: table %q: want schema.table or table", i, t.Table)
		}
		q := s + "." + n
		if seen[q] {
			return fmt.Errorf("tables[%d]: table %s is selected twice", i, q)
		}
		seen[q] = true
		for _, ct := range t.Types {
			if ct < Insert || ct > Read {
				return fmt.Errorf("tables[%d]: table %s: unknown change type %d", i, q, ct)
			}
		}
		for j, c := range t.Columns {
			if c == "" {
				return fmt.Errorf("tables[%d]: table %s: columns[%d] is empty", i, q, j)
			}
		}
	}
	if len(tables) == 0 {
		return errors.New("no tables: name at least one")
	}
	return nil
}
