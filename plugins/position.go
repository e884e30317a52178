package plugins

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/aegis-streaming/aegis/internal/atomicfile"
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
	if err := atomicfile.Check(f.path); err != nil {
		return fmt.Errorf("position file: %w", err)
	}
	return nil
}

// save replaces the stored position.
func (f *positionFile) save(pos []byte) error {
	b, err := json.Marshal(positionDoc{Position: pos})
	if err != nil {
		return err
	}
	if err := atomicfile.Write(f.path, append(b, '\n')); err != nil {
		return fmt.Errorf("position file: %w", err)
	}
	return nil
}
