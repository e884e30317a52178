package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

// Metadata keys set on the events a persistent subscription dead-letters
// ([SubscribeOptions.DeadLetter]), besides [MetaError] (why).
const (
	// MetaErrorChannel is the channel the event was read from.
	MetaErrorChannel = "aegis.error.channel"
	// MetaErrorSeq is its sequence number in that channel.
	MetaErrorSeq = "aegis.error.seq"
	// MetaErrorDeliveries is how often it was delivered.
	MetaErrorDeliveries = "aegis.error.deliveries"
)

// publishDurable stores events in the channel's stream, in order, each
// with its ID as the message ID (a publish of the same ID within the
// channel's duplicate window is acknowledged without storing it again).
func (c *channel) publishDurable(ctx context.Context, events []Event) error {
	if err := c.isDeleted(); err != nil {
		return &PublishError{Channel: c.name, Err: err}
	}
	msgs := make([]jetstream.Msg, len(events))
	for i := range events {
		b, err := events[i].MarshalJSON()
		if err != nil {
			return channelErr(c.name, fmt.Errorf("event %d [%s]: encode: %w", i, events[i].ID, err))
		}
		msgs[i] = jetstream.Msg{ID: events[i].ID.String(), Data: b}
	}
	var acks []jetstream.PubAck
	var err error
	if len(msgs) == 1 {
		var a jetstream.PubAck
		if a, err = c.st.Publish(ctx, msgs[0]); err == nil {
			acks = []jetstream.PubAck{a}
		}
	} else {
		acks, err = c.st.PublishBatch(ctx, msgs)
	}
	var be *jetstream.BatchError
	errors.As(err, &be)
	var stored, dups uint64
	for i, a := range acks {
		if be != nil && be.Failed[i] != nil {
			continue
		}
		if a.Duplicate {
			dups++
		} else {
			stored++
		}
	}
	c.published.Add(stored)
	c.eng.published.Add(stored)
	c.duplicates.Add(dups)
	if err != nil {
		published := 0
		if be != nil {
			published = be.First
		}
		return &PublishError{Channel: c.name, Published: published, Err: durableErr(err)}
	}
	return nil
}

// durableSub is the persistent side of a [Subscription]: a JetStream
// consumer.
type durableSub struct {
	s         *Subscription
	name      string
	ephemeral bool // deleted when the subscription ends
	source    bool // a pipeline's source, read by channelSourceDurable
	cons      *jetstream.Consumer
	log       *slog.Logger

	ctx    context.Context // ends when the subscription ends
	cancel context.CancelFunc
	dlDone chan struct{} // closed when the dead-letter mover ends; nil without one

	mu sync.Mutex // one Fetch at a time

	pmu     sync.Mutex
	pending map[EventID]*jetstream.Delivery // AckManual: delivered, not settled

	stopOnce sync.Once
}

// checkDurableSubscribe checks options for a persistent channel.
func checkDurableSubscribe(o SubscribeOptions) error {
	switch {
	case o.AckMode == AckNone && o.DeliveryMode != AtMostOnce:
		return fmt.Errorf("%w: delivery mode %s needs acknowledgements (ack mode none)", ErrUnsupported, o.DeliveryMode)
	case o.AckMode == AckManual && o.DeliveryMode == AtMostOnce:
		return fmt.Errorf("%w: ack mode manual redelivers, which delivery mode %s does not allow", ErrUnsupported, o.DeliveryMode)
	case o.AckWait < 0 || o.MaxDeliver < 0:
		return fmt.Errorf("ack wait %v and max deliver %d must not be negative", o.AckWait, o.MaxDeliver)
	case len(o.Backoff) > 0 && o.MaxDeliver > 0 && o.MaxDeliver < len(o.Backoff):
		return fmt.Errorf("%d backoff values, more than max deliver %d deliveries can use", len(o.Backoff), o.MaxDeliver)
	case o.DeadLetter != "" && o.MaxDeliver == 0:
		return errors.New("a dead-letter channel needs max deliver")
	case o.Durable != "":
		return checkName("durable name", o.Durable, MaxChannelNameLen)
	}
	return nil
}

// newDurableSub creates or opens s's consumer. With source, it belongs to
// a pipeline's source, which reads and acknowledges it.
func newDurableSub(s *Subscription, prefetch int, source bool) (*durableSub, error) {
	o := s.opts
	dur := s.ch.eng.dur
	d := &durableSub{s: s, name: o.Durable, source: source, log: dur.logger(), pending: map[EventID]*jetstream.Delivery{}}
	co := jetstream.ConsumerOptions{
		Start:      o.Start.js(),
		AckWait:    o.AckWait,
		MaxDeliver: o.MaxDeliver,
		BackOff:    o.Backoff,
		Prefetch:   prefetch,
	}
	// A source acknowledges explicitly too, not cumulatively (AckAll): after
	// a restart the events given back come again only after their ack wait,
	// behind newer ones, and a cumulative ack of a newer one would
	// acknowledge them unprocessed.
	if o.AckMode == AckNone && !source {
		co.AckPolicy = jetstream.AckNone
	}
	if d.name == "" {
		d.name, d.ephemeral = "aegis-sub-"+NewEventID().String(), true
		co.InactiveThreshold = time.Minute
	}
	ctx, cancel := dur.ctx()
	defer cancel()
	cons, err := s.ch.st.Consumer(ctx, d.name, co)
	if err != nil {
		return nil, channelErr(s.ch.name, fmt.Errorf("subscription[%s]: %w", s.id, durableErr(err)))
	}
	d.cons = cons
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d, nil
}

func (d *durable) logger() *slog.Logger {
	if d.cfg.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.cfg.Logger
}

// fetch gets the next deliveries, at most max, waiting until ctx ends or
// the subscription does. A nil ctx does not wait.
func (d *durableSub) fetch(ctx context.Context, max int) ([]*jetstream.Delivery, error) {
	if err := d.s.q.closed(); err != nil {
		return nil, d.s.wrap(err)
	}
	try := ctx == nil
	if try {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(d.ctx, cancel)()
	ds, err := d.cons.Fetch(fctx, max)
	if err != nil {
		if qerr := d.s.q.closed(); qerr != nil {
			return nil, d.s.wrap(qerr)
		}
		if ctx.Err() != nil {
			if try {
				return nil, nil
			}
			return nil, ctx.Err()
		}
		return nil, d.s.wrap(durableErr(err))
	}
	return ds, nil
}

// decode turns a delivery back into its event. It checks the body and
// calls Event.UnmarshalJSON itself: json.Unmarshal would check it too, but
// then scan it once more to find the value's end before the same call,
// which made decoding a third slower.
func decodeDelivery(m *jetstream.Delivery) (Event, error) {
	var ev Event
	if !json.Valid(m.Data) {
		return ev, fmt.Errorf("seq[%d] msg[%s]: decode event: not a JSON document", m.Seq, m.ID)
	}
	if err := ev.UnmarshalJSON(m.Data); err != nil {
		return ev, fmt.Errorf("seq[%d] msg[%s]: decode event: %w", m.Seq, m.ID, err)
	}
	return ev, nil
}

// recv delivers events into dst, acknowledging them as the ack mode says.
func (d *durableSub) recv(ctx context.Context, dst []Event) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.s.opts
	for {
		ds, err := d.fetch(ctx, len(dst))
		if err != nil || len(ds) == 0 {
			return 0, err
		}
		n := 0
		settle := ds[:0:0] // auto-acknowledged: taken and filtered out
		for _, m := range ds {
			ev, err := decodeDelivery(m)
			if err != nil {
				// It will never decode: do not deliver it again.
				d.log.Warn("undecodable event terminated", "channel", d.s.ch.name, "subscription", d.s.id, "error", err)
				if o.AckMode != AckNone {
					_ = m.Term("undecodable event: " + err.Error())
				}
				continue
			}
			if o.Filter != nil && !o.Filter.Match(&ev) {
				settle = append(settle, m)
				continue
			}
			dst[n] = ev
			n++
			if o.AckMode == AckManual {
				d.pmu.Lock()
				d.pending[ev.ID] = m
				d.pmu.Unlock()
			} else {
				settle = append(settle, m)
			}
		}
		if o.AckMode != AckNone && len(settle) > 0 {
			if o.DeliveryMode == ExactlyOnce {
				actx := ctx
				if actx == nil { // TryRecv
					var cancel context.CancelFunc
					actx, cancel = d.s.ch.eng.dur.ctx()
					defer cancel()
				}
				err = d.cons.AckSync(actx, settle)
			} else {
				err = d.cons.Ack(settle)
			}
			if err != nil {
				// Not acknowledged: they come again.
				return 0, d.s.wrap(durableErr(err))
			}
		}
		if n > 0 {
			d.s.taken(n)
			return n, nil
		}
		if ctx == nil {
			return 0, nil
		}
	}
}

// stop ends the consumer's fetching and the dead-letter mover, and deletes
// an ephemeral consumer.
func (d *durableSub) stop() {
	d.stopOnce.Do(func() {
		d.cancel()
		if d.dlDone != nil {
			<-d.dlDone
		}
		d.cons.Stop()
		if d.ephemeral {
			ctx, cancel := d.s.ch.eng.dur.ctx()
			defer cancel()
			if err := d.s.ch.st.DeleteConsumer(ctx, d.name); err != nil {
				d.log.Warn("delete consumer", "channel", d.s.ch.name, "consumer", d.name, "error", err)
			}
		}
	})
}

// info adds the consumer's state to in.
func (d *durableSub) info(in *SubscriptionInfo) {
	if !d.ephemeral {
		in.Durable = d.name
	}
	in.BufferSize = 0
	ci, err := d.state()
	if err != nil {
		in.Err = err.Error()
		in.Pending, in.Lag = 0, 0
		return
	}
	in.Pending = int(ci.Pending)
	in.AckPending = ci.AckPending
	in.Redelivered = ci.Redelivered
	in.Lag = ci.Lag()
}

// state asks the server for the consumer's counts.
func (d *durableSub) state() (jetstream.ConsumerInfo, error) {
	ctx, cancel := d.s.ch.eng.dur.ctx()
	defer cancel()
	return d.cons.Info(ctx)
}

// startDeadLetters starts moving the events that exhausted MaxDeliver to
// the dead-letter channel.
func (d *durableSub) startDeadLetters() {
	o := d.s.opts
	if o.DeadLetter == "" || o.MaxDeliver == 0 || d.source {
		return
	}
	d.dlDone = make(chan struct{})
	go func() {
		defer close(d.dlDone)
		for d.ctx.Err() == nil {
			if err := d.moveDeadLetters(); err != nil && d.ctx.Err() == nil {
				d.log.Warn("dead letters", "channel", d.s.ch.name, "subscription", d.s.id, "dead_letter", o.DeadLetter, "error", err)
				select {
				case <-d.ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
}

// moveDeadLetters publishes the dead letters waiting (at most a second for
// the first) to the dead-letter channel with why, and only then
// acknowledges them: a crash in between publishes one again, which the
// dead-letter channel drops as a duplicate when it is persistent.
func (d *durableSub) moveDeadLetters() error {
	dls, err := d.cons.DeadLetters(d.ctx, 100, time.Second)
	if err != nil {
		return err
	}
	for _, dl := range dls {
		ev, err := decodeDelivery(&jetstream.Delivery{ID: dl.Msg.ID, Data: dl.Msg.Data, Seq: dl.Seq})
		if dl.Missing || err != nil {
			d.log.Warn("dead letter lost", "channel", d.s.ch.name, "seq", dl.Seq, "reason", dl.Reason, "error", err)
			if err := dl.Ack(d.ctx); err != nil {
				return err
			}
			continue
		}
		ev.Metadata = maps.Clone(ev.Metadata)
		if ev.Metadata == nil {
			ev.Metadata = map[string]string{}
		}
		ev.Metadata[MetaError] = dl.Reason
		ev.Metadata[MetaErrorChannel] = d.s.ch.name
		ev.Metadata[MetaErrorSeq] = strconv.FormatUint(dl.Seq, 10)
		ev.Metadata[MetaErrorDeliveries] = strconv.Itoa(dl.Deliveries)
		if err := d.s.ch.eng.Publish(d.ctx, d.s.opts.DeadLetter, ev); err != nil {
			return fmt.Errorf("seq[%d]: publish to dead-letter channel[%s]: %w", dl.Seq, d.s.opts.DeadLetter, err)
		}
		if err := dl.Ack(d.ctx); err != nil {
			return err
		}
	}
	return nil
}

// DeliveryInfo describes an event delivered to an [AckManual] subscription
// and not yet settled.
type DeliveryInfo struct {
	// Seq is the event's sequence number in the channel.
	Seq uint64
	// Delivered counts its deliveries, this one included: 1 the first time.
	Delivered int
	// Time is when the channel stored it.
	Time time.Time
}

// manual returns the delivery of id on an AckManual subscription.
func (s *Subscription) manual(id EventID, take bool) (*jetstream.Delivery, error) {
	if s.d == nil || s.opts.AckMode != AckManual {
		return nil, s.wrap(fmt.Errorf("%w: manual acknowledgement needs ack mode manual on a persistent channel (this subscription: %s)", ErrUnsupported, s.opts.AckMode))
	}
	s.d.pmu.Lock()
	defer s.d.pmu.Unlock()
	m := s.d.pending[id]
	if m == nil {
		return nil, s.wrap(fmt.Errorf("event[%s]: %w", id, ErrNotPending))
	}
	if take {
		delete(s.d.pending, id)
	}
	return m, nil
}

// Delivery describes the delivery of the event id, received and not yet
// settled, of an [AckManual] subscription.
func (s *Subscription) Delivery(id EventID) (DeliveryInfo, error) {
	m, err := s.manual(id, false)
	if err != nil {
		return DeliveryInfo{}, err
	}
	return DeliveryInfo{Seq: m.Seq, Delivered: m.Delivered, Time: m.Time}, nil
}

// Ack acknowledges received events of an [AckManual] subscription: they are
// done and not delivered again. Under [ExactlyOnce] it waits, until ctx
// ends, for the server's confirmation of each (once it returns nil, none
// comes again); otherwise it does not wait (an acknowledgement lost with the
// connection means a redelivery). An ID that is not awaiting an
// acknowledgement fails with [ErrNotPending] after the others are
// acknowledged.
func (s *Subscription) Ack(ctx context.Context, ids ...EventID) error {
	var errs []error
	for _, id := range ids {
		m, err := s.manual(id, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s.opts.DeliveryMode == ExactlyOnce {
			err = m.AckSync(ctx)
		} else {
			err = m.Ack()
		}
		if err != nil {
			errs = append(errs, s.wrap(fmt.Errorf("event[%s]: %w", id, err)))
			continue
		}
		s.acked.Add(1)
	}
	return errors.Join(errs...)
}

// Nak refuses a received event of an [AckManual] subscription: it is
// delivered again after delay (0: at once). That counts toward MaxDeliver.
func (s *Subscription) Nak(id EventID, delay time.Duration) error {
	m, err := s.manual(id, true)
	if err != nil {
		return err
	}
	if err := m.Nak(delay); err != nil {
		return s.wrap(fmt.Errorf("event[%s]: %w", id, err))
	}
	return nil
}

// InProgress tells the server that a received event of an [AckManual]
// subscription is still being worked on: its AckWait starts again.
func (s *Subscription) InProgress(id EventID) error {
	m, err := s.manual(id, false)
	if err != nil {
		return err
	}
	if err := m.InProgress(); err != nil {
		return s.wrap(fmt.Errorf("event[%s]: %w", id, err))
	}
	return nil
}

// Term gives up on a received event of an [AckManual] subscription, for
// reason: it is never delivered again, and does not go to the dead-letter
// channel (that is for events that exhaust MaxDeliver).
func (s *Subscription) Term(id EventID, reason string) error {
	m, err := s.manual(id, true)
	if err != nil {
		return err
	}
	if err := m.Term(reason); err != nil {
		return s.wrap(fmt.Errorf("event[%s]: %w", id, err))
	}
	return nil
}

// channelSourceDurable is a pipeline's source on a persistent channel: a
// durable consumer whose events are acknowledged once the pipeline is done
// with them.
type channelSourceDurable struct {
	s       *Subscription
	exactly bool

	mu    sync.Mutex
	held  []*jetstream.Delivery // returned by Read, not yet acknowledged, in order
	acked uint64                // events acknowledged so far
}

func (c *channelSourceDurable) Read(ctx context.Context, dst []Event, max int) ([]Event, error) {
	ds, err := c.s.d.fetch(ctx, max)
	if err != nil {
		if errors.Is(err, ErrChannelDeleted) {
			err = io.EOF
		}
		return dst, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range ds {
		ev, err := decodeDelivery(m)
		if err != nil {
			// The rest of the batch is delivered again after its ack wait.
			return dst, c.s.wrap(err)
		}
		dst = append(dst, ev)
		c.held = append(c.held, m)
		c.s.taken(1)
	}
	return dst, nil
}

// Ack acknowledges the first n events read (over all Reads), each on its
// own; under ExactlyOnce it waits for the server's confirmation of the
// last, which the server handles after the others sent before it on the
// same connection.
func (c *channelSourceDurable) Ack(ctx context.Context, n uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n <= c.acked {
		return nil
	}
	k := n - c.acked
	if k > uint64(len(c.held)) {
		return c.s.wrap(fmt.Errorf("ack of %d events, only %d read", n, c.acked+uint64(len(c.held))))
	}
	for _, m := range c.held[:k-1] {
		if err := m.Ack(); err != nil {
			return c.s.wrap(err)
		}
	}
	m := c.held[k-1]
	var err error
	if c.exactly {
		err = m.AckSync(ctx)
	} else {
		err = m.Ack()
	}
	if err != nil {
		return c.s.wrap(err)
	}
	clear(c.held[:k])
	c.held = c.held[k:]
	c.acked = n
	c.s.acked.Add(k)
	return nil
}

// Close ends the subscription; its consumer keeps the position on the
// server, and the events read but not acknowledged are delivered again.
func (c *channelSourceDurable) Close() error { return c.s.Close() }
