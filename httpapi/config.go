package httpapi

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of [Config].
const (
	DefaultMaxBody          = 16 << 20
	DefaultMaxBatch         = 10_000
	DefaultRequestTimeout   = 30 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultSubscriberBuffer = 10_000
	DefaultHeartbeat        = 15 * time.Second
	DefaultMaxStreams       = 10_000
)

// Config configures a [Server]. The zero value serves without
// authentication and with the defaults above.
type Config struct {
	// Tokens are the credentials accepted, as a bearer token
	// ("Authorization: Bearer T"), an API key ("X-API-Key: T") or, for
	// browsers' EventSource and WebSocket which cannot set headers, the
	// access_token query parameter. None: every request is allowed
	// everything (the caller decides whether that is safe, see
	// [Config.Validate]).
	Tokens []Token
	// CORSOrigins are the origins (scheme://host[:port]) whose pages may
	// call the API from a browser; "*" allows any. None: no CORS headers,
	// so only same-origin pages can read the answers.
	CORSOrigins []string
	// MaxBody bounds a request's body in bytes; default [DefaultMaxBody].
	MaxBody int64
	// MaxBatch bounds the events of one publish request; default
	// [DefaultMaxBatch].
	MaxBatch int
	// RequestTimeout bounds a request that is not a stream (reading its
	// body and doing the work, a publish waiting for room or for the
	// store); default [DefaultRequestTimeout].
	RequestTimeout time.Duration
	// WriteTimeout bounds each write to a streaming client (an SSE event,
	// a WebSocket message): a client that does not take it in time is
	// disconnected. Default [DefaultWriteTimeout].
	WriteTimeout time.Duration
	// SubscriberBuffer is how many events a streaming client of an
	// in-memory channel may fall behind before it is disconnected (with a
	// slow_client error, and Last-Event-ID to resume from the channel's
	// history, which must then hold that many); a persistent channel's
	// client instead stops fetching and catches up later. The queue grows
	// with the lag, so an idle stream costs nothing for it. Default
	// [DefaultSubscriberBuffer], as many as one publish may bring
	// ([DefaultMaxBatch]).
	SubscriberBuffer int
	// Heartbeat is how often an idle stream gets a keep-alive (an SSE
	// comment, a WebSocket ping); default [DefaultHeartbeat].
	Heartbeat time.Duration
	// MaxStreams bounds the streams (SSE and WebSocket) open at once;
	// default [DefaultMaxStreams].
	MaxStreams int
	// TLS, when set, makes [Server.Serve] speak HTTPS only.
	TLS *tls.Config
	// Ready reports whether the host is ready to serve (GET /readyz); nil:
	// always.
	Ready func(context.Context) error
	// Logger gets one line per failed request and per stream; nil:
	// slog.Default().
	Logger *slog.Logger
	// Tracer, when set, traces each publish request: a server span, a
	// child of the request's traceparent header, whose context the
	// published events carry (unless they bring their own), so that the
	// pipelines that take them continue the trace. Without it the
	// request's traceparent itself goes on the events.
	Tracer trace.Tracer
	// Meter, when set, records the requests' durations
	// ([MetricRequestDuration]) and the open streams ([MetricStreams]).
	Meter metric.Meter
	// Registry, when set, records the channels created and deleted through
	// the API, so that a restarted host can make them again (a persistent
	// one with its events, which its stream kept).
	Registry Registry
	// Fixed are channels the API may not delete: those the host's own
	// pipelines read and write (a manifest's).
	Fixed []string
}

// Registry records the channels created and deleted through the API.
type Registry interface {
	// ChannelCreated records a channel the API created. When it fails,
	// the channel is deleted again and the request fails: a channel the
	// host would forget at its next start is not made.
	ChannelCreated(spec ChannelSpec) error
	// ChannelDeleted records that the API deleted a channel. A failure is
	// logged: the channel is gone already.
	ChannelDeleted(name string) error
}

// Action is what a token may do on a channel.
type Action string

const (
	// Publish: publish events.
	Publish Action = "publish"
	// Subscribe: subscribe, read the history, acknowledge.
	Subscribe Action = "subscribe"
	// Admin: create, inspect and delete channels, list their
	// subscriptions; it includes publish and subscribe.
	Admin Action = "admin"
)

// Token is one credential and what it grants.
type Token struct {
	// Name identifies the token in logs (never the secret itself).
	Name string `json:"name" yaml:"name"`
	// Secret is the token's value: at least 16 bytes.
	Secret string `json:"token" yaml:"token"`
	// Grants say what it may do; a token with none may only read health,
	// readiness and the OpenAPI document.
	Grants []Grant `json:"grants" yaml:"grants"`
}

// Grant gives actions on the channels whose names match any of its
// patterns; in a pattern "*" matches any run of characters (so "*" is
// every channel, "orders.*" every channel whose name starts with
// "orders.").
type Grant struct {
	Channels []string `json:"channels" yaml:"channels"`
	Actions  []Action `json:"actions" yaml:"actions"`
}

// MinSecretLen is the shortest token accepted.
const MinSecretLen = 16

// TokenError is the error [Config.Validate] returns for a token at fault:
// which one, the field (relative to the token: "name", "token",
// "grants[0].channels", "grants[0].channels[2]", "grants[1].actions",
// "grants[1].actions[0]", ...), and what is wrong with it.
type TokenError struct {
	Index int    // in Config.Tokens
	Name  string // the token's name; "" when the name is what is wrong
	Grant int    // the grant at fault; -1 when none is
	Field string
	Msg   string
}

func (e *TokenError) Error() string {
	at := fmt.Sprintf("token[%s]: ", e.Name)
	if e.Name == "" {
		at = fmt.Sprintf("tokens[%d]: ", e.Index)
	}
	if e.Grant >= 0 {
		at += fmt.Sprintf("grants[%d]: ", e.Grant)
	}
	return at + e.Msg
}

// Actions are the actions a grant may give.
func Actions() []Action { return []Action{Publish, Subscribe, Admin} }

// Validate checks the tokens: names and secrets present and unique,
// secrets long enough, grants with patterns and known actions. An error
// about a token is a *[TokenError].
func (c Config) Validate() error {
	names := map[string]bool{}
	secrets := map[string]bool{}
	for i, t := range c.Tokens {
		bad := func(grant int, field, format string, args ...any) error {
			return &TokenError{Index: i, Name: t.Name, Grant: grant, Field: field, Msg: fmt.Sprintf(format, args...)}
		}
		switch {
		case t.Name == "":
			return &TokenError{Index: i, Grant: -1, Field: "name", Msg: "the name is empty"}
		case names[t.Name]:
			return &TokenError{Index: i, Grant: -1, Field: "name", Msg: fmt.Sprintf("the name %q is used twice", t.Name)}
		case len(t.Secret) < MinSecretLen:
			return bad(-1, "token", "the token is %d bytes long: at least %d", len(t.Secret), MinSecretLen)
		case secrets[t.Secret]:
			return bad(-1, "token", "the same token is given to another name")
		}
		names[t.Name], secrets[t.Secret] = true, true
		for j, g := range t.Grants {
			gp := fmt.Sprintf("grants[%d]", j)
			if len(g.Channels) == 0 {
				return bad(j, gp+".channels", "no channels")
			}
			if k := slices.Index(g.Channels, ""); k >= 0 {
				return bad(j, fmt.Sprintf("%s.channels[%d]", gp, k), "an empty channel pattern")
			}
			if len(g.Actions) == 0 {
				return bad(j, gp+".actions", "no actions")
			}
			for k, a := range g.Actions {
				if _, ok := actionBits[a]; !ok {
					return bad(j, fmt.Sprintf("%s.actions[%d]", gp, k), "unknown action %q: publish, subscribe or admin", a)
				}
			}
		}
	}
	for _, o := range c.CORSOrigins {
		if o == "" {
			return fmt.Errorf("cors_origins: an empty origin")
		}
	}
	if c.MaxBody < 0 || c.MaxBatch < 0 || c.RequestTimeout < 0 || c.WriteTimeout < 0 || c.SubscriberBuffer < 0 || c.Heartbeat < 0 || c.MaxStreams < 0 {
		return fmt.Errorf("a limit is negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	def(&c.MaxBatch, DefaultMaxBatch)
	def(&c.SubscriberBuffer, DefaultSubscriberBuffer)
	def(&c.MaxStreams, DefaultMaxStreams)
	defDur(&c.RequestTimeout, DefaultRequestTimeout)
	defDur(&c.WriteTimeout, DefaultWriteTimeout)
	defDur(&c.Heartbeat, DefaultHeartbeat)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
