package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ReadOptions says which of a stream's messages [Stream.Read] reads.
type ReadOptions struct {
	// Start is where reading begins: [StartAll] (the zero value),
	// [StartAtSeq], [StartAtTime] or [StartAfterEvent]; [StartNew] reads
	// nothing.
	Start StartPosition
	// Until is the sequence of the last message read; 0: the stream's last
	// when Read begins, so messages published meanwhile are not read.
	Until uint64
}

const (
	// readBatch is how many messages a read asks the server for at a time.
	readBatch = 1024
	// readIdle is how long a read waits for a message before it asks the
	// server whether any is left.
	readIdle = 250 * time.Millisecond
)

// Read calls fn with the stream's messages from o.Start up to o.Until, in
// stream order, until fn returns false or an error (which Read returns).
// It buffers at most 1024 messages ahead of fn, so a read of any length
// needs no more memory than that and what fn keeps.
//
// It reads through a consumer of its own that acknowledges nothing and is
// deleted when the read ends (or by the server soon after, should the
// delete be lost); on a cluster, a pull request that got lost while that
// consumer was getting its leader makes the read go on through a new one. Messages the stream removes meanwhile (its limits) are
// skipped. A start after the event ID fails with [ErrEventNotFound] when
// the stream does not hold that event.
func (s *Stream) Read(ctx context.Context, o ReadOptions, fn func(RawMsg) (bool, error)) error {
	if err := s.read(ctx, o, fn); err != nil {
		return fmt.Errorf("channel[%s] stream[%s]: read from %s: %w", s.channel, s.name, o.Start, err)
	}
	return nil
}

func (s *Stream) read(ctx context.Context, o ReadOptions, fn func(RawMsg) (bool, error)) error {
	until := o.Until
	if until == 0 {
		in, err := s.st.Info(ctx)
		if err != nil {
			return apiError(err)
		}
		if in.State.Msgs == 0 && o.Start.kind != startAfterEvent {
			return nil
		}
		until = in.State.LastSeq
	}
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// A backstop for a delete that did not reach the server.
		InactiveThreshold: 30 * time.Second,
	}
	switch o.Start.kind {
	case startNew:
		return nil
	case startSeq:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, max(o.Start.seq, 1)
	case startTime:
		t := o.Start.t
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	case startAfterEvent:
		seq, err := s.findEvent(ctx, o.Start.id)
		if err != nil {
			return err
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
	}
	return s.readRange(ctx, cfg, until, fn)
}

// readRange reads from cfg's start up to until through ordered consumers,
// going on through a new one when a pull request was lost.
func (s *Stream) readRange(ctx context.Context, cfg jetstream.OrderedConsumerConfig, until uint64, fn func(RawMsg) (bool, error)) error {
	for {
		if cfg.OptStartSeq > until {
			return nil
		}
		last, err := s.readFrom(ctx, cfg, until, fn)
		if !errors.Is(err, errPullLost) {
			return err
		}
		// Read again from where it stopped, through a new consumer.
		s.c.log.Debug("read: pull request lost, reading on", "channel", s.channel, "after", last)
		if last > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, last+1, nil
		}
	}
}

// errPullLost: the server holds messages for a read's consumer, but has
// no pull request from it to send them on.
var errPullLost = errors.New("pull request lost")

// readFrom reads through an ordered consumer made with cfg, up to until,
// and returns the sequence of the last message read (0: none).
//
// A pull request sent while a clustered consumer is still getting its
// leader can be lost, and then nothing comes (the client library does not
// notice for long): when nothing came for readIdle, it asks the server,
// and when the server has messages and no pull request, it fails with
// errPullLost so that the read goes on through a new consumer.
func (s *Stream) readFrom(ctx context.Context, cfg jetstream.OrderedConsumerConfig, until uint64, fn func(RawMsg) (bool, error)) (last uint64, err error) {
	oc, err := s.st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("consumer: %w", apiError(err))
	}
	defer s.dropOrdered(ctx, oc)
	batch := readBatch
	if cfg.OptStartSeq > 0 {
		batch = int(min(until-cfg.OptStartSeq+1, readBatch))
	}
	it, err := oc.Messages(jetstream.PullMaxMessages(max(batch, 1)))
	if err != nil {
		return 0, fmt.Errorf("consumer: %w", apiError(err))
	}
	defer it.Stop()
	for {
		nctx, cancel := context.WithTimeout(ctx, readIdle)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil && nctx.Err() != nil && ctx.Err() == nil {
			// Nothing came: more is on its way, nothing is left from the
			// start on (what the window held was removed), or the pull
			// request was lost.
			in, err := oc.Info(ctx)
			if err != nil {
				return last, fmt.Errorf("consumer info: %w", apiError(err))
			}
			// A consumer made anew (after a gap) has delivered nothing yet.
			if in.NumPending == 0 && (in.Delivered.Consumer == 0 || in.Delivered.Stream <= last) {
				return last, nil
			}
			if in.NumPending > 0 && in.NumWaiting == 0 {
				return last, errPullLost
			}
			continue
		}
		if err != nil {
			return last, apiError(err)
		}
		md, err := m.Metadata()
		if err != nil {
			return last, fmt.Errorf("message metadata: %w", err)
		}
		seq := md.Sequence.Stream
		if seq > until {
			return last, nil
		}
		last = seq
		h := m.Headers()
		more, err := fn(RawMsg{Seq: seq, Time: md.Timestamp, ID: h.Get(jetstream.MsgIDHeader), Data: m.Data(), Header: headerMap(h)})
		if err != nil || !more || seq == until || md.NumPending == 0 {
			return last, err
		}
	}
}

// dropOrdered deletes the ordered consumer's current server consumer now
// rather than after its inactivity threshold: a read that ends leaves no
// consumer behind to count in the stream's state.
func (s *Stream) dropOrdered(ctx context.Context, oc jetstream.Consumer) {
	in := oc.CachedInfo()
	if in == nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.st.DeleteConsumer(dctx, in.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.c.log.Debug("delete read consumer", "channel", s.channel, "consumer", in.Name, "error", err)
	}
}
