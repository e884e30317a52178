package cdc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"cel.dev/cel-go/cel"
)

// filterCostLimit bounds the work of one evaluation of a row filter (CEL's
// cost units, roughly one per operation): a filter is a predicate over a
// row, not a program, and one that loops over a large list must not stall
// the intake.
const filterCostLimit = 100_000

// rule is a table's compiled TableConfig.
type rule struct {
	table   string // schema.table
	types   uint8  // bit t set: keep ChangeType t; 0 keeps all
	columns []string
	expr    string
	prog    cel.Program
}

// rules selects and shapes changes by table.
type rules struct {
	byTable map[string]*rule
}

// filterEnv is the CEL environment of row filters: the variables that
// TableConfig.Filter documents.
func filterEnv() (*cel.Env, error) {
	row := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		cel.Variable("op", cel.StringType),
		cel.Variable("schema", cel.StringType),
		cel.Variable("table", cel.StringType),
		cel.Variable("row", row),
		cel.Variable("before", row),
		cel.Variable("after", row),
		cel.CrossTypeNumericComparisons(true),
	)
}

// compileTables checks and compiles tables (def is the default schema).
func compileTables(tables []TableConfig, def string) (*rules, error) {
	if err := validateTables(tables, def); err != nil {
		return nil, err
	}
	rs := &rules{byTable: make(map[string]*rule, len(tables))}
	var env *cel.Env
	for i, t := range tables {
		s, n := schemaTable(t.Table, def)
		r := &rule{table: s + "." + n, columns: slices.Clone(t.Columns), expr: t.Filter}
		for _, ct := range t.Types {
			r.types |= 1 << ct
		}
		if t.Filter != "" {
			if env == nil {
				var err error
				if env, err = filterEnv(); err != nil {
					return nil, fmt.Errorf("row filter: %w", err)
				}
			}
			prog, err := compileFilter(env, t.Filter)
			if err != nil {
				return nil, fmt.Errorf("tables[%d]: table %s: filter %q: %w", i, r.table, t.Filter, err)
			}
			r.prog = prog
		}
		rs.byTable[r.table] = r
	}
	return rs, nil
}

// compileFilter compiles a row filter in env into a program whose result
// is a bool.
func compileFilter(env *cel.Env, expr string) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		return nil, fmt.Errorf("is %s, want a bool", ast.OutputType())
	}
	return env.Program(ast, cel.CostLimit(filterCostLimit))
}

// CompileFilter checks a row filter ([TableConfig.Filter]) as a source
// would when it starts: it must parse, type-check and give a bool. The
// error says what is wrong, with the line and column in the expression.
func CompileFilter(expr string) error {
	env, err := filterEnv()
	if err != nil {
		return fmt.Errorf("row filter: %w", err)
	}
	_, err = compileFilter(env, expr)
	return err
}

// tables returns the selected tables' names (schema.table), sorted.
func (rs *rules) tables() []string { return slices.Sorted(maps.Keys(rs.byTable)) }

// lookup returns the rule of schema.table, nil when the table is not
// selected.
func (rs *rules) lookup(schema, table string) *rule {
	return rs.byTable[schema+"."+table]
}

// apply says whether c is kept, and projects its images when it is.
func (r *rule) apply(c *ChangeEvent) (bool, error) {
	if r.types != 0 && r.types&(1<<c.Type) == 0 {
		return false, nil
	}
	if r.prog != nil {
		keep, err := r.eval(c)
		if err != nil || !keep {
			return false, err
		}
	}
	if r.columns != nil {
		var err error
		if c.Before, err = r.project(c.Before); err == nil {
			c.After, err = r.project(c.After)
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

func (r *rule) eval(c *ChangeEvent) (bool, error) {
	before, err := rowValues(c.Before)
	if err != nil {
		return false, r.evalErr(c, err)
	}
	after, err := rowValues(c.After)
	if err != nil {
		return false, r.evalErr(c, err)
	}
	row := after
	if c.Type == Delete {
		row = before
	}
	out, _, err := r.prog.Eval(map[string]any{
		"op": c.Type.Op(), "schema": c.Source.Schema, "table": c.Source.Table,
		"row": row, "before": before, "after": after,
	})
	if err != nil {
		return false, r.evalErr(c, err)
	}
	keep, ok := out.Value().(bool)
	if !ok {
		return false, r.evalErr(c, fmt.Errorf("result is %v (%s), want a bool", out.Value(), out.Type().TypeName()))
	}
	return keep, nil
}

func (r *rule) evalErr(c *ChangeEvent, err error) error {
	return fmt.Errorf("table %s: filter %q on the %s at %s: %w", r.table, r.expr, c.Type, c.Position, err)
}

func (r *rule) project(row Row) (Row, error) {
	if row == nil {
		return nil, nil
	}
	out := make(Row, 0, len(r.columns))
	for _, name := range r.columns {
		v, ok := row.Get(name)
		if !ok {
			return nil, fmt.Errorf("table %s: column %q of columns is not in the table's changes (it has %s)", r.table, name, columnNames(row))
		}
		out = append(out, Column{Name: name, Value: v})
	}
	return out, nil
}

func columnNames(r Row) string {
	b := make([]byte, 0, 64)
	for i, c := range r {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, c.Name...)
	}
	return string(b)
}

// rowValues returns a row's columns as Go values for CEL: integral JSON
// numbers as int64, others as float64.
func rowValues(r Row) (map[string]any, error) {
	m := make(map[string]any, len(r))
	for _, c := range r {
		v, err := jsonValue(c.Value)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		m[c.Name] = v
	}
	return m, nil
}

func jsonValue(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return numbers(v), nil
}

// numbers replaces the json.Numbers in v by int64 or float64.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !math.IsInf(f, 0) {
			return string(x)
		}
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}
