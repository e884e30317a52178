package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Load reads, substitutes, decodes and validates the manifest at path, and
// applies its defaults. Relative paths inside it (plugins, files, the
// data directory) resolve against the manifest's directory (see
// [Manifest.Resolve] and [Manifest.DataPath]); Manifest.File is path and
// Manifest.Dir the absolute directory it is in. Environment variables
// come from the process. The error, if any, is an [Errors].
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		msg := err.Error()
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, Errors{{File: path, Msg: "cannot read the manifest: " + msg, err: err}}
	}
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return Parse(path, data, dir, os.LookupEnv)
}

// Parse does what [Load] does for the manifest in data: name is the file
// name errors show, dir the directory relative paths resolve against
// (empty: the working directory), and env looks up environment variables
// for ${NAME} substitution (nil: none is set). The error, if any, is an
// [Errors]; on error the Manifest is nil.
func Parse(name string, data []byte, dir string, env func(string) (string, bool)) (*Manifest, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	data, errs := expand(name, data, env)
	if len(errs) > 0 {
		return nil, errs
	}
	m, d, errs := decode(name, data)
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	m.File, m.Dir = name, dir
	if errs := validate(m, d, env); len(errs) > 0 {
		return nil, errs
	}
	applyDefaults(m)
	return m, nil
}

// Resolve returns p, a path from the manifest, resolved against the
// manifest's directory: as it is when it is absolute or when Dir is empty.
func (m *Manifest) Resolve(p string) string {
	if p == "" || m.Dir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(m.Dir, p)
}

// DataPath returns the path of elem under the data directory: DataDir
// resolved against the manifest's directory (as [Manifest.Resolve] does),
// or [DefaultDataDir] when DataDir is empty (a Manifest not made by Load
// or Parse). DataPath() is the directory itself. Neither Load nor
// DataPath creates it: whoever first writes there does (os.MkdirAll), so
// a manifest that keeps nothing leaves no directory behind.
func (m *Manifest) DataPath(elem ...string) string {
	dir := m.DataDir
	if dir == "" {
		dir = DefaultDataDir
	}
	return filepath.Join(append([]string{m.Resolve(dir)}, elem...)...)
}
