package plugins

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// positionFile keeps a source's last acknowledged position across runs:
// a small JSON document, replaced whole (written beside, synced, renamed,
// and the directory synced), so that a crash leaves the old position or
// the new one, never a torn one.
type positionFile struct {
	path string
}

type positionDoc struct {
	// Position is the connector's opaque position (base64 in JSON).
	Position []byte `json:"position"`
}

// load returns the stored position, or nil if there is none.
func (f *positionFile) load() ([]byte, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("position file: %w", err)
	}
	var doc positionDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("position file %s is corrupt (%v): move it away to start from the connector's default position", f.path, err)
	}
	return doc.Position, nil
}

// check makes sure that the position can be saved: that the directory
// exists or can be made, and takes new files.
func (f *positionFile) check() error {
	tmp, err := f.temp()
	if err != nil {
		return err
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

// temp makes a new file beside the position file, making the directory if
// needed.
func (f *positionFile) temp() (*os.File, error) {
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("position file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(f.path)+".*")
	if err != nil {
		return nil, fmt.Errorf("position file: %w", err)
	}
	return tmp, nil
}

// save replaces the stored position.
func (f *positionFile) save(pos []byte) error {
	b, err := json.Marshal(positionDoc{Position: pos})
	if err != nil {
		return err
	}
	tmp, err := f.temp()
	if err != nil {
		return err
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("position file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("position file: %w", err)
		}
	}
	return nil
}
