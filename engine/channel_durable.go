package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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

// UndecodableType is the type of the event that stands for a message of a
// persistent channel that is not an event (its body does not decode, or
// decodes to an invalid event), sent to the dead-letter channel in its
// place. Its ID is the message's ID when that is an event ID, else one
// derived from the channel, the sequence number and the time the channel
// stored it (the same on every delivery); its source is the channel; its
// time when the channel stored it; its data the body, as bytes; and its
// metadata [MetaError] (why it did not decode), [MetaErrorChannel],
// [MetaErrorSeq] and [MetaErrorDeliveries].
const UndecodableType EventType = "aegis.undecodable"

// publishDurable stores events in the channel's stream, in order, each
// with its ID as the message ID (a publish of the same ID within the
// channel's duplicate window is acknowledged without storing it again).
func (c *channel) publishDurable(ctx context.Context, events []Event) error {
	if err := c.isDeleted(); err != nil {
		return &PublishError{Channel: c.name, Err: err}
	}
	msgs := make([]jetstream.Msg, len(events))
	size := 0
	for i := range events {
		size += ABIRecordSize(&events[i])
	}
	// One allocation holds every body: the connection copies them out.
	buf := make([]byte, 0, size)
	for i := range events {
		start := len(buf)
		var err error
		if buf, err = appendStored(buf, &events[i]); err != nil {
			return channelErr(c.name, fmt.Errorf("event %d [%s]: encode: %w", i, events[i].ID, err))
		}
		msgs[i] = jetstream.Msg{ID: events[i].ID.String(), Data: buf[start:len(buf):len(buf)]}
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

	// dlMu makes passes over the dead letters one at a time, so that a
	// pass that finds none knows that none is being moved either.
	dlMu sync.Mutex
	// dlRetry are dead letters taken from the store whose move failed:
	// the next pass tries them first (the store gives them back only
	// after a minute).
	dlRetry []*jetstream.DeadLetter

	nDeadLettered atomic.Uint64 // events moved to the dead-letter channel
	nUndecodable  atomic.Uint64 // messages that are not events, terminated

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

// decodeDelivery turns a delivery back into its event (see decodeStored).
// It fails for a body that is not an event, and for an invalid event
// (written by something else than the engine, which validates what it
// publishes): the engine could not publish it on.
func decodeDelivery(m *jetstream.Delivery) (Event, error) {
	ev, err := decodeStored(m.Data)
	if err != nil {
		return ev, fmt.Errorf("seq[%d] msg[%s]: decode event: %w", m.Seq, m.ID, err)
	}
	return ev, nil
}

// undecodableEvent is the event of type [UndecodableType] that stands for
// the message m of channel, which did not decode for why.
func undecodableEvent(channel string, m *jetstream.Delivery, why error) Event {
	ev := Event{Type: UndecodableType, Source: channel, Time: m.Time.UnixNano(), Data: BytesData(m.Data)}
	if id, err := ParseEventID(m.ID); err == nil && !id.IsZero() {
		ev.ID = id
	} else {
		// The same on every delivery, so that a persistent dead-letter
		// channel stores it once; the time tells apart the messages of a
		// channel deleted and made again.
		ev.ID = hashID(fmt.Appendf(nil, "aegis.undecodable\x00%s\x00%d\x00%d", channel, m.Seq, m.Time.UnixNano()))
	}
	if m.Time.IsZero() {
		ev.Time = 0
	}
	ev.Metadata = map[string]string{}
	setErrorMeta(ev.Metadata, "undecodable event: "+why.Error(), channel, m)
	return ev
}

// setErrorMeta records in meta why the message m of channel is dead, and
// where it was.
func setErrorMeta(meta map[string]string, why, channel string, m *jetstream.Delivery) {
	meta[MetaError] = why
	meta[MetaErrorChannel] = channel
	meta[MetaErrorSeq] = strconv.FormatUint(m.Seq, 10)
	meta[MetaErrorDeliveries] = strconv.Itoa(m.Delivered)
}

// undecodable deals with a delivered message that is not an event (why):
// it will never decode, so it is not delivered again (terminated, unless
// the subscription does not acknowledge) and goes to the dead-letter
// channel if there is one, else it is logged. When the dead-letter channel
// refuses it, it is left to be delivered again after its ack wait.
func (d *durableSub) undecodable(m *jetstream.Delivery, why error) {
	o := d.s.opts
	log := d.log.With("channel", d.s.ch.name, "subscription", d.s.id, "seq", m.Seq, "error", why)
	if o.DeadLetter != "" {
		ctx, cancel := context.WithTimeout(d.ctx, d.s.ch.eng.dur.cfg.Timeout)
		err := d.s.ch.eng.Publish(ctx, o.DeadLetter, undecodableEvent(d.s.ch.name, m, why))
		cancel()
		if err != nil {
			log.Warn("undecodable event: publish to the dead-letter channel failed; it comes again after its ack wait", "dead_letter", o.DeadLetter, "publish_error", err)
			return
		}
	}
	if o.AckMode != AckNone || d.source {
		if err := m.Term("undecodable event: " + why.Error()); err != nil {
			log.Warn("undecodable event: terminate", "term_error", err)
		}
	}
	d.nUndecodable.Add(1)
	if o.DeadLetter != "" {
		log.Warn("undecodable event terminated and sent to the dead-letter channel", "dead_letter", o.DeadLetter)
	} else {
		log.Warn("undecodable event terminated")
	}
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
				d.undecodable(m, err)
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
		// What the receiver took and did not settle goes back now, as
		// what was fetched ahead of it does: the next subscription of a
		// durable name gets it at once, not after its ack wait.
		d.pmu.Lock()
		for id, m := range d.pending {
			if err := m.Nak(0); err != nil {
				d.log.Debug("give back", "channel", d.s.ch.name, "consumer", d.name, "event", id, "error", err)
			}
			delete(d.pending, id)
		}
		d.pmu.Unlock()
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
	in.DeadLettered = d.nDeadLettered.Load()
	in.Undecodable = d.nUndecodable.Load()
	in.Lag = ci.Lag()
}

// state asks the server for the consumer's counts.
func (d *durableSub) state() (jetstream.ConsumerInfo, error) {
	ctx, cancel := d.s.ch.eng.dur.ctx()
	defer cancel()
	return d.cons.Info(ctx)
}

// startDeadLetters starts moving the events that exhausted MaxDeliver to
// the dead-letter channel, in the background, for as long as the
// subscription lasts.
// A pipeline's source without a dead-letter channel logs them instead, so
// that an event given up on does not go unnoticed.
func (d *durableSub) startDeadLetters() {
	o := d.s.opts
	if o.MaxDeliver == 0 || o.DeadLetter == "" && !d.source {
		return
	}
	d.dlDone = make(chan struct{})
	go func() {
		defer close(d.dlDone)
		for d.ctx.Err() == nil {
			// A pass waits only briefly for dead letters (its wait does not
			// end with the subscription, which stop waits for), then
			// the mover sleeps, unless the pass was full.
			n, ferr, merr := d.moveDeadLetters(d.ctx, deadLetterWait)
			err := errors.Join(merr, ferr)
			if err != nil && d.ctx.Err() == nil {
				d.log.Warn("dead letters", "channel", d.s.ch.name, "subscription", d.s.id, "dead_letter", o.DeadLetter, "error", err)
			}
			if err == nil && n == deadLetterBatch {
				continue
			}
			select {
			case <-d.ctx.Done():
			case <-time.After(deadLetterEvery):
			}
		}
	}()
}

// The dead-letter mover's passes: at most deadLetterBatch dead letters
// each, waiting up to deadLetterWait for them, every deadLetterEvery.
const (
	deadLetterBatch = 100
	deadLetterWait  = 100 * time.Millisecond
	deadLetterEvery = time.Second
)

// moveDeadLetters makes one pass over the dead letters: those whose move
// failed before, then those waiting in the store (waiting up to wait for
// them, at most deadLetterBatch). It publishes each to the dead-letter
// channel with why, and only then acknowledges it: a crash in between
// publishes one again, which the dead-letter channel drops as a duplicate
// when it is persistent (the event keeps its ID). It returns how many it
// took from the store, the error getting them, and the first error moving
// one; the dead letters not moved are kept for the next pass.
func (d *durableSub) moveDeadLetters(ctx context.Context, wait time.Duration) (n int, fetchErr, moveErr error) {
	d.dlMu.Lock()
	defer d.dlMu.Unlock()
	dls := d.dlRetry
	d.dlRetry = nil
	fresh, err := d.cons.DeadLetters(ctx, deadLetterBatch, wait)
	for _, f := range fresh {
		// One whose move failed comes back from the store after a while:
		// keep one of each.
		if !slices.ContainsFunc(dls, func(r *jetstream.DeadLetter) bool { return r.Seq == f.Seq }) {
			dls = append(dls, f)
		}
	}
	for i, dl := range dls {
		if merr := d.moveDeadLetter(ctx, dl); merr != nil {
			d.dlRetry = dls[i:]
			return len(fresh), err, merr
		}
	}
	return len(fresh), err, nil
}

// moveDeadLetter publishes one dead letter to the dead-letter channel and
// acknowledges it.
func (d *durableSub) moveDeadLetter(ctx context.Context, dl *jetstream.DeadLetter) error {
	o := d.s.opts
	log := d.log.With("channel", d.s.ch.name, "subscription", d.s.id, "seq", dl.Seq, "deliveries", dl.Deliveries, "dead_letter", o.DeadLetter)
	if dl.Missing {
		log.Warn("dead letter lost: the channel no longer holds it", "reason", dl.Reason)
		return dl.Ack(ctx)
	}
	m := &jetstream.Delivery{ID: dl.Msg.ID, Data: dl.Msg.Data, Seq: dl.Seq, Delivered: dl.Deliveries, Time: dl.Msg.Time}
	ev, err := decodeDelivery(m)
	if err != nil {
		ev = undecodableEvent(d.s.ch.name, m, err)
		ev.Metadata[MetaError] = dl.Reason + "; " + ev.Metadata[MetaError]
	} else {
		ev.Metadata = maps.Clone(ev.Metadata)
		if ev.Metadata == nil {
			ev.Metadata = map[string]string{}
		}
		setErrorMeta(ev.Metadata, dl.Reason, d.s.ch.name, m)
	}
	if o.DeadLetter == "" {
		log.Warn("event given up on; it stays in the channel (no dead-letter channel)", "event", ev.ID, "reason", dl.Reason)
		return dl.Ack(ctx)
	}
	if err := d.s.ch.eng.Publish(ctx, o.DeadLetter, ev); err != nil {
		return fmt.Errorf("seq[%d]: publish to dead-letter channel[%s]: %w", dl.Seq, o.DeadLetter, err)
	}
	if err := dl.Ack(ctx); err != nil {
		return err
	}
	d.nDeadLettered.Add(1)
	log.Warn("event sent to the dead-letter channel", "event", ev.ID, "reason", dl.Reason)
	return nil
}

// caughtUp reports whether the consumer has nothing undelivered, nothing
// delivered and awaiting an acknowledgement, and (with a dead-letter
// channel) no dead letter left to move: it makes a pass over the dead
// letters, which waits a moment for the record of an event given up on
// just before, and checks the consumer again after it. A store that does
// not answer means not caught up (yet); a dead letter that cannot be
// moved is an error.
func (d *durableSub) caughtUp(ctx context.Context) (bool, error) {
	idle := func() bool {
		ci, err := d.cons.Info(ctx)
		if err != nil {
			d.log.Debug("caught up: consumer info", "channel", d.s.ch.name, "subscription", d.s.id, "error", err)
			return false
		}
		return ci.Pending == 0 && ci.AckPending == 0
	}
	if !idle() {
		return false, nil
	}
	if d.dlDone == nil {
		return true, nil
	}
	// The server drops an event given up on from the ack pending before
	// its record reaches the store of dead letters: the pass waits for it.
	_, ferr, merr := d.moveDeadLetters(ctx, caughtUpDeadLetterWait)
	if merr != nil {
		return false, d.s.wrap(fmt.Errorf("dead letters: %w", merr))
	}
	if ferr != nil {
		d.log.Debug("caught up: dead letters", "channel", d.s.ch.name, "subscription", d.s.id, "error", ferr)
		return false, nil
	}
	d.dlMu.Lock()
	left := len(d.dlRetry)
	d.dlMu.Unlock()
	return left == 0 && idle(), nil
}

// caughtUpDeadLetterWait is how long [durableSub.caughtUp] waits for dead
// letters to arrive.
const caughtUpDeadLetterWait = 250 * time.Millisecond

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

// settle does op on the delivery of the received event id of an
// [AckManual] subscription, taking it out of the pending ones when take,
// and names the event in op's error.
func (s *Subscription) settle(id EventID, take bool, op func(*jetstream.Delivery) error) error {
	m, err := s.manual(id, take)
	if err != nil {
		return err
	}
	if err := op(m); err != nil {
		return s.wrap(fmt.Errorf("event[%s]: %w", id, err))
	}
	return nil
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
	return s.settle(id, true, func(m *jetstream.Delivery) error { return m.Nak(delay) })
}

// InProgress tells the server that a received event of an [AckManual]
// subscription is still being worked on: its AckWait starts again.
func (s *Subscription) InProgress(id EventID) error {
	return s.settle(id, false, (*jetstream.Delivery).InProgress)
}

// Term gives up on a received event of an [AckManual] subscription, for
// reason: it is never delivered again, and does not go to the dead-letter
// channel (that is for events that exhaust MaxDeliver).
func (s *Subscription) Term(id EventID, reason string) error {
	return s.settle(id, true, func(m *jetstream.Delivery) error { return m.Term(reason) })
}

// channelSourceDurable is a pipeline's source on a persistent channel: a
// durable consumer whose events are acknowledged once the pipeline is done
// with them.
//
// Acknowledgements go by position: Ack(n) acknowledges the first n events
// that Read returned, each with its own delivery. Messages that Read does
// not return are never in held: one that is not an event is terminated
// (and dead-lettered) by Read itself; a delivery of an event that held has
// already (given back after its ack wait while the pipeline is still at
// it) is dropped, as acknowledging the held delivery settles the event for
// the server, whichever delivery is newer; and a delivery of an event
// acknowledged a moment ago (given back before the acknowledgement
// arrived, and fetched ahead since) is acknowledged again and dropped.
// An event the server
// gave up on after MaxDeliver, which the dead-letter mover sends on, may
// still be in held when its last delivery outlasted its ack wait: its
// acknowledgement then comes too late and the server ignores it (it was
// both processed and dead-lettered).
type channelSourceDurable struct {
	s       *Subscription
	exactly bool

	mu      sync.Mutex
	held    []*jetstream.Delivery // returned by Read, not yet acknowledged, in order
	heldSeq map[uint64]struct{}   // the sequence numbers in held
	acked   uint64                // events acknowledged so far
	// recent are the sequence numbers of the last events acknowledged
	// (recentQ in order, oldest first), whose redeliveries still in the
	// buffer are stale.
	recent  map[uint64]struct{}
	recentQ []uint64
}

// recentAcks is how many acknowledged sequence numbers a source remembers:
// more than the deliveries fetched ahead, which is where stale ones wait.
const recentAcks = 4096

func (c *channelSourceDurable) Read(ctx context.Context, dst []Event, max int) ([]Event, error) {
	ds, err := c.s.d.fetch(ctx, max)
	if err != nil {
		if errors.Is(err, ErrChannelDeleted) {
			err = io.EOF
		}
		return dst, err
	}
	// Undecodable messages are dealt with once the lock is released: a
	// publish to the dead-letter channel may wait, and Ack must not.
	type bad struct {
		m   *jetstream.Delivery
		err error
	}
	var bads []bad
	defer func() {
		for _, b := range bads {
			c.s.d.undecodable(b.m, b.err)
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.heldSeq == nil {
		c.heldSeq, c.recent = map[uint64]struct{}{}, map[uint64]struct{}{}
	}
	for _, m := range ds {
		if _, dup := c.heldSeq[m.Seq]; dup {
			c.s.d.log.Debug("redelivered while in the pipeline", "channel", c.s.ch.name, "subscription", c.s.id, "seq", m.Seq, "delivered", m.Delivered)
			continue
		}
		if _, done := c.recent[m.Seq]; done {
			if err := m.Ack(); err != nil {
				c.s.d.log.Debug("ack again", "channel", c.s.ch.name, "subscription", c.s.id, "seq", m.Seq, "error", err)
			}
			continue
		}
		ev, err := decodeDelivery(m)
		if err != nil {
			// It will never decode: a pipeline stopped by it would be
			// stopped again by each delivery, forever.
			bads = append(bads, bad{m, err})
			continue
		}
		dst = append(dst, ev)
		c.held = append(c.held, m)
		c.heldSeq[m.Seq] = struct{}{}
		c.s.taken(1)
	}
	return dst, nil
}

// CaughtUp implements [CaughtUpSource].
func (c *channelSourceDurable) CaughtUp(ctx context.Context) (bool, error) {
	return c.s.d.caughtUp(ctx)
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
	for _, m := range c.held[:k] {
		delete(c.heldSeq, m.Seq)
		if len(c.recentQ) == recentAcks {
			delete(c.recent, c.recentQ[0])
			c.recentQ = c.recentQ[1:]
		}
		c.recent[m.Seq] = struct{}{}
		c.recentQ = append(c.recentQ, m.Seq)
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
