package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tetratelabs/wazero"

	"github.com/aegis-streaming/aegis/abi"
)

// Host loads plugins. It owns the compilation cache that every plugin it
// loads shares; one Host serves a whole process.
type Host struct {
	cache    wazero.CompilationCache
	meterDir string // where rewritten modules are cached; "" for nowhere
	log      *slog.Logger
}

// DefaultCacheDir is the compilation cache's default directory: aegis-host
// under the user's cache directory (XDG_CACHE_HOME or ~/.cache on Linux),
// or under the temporary directory when there is none.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "aegis-host", "compiled")
}

// New returns a Host.
func New(opts Options) (*Host, error) {
	h := &Host{log: opts.Logger}
	if h.log == nil {
		h.log = slog.Default()
	}
	if opts.NoCache {
		h.cache = wazero.NewCompilationCache()
		return h, nil
	}
	dir := opts.CacheDir
	if dir == "" {
		dir = DefaultCacheDir()
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("compilation cache[%s]: %w", dir, err)
	}
	h.cache = c
	h.meterDir = filepath.Join(dir, "metered")
	return h, nil
}

// Close releases the in-memory part of the compilation cache. Plugins
// loaded from h must be closed first.
func (h *Host) Close(ctx context.Context) error { return h.cache.Close(ctx) }

// LoadFile loads the plugin in the .wasm file at path; see [Host.Load].
func (h *Host) LoadFile(ctx context.Context, path string, cfg StepConfig) (*Plugin, error) {
	if cfg.Name == "" {
		cfg.Name = strings.TrimSuffix(filepath.Base(path), ".wasm")
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plugin[%s]: %w", cfg.Name, err)
	}
	return h.Load(ctx, wasm, cfg)
}

// Load compiles a plugin and checks it against the ABI: its version, its
// exports and their signatures, its imports, and its configuration (one
// instance is made and initialised, and kept for the first call). Every
// error names the plugin and what is wrong.
func (h *Host) Load(ctx context.Context, wasm []byte, cfg StepConfig) (*Plugin, error) {
	return h.load(ctx, wasm, cfg, false)
}

// Inspect loads a plugin as [Host.Load] does, without choosing a step
// kind, and returns what it is. It reports the same errors.
func (h *Host) Inspect(ctx context.Context, wasm []byte, cfg StepConfig) (Info, error) {
	p, err := h.load(ctx, wasm, cfg, true)
	if err != nil {
		return Info{}, err
	}
	defer p.Close(ctx)
	return p.Info(), nil
}

func (h *Host) load(ctx context.Context, wasm []byte, cfg StepConfig, anyKind bool) (*Plugin, error) {
	if cfg.Name == "" {
		cfg.Name = "plugin"
	}
	sum := sha256.Sum256(wasm)
	digest := hex.EncodeToString(sum[:])
	if cfg.SHA256 != "" && !strings.EqualFold(cfg.SHA256, digest) {
		return nil, fmt.Errorf("plugin[%s]: %w: the step pins %s, the module is %s", cfg.Name, ErrChecksum, cfg.SHA256, digest)
	}
	switch cfg.Kind {
	case 0, abi.KindFilter, abi.KindMap, abi.KindAggregate:
	default:
		return nil, fmt.Errorf("plugin[%s]: %w: the step must be one kind, not %s", cfg.Name, ErrKind, cfg.Kind)
	}
	if cfg.Config == nil {
		cfg.Config = []byte("{}")
	}
	cfg.Workers = max(cfg.Workers, 1)
	cfg.Limits = cfg.Limits.withDefaults()

	// Time limits are the instrumented module's own (see package meter),
	// not wazero's WithCloseOnContextDone, which costs 5-45x in loops.
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(h.cache).
		WithMemoryLimitPages(cfg.Limits.MemoryPages).
		WithCloseOnContextDone(cfg.interrupt == closeOnContextDone)
	p := &Plugin{
		name:     cfg.Name,
		cfg:      cfg,
		log:      h.log.With("plugin", cfg.Name),
		rt:       wazero.NewRuntimeWithConfig(ctx, rc),
		meterDir: h.meterDir,
	}
	p.info.Name, p.info.SHA256, p.info.Size = cfg.Name, digest, len(wasm)
	if err := p.init(ctx, wasm, anyKind); err != nil {
		p.rt.Close(ctx)
		return nil, fmt.Errorf("plugin[%s]: %w", cfg.Name, err)
	}
	return p, nil
}
