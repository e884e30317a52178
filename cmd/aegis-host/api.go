package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/telemetry"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
	"github.com/aegis-streaming/aegis/internal/atomicfile"
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
	// running is set from when the run starts serving until it stops:
	// the API is ready then (the pipelines have started; some may have
	// ended since, as a generator's does, and the host still serves).
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
				return errors.New("the run is not serving: starting or stopping")
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
	for name := range m.Channels {
		cfg.Fixed = append(cfg.Fixed, name)
	}
	if !dry {
		reg, err := restoreChannels(m, eng)
		if err != nil {
			return nil, err
		}
		cfg.Registry = reg
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

// apiChannels records the channels created through a run's API in
// data_dir/api-channels.json, so that the next run of the manifest makes
// them again: a persistent one finds its stream, with its events and
// durable subscriptions, in the store; an in-memory one comes back empty.
type apiChannels struct {
	path string
	mu   sync.Mutex
	m    map[string]httpapi.ChannelSpec
}

// apiChannelsFile is the record's shape.
type apiChannelsFile struct {
	Channels []httpapi.ChannelSpec `json:"channels"`
}

// restoreChannels reads m's record of the channels its API created and
// makes them again in eng (the manifest's own win over a recorded one of
// the same name, which the manifest took over).
func restoreChannels(m *manifest.Manifest, eng *engine.Engine) (*apiChannels, error) {
	r := &apiChannels{path: m.DataPath("api-channels.json"), m: map[string]httpapi.ChannelSpec{}}
	b, err := os.ReadFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: api: channels: %w", m.File, err)
	}
	var f apiChannelsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: api: channels: %s: %w", m.File, r.path, err)
	}
	taken := false
	for _, spec := range f.Channels {
		if _, ok := m.Channels[spec.Name]; ok {
			// The manifest took the name over: the record forgets it,
			// lest it come back should the manifest drop it again.
			taken = true
			continue
		}
		cfg, err := spec.Config()
		if err == nil {
			err = eng.CreateChannel(spec.Name, cfg)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: api: channel[%s], made through the API and recorded in %s: %w", m.File, spec.Name, r.path, err)
		}
		r.m[spec.Name] = spec
	}
	if taken {
		if err := r.save(); err != nil {
			return nil, fmt.Errorf("%s: api: channels: %w", m.File, err)
		}
	}
	return r, nil
}

// ChannelCreated implements httpapi.Registry.
func (r *apiChannels) ChannelCreated(spec httpapi.ChannelSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[spec.Name] = spec
	if err := r.save(); err != nil {
		delete(r.m, spec.Name)
		return err
	}
	return nil
}

// ChannelDeleted implements httpapi.Registry.
func (r *apiChannels) ChannelDeleted(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	spec, ok := r.m[name]
	if !ok {
		return nil
	}
	delete(r.m, name)
	if err := r.save(); err != nil {
		r.m[name] = spec
		return err
	}
	return nil
}

// save writes the record, sorted by name, crash-safe.
func (r *apiChannels) save() error {
	f := apiChannelsFile{Channels: make([]httpapi.ChannelSpec, 0, len(r.m))}
	for _, name := range slices.Sorted(maps.Keys(r.m)) {
		f.Channels = append(f.Channels, r.m[name])
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(r.path, append(b, '\n'))
}
