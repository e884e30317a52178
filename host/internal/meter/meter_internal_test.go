package meter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// wat assembles a module with wat2wasm and the given feature flags.
func wat(t testing.TB, src string, flags ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("wat2wasm", append(flags, "-o", out, in)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// validate checks a module with wabt's validator, independently of
// wazero.
func validate(t testing.TB, wasm []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(f, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("wasm-validate", f).CombinedOutput(); err != nil {
		t.Fatalf("wasm-validate: %v\n%s", err, msg)
	}
}

// metered is an instrumented module, instantiated.
type metered struct {
	mod         api.Module
	fuel, limit api.MutableGlobal
	run         api.Function
	slice       int64       // fuel between checkpoints
	stop        atomic.Bool // the next checkpoint ends the call
	checkpoints int
}

var (
	errOutOfFuel = errors.New("out of fuel")
	errStopped   = errors.New("stopped")
	modules      sync.Map // api.Module -> *metered
)

// compiled is the compilation cache the tests' runtimes share: the host's
// directory, so that compiling the same module twice, in this process or
// in the next run, costs nothing (a Go plugin takes seconds, a minute
// under the race detector).
var compiled = sync.OnceValue(func() wazero.CompilationCache {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	c, err := wazero.NewCompilationCacheWithDir(filepath.Join(dir, "aegis-host", "compiled"))
	if err != nil {
		return wazero.NewCompilationCache()
	}
	return c
})

// newRuntime returns a runtime with the meter's host module: its
// checkpoint does what the host's does, in short.
func newRuntime(t testing.TB) wazero.Runtime {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(compiled()))
	t.Cleanup(func() { rt.Close(ctx) })
	_, err := rt.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, _ []uint64) {
			v, ok := modules.Load(mod)
			if !ok { // a start function: only fuel counts
				if int64(mod.ExportedGlobal(FuelExport).Get()) < 0 {
					panic(errOutOfFuel)
				}
				return
			}
			m := v.(*metered)
			m.checkpoints++
			fuel := int64(m.fuel.Get())
			if fuel < 0 {
				panic(errOutOfFuel)
			}
			if m.stop.Load() {
				panic(errStopped)
			}
			m.limit.Set(uint64(max(fuel-m.slice, 0)))
		}), nil, nil).Export(ImportCheckpoint).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func instantiate(t testing.TB, rt wazero.Runtime, wasm []byte) *metered {
	t.Helper()
	out, _, err := Instrument(wasm, 1<<30, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mod, err := rt.InstantiateWithConfig(ctx, out, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	m := &metered{
		mod:   mod,
		fuel:  mod.ExportedGlobal(FuelExport).(api.MutableGlobal),
		limit: mod.ExportedGlobal(LimitExport).(api.MutableGlobal),
		run:   mod.ExportedFunction("run"),
		slice: 10000,
	}
	modules.Store(mod, m)
	t.Cleanup(func() { modules.Delete(mod); mod.Close(ctx) })
	return m
}

// call runs "run" with a budget and returns its result and the fuel it
// used.
func (m *metered) call(budget int64, args ...uint64) (uint64, int64, error) {
	m.fuel.Set(uint64(budget))
	m.limit.Set(uint64(max(budget-m.slice, 0)))
	res, err := m.run.Call(context.Background(), args...)
	used := budget - int64(m.fuel.Get())
	if err == nil && int64(m.fuel.Get()) < 0 {
		// Spent after the module's last check: the host checks on return.
		err = errOutOfFuel
	}
	if err != nil {
		return 0, used, err
	}
	return res[0], used, nil
}

const countdown = `(module
  (func (export "run") (param $n i32) (result i32)
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (local.get $n)))`

func TestFuelIsCounted(t *testing.T) {
	rt := newRuntime(t)
	m := instantiate(t, rt, wat(t, countdown))
	// Every instruction run: loop once; local.get, i32.const, i32.sub,
	// local.set, local.get, br_if per iteration; then the loop's end,
	// local.get and the function's end.
	for _, n := range []int64{1, 10, 1000, 100000} {
		want := 6*n + 4
		for range 2 {
			_, used, err := m.call(math.MaxInt64/2, uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			if used != want {
				t.Errorf("n=%d: used %d fuel, want %d", n, used, want)
			}
		}
		if _, _, err := m.call(want, uint64(n)); err != nil {
			t.Errorf("n=%d: a budget of exactly %d failed: %v", n, want, err)
		}
		_, _, err := m.call(want-1, uint64(n))
		if !errors.Is(err, errOutOfFuel) || int64(m.fuel.Get()) >= 0 {
			t.Errorf("n=%d: a budget of %d: err %v, fuel %d; want out of fuel with fuel below 0", n, want-1, err, int64(m.fuel.Get()))
		}
	}
	// A checkpoint every slice of fuel (give or take the cost of one
	// check's region), and no more.
	m.checkpoints = 0
	_, used, err := m.call(1<<40, 100000)
	if err != nil {
		t.Fatal(err)
	}
	if n := int64(m.checkpoints); n > used/m.slice || n < used/(m.slice+6) {
		t.Errorf("%d checkpoints for %d fuel, one per %d wanted", n, used, m.slice)
	}
}

func TestCheckpointStopsAnInfiniteLoop(t *testing.T) {
	loops := map[string]string{
		"tight": `(module (func (export "run") (param i32) (result i32) (loop $l (br $l)) (i32.const 0)))`,
		"nested": `(module (func (export "run") (param $x i32) (result i32)
			(loop $outer (loop $inner (br_if $inner (local.get $x))) (br $outer)) (i32.const 0)))`,
		"recursion": `(module (func $f (export "run") (param i32) (result i32) (call $f (local.get 0))))`,
		"call_indirect": `(module (type $t (func (param i32) (result i32)))
			(table 1 funcref) (elem (i32.const 0) $f)
			(func $f (export "run") (param i32) (result i32) (call_indirect (type $t) (local.get 0) (i32.const 0))))`,
	}
	rt := newRuntime(t)
	for name, src := range loops {
		t.Run(name, func(t *testing.T) {
			m := instantiate(t, rt, wat(t, src))
			stop := time.AfterFunc(20*time.Millisecond, func() { m.stop.Store(true) })
			defer stop.Stop()
			start := time.Now()
			_, _, err := m.call(math.MaxInt64, 1)
			switch {
			case errors.Is(err, errStopped):
			case name == "recursion" || name == "call_indirect":
				if err == nil || !strings.Contains(err.Error(), "stack overflow") {
					t.Fatalf("err = %v, want stopped or a stack overflow", err)
				}
			default:
				t.Fatalf("err = %v, want stopped at a checkpoint", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("stopped after %s", d)
			}
		})
	}
}

// TestGCDuringEndlessLoop: a collection, whose stop-the-world waits for
// every goroutine, completes while a guest loops, because the guest
// reaches a checkpoint (Go code, a safe point) every slice of fuel.
// Without checkpoints the process would freeze here.
func TestGCDuringEndlessLoop(t *testing.T) {
	rt := newRuntime(t)
	m := instantiate(t, rt, wat(t, `(module (func (export "run") (param i32) (result i32) (loop $l (br $l)) (i32.const 0)))`))
	done := make(chan error, 1)
	go func() {
		_, _, err := m.call(math.MaxInt64, 0)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	for range 5 {
		runtime.GC()
	}
	m.stop.Store(true)
	if err := <-done; !errors.Is(err, errStopped) {
		t.Fatalf("err = %v", err)
	}
}

func TestRecursionRunsOutOfFuel(t *testing.T) {
	rt := newRuntime(t)
	m := instantiate(t, rt, wat(t, `(module (func $f (export "run") (param i32) (result i32) (call $f (local.get 0))))`))
	// Each call costs its body: local.get, call, end. Well before the
	// stack runs out, a small budget does.
	_, used, err := m.call(3000, 1)
	if !errors.Is(err, errOutOfFuel) || used <= 3000 {
		t.Fatalf("err = %v, used %d; want out of fuel after 3000", err, used)
	}
}

func TestInstrumentRefuses(t *testing.T) {
	valid := wat(t, countdown)
	bad := append([]byte(nil), valid...)
	// The code section's i32.sub (0x6b), the first one after the loop,
	// replaced by an opcode WebAssembly leaves unassigned.
	i := strings.LastIndex(string(bad), "\x41\x01\x6b")
	bad[i+2] = 0xc5
	for _, tc := range []struct {
		name, want string
		wasm       []byte
	}{
		{name: "empty", wasm: nil, want: "not a WebAssembly"},
		{name: "text", wasm: []byte("(module)"), want: "not a WebAssembly"},
		{name: "truncated", wasm: valid[:len(valid)-3], want: "unexpected end"},
		{name: "unknown opcode", wasm: bad, want: "function[0] at byte 0x28: unknown instruction 0xc5"},
		{name: "reserved export", want: `exports "aegis:fuel"`,
			wasm: wat(t, `(module (func (export "aegis:fuel")))`)},
		{name: "reserved import", want: `imports from "aegis:meter"`,
			wasm: wat(t, `(module (import "aegis:meter" "checkpoint" (func)))`)},
		{name: "threads", want: "instruction 0xfe (threads) is not supported",
			wasm: wat(t, `(module (memory 1 1 shared) (func (result i32) (i32.atomic.load (i32.const 0))))`, "--enable-threads")},
		{name: "tail calls", want: "instruction 0x12 (tail calls) is not supported",
			wasm: wat(t, `(module (func $f (return_call $f)))`, "--enable-tail-call")},
		{name: "64-bit memory", want: "64-bit memories",
			wasm: wat(t, `(module (import "m" "mem" (memory i64 1)))`, "--enable-memory64")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Instrument(tc.wasm, 0, 0)
			var me *Error
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a *meter.Error containing %q", err, tc.want)
			}
		})
	}
}

// TestInstrumentPlugins instruments every test plugin, Go and WAT, and
// checks the result with wabt's validator, and with wazero's compiler all
// but the Go plugins other than orders/filter (the host's tests compile
// those, instrumented, with its cache).
func TestInstrumentPlugins(t *testing.T) {
	names := []string{"orders/filter", "orders/map", "orders/aggregate", "bad/loop", "bad/panic", "bad/membomb"}
	files, _ := filepath.Glob(filepath.Join(plugintest.Root(t), "testplugins", "wat", "*.wat"))
	for _, f := range files {
		names = append(names, "wat/"+strings.TrimSuffix(filepath.Base(f), ".wat"))
	}
	ctx := context.Background()
	rt := newRuntime(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			wasm := plugintest.Bytes(t, name)
			out, info, err := Instrument(wasm, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if info.Functions == 0 || info.Size != len(out) {
				t.Errorf("info = %+v", info)
			}
			validate(t, out)
			if !strings.HasPrefix(name, "wat/") && name != "orders/filter" {
				return
			}
			c, err := rt.CompileModule(ctx, out)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			orig, err := rt.CompileModule(ctx, wasm)
			if err != nil {
				t.Fatal(err)
			}
			defer orig.Close(ctx)
			for name := range orig.ExportedFunctions() {
				if _, ok := c.ExportedFunctions()[name]; !ok {
					t.Errorf("export %s of the original is missing", name)
				}
			}
			t.Logf("%d functions, %d loops, %d -> %d bytes", info.Functions, info.Loops, len(wasm), len(out))
		})
	}
}

// TestGoPluginRuns instantiates an instrumented Go plugin, whose runtime
// starts in _initialize, and checks that it runs on fuel.
func TestGoPluginRuns(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(t)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	if _, err := rt.NewHostModuleBuilder("aegis").NewFunctionBuilder().
		WithFunc(func(int32, int32, int32) {}).Export("log").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	out, _, err := Instrument(plugintest.Bytes(t, "orders/filter"), 0, 0) // as TestInstrumentPlugins: compiled once
	if err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, out, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	fuel := mod.ExportedGlobal(FuelExport).(api.MutableGlobal)
	fuel.Set(1 << 40) // limit 0: a checkpoint only when the fuel is out
	if _, err := mod.ExportedFunction("_initialize").Call(ctx); err != nil {
		t.Fatal(err)
	}
	used := 1<<40 - int64(fuel.Get())
	if used <= 0 {
		t.Fatalf("the Go runtime's start used %d fuel", used)
	}
	t.Logf("_initialize used %d fuel", used)
	fuel.Set(100)
	if _, err := mod.ExportedFunction("aegis_abi_version").Call(ctx); err != nil {
		t.Fatal(err)
	}
}

// runBoth runs a generated module as is and instrumented and compares.
func runBoth(t *testing.T, rt wazero.Runtime, src []byte) {
	ctx := context.Background()
	wasm := generate(src)
	orig, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatalf("the generator made an invalid module: %v", err)
	}
	defer orig.Close(ctx)
	want, err := orig.ExportedFunction("run").Call(ctx, 7)
	if err != nil {
		t.Fatalf("the original trapped: %v", err)
	}
	m := instantiate(t, rt, wasm)
	got, used, err := m.call(math.MaxInt64/2, 7)
	if err != nil {
		t.Fatalf("the instrumented module trapped: %v", err)
	}
	if got != want[0] {
		t.Fatalf("instrumented result %d, original %d", got, want[0])
	}
	if _, again, _ := m.call(math.MaxInt64/2, 7); again != used {
		t.Fatalf("fuel %d then %d for the same input", used, again)
	}
	if _, _, err := m.call(used, 7); err != nil {
		t.Fatalf("a budget of exactly the fuel used (%d) failed: %v", used, err)
	}
	if _, _, err := m.call(used-1, 7); err == nil {
		t.Fatalf("a budget of %d passed, the call uses %d", used-1, used)
	}
	m.mod.Close(ctx)
}

func TestGenerated(t *testing.T) {
	rt := newRuntime(t)
	for i := range 200 {
		src := make([]byte, 64+i)
		for j := range src {
			src[j] = byte(j*31 + i*17 + j*j*i)
		}
		runBoth(t, rt, src)
	}
}

func FuzzGenerated(f *testing.F) {
	f.Add([]byte{3, 1, 1, 2, 0, 5, 1, 9, 7, 3})
	f.Add([]byte("a module with loops and calls and branches"))
	rt := newRuntime(f)
	f.Fuzz(func(t *testing.T, src []byte) { runBoth(t, rt, src) })
}

// compile compiles a module; wazero v1.12's decoder panics on some
// malformed modules, which counts as refusing them.
func compile(ctx context.Context, rt wazero.Runtime, wasm []byte) (c wazero.CompiledModule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return rt.CompileModule(ctx, wasm)
}

// FuzzInstrument feeds arbitrary bytes: the rewriter never panics, and
// whatever wazero accepts as a module, the rewriter instruments into a
// module wazero accepts too. (The rewriter is not a validator: what wazero
// refuses, the host never runs, instrumented or not.)
func FuzzInstrument(f *testing.F) {
	f.Add(wat(f, countdown))
	f.Add(generate([]byte("seed")))
	f.Add(generate([]byte{2, 9, 9, 1, 1, 1, 4, 4, 4, 0, 0}))
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, _, err := Instrument(wasm, 100, 0)
		if errors.Is(err, errTruncated) || errors.Is(err, errTooManyLocals) {
			// Counts larger than the bytes that follow, or absurd numbers
			// of locals. wazero v1.12 allocates by such counts before it
			// reads on, and runs out of memory or panics on some: the host
			// runs the rewriter first.
			return
		}
		c, cerr := compile(ctx, rt, wasm)
		if cerr != nil {
			return // not a module; the rewriter only had not to panic
		}
		c.Close(ctx)
		if err != nil {
			if strings.Contains(err.Error(), "reserved for the host") {
				return
			}
			t.Fatalf("wazero compiles the module, the rewriter refuses it: %v", err)
		}
		c2, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("the instrumented module does not compile: %v", err)
		}
		c2.Close(ctx)
	})
}

// BenchmarkInstrument is the rewrite's cost at load, for a Go plugin (the
// largest modules the host sees) and a hand-written one.
func BenchmarkInstrument(b *testing.B) {
	for _, name := range []string{"orders/map", "wat/orders_filter"} {
		wasm := plugintest.Bytes(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(wasm)))
			for b.Loop() {
				if _, _, err := Instrument(wasm, 0, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
