package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
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
	st, e := s.openStream(r, p)
	if e != nil {
		return e
	}
	defer s.closeStream(st)
	opts := &websocket.AcceptOptions{}
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" {
			opts.InsecureSkipVerify = true
		} else if u, err := url.Parse(o); err == nil && u.Host != "" {
			opts.OriginPatterns = append(opts.OriginPatterns, u.Host)
		}
	}
	c, err := websocket.Accept(w, r, opts)
	if err != nil {
		return nil // Accept has answered
	}
	defer c.CloseNow()
	c.SetReadLimit(wsReadLimit)
	write := func(m WSMessage) bool {
		b, err := json.Marshal(m)
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(st.ctx, s.cfg.WriteTimeout)
		defer cancel()
		return c.Write(ctx, websocket.MessageText, b) == nil
	}
	go s.wsRead(c, st, write)
	if !write(WSMessage{Type: "subscribed", Subscribed: &Subscribed{Subscription: st.id, Channel: st.channel, Durable: st.sub.Info().Durable, Ack: ackName(st.manual)}}) {
		return nil
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	events := make([]engine.Event, 0, 256)
	var buf []byte
	for {
		var why *Error
		var ended bool
		events, why, ended = st.next(events, cap(events), heartbeat.C)
		if ended {
			if why != nil {
				ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
				if b, err := json.Marshal(WSMessage{Type: "error", Error: why}); err == nil {
					c.Write(ctx, websocket.MessageText, b)
				}
				cancel()
				c.Close(websocket.StatusTryAgainLater, why.Code)
			}
			return nil
		}
		if len(events) == 0 {
			ctx, cancel := context.WithTimeout(st.ctx, s.cfg.WriteTimeout)
			err := c.Ping(ctx)
			cancel()
			if err != nil {
				return nil
			}
			continue
		}
		for i := range events {
			buf = append(buf[:0], `{"type":"event","event":`...)
			if buf, err = events[i].AppendJSON(buf); err != nil {
				continue // published events are valid; this is only a guard
			}
			buf = append(buf, '}')
			ctx, cancel := context.WithTimeout(st.ctx, s.cfg.WriteTimeout)
			err = c.Write(ctx, websocket.MessageText, buf)
			cancel()
			if err != nil {
				return nil
			}
		}
		if err := st.written(events); err != nil {
			s.log.Warn("api stream: acknowledging written events", "subscription", st.id, "error", err)
		}
	}
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
