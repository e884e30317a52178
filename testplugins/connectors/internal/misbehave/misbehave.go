// Package misbehave holds what the test connectors share: strict decoding
// of their configuration, and the once file that makes a misbehaviour
// happen once across restarts.
package misbehave

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Decode decodes a connector's configuration into v; an unknown key is an
// error.
func Decode(config []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return errors.New("config: more than one JSON value")
	}
	return nil
}

// At reports whether a misbehaviour set to start at event index after
// (nil: never) is due at index i.
func At(after *int64, i int64) bool { return after != nil && i >= *after }

// NonNegative checks the counts of a configuration, by name.
func NonNegative(counts map[string]*int64) error {
	for name, n := range counts {
		if n != nil && *n < 0 {
			return fmt.Errorf("config: %s is %d, not at least 0", name, *n)
		}
	}
	return nil
}

// Once reports whether a due misbehaviour happens: always without a once
// file; with one, only if the file does not exist yet, which Once then
// creates, so that the connector started again after the misbehaviour goes
// on normally.
func Once(file string) (bool, error) {
	if file == "" {
		return true, nil
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("once file: %w", err)
	}
	return true, f.Close()
}

// Hang blocks forever.
func Hang() { select {} }
