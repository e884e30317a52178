// Package meter rewrites a WebAssembly module so that it meters its own
// work: a deterministic fuel count, and regular calls out to the host at
// which the host can end the call (its fuel spent, its deadline passed,
// its context done) and at which the Go runtime can preempt it.
//
// The rewrite adds two mutable i64 globals, exported as [FuelExport] and
// [LimitExport], one imported function, [ImportModule].[ImportCheckpoint]
// of type () -> (), and a check at the entry of every function and the
// head of every loop:
//
//	fuel = fuel - cost
//	if fuel < limit { checkpoint() }
//
// where cost is the number of instructions of the function or loop body
// outside its nested loops: an upper bound of the instructions one pass
// runs before it reaches the next check. The same input therefore always
// costs the same fuel. The host sets fuel to the call's budget and limit
// to where it wants the next checkpoint; at the checkpoint it either ends
// the call (by panicking out of it) or sets the next limit. Fuel below 0
// means the budget is spent, so a limit never below 0 makes the
// checkpoint see that.
//
// Why calls out at all: wazero's compiled code cannot be preempted, and
// a Go stop-the-world (every garbage collection starts with one) waits
// for every goroutine, so a guest that loops without leaving native code
// would freeze the whole process. The checkpoint is a Go function: a
// safe point, reached every limit's worth of fuel.
//
// The import comes after every other import, so the index of every
// function defined in the module grows by one: calls, ref.func, exports,
// the start function, element segments, global initialisers and the name
// section are renumbered. DWARF and relocation sections, which describe
// code offsets the rewrite moves, are dropped.
package meter

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Names the rewrite adds. The colons keep them out of the names any
// source language gives its exports and imports.
const (
	FuelExport       = "aegis:fuel"
	LimitExport      = "aegis:fuel_limit"
	ImportModule     = "aegis:meter"
	ImportCheckpoint = "checkpoint"
)

// Version identifies the rewrite; a cache of rewritten modules keys on it.
const Version = 2

// ErrUnsupported is wrapped by the errors of a module that uses a feature
// beyond WebAssembly 2.0 (threads, tail calls, exceptions, 64-bit
// memories, ...).
var ErrUnsupported = errors.New("not supported")

// Error is a module the rewriter cannot instrument.
type Error struct {
	Section  string // the section at fault
	Function int    // the index of the function at fault in the code section; -1 if none
	Offset   int    // the byte offset in the module
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("metering")
	if e.Function >= 0 {
		fmt.Fprintf(&b, " function[%d]", e.Function)
	} else if e.Section != "" {
		fmt.Fprintf(&b, " section[%s]", e.Section)
	}
	fmt.Fprintf(&b, " at byte %#x: %v", e.Offset, e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Info describes an instrumented module.
type Info struct {
	Functions int // function bodies instrumented
	Loops     int // loops instrumented
	Size      int // size of the rewritten module
}

const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secElement  = 9
	secCode     = 10
	secDataCnt  = 12
	headerBytes = 8
)

// order is the position of each known section in a module, so sections
// can be inserted where they belong when absent.
var order = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

var sectionNames = map[byte]string{
	0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
	7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "data count", 13: "tag",
}

// rewrite is what the passes over one module share.
type rewrite struct {
	types           uint32   // types defined: the checkpoint's type is the next
	params          []uint32 // the number of parameters of each type
	funcTypes       []uint32 // the type of each function the module defines
	importedFuncs   uint32   // the checkpoint's function index
	importedGlobals uint32
	definedGlobals  uint32
	fuel, limit     uint32 // global indices
	initFuel        int64
	initLimit       int64
	info            Info
}

// fn maps a function index of the original module to the rewritten one.
func (rw *rewrite) fn(i uint32) uint32 {
	if i >= rw.importedFuncs {
		return i + 1
	}
	return i
}

type section struct {
	id   byte
	body []byte
	at   int // the body's offset in the module
}

// Instrument returns the module wasm rewritten to meter itself. fuel and
// limit are the globals' initial values: what a start function, which
// runs during instantiation before the host can set them, runs with.
func Instrument(wasm []byte, fuel, limit int64) ([]byte, Info, error) {
	rw := &rewrite{initFuel: fuel, initLimit: limit}
	header := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	if !bytes.HasPrefix(wasm, header) {
		return nil, rw.info, &Error{Function: -1, Err: errors.New("not a WebAssembly 1.0 binary module (bad magic number or version)")}
	}
	sections, err := split(wasm)
	if err != nil {
		return nil, rw.info, err
	}
	for _, s := range sections {
		var err error
		r := &reader{b: s.body}
		switch s.id {
		case secType:
			rw.params, err = countTypes(s.body)
			rw.types = uint32(len(rw.params))
		case 3: // function
			n := r.count()
			for i := uint32(0); i < n && r.err == nil; i++ {
				rw.funcTypes = append(rw.funcTypes, r.u32())
			}
		case secImport:
			rw.importedFuncs, rw.importedGlobals, err = countImports(s.body)
		case secGlobal:
			rw.definedGlobals = r.count()
		case secExport:
			err = checkExports(s.body)
		}
		if err == nil {
			err = r.err
		}
		if err != nil {
			return nil, rw.info, &Error{Section: sectionNames[s.id], Function: -1, Offset: s.at, Err: err}
		}
	}
	rw.fuel = rw.importedGlobals + rw.definedGlobals
	rw.limit = rw.fuel + 1

	out := make([]byte, 0, len(wasm)+len(wasm)/8+128)
	out = append(out, header...)
	// The sections the rewrite must change; those the module lacks are
	// made empty, in their place.
	must := []byte{secType, secImport, secGlobal, secExport}
	emitMissing := func(upTo int) {
		for len(must) > 0 && order[must[0]] < upTo {
			out = appendSection(out, must[0], rw.section(must[0], nil))
			must = must[1:]
		}
	}
	for _, s := range sections {
		if s.id == secCustom {
			body, keep, err := rw.custom(s.body)
			if err != nil {
				return nil, rw.info, &Error{Section: "custom", Function: -1, Offset: s.at, Err: err}
			}
			if keep {
				out = appendSection(out, secCustom, body)
			}
			continue
		}
		emitMissing(order[s.id])
		if len(must) > 0 && must[0] == s.id {
			must = must[1:]
		}
		body, err := rw.rewriteSection(s)
		if err != nil {
			return nil, rw.info, err
		}
		out = appendSection(out, s.id, body)
	}
	emitMissing(len(order) + 1)
	rw.info.Size = len(out)
	return out, rw.info, nil
}

// split reads the sections of a module and checks their order and that
// the counts they start with fit in them.
func split(wasm []byte) ([]section, error) {
	var sections []section
	r := &reader{b: wasm, off: headerBytes}
	last := 0
	for !r.done() {
		at := r.off
		id := r.byte()
		size := int(r.u32())
		bodyAt := r.off
		body := r.bytes(size)
		if r.err != nil {
			return nil, &Error{Section: sectionNames[id], Function: -1, Offset: at, Err: r.err}
		}
		if id != secCustom {
			// Every section but start and data count is a vector: a count
			// larger than its bytes is refused here, before a decoder
			// allocates by it.
			if cr := (&reader{b: body}); id != secStart && id != secDataCnt {
				if cr.count(); cr.err != nil {
					return nil, &Error{Section: sectionNames[id], Function: -1, Offset: bodyAt, Err: cr.err}
				}
			}
			pos, ok := order[id]
			if !ok {
				return nil, &Error{Function: -1, Offset: at, Err: fmt.Errorf("unknown section id %d", id)}
			}
			if pos <= last {
				return nil, &Error{Section: sectionNames[id], Function: -1, Offset: at, Err: errors.New("section out of order or repeated")}
			}
			last = pos
		}
		sections = append(sections, section{id, body, bodyAt})
	}
	return sections, nil
}

// rewriteSection returns the new body of a non-custom section.
func (rw *rewrite) rewriteSection(s section) ([]byte, error) {
	var fail error
	var body []byte
	switch s.id {
	case secType, secImport, secGlobal, secExport:
		body = rw.section(s.id, s.body)
		if body == nil {
			fail = errors.New("malformed")
		}
	case secStart:
		r := &reader{b: s.body}
		body = appendU32(nil, rw.fn(r.u32()))
		fail = r.err
	case secElement:
		body, fail = rw.elements(s.body)
	case secCode:
		return rw.code(s.body, s.at)
	default:
		return s.body, nil
	}
	if fail != nil {
		return nil, &Error{Section: sectionNames[s.id], Function: -1, Offset: s.at, Err: fail}
	}
	return body, nil
}

// section returns the new body of a type, import, global or export
// section whose body is body (nil when the module has none), or nil when
// body is malformed.
func (rw *rewrite) section(id byte, body []byte) []byte {
	r := &reader{b: body}
	var n uint32
	if body != nil {
		n = r.count()
	}
	out := appendU32(nil, n+map[byte]uint32{secType: 1, secImport: 1, secGlobal: 2, secExport: 2}[id])
	switch id {
	case secType:
		out = append(out, r.b[r.off:]...)
		out = append(out, 0x60, 0x00, 0x00) // () -> ()
	case secImport:
		out = append(out, r.b[r.off:]...)
		out = appendName(out, ImportModule)
		out = appendName(out, ImportCheckpoint)
		out = append(out, 0x00) // a function
		out = appendU32(out, rw.types)
	case secGlobal:
		for i := uint32(0); i < n && r.err == nil; i++ {
			at := r.off
			valType(r)
			r.byte()
			out = append(out, r.b[at:r.off]...)
			out = rw.constExpr(r, out)
		}
		out = append(out, 0x7e, 0x01, 0x42) // (mut i64) (i64.const initFuel)
		out = appendS64(out, rw.initFuel)
		out = append(out, 0x0b, 0x7e, 0x01, 0x42) // (mut i64) (i64.const initLimit)
		out = appendS64(out, rw.initLimit)
		out = append(out, 0x0b)
	case secExport:
		for i := uint32(0); i < n && r.err == nil; i++ {
			out = appendName(out, r.name())
			kind := r.byte()
			index := r.u32()
			if kind == 0x00 {
				index = rw.fn(index)
			}
			out = appendU32(append(out, kind), index)
		}
		out = appendName(out, FuelExport)
		out = appendU32(append(out, 0x03), rw.fuel)
		out = appendName(out, LimitExport)
		out = appendU32(append(out, 0x03), rw.limit)
	}
	if r.err != nil || (id == secGlobal || id == secExport) && r.off != len(r.b) {
		return nil
	}
	return out
}

// constExpr copies a constant expression, renumbering ref.func.
func (rw *rewrite) constExpr(r *reader, out []byte) []byte {
	for r.err == nil {
		at := r.off
		c, f := instruction(r)
		if c == funcIndex {
			out = appendU32(append(out, r.b[at]), rw.fn(f))
			continue
		}
		out = append(out, r.b[at:r.off]...)
		if c == end {
			break
		}
	}
	return out
}

// elements rewrites the element section's function indices.
func (rw *rewrite) elements(body []byte) ([]byte, error) {
	r := &reader{b: body}
	n := r.count()
	out := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		out = appendU32(out, flags)
		if flags > 7 {
			return nil, fmt.Errorf("element segment %d has unknown flags %d", i, flags)
		}
		if flags&0x02 != 0 && flags&0x01 == 0 { // an explicit table index
			out = appendU32(out, r.u32())
		}
		if flags&0x01 == 0 { // active: an offset
			out = rw.constExpr(r, out)
		}
		if flags&0x03 != 0 { // an element kind or reference type
			out = append(out, r.byte())
		}
		m := r.count()
		out = appendU32(out, m)
		for j := uint32(0); j < m && r.err == nil; j++ {
			if flags&0x04 != 0 {
				out = rw.constExpr(r, out)
			} else {
				out = appendU32(out, rw.fn(r.u32()))
			}
		}
	}
	if r.err == nil && r.off != len(body) {
		r.fail(errors.New("bytes after the last segment"))
	}
	return out, r.err
}

// custom returns the body of a custom section as it must be after the
// rewrite, and whether to keep it at all: DWARF, source maps and
// relocations describe code offsets the rewrite moves, and a name
// section that does not parse is dropped rather than left wrong. A
// section without a readable name makes the module invalid.
func (rw *rewrite) custom(body []byte) ([]byte, bool, error) {
	r := &reader{b: body}
	name := r.name()
	switch {
	case r.err != nil:
		return nil, false, fmt.Errorf("name: %w", r.err)
	case strings.HasPrefix(name, ".debug_") || name == "sourceMappingURL" ||
		name == "external_debug_info" || strings.HasPrefix(name, "reloc.") || name == "linking":
		return nil, false, nil
	case name == "name":
		out, err := rw.names(r, body[:r.off])
		return out, err == nil, nil
	}
	return body, true, nil
}

// names rewrites the function indices of a name section: function names
// (subsection 1), local names (2) and label names (3).
func (rw *rewrite) names(r *reader, prefix []byte) ([]byte, error) {
	out := append([]byte(nil), prefix...)
	for !r.done() {
		id := r.byte()
		sub := &reader{b: r.bytes(int(r.u32()))}
		if r.err != nil {
			return nil, r.err
		}
		if id < 1 || id > 3 {
			out = appendSection(out, id, sub.b)
			continue
		}
		var b []byte
		n := sub.count()
		b = appendU32(b, n)
		for i := uint32(0); i < n && sub.err == nil; i++ {
			b = appendU32(b, rw.fn(sub.u32()))
			if id == 1 {
				b = appendName(b, sub.name())
				continue
			}
			m := sub.count()
			b = appendU32(b, m)
			for j := uint32(0); j < m && sub.err == nil; j++ {
				b = appendU32(b, sub.u32())
				b = appendName(b, sub.name())
			}
		}
		if sub.err != nil || sub.off != len(sub.b) {
			return nil, errors.New("malformed name subsection")
		}
		out = appendSection(out, id, b)
	}
	return out, r.err
}

// countTypes reads the type section and returns the number of
// parameters of each type. It checks the counts of parameters and results
// against the bytes, which wazero v1.12 allocates by before it reads
// them.
func countTypes(body []byte) ([]uint32, error) {
	r := &reader{b: body}
	n := r.count()
	params := make([]uint32, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 && r.err == nil {
			return nil, fmt.Errorf("type %d is not a function type (0x%02x)", i, form)
		}
		for j := range 2 { // parameters, results
			m := r.count()
			r.bytes(int(m)) // one byte per value type: the compiler checks them
			if j == 0 {
				params = append(params, m)
			}
		}
	}
	return params, r.err
}

// countImports reads the import section and counts its functions and
// globals. A module that imports from the meter's own module is refused.
func countImports(body []byte) (funcs, globals uint32, err error) {
	r := &reader{b: body}
	n := r.count()
	for i := uint32(0); i < n && r.err == nil; i++ {
		if mod := r.name(); mod == ImportModule {
			return 0, 0, fmt.Errorf("the module imports from %q, a module reserved for the host's metering", mod)
		}
		r.name()
		switch kind := r.byte(); kind {
		case 0x00: // function: type index
			r.u32()
			funcs++
		case 0x01: // table: reference type, limits
			r.byte()
			limits(r)
		case 0x02: // memory: limits
			limits(r)
		case 0x03: // global: value type, mutability
			valType(r)
			r.byte()
			globals++
		case 0x04: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			r.fail(fmt.Errorf("import %d has unknown kind 0x%02x", i, kind))
		}
	}
	return funcs, globals, r.err
}

func limits(r *reader) {
	flags := r.byte()
	if flags&0x04 != 0 {
		r.fail(fmt.Errorf("64-bit memories are %w", ErrUnsupported))
		return
	}
	r.u32()
	if flags&0x01 != 0 {
		r.u32()
	}
}

// checkExports refuses a module that already exports the names the
// rewrite adds.
func checkExports(body []byte) error {
	r := &reader{b: body}
	n := r.count()
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.name()
		r.byte()
		r.u32()
		if name == FuelExport || name == LimitExport {
			return fmt.Errorf("the module exports %q, a name reserved for the host's metering", name)
		}
	}
	return r.err
}

func appendName(b []byte, s string) []byte {
	return append(appendU32(b, uint32(len(s))), s...)
}
