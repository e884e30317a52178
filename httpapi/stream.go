package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// stream is one SSE or WebSocket client's subscription. A pump takes the
// subscription's events into out; the connection's writer sends them.
//
// On an in-memory channel the pump never waits: when out is full (the
// client is SubscriberBuffer events behind) the stream ends with
// slow_client, so that the channel's publishers, and through them its
// other subscribers, never wait for one slow connection. On a persistent
// channel the pump waits: the client falls behind in the stream, which
// keeps its events, and catches up.
//
// A persistent channel's subscription always acknowledges explicitly: with
// ack=auto the host acknowledges an event once it is written to the
// connection (so an event lost with a broken connection comes again to a
// durable subscription), with ack=manual the client does.
type stream struct {
	id         string
	channel    string
	owner      string // the token's name: only it settles the stream's events
	durable    string // the durable name the client gave
	sub        *engine.Subscription
	persistent bool
	manual     bool // the client acknowledges
	// replay are the retained events an in-memory subscription sends
	// first (start=all, after_id, after); seen are their IDs, so that the
	// live events that were also in the history are not sent twice.
	replay []engine.Event
	seen   map[engine.EventID]struct{}

	out *queue

	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	err    *Error // why the stream ended; set before done closes
	done   chan struct{}
}

// pumpBuffer is the engine subscription's buffer of an in-memory stream:
// the pump empties it into the stream's queue at once. persistentQueue is
// how many events a persistent stream fetches ahead and holds.
const (
	pumpBuffer      = 256
	persistentQueue = 64
)

// streams are the open streams, by subscription ID, for acks and shutdown.
type streams struct {
	mu     sync.Mutex
	m      map[string]*stream
	closed bool
	// open counts the streams from openStream to closeStream, so that a
	// shutdown waits for their handlers, which net/http does not track
	// once a WebSocket has taken the connection over.
	open sync.WaitGroup
}

func (ss *streams) init() { ss.m = map[string]*stream{} }

// count is the number of open streams on channels p may see.
func (ss *streams) count(p *principal) int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := 0
	for _, st := range ss.m {
		if p.canAny(st.channel) {
			n++
		}
	}
	return n
}

func (ss *streams) add(st *stream, limit int) *Error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return apiErr(http.StatusServiceUnavailable, CodeUnavailable, "the host is shutting down")
	}
	if len(ss.m) >= limit {
		return apiErr(http.StatusTooManyRequests, CodeLimit, "%d streams are open: the limit", len(ss.m))
	}
	ss.m[st.id] = st
	ss.open.Add(1)
	return nil
}

func (ss *streams) remove(st *stream) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m[st.id] == st {
		delete(ss.m, st.id)
		ss.open.Done()
	}
}

// wait waits until every stream is closed, or ctx ends.
func (ss *streams) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		ss.open.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (ss *streams) get(id string) *stream {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.m[id]
}

// closeAll ends every stream with "unavailable" and refuses new ones.
func (ss *streams) closeAll() {
	ss.mu.Lock()
	ss.closed = true
	all := make([]*stream, 0, len(ss.m))
	for _, st := range ss.m {
		all = append(all, st)
	}
	ss.mu.Unlock()
	for _, st := range all {
		st.end(apiErr(http.StatusServiceUnavailable, CodeUnavailable, "the host is shutting down: resume from the last event ID"))
	}
}

// openStream subscribes as the request asks. The caller must call
// closeStream when the connection ends.
func (s *Server) openStream(r *http.Request, p *principal) (*stream, *Error) {
	name := r.PathValue("channel")
	if !p.can(permSubscribe, name) {
		return nil, forbidden(p, permSubscribe, name)
	}
	q := r.URL.Query()
	if e := checkParams(q, filterParams, streamParams); e != nil {
		return nil, e
	}
	if lei := r.Header.Get("Last-Event-ID"); lei != "" && !q.Has("last_event_id") {
		q.Set("last_event_id", lei)
	}
	ci, err := s.eng.Channel(name)
	if err != nil {
		return nil, fromEngine(name, err)
	}
	opts, replay, e := s.streamOptions(q, ci.Config.Persistent, p)
	if e != nil {
		return nil, e
	}
	sub, err := s.eng.Subscribe(name, opts)
	if err != nil {
		e := fromEngine(name, err)
		if e.Code == CodeInternal {
			// The engine refuses bad options (a durable name, ...) with
			// plain errors.
			e = apiErr(http.StatusBadRequest, CodeBadRequest, "%v", err)
		}
		return nil, e
	}
	st := &stream{
		id: sub.ID(), channel: name, owner: p.name, durable: q.Get("durable"), sub: sub,
		persistent: ci.Config.Persistent, manual: q.Get("ack") == "manual", done: make(chan struct{}),
	}
	if replay != nil {
		// Subscribed first, then the history read: an event published in
		// between is in both, and seen drops its second copy.
		events, err := s.eng.History(name, *replay)
		if err != nil {
			sub.Close()
			return nil, fromEngine(name, err)
		}
		st.replay = events
		st.seen = make(map[engine.EventID]struct{}, len(events))
		for i := range events {
			st.seen[events[i].ID] = struct{}{}
		}
	}
	size := s.cfg.SubscriberBuffer
	if st.persistent {
		// The events a persistent stream holds have their ack wait
		// running: hold few; the rest wait in the stream.
		size = min(size, persistentQueue)
	}
	st.out = newQueue(size)
	st.ctx, st.cancel = context.WithCancel(context.WithoutCancel(r.Context()))
	if e := s.streams.add(st, s.cfg.MaxStreams); e != nil {
		sub.Close()
		return nil, e
	}
	// The client leaving ends the stream.
	context.AfterFunc(r.Context(), func() { st.end(nil) })
	go st.pump()
	s.log.Debug("api stream opened", "channel", name, "subscription", st.id, "token", p.name)
	return st, nil
}

// streamOptions turns the query into subscription options, and for an
// in-memory channel the history to replay first (nil: none).
func (s *Server) streamOptions(q url.Values, persistent bool, p *principal) (engine.SubscribeOptions, *engine.HistoryQuery, *Error) {
	opts := engine.SubscribeOptions{Subscriber: "api:" + p.name, Metadata: map[string]string{"api.token": p.name}}
	f, e := parseFilter(q)
	if e != nil {
		return opts, nil, e
	}
	opts.Filter = f
	afterID, e := eventIDParam(q, "after_id")
	if e != nil {
		return opts, nil, e
	}
	if q.Has("last_event_id") {
		// An SSE client's resume point: the last event it received.
		if afterID, e = eventIDParam(q, "last_event_id"); e != nil {
			return opts, nil, apiErr(http.StatusBadRequest, CodeBadRequest, "Last-Event-ID: not an event ID")
		}
	}
	afterSeq, e := uintParam(q, "after_seq")
	if e != nil {
		return opts, nil, e
	}
	after, e := timeParam(q, "after")
	if e != nil {
		return opts, nil, e
	}
	all := false
	switch q.Get("start") {
	case "", "new":
	case "all":
		all = true
	default:
		return opts, nil, apiErr(http.StatusBadRequest, CodeBadRequest, "start: %q: new or all", q.Get("start"))
	}
	ack := q.Get("ack")
	if ack != "" && ack != "auto" && ack != "manual" {
		return opts, nil, apiErr(http.StatusBadRequest, CodeBadRequest, "ack: %q: auto or manual", ack)
	}
	maxDeliver, e := uintParam(q, "max_deliver")
	if e != nil {
		return opts, nil, e
	}
	ackWait, e := durationParam(q, "ack_wait")
	if e != nil {
		return opts, nil, e
	}
	if !persistent {
		for _, k := range []string{"durable", "ack_wait", "max_deliver", "after_seq"} {
			if q.Has(k) {
				return opts, nil, apiErr(http.StatusUnprocessableEntity, CodeUnsupported, "%s: for persistent channels only", k)
			}
		}
		if ack == "manual" {
			return opts, nil, apiErr(http.StatusUnprocessableEntity, CodeUnsupported, "ack=manual: for persistent channels only (an in-memory channel does not redeliver)")
		}
		// The stream's queue absorbs bursts; the subscription's buffer
		// only needs to cover the pump's turn.
		opts.BufferSize = pumpBuffer
		if !all && afterID.IsZero() && after.IsZero() {
			return opts, nil, nil
		}
		return opts, &engine.HistoryQuery{AfterID: afterID, After: after, Filter: f}, nil
	}
	if d := q.Get("durable"); d != "" {
		// A durable name of the API is its token's: a client cannot take
		// over another token's subscription, nor a pipeline's, by naming
		// it.
		opts.Durable = "api." + p.name + "." + d
	}
	opts.DeliveryMode, opts.AckMode = engine.AtLeastOnce, engine.AckManual
	opts.AckWait, opts.MaxDeliver = ackWait, int(min(maxDeliver, 1<<31-1))
	opts.BufferSize = persistentQueue
	switch {
	case !afterID.IsZero():
		opts.Start = engine.StartAfterEvent(afterID)
	case afterSeq > 0:
		opts.Start = engine.StartAtSeq(afterSeq + 1)
	case !after.IsZero():
		opts.Start = engine.StartAtTime(after)
	case all:
		opts.Start = engine.StartAll()
	}
	return opts, nil, nil
}

// pump moves the subscription's events into out until the stream ends.
func (st *stream) pump() {
	defer func() {
		if v := recover(); v != nil {
			st.end(apiErr(http.StatusInternalServerError, CodeInternal, "the stream failed: %v", v))
		}
	}()
	batch := engine.NewEventBatch(256)
	for {
		var err error
		batch, err = st.sub.RecvBatch(st.ctx, batch, cap(batch.Events))
		if err != nil {
			st.end(streamEndError(st.channel, err))
			return
		}
		events := batch.Events
		if st.seen != nil {
			i := 0
			for ; i < len(events); i++ {
				if _, dup := st.seen[events[i].ID]; !dup {
					st.seen = nil // live from here on: history and live no longer overlap
					break
				}
			}
			events = events[i:]
		}
		for len(events) > 0 {
			n := st.out.push(events)
			events = events[n:]
			if len(events) == 0 {
				break
			}
			if !st.persistent {
				st.end(apiErr(http.StatusServiceUnavailable, CodeSlowClient,
					"the client fell %d events behind and was disconnected: reconnect with the last event ID to resume from the channel's history", st.out.limit))
				return
			}
			select {
			case <-st.out.space:
			case <-st.ctx.Done():
				return
			}
		}
		batch.Reset()
	}
}

// streamEndError is why a subscription stopped delivering.
func streamEndError(channel string, err error) *Error {
	switch {
	case errors.Is(err, context.Canceled):
		return nil
	case errors.Is(err, engine.ErrChannelDeleted):
		// Not fromEngine's channel_not_found: the channel was there.
		return apiErr(http.StatusGone, CodeChannelDeleted, "channel %q was deleted", channel)
	}
	return fromEngine(channel, err)
}

// end ends the stream with why (nil: the client left).
func (st *stream) end(why *Error) {
	st.once.Do(func() {
		st.err = why
		st.cancel()
		close(st.done)
	})
}

// closeStream ends the stream and releases its subscription.
func (s *Server) closeStream(st *stream) {
	st.end(nil)
	s.streams.remove(st)
	st.sub.Close()
}

// next waits for the next events: it returns what out holds, up to max,
// after waiting for the first until the stream ends or the heartbeat is
// due (nil, nil).
func (st *stream) next(dst []engine.Event, max int, heartbeat <-chan time.Time) ([]engine.Event, *Error, bool) {
	dst = dst[:0]
	if len(st.replay) > 0 {
		n := min(max, len(st.replay))
		dst = append(dst, st.replay[:n]...)
		st.replay = st.replay[n:]
		return dst, nil, false
	}
	for {
		if dst = st.out.pop(dst, max); len(dst) > 0 {
			return dst, nil, false
		}
		select {
		case <-st.out.ready:
		case <-st.done:
			// A deleted channel's last events are sent before the
			// reason; otherwise the stream ends at once.
			if st.err != nil && st.err.Code == CodeChannelDeleted {
				if dst = st.out.pop(dst, max); len(dst) > 0 {
					return dst, nil, false
				}
			}
			return nil, st.err, true
		case <-heartbeat:
			return nil, nil, false
		}
	}
}

// framing writes a stream to one kind of connection (SSE, WebSocket).
// Each write returns false when the client is gone or too slow to take it.
type framing interface {
	hello(Subscribed) bool
	events([]engine.Event) bool
	keepalive() bool
	end(why *Error)
}

// serveStream writes st to the connection through f until the stream
// ends: the client left, fell behind, the channel was deleted, or the host
// is shutting down.
func (s *Server) serveStream(st *stream, f framing) {
	if !f.hello(Subscribed{Subscription: st.id, Channel: st.channel, Durable: st.durable, Ack: ackName(st.manual), Heartbeat: Duration(s.cfg.Heartbeat)}) {
		return
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	events := make([]engine.Event, 0, 256)
	for {
		var why *Error
		var ended bool
		events, why, ended = st.next(events, cap(events), heartbeat.C)
		switch {
		case ended:
			if why != nil {
				f.end(why)
			}
			return
		case len(events) == 0:
			if !f.keepalive() {
				return
			}
			continue
		case !f.events(events):
			return
		}
		if err := st.written(events); err != nil {
			s.log.Warn("api stream: acknowledging written events", "subscription", st.id, "error", err)
		}
	}
}

// ackName is how the stream's acknowledgement mode is named to clients.
func ackName(manual bool) string {
	if manual {
		return "manual"
	}
	return "auto"
}

// written acknowledges, with ack=auto on a persistent channel, the events
// just written to the connection.
func (st *stream) written(events []engine.Event) error {
	if !st.persistent || st.manual || len(events) == 0 {
		return nil
	}
	ids := make([]engine.EventID, len(events))
	for i := range events {
		ids[i] = events[i].ID
	}
	// Not the stream's context: a stream that ends (the client left, the
	// host shuts down) still acknowledges what it wrote, or those events
	// would come again to its durable subscription.
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	return st.sub.Ack(ctx, ids...)
}

// ackTimeout bounds the acknowledgement of what a stream wrote.
const ackTimeout = 10 * time.Second

// settleKind is what a settle request does.
type settleKind int

const (
	settleAck settleKind = iota
	settleNak
	settleTerm
)

// SettleRequest is the body of POST /v1/subscriptions/{id}/ack, /nak and
// /term: the events to settle; for nak, how long to wait before the
// redelivery; for term, why.
type SettleRequest struct {
	IDs    []engine.EventID `json:"ids,omitempty"`
	Delay  Duration         `json:"delay,omitempty"`
	Reason string           `json:"reason,omitempty"`
}

// SettleResult is the answer: how many events were settled.
type SettleResult struct {
	Settled int `json:"settled"`
}

// settle returns the handler of ack, nak or term for an open stream with
// ack=manual.
func (s *Server) settle(kind settleKind) handler {
	return func(w http.ResponseWriter, r *http.Request, p *principal) *Error {
		id := r.PathValue("id")
		st := s.streams.get(id)
		if st == nil || st.owner != p.name || !p.can(permSubscribe, st.channel) {
			// The same answer for a stream this token may not touch: it
			// learns nothing of other clients' streams.
			return apiErr(http.StatusNotFound, CodeSubscriptionGone, "no open stream %q of yours: acknowledgements go to the stream that delivered the events, while it is open", id)
		}
		var req SettleRequest
		if e := s.decodeBody(w, r, &req); e != nil {
			return e
		}
		if len(req.IDs) == 0 {
			return apiErr(http.StatusBadRequest, CodeBadRequest, `"ids" is empty`)
		}
		if e := st.settle(r.Context(), kind, req); e != nil {
			return e
		}
		writeJSON(w, http.StatusOK, SettleResult{Settled: len(req.IDs)})
		return nil
	}
}

// settle acknowledges, naks or terminates events the stream delivered.
func (st *stream) settle(ctx context.Context, kind settleKind, req SettleRequest) *Error {
	if !st.manual {
		return apiErr(http.StatusUnprocessableEntity, CodeUnsupported, "the stream was opened without ack=manual: the host acknowledges its events")
	}
	if kind == settleAck {
		if err := st.sub.Ack(ctx, req.IDs...); err != nil {
			return settleErr(st.channel, err)
		}
		return nil
	}
	// Nak and term settle each event they can, and say which they could
	// not.
	var errs []error
	for _, id := range req.IDs {
		var err error
		if kind == settleNak {
			err = st.sub.Nak(id, time.Duration(req.Delay))
		} else {
			err = st.sub.Term(id, req.Reason)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		e := settleErr(st.channel, errs[0])
		e.Message = fmt.Sprintf("%d of %d events settled; %v", len(req.IDs)-len(errs), len(req.IDs), errors.Join(errs...))
		return e
	}
	return nil
}

// settleErr is the API's error for a failed ack, nak or term, with the
// engine's message (which names the event).
func settleErr(channel string, err error) *Error {
	e := fromEngine(channel, err)
	e.Message = err.Error()
	return e
}
