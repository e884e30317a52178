package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/plugins/sdk"
)

// tailConfig is the tail source's configuration.
type tailConfig struct {
	// Path is the file to read (required).
	Path string `json:"path"`
	// JSON: each line is a JSON document, the event's data; blank lines
	// are skipped. Otherwise the line is the data, as a string.
	JSON bool `json:"json"`
	// Follow: at the end of the file, wait for lines appended to it
	// instead of ending. A last line without its newline is not read until
	// it has one.
	Follow bool `json:"follow"`
	// Type is the events' type (default "line").
	Type string `json:"type"`
	// Source is the events' source (default: the path).
	Source string `json:"source"`
	// Poll is how often Follow looks for new lines (default 250ms).
	Poll string `json:"poll"`
}

// tail reads the lines of a file as events. Its position is the byte
// offset after the last line it returned: opening at it reads the next
// line, so a restarted tail neither skips nor repeats a line.
type tail struct {
	cfg  tailConfig
	poll time.Duration

	f *os.File
	r *bufio.Reader
	// offset is the position: the offset after the last line returned.
	offset int64
	// line holds what was read of a line whose newline has not come yet.
	line []byte
	// err is the error of a line that could not be read, for the Read
	// after the one that returned the lines before it.
	err error
}

func (t *tail) Configure(_ context.Context, _ string, config []byte) error {
	t.cfg = tailConfig{Type: "line", Poll: "250ms"}
	if err := decode(config, &t.cfg); err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	if t.cfg.Path == "" {
		return errors.New("tail: path is required")
	}
	if err := engine.EventType(t.cfg.Type).Validate(); err != nil {
		return fmt.Errorf("tail: type: %w", err)
	}
	if t.cfg.Source == "" {
		t.cfg.Source = t.cfg.Path
	}
	var err error
	if t.poll, err = time.ParseDuration(t.cfg.Poll); err != nil || t.poll <= 0 {
		return fmt.Errorf("tail: poll %q is not a positive duration", t.cfg.Poll)
	}
	return nil
}

func (t *tail) Open(_ context.Context, position []byte) error {
	switch len(position) {
	case 0:
	case 8:
		t.offset = int64(binary.BigEndian.Uint64(position))
	default:
		return fmt.Errorf("tail: position %x is not an 8-byte offset", position)
	}
	f, err := os.Open(t.cfg.Path)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() < t.offset {
		err = fmt.Errorf("tail: %s has %d bytes, fewer than the position %d: was it truncated or replaced?", t.cfg.Path, st.Size(), t.offset)
	}
	if err == nil {
		_, err = f.Seek(t.offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return err
	}
	t.f, t.r = f, bufio.NewReader(f)
	sdk.Logger().Info("tail: reading", "path", t.cfg.Path, "offset", t.offset, "follow", t.cfg.Follow)
	return nil
}

func (t *tail) Read(ctx context.Context, max int) ([]engine.Event, []byte, error) {
	if t.err != nil {
		return nil, nil, t.err
	}
	var events []engine.Event
	// add adds the event of the line read; a line that is not valid
	// leaves the lines before it to be returned first.
	add := func() (stop bool, err error) {
		e, ok, err := t.event()
		switch {
		case err != nil && len(events) > 0:
			t.err = err
			return true, nil
		case err != nil:
			return true, err
		case ok:
			events = append(events, e)
		}
		return false, nil
	}
	for len(events) < max {
		b, err := t.r.ReadBytes('\n')
		t.line = append(t.line, b...)
		switch {
		case err == nil:
			// A whole line.
			if stop, err := add(); err != nil {
				return nil, nil, err
			} else if stop {
				return events, t.position(), nil
			}
		case !errors.Is(err, io.EOF):
			return nil, nil, fmt.Errorf("tail: %w", err)
		case !t.cfg.Follow:
			// The end of the file is the end of the source. Its last line
			// may have no newline.
			if len(t.line) > 0 {
				if stop, err := add(); err != nil {
					return nil, nil, err
				} else if stop {
					return events, t.position(), nil
				}
			}
			return events, t.position(), io.EOF
		case len(events) > 0:
			// The end for now: return what there is.
			return events, t.position(), nil
		default:
			// Wait for more, or until the host stops waiting.
			timer := time.NewTimer(t.poll)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, nil, nil
			case <-timer.C:
			}
		}
	}
	return events, t.position(), nil
}

// event makes the event of the line read, and moves past it; ok is false
// for a line skipped (a blank one, in JSON).
func (t *tail) event() (e engine.Event, ok bool, err error) {
	line := bytes.TrimSuffix(bytes.TrimSuffix(t.line, []byte("\n")), []byte("\r"))
	var data engine.EventData
	switch {
	case !t.cfg.JSON:
		data = engine.StringData(string(line))
	case len(bytes.TrimSpace(line)) == 0:
		t.next()
		return e, false, nil
	default:
		if data, err = engine.JSONData(bytes.Clone(line)); err != nil {
			return e, false, fmt.Errorf("tail: the line at offset %d of %s: %w", t.offset, t.cfg.Path, err)
		}
	}
	t.next()
	// No ID and no time: the host gives the event both as it receives it.
	return engine.Event{Type: engine.EventType(t.cfg.Type), Source: t.cfg.Source, Data: data}, true, nil
}

// next moves the position past the line read.
func (t *tail) next() {
	t.offset += int64(len(t.line))
	t.line = t.line[:0]
}

func (t *tail) position() []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.offset)) }

// Ack has nothing to do: a file has no reader's position to commit. The
// host keeps the position, and opens the tail at it after a restart.
func (t *tail) Ack(context.Context, []byte) error { return nil }

func (t *tail) Close(context.Context) error {
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	return err
}
