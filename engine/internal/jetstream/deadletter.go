package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Advisories about exhausted messages are plain core NATS messages, lost
// when nobody listens at that moment (the host may be down). A stream
// captures them so none is lost; [Consumer.DeadLetters] reads it.
const (
	// AdvisoryStream is the stream that captures MAX_DELIVERIES advisories.
	AdvisoryStream = "aegis-advisories"
	// maxDeliveriesSubject prefixes the advisory subject; the stream and the
	// consumer name follow.
	maxDeliveriesSubject = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."
	// advisoryMaxAge is how long an unread advisory is kept.
	advisoryMaxAge = 30 * 24 * time.Hour
)

// Headers of a message moved to a dead-letter channel by
// [Consumer.MoveDeadLetters].
const (
	HeaderDeadReason     = "Aegis-Dead-Reason"
	HeaderDeadDeliveries = "Aegis-Dead-Deliveries"
	HeaderDeadChannel    = "Aegis-Dead-Channel"
	HeaderDeadSeq        = "Aegis-Dead-Seq"
	HeaderDeadID         = "Aegis-Dead-Id"
)

// ensureAdvisories creates the advisory stream once per connection (with
// the most replicas any stream asked for so far).
func (c *Conn) ensureAdvisories(ctx context.Context, s *Stream) error {
	c.advOnce.Lock()
	defer c.advOnce.Unlock()
	if c.advOK {
		return nil
	}
	replicas := c.replicas
	if in, err := s.st.Info(ctx); err == nil {
		replicas = max(replicas, in.Config.Replicas)
	}
	_, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      AdvisoryStream,
		Subjects:  []string{maxDeliveriesSubject + ">"},
		Retention: jetstream.WorkQueuePolicy,
		MaxAge:    advisoryMaxAge,
		Storage:   jetstream.FileStorage,
		Replicas:  replicas,
	})
	if err != nil {
		return fmt.Errorf("advisory stream[%s]: %w", AdvisoryStream, apiError(err))
	}
	c.advOK = true
	return nil
}

// DeadLetter is a message the consumer gave up on after MaxDeliver
// deliveries without an ack.
type DeadLetter struct {
	// Seq is the message's stream sequence; Deliveries how often it was
	// delivered.
	Seq        uint64
	Deliveries int
	// Reason says why it is dead.
	Reason string
	// Msg is the message as the stream holds it; Missing is true when the
	// stream no longer holds it (removed by its limits), and Msg then has
	// only Seq.
	Msg     RawMsg
	Missing bool

	adv jetstream.Msg
}

// Ack removes the dead letter from the advisory stream once the caller has
// dealt with it (written it to a dead-letter channel); until then it is
// returned again after a minute.
func (d *DeadLetter) Ack(ctx context.Context) error {
	if err := d.adv.DoubleAck(ctx); err != nil {
		return fmt.Errorf("dead letter seq[%d]: ack: %w", d.Seq, apiError(err))
	}
	return nil
}

// maxDeliveriesAdvisory is the part of the server's
// io.nats.jetstream.advisory.v1.max_deliver advisory used here.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
}

// deadLetterConsumer opens the advisory stream's consumer for c's
// advisories.
func (c *Consumer) deadLetterConsumer(ctx context.Context) (jetstream.Consumer, error) {
	if c.opts.MaxDeliver <= 0 {
		return nil, errors.New("dead letters: the consumer has no MaxDeliver")
	}
	return c.s.c.js.CreateOrUpdateConsumer(ctx, AdvisoryStream, jetstream.ConsumerConfig{
		Durable:       encodeName("dlq."+c.s.name+"."+c.jn, 0),
		FilterSubject: maxDeliveriesSubject + c.s.name + "." + c.jn,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
	})
}

// DeadLetters returns up to max messages that exhausted MaxDeliver, oldest
// first, waiting at most wait for the first. The caller writes each to its
// dead-letter channel and then calls [DeadLetter.Ack]; one not acknowledged
// comes back, so a crash in between loses none (write with a deterministic
// ID, as [Consumer.MoveDeadLetters] does, so it is not written twice).
func (c *Consumer) DeadLetters(ctx context.Context, max int, wait time.Duration) ([]*DeadLetter, error) {
	out, err := c.deadLetters(ctx, max, wait)
	if err != nil {
		return out, c.wrap(err)
	}
	return out, nil
}

func (c *Consumer) deadLetters(ctx context.Context, max int, wait time.Duration) ([]*DeadLetter, error) {
	dc, err := c.deadLetterConsumer(ctx)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, nil // see below
	}
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", apiError(err))
	}
	if max <= 0 {
		max = 100
	}
	if wait <= 0 {
		wait = time.Millisecond
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait = max0(time.Until(dl))
	}
	b, err := dc.Fetch(max, jetstream.FetchMaxWait(wait))
	if errors.Is(err, nats.ErrNoResponders) {
		// On a cluster, a consumer just made (or whose leader just
		// changed) is unknown to the other servers for a moment: none
		// this time, the next call asks again.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", apiError(err))
	}
	var out []*DeadLetter
	for m := range b.Messages() {
		var a maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data(), &a); err != nil {
			// Not ours to interpret; drop it so it does not come back.
			_ = m.Term()
			c.s.c.log.Warn("unreadable max deliveries advisory", "error", err)
			continue
		}
		d := &DeadLetter{
			Seq:        a.StreamSeq,
			Deliveries: a.Deliveries,
			Reason:     fmt.Sprintf("max deliveries (%d) exceeded: not acknowledged within the ack wait, or refused (nak) on the last delivery", a.Deliveries),
			adv:        m,
		}
		raw, err := c.s.GetMsg(ctx, a.StreamSeq)
		switch {
		case err == nil:
			d.Msg = raw
		case errors.Is(err, jetstream.ErrMsgNotFound) || isAPICode(err, 10037):
			d.Missing = true
			d.Msg = RawMsg{Seq: a.StreamSeq}
			d.Reason += "; the stream no longer holds the message"
		default:
			return out, err
		}
		out = append(out, d)
	}
	if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrNoResponders) {
		return out, fmt.Errorf("dead letters: %w", apiError(err))
	}
	return out, nil
}

// MoveDeadLetters writes up to max dead letters (see [Consumer.DeadLetters])
// to the stream to, each with its ID "dlq-<stream>-<seq>" (so a repeat after
// a crash is a duplicate) and the headers Aegis-Dead-Reason, -Deliveries,
// -Channel, -Seq and -Id (the original ID), then acknowledges them. It
// returns how many it moved.
func (c *Consumer) MoveDeadLetters(ctx context.Context, to *Stream, max int, wait time.Duration) (int, error) {
	dls, err := c.DeadLetters(ctx, max, wait)
	n := 0
	for _, d := range dls {
		h := map[string]string{}
		for k, v := range d.Msg.Header {
			if !strings.HasPrefix(strings.ToLower(k), "nats-") {
				h[k] = v
			}
		}
		h[HeaderDeadReason] = d.Reason
		h[HeaderDeadDeliveries] = strconv.Itoa(d.Deliveries)
		h[HeaderDeadChannel] = c.s.channel
		h[HeaderDeadSeq] = strconv.FormatUint(d.Seq, 10)
		if d.Msg.ID != "" {
			h[HeaderDeadID] = d.Msg.ID
		}
		if _, err := to.Publish(ctx, Msg{ID: fmt.Sprintf("dlq-%s-%d", c.s.name, d.Seq), Data: d.Msg.Data, Header: h}); err != nil {
			return n, c.wrap(fmt.Errorf("move dead letter seq[%d] to channel[%s]: %w", d.Seq, to.channel, err))
		}
		if err := d.Ack(ctx); err != nil {
			return n, c.wrap(err)
		}
		n++
	}
	return n, err
}

func isAPICode(err error, code jetstream.ErrorCode) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == code
}

func max0(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return time.Millisecond
	}
	return d
}
