// Command sink is a test sink connector: it appends each event as a JSON
// line (engine.Event's JSON form) to a file, and misbehaves on demand
// (crashes, hangs, failed and retryable writes), for the tests of the
// host's connectors and for the benchmarks.
//
// Its configuration (the manifest's `with`; unknown keys are an error):
//
//	path PATH             the file to append to (required); created if
//	                      missing; fsynced on Flush and Close
//	crash_after N         exit with status 3 when asked to write event
//	                      number N or past it (counting from 0, in total
//	                      since Open), before writing that batch
//	hang_after N          block forever in that Write instead
//	once_file PATH        with either: misbehave only if PATH does not
//	                      exist, creating it first, so that a restart goes on
//	fail_write S          every Write fails with the message S
//	retryable_failures N  the first N Write calls fail with a retryable
//	                      error (before fail_write, crash_after and
//	                      hang_after count anything)
//
// Write writes its batch with one write to the file, so a file holds whole
// batches.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/plugins/sdk"
	"github.com/aegis-streaming/aegis/testplugins/connectors/internal/misbehave"
)

func main() {
	sdk.Serve(sdk.Connector{Sink: &sink{}})
}

type config struct {
	Path              string `json:"path"`
	CrashAfter        *int64 `json:"crash_after"`
	HangAfter         *int64 `json:"hang_after"`
	OnceFile          string `json:"once_file"`
	FailWrite         string `json:"fail_write"`
	RetryableFailures int64  `json:"retryable_failures"`
}

type sink struct {
	name string
	cfg  config
	f    *os.File
	// writes counts the Write calls; asked, the events of those past the
	// retryable failures.
	writes, asked int64
	buf           bytes.Buffer
}

func (s *sink) Configure(_ context.Context, name string, raw []byte) error {
	s.name = name
	if err := misbehave.Decode(raw, &s.cfg); err != nil {
		return err
	}
	if s.cfg.Path == "" {
		return errors.New("config: path is required")
	}
	return misbehave.NonNegative(map[string]*int64{"crash_after": s.cfg.CrashAfter, "hang_after": s.cfg.HangAfter,
		"retryable_failures": &s.cfg.RetryableFailures})
}

func (s *sink) Open(context.Context) error {
	f, err := os.OpenFile(s.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	s.f = f
	return err
}

func (s *sink) Write(_ context.Context, events []engine.Event) error {
	s.writes++
	if s.writes <= s.cfg.RetryableFailures {
		return sdk.Retryable(fmt.Errorf("retryable failure %d of %d (retryable_failures)", s.writes, s.cfg.RetryableFailures))
	}
	if s.cfg.FailWrite != "" {
		return errors.New(s.cfg.FailWrite)
	}
	// The batch holds event numbers asked to asked+len-1.
	last := s.asked + int64(len(events)) - 1
	if misbehave.At(s.cfg.CrashAfter, last) || misbehave.At(s.cfg.HangAfter, last) {
		ok, err := misbehave.Once(s.cfg.OnceFile)
		if err != nil {
			return err
		}
		log := sdk.Logger().With("connector", s.name, "first", s.asked, "events", len(events))
		switch {
		case ok && misbehave.At(s.cfg.CrashAfter, last):
			log.Error("crashing on purpose (crash_after)")
			os.Exit(3)
		case ok:
			log.Warn("hanging on purpose (hang_after)")
			misbehave.Hang()
		}
	}
	s.asked += int64(len(events))
	s.buf.Reset()
	for i := range events {
		b, err := json.Marshal(events[i])
		if err != nil {
			return err
		}
		s.buf.Write(b)
		s.buf.WriteByte('\n')
	}
	_, err := s.f.Write(s.buf.Bytes())
	return err
}

func (s *sink) Flush(context.Context) error { return s.f.Sync() }

func (s *sink) Close(context.Context) error {
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
