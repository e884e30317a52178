package meter

import "fmt"

// class is what the rewriter needs to know of an instruction: whether it
// opens or closes a block, and whether the block is a loop.
type class uint8

const (
	plain class = iota
	openBlock
	openLoop
	elseArm
	end
	funcIndex // call or ref.func: the function index is returned too
)

// instruction reads one instruction, immediates included, and returns
// its class and, for call and ref.func, the function index, which is the
// instruction's only immediate. It knows every instruction of WebAssembly 2.0 (the MVP,
// sign extension, non-trapping conversions, multi-value, reference types,
// bulk memory and fixed-width SIMD), which is what wazero compiles by
// default and what Go, Rust, C, AssemblyScript and WAT emit for it. Any
// other instruction is an error that names it.
func instruction(r *reader) (class, uint32) {
	op := r.byte()
	switch {
	case r.err != nil:
		return plain, 0
	case op == 0x00, op == 0x01: // unreachable, nop
	case op == 0x02, op == 0x04: // block, if
		blockType(r)
		return openBlock, 0
	case op == 0x03: // loop
		blockType(r)
		return openLoop, 0
	case op == 0x05:
		return elseArm, 0
	case op == 0x0b:
		return end, 0
	case op == 0x0c, op == 0x0d: // br, br_if
		r.u32()
	case op == 0x0e: // br_table
		n := r.count()
		for i := uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case op == 0x0f: // return
	case op == 0x10, op == 0xd2: // call, ref.func
		return funcIndex, r.u32()
	case op == 0x11: // call_indirect
		r.u32()
		r.u32()
	case op == 0x1a, op == 0x1b: // drop, select
	case op == 0x1c: // select t*
		n := r.count()
		for i := uint32(0); i < n && r.err == nil; i++ {
			valType(r)
		}
	case op >= 0x20 && op <= 0x26: // local.get/set/tee, global.get/set, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		memArg(r)
	case op == 0x3f, op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41: // i32.const
		r.leb(32, true)
	case op == 0x42: // i64.const
		r.leb(64, true)
	case op == 0x43: // f32.const
		r.bytes(4)
	case op == 0x44: // f64.const
		r.bytes(8)
	case op >= 0x45 && op <= 0xc4: // numeric instructions, sign extension
	case op == 0xd0: // ref.null t
		r.byte()
	case op == 0xd1: // ref.is_null
	case op == 0xfc:
		misc(r)
	case op == 0xfd:
		simd(r)
	default:
		r.fail(unsupported(op))
	}
	return plain, 0
}

// unsupported names an instruction outside WebAssembly 2.0 by its feature
// where it has one.
func unsupported(op byte) error {
	var feature string
	switch {
	case op == 0x12 || op == 0x13:
		feature = "tail calls"
	case op >= 0x06 && op <= 0x0a, op == 0x18, op == 0x19, op == 0x1f:
		feature = "exception handling"
	case op == 0x14 || op == 0x15 || op == 0xd3 || op == 0xd4 || op == 0xd5 || op == 0xd6 || op == 0xfb:
		feature = "function references and garbage collection"
	case op == 0xfe:
		feature = "threads"
	}
	if feature != "" {
		return fmt.Errorf("instruction 0x%02x (%s) is %w", op, feature, ErrUnsupported)
	}
	return fmt.Errorf("unknown instruction 0x%02x", op)
}

// blockType reads a block type: empty (0x40), one value type, or a type
// index as a signed 33-bit number.
func blockType(r *reader) {
	if r.err != nil || r.off >= len(r.b) {
		r.fail(errTruncated)
		return
	}
	switch r.b[r.off] {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.off++
	default:
		r.leb(33, true)
	}
}

func valType(r *reader) {
	switch t := r.byte(); t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
	default:
		if r.err == nil {
			r.fail(fmt.Errorf("unknown value type 0x%02x", t))
		}
	}
}

// memArg reads a memory argument: alignment (whose bit 6 says a memory
// index follows, in multi-memory modules) and offset.
func memArg(r *reader) {
	if align := r.u32(); align&0x40 != 0 {
		r.u32()
	}
	r.u32()
}

// misc reads the rest of a 0xFC instruction.
func misc(r *reader) {
	switch sub := r.u32(); {
	case r.err != nil:
	case sub <= 7: // saturating conversions
	case sub == 8, sub == 10, sub == 12, sub == 14:
		// memory.init data mem, memory.copy to from, table.init elem
		// table, table.copy to from
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17:
		// data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	default:
		r.fail(fmt.Errorf("unknown instruction 0xfc %d", sub))
	}
}

// simdGaps are the opcodes in 0..255 that fixed-width SIMD leaves
// unassigned.
var simdGaps = map[uint32]bool{
	0x9a: true, 0xa2: true, 0xa5: true, 0xa6: true, 0xaf: true, 0xb0: true,
	0xb2: true, 0xb3: true, 0xb4: true, 0xbb: true, 0xc2: true, 0xc5: true,
	0xc6: true, 0xcf: true, 0xd0: true, 0xd2: true, 0xd3: true, 0xd4: true,
	0xe2: true, 0xee: true,
}

// simd reads the rest of a 0xFD instruction.
func simd(r *reader) {
	switch sub := r.u32(); {
	case r.err != nil:
	case sub <= 11: // loads, load-and-splat, v128.store
		memArg(r)
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		r.byte()
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		memArg(r)
		r.byte()
	case sub == 92, sub == 93: // v128.load32_zero, v128.load64_zero
		memArg(r)
	case sub > 0xff:
		r.fail(fmt.Errorf("instruction 0xfd %d (relaxed SIMD) is %w", sub, ErrUnsupported))
	case simdGaps[sub]:
		r.fail(fmt.Errorf("unknown instruction 0xfd %d", sub))
	}
}
