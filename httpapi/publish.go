package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// Media types of publish bodies and history answers.
const (
	mediaJSON   = "application/json"
	mediaNDJSON = "application/x-ndjson"
)

// ndjsonTypes are the names newline-delimited JSON goes by.
var ndjsonTypes = map[string]bool{mediaNDJSON: true, "application/jsonl": true, "application/jsonlines": true, "application/x-jsonlines": true}

// PublishResult is the answer to a publish: the IDs of the events, in the
// order sent (assigned by the host where the event had none).
type PublishResult struct {
	IDs []engine.EventID `json:"ids"`
}

// readBody reads the whole body, within the size limit and the request
// timeout: a read deadline, which a context does not give (a client that
// sends its body slowly, or not at all). The deadline is lifted once the
// body is read, since net/http's own read of the connection, which follows
// while the handler works, would take it for the connection's end.
func readBody(w http.ResponseWriter, r *http.Request, timeout time.Duration) ([]byte, *Error) {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(r.Body)
	if err != nil {
		// The deadline stays: net/http, which reads what is left of a body
		// before it answers, gives up on this connection then.
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, apiErr(http.StatusRequestEntityTooLarge, CodeTooLarge, "the body is larger than %d bytes", err.(*http.MaxBytesError).Limit)
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() || r.Context().Err() != nil {
			return nil, apiErr(http.StatusRequestTimeout, CodeTimeout, "the body did not arrive within the request timeout")
		}
		return nil, apiErr(http.StatusBadRequest, CodeBadRequest, "reading the body: %v", err)
	}
	rc.SetReadDeadline(time.Time{})
	return b, nil
}

// decodeBody decodes a JSON body into v; unknown fields are errors.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) *Error {
	if e := checkMedia(r, false); e != nil {
		return e
	}
	b, e := readBody(w, r, s.cfg.RequestTimeout)
	if e != nil {
		return e
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body: %v", err)
	}
	if dec.More() {
		return apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body: more than one JSON value")
	}
	return nil
}

// checkMedia refuses a body that says it is neither JSON nor (when
// ndjson) newline-delimited JSON; no Content-Type is taken as JSON.
func checkMedia(r *http.Request, ndjson bool) *Error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == mediaJSON || ndjson && ndjsonTypes[mt]) {
		return nil
	}
	want := mediaJSON
	if ndjson {
		want += " or " + mediaNDJSON
	}
	return apiErr(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Type %q: send %s", ct, want)
}

func isNDJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return ndjsonTypes[mt]
}

// publish publishes the body's events: one event or an array of events
// (JSON), or one event per line (NDJSON), all checked before any is
// published. It answers once the channel has accepted them: a persistent
// channel has stored them.
func (s *Server) publish(w http.ResponseWriter, r *http.Request, p *principal) *Error {
	name := r.PathValue("channel")
	if !p.can(permPublish, name) {
		return forbidden(p, permPublish, name)
	}
	if e := checkMedia(r, true); e != nil {
		return e
	}
	body, e := readBody(w, r, s.cfg.RequestTimeout)
	if e != nil {
		return e
	}
	var events []engine.Event
	if isNDJSON(r) {
		events, e = s.decodeNDJSON(body)
	} else {
		events, e = s.decodeJSONEvents(body)
	}
	if e != nil {
		return e
	}
	if len(events) == 0 {
		return apiErr(http.StatusBadRequest, CodeBadRequest, "the body holds no event")
	}
	ctx, span := s.tel.startPublish(r, name, events)
	if err := s.eng.PublishBatch(ctx, name, engine.EventBatch{Events: events}); err != nil {
		e := fromEngine(name, err)
		endPublish(span, e)
		return e
	}
	endPublish(span, nil)
	res := PublishResult{IDs: make([]engine.EventID, len(events))}
	for i := range events {
		res.IDs[i] = events[i].ID
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// decodeJSONEvents reads one event or an array of them.
func (s *Server) decodeJSONEvents(body []byte) ([]engine.Event, *Error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body: %v", err)
		}
		if len(raw) > s.cfg.MaxBatch {
			return nil, apiErr(http.StatusRequestEntityTooLarge, CodeTooLarge, "%d events: at most %d per request", len(raw), s.cfg.MaxBatch)
		}
		events := make([]engine.Event, len(raw))
		for i, m := range raw {
			if e := decodeEvent(m, &events[i], "event", i); e != nil {
				return nil, e
			}
		}
		return events, nil
	}
	events := make([]engine.Event, 1)
	if e := decodeEvent(body, &events[0], "", 0); e != nil {
		return nil, e
	}
	return events, nil
}

// decodeNDJSON reads one event per line; blank lines are skipped.
func (s *Server) decodeNDJSON(body []byte) ([]engine.Event, *Error) {
	var events []engine.Event
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, len(body)+1)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(events) == s.cfg.MaxBatch {
			return nil, apiErr(http.StatusRequestEntityTooLarge, CodeTooLarge, "more than %d events: at most %d per request", s.cfg.MaxBatch, s.cfg.MaxBatch)
		}
		events = append(events, engine.Event{})
		if e := decodeEvent(b, &events[len(events)-1], "line", line); e != nil {
			return nil, e
		}
	}
	return events, nil
}

// decodeEvent decodes and checks one event; where names it in errors
// ("line 3", "event 0").
func decodeEvent(b []byte, ev *engine.Event, what string, n int) *Error {
	at := ""
	if what != "" {
		at = what + " " + strconv.Itoa(n) + ": "
	}
	if err := ev.UnmarshalJSON(b); err != nil {
		if !json.Valid(b) {
			return apiErr(http.StatusBadRequest, CodeInvalidJSON, "%s%v", at, err)
		}
		return apiErr(http.StatusBadRequest, CodeInvalidEvent, "%s%v", at, err)
	}
	if err := ev.Validate(); err != nil {
		return apiErr(http.StatusBadRequest, CodeInvalidEvent, "%s%v", at, err)
	}
	return nil
}
