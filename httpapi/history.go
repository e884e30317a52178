package httpapi

import (
	"bufio"
	"mime"
	"net/http"

	"github.com/aegis-streaming/aegis/engine"
)

// HistoryResult is the JSON answer of GET /v1/channels/{channel}/events.
type HistoryResult struct {
	Events []engine.Event `json:"events"`
}

// history answers with the channel's retained events that the query
// selects, oldest first: as {"events":[...]}, or one per line when the
// client accepts application/x-ndjson.
func (s *Server) history(w http.ResponseWriter, r *http.Request, p *principal) *Error {
	name := r.PathValue("channel")
	if !p.can(permSubscribe, name) {
		return forbidden(p, permSubscribe, name)
	}
	q, e := parseHistoryQuery(r.URL.Query())
	if e != nil {
		return e
	}
	events, err := s.eng.History(name, q)
	if err != nil {
		return fromEngine(name, err)
	}
	if acceptsNDJSON(r) {
		w.Header().Set("Content-Type", mediaNDJSON)
		bw := bufio.NewWriter(w)
		var buf []byte
		for i := range events {
			var err error
			if buf, err = events[i].AppendJSON(buf[:0]); err != nil {
				return nil // published events are valid; this is only a guard
			}
			if _, err := bw.Write(append(buf, '\n')); err != nil {
				return nil // the client is gone
			}
		}
		bw.Flush()
		return nil
	}
	if events == nil {
		events = []engine.Event{}
	}
	writeJSON(w, http.StatusOK, HistoryResult{Events: events})
	return nil
}

// acceptsNDJSON says whether the client asks for newline-delimited JSON.
func acceptsNDJSON(r *http.Request) bool {
	for _, a := range r.Header.Values("Accept") {
		for _, part := range splitComma(a) {
			mt, _, _ := mime.ParseMediaType(part)
			if ndjsonTypes[mt] {
				return true
			}
		}
	}
	return false
}
