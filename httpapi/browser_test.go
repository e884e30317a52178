//go:build unix

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
	"github.com/aegis-streaming/aegis/internal/orders"
)

// browserPage is the page the browser runs. It subscribes to the orders
// channel of the API at ?api= with an EventSource, the token in the query
// as a browser must send it, and reports to /report (its own origin) what
// happened, one report after the other:
//
//	subscribed        the stream's subscribed event
//	events            the first ?first= events, then the next ?then=
//	stream-error      the end event the host sent before ending the stream
//	denied            the EventSource with a wrong token failed
//	denied-fetch      the status and error code of that request by fetch
//	blocked           the EventSource to the API at ?nocors=, which sends no
//	                  CORS headers for this page, failed
//	script-error      the page itself failed
const browserPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>aegis EventSource</title></head>
<body><script>
"use strict";
const params = new URLSearchParams(location.search);
const api = params.get("api"), noCORS = params.get("nocors"), token = params.get("token");
const want = [Number(params.get("first")), Number(params.get("first")) + Number(params.get("then"))];

let queue = Promise.resolve();
function report(kind, fields) {
	const body = JSON.stringify(Object.assign({kind: kind}, fields || {}));
	queue = queue.then(() => fetch("/report", {method: "POST", headers: {"Content-Type": "application/json"}, body: body})).catch(() => {});
}
window.onerror = (message) => report("script-error", {message: String(message)});
function streamURL(base, tok) {
	return base + "/v1/channels/orders/stream?access_token=" + encodeURIComponent(tok);
}

const es = new EventSource(streamURL(api, token));
let got = [], total = 0;
es.addEventListener("subscribed", (e) => report("subscribed", {subscribed: JSON.parse(e.data)}));
es.onmessage = (e) => {
	const ev = JSON.parse(e.data);
	got.push({id: ev.id, type: ev.type, last_event_id: e.lastEventId});
	total++;
	if (want.includes(total)) {
		report("events", {events: got});
		got = [];
	}
};
es.addEventListener("end", (e) => {
	// The host's reason for ending the stream; the EventSource then
	// reconnects by itself with Last-Event-ID.
	report("stream-error", {error: JSON.parse(e.data)});
});
es.onerror = () => {
	if (es.readyState === EventSource.CLOSED) {
		report("script-error", {message: "the stream failed for good"});
	}
};

const denied = new EventSource(streamURL(api, "not-the-token-0123456789"));
denied.onmessage = () => report("script-error", {message: "the wrong token got an event"});
denied.onerror = () => {
	report("denied", {ready_state: denied.readyState});
	denied.close();
};
fetch(streamURL(api, "not-the-token-0123456789"))
	.then((r) => r.json().then((body) => report("denied-fetch", {status: r.status, code: body.error.code})))
	.catch((err) => report("denied-fetch", {message: String(err)}));

const blocked = new EventSource(streamURL(noCORS, token));
blocked.onmessage = () => report("script-error", {message: "a stream without CORS headers got an event"});
blocked.onerror = () => {
	report("blocked", {ready_state: blocked.readyState});
	blocked.close();
};
</script></body></html>
`

// pageReport is one report of the page; Kind says which fields are set.
type pageReport struct {
	Kind       string              `json:"kind"`
	Subscribed *httpapi.Subscribed `json:"subscribed"`
	Events     []pageEvent         `json:"events"`
	Error      *httpapi.Error      `json:"error"`
	ReadyState *int                `json:"ready_state"`
	Status     int                 `json:"status"`
	Code       string              `json:"code"`
	Message    string              `json:"message"`
}

// pageEvent is an event as the page's onmessage got it.
type pageEvent struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	LastEventID string `json:"last_event_id"`
}

// esClosed is EventSource's readyState once it has given up.
const esClosed = 2

// TestBrowserEventSource runs a page in a headless Chromium that reads the
// API's Server-Sent Events with the browser's own EventSource: from
// another origin (CORS), with the token in the query, receiving the events
// published after it subscribed, in order with their IDs as the SSE ids;
// resuming by itself with Last-Event-ID after the host ended the stream;
// and failing with a wrong token or without CORS headers.
func TestBrowserEventSource(t *testing.T) {
	chromium := browserBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	eng := engine.New(engine.Config{})
	t.Cleanup(func() { eng.Close() })
	if err := eng.CreateChannel("orders", engine.ChannelConfig{}); err != nil {
		t.Fatal(err)
	}

	reports := make(chan pageReport, 64)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(browserPage))
	})
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var rep pageReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case reports <- rep:
		case <-r.Context().Done():
		}
	})
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)

	const token = "browser-token-0123456789"
	cfg := httpapi.Config{
		Tokens:      []httpapi.Token{{Name: "page", Secret: token, Grants: []httpapi.Grant{{Channels: []string{"orders"}, Actions: []httpapi.Action{httpapi.Subscribe, httpapi.Publish}}}}},
		CORSOrigins: []string{page.URL},
	}
	api := serveAPI(t, eng, cfg, "127.0.0.1:0")
	noCORS := cfg
	noCORS.CORSOrigins = nil
	noCORSAPI := serveAPI(t, eng, noCORS, "127.0.0.1:0")

	const first, then = 20, 8
	q := url.Values{
		"api": {"http://" + api.addr}, "nocors": {"http://" + noCORSAPI.addr},
		"token": {token}, "first": {strconv.Itoa(first)}, "then": {strconv.Itoa(then)},
	}
	startBrowser(t, ctx, chromium, page.URL+"/?"+q.Encode())
	r := &reportReader{t: t, ctx: ctx, ch: reports}

	sub := r.wait("subscribed").Subscribed
	if sub == nil || sub.Channel != "orders" || sub.Subscription == "" || sub.Ack != "auto" {
		t.Fatalf("subscribed: %+v, want the orders channel, a subscription ID and ack auto", sub)
	}
	c, err := httpapi.NewClient("http://"+api.addr, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UnixNano()
	events := orders.Events(first+then, start)
	// Several requests, so that the order checked is also the order of
	// requests, not only of one batch.
	for i := 0; i < first; i += 5 {
		ids, err := c.Publish(ctx, "orders", events[i:i+5]...)
		if err != nil {
			t.Fatal(err)
		}
		for j, id := range ids {
			if id != events[i+j].ID {
				t.Fatalf("publish: event %d got the ID %v, want its own %v", i+j, id, events[i+j].ID)
			}
		}
	}
	checkPageEvents(t, "live", r.wait("events").Events, events[:first])

	if rep := r.wait("denied"); rep.ReadyState == nil || *rep.ReadyState != esClosed {
		t.Errorf("wrong token: the EventSource's readyState after its error is not %d (closed: refused for good, not retried): %+v", esClosed, rep)
	}
	if rep := r.wait("denied-fetch"); rep.Status != http.StatusUnauthorized || rep.Code != httpapi.CodeUnauthorized {
		t.Errorf("wrong token: the page read status %d code %q (%s), want %d %q", rep.Status, rep.Code, rep.Message, http.StatusUnauthorized, httpapi.CodeUnauthorized)
	}
	r.wait("blocked") // without CORS headers the browser refuses the stream

	// The host ends the stream (a shutdown); the events published while
	// the page is away come to it when it is back, after the last event
	// it got and only those: the EventSource sends Last-Event-ID.
	api.shutdown(t, ctx)
	if rep := r.wait("stream-error"); rep.Error == nil || rep.Error.Code != httpapi.CodeUnavailable {
		t.Errorf("shutdown: the stream's error event is %+v, want code %q", rep.Error, httpapi.CodeUnavailable)
	}
	if err := eng.PublishBatch(ctx, "orders", engine.EventBatch{Events: events[first:]}); err != nil {
		t.Fatal(err)
	}
	serveAPI(t, eng, cfg, api.addr)
	checkPageEvents(t, "resumed", r.wait("events").Events, events[first:])
	r.wait("subscribed")
}

// checkPageEvents compares what the page got with the events published.
func checkPageEvents(t *testing.T, what string, got []pageEvent, want []engine.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: the page got %d events, want %d", what, len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.ID != w.ID.String() || g.Type != string(w.Type) || g.LastEventID != g.ID {
			t.Fatalf("%s: event %d: id %s type %s lastEventId %s, want id %s type %s and the id as lastEventId", what, i, g.ID, g.Type, g.LastEventID, w.ID, w.Type)
		}
	}
}

// reportReader hands out the page's reports by kind, keeping those that
// come before the one waited for.
type reportReader struct {
	t    *testing.T
	ctx  context.Context
	ch   <-chan pageReport
	kept []pageReport
}

// wait returns the first report of kind not returned yet; a script error
// of the page fails the test.
func (r *reportReader) wait(kind string) pageReport {
	r.t.Helper()
	for i, rep := range r.kept {
		if rep.Kind == kind {
			r.kept = append(r.kept[:i], r.kept[i+1:]...)
			return rep
		}
	}
	for {
		select {
		case rep := <-r.ch:
			if rep.Kind == "script-error" {
				r.t.Fatalf("the page: %s", rep.Message)
			}
			if rep.Kind == kind {
				return rep
			}
			r.kept = append(r.kept, rep)
		case <-r.ctx.Done():
			r.t.Fatalf("waiting for the page's %q report: %v (reports so far: %+v)", kind, r.ctx.Err(), r.kept)
		}
	}
}

// apiServer is an API served on a listener of its own.
type apiServer struct {
	addr string
	srv  *httpapi.Server
	done chan error
}

// serveAPI serves the API of eng with cfg on addr until the test ends.
func serveAPI(t *testing.T, eng *engine.Engine, cfg httpapi.Config, addr string) *apiServer {
	t.Helper()
	srv, err := httpapi.New(eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a := &apiServer{addr: l.Addr().String(), srv: srv, done: make(chan error, 1)}
	go func() { a.done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.shutdown(t, ctx)
	})
	return a
}

// shutdown shuts the server down and checks that Serve ended without an
// error; once done, it does nothing.
func (a *apiServer) shutdown(t *testing.T, ctx context.Context) {
	t.Helper()
	if a.done == nil {
		return
	}
	if err := a.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown of the API at %s: %v", a.addr, err)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("serving the API at %s: %v", a.addr, err)
		}
	case <-ctx.Done():
		t.Errorf("serving the API at %s: Serve did not return after Shutdown", a.addr)
	}
	a.done = nil
}

// browserBinary is the path of Chromium. The test is skipped when it is
// not installed, unless AEGIS_REQUIRE_BROWSER is set (go tool task test
// sets it, and its deps task installs Chromium), which makes it fail.
func browserBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a browser; skipped with -short")
	}
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("AEGIS_REQUIRE_BROWSER") != "" {
			t.Fatalf("AEGIS_REQUIRE_BROWSER is set but chromium is not installed (go tool task deps installs it): %v", err)
		}
		t.Skipf("chromium is not installed (go tool task deps installs it): %v", err)
	}
	return path
}

// startBrowser runs a headless Chromium on pageURL until the test ends,
// when its whole process group is killed.
func startBrowser(t *testing.T, ctx context.Context, chromium, pageURL string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--no-first-run",
		"--user-data-dir="+t.TempDir(), pageURL)
	var stderr bytes.Buffer // read only once the browser has ended
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() {
		if err := killGroup(cmd); err != nil {
			t.Errorf("killing chromium: %v", err)
		}
		cmd.Wait()
		if t.Failed() {
			out := stderr.Bytes()
			if len(out) > 8<<10 {
				out = out[len(out)-8<<10:]
			}
			t.Logf("chromium's output (its end):\n%s", out)
		}
	})
}

// killGroup kills the browser's process group: the browser and every
// process it started.
func killGroup(cmd *exec.Cmd) error {
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil // already gone
	}
	return err
}
