package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/aegis-streaming/aegis/engine"
)

// wsReadLimit bounds a client's message (acknowledgements): 1 MiB.
const wsReadLimit = 1 << 20

// WSMessage is a WebSocket message of the API, a JSON text message; Type
// says which fields are set.
//
// From the host:
//
//	{"type":"subscribed","subscribed":{"subscription":"...","channel":"orders","ack":"manual"}}
//	{"type":"event","event":{"id":"...","type":"order.created",...}}
//	{"type":"error","error":{"code":"slow_client","message":"..."}}   (then the host closes)
//
// From the client, on a stream opened with ack=manual:
//
//	{"type":"ack","ids":["...", ...]}
//	{"type":"nak","ids":["..."],"delay":"5s"}
//	{"type":"term","ids":["..."],"reason":"cannot parse"}
//
// A settle request that fails is answered with an error message that
// does not end the stream.
type WSMessage struct {
	Type       string        `json:"type"`
	Subscribed *Subscribed   `json:"subscribed,omitempty"`
	Event      *engine.Event `json:"event,omitempty"`
	Error      *Error        `json:"error,omitempty"`
	SettleRequest
}

// websocket streams the channel's events over a WebSocket; see WSMessage.
// The subscription is made before the upgrade, so that a refused one is
// an ordinary HTTP error.
func (s *Server) websocket(w http.ResponseWriter, r *http.Request, p *principal) *Error {
	if name := r.PathValue("channel"); !p.can(permSubscribe, name) {
		return forbidden(p, permSubscribe, name)
	}
	if e := s.checkUpgrade(w, r); e != nil {
		return e
	}
	st, e := s.openStream(r, p)
	if e != nil {
		return e
	}
	defer s.closeStream(st)
	// The handshake and the origin are checked above, with the API's
	// errors, before anything is subscribed.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return nil // Accept has answered
	}
	defer c.CloseNow()
	c.SetReadLimit(wsReadLimit)
	f := &wsFraming{timeout: s.cfg.WriteTimeout, ctx: st.ctx, c: c}
	go s.wsRead(c, st, f.message)
	s.serveStream(st, f)
	return nil
}

// wsFraming writes a stream as WebSocket messages (see WSMessage). The
// connection takes concurrent writes: the reader answers a bad message
// with an error message of its own.
type wsFraming struct {
	timeout time.Duration
	ctx     context.Context
	c       *websocket.Conn
	buf     []byte
}

func (f *wsFraming) write(b []byte) bool {
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	return f.c.Write(ctx, websocket.MessageText, b) == nil
}

// message writes m; false when the client is gone or too slow.
func (f *wsFraming) message(m WSMessage) bool {
	b, err := json.Marshal(m)
	return err == nil && f.write(b)
}

func (f *wsFraming) hello(m Subscribed) bool {
	return f.message(WSMessage{Type: "subscribed", Subscribed: &m})
}

func (f *wsFraming) events(events []engine.Event) bool {
	for i := range events {
		var err error
		f.buf = append(f.buf[:0], `{"type":"event","event":`...)
		if f.buf, err = events[i].AppendJSON(f.buf); err != nil {
			continue // published events are valid; this is only a guard
		}
		if !f.write(append(f.buf, '}')) {
			return false
		}
	}
	return true
}

func (f *wsFraming) keepalive() bool {
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	return f.c.Ping(ctx) == nil
}

func (f *wsFraming) end(why *Error) {
	// The stream's context is done by now: the last message has a
	// timeout of its own.
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	if b, err := json.Marshal(WSMessage{Type: "error", Error: why}); err == nil {
		f.c.Write(ctx, websocket.MessageText, b)
	}
	f.c.Close(closeStatus(why.Code), why.Code)
}

// closeStatus is the WebSocket close code of a stream's end.
func closeStatus(code string) websocket.StatusCode {
	switch code {
	case CodeSlowClient:
		return websocket.StatusTryAgainLater
	case CodeUnavailable:
		return websocket.StatusGoingAway
	case CodeChannelDeleted:
		return websocket.StatusNormalClosure
	}
	return websocket.StatusInternalError
}

// wsRead reads the client's messages (acknowledgements) until the
// connection ends, and then ends the stream.
func (s *Server) wsRead(c *websocket.Conn, st *stream, write func(WSMessage) bool) {
	defer st.end(nil)
	kinds := map[string]settleKind{"ack": settleAck, "nak": settleNak, "term": settleTerm}
	for {
		typ, b, err := c.Read(st.ctx)
		if err != nil {
			return
		}
		var m WSMessage
		var e *Error
		if typ != websocket.MessageText {
			e = apiErr(http.StatusBadRequest, CodeBadRequest, "send text messages of JSON")
		} else if err := json.Unmarshal(b, &m); err != nil {
			e = apiErr(http.StatusBadRequest, CodeInvalidJSON, "%v", err)
		} else if kind, ok := kinds[m.Type]; !ok {
			e = apiErr(http.StatusBadRequest, CodeBadRequest, "message type %q: ack, nak or term", m.Type)
		} else if len(m.IDs) == 0 {
			e = apiErr(http.StatusBadRequest, CodeBadRequest, `%s: "ids" is empty`, m.Type)
		} else {
			ctx, cancel := context.WithTimeout(st.ctx, s.cfg.RequestTimeout)
			e = st.settle(ctx, kind, m.SettleRequest)
			cancel()
		}
		if e != nil && !write(WSMessage{Type: "error", Error: e}) {
			return
		}
	}
}

// checkUpgrade refuses a request that is not a WebSocket handshake the
// host can accept, or that comes from a page of an origin that is neither
// the host's own nor one of [Config.CORSOrigins] (cross-site WebSocket
// hijacking).
func (s *Server) checkUpgrade(w http.ResponseWriter, r *http.Request) *Error {
	if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Upgrade", "websocket")
		return apiErr(http.StatusUpgradeRequired, CodeBadRequest, "a WebSocket handshake is required (Connection: Upgrade, Upgrade: websocket); for a plain HTTP stream use /stream")
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return apiErr(http.StatusUpgradeRequired, CodeBadRequest, "WebSocket version %q: the host speaks version 13", v)
	}
	origin := r.Header.Get("Origin")
	if origin == "" || slices.Contains(s.cfg.CORSOrigins, "*") || slices.Contains(s.cfg.CORSOrigins, origin) {
		return nil
	}
	if u, err := url.Parse(origin); err == nil && strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	return apiErr(http.StatusForbidden, CodeForbidden, "origin %q may not open WebSockets: the API's cors_origins does not list it", origin)
}

// headerHas says whether a comma-separated header has token, in any case.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
