package httpapi_test

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
)

const oneEvent = `{"type":"order.created","source":"shop","data":{"kind":"json","value":{"n":1}}}`

// TestAuth sends every route with no token, a wrong one, one without the
// permission and one with it: the first three are refused with the right
// status and code, the answer names no secret, and a refusal says the
// same whether the channel exists or not.
func TestAuth(t *testing.T) {
	h := newHost(t, nil, httpapi.Config{Tokens: testTokens})
	h.channel(t, "orders", engine.ChannelConfig{})
	h.channel(t, "secret", engine.ChannelConfig{})
	type route struct {
		method, path, body string
		// allowed is the token that may; refused one that may not.
		allowed, refused string
		status           int // the allowed answer
	}
	routes := []route{
		{"GET", "/v1/channels/orders", "", subToken, "", 200},
		{"GET", "/v1/channels/secret", "", adminToken, subToken, 200},
		{"GET", "/v1/channels/nothere", "", adminToken, subToken, 404},
		{"POST", "/v1/channels", `{"name":"orders.new"}`, adminToken, pubToken, 201},
		{"DELETE", "/v1/channels/secret", "", adminToken, pubToken, 204},
		{"POST", "/v1/channels/orders/events", oneEvent, pubToken, subToken, 200},
		{"GET", "/v1/channels/orders/events", "", subToken, pubToken, 200},
		{"GET", "/v1/channels/orders/subscriptions", "", adminToken, subToken, 200},
		{"GET", "/v1/channels/orders/stream?start=bogus", "", subToken, pubToken, 400},
		{"GET", "/v1/channels/orders/ws?start=bogus", "", subToken, pubToken, 426},
		{"GET", "/v1/stats", "", subToken, "", 200},
		{"POST", "/v1/subscriptions/none/ack", `{"ids":[]}`, subToken, "", 404},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			check := func(a answer, status int, code string) {
				t.Helper()
				if a.status != status || (code != "" && (a.err == nil || a.err.Code != code)) {
					t.Fatalf("status %d %v, want %d %s: %s", a.status, a.err, status, code, a.body)
				}
				for _, tok := range []string{adminToken, pubToken, subToken, "wrong-token"} {
					if strings.Contains(a.body, tok) {
						t.Fatalf("the answer contains a token: %s", a.body)
					}
				}
			}
			a := h.do(t, r.method, r.path, r.body)
			check(a, 401, httpapi.CodeUnauthorized)
			if a.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			check(h.do(t, r.method, r.path, r.body, bearer("wrong-token-0123456789")), 401, httpapi.CodeUnauthorized)
			check(h.do(t, r.method, r.path, r.body, "Authorization: Basic YWRtaW46"), 401, httpapi.CodeUnauthorized)
			check(h.do(t, r.method, r.path, r.body, "X-API-Key: wrong-token-0123456789"), 401, httpapi.CodeUnauthorized)
			if r.refused != "" {
				check(h.do(t, r.method, r.path, r.body, bearer(r.refused)), 403, httpapi.CodeForbidden)
			}
			check(h.do(t, r.method, r.path, r.body, bearer(r.allowed)), r.status, "")
		})
	}
	t.Run("api key and query token", func(t *testing.T) {
		if a := h.do(t, "GET", "/v1/channels/orders", "", "X-API-Key: "+subToken); a.status != 200 {
			t.Fatalf("X-API-Key: %d %s", a.status, a.body)
		}
		if a := h.do(t, "GET", "/v1/channels/orders?access_token="+subToken, ""); a.status != 200 {
			t.Fatalf("access_token: %d %s", a.status, a.body)
		}
	})
	t.Run("a refusal does not tell whether the channel exists", func(t *testing.T) {
		a := h.do(t, "GET", "/v1/channels/orders/events", "", bearer(pubToken))
		b := h.do(t, "GET", "/v1/channels/orders.nothere/events", "", bearer(pubToken))
		if a.status != 403 || b.status != 403 || strings.ReplaceAll(a.err.Message, "orders", "orders.nothere") != b.err.Message {
			t.Fatalf("existing: %d %q; missing: %d %q", a.status, a.err.Message, b.status, b.err.Message)
		}
	})
	t.Run("a list shows only the channels the token may see", func(t *testing.T) {
		chs, err := h.client(t, pubToken).Channels(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chs {
			if !strings.HasPrefix(c.Name, "orders") {
				t.Errorf("publisher of orders* sees %q", c.Name)
			}
		}
		st, err := h.client(t, pubToken).Stats(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.PerChannel {
			if !strings.HasPrefix(c.Name, "orders") {
				t.Errorf("publisher of orders* sees stats of %q", c.Name)
			}
		}
	})
	t.Run("health, readiness and the document need no token", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz", "/v1/openapi.json"} {
			if a := h.do(t, "GET", p, ""); a.status != 200 {
				t.Errorf("%s: %d %s", p, a.status, a.body)
			}
		}
	})
}

func TestConfigValidate(t *testing.T) {
	g := []httpapi.Grant{{Channels: []string{"*"}, Actions: []httpapi.Action{httpapi.Publish}}}
	tests := []struct {
		name   string
		tokens []httpapi.Token
		want   string
		index  int
		field  string
	}{
		{"no name", []httpapi.Token{{Secret: adminToken, Grants: g}}, "tokens[0]: the name is empty", 0, "name"},
		{"short", []httpapi.Token{{Name: "a", Secret: "short", Grants: g}}, "at least 16", 0, "token"},
		{"twice", []httpapi.Token{{Name: "a", Secret: adminToken, Grants: g}, {Name: "a", Secret: pubToken, Grants: g}}, "tokens[1]: the name \"a\" is used twice", 1, "name"},
		{"same secret", []httpapi.Token{{Name: "a", Secret: adminToken, Grants: g}, {Name: "b", Secret: adminToken, Grants: g}}, "token[b]: the same token is given to another name", 1, "token"},
		{"no channels", []httpapi.Token{{Name: "a", Secret: adminToken, Grants: []httpapi.Grant{{Actions: []httpapi.Action{httpapi.Admin}}}}}, "token[a]: grants[0]: no channels", 0, "grants[0].channels"},
		{"empty pattern", []httpapi.Token{{Name: "a", Secret: adminToken, Grants: []httpapi.Grant{g[0], {Channels: []string{"x", ""}, Actions: g[0].Actions}}}}, "grants[1]: an empty channel pattern", 0, "grants[1].channels[1]"},
		{"bad action", []httpapi.Token{{Name: "a", Secret: adminToken, Grants: []httpapi.Grant{{Channels: []string{"x"}, Actions: []httpapi.Action{httpapi.Publish, "write"}}}}}, `unknown action "write"`, 0, "grants[0].actions[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := httpapi.Config{Tokens: tt.tokens}.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			var te *httpapi.TokenError
			if !errors.As(err, &te) || te.Index != tt.index || te.Field != tt.field {
				t.Fatalf("got %#v, want token %d, field %q", err, tt.index, tt.field)
			}
			if err != nil && strings.Contains(err.Error(), adminToken) {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

// TestPublishErrors sends malformed, oversized and misdirected bodies:
// each refused with its code, and nothing published.
func TestPublishErrors(t *testing.T) {
	h := newHost(t, nil, httpapi.Config{MaxBody: 4096, MaxBatch: 3})
	h.channel(t, "orders", engine.ChannelConfig{})
	ndjson := "Content-Type: application/x-ndjson"
	tests := []struct {
		name, path, body string
		headers          []string
		status           int
		code, msg        string
	}{
		{"malformed", "/v1/channels/orders/events", `{"type":`, nil, 400, httpapi.CodeInvalidJSON, ""},
		{"malformed array", "/v1/channels/orders/events", `[` + oneEvent + `,`, nil, 400, httpapi.CodeInvalidJSON, ""},
		{"no type", "/v1/channels/orders/events", `{"data":{"kind":"null"}}`, nil, 400, httpapi.CodeInvalidEvent, "type"},
		{"unknown field", "/v1/channels/orders/events", `{"type":"a","colour":1}`, nil, 400, httpapi.CodeInvalidEvent, "colour"},
		{"bad data kind", "/v1/channels/orders/events", `{"type":"a","data":{"kind":"blob"}}`, nil, 400, httpapi.CodeInvalidEvent, "blob"},
		{"second bad in array", "/v1/channels/orders/events", `[` + oneEvent + `,{"type":""}]`, nil, 400, httpapi.CodeInvalidEvent, "event 1"},
		{"bad ndjson line", "/v1/channels/orders/events", oneEvent + "\n\n{nope\n", []string{ndjson}, 400, httpapi.CodeInvalidJSON, "line 3"},
		{"empty", "/v1/channels/orders/events", ``, nil, 400, httpapi.CodeInvalidJSON, ""},
		{"empty ndjson", "/v1/channels/orders/events", "\n\n", []string{ndjson}, 400, httpapi.CodeBadRequest, "no event"},
		{"too large", "/v1/channels/orders/events", `{"type":"a","data":{"kind":"string","value":"` + strings.Repeat("x", 5000) + `"}}`, nil, 413, httpapi.CodeTooLarge, "4096"},
		{"too many", "/v1/channels/orders/events", "[" + strings.Repeat(oneEvent+",", 3) + oneEvent + "]", nil, 413, httpapi.CodeTooLarge, "at most 3"},
		{"too many ndjson", "/v1/channels/orders/events", strings.Repeat(oneEvent+"\n", 4), []string{ndjson}, 413, httpapi.CodeTooLarge, "at most 3"},
		{"media type", "/v1/channels/orders/events", oneEvent, []string{"Content-Type: text/plain"}, 415, httpapi.CodeUnsupportedMedia, "text/plain"},
		{"no channel", "/v1/channels/nothere/events", oneEvent, nil, 404, httpapi.CodeChannelNotFound, `"nothere"`},
		{"method", "/v1/channels/orders/events", oneEvent, []string{"X-Method: PUT"}, 405, httpapi.CodeMethodNotAllowed, "GET, POST"},
		{"no route", "/v1/nothing", "", nil, 404, httpapi.CodeNotFound, "openapi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := "POST"
			var hs []string
			for _, hv := range tt.headers {
				if m, ok := strings.CutPrefix(hv, "X-Method: "); ok {
					method = m
				} else {
					hs = append(hs, hv)
				}
			}
			a := h.do(t, method, tt.path, tt.body, hs...)
			if a.status != tt.status || a.err == nil || a.err.Code != tt.code || !strings.Contains(a.err.Message, tt.msg) {
				t.Fatalf("got %d %+v, want %d %s containing %q", a.status, a.err, tt.status, tt.code, tt.msg)
			}
		})
	}
	if st, _ := h.eng.ChannelStats("orders"); st.Published != 0 {
		t.Fatalf("%d events published by refused requests", st.Published)
	}
}

func TestPublishForms(t *testing.T) {
	h := newHost(t, nil, httpapi.Config{})
	h.channel(t, "orders", engine.ChannelConfig{})
	c := h.client(t, "")
	ctx := ctxT(t)
	id := engine.NewEventID()
	given := orderEvent(1)
	given.ID = id
	ids, err := c.Publish(ctx, "orders", given)
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("single: %v %v", ids, err)
	}
	ids, err = c.Publish(ctx, "orders", orderEvent(2), orderEvent(3))
	if err != nil || len(ids) != 2 {
		t.Fatalf("array: %v %v", ids, err)
	}
	var nd strings.Builder
	for i := 4; i < 104; i++ {
		b, _ := orderEvent(i).MarshalJSON()
		nd.Write(b)
		nd.WriteString("\r\n")
	}
	ids, err = c.PublishNDJSON(ctx, "orders", strings.NewReader(nd.String()))
	if err != nil || len(ids) != 100 {
		t.Fatalf("ndjson: %d %v", len(ids), err)
	}
	a := h.do(t, "POST", "/v1/channels/orders/events", oneEvent, "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if a.status != 200 {
		t.Fatalf("with traceparent: %d %s", a.status, a.body)
	}
	hist, err := c.History(ctx, "orders", nil)
	if err != nil || len(hist) != 104 {
		t.Fatalf("history: %d %v", len(hist), err)
	}
	for i, ev := range hist[:103] {
		want := `{"n":` + itoa(i+1) + `}`
		if v, _ := ev.Data.AsJSON(); string(v) != want {
			t.Fatalf("event %d: %s, want %s", i, v, want)
		}
	}
	if tp, _ := hist[103].Meta(engine.MetaTraceParent); !strings.HasPrefix(tp, "00-4bf92f35") {
		t.Fatalf("the request's trace context is not on the event: %q", tp)
	}
}

func TestChannels(t *testing.T) {
	h := newHost(t, durableEngine(t), httpapi.Config{})
	c := h.client(t, "")
	ctx := ctxT(t)
	ci, err := c.CreateChannel(ctx, httpapi.ChannelSpec{Name: "a/b%c", Buffer: 8, Retention: &httpapi.RetentionSpec{MaxEvents: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if ci.Name != "a/b%c" || ci.Buffer != 8 || ci.Retention.MaxEvents != 10 || ci.SlowSubscriber != "block" || ci.Persistent {
		t.Fatalf("created: %+v", ci)
	}
	p, err := c.CreateChannel(ctx, httpapi.ChannelSpec{Name: "durable", Persistent: true, Discard: "new", DuplicateWindow: httpapi.Duration(60e9)})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Persistent || p.Discard != "new" || p.DuplicateWindow != httpapi.Duration(60e9) {
		t.Fatalf("persistent: %+v", p)
	}
	errCode := func(err error) string {
		var e *httpapi.Error
		if errors.As(err, &e) {
			return e.Code
		}
		return ""
	}
	if _, err := c.CreateChannel(ctx, httpapi.ChannelSpec{Name: "a/b%c"}); errCode(err) != httpapi.CodeChannelExists {
		t.Fatalf("twice: %v", err)
	}
	if _, err := c.CreateChannel(ctx, httpapi.ChannelSpec{Name: "x", SlowSubscriber: "sometimes"}); errCode(err) != httpapi.CodeBadRequest {
		t.Fatalf("bad policy: %v", err)
	}
	if _, err := c.CreateChannel(ctx, httpapi.ChannelSpec{Name: "x", Discard: "new"}); errCode(err) != httpapi.CodeUnsupported {
		t.Fatalf("discard in memory: %v", err)
	}
	if _, err := c.CreateChannel(ctx, httpapi.ChannelSpec{Name: "bad name"[:3] + "\n"}); errCode(err) != httpapi.CodeBadRequest {
		t.Fatalf("bad name: %v", err)
	}
	if a := h.do(t, "POST", "/v1/channels", `{"name":"y","buffer":"big"}`); a.status != 400 || a.err.Code != httpapi.CodeInvalidJSON {
		t.Fatalf("bad json: %d %s", a.status, a.body)
	}
	got, err := c.Channel(ctx, "a/b%c")
	if err != nil || got.Name != "a/b%c" {
		t.Fatalf("get: %+v %v", got, err)
	}
	all, err := c.Channels(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("list: %+v %v", all, err)
	}
	if err := c.DeleteChannel(ctx, "a/b%c"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteChannel(ctx, "a/b%c"); errCode(err) != httpapi.CodeChannelNotFound {
		t.Fatalf("deleted twice: %v", err)
	}
	if _, err := c.Channel(ctx, "a/b%c"); errCode(err) != httpapi.CodeChannelNotFound {
		t.Fatalf("get deleted: %v", err)
	}
	if a := h.do(t, "GET", "/readyz", ""); a.status != http.StatusOK {
		t.Fatalf("readyz: %d", a.status)
	}
}

// registry records channels in memory, or fails.
type registry struct {
	mu   sync.Mutex
	m    map[string]httpapi.ChannelSpec
	fail error
}

func (r *registry) ChannelCreated(spec httpapi.ChannelSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.m[spec.Name] = spec
	return nil
}

func (r *registry) ChannelDeleted(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, name)
	return r.fail
}

// TestRegistryAndFixed: the API records the channels it makes and
// unmakes, makes none it cannot record, and deletes none of the fixed.
func TestRegistryAndFixed(t *testing.T) {
	reg := &registry{m: map[string]httpapi.ChannelSpec{}}
	h := newHost(t, nil, httpapi.Config{Registry: reg, Fixed: []string{"orders"}})
	h.channel(t, "orders", engine.ChannelConfig{})
	c := h.client(t, "")
	ctx := ctxT(t)
	if _, err := c.CreateChannel(ctx, httpapi.ChannelSpec{Name: "alerts", Buffer: 7}); err != nil {
		t.Fatal(err)
	}
	if got := reg.m["alerts"]; got.Buffer != 7 || got.SlowSubscriber != "block" || got.Retention == nil || got.Retention.MaxEvents != 1000 {
		t.Fatalf("recorded %+v, want the spec with the defaults applied", got)
	}
	if err := c.DeleteChannel(ctx, "alerts"); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.m["alerts"]; ok {
		t.Fatal("a deleted channel is still recorded")
	}
	var e *httpapi.Error
	if err := c.DeleteChannel(ctx, "orders"); !errors.As(err, &e) || e.Code != httpapi.CodeUnsupported {
		t.Fatalf("deleting a fixed channel: %v", err)
	}
	reg.fail = errors.New("disk full")
	if _, err := c.CreateChannel(ctx, httpapi.ChannelSpec{Name: "lost"}); !errors.As(err, &e) || e.Code != httpapi.CodeUnavailable || !strings.Contains(e.Message, "disk full") {
		t.Fatalf("a channel that cannot be recorded: %v", err)
	}
	if _, err := h.eng.Channel("lost"); !errors.Is(err, engine.ErrChannelNotFound) {
		t.Fatalf("the channel that could not be recorded exists: %v", err)
	}
}
