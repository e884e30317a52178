package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/engine"
)

// Metadata of the dead letters of a debezium source: where the malformed
// envelope was (aegis.error holds what is wrong with it).
const (
	metaErrorInput = "aegis.error.input"
	metaErrorLine  = "aegis.error.line"
)

// openDebezium opens a debezium source: newline-delimited envelopes from
// its file or stdin, or an HTTP endpoint on its listen address, served
// from now until the source is closed. Malformed envelopes go to dead as
// aegis.undecodable events, or, without it, are logged and counted.
func openDebezium(ctx context.Context, m *manifest.Manifest, name string, s manifest.Source, std stdio, dead engine.Sink, log *slog.Logger) (engine.Source, error) {
	tables, err := cdcTables(s.Tables)
	if err != nil {
		return nil, err
	}
	cfg := cdc.DebeziumConfig{Name: name, Config: cdcConfig(s), Tables: tables, Logger: log, AckTimeout: s.AckTimeout.D(),
		OnMalformed: onMalformed(ctx, name, dead, log)}
	if s.Listen != "" {
		l, err := net.Listen("tcp", s.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		h, err := cdc.NewDebeziumHandler(cfg)
		if err != nil {
			l.Close()
			return nil, err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		log.Info("debezium endpoint listening", "source", name, "address", l.Addr().String())
		return &debeziumServer{DebeziumHandler: h, srv: srv, l: l}, nil
	}
	if s.Path == "-" {
		return cdc.NewDebezium(std.in, "stdin", cfg)
	}
	f, err := os.Open(m.Resolve(s.Path))
	if err != nil {
		return nil, err
	}
	src, err := cdc.NewDebezium(f, s.Path, cfg) // closes f with itself
	if err != nil {
		f.Close()
		return nil, err
	}
	return src, nil
}

// onMalformed is what a debezium source does with an envelope it cannot
// read, besides counting and logging it (which the source does): publish
// it to the dead-letter channel, if there is one. Its ID is a hash of the
// source's name and the envelope's bytes, so that a file read again does
// not store its malformed lines twice in a persistent channel.
func onMalformed(ctx context.Context, name string, dead engine.Sink, log *slog.Logger) func(cdc.Malformed) {
	if dead == nil {
		return nil
	}
	return func(bad cdc.Malformed) {
		e := engine.NewEvent(engine.UndecodableType, name, engine.BytesData(bad.Raw))
		e.ID = engine.HashEventID(append([]byte("aegis.cdc.debezium.malformed\x00"+name+"\x00"), bad.Raw...))
		e.SetMeta(engine.MetaError, bad.Err.Error())
		e.SetMeta(metaErrorInput, bad.Input)
		e.SetMeta(metaErrorLine, strconv.Itoa(bad.Line))
		if err := dead.Write(context.WithoutCancel(ctx), []engine.Event{e}); err != nil {
			log.Error("cannot dead-letter a malformed change envelope", "source", name, "input", bad.Input, "line", bad.Line, "error", err)
		}
	}
}

// debeziumServer is the source of a debezium endpoint: closing it stops
// the HTTP server (no new requests; those in flight are answered as the
// handler's Close decides) and the handler.
//
// The port is taken at once (a port in use fails the deploy), but requests
// are served from the first Read on: until the pipelines run they wait in
// the listener's backlog, so that nothing (a malformed envelope's dead
// letter, say) is published before every pipeline of the run has
// subscribed.
type debeziumServer struct {
	*cdc.DebeziumHandler
	srv   *http.Server
	l     net.Listener
	serve sync.Once
}

func (s *debeziumServer) Read(ctx context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	s.serve.Do(func() { go s.srv.Serve(s.l) })
	return s.DebeziumHandler.Read(ctx, dst, max)
}

func (s *debeziumServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The handler first: it answers the requests waiting for acks, so
	// that Shutdown need not wait for them.
	err := s.DebeziumHandler.Close()
	s.serve.Do(func() {}) // a Read from now on serves nothing
	if serr := s.srv.Shutdown(ctx); serr != nil {
		s.srv.Close()
	}
	s.l.Close() // in case it was never served
	return err
}
