package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aegis-streaming/aegis/internal/jsonstr"
	"github.com/valyala/fastjson"
)

// AggregateFn is a built-in aggregate function, computed by [Functions].
type AggregateFn uint8

// The built-in aggregate functions. The numbers are stable: they are part of
// the accumulator encoding.
const (
	// Count counts the events. It reads no field. An empty window counts 0.
	Count AggregateFn = iota
	// Sum adds a numeric field. An empty window sums to 0.
	Sum
	// Avg is the arithmetic mean of a numeric field, a float64; null for an
	// empty window.
	Avg
	// Min is the smallest value of a numeric field; null for an empty
	// window.
	Min
	// Max is the largest value of a numeric field; null for an empty
	// window.
	Max
)

var aggregateFnNames = [...]string{
	Count: "count",
	Sum:   "sum",
	Avg:   "avg",
	Min:   "min",
	Max:   "max",
}

// String returns the stable name of the function: "count", "sum", "avg",
// "min" or "max".
func (f AggregateFn) String() string {
	return enumName(aggregateFnNames[:], int(f), "aggregate function")
}

// ParseAggregateFn is the inverse of [AggregateFn.String].
func ParseAggregateFn(s string) (AggregateFn, error) {
	v, err := parseEnum(aggregateFnNames[:], s, "aggregate function")
	return AggregateFn(v), err
}

// AggregateFunction is one function that [Functions] computes.
type AggregateFunction struct {
	Fn AggregateFn
	// Field is the dotted path of a member of the events' JSON data object
	// ("amount_cents", "order.total"), which must hold a JSON number. Count
	// takes none.
	Field string
	// As is the member of the result that holds the value. It defaults to
	// "count" for Count and to "<fn>_<field>" with dots turned into
	// underscores for the others ("sum_amount_cents", "avg_order_total").
	As string
}

// Functions returns an Aggregator that computes fns over each group and
// window, in one pass over the events, reading each event's data once.
//
// Numbers: Sum, Min and Max stay integers (int64) as long as every value
// they saw was one (a JSON number with no fraction or exponent that fits
// in int64) and a Sum does not overflow int64; otherwise they are float64.
// Avg is always a float64. An event whose data is not a JSON object or
// whose field is missing or not a number fails alone (an [EventError]
// naming the field) and counts for none of the functions.
//
// Finish appends one event per group and window: Type emitType and as Data
// a JSON object whose members are, in this order, "key" (the group key),
// "window_start" and "window_end" (RFC 3339 with nanoseconds, UTC), then
// one member per function, named As, in the order of fns:
//
//	{"key":"order.paid","window_start":"2026-11-26T12:00:00Z","window_end":"2026-11-26T12:00:01Z","count":250,"sum_amount_cents":1979750}
//
// Count and Sum of a window without events are 0; Avg, Min and Max are
// null. A float result that is not finite (a sum that overflowed float64)
// is null. Source, Time, ID and metadata are left to the [Aggregation].
//
// The accumulator is a fixed-size little-endian binary record, the same
// size for every group and window of one configuration (2 + the sum of
// the function sizes below):
//
//	byte 0      format version, 1
//	byte 1      number of functions, n
//	then, for each function in order, its code (the AggregateFn, 1 byte)
//	followed by its state:
//	  count     u64 number of events                              (8 bytes)
//	  sum       u8 kind, then the sum: i64 or f64 bits            (9 bytes)
//	  avg       u64 number of values, f64 bits of their sum       (16 bytes)
//	  min, max  u8 kind, then the value: i64 or f64 bits          (9 bytes)
//
// where kind is 0 for "no value yet", 1 for an int64 and 2 for a float64.
// An empty accumulator is the initial state; an accumulator of another
// size, version or function list is an error (it belongs to another
// configuration).
//
// The Aggregator is safe for concurrent use.
func Functions(emitType string, fns ...AggregateFunction) (Aggregator, error) {
	typ := EventType(emitType)
	if err := typ.Validate(); err != nil {
		return nil, fmt.Errorf("functions: emit type: %w", err)
	}
	if len(fns) == 0 {
		return nil, fmt.Errorf("functions[%s]: no functions", emitType)
	}
	if len(fns) > 255 {
		return nil, fmt.Errorf("functions[%s]: %d functions, the limit is 255", emitType, len(fns))
	}
	f := &functions{typ: typ, size: 2}
	names := map[string]bool{"key": true, "window_start": true, "window_end": true}
	fieldIndex := map[string]int{}
	for i, spec := range fns {
		bf := builtinFn{fn: spec.Fn, field: -1, as: spec.As}
		what := fmt.Sprintf("functions[%s] function[%d]", emitType, i)
		switch spec.Fn {
		case Count:
			if spec.Field != "" {
				return nil, fmt.Errorf("%s: count takes no field (got %q)", what, spec.Field)
			}
			if bf.as == "" {
				bf.as = "count"
			}
		case Sum, Avg, Min, Max:
			path, err := parseMemberPath(spec.Field)
			if err != nil {
				return nil, fmt.Errorf("%s: %s field: %w", what, spec.Fn, err)
			}
			k, ok := fieldIndex[spec.Field]
			if !ok {
				k = len(f.fields)
				fieldIndex[spec.Field] = k
				f.fields = append(f.fields, path)
			}
			bf.field = k
			if bf.as == "" {
				bf.as = spec.Fn.String() + "_" + strings.ReplaceAll(spec.Field, ".", "_")
			}
		default:
			return nil, fmt.Errorf("%s: unknown %v", what, spec.Fn)
		}
		if !utf8.ValidString(bf.as) {
			return nil, fmt.Errorf("%s: name %q is not valid UTF-8", what, bf.as)
		}
		if names[bf.as] {
			return nil, fmt.Errorf("%s: name %q is already used in the result", what, bf.as)
		}
		names[bf.as] = true
		bf.member = jsonstr.Append([]byte{','}, bf.as)
		bf.member = append(bf.member, ':')
		f.size += 1 + bf.fn.stateSize()
		f.fns = append(f.fns, bf)
	}
	return f, nil
}

// functions is the Aggregator that Functions returns.
type functions struct {
	typ    EventType
	fns    []builtinFn
	fields [][]string // the distinct field paths, read once per event
	size   int        // of an encoded accumulator
}

type builtinFn struct {
	fn     AggregateFn
	field  int    // index into functions.fields; -1 for Count
	as     string // the result member's name
	member []byte // `,"<as>":`
}

func (f AggregateFn) stateSize() int {
	switch f {
	case Count:
		return 8
	case Avg:
		return 16
	}
	return 9
}

// The kinds of a numeric state.
const (
	numNone  = 0
	numInt   = 1
	numFloat = 2
)

// number is a numeric value or state: an int64 or a float64, or none yet.
type number struct {
	kind uint8
	i    int64
	f    float64
}

func (n number) float() float64 {
	if n.kind == numInt {
		return float64(n.i)
	}
	return n.f
}

// fnState is one function's state.
type fnState struct {
	num number // sum, min, max
	n   uint64 // count, avg
	sum float64
}

// Accumulate implements [Aggregator].
func (f *functions) Accumulate(ctx context.Context, key string, acc []byte, in []Event) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var stBuf [8]fnState
	st, err := f.decode(acc, stBuf[:0])
	if err != nil {
		return nil, err
	}
	var r *jsonReader
	var valBuf [8]number
	vals := valBuf[:0]
	if len(f.fields) > 0 {
		r = getJSONReader()
		defer putJSONReader(r)
		if len(f.fields) > len(valBuf) {
			vals = make([]number, len(f.fields))
		} else {
			vals = valBuf[:len(f.fields)]
		}
	}
	var errs *EventErrors
	for i := range in {
		if r != nil {
			if err := f.read(r, &in[i], vals); err != nil {
				if errs == nil {
					errs = &EventErrors{Step: "functions[" + string(f.typ) + "]"}
				}
				errs.Errors = append(errs.Errors, EventError{Index: i, Message: err.Error()})
				continue
			}
		}
		for j := range f.fns {
			fn := &f.fns[j]
			s := &st[j]
			switch fn.fn {
			case Count:
				s.n++
			case Sum:
				s.num = addNumbers(s.num, vals[fn.field])
			case Avg:
				s.n++
				s.sum += vals[fn.field].float()
			case Min:
				s.num = minMax(s.num, vals[fn.field], false)
			case Max:
				s.num = minMax(s.num, vals[fn.field], true)
			}
		}
	}
	out := f.encode(st)
	if errs != nil {
		return out, errs
	}
	return out, nil
}

// read reads e's fields into vals.
func (f *functions) read(r *jsonReader, e *Event, vals []number) error {
	if err := r.load(e.Data); err != nil {
		return err
	}
	for k, path := range f.fields {
		t, b, err := r.member(path)
		if err != nil {
			return err
		}
		if t != fastjson.TypeNumber {
			return fmt.Errorf("%s is %s, not a number", dataPath(path), jsonTypeName(t))
		}
		v, err := parseNumber(b)
		if err != nil {
			return fmt.Errorf("%s: %w", dataPath(path), err)
		}
		vals[k] = v
	}
	return nil
}

// parseNumber reads a JSON number: an int64 when it has no fraction or
// exponent and fits, else a float64.
func parseNumber(b []byte) (number, error) {
	if isJSONInteger(b) {
		if i, err := strconv.ParseInt(string(b), 10, 64); err == nil {
			return number{kind: numInt, i: i}, nil
		}
	}
	x, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		return number{}, fmt.Errorf("%s is not a finite float64", b)
	}
	return number{kind: numFloat, f: x}, nil
}

// isJSONInteger reports whether the JSON number b has no fraction and no
// exponent.
func isJSONInteger(b []byte) bool {
	for _, c := range b {
		if c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}

// addNumbers adds two numbers, staying an int64 while both are and the sum
// does not overflow.
func addNumbers(a, b number) number {
	switch {
	case b.kind == numNone:
		return a
	case a.kind == numNone:
		return b
	case a.kind == numInt && b.kind == numInt:
		if s, ok := addNoOverflow(a.i, b.i); ok {
			return number{kind: numInt, i: s}
		}
	}
	return number{kind: numFloat, f: a.float() + b.float()}
}

// minMax returns the smaller of a and b, or the larger when max is set;
// the result is a float64 as soon as either is one.
func minMax(a, b number, max bool) number {
	switch {
	case b.kind == numNone:
		return a
	case a.kind == numNone:
		return b
	case a.kind == numInt && b.kind == numInt:
		if (b.i > a.i) == max && b.i != a.i {
			return b
		}
		return a
	}
	x, y := a.float(), b.float()
	if (y > x) == max && y != x {
		x = y
	}
	return number{kind: numFloat, f: x}
}

// Merge implements [Aggregator].
func (f *functions) Merge(ctx context.Context, key string, a, b []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var aBuf, bBuf [8]fnState
	sa, err := f.decode(a, aBuf[:0])
	if err != nil {
		return nil, err
	}
	sb, err := f.decode(b, bBuf[:0])
	if err != nil {
		return nil, err
	}
	for j := range f.fns {
		x, y := &sa[j], &sb[j]
		switch f.fns[j].fn {
		case Count:
			x.n += y.n
		case Sum:
			x.num = addNumbers(x.num, y.num)
		case Avg:
			x.n += y.n
			x.sum += y.sum
		case Min:
			x.num = minMax(x.num, y.num, false)
		case Max:
			x.num = minMax(x.num, y.num, true)
		}
	}
	return f.encode(sa), nil
}

// Finish implements [Aggregator].
func (f *functions) Finish(ctx context.Context, key string, acc []byte, w Window, out []Event) ([]Event, error) {
	var stBuf [8]fnState
	st, err := f.decode(acc, stBuf[:0])
	if err != nil {
		return out, err
	}
	b := make([]byte, 0, 96+len(key)+24*len(f.fns))
	b = append(b, `{"key":`...)
	b = jsonstr.Append(b, key)
	b = append(b, `,"window_start":"`...)
	b = time.Unix(0, w.Start).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","window_end":"`...)
	b = time.Unix(0, w.End).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	for j := range f.fns {
		fn := &f.fns[j]
		s := &st[j]
		b = append(b, fn.member...)
		switch fn.fn {
		case Count:
			b = strconv.AppendUint(b, s.n, 10)
		case Sum:
			if s.num.kind == numNone {
				b = append(b, '0')
			} else {
				b = appendNumber(b, s.num)
			}
		case Avg:
			if s.n == 0 {
				b = append(b, "null"...)
			} else {
				b = appendJSONFloat(b, s.sum/float64(s.n))
			}
		case Min, Max:
			b = appendNumber(b, s.num)
		}
	}
	b = append(b, '}')
	return append(out, Event{Type: f.typ, Data: EventData{kind: KindJSON, raw: b}}), nil
}

func appendNumber(b []byte, n number) []byte {
	switch n.kind {
	case numInt:
		return strconv.AppendInt(b, n.i, 10)
	case numFloat:
		return appendJSONFloat(b, n.f)
	}
	return append(b, "null"...)
}

// appendJSONFloat formats f as encoding/json does; a value that is not
// finite is null.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const accVersion = 1

// decode appends the states that acc holds (the initial ones for an empty
// acc) to st.
func (f *functions) decode(acc []byte, st []fnState) ([]fnState, error) {
	for range f.fns {
		st = append(st, fnState{})
	}
	if len(acc) == 0 {
		return st, nil
	}
	if len(acc) != f.size || acc[0] != accVersion || int(acc[1]) != len(f.fns) {
		return st, fmt.Errorf("functions[%s]: the accumulator (%d bytes) is not one of this configuration (%d bytes, version %d, %d functions)", f.typ, len(acc), f.size, accVersion, len(f.fns))
	}
	p := acc[2:]
	for j := range f.fns {
		fn := f.fns[j].fn
		if p[0] != byte(fn) {
			return st, fmt.Errorf("functions[%s]: the accumulator holds %v where this configuration has %v", f.typ, AggregateFn(p[0]), fn)
		}
		p = p[1:]
		s := &st[j]
		switch fn {
		case Count:
			s.n = binary.LittleEndian.Uint64(p)
		case Avg:
			s.n = binary.LittleEndian.Uint64(p)
			s.sum = math.Float64frombits(binary.LittleEndian.Uint64(p[8:]))
		default:
			s.num.kind = p[0]
			bits := binary.LittleEndian.Uint64(p[1:])
			switch s.num.kind {
			case numNone:
			case numInt:
				s.num.i = int64(bits)
			case numFloat:
				s.num.f = math.Float64frombits(bits)
			default:
				return st, fmt.Errorf("functions[%s]: the accumulator has an unknown number kind %d", f.typ, s.num.kind)
			}
		}
		p = p[fn.stateSize():]
	}
	return st, nil
}

// encode returns the accumulator for st.
func (f *functions) encode(st []fnState) []byte {
	b := make([]byte, 2, f.size)
	b[0], b[1] = accVersion, byte(len(f.fns))
	for j := range f.fns {
		fn := f.fns[j].fn
		s := &st[j]
		b = append(b, byte(fn))
		switch fn {
		case Count:
			b = binary.LittleEndian.AppendUint64(b, s.n)
		case Avg:
			b = binary.LittleEndian.AppendUint64(b, s.n)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.sum))
		default:
			b = append(b, s.num.kind)
			var bits uint64
			switch s.num.kind {
			case numInt:
				bits = uint64(s.num.i)
			case numFloat:
				bits = math.Float64bits(s.num.f)
			}
			b = binary.LittleEndian.AppendUint64(b, bits)
		}
	}
	return b
}
