package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// Client is a Go client of the API. Its methods return an *Error for an
// error the API answered with. It is safe for concurrent use.
type Client struct {
	// ReconnectFor is how long a subscription keeps trying to connect
	// again after it lost its stream, before Next gives up with the last
	// error: 0 means [DefaultReconnectFor], negative means forever. Set it
	// before subscribing.
	ReconnectFor time.Duration

	base  *url.URL
	token string
	hc    *http.Client
}

// DefaultReconnectFor is how long a subscription tries to reconnect by
// default.
const DefaultReconnectFor = time.Minute

func (c *Client) reconnectFor() time.Duration {
	if c.ReconnectFor == 0 {
		return DefaultReconnectFor
	}
	return c.ReconnectFor
}

// NewClient returns a client of the API at baseURL (scheme, host and port,
// such as "https://aegis.example:8080"), sending token (none when empty),
// over hc (nil: http.DefaultClient).
func NewClient(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api url %q: want http(s)://host:port", baseURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, token: token, hc: hc}, nil
}

// request builds a request for path (already escaped) and query.
func (c *Client) request(ctx context.Context, method, path string, q url.Values, body io.Reader, ctype string) (*http.Request, error) {
	u := c.base.String() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends a request and decodes a JSON answer into out (nil: none).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, ctype string, out any) error {
	req, err := c.request(ctx, method, path, q, body, ctype)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return responseError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// responseError reads an error answer.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != nil && body.Error.Code != "" {
		body.Error.Status = resp.StatusCode
		return body.Error
	}
	return &Error{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: strings.TrimSpace(string(b))}
}

func channelPath(name string, rest string) string {
	return "/v1/channels/" + url.PathEscape(name) + rest
}

// Health checks that the host answers (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil, "", nil)
}

// Ready checks that the host is ready (GET /readyz).
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil, "", nil)
}

// Channels lists the channels the token may see.
func (c *Client) Channels(ctx context.Context) ([]ChannelInfo, error) {
	var out ChannelList
	err := c.do(ctx, http.MethodGet, "/v1/channels", nil, nil, "", &out)
	return out.Channels, err
}

// Channel describes one channel.
func (c *Client) Channel(ctx context.Context, name string) (ChannelInfo, error) {
	var out ChannelInfo
	err := c.do(ctx, http.MethodGet, channelPath(name, ""), nil, nil, "", &out)
	return out, err
}

// CreateChannel creates a channel (admin).
func (c *Client) CreateChannel(ctx context.Context, spec ChannelSpec) (ChannelInfo, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return ChannelInfo{}, err
	}
	var out ChannelInfo
	err = c.do(ctx, http.MethodPost, "/v1/channels", nil, bytes.NewReader(b), mediaJSON, &out)
	return out, err
}

// DeleteChannel deletes a channel and its history (admin).
func (c *Client) DeleteChannel(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, channelPath(name, ""), nil, nil, "", nil)
}

// Subscriptions lists a channel's subscriptions (admin).
func (c *Client) Subscriptions(ctx context.Context, channel string) ([]SubscriptionInfo, error) {
	var out SubscriptionList
	err := c.do(ctx, http.MethodGet, channelPath(channel, "/subscriptions"), nil, nil, "", &out)
	return out.Subscriptions, err
}

// Stats returns the counters of the channels the token may see.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	err := c.do(ctx, http.MethodGet, "/v1/stats", nil, nil, "", &out)
	return out, err
}

// Publish publishes events in one request, all or none checked, and
// returns their IDs (assigned by the host where an event had none).
func (c *Client) Publish(ctx context.Context, channel string, events ...engine.Event) ([]engine.EventID, error) {
	var b []byte
	var err error
	if len(events) == 1 {
		b, err = json.Marshal(events[0])
	} else {
		b, err = json.Marshal(events)
	}
	if err != nil {
		return nil, err
	}
	var out PublishResult
	err = c.do(ctx, http.MethodPost, channelPath(channel, "/events"), nil, bytes.NewReader(b), mediaJSON, &out)
	return out.IDs, err
}

// PublishNDJSON publishes the events of r, one JSON event per line, in one
// request.
func (c *Client) PublishNDJSON(ctx context.Context, channel string, r io.Reader) ([]engine.EventID, error) {
	var out PublishResult
	err := c.do(ctx, http.MethodPost, channelPath(channel, "/events"), nil, r, mediaNDJSON, &out)
	return out.IDs, err
}

// History returns the retained events that q selects (see the query
// parameters in the package's OpenAPI document: type, source, meta.KEY,
// after_id, after, limit, ...), oldest first.
func (c *Client) History(ctx context.Context, channel string, q url.Values) ([]engine.Event, error) {
	var out HistoryResult
	err := c.do(ctx, http.MethodGet, channelPath(channel, "/events"), q, nil, "", &out)
	return out.Events, err
}

// Subscribe opens a Server-Sent Events stream of the channel with the
// parameters q (a filter, start, durable, ack, ...). The subscription
// reconnects by itself when the connection is lost or the host ends the
// stream for a reason that may pass (slow_client, unavailable), resuming
// after the last event it returned (Last-Event-ID). It gives up on an
// error that will not pass (a missing channel, a refused token).
func (c *Client) Subscribe(ctx context.Context, channel string, q url.Values) (*Subscription, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{c: c, channel: channel, q: q, ctx: ctx, cancel: cancel, retry: sseRetry}
	if err := s.connect(); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// Subscription is a client's SSE stream; see [Client.Subscribe].
type Subscription struct {
	c       *Client
	channel string
	q       url.Values
	ctx     context.Context
	cancel  context.CancelFunc
	retry   time.Duration

	mu   sync.Mutex
	id   string // the current stream's subscription, for acks
	body *idleReader
	r    *sseReader
	last string // the ID of the last event returned
	// Reconnects counts the connections after the first.
	reconnects int
}

// connect opens the stream, after the last event returned if any.
func (s *Subscription) connect() error {
	q := s.q
	if s.last != "" {
		// Resuming: after the last event returned, not from where the
		// subscription first started.
		q = maps.Clone(q)
		for _, k := range []string{"last_event_id", "after_id", "after_seq", "after", "start"} {
			delete(q, k)
		}
	}
	req, err := s.c.request(s.ctx, http.MethodGet, channelPath(s.channel, "/stream"), q, nil, "")
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if s.last != "" {
		req.Header.Set("Last-Event-ID", s.last)
	}
	resp, err := s.c.hc.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return responseError(resp)
	}
	body := newIdleReader(resp.Body, defaultIdle)
	s.mu.Lock()
	s.id, s.body, s.r = resp.Header.Get("Aegis-Subscription"), body, newSSEReader(body)
	s.mu.Unlock()
	return nil
}

// defaultIdle is how long a stream may stay silent before its subscription
// takes the connection for dead, until the host says how often it sends a
// keep-alive (three of those then).
const defaultIdle = time.Minute

// idleReader closes a stream's body when nothing arrives for idle: a host
// that went away without closing the connection (powered off, a dropped
// NAT entry) sends no keep-alive, and the read would wait forever.
type idleReader struct {
	body  io.ReadCloser
	timer *time.Timer
	idle  atomic.Int64 // nanoseconds
}

func newIdleReader(body io.ReadCloser, idle time.Duration) *idleReader {
	r := &idleReader{body: body}
	r.idle.Store(int64(idle))
	r.timer = time.AfterFunc(idle, func() { body.Close() })
	return r
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if n > 0 {
		r.timer.Reset(time.Duration(r.idle.Load()))
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.timer.Stop()
	return r.body.Close()
}

// setIdle sets the silence after which the connection is taken for dead.
func (r *idleReader) setIdle(d time.Duration) {
	r.idle.Store(int64(d))
	r.timer.Reset(d)
}

// ID is the current stream's subscription ID; it changes when the
// subscription reconnects.
func (s *Subscription) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// Reconnects is how many times the subscription reconnected.
func (s *Subscription) Reconnects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reconnects
}

// Next returns the next event. It returns the error that ended the
// subscription: one that will not pass, ctx's or Close's.
func (s *Subscription) Next() (engine.Event, error) {
	for {
		m, err := s.r.next()
		if err == nil {
			if m.retry > 0 {
				s.retry = m.retry
			}
			switch {
			case m.event == "end":
				var e Error
				if json.Unmarshal(m.data, &e) != nil || e.Code == "" {
					e = Error{Code: CodeInternal, Message: string(m.data)}
				}
				if !retryable(e.Code) {
					s.Close()
					return engine.Event{}, &e
				}
			case (m.event == "" || m.event == "message") && m.hasData:
				var ev engine.Event
				if err := ev.UnmarshalJSON(m.data); err != nil {
					return ev, fmt.Errorf("stream of %q: event %s: %w", s.channel, m.id, err)
				}
				if m.id != "" {
					s.last = m.id
				}
				return ev, nil
			case m.event == "subscribed":
				var hello Subscribed
				if json.Unmarshal(m.data, &hello) == nil && hello.Heartbeat > 0 {
					s.body.setIdle(3 * time.Duration(hello.Heartbeat))
				}
				continue
			default:
				continue // a bare retry, and what later versions add
			}
		}
		if s.ctx.Err() != nil {
			return engine.Event{}, s.ctx.Err()
		}
		if errors.Is(err, bufio.ErrTooLong) {
			// It would be as long again after a reconnection.
			s.Close()
			return engine.Event{}, fmt.Errorf("stream of %q: an event longer than %d bytes", s.channel, maxSSELine)
		}
		if err := s.reconnect(); err != nil {
			return engine.Event{}, err
		}
	}
}

// retryable says whether a stream that ended with code may be resumed.
func retryable(code string) bool {
	return code == CodeSlowClient || code == CodeUnavailable || code == CodeLimit || code == CodeInternal
}

// reconnect waits the retry delay and connects again, until it succeeds,
// an error that will not pass, or the subscription's end.
func (s *Subscription) reconnect() error {
	s.mu.Lock()
	s.body.Close()
	s.reconnects++
	s.mu.Unlock()
	giveUp := time.Now().Add(s.c.reconnectFor())
	for {
		select {
		case <-time.After(s.retry):
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
		err := s.connect()
		if err == nil {
			return nil
		}
		var e *Error
		if errors.As(err, &e) && !retryable(e.Code) {
			return err
		}
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		if s.c.ReconnectFor >= 0 && time.Now().After(giveUp) {
			return fmt.Errorf("stream of %q: no connection for %s: %w", s.channel, s.c.reconnectFor(), err)
		}
	}
}

// Ack acknowledges events of a stream opened with ack=manual. After a
// reconnection the events the earlier stream delivered are no longer
// pending there: they come again, and are acknowledged then.
func (s *Subscription) Ack(ctx context.Context, ids ...engine.EventID) error {
	b, err := json.Marshal(SettleRequest{IDs: ids})
	if err != nil {
		return err
	}
	return s.c.do(ctx, http.MethodPost, "/v1/subscriptions/"+url.PathEscape(s.ID())+"/ack", nil, bytes.NewReader(b), mediaJSON, nil)
}

// Close ends the subscription.
func (s *Subscription) Close() error {
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.body.Close()
}

// sseMessage is one Server-Sent Event.
type sseMessage struct {
	id, event string
	data      []byte
	hasData   bool
	retry     time.Duration
}

// sseReader reads Server-Sent Events as the HTML standard defines them:
// lines of "field: value", a blank line ends an event, lines starting
// with ":" are comments, multiple data lines join with "\n".
type sseReader struct {
	sc      *bufio.Scanner
	started bool // past the first line, which may begin with a BOM
}

// maxSSELine bounds one line of a stream: an event's JSON.
const maxSSELine = 64 << 20

func newSSEReader(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	sc.Split(scanSSELines)
	return &sseReader{sc: sc}
}

// scanSSELines splits a stream into lines as SSE does: a line ends with
// CRLF, LF or a lone CR.
func scanSSELines(data []byte, atEOF bool) (int, []byte, error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0:
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	case data[i] == '\n':
		return i + 1, data[:i], nil
	case i+1 < len(data):
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	case atEOF:
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // a CR at the end: wait for what follows
}

func (r *sseReader) next() (sseMessage, error) {
	var m sseMessage
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if !r.started {
			r.started = true
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
		}
		if len(line) == 0 {
			if m.hasData || m.retry > 0 {
				return m, nil
			}
			m = sseMessage{}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if m.hasData {
				m.data = append(m.data, '\n')
			}
			m.data = append(m.data, value...)
			m.hasData = true
		case "event":
			m.event = string(value)
		case "id":
			if !bytes.ContainsRune(value, 0) {
				m.id = string(value)
			}
		case "retry":
			// ASCII digits only, as the standard says.
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil && ms > 0 && value[0] != '+' {
				m.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if err := r.sc.Err(); err != nil {
		return m, err
	}
	return m, io.EOF
}
