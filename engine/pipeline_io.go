package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// GeneratorConfig configures a [Generator] source.
type GeneratorConfig struct {
	// Event returns the i-th event (from 0).
	Event func(i int64) Event
	// Count is how many events to generate; 0 means without end.
	Count int64
	// Rate is events per second; 0 means as fast as they are read.
	Rate float64
}

// Generator returns a source of generated events, for demos and
// benchmarks.
func Generator(cfg GeneratorConfig) Source { return &generator{cfg: cfg} }

type generator struct {
	cfg   GeneratorConfig
	next  int64
	start time.Time
}

func (g *generator) Read(ctx context.Context, dst []Event, max int) ([]Event, error) {
	n := int64(max)
	if g.cfg.Count > 0 {
		n = min(n, g.cfg.Count-g.next)
		if n <= 0 {
			return dst, io.EOF
		}
	}
	if g.cfg.Rate > 0 {
		if g.start.IsZero() {
			g.start = time.Now()
		}
		// Events due by now; if none, wait for the next.
		due := int64(time.Since(g.start).Seconds()*g.cfg.Rate) + 1 - g.next
		if due <= 0 {
			at := g.start.Add(time.Duration(float64(g.next) / g.cfg.Rate * float64(time.Second)))
			t := time.NewTimer(time.Until(at))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return dst, ctx.Err()
			}
			due = 1
		}
		n = min(n, due)
	} else if err := ctx.Err(); err != nil {
		return dst, err
	}
	for range n {
		dst = append(dst, g.cfg.Event(g.next))
		g.next++
	}
	if g.cfg.Count > 0 && g.next == g.cfg.Count {
		return dst, io.EOF
	}
	return dst, nil
}

func (g *generator) Close() error { return nil }

// Format is how events are written as JSON lines and read from them.
type Format uint8

const (
	// FormatEvent is the whole event as [Event.MarshalJSON] writes it.
	FormatEvent Format = iota
	// FormatData is the event's data alone: JSON data as is, other kinds
	// as their JSON value.
	FormatData
)

var formatNames = [...]string{FormatEvent: "event", FormatData: "data"}

func (f Format) String() string { return enumName(formatNames[:], int(f), "format") }

// ParseFormat parses "event" or "data".
func ParseFormat(s string) (Format, error) {
	v, err := parseEnum(formatNames[:], s, "format")
	return Format(v), err
}

// MaxLineSize is the longest JSON line a [JSONLines] source reads.
const MaxLineSize = 16 << 20

// JSONLinesConfig configures a [JSONLines] source.
type JSONLinesConfig struct {
	// Name names the input in errors ("stdin", a file name) and is the
	// source of events read in FormatData.
	Name   string
	Format Format
	// Type is the type of events read in FormatData.
	Type EventType
}

// JSONLines returns a source that reads one event per line from r (blank
// lines are skipped). A line that is not a valid event stops the source
// with an error naming the input and the line. The events get a new ID
// and the current time where they have none. Closing the source closes r
// if it is an io.Closer.
func JSONLines(r io.Reader, cfg JSONLinesConfig) Source {
	s := &jsonLines{cfg: cfg, r: r, lines: make(chan lineBatch, 2), stop: make(chan struct{})}
	go s.scan()
	return s
}

type lineBatch struct {
	events []Event
	err    error
}

type jsonLines struct {
	cfg     JSONLinesConfig
	r       io.Reader
	lines   chan lineBatch
	pending []Event
	err     error
	stop    chan struct{}
	once    sync.Once
}

// scan reads and decodes lines in its own goroutine, so that Read can
// honour its context while the reader blocks.
func (s *jsonLines) scan() {
	defer close(s.lines)
	br := bufio.NewReaderSize(s.r, 64<<10)
	line := 0
	var batch []Event
	flush := func(err error) bool {
		select {
		case s.lines <- lineBatch{batch, err}:
			batch = nil
			return true
		case <-s.stop:
			return false
		}
	}
	tooLong := func() { flush(fmt.Errorf("%s: line %d: longer than %d bytes", s.cfg.Name, line+1, MaxLineSize)) }
	var long []byte // a line longer than the buffer, collected
	for {
		b, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, b...)
			if len(long) > MaxLineSize {
				tooLong()
				return
			}
			continue
		}
		if long != nil {
			// The rest of the long line, up to its newline or the end of
			// the input (or a read error).
			b, long = append(long, b...), nil
		}
		if n := len(bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))); n > MaxLineSize {
			tooLong()
			return
		}
		if err != nil {
			if len(b) > 0 && err == io.EOF {
				err = nil // a last line without a newline
			} else {
				if err != io.EOF {
					err = fmt.Errorf("%s: after line %d: %w", s.cfg.Name, line, err)
				}
				if len(batch) > 0 && !flush(nil) {
					return
				}
				flush(err)
				return
			}
		}
		line++
		if b = trimSpace(b); len(b) == 0 {
			continue
		}
		e, err := s.decode(b)
		if err != nil {
			flush(fmt.Errorf("%s: line %d: %w", s.cfg.Name, line, err))
			return
		}
		batch = append(batch, e)
		if len(batch) == 256 || br.Buffered() == 0 {
			if !flush(nil) {
				return
			}
		}
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func (s *jsonLines) decode(b []byte) (Event, error) {
	var e Event
	if s.cfg.Format == FormatData {
		d, err := JSONData(append([]byte(nil), b...))
		if err != nil {
			return e, err
		}
		e = Event{Type: s.cfg.Type, Source: s.cfg.Name, Data: d}
	} else if err := json.Unmarshal(b, &e); err != nil {
		return e, err
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	if e.ID.IsZero() {
		e.ID = NewEventID()
	}
	if e.Time == 0 {
		e.Time = time.Now().UnixNano()
	}
	return e, nil
}

func (s *jsonLines) Read(ctx context.Context, dst []Event, max int) ([]Event, error) {
	for len(s.pending) == 0 {
		if s.err != nil {
			return dst, s.err
		}
		select {
		case lb, ok := <-s.lines:
			if !ok {
				s.err = io.EOF
				continue
			}
			s.pending, s.err = lb.events, lb.err
		case <-ctx.Done():
			return dst, ctx.Err()
		}
	}
	n := min(max, len(s.pending))
	dst = append(dst, s.pending[:n]...)
	s.pending = s.pending[n:]
	if len(s.pending) == 0 && s.err != nil {
		return dst, s.err
	}
	return dst, nil
}

func (s *jsonLines) Close() error {
	s.once.Do(func() { close(s.stop) })
	if c, ok := s.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// JSONLinesSink returns a sink that writes each event as one JSON line to
// w, flushing after every batch. Closing it closes w if it is an
// io.Closer.
func JSONLinesSink(w io.Writer, format Format) Sink {
	return &jsonSink{w: bufio.NewWriterSize(w, 64<<10), c: w, format: format}
}

type jsonSink struct {
	mu     sync.Mutex
	w      *bufio.Writer
	c      io.Writer
	format Format
	buf    []byte
}

func (s *jsonSink) Write(_ context.Context, events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range events {
		var err error
		s.buf = s.buf[:0]
		if s.format == FormatData {
			s.buf, err = appendDataJSON(s.buf, events[i].Data)
		} else {
			s.buf, err = events[i].AppendJSON(s.buf)
		}
		if err != nil {
			return err
		}
		s.buf = append(s.buf, '\n')
		if _, err := s.w.Write(s.buf); err != nil {
			return err
		}
	}
	return s.w.Flush()
}

func appendDataJSON(dst []byte, d EventData) ([]byte, error) {
	if raw, ok := d.AsJSON(); ok {
		return append(dst, raw...), nil
	}
	if err := d.Validate(); err != nil {
		return dst, err
	}
	return d.appendValue(dst)
}

func (s *jsonSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.w.Flush()
	if c, ok := s.c.(io.Closer); ok {
		err = errors.Join(err, c.Close())
	}
	return err
}

// Drop returns a sink that counts events and discards them.
func Drop() *DropSink { return &DropSink{} }

// DropSink counts events and discards them.
type DropSink struct{ n atomic.Uint64 }

// Write implements [Sink].
func (d *DropSink) Write(_ context.Context, events []Event) error {
	d.n.Add(uint64(len(events)))
	return nil
}

// Close implements [Sink].
func (d *DropSink) Close() error { return nil }

// Count is how many events were dropped.
func (d *DropSink) Count() uint64 { return d.n.Load() }

// ChannelSource returns a source that reads a channel through a new
// subscription (blocking its publishers when the pipeline is slow). The
// source ends (io.EOF) when the channel is deleted, after every event
// published before. Subscribe before anything publishes.
//
// On a persistent channel the subscription is a durable consumer named
// subscriber (a pipeline's "pipeline:NAME", say) that begins, the first
// time, with the oldest event the channel retains, and afterwards resumes
// after the last event acknowledged. The source is an [Acker]: the
// pipeline acknowledges events only once it has written them to every
// sink, so events read before a crash or a kill and not yet written are
// delivered again (after the ack wait, 30 s) to the next source of the
// same name: at least once, none lost. See [Engine.ChannelSourceWith].
func (e *Engine) ChannelSource(channel, subscriber string) (Source, error) {
	c, err := e.lookup(channel)
	if err != nil {
		return nil, err
	}
	if c.st != nil {
		return e.ChannelSourceWith(channel, SubscribeOptions{Subscriber: subscriber, Durable: subscriber, Start: StartAll(), DeliveryMode: AtLeastOnce})
	}
	return e.ChannelSourceWith(channel, SubscribeOptions{Subscriber: subscriber})
}

// ChannelSourceWith is [Engine.ChannelSource] with the subscription's
// options. On a persistent channel: Durable (default: Subscriber, which is
// then required) names the consumer; Start, AckWait, MaxDeliver, Backoff
// and BufferSize (the events fetched ahead) apply; DeliveryMode
// [ExactlyOnce] makes each acknowledgement wait for the server's
// confirmation; AckMode must be [AckAuto] (the pipeline acknowledges).
// DeadLetter (with MaxDeliver) receives, while the source is open, the
// events delivered MaxDeliver times without the pipeline being done with
// them (a pipeline that failed on them, or a process that crashed, run
// after run), and the messages that are not events; see
// [SubscribeOptions.DeadLetter]. Without DeadLetter, an event given up on
// after MaxDeliver is logged at warn (with its channel and sequence
// number) and left in the channel. A message that is not an event never
// stops the pipeline: it is terminated, dead-lettered or logged, and
// counted ([SubscriptionInfo].Undecodable). MaxDeliver counts deliveries
// to the source, and the events fetched ahead (BufferSize) of a pipeline
// that stops or crashes are delivered again too: a pipeline that fails on
// an event run after run uses up the deliveries of the events behind it as
// well. Filter is not supported for sources. The source is a
// [CaughtUpSource].
func (e *Engine) ChannelSourceWith(channel string, opts SubscribeOptions) (Source, error) {
	c, err := e.lookup(channel)
	if err != nil {
		return nil, err
	}
	if c.st == nil {
		s, err := e.Subscribe(channel, opts)
		if err != nil {
			return nil, err
		}
		return &channelSource{s: s}, nil
	}
	if opts.Durable == "" {
		opts.Durable = opts.Subscriber
	}
	switch {
	case opts.Durable == "":
		return nil, channelErr(channel, errors.New("source: a persistent channel's source needs a subscriber or durable name"))
	case opts.AckMode != AckAuto:
		return nil, channelErr(channel, fmt.Errorf("%w: source: ack mode %s (the pipeline acknowledges)", ErrUnsupported, opts.AckMode))
	case opts.Filter != nil:
		return nil, channelErr(channel, fmt.Errorf("%w: source: filter on a persistent channel's source", ErrUnsupported))
	case opts.DeadLetter == channel:
		return nil, channelErr(channel, errors.New("source: the dead-letter channel is the channel read"))
	}
	if opts.DeadLetter != "" {
		if _, err := e.lookup(opts.DeadLetter); err != nil {
			return nil, channelErr(channel, fmt.Errorf("source: dead-letter channel: %w", err))
		}
	}
	if opts.DeliveryMode == AtMostOnce {
		opts.DeliveryMode = AtLeastOnce
	}
	s, err := e.subscribe(channel, opts, true)
	if err != nil {
		return nil, err
	}
	return &channelSourceDurable{s: s, exactly: opts.DeliveryMode == ExactlyOnce}, nil
}

// CaughtUpSource is a source that can tell whether it has caught up with
// what it reads: the source of a persistent channel
// ([Engine.ChannelSourceWith]).
type CaughtUpSource interface {
	Source
	// CaughtUp reports whether the source's durable subscription has
	// nothing left: no event undelivered, none delivered and awaiting an
	// acknowledgement, and, with a dead-letter channel, no event that
	// exhausted its deliveries still to be moved there. It makes a pass
	// over the dead letters to know, which takes a moment. A store that
	// does not answer means not caught up (yet); an error moving a dead
	// letter is returned (it is kept for a later pass, or run).
	// An event given up on leaves the ack pending only once its last ack
	// wait has passed, so a source ends up caught up after that at most.
	CaughtUp(ctx context.Context) (bool, error)
}

type channelSource struct {
	s     *Subscription
	batch EventBatch
}

func (c *channelSource) Read(ctx context.Context, dst []Event, max int) ([]Event, error) {
	var err error
	c.batch, err = c.s.RecvBatch(ctx, c.batch, max)
	dst = append(dst, c.batch.Events...)
	c.batch.Reset()
	if errors.Is(err, ErrChannelDeleted) {
		err = io.EOF
	}
	return dst, err
}

func (c *channelSource) Close() error { return c.s.Close() }

// ChannelSink returns a sink that publishes to a channel. It waits as long
// as it takes for room (the pipeline's backpressure), not the channel's
// block timeout. Into a persistent channel it publishes each batch with
// the events' IDs as message IDs, so that a batch written again after a
// crash (the pipeline replays what it had not acknowledged) stores no
// event twice within the channel's duplicate window.
func (e *Engine) ChannelSink(channel string) Sink { return &channelSink{e: e, name: channel} }

type channelSink struct {
	e    *Engine
	name string
}

func (c *channelSink) Write(ctx context.Context, events []Event) error {
	// PublishBatch fills in zero IDs and times in place: not in the
	// caller's events. The copy keeps them across retries.
	for i := range events {
		if events[i].ID.IsZero() || events[i].Time == 0 {
			events = slices.Clone(events)
			break
		}
	}
	published, retry := 0, false
	for len(events) > 0 {
		err := c.e.PublishBatch(ctx, c.name, EventBatch{Events: events})
		if retry && errors.Is(err, ErrChannelNotFound) {
			// Gone since the last try: it was deleted during the write.
			return &PublishError{Channel: c.name, Published: published, Err: ErrChannelDeleted}
		}
		var pe *PublishError
		if !errors.As(err, &pe) || !errors.Is(err, ErrPublishTimeout) {
			return err
		}
		events = events[pe.Published:]
		published, retry = published+pe.Published, true
	}
	return nil
}

func (c *channelSink) Close() error { return nil }
