package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/telemetry"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
)

// apiShutdown bounds the API's shutdown when the run stops: the requests
// in flight get this long to finish (streams end at once, and resume
// elsewhere or later from their last event ID).
const apiShutdown = 5 * time.Second

// apiServer is the HTTP API of a run: its server, and the listener opened
// when the manifest is deployed, so that an address in use fails the run
// before anything runs.
type apiServer struct {
	srv    *httpapi.Server
	l      net.Listener // nil for validate, which listens on nothing
	scheme string       // http or https
	// running is set while the pipelines run: the API is ready.
	running atomic.Bool
}

// newAPI builds the API of m's api block over eng, traced and measured with
// the run's telemetry; unless dry, it listens.
func newAPI(m *manifest.Manifest, eng *engine.Engine, log *slog.Logger, tel *telemetry.Telemetry, dry bool) (*apiServer, error) {
	a := m.API
	s := &apiServer{scheme: "http"}
	cfg := httpapi.Config{
		Tokens:           a.HTTPTokens(),
		CORSOrigins:      a.CORSOrigins,
		MaxBody:          a.MaxBody.Bytes(),
		MaxBatch:         a.MaxBatch,
		RequestTimeout:   a.RequestTimeout.D(),
		WriteTimeout:     a.WriteTimeout.D(),
		SubscriberBuffer: a.SubscriberBuffer,
		Heartbeat:        a.Heartbeat.D(),
		Logger:           log,
		Tracer:           tel.Tracer,
		Meter:            tel.Meter,
		Ready: func(context.Context) error {
			if !s.running.Load() {
				return errors.New("the pipelines are not running")
			}
			return nil
		},
	}
	if t := a.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(m.Resolve(t.CertFile), m.Resolve(t.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("%s: api.tls: %w", m.File, err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.scheme = "https"
	}
	var err error
	if s.srv, err = httpapi.New(eng, cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", m.File, err)
	}
	if dry {
		return s, nil
	}
	if s.l, err = net.Listen("tcp", a.Listen); err != nil {
		return nil, fmt.Errorf("%s: api: cannot listen on %s: %w", m.File, a.Listen, err)
	}
	return s, nil
}

// url is the API's base URL, with the address it listens on.
func (s *apiServer) url() string {
	return s.scheme + "://" + s.l.Addr().String()
}

// serve serves the API until stop, then shuts it down (for at most
// apiShutdown) and calls stopped. The error is the server's, if it failed.
func (s *apiServer) serve(stop context.Context, log *slog.Logger, stopped func()) error {
	s.running.Store(true)
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(s.l) }()
	var err error
	select {
	case <-stop.Done():
	case err = <-served:
		// It failed (it returns nil only after a shutdown).
		err = fmt.Errorf("api: %w", err)
	}
	s.running.Store(false)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(stop), apiShutdown)
	defer cancel()
	if serr := s.srv.Shutdown(ctx); serr != nil {
		log.Warn("api shutdown", "error", serr)
	}
	if err == nil {
		err = <-served
	}
	stopped()
	return err
}

// close releases the listener of an API that never served.
func (s *apiServer) close() {
	if s.l != nil {
		s.l.Close()
	}
}
