package httpapi_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
	"github.com/aegis-streaming/aegis/internal/tlstest"
)

func TestTLS(t *testing.T) {
	cert := tlstest.New(t)
	pool := cert.Pool
	h := newHost(t, nil, httpapi.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert.TLS}}, Tokens: testTokens})
	h.channel(t, "orders", engine.ChannelConfig{})
	url := strings.Replace(h.url, "http://", "https://", 1)
	c, err := httpapi.NewClient(url, pubToken, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctxT(t), "orders", orderEvent(1)); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	// Plain HTTP to the TLS port gets no API answer.
	resp, err := http.Get(h.url + "/healthz")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("plain HTTP was served: %s", b)
		}
	}
	// A client that does not trust the certificate is refused by its TLS.
	untrusted, _ := httpapi.NewClient(url, pubToken, &http.Client{})
	if err := untrusted.Health(ctxT(t)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an untrusted certificate: %v", err)
	}
	// TLS 1.1 is refused.
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get(url + "/healthz"); err == nil {
		t.Fatal("TLS 1.1 was accepted")
	}
}

// TestSlowBody: a body that does not arrive within the request timeout is
// answered 408, and the connection does not hold a handler for longer.
func TestSlowBody(t *testing.T) {
	h := newHost(t, nil, httpapi.Config{RequestTimeout: 300 * time.Millisecond})
	h.channel(t, "orders", engine.ChannelConfig{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/channels/orders/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(conn)
	if !strings.Contains(string(b), "408") || !strings.Contains(string(b), `"code":"timeout"`) {
		t.Fatalf("a body that never came: %q", b)
	}
	if st, _ := h.eng.ChannelStats("orders"); st.Published != 0 {
		t.Fatal("something was published")
	}
}

// TestSlowRequestKeepsConnection: a request that takes longer than the
// request timeout (a publish waiting for room) is answered 504, and the
// next request on the same connection is served as usual.
func TestSlowRequestKeepsConnection(t *testing.T) {
	h := newHost(t, nil, httpapi.Config{RequestTimeout: 300 * time.Millisecond})
	h.channel(t, "orders", engine.ChannelConfig{BufferSize: 1, BlockTimeout: time.Minute})
	h.channel(t, "free", engine.ChannelConfig{})
	full, err := h.eng.Subscribe("orders", engine.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	tr := &http.Transport{MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	c, err := httpapi.NewClient(h.url, "", &http.Client{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	// The subscription holds one event; the second waits for room.
	_, err = c.Publish(ctx, "orders", orderEvent(1), orderEvent(2))
	var e *httpapi.Error
	if !errors.As(err, &e) || e.Code != httpapi.CodeTimeout || e.Published == nil || *e.Published != 1 {
		t.Fatalf("a publish that waits past the request timeout: %v", err)
	}
	time.Sleep(400 * time.Millisecond) // past the request timeout, idle
	// A stream on the same connection, whose context must not have been
	// ended by the slow request's read deadline.
	sub, err := c.Subscribe(ctx, "free", nil)
	if err != nil {
		t.Fatalf("the next request on the connection: %v", err)
	}
	defer sub.Close()
	if err := h.eng.Publish(ctx, "free", orderEvent(7)); err != nil {
		t.Fatal(err)
	}
	if ev, err := sub.Next(); err != nil || eventN(t, ev) != 7 || sub.Reconnects() != 0 {
		t.Fatalf("the stream on the connection: %v, %d reconnections", err, sub.Reconnects())
	}
}
