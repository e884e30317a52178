package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/aegis-streaming/aegis/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "state.json")
	if err := atomicfile.Check(path); err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"first\n", "second, longer\n", ""} {
		if err := atomicfile.Write(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("read %q, %v; want %q", b, err, content)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files beside it, want none: %v", len(entries)-1, entries)
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory where the file's directory should be.
	if err := atomicfile.Write(filepath.Join(file, "x"), []byte("x")); err == nil {
		t.Error("Write under a regular file: no error")
	}
	if err := atomicfile.Check(filepath.Join(file, "x")); err == nil {
		t.Error("Check under a regular file: no error")
	}
	// A directory in the file's place.
	if err := atomicfile.Write(dir, []byte("x")); err == nil {
		t.Error("Write over a directory: no error")
	}
}
