package jetstream

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// FindSkew is how far before an event ID's own time [Stream.FindEvent]
// starts looking: the stream's time is when the server stored the message,
// which on one host is after the event was made, but clocks of other hosts
// may be behind.
const FindSkew = 2 * time.Second

// FindEvent returns the stream sequence of the message whose ID is id, or
// fails with [ErrEventNotFound].
//
// No index is kept (a second write per event would halve publish
// throughput). Instead, when id is a UUIDv7 (the engine's event IDs) whose
// time is known, the headers (not bodies) of the messages stored from that
// time minus [FindSkew] onward are scanned; when that finds nothing (another
// kind of ID, a skewed clock, an old ID re-published) the whole stream is
// scanned. The cost grows with the messages stored after the event, about
// as many as a replay from it delivers anyway.
func (s *Stream) FindEvent(ctx context.Context, id string) (uint64, error) {
	seq, err := s.findEvent(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("channel[%s] event[%s]: %w", s.channel, id, err)
	}
	return seq, nil
}

func (s *Stream) findEvent(ctx context.Context, id string) (uint64, error) {
	if id == "" {
		return 0, ErrEventNotFound
	}
	info, err := s.st.Info(ctx)
	if err != nil {
		return 0, apiError(err)
	}
	if info.State.Msgs == 0 {
		return 0, ErrEventNotFound
	}
	last := info.State.LastSeq
	if t, ok := uuidV7Time(id); ok {
		from := t.Add(-FindSkew)
		if !from.After(info.State.LastTime) {
			seq, found, err := s.scan(ctx, id, last, jetstream.OrderedConsumerConfig{
				DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from, HeadersOnly: true,
			})
			if err != nil || found {
				return seq, err
			}
		}
	}
	seq, found, err := s.scan(ctx, id, last, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverAllPolicy, HeadersOnly: true,
	})
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, ErrEventNotFound
	}
	return seq, nil
}

// scan reads headers from cfg's position up to sequence last.
func (s *Stream) scan(ctx context.Context, id string, last uint64, cfg jetstream.OrderedConsumerConfig) (uint64, bool, error) {
	var seq uint64
	err := s.readRange(ctx, cfg, last, func(m RawMsg) (bool, error) {
		if m.ID == id {
			seq = m.Seq
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("scan: %w", err)
	}
	return seq, seq != 0, nil
}

// uuidV7Time is the millisecond time in a UUIDv7.
func uuidV7Time(id string) (time.Time, bool) {
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 {
		return time.Time{}, false
	}
	var b [8]byte
	copy(b[2:], u[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b[:]))), true
}
