package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
)

// Tokens of the tests: an admin of everything, a publisher and a
// subscriber of orders.* only.
const (
	adminToken = "admin-token-0123456789"
	pubToken   = "publish-token-0123456789"
	subToken   = "subscribe-token-0123456789"
)

var testTokens = []httpapi.Token{
	{Name: "admin", Secret: adminToken, Grants: []httpapi.Grant{{Channels: []string{"*"}, Actions: []httpapi.Action{httpapi.Admin}}}},
	{Name: "pub", Secret: pubToken, Grants: []httpapi.Grant{{Channels: []string{"orders*"}, Actions: []httpapi.Action{httpapi.Publish}}}},
	{Name: "sub", Secret: subToken, Grants: []httpapi.Grant{{Channels: []string{"orders*"}, Actions: []httpapi.Action{httpapi.Subscribe}}}},
}

// host is an engine served by the API on a real listener.
type host struct {
	eng *engine.Engine
	srv *httpapi.Server
	url string
}

// newHost serves eng (nil: a new in-memory engine) with cfg.
func newHost(t testing.TB, eng *engine.Engine, cfg httpapi.Config) *host {
	t.Helper()
	return serveHost(t, eng, cfg, false)
}

// smallBuffer is the socket buffer of the slow-client tests: small, so that
// a client that stops reading makes the host's writes wait after a few
// events rather than after megabytes.
const smallBuffer = 64 << 10

// smallListener gives the connections it accepts small send buffers.
type smallListener struct{ net.Listener }

func (l smallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(smallBuffer)
	}
	return c, err
}

// smallClient is a client whose connections have small receive buffers.
func (h *host) smallClient(t testing.TB) *httpapi.Client {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(smallBuffer)
		}
		return c, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := httpapi.NewClient(h.url, "", &http.Client{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func serveHost(t testing.TB, eng *engine.Engine, cfg httpapi.Config, small bool) *host {
	t.Helper()
	if eng == nil {
		eng = engine.New(engine.Config{})
		t.Cleanup(func() { eng.Close() })
	}
	srv, err := httpapi.New(eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if small {
		l = smallListener{l}
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// A connection a client opened and never sent a request on (the
		// transport dials ahead) holds a shutdown up for 5 s, as
		// net/http counts it busy until then.
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &host{eng: eng, srv: srv, url: "http://" + l.Addr().String()}
}

// durableEngine opens an engine with an embedded durable store.
func durableEngine(t testing.TB) *engine.Engine {
	t.Helper()
	eng, err := engine.Open(context.Background(), engine.Config{Durable: &engine.DurableConfig{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

func (h *host) client(t testing.TB, token string) *httpapi.Client {
	t.Helper()
	c, err := httpapi.NewClient(h.url, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *host) channel(t testing.TB, name string, cfg engine.ChannelConfig) {
	t.Helper()
	if err := h.eng.CreateChannel(name, cfg); err != nil {
		t.Fatal(err)
	}
}

// answer is a raw HTTP answer.
type answer struct {
	status int
	header http.Header
	body   string
	err    *httpapi.Error // the decoded error body, if any
}

// do sends a raw request; headers are "Name: value" strings.
func (h *host) do(t testing.TB, method, path, body string, headers ...string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, hv := range headers {
		k, v, _ := strings.Cut(hv, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if resp.StatusCode >= 400 {
		var e struct {
			Error *httpapi.Error `json:"error"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error == nil {
			t.Fatalf("%s %s: status %d with a body that is not a JSON error: %q", method, path, resp.StatusCode, b)
		}
		a.err = e.Error
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: error with Content-Type %q", method, path, ct)
		}
	}
	return a
}

func bearer(tok string) string { return "Authorization: Bearer " + tok }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func orderEvent(i int) engine.Event {
	ev := engine.NewEvent("order.created", "shop", engine.MustJSONData(`{"n":`+itoa(i)+`}`))
	return ev
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
