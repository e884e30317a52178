package httpapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// sseRetry is the reconnection delay an EventSource is told to use.
const sseRetry = 2 * time.Second

// Subscribed is the first message of a stream: the subscription's ID
// (for acknowledgements) and its channel. SSE sends it as the
// "subscribed" event, WebSocket as {"type":"subscribed",...}.
type Subscribed struct {
	Subscription string `json:"subscription"`
	Channel      string `json:"channel"`
	Durable      string `json:"durable,omitempty"`
	Ack          string `json:"ack"`
}

// sse streams the channel's events as Server-Sent Events:
//
//	retry: 2000
//
//	event: subscribed
//	data: {"subscription":"...","channel":"orders","ack":"auto"}
//
//	id: 0190...
//	data: {"id":"0190...","type":"order.created",...}
//
//	: keep-alive
//
//	event: end
//	data: {"code":"slow_client","message":"..."}
//
// Events are unnamed (an EventSource's onmessage gets them), with the
// event's ID as the SSE id, so a reconnecting EventSource resumes after
// the last one it received (Last-Event-ID). A stream ends with an
// "end" event whose data is the [Error] that says why, unless the client
// left. (Not "error": an EventSource gives events of that name to the
// handlers of its own connection errors.)
func (s *Server) sse(w http.ResponseWriter, r *http.Request, p *principal) *Error {
	st, e := s.openStream(r, p)
	if e != nil {
		return e
	}
	defer s.closeStream(st)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies must not hold events back
	h.Set("Aegis-Subscription", st.id)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	hello, _ := json.Marshal(Subscribed{Subscription: st.id, Channel: st.channel, Durable: st.sub.Info().Durable, Ack: ackName(st.manual)})
	bw.WriteString("retry: " + itoa(int(sseRetry/time.Millisecond)) + "\n\nevent: subscribed\ndata: ")
	bw.Write(hello)
	bw.WriteString("\n\n")
	if !s.flush(rc, bw) {
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
		// A client that does not take what is written within the write
		// timeout is gone or too slow: its write fails and the stream ends.
		rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if ended {
			if why != nil {
				b, _ := json.Marshal(why)
				bw.WriteString("event: end\ndata: ")
				bw.Write(b)
				bw.WriteString("\n\n")
				s.flush(rc, bw)
			}
			return nil
		}
		if len(events) == 0 {
			bw.WriteString(": keep-alive\n\n")
		}
		for i := range events {
			buf = appendSSEEvent(buf[:0], &events[i])
			if bw.Available() < len(buf) {
				// bw writes to the connection now: the write timeout
				// bounds each buffer's worth, not the whole batch.
				rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			}
			bw.Write(buf)
		}
		if !s.flush(rc, bw) {
			return nil
		}
		if err := st.written(events); err != nil {
			s.log.Warn("api stream: acknowledging written events", "subscription", st.id, "error", err)
		}
	}
}

// appendSSEEvent appends one SSE event: the event's ID and its JSON, which
// is one line ([engine.Event.AppendJSON]).
func appendSSEEvent(dst []byte, ev *engine.Event) []byte {
	dst = append(dst, "id: "...)
	dst = append(dst, ev.ID.String()...)
	dst = append(dst, "\ndata: "...)
	start := len(dst)
	dst, err := ev.AppendJSON(dst)
	if err != nil {
		// Published events are valid; this is only a guard.
		b, _ := json.Marshal(map[string]string{"id": ev.ID.String(), "error": err.Error()})
		dst = append(dst[:start], b...)
	}
	return append(dst, "\n\n"...)
}

// flush writes what bw holds to the client; false when the client is gone
// or too slow to take it.
func (s *Server) flush(rc *http.ResponseController, bw *bufio.Writer) bool {
	if bw.Flush() != nil {
		return false
	}
	return rc.Flush() == nil
}

func ackName(manual bool) string {
	if manual {
		return "manual"
	}
	return "auto"
}
