package host

import (
	"log/slog"
	"math"
	"time"

	"github.com/aegis-streaming/aegis/abi"
)

// Options configure a [Host].
type Options struct {
	// CacheDir is where compiled modules are cached across runs; empty
	// means [DefaultCacheDir]. NoCache turns the disk cache off.
	CacheDir string
	NoCache  bool
	// Logger receives plugin logs and output, tagged with the plugin; nil
	// means slog.Default().
	Logger *slog.Logger
}

// StepConfig says how one step runs a plugin.
type StepConfig struct {
	// Name names the plugin in errors and logs; empty means the file name
	// without ".wasm" (LoadFile) or "plugin" (Load).
	Name string
	// Kind is the step kind to run; zero means the module's only kind.
	Kind abi.Kind
	// Config is the step's configuration, a JSON object handed to
	// aegis_init; nil means {}.
	Config []byte
	// SHA256, when set, is the hex digest the module must have.
	SHA256 string
	// Workers is the most instances that run at once; 0 means 1.
	Workers int
	Limits  Limits
	Grants  Grants

	// interrupt replaces the metered module, for the benchmarks that
	// compare with it only.
	interrupt interruptMode
}

// interruptMode is how a step's calls can be stopped.
type interruptMode uint8

const (
	// metered: the instrumented module's checkpoints (package meter).
	metered interruptMode = iota
	// rawModule: the module as it was compiled; nothing stops a call.
	rawModule
	// closeOnContextDone: the module as compiled, under wazero's
	// WithCloseOnContextDone and a context deadline per call.
	closeOnContextDone
)

// Limits bound what a step's plugin may use. Zero values take the
// defaults below.
type Limits struct {
	// MemoryPages caps an instance's memory in 64 KiB pages
	// (default 1024, 64 MiB). Go plugins need at least 256 (16 MiB).
	MemoryPages uint32
	// Timeout is the wall-clock deadline of one call (default 1s);
	// negative means none. A call past it is stopped at its next
	// checkpoint, well under a millisecond later.
	Timeout time.Duration
	// Fuel is the deterministic budget per event (default 10,000,000): a
	// call may spend Fuel x (events + 1), the extra share for the call's
	// own work; calls without events (aegis_init, aegis_merge,
	// aegis_finish) get Fuel. Fuel is the number of WebAssembly
	// instructions the call runs, counted exactly, so the same input to the
	// same instance always costs the same fuel and always passes or always
	// fails. Negative means none. Without either limit a plugin still runs
	// metered: its checkpoints are what lets the Go runtime preempt it.
	Fuel int64
	// MaxOutputBytes caps the size of a call's result (default 16 MiB).
	MaxOutputBytes uint32
}

// Defaults of [Limits].
const (
	DefaultMemoryPages    = 1024
	DefaultTimeout        = time.Second
	DefaultFuel           = 10_000_000
	DefaultMaxOutputBytes = 16 << 20
	maxMemoryPages        = 65536 // 4 GiB, the most a 32-bit memory has
)

// budget is the fuel of a call with events events.
func (l Limits) budget(events int) int64 {
	if l.Fuel <= 0 {
		return math.MaxInt64
	}
	n := int64(events) + 1
	if n > math.MaxInt64/l.Fuel {
		return math.MaxInt64
	}
	return l.Fuel * n
}

func (l Limits) withDefaults() Limits {
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultMemoryPages
	}
	l.MemoryPages = min(l.MemoryPages, maxMemoryPages)
	if l.Timeout == 0 {
		l.Timeout = DefaultTimeout
	}
	if l.Fuel == 0 {
		l.Fuel = DefaultFuel
	}
	if l.MaxOutputBytes == 0 {
		l.MaxOutputBytes = DefaultMaxOutputBytes
	}
	return l
}

// Grants open the sandbox. A plugin has none of these unless its step
// grants them; there is no filesystem or network access at all.
type Grants struct {
	// Clock gives the real wall and monotonic clocks; without it the
	// clocks are fixed fakes, so a plugin is deterministic.
	Clock bool
	// Random gives a cryptographic random source; without it the source is
	// deterministic.
	Random bool
	// Env is the environment the plugin sees; empty by default.
	Env map[string]string
}
