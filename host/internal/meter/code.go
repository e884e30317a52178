package meter

import (
	"errors"
	"fmt"
)

// maxLocals bounds the locals of one function, as browsers' engines do:
// wazero v1.12 sizes its own tables by the declared count (and panics on
// a count that overflows), so the rewriter refuses absurd ones first.
const maxLocals = 50000

var errTooManyLocals = errors.New("too many locals")

// What is inserted into a function body, and where.
type kind uint8

const (
	// entry, at the start of the body: fuel -= cost, then the check.
	entry kind = iota
	// loopHead, after a loop's block type: fuel -= acc + cost, acc = 0,
	// then the check.
	loopHead
	// segment, at the start of straight-line code: acc += cost.
	segment
	// flush, before the function returns: fuel -= acc, acc = 0 (no
	// check: the caller's next check, or the host after the call, sees the
	// fuel).
	flush
)

type insert struct {
	at   int // offset in the function body
	kind kind
	cost int64
}

// code rewrites the code section: every function body counts the
// instructions it runs (see [rewrite.plan]) and checks its fuel at its
// entry and at the head of each of its loops, and its calls and ref.func
// instructions are renumbered. at is the offset of the section's body in
// the module, for errors.
func (rw *rewrite) code(body []byte, at int) ([]byte, error) {
	r := &reader{b: body}
	n := r.count()
	if int(n) != len(rw.funcTypes) {
		return nil, &Error{Section: "code", Function: -1, Offset: at, Err: fmt.Errorf("%d function bodies for %d functions", n, len(rw.funcTypes))}
	}
	out := appendU32(make([]byte, 0, len(body)+len(body)/4), n)
	var plan []insert
	var fn []byte
	for i := 0; i < int(n); i++ {
		start := r.off
		size := int(r.u32())
		code := r.bytes(size)
		if r.err != nil {
			return nil, &Error{Section: "code", Function: i, Offset: at + start, Err: r.err}
		}
		t := rw.funcTypes[i]
		if int(t) >= len(rw.params) {
			return nil, &Error{Section: "code", Function: i, Offset: at + start, Err: fmt.Errorf("type index %d out of range", t)}
		}
		var err error
		var off int
		var acc uint32
		plan, acc, off, err = rw.plan(code, rw.params[t], plan[:0])
		if err != nil {
			return nil, &Error{Section: "code", Function: i, Offset: at + r.off - size + off, Err: err}
		}
		fn = rw.emit(fn[:0], code, plan, acc)
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
		rw.info.Functions++
		for _, in := range plan {
			if in.kind == loopHead {
				rw.info.Loops++
			}
		}
	}
	if r.err != nil {
		return nil, &Error{Section: "code", Function: -1, Offset: at, Err: r.err}
	}
	if r.off != len(body) {
		return nil, &Error{Section: "code", Function: -1, Offset: at + r.off, Err: errors.New("bytes after the last function body")}
	}
	return out, nil
}

// plan reads a function body whose function has params parameters, and
// returns what to insert, in order, and the index of the local the
// rewrite adds (acc, an i64 that counts the instructions run since the
// last time fuel was charged).
//
// Fuel is exact: every instruction run costs one. Each stretch of
// straight-line code (a segment: from the start of the body, or from
// after a loop, if, else, end, br, br_if, br_table, return or
// unreachable, up to and including the next of these; a block is entered
// only by falling into it, so it does not start one) adds its length to
// acc when it starts, which the compiler turns into a register add. acc
// is charged to the fuel global, and the fuel checked, at each loop head,
// so every iteration of every loop pays as it goes; it is charged before
// the function returns, so the count is exact when the call ends (the
// caller's next check, or the host after the outermost call, sees it: a
// call passes if and only if its budget covers it); the first segment of
// a function is charged, and checked, at once, so deep recursion pays
// too.
//
// On an error plan returns the offset in code where the faulty
// instruction starts.
func (rw *rewrite) plan(code []byte, params uint32, plan []insert) ([]insert, uint32, int, error) {
	r := &reader{b: code}
	groups := r.count()
	locals := uint64(params)
	for i := uint32(0); i < groups && r.err == nil; i++ {
		locals += uint64(r.u32())
		valType(r)
	}
	if r.err != nil {
		return plan, 0, r.off, fmt.Errorf("locals: %w", r.err)
	}
	if locals >= maxLocals {
		return plan, 0, 0, fmt.Errorf("%w: %d locals and parameters, at most %d", errTooManyLocals, locals, maxLocals-1)
	}
	plan = append(plan, insert{at: r.off, kind: entry})
	cur := 0       // the index in plan of the current segment
	depth := 0     // blocks open; a branch to label depth leaves the function
	first := true  // no control instruction yet
	calls := false // a call before the first control instruction
	next := func(k kind) {
		plan = append(plan, insert{at: r.off, kind: k})
		cur = len(plan) - 1
	}
	for {
		at := r.off
		op := byte(0)
		if at < len(code) {
			op = code[at]
		}
		c, _ := instruction(r)
		if r.err != nil {
			return plan, 0, at, r.err
		}
		plan[cur].cost++
		if first {
			switch {
			case c == funcIndex && op == 0x10, op == 0x11: // call, call_indirect
				calls = true
			case c == openLoop && !calls:
				// The body starts with a loop (every function Go
				// compiles does): its head checks at once, so the entry
				// need not; its cost joins the loop's first charge.
				plan[0].kind = segment
				first = false
			case c != plain && c != funcIndex, op == 0x0f || op == 0x0c || op == 0x0d || op == 0x0e || op == 0x00:
				first = false
			}
		}
		switch {
		case c == openBlock && op == 0x04: // if: the then arm runs or not
			depth++
			next(segment)
		case c == openBlock: // block: entered only by falling in, one segment with what precedes
			depth++
		case c == openLoop:
			depth++
			next(loopHead)
		case c == elseArm:
			next(segment)
		case c == end && depth == 0:
			if r.off != len(code) {
				return plan, 0, r.off, errors.New("instructions after the function's end")
			}
			plan = append(plan, insert{at: at, kind: flush})
			return plan, uint32(locals), 0, nil
		case c == end:
			depth--
			next(segment)
		case op == 0x0f: // return
			plan = append(plan, insert{at: at, kind: flush})
			next(segment)
		case op == 0x0c || op == 0x0d || op == 0x0e: // br, br_if, br_table
			if leavesFunction(code[at:r.off], depth) {
				plan = append(plan, insert{at: at, kind: flush})
			}
			next(segment)
		case op == 0x00: // unreachable
			next(segment)
		}
		if r.off >= len(code) {
			return plan, 0, r.off, errors.New("the function body ends without its end instruction")
		}
	}
}

// leavesFunction reports whether a br, br_if or br_table (its bytes)
// can branch to label depth, the function's own, which returns.
func leavesFunction(ins []byte, depth int) bool {
	r := &reader{b: ins, off: 1}
	n := uint32(0)
	if ins[0] == 0x0e {
		n = r.count()
	}
	for i := uint32(0); i <= n && r.err == nil; i++ {
		if int64(r.u32()) == int64(depth) {
			return true
		}
	}
	return false
}

// emit appends code to dst with the plan inserted, the acc local declared
// and function indices renumbered. plan has read code without error.
func (rw *rewrite) emit(dst, code []byte, plan []insert, acc uint32) []byte {
	r := &reader{b: code}
	groups := r.count()
	dst = appendU32(dst, groups+1)
	dst = append(dst, code[r.off:plan[0].at]...)
	dst = append(dst, 0x01, 0x7e) // one i64: acc
	r.off = plan[0].at
	for r.off < len(code) {
		at := r.off
		for len(plan) > 0 && plan[0].at == at {
			dst = rw.appendInsert(dst, plan[0], acc)
			plan = plan[1:]
		}
		c, f := instruction(r)
		if c == funcIndex {
			dst = appendU32(append(dst, code[at]), rw.fn(f))
			continue
		}
		dst = append(dst, code[at:r.off]...)
	}
	return dst
}

// appendInsert appends the instructions of one insert. None changes the
// operand stack.
func (rw *rewrite) appendInsert(b []byte, in insert, acc uint32) []byte {
	getFuel := func(b []byte) []byte { return appendU32(append(b, 0x23), rw.fuel) }
	setFuel := func(b []byte) []byte { return appendU32(append(b, 0x24), rw.fuel) }
	getAcc := func(b []byte) []byte { return appendU32(append(b, 0x20), acc) }
	setAcc := func(b []byte) []byte { return appendU32(append(b, 0x21), acc) }
	i64 := func(b []byte, v int64) []byte { return appendS64(append(b, 0x42), v) }
	switch in.kind {
	case entry: // fuel -= cost
		b = i64(getFuel(b), in.cost)
		b = setFuel(append(b, 0x7d))
	case loopHead: // fuel -= acc + cost; acc = 0
		b = i64(getAcc(getFuel(b)), in.cost)
		b = setFuel(append(b, 0x7c, 0x7d))
		b = setAcc(i64(b, 0))
	case segment: // acc += cost
		if in.cost == 0 {
			return b
		}
		b = i64(getAcc(b), in.cost)
		return setAcc(append(b, 0x7c))
	case flush: // fuel -= acc; acc = 0
		b = setFuel(append(getAcc(getFuel(b)), 0x7d))
		return setAcc(i64(b, 0))
	}
	// The check: if fuel < limit { checkpoint() }
	b = appendU32(append(getFuel(b), 0x23), rw.limit)
	b = append(b, 0x53, 0x04, 0x40, 0x10)
	b = appendU32(b, rw.importedFuncs)
	return append(b, 0x0b)
}
