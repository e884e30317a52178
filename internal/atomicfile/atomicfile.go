// Package atomicfile replaces small files whole: a crash leaves the old
// content or the new, never a torn mix. The positions and records that
// aegis-host keeps across runs are written this way.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces the file at path with data: it writes a new file beside
// it (making the directory if needed), syncs it, renames it over path and
// syncs the directory, so that the rename itself survives a crash.
func Write(path string, data []byte) error {
	tmp, err := temp(path)
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Check makes sure that Write can replace the file at path: that its
// directory exists or can be made, and takes new files.
func Check(path string) error {
	tmp, err := temp(path)
	if err != nil {
		return err
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

// temp makes a new file beside path, making the directory if needed.
func temp(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, "."+filepath.Base(path)+".*")
}
