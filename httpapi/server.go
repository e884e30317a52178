package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// Server is the HTTP API of one engine. It is an http.Handler; [Server.Serve]
// also runs the HTTP server, with the timeouts an API exposed to a network
// needs.
type Server struct {
	eng     *engine.Engine
	cfg     Config
	auth    *auth
	log     *slog.Logger
	mux     *http.ServeMux
	streams streams
	closing atomic.Bool
	tel     telemetry
	paths   map[string][]string // the routes and their methods

	mu  sync.Mutex
	srv []*http.Server
}

// handler serves one route once the request is authenticated; the
// error it returns, if any, is the answer.
type handler func(w http.ResponseWriter, r *http.Request, p *principal) *Error

// New returns the API of eng. It fails when cfg does not validate.
func New(eng *engine.Engine, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	cfg = cfg.withDefaults()
	s := &Server{eng: eng, cfg: cfg, auth: newAuth(cfg.Tokens), log: cfg.Logger, mux: http.NewServeMux(), paths: map[string][]string{}}
	s.cfg.Tokens = nil // only their digests are kept (auth)
	s.streams.init()
	s.tel.tracer = cfg.Tracer
	if err := s.instrument(cfg.Meter); err != nil {
		return nil, fmt.Errorf("api: metrics: %w", err)
	}
	s.open("/healthz", http.MethodGet, s.health)
	s.open("/readyz", http.MethodGet, s.ready)
	s.open("/v1/openapi.json", http.MethodGet, serveOpenAPI)
	s.route("/v1/stats", false, map[string]handler{http.MethodGet: s.stats})
	s.route("/v1/channels", false, map[string]handler{http.MethodGet: s.listChannels, http.MethodPost: s.createChannel})
	s.route("/v1/channels/{channel}", false, map[string]handler{http.MethodGet: s.getChannel, http.MethodDelete: s.deleteChannel})
	s.route("/v1/channels/{channel}/events", false, map[string]handler{http.MethodPost: s.publish, http.MethodGet: s.history})
	s.route("/v1/channels/{channel}/subscriptions", false, map[string]handler{http.MethodGet: s.subscriptions})
	s.route("/v1/channels/{channel}/stream", true, map[string]handler{http.MethodGet: s.sse})
	s.route("/v1/channels/{channel}/ws", true, map[string]handler{http.MethodGet: s.websocket})
	s.route("/v1/subscriptions/{id}/ack", false, map[string]handler{http.MethodPost: s.settle(settleAck)})
	s.route("/v1/subscriptions/{id}/nak", false, map[string]handler{http.MethodPost: s.settle(settleNak)})
	s.route("/v1/subscriptions/{id}/term", false, map[string]handler{http.MethodPost: s.settle(settleTerm)})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, apiErr(http.StatusNotFound, CodeNotFound, "no route %s %s; GET /v1/openapi.json lists them", r.Method, r.URL.Path))
	})
	return s, nil
}

// Routes are the API's paths with their methods, as the OpenAPI
// document lists them.
func (s *Server) Routes() map[string][]string {
	out := make(map[string][]string, len(s.paths))
	for k, v := range s.paths {
		out[k] = slices.Clone(v)
	}
	return out
}

// open registers a route that needs no token.
func (s *Server) open(path, method string, h http.HandlerFunc) {
	s.paths[path] = []string{method}
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			s.notAllowed(w, r, path, method)
			return
		}
		h(w, r)
	})
}

// notAllowed answers a method that path does not take.
func (s *Server) notAllowed(w http.ResponseWriter, r *http.Request, path, allow string) {
	w.Header().Set("Allow", allow)
	s.writeError(w, r, apiErr(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method %s: %s takes %s", r.Method, path, allow))
}

// route registers an authenticated route. A route that is not a stream
// gets the request timeout.
func (s *Server) route(path string, stream bool, methods map[string]handler) {
	allowed := slices.Sorted(maps.Keys(methods))
	s.paths[path] = allowed
	allow := strings.Join(allowed, ", ")
	s.mux.HandleFunc(path, func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw}
		began := time.Now()
		defer func() { s.tel.record(r, path, w.status, began) }()
		h, ok := methods[r.Method]
		if !ok && r.Method == http.MethodHead && !stream {
			h, ok = methods[http.MethodGet] // net/http sends no body
		}
		if !ok {
			s.notAllowed(w, r, path, allow)
			return
		}
		p, err := s.auth.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !stream {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if err := h(w, r, p); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// ServeHTTP implements http.Handler: CORS, the body limit and panics are
// handled here, for every route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("api handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
			s.writeError(w, r, apiErr(http.StatusInternalServerError, CodeInternal, "panic: %v", v))
		}
	}()
	if s.cors(w, r) {
		return
	}
	if r.ContentLength > s.cfg.MaxBody {
		s.writeError(w, r, apiErr(http.StatusRequestEntityTooLarge, CodeTooLarge, "the body is %d bytes: at most %d", r.ContentLength, s.cfg.MaxBody))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	s.mux.ServeHTTP(w, r)
}

// cors sets the CORS headers for an allowed origin, and answers a
// preflight request (true).
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	if len(s.cfg.CORSOrigins) == 0 {
		return false
	}
	// The answer depends on these headers whether or not this origin is
	// allowed: a shared cache must not serve one origin's to another.
	w.Header().Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	if !slices.Contains(s.cfg.CORSOrigins, "*") && !slices.Contains(s.cfg.CORSOrigins, origin) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "Aegis-Subscription")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, X-API-Key, Content-Type, Last-Event-ID")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() {
		s.writeError(w, r, apiErr(http.StatusServiceUnavailable, CodeUnavailable, "the host is shutting down"))
		return
	}
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			s.writeError(w, r, apiErr(http.StatusServiceUnavailable, CodeUnavailable, "not ready: %v", err))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Server timeouts that do not depend on the configuration: a client has
// 10 s to send its headers (which bounds slowloris), at most 64 KiB of
// them, and an idle keep-alive connection is closed after 2 minutes.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// Serve serves the API on l until [Server.Shutdown]; with [Config.TLS], over
// TLS. It returns nil after a shutdown.
func (s *Server) Serve(l net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if s.cfg.TLS != nil {
		cfg := s.cfg.TLS.Clone()
		if cfg.MinVersion == 0 {
			cfg.MinVersion = tls.VersionTLS12
		}
		srv.TLSConfig = cfg
		l = tls.NewListener(l, cfg)
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.srv = append(s.srv, srv)
	s.mu.Unlock()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting requests, ends the open streams (each gets a
// last "unavailable" error, and resumes from Last-Event-ID elsewhere or
// later), and waits for the requests in flight until ctx ends; then it
// closes the connections that are left, and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	srvs := s.srv
	s.mu.Unlock()
	s.streams.closeAll()
	var errs []error
	if s.tel.reg != nil {
		errs = append(errs, s.tel.reg.Unregister())
	}
	for _, srv := range srvs {
		if err := srv.Shutdown(ctx); err != nil {
			// What is left when ctx ends is cut off.
			errs = append(errs, err, srv.Close())
		}
	}
	// WebSocket handlers, which net/http no longer tracks.
	errs = append(errs, s.streams.wait(ctx))
	return errors.Join(errs...)
}
