package meter

import (
	"errors"
	"fmt"
)

// errTruncated is a read past the end of the bytes at hand.
var errTruncated = errors.New("unexpected end")

// reader reads the WebAssembly binary format. Its errors are sticky: after
// the first one every read returns zero, and err says what went wrong.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) done() bool { return r.err != nil || r.off >= len(r.b) }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail(errTruncated)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail(errTruncated)
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

// leb reads an LEB128 number of at most bits bits and returns it with
// its high bits unchecked beyond the encoding's length: the validator of
// the compiled module checks ranges; the rewriter only needs to know
// where the number ends. signed numbers are sign-extended.
func (r *reader) leb(bits uint, signed bool) uint64 {
	var v uint64
	var shift uint
	maxBytes := int((bits + 6) / 7)
	for i := 0; ; i++ {
		if i == maxBytes {
			r.fail(fmt.Errorf("an LEB128 number longer than %d bytes", maxBytes))
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if signed && shift < 64 && c&0x40 != 0 {
				v |= ^uint64(0) << shift
			}
			return v
		}
	}
}

func (r *reader) u32() uint32 { return uint32(r.leb(32, false)) }

// count reads the length of a vector whose elements take at least one
// byte each, and refuses one longer than the bytes left.
func (r *reader) count() uint32 {
	n := r.u32()
	if r.err == nil && int64(n) > int64(len(r.b)-r.off) {
		r.fail(fmt.Errorf("%w: a count of %d with %d bytes left", errTruncated, n, len(r.b)-r.off))
		return 0
	}
	return n
}

// name reads a length-prefixed string.
func (r *reader) name() string { return string(r.bytes(int(r.u32()))) }

// appendU32 appends v as unsigned LEB128.
func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendS64 appends v as signed LEB128.
func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// appendSection appends a section: its id, size and body.
func appendSection(b []byte, id byte, body []byte) []byte {
	b = append(b, id)
	b = appendU32(b, uint32(len(body)))
	return append(b, body...)
}
