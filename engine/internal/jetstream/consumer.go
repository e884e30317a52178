package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Consumer is a durable consumer of a stream: it keeps its position and
// its acknowledgements on the server, so it resumes where it left off after
// a restart of the client or the server. Fetch is meant for one reader at a
// time; the other methods are safe for concurrent use.
type Consumer struct {
	s    *Stream
	name string // as given
	jn   string // JetStream name
	opts ConsumerOptions
	cons jetstream.Consumer

	mu   sync.Mutex
	cc   jetstream.ConsumeContext
	msgs chan jetstream.Msg
	errc chan error
	done chan struct{}
}

// Consumer creates the durable consumer called name on the stream, or opens
// it when it exists. A new one begins at o.Start; an existing one keeps its
// position and acknowledgements, and takes o's AckWait, MaxDeliver, BackOff
// and MaxAckPending (changing its AckPolicy is refused by the server).
// When MaxDeliver is set, the connection first makes sure the advisory
// stream that records exhausted messages exists, so none is missed.
func (s *Stream) Consumer(ctx context.Context, name string, o ConsumerOptions) (*Consumer, error) {
	c, err := s.consumer(ctx, name, o)
	if err != nil {
		return nil, fmt.Errorf("channel[%s] consumer[%s]: %w", s.channel, name, err)
	}
	return c, nil
}

func (s *Stream) consumer(ctx context.Context, name string, o ConsumerOptions) (*Consumer, error) {
	if name == "" {
		return nil, errors.New("durable name is required")
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Prefetch == 0 {
		o.Prefetch = 256
	}
	jn := ConsumerName(name)
	cfg := jetstream.ConsumerConfig{
		Durable:           jn,
		Name:              jn,
		FilterSubject:     s.subject,
		AckWait:           o.AckWait,
		MaxDeliver:        o.MaxDeliver,
		BackOff:           o.BackOff,
		MaxAckPending:     o.MaxAckPending,
		InactiveThreshold: o.InactiveThreshold,
		Metadata:          map[string]string{"aegis_consumer": name},
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = -1
	}
	switch o.AckPolicy {
	case AckAll:
		cfg.AckPolicy = jetstream.AckAllPolicy
	case AckNone:
		cfg.AckPolicy = jetstream.AckNonePolicy
	default:
		cfg.AckPolicy = jetstream.AckExplicitPolicy
	}
	if o.MaxDeliver > 0 {
		if err := s.c.ensureAdvisories(ctx, s); err != nil {
			return nil, err
		}
	}
	existing, err := s.st.Consumer(ctx, jn)
	switch {
	case err == nil:
		// Keep where it started; the server refuses to change it.
		ec := existing.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = ec.DeliverPolicy, ec.OptStartSeq, ec.OptStartTime
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if err := s.startConfig(ctx, o.Start, &cfg); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("lookup: %w", apiError(err))
	}
	cons, err := s.st.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create or update: %w", apiError(err))
	}
	// A replicated consumer answers pull requests only once it has a
	// leader; a request sent before is lost until it expires.
	for in := cons.CachedInfo(); in.Cluster != nil && in.Cluster.Leader == ""; {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no consumer leader: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if in, err = cons.Info(ctx); err != nil {
			return nil, fmt.Errorf("info: %w", apiError(err))
		}
	}
	return &Consumer{s: s, name: name, jn: jn, opts: o, cons: cons}, nil
}

func (s *Stream) startConfig(ctx context.Context, st StartPosition, cfg *jetstream.ConsumerConfig) error {
	switch st.kind {
	case startAll:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case startNew:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case startSeq:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = max(st.seq, 1)
	case startTime:
		t := st.t
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &t
	case startAfterEvent:
		seq, err := s.FindEvent(ctx, st.id)
		if err != nil {
			return err
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = seq + 1
	}
	return nil
}

// DeleteConsumer deletes the durable consumer called name with its
// position; it fails with [ErrConsumerNotFound] when there is none.
func (s *Stream) DeleteConsumer(ctx context.Context, name string) error {
	if err := s.st.DeleteConsumer(ctx, ConsumerName(name)); err != nil {
		return fmt.Errorf("channel[%s] consumer[%s]: delete: %w", s.channel, name, apiError(err))
	}
	return nil
}

// Name is the consumer's durable name as given.
func (c *Consumer) Name() string { return c.name }

// Delivery is one delivered message.
type Delivery struct {
	// ID is the message ID (the event ID); Data the body (the encoded event).
	ID   string
	Data []byte
	// Header holds the message's other headers, first value each.
	Header map[string]string
	// Seq is the stream sequence.
	Seq uint64
	// Delivered counts the deliveries of this message, this one included:
	// 1 the first time; equal to MaxDeliver on the last try.
	Delivered int
	// Pending is the number of messages after this one not yet delivered.
	Pending uint64
	// Time is when the stream stored the message.
	Time time.Time

	msg jetstream.Msg
}

func newDelivery(m jetstream.Msg) (*Delivery, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("message metadata: %w", err)
	}
	h := m.Headers()
	return &Delivery{
		ID:        h.Get(jetstream.MsgIDHeader),
		Data:      m.Data(),
		Header:    headerMap(h),
		Seq:       md.Sequence.Stream,
		Delivered: int(md.NumDelivered),
		Pending:   md.NumPending,
		Time:      md.Timestamp,
		msg:       m,
	}, nil
}

func (d *Delivery) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("seq[%d]: %s: %w", d.Seq, what, apiError(err))
}

// Ack acknowledges the message without waiting for the server's
// confirmation (an ack lost with the connection means a redelivery).
func (d *Delivery) Ack() error { return d.wrap("ack", d.msg.Ack()) }

// AckSync acknowledges the message and waits for the server's confirmation
// (or ctx): once it returns nil the message is never delivered again to
// this consumer.
func (d *Delivery) AckSync(ctx context.Context) error {
	return d.wrap("ack sync", d.msg.DoubleAck(ctx))
}

// Nak asks for the message to be delivered again after delay (0: at once).
// It counts as a delivery toward MaxDeliver.
func (d *Delivery) Nak(delay time.Duration) error {
	if delay <= 0 {
		return d.wrap("nak", d.msg.Nak())
	}
	return d.wrap("nak", d.msg.NakWithDelay(delay))
}

// InProgress tells the server the message is still being worked on, which
// restarts its ack wait.
func (d *Delivery) InProgress() error { return d.wrap("in progress", d.msg.InProgress()) }

// Term tells the server never to deliver the message again, for reason
// (which the server's MSG_TERMINATED advisory carries).
func (d *Delivery) Term(reason string) error {
	if reason == "" {
		return d.wrap("term", d.msg.Term())
	}
	return d.wrap("term", d.msg.TermWithReason(reason))
}

// pullHeartbeat is the interval of the server's idle heartbeats on a
// pending pull; two missed ones make the client pull again.
const pullHeartbeat = 500 * time.Millisecond

// start begins the continuous pull that Fetch reads from.
func (c *Consumer) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cc != nil {
		return nil
	}
	msgs := make(chan jetstream.Msg, c.opts.Prefetch)
	errc := make(chan error, 1)
	done := make(chan struct{})
	cc, err := c.cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-done:
			// Stopped with a full buffer: give it back, as Stop does.
			if c.opts.AckPolicy != AckNone {
				_ = m.Nak()
			}
		}
	},
		jetstream.PullMaxMessages(c.opts.Prefetch),
		// Short pulls: a pull lost to a leader change is renewed quickly.
		jetstream.PullExpiry(5*time.Second),
		// A pull that reaches no server is not retried by the client: on
		// a cluster, a consumer whose leader was just elected is unknown
		// for a moment to the other servers, the pull comes back "no
		// responders", and the consumer would stall until the client
		// misses two heartbeats and pulls again. Frequent heartbeats make
		// that about a second instead of the default's 5 s (at 5 s expiry).
		jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			c.s.c.log.Debug("consume", "channel", c.s.channel, "consumer", c.name, "error", err)
			select {
			case errc <- err:
			default:
			}
		}))
	if err != nil {
		return fmt.Errorf("consume: %w", apiError(err))
	}
	c.cc, c.msgs, c.errc, c.done = cc, msgs, errc, done
	return nil
}

// Fetch returns the next batch of at most max messages (max <= 0: the
// Prefetch size) in stream order. It waits until at least one message is
// there or ctx is done (then it returns ctx's error and no messages), and
// does not wait for more than the ones already received. Messages are
// fetched ahead in the background (Prefetch); [Consumer.Stop] ends that.
func (c *Consumer) Fetch(ctx context.Context, max int) ([]*Delivery, error) {
	if err := c.start(); err != nil {
		return nil, fmt.Errorf("channel[%s] consumer[%s]: %w", c.s.channel, c.name, err)
	}
	if max <= 0 {
		max = c.opts.Prefetch
	}
	var first jetstream.Msg
	select {
	case first = <-c.msgs:
	case <-ctx.Done():
		return nil, fmt.Errorf("channel[%s] consumer[%s]: fetch: %w", c.s.channel, c.name, ctx.Err())
	}
	out := make([]*Delivery, 0, min(max, 1+len(c.msgs)))
	add := func(m jetstream.Msg) error {
		d, err := newDelivery(m)
		if err != nil {
			return fmt.Errorf("channel[%s] consumer[%s]: %w", c.s.channel, c.name, err)
		}
		out = append(out, d)
		return nil
	}
	if err := add(first); err != nil {
		return out, err
	}
	for len(out) < max {
		select {
		case m := <-c.msgs:
			if err := add(m); err != nil {
				return out, err
			}
		default:
			return out, nil
		}
	}
	return out, nil
}

// Ack acknowledges a batch from Fetch, in order, without waiting for the
// server. Under [AckAll] that is one ack for the last message, which covers
// the batch and everything before it; under [AckExplicit] one per message;
// under [AckNone] nothing.
func (c *Consumer) Ack(batch []*Delivery) error {
	if len(batch) == 0 || c.opts.AckPolicy == AckNone {
		return nil
	}
	if c.opts.AckPolicy == AckAll {
		return c.wrap(batch[len(batch)-1].Ack())
	}
	for _, d := range batch {
		if err := d.Ack(); err != nil {
			return c.wrap(err)
		}
	}
	return nil
}

// AckSync is [Consumer.Ack] waiting for the server's confirmation of every
// ack it sends (the one ack under [AckAll]): when it returns nil, no
// message of the batch is delivered again.
func (c *Consumer) AckSync(ctx context.Context, batch []*Delivery) error {
	if len(batch) == 0 || c.opts.AckPolicy == AckNone {
		return nil
	}
	if c.opts.AckPolicy == AckAll {
		return c.wrap(batch[len(batch)-1].AckSync(ctx))
	}
	for _, d := range batch {
		if err := d.AckSync(ctx); err != nil {
			return c.wrap(err)
		}
	}
	return nil
}

func (c *Consumer) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("channel[%s] consumer[%s]: %w", c.s.channel, c.name, err)
}

// Stop ends the background fetching. Messages prefetched into this
// consumer but not yet returned by Fetch are given back (nak), so that a
// running server delivers them again at once; everything else delivered and
// not acknowledged (returned by Fetch, still in the client library's
// buffer, or given back just before a server restart, which forgets naks)
// is delivered again after its ack wait. The consumer stays on the server;
// Fetch starts again.
func (c *Consumer) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cc == nil {
		return
	}
	c.cc.Stop()
	// The callback may be blocked on a full buffer; done releases it, and
	// the consume context closes only once the callback has returned.
	close(c.done)
	<-c.cc.Closed()
	if c.opts.AckPolicy != AckNone {
		for {
			select {
			case m := <-c.msgs:
				_ = m.Nak()
				continue
			default:
			}
			break
		}
	}
	c.cc = nil
}

// ConsumerInfo is the state of a consumer.
type ConsumerInfo struct {
	// Pending is the number of messages not yet delivered.
	Pending uint64
	// AckPending is the number delivered and not yet acknowledged.
	AckPending int
	// Redelivered is the number of messages delivered more than once and
	// still awaiting an ack (not a running total).
	Redelivered int
	// Delivered is the stream sequence of the last delivered message;
	// AckFloor the one up to which everything is acknowledged (it stays
	// behind a message given up on after MaxDeliver).
	Delivered, AckFloor uint64
	// AckWait and MaxDeliver as the server holds them (AckWait is BackOff[0]
	// when BackOff is set; MaxDeliver -1 is no limit).
	AckWait    time.Duration
	MaxDeliver int
}

// Lag is how many messages the consumer has not finished: Pending plus
// AckPending.
func (i ConsumerInfo) Lag() uint64 { return i.Pending + uint64(i.AckPending) }

// Info asks the server for the consumer's state.
func (c *Consumer) Info(ctx context.Context) (ConsumerInfo, error) {
	in, err := c.cons.Info(ctx)
	if err != nil {
		return ConsumerInfo{}, c.wrap(fmt.Errorf("info: %w", apiError(err)))
	}
	return ConsumerInfo{
		Pending:     in.NumPending,
		AckPending:  in.NumAckPending,
		Redelivered: in.NumRedelivered,
		Delivered:   in.Delivered.Stream,
		AckFloor:    in.AckFloor.Stream,
		AckWait:     in.Config.AckWait,
		MaxDeliver:  in.Config.MaxDeliver,
	}, nil
}
