package abi

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// ResultHeaderSize is the size of a result's header.
const ResultHeaderSize = 12

// Body says what the body of a successful result holds, which depends on the
// export that returned it.
type Body uint8

const (
	BodyEmpty   Body = iota // aegis_init: nothing (Count is 0)
	BodyIndices             // aegis_filter: Count u32 indices of kept events, strictly increasing
	BodyRecords             // aegis_map, aegis_finish: Count event records
	BodyBytes               // aegis_aggregate, aegis_merge: the new accumulator, Count bytes
)

// Result is a decoded result region:
//
//	u32 status, u32 count, u32 error count, body, errors
//
// When Status is not StatusOK, the body is a UTF-8 message of Count bytes
// saying why the whole call failed, and there are no event errors.
// Otherwise the body is what [Body] says, and then come ErrorCount event
// errors, each u32 index, u32 code, u32 message length, message.
type Result struct {
	Status     Status
	Count      uint32
	ErrorCount uint32
	Body       []byte // indices, records, accumulator or message
	Errors     []byte // ErrorCount entries, checked; walk them with [NextError]
}

// Message is the call's error message when Status is not StatusOK.
func (r *Result) Message() string {
	if r.Status == StatusOK {
		return ""
	}
	return string(r.Body)
}

// Index returns the i-th kept index of a filter result.
func (r *Result) Index(i int) uint32 { return le.Uint32(r.Body[4*i:]) }

// Records returns the records of a map or finish result.
func (r *Result) Records() Batch { return Batch{rest: r.Body, count: int(r.Count)} }

// ParseResult decodes a result region returned by an export whose body is
// of kind body, for an input of inputLen events: the length of the batch for
// aegis_filter, aegis_map and aegis_aggregate, and 0 for aegis_init,
// aegis_merge and aegis_finish, which have no input events and so can
// report no event errors. Kept indices and error indices must be below
// inputLen. It checks the header, the body's
// structure (for records: every length, not every field; [Batch.Next] checks
// those as they are read), the error entries, and that nothing follows.
func ParseResult(b []byte, body Body, inputLen int) (Result, error) {
	var r Result
	if len(b) < ResultHeaderSize {
		return r, fmt.Errorf("result header: %w (%d of %d bytes)", ErrShort, len(b), ResultHeaderSize)
	}
	r.Status = Status(le.Uint32(b))
	r.Count = le.Uint32(b[4:])
	r.ErrorCount = le.Uint32(b[8:])
	p := b[ResultHeaderSize:]
	if r.Status != StatusOK {
		if uint64(r.Count) != uint64(len(p)) || r.ErrorCount != 0 {
			return r, fmt.Errorf("result status %d: message of %d bytes and %d errors in %d bytes: %w",
				r.Status, r.Count, r.ErrorCount, len(p), ErrCorrupt)
		}
		if !utf8.Valid(p) {
			return r, fmt.Errorf("result message: %w", ErrBadUTF8)
		}
		r.Body = p
		return r, nil
	}
	var n uint64
	switch body {
	case BodyEmpty:
		if r.Count != 0 {
			return r, fmt.Errorf("result count %d, want 0: %w", r.Count, ErrCorrupt)
		}
	case BodyIndices:
		n = 4 * uint64(r.Count)
		if n > uint64(len(p)) {
			return r, fmt.Errorf("result of %d indices: %w", r.Count, ErrShort)
		}
		prev := int64(-1)
		for i := 0; i < int(r.Count); i++ {
			x := int64(le.Uint32(p[4*i:]))
			if x <= prev || x >= int64(inputLen) {
				return r, fmt.Errorf("result index %d is %d: %w (indices must increase and be below %d)", i, x, ErrCorrupt, inputLen)
			}
			prev = x
		}
	case BodyRecords:
		if uint64(r.Count)*HeaderSize > uint64(len(p)) {
			return r, fmt.Errorf("result of %d records in %d bytes: %w", r.Count, len(p), ErrShort)
		}
		q := p
		for i := 0; i < int(r.Count); i++ {
			if len(q) < HeaderSize {
				return r, fmt.Errorf("result record %d: %w", i, ErrShort)
			}
			size := uint64(le.Uint32(q))
			if size < HeaderSize || size > uint64(len(q)) {
				return r, fmt.Errorf("result record %d of %d bytes: %w", i, size, ErrCorrupt)
			}
			q = q[size:]
		}
		n = uint64(len(p) - len(q))
	case BodyBytes:
		n = uint64(r.Count)
		if n > uint64(len(p)) {
			return r, fmt.Errorf("result of %d bytes: %w", r.Count, ErrShort)
		}
	default:
		return r, fmt.Errorf("result body kind %d: %w", body, ErrCorrupt)
	}
	r.Body, p = p[:n], p[n:]
	r.Errors = p
	// An event is reported failed at most once: a few errors are compared
	// in place, many against a set of the input's events.
	var few [32]uint32
	var seen []uint64
	if r.ErrorCount > uint32(len(few)) && inputLen > 0 {
		seen = make([]uint64, (inputLen+63)/64)
	}
	for i := 0; i < int(r.ErrorCount); i++ {
		if len(p) < 12 {
			return r, fmt.Errorf("result error %d: %w", i, ErrShort)
		}
		idx, ml := le.Uint32(p), uint64(le.Uint32(p[8:]))
		if ml > uint64(len(p)-12) {
			return r, fmt.Errorf("result error %d message of %d bytes: %w", i, ml, ErrShort)
		}
		if int64(idx) >= int64(inputLen) {
			return r, fmt.Errorf("result error %d names event %d of %d: %w", i, idx, inputLen, ErrCorrupt)
		}
		twice := false
		if seen != nil {
			twice = seen[idx/64]&(1<<(idx%64)) != 0
			seen[idx/64] |= 1 << (idx % 64)
		} else {
			twice = slices.Contains(few[:i], idx)
			few[i] = idx
		}
		if twice {
			return r, fmt.Errorf("result error %d names event %d a second time: %w", i, idx, ErrCorrupt)
		}
		if !utf8.Valid(p[12 : 12+ml]) {
			return r, fmt.Errorf("result error %d message: %w", i, ErrBadUTF8)
		}
		p = p[12+ml:]
	}
	if len(p) != 0 {
		return r, fmt.Errorf("result: %d %w", len(p), ErrTrailing)
	}
	return r, nil
}

// EventError is a per-event error entry of a result.
type EventError struct {
	Index   uint32
	Code    uint32
	Message []byte
}

// NextError returns the first error entry of e (a [Result.Errors] or a tail
// of one) and the entries after it; ok is false at the end. It relies on the
// checks of [ParseResult].
func NextError(e []byte) (ee EventError, rest []byte, ok bool) {
	if len(e) < 12 {
		return ee, nil, false
	}
	ml := int(le.Uint32(e[8:]))
	ee = EventError{Index: le.Uint32(e), Code: le.Uint32(e[4:]), Message: e[12 : 12+ml]}
	return ee, e[12+ml:], true
}

// ResultWriter builds a result region in buffers it reuses from call to
// call, so that a guest allocates nothing once they have grown. Use it as:
// Reset, then AppendIndex, AppendRecord or AppendBytes for the body and
// AddError for failed events, then Finish; or Fail for the whole call.
type ResultWriter struct {
	buf   []byte
	errs  []byte
	count uint32
	nerrs uint32
}

// Reset starts a new result.
func (w *ResultWriter) Reset() {
	w.buf = append(w.buf[:0], make([]byte, ResultHeaderSize)...)
	w.errs = w.errs[:0]
	w.count, w.nerrs = 0, 0
}

// AppendIndex adds a kept index to a filter result.
func (w *ResultWriter) AppendIndex(i uint32) {
	w.buf = le.AppendUint32(w.buf, i)
	w.count++
}

// AppendRecord adds a record to a map or finish result.
func (w *ResultWriter) AppendRecord(r *Record) {
	w.buf = AppendRecord(w.buf, r)
	w.count++
}

// AppendBytes adds bytes to an aggregate or merge result's accumulator.
func (w *ResultWriter) AppendBytes(b []byte) {
	w.buf = append(w.buf, b...)
	w.count += uint32(len(b))
}

// Buffer returns the result's buffer, to append a body directly (with
// [AppendRecord], say); say how many items were added with [ResultWriter.Added].
func (w *ResultWriter) Buffer() []byte { return w.buf }

// Added records that the caller appended n items (records or bytes) to the
// buffer returned by Buffer, which is now b.
func (w *ResultWriter) Added(b []byte, n int) {
	w.buf = b
	w.count += uint32(n)
}

// AddError reports that the event at index failed with a code and message.
func (w *ResultWriter) AddError(index, code uint32, msg string) {
	w.errs = le.AppendUint32(w.errs, index)
	w.errs = le.AppendUint32(w.errs, code)
	w.errs = le.AppendUint32(w.errs, uint32(len(msg)))
	w.errs = append(w.errs, msg...)
	w.nerrs++
}

// Finish completes a successful result and returns it.
func (w *ResultWriter) Finish() []byte {
	le.PutUint32(w.buf, uint32(StatusOK))
	le.PutUint32(w.buf[4:], w.count)
	le.PutUint32(w.buf[8:], w.nerrs)
	w.buf = append(w.buf, w.errs...)
	return w.buf
}

// Fail returns a result that fails the whole call with status and message,
// discarding whatever was added since Reset.
func (w *ResultWriter) Fail(status Status, msg string) []byte {
	w.buf = append(w.buf[:0], make([]byte, ResultHeaderSize)...)
	le.PutUint32(w.buf, uint32(status))
	le.PutUint32(w.buf[4:], uint32(len(msg)))
	le.PutUint32(w.buf[8:], 0)
	w.buf = append(w.buf, msg...)
	return w.buf
}
