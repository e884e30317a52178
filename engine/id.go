package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// EventID identifies an event. New identifiers are UUIDv7 (RFC 9562): 48 bits
// of Unix milliseconds followed by a 12-bit sub-millisecond sequence and 62
// random bits. Identifiers made by one process are strictly increasing, even
// when many goroutines make them at once, so sorting events by ID sorts them
// by creation order. The zero EventID means "not assigned yet".
//
// Identifiers that arrive from outside (a producer that brings its own) may be
// any UUID; only version 7 identifiers carry a time, see [EventID.Time].
type EventID [16]byte

// NewEventID returns a new, unique, time-ordered identifier.
func NewEventID() EventID {
	id, err := uuid.NewV7()
	if err != nil {
		// uuid.NewV7 fails only when the system's random source does, and then
		// nothing in the process can be trusted to be unique either.
		panic(fmt.Sprintf("engine: cannot make an event id: %v", err))
	}
	return EventID(id)
}

// DerivedEventID is the ID a step gives the n-th event (from 0) it makes
// out of the event from, when the step's code names none: a version 8 UUID
// made of the first 128 bits of SHA-256 over the step and from's ID. The
// same input through the same step makes the same IDs, so a replay (a
// pipeline that processes an event again after a crash) writes events that
// a persistent channel recognises as duplicates; and two outputs of one
// event never share an ID.
func DerivedEventID(step string, from EventID, n int) EventID {
	b := make([]byte, 0, 48+len(step))
	b = append(b, "aegis.step.output\x00"...)
	b = binary.AppendUvarint(b, uint64(len(step)))
	b = append(b, step...)
	b = append(b, from[:]...)
	b = binary.AppendUvarint(b, uint64(n))
	return hashID(b)
}

// HashEventID is the ID of the event that b names: a version 8 UUID of
// the first 128 bits of SHA-256 over b. A source that can read the same
// input again (a database change at its position, a line of a file) names
// its events by what they are, so that a persistent channel recognises a
// second reading as a duplicate. b should begin with a prefix of the
// source's own, so that two sources never name different events alike.
func HashEventID(b []byte) EventID { return hashID(b) }

// hashID makes a version 8 UUID of the first 128 bits of SHA-256 over b.
func hashID(b []byte) EventID {
	sum := sha256.Sum256(b)
	var id EventID
	copy(id[:], sum[:16])
	id[6] = id[6]&0x0f | 0x80 // version 8
	id[8] = id[8]&0x3f | 0x80 // the RFC 9562 variant
	return id
}

// ParseEventID parses the canonical 36-character form of a UUID
// (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, either case).
func ParseEventID(s string) (EventID, error) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return EventID{}, fmt.Errorf("event id %q: want the 36-character UUID form", s)
	}
	var id EventID
	var src [32]byte
	n := copy(src[:], s[0:8])
	n += copy(src[n:], s[9:13])
	n += copy(src[n:], s[14:18])
	n += copy(src[n:], s[19:23])
	copy(src[n:], s[24:36])
	if _, err := hex.Decode(id[:], src[:]); err != nil {
		return EventID{}, fmt.Errorf("event id %q: %w", s, err)
	}
	return id, nil
}

// IsZero reports whether the identifier is unassigned.
func (id EventID) IsZero() bool { return id == EventID{} }

// String returns the canonical lowercase UUID form.
func (id EventID) String() string { return uuid.UUID(id).String() }

// Compare orders identifiers bytewise, which for identifiers made by
// [NewEventID] is creation order. It returns -1, 0 or +1.
func (id EventID) Compare(other EventID) int { return bytes.Compare(id[:], other[:]) }

// Version is the UUID version number (7 for identifiers made here).
func (id EventID) Version() int { return int(id[6] >> 4) }

// Time returns the creation time encoded in a version 7 identifier, to the
// millisecond. ok is false for other versions.
func (id EventID) Time() (t time.Time, ok bool) {
	if id.Version() != 7 {
		return time.Time{}, false
	}
	ms := int64(id[0])<<40 | int64(id[1])<<32 | int64(id[2])<<24 | int64(id[3])<<16 | int64(id[4])<<8 | int64(id[5])
	return time.UnixMilli(ms).UTC(), true
}

// MarshalText implements encoding.TextMarshaler.
func (id EventID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *EventID) UnmarshalText(b []byte) error {
	parsed, err := ParseEventID(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}
