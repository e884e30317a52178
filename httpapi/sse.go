package httpapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
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
	// Heartbeat is how often an idle stream gets a keep-alive: a client
	// that hears nothing for a few of these may take the connection for
	// dead.
	Heartbeat Duration `json:"heartbeat,omitempty"`
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
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies must not hold events back
	h.Set("Aegis-Subscription", st.id)
	w.WriteHeader(http.StatusOK)
	s.serveStream(st, &sseFraming{timeout: s.cfg.WriteTimeout, rc: http.NewResponseController(w), bw: bufio.NewWriterSize(w, 32<<10)})
	return nil
}

// sseFraming writes a stream as Server-Sent Events.
type sseFraming struct {
	timeout time.Duration
	rc      *http.ResponseController
	bw      *bufio.Writer
	buf     []byte
}

// deadline gives what is written next the write timeout: a client that
// does not take it in time is gone or too slow, its write fails and the
// stream ends.
func (f *sseFraming) deadline() { f.rc.SetWriteDeadline(time.Now().Add(f.timeout)) }

func (f *sseFraming) hello(m Subscribed) bool {
	f.deadline()
	b, _ := json.Marshal(m)
	f.bw.WriteString("retry: " + strconv.Itoa(int(sseRetry/time.Millisecond)) + "\n\nevent: subscribed\ndata: ")
	f.bw.Write(b)
	f.bw.WriteString("\n\n")
	return f.flush()
}

func (f *sseFraming) events(events []engine.Event) bool {
	f.deadline()
	for i := range events {
		f.buf = appendSSEEvent(f.buf[:0], &events[i])
		if f.bw.Available() < len(f.buf) {
			// bw writes to the connection now: the write timeout bounds
			// each buffer's worth, not the whole batch.
			f.deadline()
		}
		f.bw.Write(f.buf)
	}
	return f.flush()
}

func (f *sseFraming) keepalive() bool {
	f.deadline()
	f.bw.WriteString(": keep-alive\n\n")
	return f.flush()
}

func (f *sseFraming) end(why *Error) {
	f.deadline()
	b, _ := json.Marshal(why)
	f.bw.WriteString("event: end\ndata: ")
	f.bw.Write(b)
	f.bw.WriteString("\n\n")
	f.flush()
}

// flush writes what bw holds to the client; false when the client is gone
// or too slow to take it.
func (f *sseFraming) flush() bool {
	if f.bw.Flush() != nil {
		return false
	}
	return f.rc.Flush() == nil
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
