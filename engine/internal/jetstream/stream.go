package jetstream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream is the JetStream stream of one channel. It is safe for concurrent
// use.
type Stream struct {
	c       *Conn
	channel string
	name    string
	subject string
	st      jetstream.Stream
}

// EnsureStream creates the stream of channel, or updates its limits when it
// exists. An update that the server refuses (fewer replicas than a running
// cluster allows, a changed storage type, ...) is an error; existing
// messages beyond new limits are removed by the server.
func (c *Conn) EnsureStream(ctx context.Context, channel string, o StreamOptions) (*Stream, error) {
	cfg, err := o.config(channel, c.replicas)
	if err != nil {
		return nil, err
	}
	st, err := c.js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("channel[%s] stream[%s]: create or update: %w", channel, cfg.Name, apiError(err))
	}
	return c.stream(channel, st), nil
}

// Stream looks up the existing stream of channel; it fails with
// [ErrStreamNotFound] when there is none.
func (c *Conn) Stream(ctx context.Context, channel string) (*Stream, error) {
	name := StreamName(channel)
	st, err := c.js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("channel[%s] stream[%s]: %w", channel, name, apiError(err))
	}
	return c.stream(channel, st), nil
}

func (c *Conn) stream(channel string, st jetstream.Stream) *Stream {
	return &Stream{c: c, channel: channel, name: StreamName(channel), subject: Subject(channel), st: st}
}

// DeleteStream deletes the stream of channel with all its messages and
// consumers. It fails with [ErrStreamNotFound] when there is none.
func (c *Conn) DeleteStream(ctx context.Context, channel string) error {
	name := StreamName(channel)
	if err := c.js.DeleteStream(ctx, name); err != nil {
		return fmt.Errorf("channel[%s] stream[%s]: delete: %w", channel, name, apiError(err))
	}
	return nil
}

// Channel is the channel the stream holds.
func (s *Stream) Channel() string { return s.channel }

// Name is the stream's JetStream name.
func (s *Stream) Name() string { return s.name }

// Subject is the subject the channel's events are published on.
func (s *Stream) Subject() string { return s.subject }

// StreamInfo is the state of a stream.
type StreamInfo struct {
	// Channel is the channel the stream holds (from the stream's metadata).
	Channel string
	// Msgs and Bytes are what the stream holds now.
	Msgs, Bytes uint64
	// FirstSeq and LastSeq are the sequence numbers of the oldest and newest
	// messages held (FirstSeq is LastSeq+1 when the stream is empty).
	FirstSeq, LastSeq uint64
	// FirstTime and LastTime are when those were stored.
	FirstTime, LastTime time.Time
	// Consumers is the number of consumers.
	Consumers int
	// Leader is the server leading the stream ("" for a single server that
	// is not part of a cluster); Replicas counts the other servers.
	Leader   string
	Replicas int
	// Options are the stream's limits as the server holds them.
	Options StreamOptions
}

// Info asks the server for the stream's state.
func (s *Stream) Info(ctx context.Context) (StreamInfo, error) {
	in, err := s.st.Info(ctx)
	if err != nil {
		return StreamInfo{}, fmt.Errorf("channel[%s] stream[%s]: info: %w", s.channel, s.name, apiError(err))
	}
	out := StreamInfo{
		Channel:   in.Config.Metadata[metaChannel],
		Msgs:      in.State.Msgs,
		Bytes:     in.State.Bytes,
		FirstSeq:  in.State.FirstSeq,
		LastSeq:   in.State.LastSeq,
		FirstTime: in.State.FirstTime,
		LastTime:  in.State.LastTime,
		Consumers: in.State.Consumers,
		Options: StreamOptions{
			MaxMsgs:         max(in.Config.MaxMsgs, 0),
			MaxAge:          in.Config.MaxAge,
			MaxBytes:        max(in.Config.MaxBytes, 0),
			Replicas:        in.Config.Replicas,
			DuplicateWindow: in.Config.Duplicates,
		},
	}
	if in.Config.Discard == jetstream.DiscardNew {
		out.Options.Discard = DiscardNew
	}
	if in.Cluster != nil {
		out.Leader = in.Cluster.Leader
		out.Replicas = len(in.Cluster.Replicas)
	}
	return out, nil
}

// RawMsg is one stored message read by sequence.
type RawMsg struct {
	// Seq is its stream sequence; Time is when it was stored.
	Seq  uint64
	Time time.Time
	// ID is its Nats-Msg-Id header (the event ID); Data its body.
	ID   string
	Data []byte
	// Header holds its other headers, first value each.
	Header map[string]string
}

// GetMsg reads the message at sequence seq directly from the stream.
func (s *Stream) GetMsg(ctx context.Context, seq uint64) (RawMsg, error) {
	m, err := s.st.GetMsg(ctx, seq)
	if err != nil {
		return RawMsg{}, fmt.Errorf("channel[%s] stream[%s] seq[%d]: get: %w", s.channel, s.name, seq, apiError(err))
	}
	r := RawMsg{Seq: m.Sequence, Time: m.Time, Data: m.Data, ID: m.Header.Get(jetstream.MsgIDHeader)}
	r.Header = headerMap(m.Header)
	return r, nil
}
