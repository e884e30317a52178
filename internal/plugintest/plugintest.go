// Package plugintest builds the test plugins under testplugins/ for the
// tests of every package: each at most once per test process, and cached
// across runs under the user's cache directory by a hash of its sources and
// the tools that build it, so a second run builds nothing.
package plugintest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aegis-streaming/aegis/internal/gobuild"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
)

// Root returns the repository root (the directory of go.mod).
func Root(tb testing.TB) string {
	tb.Helper()
	root, err := findRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// findRoot returns the directory of go.mod above the working directory.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("plugintest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Path returns the built module of a test plugin, by its name: its path
// under testplugins/ without the extension, where the first element says
// the language: "wat/orders_filter" (WebAssembly text, built with
// wat2wasm), "rust/orders_map" (Rust with sdk/rust), "as/orders_map"
// (AssemblyScript with sdk/assemblyscript), and any other, such as
// "orders/filter", a Go plugin's directory (Go with sdk/). Names under
// "connectors/" ("connectors/source") are connectors (hashicorp/go-plugin,
// with plugins/sdk): Path returns a native executable for this machine.
func Path(tb testing.TB, name string) string {
	tb.Helper()
	p, err := Build(name)
	if err != nil {
		tb.Fatalf("plugintest: %s: %v", name, err)
	}
	return p
}

// Build is Path outside a test: it returns the built module of a test
// plugin, building it unless the cache has it.
func Build(name string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[name]; ok {
		return p, nil
	}
	root, err := findRoot()
	if err != nil {
		return "", err
	}
	p, err := build(root, name)
	if err != nil {
		return "", err
	}
	built[name] = p
	return p, nil
}

// Bytes returns the module of a test plugin.
func Bytes(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Path(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// A builder builds the test plugins of one language: those whose name
// starts with its prefix and a slash ("wat/orders_filter").
type builder struct {
	// sources lists the files the module is built from: the plugin's and
	// its SDK's.
	sources func(root, name string) ([]string, error)
	// tool names the tools and their versions, and what else changes
	// their output; an error says how to install them.
	tool func(root string) (string, error)
	// build writes the module of the plugin to out.
	build func(root, name, out string) error
	// native says that build writes an executable for this machine,
	// not a .wasm module.
	native bool
}

// extension is the extension of what b builds.
func (b builder) extension() string {
	if b.native {
		return exeExt
	}
	return ".wasm"
}

// builders by the prefix of a plugin's name; "" is Go with the SDK, for
// names with no known prefix.
var builders = map[string]builder{
	"": {sources: goSources, tool: goTool, build: func(root, name, out string) error {
		return gobuild.Build(context.Background(), filepath.Join(root, "testplugins", name), out)
	}},
	"wat": {
		sources: func(root, name string) ([]string, error) {
			return []string{filepath.Join(root, "testplugins", name+".wat")}, nil
		},
		tool: func(string) (string, error) {
			v, err := exec.Command("wat2wasm", "--version").Output()
			if err != nil {
				return "", fmt.Errorf("wat2wasm (Debian package wabt, installed by `go tool task deps`): %w", err)
			}
			return "wat2wasm " + string(v), nil
		},
		build: func(root, name, out string) error {
			cmd := exec.Command("wat2wasm", "-o", out, filepath.Join(root, "testplugins", name+".wat"))
			if msg, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("wat2wasm: %w\n%s", err, msg)
			}
			return nil
		},
	},
}

func builderOf(name string) builder {
	if i := strings.IndexByte(name, '/'); i > 0 {
		if b, ok := builders[name[:i]]; ok {
			return b
		}
	}
	return builders[""]
}

// goSources: a Go plugin depends on its own directory, the SDK and the ABI
// (test plugins import nothing else of the module), and go.mod.
func goSources(root, name string) ([]string, error) {
	var sources []string
	for _, d := range []string{filepath.Join("testplugins", name), "sdk", "abi"} {
		files, err := sourceFiles(filepath.Join(root, d), ".go")
		if err != nil {
			return nil, err
		}
		sources = append(sources, files...)
	}
	return append(sources, filepath.Join(root, "go.mod")), nil
}

func goTool(string) (string, error) {
	h := fmt.Sprintf("%s\n%q\n", runtime.Version(), gobuild.Flags)
	for _, env := range []string{"GOFLAGS", "GOEXPERIMENT", "GOWASM", "GOTOOLCHAIN"} {
		h += fmt.Sprintf("%s=%s\n", env, os.Getenv(env))
	}
	return h, nil
}

func build(root, name string) (string, error) {
	b := builderOf(name)
	tool, err := b.tool(root)
	if err != nil {
		return "", err
	}
	sources, err := b.sources(root, name)
	if err != nil {
		return "", err
	}
	// The key: the plugin, the tools and what changes their output, and
	// every source by its path in the repository.
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", name, tool)
	for _, f := range sources {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(root, f)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(b))
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "aegis-host", "testplugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+"-"+hex.EncodeToString(h.Sum(nil))[:16]+b.extension())
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	// Build next to the target and rename, so that test processes of other
	// packages building the same plugin never see half a file.
	tmp, err := os.CreateTemp(dir, ".build-*"+b.extension())
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := b.build(root, name, tmp.Name()); err != nil {
		return "", err
	}
	return out, os.Rename(tmp.Name(), out)
}

// sourceFiles lists the files under dir whose names end in ext, tests
// (_test+ext) aside, sorted; it skips testdata, node_modules and hidden
// directories.
func sourceFiles(dir, ext string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ext) && !strings.HasSuffix(p, "_test"+ext) {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}
