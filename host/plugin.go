package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host/internal/meter"
)

// Plugin is a loaded plugin bound to one step: a compiled module and a pool
// of instances. Its methods are safe for concurrent use; each call takes an
// instance of its own (at most StepConfig.Workers exist), so an instance is
// never called concurrently.
type Plugin struct {
	name string
	cfg  StepConfig
	kind abi.Kind
	info Info
	log  *slog.Logger

	rt            wazero.Runtime
	compiled      wazero.CompiledModule
	modCfg        wazero.ModuleConfig
	hasInit       bool
	hasInitialize bool
	meterDir      string // the cache of rewritten modules; "" for none

	idle    chan *instance
	tokens  chan struct{} // one per live instance
	batches atomic.Uint64
	closed  atomic.Bool
	done    chan struct{} // closed by Close
	insts   sync.Map      // api.Module -> *instance, for host functions
	mu      sync.Mutex    // orders returns to idle against Close

	// Counters for stats.
	created, discarded   atomic.Uint64
	fuel                 atomic.Uint64
	exhausted, deadlines atomic.Uint64
}

// Stats are a plugin's counters since load.
type Stats struct {
	Calls              uint64 // calls into the module for batches, merges and windows
	Fuel               uint64 // fuel those calls used
	Created, Discarded uint64 // instances made, and discarded after a failure
	FuelExhausted      uint64 // calls ended by their fuel budget
	Deadlines          uint64 // calls ended by their deadline
}

// Fuel is the fuel (WebAssembly instructions) the plugin's calls for
// batches, merges and windows ran; it implements engine.Metered.
func (p *Plugin) Fuel() uint64 { return p.fuel.Load() }

// Stats returns the plugin's counters.
func (p *Plugin) Stats() Stats {
	return Stats{
		Calls:         p.batches.Load(),
		Fuel:          p.fuel.Load(),
		Created:       p.created.Load(),
		Discarded:     p.discarded.Load(),
		FuelExhausted: p.exhausted.Load(),
		Deadlines:     p.deadlines.Load(),
	}
}

var (
	_ engine.Step       = (*Plugin)(nil)
	_ engine.Aggregator = (*Plugin)(nil)
	_ engine.Metered    = (*Plugin)(nil)
)

// Name is the plugin's name.
func (p *Plugin) Name() string { return p.name }

// Kind is the step kind the plugin runs (zero when loaded by Inspect and
// the module has several).
func (p *Plugin) Kind() abi.Kind { return p.kind }

// Info describes the plugin.
func (p *Plugin) Info() Info { return p.info }

// handshakeFuel is the fuel budget of the calls that set an instance up
// (the Go runtime's start takes about 15 million) and of a start
// function, which runs before the host can set a budget.
const handshakeFuel = 1_000_000_000

// checkpointFuel is the fuel between two checkpoints of a call: at most
// a few hundred microseconds of a guest's work, so that a deadline is
// seen that soon after it passes and a collection's stop-the-world never
// waits longer for a running guest; a checkpoint costs about as much as
// a hundred fuel.
const checkpointFuel = 100_000

func (p *Plugin) init(ctx context.Context, wasm []byte, anyKind bool) error {
	// Every module runs metered, whatever its limits: the checkpoints are
	// what lets the Go runtime preempt a guest at all (see package meter).
	// The rewriter also refuses, before wazero decodes them, counts that
	// would make wazero's decoder allocate out of all proportion.
	original := wasm
	instrumented, cached, err := p.instrument(wasm, false)
	if err != nil {
		if errors.Is(err, meter.ErrUnsupported) {
			return fmt.Errorf("%w: %v", ErrUnsupported, err)
		}
		return fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	if p.metered() {
		wasm = instrumented
	}
	compiled, err := compile(ctx, p.rt, wasm)
	if err != nil && p.metered() && cached {
		// A cache entry that does not compile (the cache is the user's
		// directory) is rewritten from the module.
		if wasm, _, err = p.instrument(original, true); err == nil {
			compiled, err = compile(ctx, p.rt, wasm)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	p.compiled = compiled
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, p.rt); err != nil {
		return fmt.Errorf("%w: WASI: %v", ErrInstantiate, err)
	}
	if _, err := p.rt.NewHostModuleBuilder(abi.ImportModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.hostLog), sigLog.params, sigLog.results).
		WithParameterNames("level", "ptr", "len").
		Export(abi.ImportLog).
		Instantiate(ctx); err != nil {
		return fmt.Errorf("%w: host module: %v", ErrInstantiate, err)
	}
	if _, err := p.rt.NewHostModuleBuilder(meter.ImportModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.checkpoint), nil, nil).
		Export(meter.ImportCheckpoint).
		Instantiate(ctx); err != nil {
		return fmt.Errorf("%w: meter module: %v", ErrInstantiate, err)
	}
	if err := checkModule(compiled, p.rt.Module(abi.WASIModule).ExportedFunctionDefinitions(), &p.info); err != nil {
		return err
	}
	_, p.hasInit = compiled.ExportedFunctions()[abi.ExportInit]
	if !p.hasInit && !isEmptyObject(p.cfg.Config) {
		return fmt.Errorf("%w: the step has configuration but the module has no %s", ErrConfig, abi.ExportInit)
	}

	// _initialize is called as the first call of an instance, under its
	// limits, not by wazero during instantiation, where no limit reaches.
	mc := wazero.NewModuleConfig().WithName("").WithStartFunctions()
	_, p.hasInitialize = compiled.ExportedFunctions()[abi.ExportInitialize]
	if p.cfg.Grants.Clock {
		mc = mc.WithSysWalltime().WithSysNanotime() // not sleep: it would outlast the deadline
	}
	if p.cfg.Grants.Random {
		mc = mc.WithRandSource(rand.Reader)
	}
	for k, v := range p.cfg.Grants.Env {
		mc = mc.WithEnv(k, v)
	}
	p.modCfg = mc

	p.done = make(chan struct{})
	p.idle = make(chan *instance, p.cfg.Workers)
	p.tokens = make(chan struct{}, p.cfg.Workers)
	p.tokens <- struct{}{}
	inst, err := p.newInstance(ctx)
	if err != nil {
		return err
	}
	p.info.ABIVersion = inst.version
	p.info.Kinds = inst.kinds
	switch {
	case p.cfg.Kind != 0:
		if p.cfg.Kind&inst.kinds == 0 {
			inst.close(ctx)
			return fmt.Errorf("%w: the step is a %s, the module implements %s", ErrKind, p.cfg.Kind, inst.kinds)
		}
		p.kind = p.cfg.Kind
	case inst.kinds == abi.KindFilter || inst.kinds == abi.KindMap || inst.kinds == abi.KindAggregate:
		p.kind = inst.kinds
	case !anyKind:
		inst.close(ctx)
		return fmt.Errorf("%w: the module implements %s; the step must say which", ErrKind, inst.kinds)
	}
	p.idle <- inst
	return nil
}

// instrument returns the module rewritten by package meter, from the
// cache of rewritten modules when it is there and fresh is false (a Go
// module takes about 60 ms to rewrite), and whether it came from there.
// The cache is keyed by the module's digest, the rewrite's version and the
// host's fuel constants.
func (p *Plugin) instrument(wasm []byte, fresh bool) ([]byte, bool, error) {
	var path string
	if p.meterDir != "" {
		path = filepath.Join(p.meterDir, fmt.Sprintf("%s-v%d-%d-%d.wasm", p.info.SHA256, meter.Version, handshakeFuel, checkpointFuel))
		if b, err := os.ReadFile(path); err == nil && !fresh {
			return b, true, nil
		}
	}
	out, _, err := meter.Instrument(wasm, handshakeFuel, handshakeFuel-checkpointFuel)
	if err != nil || path == "" {
		return out, false, err
	}
	// Written aside and renamed, so that a reader never sees half a file;
	// a cache that cannot be written only costs the next load the rewrite.
	if err := os.MkdirAll(p.meterDir, 0o755); err == nil {
		if f, err := os.CreateTemp(p.meterDir, ".rewrite-*"); err == nil {
			_, werr := f.Write(out)
			if cerr := f.Close(); werr == nil && cerr == nil {
				werr = os.Rename(f.Name(), path)
			}
			if werr != nil {
				os.Remove(f.Name())
			}
		}
	}
	return out, false, nil
}

// metered reports whether the plugin runs its module instrumented with
// fuel and checkpoints (package meter): always, but in the benchmarks that
// compare with the module as compiled.
func (p *Plugin) metered() bool { return p.cfg.interrupt == metered }

// compile compiles a module. A panic in wazero's decoder (v1.12 has some
// on hostile modules) makes an invalid module, not a crash of the host.
func compile(ctx context.Context, rt wazero.Runtime, wasm []byte) (c wazero.CompiledModule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the compiler failed on it: %v", r)
		}
	}()
	return rt.CompileModule(ctx, wasm)
}

func isEmptyObject(b []byte) bool {
	return strings.Join(strings.Fields(string(b)), "") == "{}"
}

// hostLog is aegis.log(level, ptr, len).
func (p *Plugin) hostLog(ctx context.Context, m api.Module, stack []uint64) {
	level, ptr, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		p.log.Warn("aegis.log called with a message out of bounds; dropped", "ptr", ptr, "len", n)
		return
	}
	b = b[:min(len(b), maxLogLine)]
	// Log messages count against the instance's per-call output budget.
	if inst, ok := p.insts.Load(m); ok && !inst.(*instance).stderr.take(len(b)) {
		return
	}
	p.log.Log(ctx, slog.Level(level), strings.ToValidUTF8(string(b), "\uFFFD"))
}

// stop is what a checkpoint panics with to end a call: wazero recovers
// it and returns it, wrapped, from the call.
type stop struct{ cause error }

func (s *stop) Error() string { return s.cause.Error() }
func (s *stop) Unwrap() error { return s.cause }

// checkpoint is meter's import, called by the instrumented module every
// checkpointFuel of fuel: it ends the call when its fuel is spent, its
// deadline passed or its context ended, and sets the next checkpoint
// otherwise. Being Go code, it is also where the Go runtime can preempt
// the guest.
func (p *Plugin) checkpoint(ctx context.Context, m api.Module, _ []uint64) {
	v, ok := p.insts.Load(m)
	if !ok {
		// A start function, during instantiation: fuel only.
		fuel := int64(m.ExportedGlobal(meter.FuelExport).Get())
		if fuel < 0 {
			panic(&stop{ErrFuel})
		}
		if limit, ok := m.ExportedGlobal(meter.LimitExport).(api.MutableGlobal); ok {
			limit.Set(uint64(max(fuel-checkpointFuel, 0)))
		}
		return
	}
	inst := v.(*instance)
	fuel := int64(inst.fuel.Get())
	switch {
	case fuel < 0:
		panic(&stop{ErrFuel})
	case ctx.Err() != nil:
		panic(&stop{ctx.Err()})
	case inst.deadline != 0 && monotonic() >= inst.deadline:
		panic(&stop{ErrDeadline})
	}
	inst.limit.Set(uint64(max(fuel-checkpointFuel, 0)))
}

// epoch anchors monotonic time.
var epoch = time.Now()

func monotonic() int64 { return int64(time.Since(epoch)) }

// acquire takes an idle instance, or makes one if fewer than Workers
// exist, or waits for one. A fresh instance that fails its handshake fails
// the call that needed it.
func (p *Plugin) acquire(ctx context.Context, export string, batch uint64) (*instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, p.callError(export, batch, -1, err)
	}
	select {
	case <-p.done:
		return nil, p.callError(export, batch, -1, ErrClosed)
	case inst := <-p.idle:
		return inst, nil
	default:
	}
	select {
	case inst := <-p.idle:
		return inst, nil
	case p.tokens <- struct{}{}:
		inst, err := p.newInstance(ctx)
		if err != nil {
			p.discarded.Add(1)
			<-p.tokens
			if p.closed.Load() {
				// Close closed the runtime under the instance's start.
				return nil, p.callError(export, batch, -1, fmt.Errorf("%w during a fresh instance's start (%v)", ErrClosed, err))
			}
			return nil, p.callError(export, batch, -1, fmt.Errorf("a fresh instance: %w", err))
		}
		return inst, nil
	case <-ctx.Done():
		return nil, p.callError(export, batch, -1, ctx.Err())
	case <-p.done:
		return nil, p.callError(export, batch, -1, ErrClosed)
	}
}

// release returns an instance to the pool after a call that ended with err,
// or discards it: after a fault (anything but success, a failure the module
// reported, per-event errors, or an input the host refused before calling
// it), and whenever wazero closed the module (a deadline can fire just
// after the call returned).
func (p *Plugin) release(ctx context.Context, inst *instance, err error) {
	var ee *engine.EventErrors
	keep := err == nil || errors.Is(err, ErrFailed) || errors.Is(err, ErrInput) || errors.As(err, &ee)
	if keep && !inst.mod.IsClosed() {
		p.mu.Lock()
		if !p.closed.Load() {
			p.idle <- inst // never blocks: there are at most Workers instances
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	} else {
		p.discarded.Add(1)
	}
	inst.close(ctx)
	<-p.tokens
}

// Close closes every instance and the plugin's runtime. Calls in flight
// and calls waiting for an instance fail with ErrClosed.
func (p *Plugin) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed.Swap(true) {
		p.mu.Unlock()
		return nil
	}
	close(p.done)
	for drained := false; !drained; {
		select {
		case inst := <-p.idle:
			inst.close(ctx)
		default:
			drained = true
		}
	}
	p.mu.Unlock()
	return p.rt.Close(ctx)
}

func (p *Plugin) callError(export string, batch uint64, event int, err error) *CallError {
	return &CallError{Plugin: p.name, Export: export, Batch: batch, Event: event, Err: err}
}

// finishCall settles a call: the instance goes back or is discarded, and
// an error of a call that a Close interrupted is reported as ErrClosed.
func (p *Plugin) finishCall(ctx context.Context, inst *instance, export string, batch uint64, err error) error {
	p.release(ctx, inst, err)
	var ee *engine.EventErrors
	if err != nil && p.closed.Load() && !errors.As(err, &ee) && !errors.Is(err, ErrClosed) {
		return p.callError(export, batch, -1, fmt.Errorf("%w during the call (%v)", ErrClosed, err))
	}
	return err
}

// Process implements engine.Step for filter and map plugins.
func (p *Plugin) Process(ctx context.Context, in []engine.Event, out []engine.Event) ([]engine.Event, error) {
	var export string
	switch p.kind {
	case abi.KindFilter:
		export = abi.ExportFilter
	case abi.KindMap:
		export = abi.ExportMap
	default:
		return out, fmt.Errorf("plugin[%s]: %w: Process runs filters and maps, this step is a %s", p.name, ErrKind, p.kind)
	}
	if len(in) == 0 {
		return out, nil
	}
	res, err := withInstance(p, ctx, export, "", func(inst *instance, batch uint64) ([]engine.Event, error) {
		return inst.process(ctx, export, batch, in, out)
	})
	if res == nil {
		res = out // the call never reached an instance
	}
	return res, err
}

// Accumulate implements engine.Aggregator.
func (p *Plugin) Accumulate(ctx context.Context, key string, acc []byte, in []engine.Event) ([]byte, error) {
	return aggCall(p, ctx, abi.ExportAggregate, key, func(inst *instance, batch uint64) ([]byte, error) {
		return inst.accumulate(ctx, batch, key, acc, in)
	})
}

// Merge implements engine.Aggregator.
func (p *Plugin) Merge(ctx context.Context, key string, a, b []byte) ([]byte, error) {
	return aggCall(p, ctx, abi.ExportMerge, key, func(inst *instance, batch uint64) ([]byte, error) {
		return inst.merge(ctx, batch, key, a, b)
	})
}

// Finish implements engine.Aggregator.
func (p *Plugin) Finish(ctx context.Context, key string, acc []byte, w engine.Window, out []engine.Event) ([]engine.Event, error) {
	return aggCall(p, ctx, abi.ExportFinish, key, func(inst *instance, batch uint64) ([]engine.Event, error) {
		return inst.finish(ctx, batch, key, acc, w, out)
	})
}

func aggCall[T any](p *Plugin, ctx context.Context, export, key string, call func(*instance, uint64) (T, error)) (T, error) {
	if p.kind != abi.KindAggregate {
		var zero T
		return zero, fmt.Errorf("plugin[%s]: %w: this step is a %s, not an aggregate", p.name, ErrKind, p.kind)
	}
	return withInstance(p, ctx, export, key, call)
}

// withInstance runs one call, the plugin's next batch, on an instance from
// the pool and settles it; its errors name the group key of an aggregate
// call.
func withInstance[T any](p *Plugin, ctx context.Context, export, key string, call func(*instance, uint64) (T, error)) (v T, err error) {
	batch := p.batches.Add(1)
	defer func() {
		var ce *CallError
		if errors.As(err, &ce) {
			ce.Key = key
		}
	}()
	inst, err := p.acquire(ctx, export, batch)
	if err != nil {
		return v, err
	}
	defer func() { err = p.finishCall(ctx, inst, export, batch, err) }()
	return call(inst, batch)
}
