package abi

import "fmt"

// BatchHeaderSize is the size of a batch's header: u32 count.
const BatchHeaderSize = 4

// PutBatchHeader writes the header of a batch of count records.
func PutBatchHeader(dst []byte, count uint32) { le.PutUint32(dst, count) }

// Batch reads the records of a batch in order. Its zero value is an empty
// batch. Records are decoded as they are read, so a consumer can stop early
// without paying for the rest.
type Batch struct {
	rest  []byte
	count int
	read  int
}

// ParseBatch reads the header of an encoded batch: u32 count, then count
// records, and nothing after them.
func ParseBatch(b []byte) (Batch, error) {
	if len(b) < BatchHeaderSize {
		return Batch{}, fmt.Errorf("batch header: %w (%d of 4 bytes)", ErrShort, len(b))
	}
	n := le.Uint32(b)
	// Every record takes at least HeaderSize bytes: an impossible count is
	// refused before anyone sizes a slice by it.
	if uint64(n)*HeaderSize > uint64(len(b)-BatchHeaderSize) {
		return Batch{}, fmt.Errorf("batch of %d records in %d bytes: %w", n, len(b), ErrShort)
	}
	return Batch{rest: b[BatchHeaderSize:], count: int(n)}, nil
}

// Len is the number of records in the batch.
func (b *Batch) Len() int { return b.count }

// Next decodes the next record; ok is false after the last one, when err
// reports bytes left over. Errors name the record's position.
func (b *Batch) Next() (v View, ok bool, err error) {
	if b.read == b.count {
		if len(b.rest) != 0 {
			return v, false, fmt.Errorf("batch: %d %w after %d records", len(b.rest), ErrTrailing, b.count)
		}
		return v, false, nil
	}
	v, rest, err := DecodeRecord(b.rest)
	if err != nil {
		return v, false, fmt.Errorf("batch record %d: %w", b.read, err)
	}
	b.rest = rest
	b.read++
	return v, true, nil
}

// Validate decodes every remaining record and reports the first problem.
func (b Batch) Validate() error {
	for {
		_, ok, err := b.Next()
		if !ok {
			return err
		}
	}
}

// AppendBatch appends a batch of the given records.
func AppendBatch(b []byte, recs ...Record) []byte {
	b = le.AppendUint32(b, uint32(len(recs)))
	for i := range recs {
		b = AppendRecord(b, &recs[i])
	}
	return b
}

// State is the part of an aggregate call's input that names the group and
// carries its accumulator:
//
//	u32 key length, key, u32 accumulator length, accumulator
//
// An empty accumulator means "no events yet": the module starts from its
// initial state.
type State struct {
	Key []byte
	Acc []byte
}

// StateSize is the encoded size of s.
func (s *State) StateSize() int { return 8 + len(s.Key) + len(s.Acc) }

// PutState writes s at dst and returns its size.
func PutState(dst []byte, s *State) int {
	le.PutUint32(dst, uint32(len(s.Key)))
	n := 4 + copy(dst[4:], s.Key)
	le.PutUint32(dst[n:], uint32(len(s.Acc)))
	n += 4
	return n + copy(dst[n:], s.Acc)
}

// AppendState appends the encoding of s.
func AppendState(b []byte, s *State) []byte {
	b = le.AppendUint32(b, uint32(len(s.Key)))
	b = append(b, s.Key...)
	b = le.AppendUint32(b, uint32(len(s.Acc)))
	return append(b, s.Acc...)
}

// ParseState reads a State at the start of b and returns the bytes after it.
func ParseState(b []byte) (s State, rest []byte, err error) {
	s.Key, b, err = lenPrefixed(b, "key")
	if err != nil {
		return s, nil, err
	}
	s.Acc, b, err = lenPrefixed(b, "accumulator")
	return s, b, err
}

func lenPrefixed(b []byte, what string) (v, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("%s length: %w", what, ErrShort)
	}
	n := uint64(le.Uint32(b))
	if n > uint64(len(b)-4) {
		return nil, nil, fmt.Errorf("%s of %d bytes: %w (%d left)", what, n, ErrShort, len(b)-4)
	}
	return b[4 : 4+n], b[4+n:], nil
}

// WindowSize is the size of the window bounds that end a finish input.
const WindowSize = 16

// PutWindow writes the window bounds [start, end) in nanoseconds since the
// Unix epoch: i64 start, i64 end.
func PutWindow(dst []byte, start, end int64) {
	le.PutUint64(dst, uint64(start))
	le.PutUint64(dst[8:], uint64(end))
}

// The inputs of the aggregate exports, which [ParseAggregateInput],
// [ParseMergeInput] and [ParseFinishInput] read:
//
//	aegis_aggregate: State, then a batch
//	aegis_merge:     State (key, accumulator a), then u32 length and accumulator b
//	aegis_finish:    State, then i64 window start, i64 window end
//
// ParseAggregateInput splits an aegis_aggregate input into its state and
// batch.
func ParseAggregateInput(b []byte) (State, Batch, error) {
	s, rest, err := ParseState(b)
	if err != nil {
		return s, Batch{}, err
	}
	batch, err := ParseBatch(rest)
	return s, batch, err
}

// ParseMergeInput splits an aegis_merge input into the key and the two
// accumulators.
func ParseMergeInput(b []byte) (s State, other []byte, err error) {
	s, rest, err := ParseState(b)
	if err != nil {
		return s, nil, err
	}
	other, rest, err = lenPrefixed(rest, "second accumulator")
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("merge input: %d %w", len(rest), ErrTrailing)
	}
	return s, other, err
}

// ParseFinishInput splits an aegis_finish input into its state and window.
func ParseFinishInput(b []byte) (s State, start, end int64, err error) {
	s, rest, err := ParseState(b)
	if err != nil {
		return s, 0, 0, err
	}
	if len(rest) != WindowSize {
		return s, 0, 0, fmt.Errorf("finish window of %d bytes, want %d: %w", len(rest), WindowSize, ErrCorrupt)
	}
	return s, int64(le.Uint64(rest)), int64(le.Uint64(rest[8:])), nil
}
