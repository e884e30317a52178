// Command source is a test source connector: it counts events, or emits
// the orders workload (internal/orders), at a position that resumes
// exactly, and misbehaves on demand (crashes, hangs, panics, malformed
// events, a refused configuration), for the tests of the host's
// connectors and for the benchmarks.
//
// Its configuration (the manifest's `with`; unknown keys are an error):
//
//	count            events to emit; 0: without end
//	orders           true: the events of the orders workload; false:
//	                 events of type "test.count" whose data is their index
//	batch            most events per Read (default: as many as the host asks)
//	rate             events per second (0: as fast as they are read)
//	crash_after N    exit with status 3 at the first Read at index N or
//	                 past it (having returned the N events before it)
//	hang_after N     block forever in that Read instead
//	panic_after N    panic in that Read instead (the SDK exits with status 2)
//	malformed_after N
//	                 return from that Read one event, index N's, with the
//	                 invalid type "bad type!"
//	once_file PATH   with any of the four: misbehave only if PATH does not
//	                 exist, creating it first, so that a restart goes on
//	fail_configure S Configure fails with the message S
//	acks_file PATH   each Ack writes the acknowledged position's index, in
//	                 decimal, to PATH (atomically: a temporary file renamed)
//	log S            Open logs S at info through sdk.Logger (with the
//	                 attribute position) and writes S as a plain line to
//	                 os.Stderr
//	payload_bytes N  the events' data is N zero bytes instead
//
// The position is the 8-byte big-endian index of the next event; opening
// at it resumes exactly. Event i is orders.Generated(i, 2026-01-01T00:00Z,
// 1ms)'s ID and time in both modes, so the same index is always the same
// event: the index is the ID's last 62 bits.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/plugins/sdk"
	"github.com/aegis-streaming/aegis/testplugins/connectors/internal/misbehave"
)

func main() {
	sdk.Serve(sdk.Connector{Source: &source{}})
}

type config struct {
	Count          int64   `json:"count"`
	Orders         bool    `json:"orders"`
	Batch          int64   `json:"batch"`
	Rate           float64 `json:"rate"`
	CrashAfter     *int64  `json:"crash_after"`
	HangAfter      *int64  `json:"hang_after"`
	PanicAfter     *int64  `json:"panic_after"`
	MalformedAfter *int64  `json:"malformed_after"`
	OnceFile       string  `json:"once_file"`
	FailConfigure  string  `json:"fail_configure"`
	AcksFile       string  `json:"acks_file"`
	Log            string  `json:"log"`
	PayloadBytes   int     `json:"payload_bytes"`
}

// start is the time of event 0.
var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

type source struct {
	name string
	cfg  config
	// Read's, from Open on: the index of the next event, when the source
	// opened, and how many events it has returned since.
	next   int64
	opened time.Time
	sent   int64
}

func (s *source) Configure(_ context.Context, name string, raw []byte) error {
	s.name = name
	if err := misbehave.Decode(raw, &s.cfg); err != nil {
		return err
	}
	if s.cfg.FailConfigure != "" {
		return errors.New(s.cfg.FailConfigure)
	}
	if s.cfg.Rate < 0 {
		return fmt.Errorf("config: rate is %g, not at least 0", s.cfg.Rate)
	}
	return misbehave.NonNegative(map[string]*int64{"count": &s.cfg.Count, "batch": &s.cfg.Batch,
		"crash_after": s.cfg.CrashAfter, "hang_after": s.cfg.HangAfter,
		"panic_after": s.cfg.PanicAfter, "malformed_after": s.cfg.MalformedAfter})
}

func (s *source) Open(_ context.Context, position []byte) error {
	next, err := index(position)
	if err != nil {
		return err
	}
	s.next, s.opened, s.sent = next, time.Now(), 0
	if s.cfg.Log != "" {
		sdk.Logger().Info(s.cfg.Log, "position", next)
		fmt.Fprintln(os.Stderr, s.cfg.Log)
	}
	return nil
}

func (s *source) Read(ctx context.Context, limit int) ([]engine.Event, []byte, error) {
	if s.cfg.Count > 0 && s.next >= s.cfg.Count {
		return nil, position(s.next), io.EOF
	}
	n := int64(limit)
	if s.cfg.Batch > 0 {
		n = min(n, s.cfg.Batch)
	}
	if s.cfg.Count > 0 {
		n = min(n, s.cfg.Count-s.next)
	}
	// A misbehaviour comes at the first Read at its index: the reads
	// before it stop short of it.
	for _, after := range []*int64{s.cfg.CrashAfter, s.cfg.HangAfter, s.cfg.PanicAfter, s.cfg.MalformedAfter} {
		if after != nil && s.next < *after {
			n = min(n, *after-s.next)
		}
	}
	if events, err := s.misbehave(); events != nil || err != nil {
		return events, position(s.next), err
	}
	if s.cfg.Rate > 0 {
		// Event k since Open is due at opened + k/rate.
		due := s.opened.Add(time.Duration(float64(s.sent) / s.cfg.Rate * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return nil, nil, nil
			case <-t.C:
			}
		}
		n = min(n, max(1, int64(time.Since(s.opened).Seconds()*s.cfg.Rate)+1-s.sent))
	}
	events := make([]engine.Event, n)
	for i := range events {
		events[i] = s.event(s.next + int64(i))
	}
	s.next += n
	s.sent += n
	var err error
	if s.cfg.Count > 0 && s.next >= s.cfg.Count {
		err = io.EOF
	}
	return events, position(s.next), err
}

// misbehave does what is due at the next index: exits, hangs, panics, or
// returns a malformed event (nil: nothing is due).
func (s *source) misbehave() ([]engine.Event, error) {
	i := s.next
	due := misbehave.At(s.cfg.CrashAfter, i) || misbehave.At(s.cfg.HangAfter, i) ||
		misbehave.At(s.cfg.PanicAfter, i) || misbehave.At(s.cfg.MalformedAfter, i)
	if !due {
		return nil, nil
	}
	if ok, err := misbehave.Once(s.cfg.OnceFile); !ok || err != nil {
		return nil, err
	}
	log := sdk.Logger().With("connector", s.name, "index", i)
	switch {
	case misbehave.At(s.cfg.CrashAfter, i):
		log.Error("crashing on purpose (crash_after)")
		os.Exit(3)
	case misbehave.At(s.cfg.HangAfter, i):
		log.Warn("hanging on purpose (hang_after)")
		misbehave.Hang()
	case misbehave.At(s.cfg.PanicAfter, i):
		panic(fmt.Sprintf("panicking on purpose (panic_after) at index %d", i))
	}
	log.Warn("a malformed event on purpose (malformed_after)")
	e := s.event(i)
	e.Type = "bad type!"
	s.next++
	s.sent++
	return []engine.Event{e}, nil
}

// event is the event at index i.
func (s *source) event(i int64) engine.Event {
	e := orders.Generated(i, start, int64(time.Millisecond))
	if !s.cfg.Orders {
		e.Type, e.Source, e.Data = "test.count", "urn:aegis:test:source", engine.IntData(i)
	}
	if s.cfg.PayloadBytes > 0 {
		e.Data = engine.BytesData(make([]byte, s.cfg.PayloadBytes))
	}
	return e
}

func (s *source) Ack(_ context.Context, pos []byte) error {
	i, err := index(pos)
	if err != nil || s.cfg.AcksFile == "" {
		return err
	}
	// Write a temporary file and rename it, so that a reader never sees
	// half a number.
	tmp, err := os.CreateTemp(filepath.Dir(s.cfg.AcksFile), ".acks-*")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(strconv.FormatInt(i, 10))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.cfg.AcksFile)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func (s *source) Close(context.Context) error { return nil }

// position is the position before event i.
func position(i int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

// index is the index of the event at a position (nil: 0).
func index(position []byte) (int64, error) {
	switch len(position) {
	case 0:
		return 0, nil
	case 8:
		if i := int64(binary.BigEndian.Uint64(position)); i >= 0 {
			return i, nil
		}
	}
	return 0, fmt.Errorf("position %x is not an 8-byte index", position)
}
