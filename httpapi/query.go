package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// The query parameters of history and subscriptions.
//
// Filter (every one given must hold):
//
//	type=a,b        the event's type is one of these (repeatable)
//	source=S        the source is S
//	source_prefix=P the source starts with P
//	source_glob=G   the source matches the glob G
//	meta.KEY=VALUE  the metadata has KEY with VALUE (repeatable keys)
//	has_meta=KEY    the metadata has KEY (repeatable)
//
// Where to start (history: which events; a subscription: what it replays
// before it goes live):
//
//	after_id=ID     after the event with this ID (and Last-Event-ID)
//	after_seq=N     after the event with this sequence number (persistent channels)
//	after=TIME      events whose time is after TIME (RFC 3339)
//	start=all       a subscription replays what the channel retains; new (the default): only what comes
//	limit=N         history: the newest N of the selection
//
// Subscriptions only:
//
//	durable=NAME    a durable consumer (persistent channels) that resumes after its last acknowledged event
//	ack=manual      the client acknowledges (persistent channels); auto (the default): the host does once written
//	ack_wait=30s    how long an event may stay unacknowledged before it is delivered again
//	max_deliver=N   how often an event is delivered at most
var (
	filterParams  = []string{"type", "source", "source_prefix", "source_glob", "has_meta"}
	historyParams = []string{"after_id", "after_seq", "after", "limit"}
	streamParams  = []string{"after_id", "after_seq", "after", "start", "durable", "ack", "ack_wait", "max_deliver", "last_event_id"}
)

// checkParams refuses parameters the route does not know: a typo should
// not silently widen a filter.
func checkParams(q url.Values, known ...[]string) *Error {
	for k := range q {
		if k == "access_token" || strings.HasPrefix(k, "meta.") && len(k) > len("meta.") {
			continue
		}
		ok := false
		for _, list := range known {
			for _, n := range list {
				ok = ok || n == k
			}
		}
		if !ok {
			return apiErr(http.StatusBadRequest, CodeBadRequest, "unknown query parameter %q", k)
		}
	}
	return nil
}

// parseFilter builds the filter the query asks for; nil when none.
func parseFilter(q url.Values) (engine.EventFilter, *Error) {
	var fs []engine.EventFilter
	if vs := q["type"]; len(vs) > 0 {
		var types []engine.EventType
		for _, v := range vs {
			for _, t := range splitComma(v) {
				types = append(types, engine.EventType(t))
			}
		}
		if len(types) == 0 {
			return nil, apiErr(http.StatusBadRequest, CodeBadRequest, "type: no type given")
		}
		fs = append(fs, engine.TypeIs(types...))
	}
	if q.Has("source") {
		fs = append(fs, engine.SourceIs(q.Get("source")))
	}
	if q.Has("source_prefix") {
		fs = append(fs, engine.SourcePrefix(q.Get("source_prefix")))
	}
	if q.Has("source_glob") {
		g, err := engine.SourceGlob(q.Get("source_glob"))
		if err != nil {
			return nil, apiErr(http.StatusBadRequest, CodeBadRequest, "source_glob: %v", err)
		}
		fs = append(fs, g)
	}
	for k, vs := range q {
		if key, ok := strings.CutPrefix(k, "meta."); ok && key != "" {
			for _, v := range vs {
				fs = append(fs, engine.MetadataIs(key, v))
			}
		}
	}
	for _, k := range q["has_meta"] {
		if k == "" {
			return nil, apiErr(http.StatusBadRequest, CodeBadRequest, "has_meta: an empty key")
		}
		fs = append(fs, engine.HasMetadata(k))
	}
	switch len(fs) {
	case 0:
		return nil, nil
	case 1:
		return fs[0], nil
	}
	return engine.And(fs...), nil
}

// parseHistoryQuery reads a history request's parameters.
func parseHistoryQuery(q url.Values) (engine.HistoryQuery, *Error) {
	var hq engine.HistoryQuery
	if e := checkParams(q, filterParams, historyParams); e != nil {
		return hq, e
	}
	f, e := parseFilter(q)
	if e != nil {
		return hq, e
	}
	hq.Filter = f
	if hq.AfterID, e = eventIDParam(q, "after_id"); e != nil {
		return hq, e
	}
	if hq.AfterSeq, e = uintParam(q, "after_seq"); e != nil {
		return hq, e
	}
	if hq.After, e = timeParam(q, "after"); e != nil {
		return hq, e
	}
	n, e := uintParam(q, "limit")
	if e != nil {
		return hq, e
	}
	hq.Limit = int(min(n, 1<<31-1))
	return hq, nil
}

func eventIDParam(q url.Values, name string) (engine.EventID, *Error) {
	if !q.Has(name) {
		return engine.EventID{}, nil
	}
	id, err := engine.ParseEventID(q.Get(name))
	if err != nil {
		return id, apiErr(http.StatusBadRequest, CodeBadRequest, "%s: %v", name, err)
	}
	return id, nil
}

func uintParam(q url.Values, name string) (uint64, *Error) {
	if !q.Has(name) {
		return 0, nil
	}
	n, err := strconv.ParseUint(q.Get(name), 10, 64)
	if err != nil {
		return 0, apiErr(http.StatusBadRequest, CodeBadRequest, "%s: %q is not a whole number", name, q.Get(name))
	}
	return n, nil
}

func timeParam(q url.Values, name string) (time.Time, *Error) {
	if !q.Has(name) {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, q.Get(name))
	if err != nil {
		return t, apiErr(http.StatusBadRequest, CodeBadRequest, "%s: %q is not an RFC 3339 time", name, q.Get(name))
	}
	return t, nil
}

func durationParam(q url.Values, name string) (time.Duration, *Error) {
	if !q.Has(name) {
		return 0, nil
	}
	d, err := time.ParseDuration(q.Get(name))
	if err != nil || d <= 0 {
		return 0, apiErr(http.StatusBadRequest, CodeBadRequest, "%s: %q is not a positive duration such as 30s", name, q.Get(name))
	}
	return d, nil
}

func splitComma(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
