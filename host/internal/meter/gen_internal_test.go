package meter

// A generator of valid modules with arbitrary structured control flow,
// driven by fuzz bytes, for the differential fuzz test: every module it
// makes terminates (loops count down, calls go only to higher-numbered
// functions, branches target blocks, never loops), so the original and
// the instrumented module can both be run to the end and compared.

type gen struct {
	src   []byte
	funcs int
	fn    int // the function being generated
	depth int // nesting depth
	loops int // loop counters used in this function
	body  []byte
	label []bool // open labels, innermost last: true for a loop
}

// next returns the next fuzz byte, 0 once they run out.
func (g *gen) next() byte {
	if len(g.src) == 0 {
		return 0
	}
	c := g.src[0]
	g.src = g.src[1:]
	return c
}

const (
	localArg   = 0 // the parameter
	localAcc   = 1 // the accumulator, returned
	localCount = 2 // first loop counter; one local per loop
	maxLoops   = 8
	typeUnary  = 0 // (i32) -> i32
)

func (g *gen) op(b ...byte) { g.body = append(g.body, b...) }

func (g *gen) u32(v uint32) { g.body = appendU32(g.body, v) }

func (g *gen) i32(v int32) { g.op(0x41); g.body = appendS64(g.body, int64(v)) }

// accUpdate folds a value on the stack into the accumulator.
func (g *gen) accUpdate() {
	g.op(0x20, localAcc)
	switch g.next() % 3 {
	case 0:
		g.op(0x6a) // i32.add
	case 1:
		g.op(0x73) // i32.xor
	default:
		g.op(0x6c) // i32.mul
	}
	g.op(0x21, localAcc)
}

// cond pushes an i32 condition derived from the accumulator.
func (g *gen) cond() {
	g.op(0x20, localAcc)
	g.i32(int32(g.next()%4 + 1))
	g.op(0x71) // i32.and
}

// target picks the depth of an enclosing block that is not a loop, or -1.
func (g *gen) target() int {
	var blocks []int
	for d := 0; d < len(g.label); d++ {
		if !g.label[len(g.label)-1-d] {
			blocks = append(blocks, d)
		}
	}
	if len(blocks) == 0 {
		return -1
	}
	return blocks[int(g.next())%len(blocks)]
}

// stmts generates up to n stack-neutral statements.
func (g *gen) stmts(n int) {
	for i := 0; i < n && len(g.src) > 0; i++ {
		g.stmt()
	}
}

func (g *gen) stmt() {
	nested := g.depth < 3
	switch k := g.next() % 14; {
	case k == 0 && nested: // block
		g.op(0x02, 0x40)
		g.enter(false, 3)
		g.op(0x0b)
	case k == 1 && nested && g.loops < maxLoops: // counted loop
		c := byte(localCount + g.loops)
		g.loops++
		g.i32(int32(g.next()%3 + 1))
		g.op(0x21, c)
		g.op(0x03, 0x40)
		g.enter(true, 3)
		g.op(0x20, c)
		g.i32(1)
		g.op(0x6b, 0x22, c, 0x0d, 0x00) // i32.sub; local.tee c; br_if 0 (counter != 0)
		g.op(0x0b)
	case k == 2 && nested: // if/else
		g.cond()
		g.op(0x04, 0x40)
		g.enter(false, 2)
		g.op(0x05)
		g.enter(false, 2)
		g.op(0x0b)
	case k == 3: // br_if to an enclosing block
		if d := g.target(); d >= 0 {
			g.cond()
			g.op(0x0d)
			g.u32(uint32(d))
		}
	case k == 4: // br_table to enclosing blocks
		if d := g.target(); d >= 0 {
			e := g.target()
			g.cond()
			g.op(0x0e, 0x01)
			g.u32(uint32(d))
			g.u32(uint32(e))
		}
	case k == 5 && g.fn+1 < g.funcs: // call a later function
		callee := g.fn + 1 + int(g.next())%(g.funcs-g.fn-1)
		g.op(0x20, localAcc, 0x10)
		g.u32(uint32(callee))
		g.accUpdate()
	case k == 6: // a block with a type-index block type
		g.op(0x20, localAcc, 0x02, typeUnary)
		g.i32(int32(g.next()))
		g.op(0x6a, 0x0b)
		g.op(0x21, localAcc)
	case k == 7: // memory: store then load
		g.i32(int32(g.next()) * 4)
		g.op(0x20, localAcc, 0x36, 0x02, 0x00) // i32.store align=2 offset=0
		g.i32(int32(g.next()) * 4)
		g.op(0x28, 0x02, 0x00) // i32.load
		g.accUpdate()
	case k == 8: // bulk memory: memory.fill
		g.i32(0)
		g.i32(int32(g.next()))
		g.i32(16)
		g.op(0xfc, 0x0b, 0x00)
	case k == 9: // SIMD: a constant vector and a lane
		g.op(0xfd, 0x0c)
		for i := 0; i < 16; i++ {
			g.op(g.next())
		}
		g.op(0xfd, 0x1b, g.next()%4) // i32x4.extract_lane
		g.accUpdate()
	case k == 10: // i64 and f64 constants, converted
		g.op(0x42)
		g.body = appendS64(g.body, int64(g.next())<<40-1)
		g.op(0xa7) // i32.wrap_i64
		g.accUpdate()
		g.op(0x44, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f) // f64.const 1
		g.op(0xfc, 0x02)                         // i32.trunc_sat_f64_s
		g.accUpdate()
	case k == 11: // select with a type
		g.i32(int32(g.next()))
		g.i32(int32(g.next()))
		g.cond()
		g.op(0x1c, 0x01, 0x7f)
		g.accUpdate()
	default: // arithmetic
		g.i32(int32(g.next()) - 128)
		g.accUpdate()
	}
}

func (g *gen) enter(loop bool, n int) {
	g.label = append(g.label, loop)
	g.depth++
	g.stmts(1 + int(g.next())%n)
	g.depth--
	g.label = g.label[:len(g.label)-1]
}

// generate returns a module of 1 to 3 functions of type (i32) -> i32, the
// first exported as "run", with one page of memory.
func generate(src []byte) []byte {
	g := &gen{src: src}
	g.funcs = 1 + int(g.next())%3
	var code []byte
	code = appendU32(code, uint32(g.funcs))
	for g.fn = 0; g.fn < g.funcs; g.fn++ {
		g.body, g.loops, g.depth = g.body[:0], 0, 0
		// locals: acc, then one counter per possible loop
		g.op(0x02, 0x01, 0x7f, maxLoops, 0x7f)
		g.op(0x20, localArg, 0x21, localAcc)
		g.stmts(1 + int(g.next())%8)
		g.op(0x20, localAcc, 0x0b)
		code = appendU32(code, uint32(len(g.body)))
		code = append(code, g.body...)
	}
	m := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	m = appendSection(m, 1, []byte{0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f})
	fns := appendU32(nil, uint32(g.funcs))
	for i := 0; i < g.funcs; i++ {
		fns = append(fns, typeUnary)
	}
	m = appendSection(m, 3, fns)
	m = appendSection(m, 5, []byte{0x01, 0x00, 0x01})
	m = appendSection(m, 7, []byte{0x01, 0x03, 'r', 'u', 'n', 0x00, 0x00})
	return appendSection(m, 10, code)
}
