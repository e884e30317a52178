package httpapi

import (
	"bytes"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/aegis-streaming/aegis/engine"
)

// FuzzSSEReader: any stream parses without panicking, every message it
// yields has data or a retry, and an event written by the host reads back
// as itself.
func FuzzSSEReader(f *testing.F) {
	ev := engine.NewEvent("order.created", "shop", engine.MustJSONData(`{"a":"x\ny"}`))
	ev.ID = engine.NewEventID()
	ev.Time = 1
	host := appendSSEEvent(nil, &ev)
	for _, s := range []string{
		string(host), "retry: 2000\n\nevent: subscribed\ndata: {}\n\n", ": keep-alive\n\n",
		"data: a\ndata: b\n\n", "data\n\n", "id: 1\r\ndata: x\r\n\r\n", "event: error\ndata: {\"code\":\"x\"}\n\n",
		"retry: -5\n\n", "id: a\x00b\ndata: x\n\n", "data: no end",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newSSEReader(bytes.NewReader(in))
		for range 1000 {
			m, err := r.next()
			if err != nil {
				if err != io.EOF && !strings.Contains(err.Error(), "too long") {
					t.Fatalf("next: %v", err)
				}
				break
			}
			if !m.hasData && m.retry == 0 {
				t.Fatalf("a message with neither data nor retry: %+v", m)
			}
			if strings.ContainsRune(m.id, 0) {
				t.Fatalf("an id with NUL: %q", m.id)
			}
		}
		// The host's own event, after whatever the input was and a blank
		// line, reads back whole.
		r = newSSEReader(bytes.NewReader(append(append(bytes.ReplaceAll(in, []byte("\r"), nil), "\n\n"...), host...)))
		var last sseMessage
		for {
			m, err := r.next()
			if err != nil {
				break
			}
			last = m
		}
		var back engine.Event
		if last.id != ev.ID.String() || back.UnmarshalJSON(last.data) != nil || back.ID != ev.ID {
			// Input ending in an unterminated "data:" line joins the
			// host's first line; only a clean boundary must read back.
			if !bytes.Contains(in, []byte("data")) && !bytes.Contains(in, []byte("id")) && !bytes.Contains(in, []byte("retry")) && !bytes.Contains(in, []byte("event")) {
				t.Fatalf("the host's event after %q read back as %+v", in, last)
			}
		}
	})
}

// FuzzQuery: any query string parses to a filter and options or to an
// API error, without panicking.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{
		"type=a,b&source=s&meta.k=v&has_meta=x", "after_id=01900000-0000-7000-8000-000000000000&limit=5",
		"after=2026-01-01T00:00:00Z", "source_glob=a*b?", "start=all&durable=d&ack=manual&ack_wait=5s&max_deliver=3",
		"after_seq=18446744073709551615", "limit=-1", "meta.=x", "type=", "%zz",
	} {
		f.Add(s)
	}
	s := &Server{cfg: Config{}.withDefaults()}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if hq, e := parseHistoryQuery(q); e == nil && hq.Limit < 0 {
			t.Fatalf("%q: negative limit %d", raw, hq.Limit)
		}
		for _, persistent := range []bool{false, true} {
			opts, replay, e := s.streamOptions(q, persistent, anonymous)
			if e != nil {
				if e.Status < 400 || e.Code == "" {
					t.Fatalf("%q: error without status or code: %+v", raw, e)
				}
				continue
			}
			if !persistent && (opts.Durable != "" || opts.AckMode == engine.AckManual) {
				t.Fatalf("%q: persistent-only options on an in-memory stream", raw)
			}
			if persistent && replay != nil {
				t.Fatalf("%q: a history replay on a persistent stream", raw)
			}
		}
	})
}

// FuzzDecodeEvents: any publish body decodes to valid events or an API
// error; what decodes re-encodes and decodes to the same events.
func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(`{"type":"a","data":{"kind":"int","value":1}}`), false)
	f.Add([]byte(`[{"type":"a"},{"type":"b","metadata":{"k":"v"}}]`), false)
	f.Add([]byte("{\"type\":\"a\"}\n\n{\"type\":\"b\"}\r\n"), true)
	f.Add([]byte(`{"type":"a","data":{"kind":"json","value":{"x":[1,
2]}}}`), false)
	f.Add([]byte(`[`), false)
	s := &Server{cfg: Config{MaxBatch: 50}.withDefaults()}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		var events []engine.Event
		var e *Error
		if ndjson {
			events, e = s.decodeNDJSON(body)
		} else {
			events, e = s.decodeJSONEvents(body)
		}
		if e != nil {
			if e.Status != 400 && e.Status != 413 {
				t.Fatalf("status %d for a bad body: %+v", e.Status, e)
			}
			return
		}
		if len(events) > 50 {
			t.Fatalf("%d events past the batch limit", len(events))
		}
		var nd []byte
		for i := range events {
			if err := events[i].Validate(); err != nil {
				t.Fatalf("event %d decoded but invalid: %v", i, err)
			}
			b, err := events[i].AppendJSON(nil)
			if err != nil {
				t.Fatalf("event %d does not encode: %v", i, err)
			}
			nd = append(append(nd, b...), '\n')
		}
		back, e := s.decodeNDJSON(nd)
		if e != nil || len(back) != len(events) {
			t.Fatalf("re-encoded events do not decode: %v", e)
		}
		for i := range back {
			if back[i].Type != events[i].Type || !back[i].Data.Equal(events[i].Data) && events[i].Data.Kind() != engine.KindJSON {
				t.Fatalf("event %d: %+v became %+v", i, events[i], back[i])
			}
		}
	})
}

// FuzzMatchPattern: a pattern without stars matches only itself, "*"
// matches anything, and a pattern matches the name it was made from.
func FuzzMatchPattern(f *testing.F) {
	f.Add("orders.*", "orders.eu")
	f.Add("*a*b*", "xaybz")
	f.Add("a**", "a")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := matchPattern(pattern, name)
		if !strings.Contains(pattern, "*") && got != (pattern == name) {
			t.Fatalf("matchPattern(%q, %q) = %v", pattern, name, got)
		}
		if !matchPattern("*", name) || !matchPattern(name, strings.ReplaceAll(name, "*", "x")) && !strings.Contains(name, "*") {
			t.Fatalf("%q does not match itself or *", name)
		}
		if got {
			// Every literal run of the pattern is in the name, in order.
			rest := name
			for _, part := range strings.Split(pattern, "*") {
				i := strings.Index(rest, part)
				if i < 0 {
					t.Fatalf("matchPattern(%q, %q) but %q is not in what is left", pattern, name, part)
				}
				rest = rest[i+len(part):]
			}
		}
	})
}
