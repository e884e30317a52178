package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/aegis-streaming/aegis/engine"
)

// jsonlConfig is the jsonl sink's configuration.
type jsonlConfig struct {
	// Path is the file to append to (required); it is created if missing.
	Path string `json:"path"`
}

// jsonl appends events to a file, one JSON line each, in the form
// aegis-host prints them (engine.Event's JSON). Write writes its batch
// with one write to the file; Flush and Close make it durable (fsync).
type jsonl struct {
	cfg jsonlConfig
	f   *os.File
	buf bytes.Buffer
}

func (s *jsonl) Configure(_ context.Context, _ string, config []byte) error {
	if err := decode(config, &s.cfg); err != nil {
		return fmt.Errorf("jsonl: %w", err)
	}
	if s.cfg.Path == "" {
		return errors.New("jsonl: path is required")
	}
	return nil
}

func (s *jsonl) Open(context.Context) error {
	f, err := os.OpenFile(s.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("jsonl: %w", err)
	}
	s.f = f
	return nil
}

func (s *jsonl) Write(_ context.Context, events []engine.Event) error {
	s.buf.Reset()
	for i := range events {
		b, err := json.Marshal(events[i])
		if err != nil {
			return fmt.Errorf("jsonl: %w", err)
		}
		s.buf.Write(b)
		s.buf.WriteByte('\n')
	}
	_, err := s.f.Write(s.buf.Bytes())
	return err
}

func (s *jsonl) Flush(context.Context) error { return s.f.Sync() }

func (s *jsonl) Close(context.Context) error {
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}
