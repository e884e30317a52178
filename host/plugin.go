package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/engine"
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

	rt       wazero.Runtime
	compiled wazero.CompiledModule
	modCfg   wazero.ModuleConfig
	hasInit  bool

	idle    chan *instance
	tokens  chan struct{} // one per live instance
	batches atomic.Uint64
	closed  atomic.Bool

	// Counters for stats.
	created, discarded atomic.Uint64
}

var (
	_ engine.Step       = (*Plugin)(nil)
	_ engine.Aggregator = (*Plugin)(nil)
)

// Name is the plugin's name.
func (p *Plugin) Name() string { return p.name }

// Kind is the step kind the plugin runs (zero when loaded by Inspect and
// the module has several).
func (p *Plugin) Kind() abi.Kind { return p.kind }

// Info describes the plugin.
func (p *Plugin) Info() Info { return p.info }

// Instances reports how many instances were created and how many were
// discarded after a failure, since load.
func (p *Plugin) Instances() (created, discarded uint64) {
	return p.created.Load(), p.discarded.Load()
}

func (p *Plugin) init(ctx context.Context, wasm []byte, anyKind bool) error {
	compiled, err := p.rt.CompileModule(ctx, wasm)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	p.compiled = compiled
	if err := checkModule(compiled, &p.info); err != nil {
		return err
	}
	_, p.hasInit = compiled.ExportedFunctions()[abi.ExportInit]
	if !p.hasInit && !isEmptyObject(p.cfg.Config) {
		return fmt.Errorf("%w: the step has configuration but the module has no %s", ErrConfig, abi.ExportInit)
	}
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

	mc := wazero.NewModuleConfig().WithName("").WithStartFunctions()
	if _, ok := compiled.ExportedFunctions()[abi.ExportInitialize]; ok {
		mc = mc.WithStartFunctions(abi.ExportInitialize)
	}
	if p.cfg.Grants.Clock {
		mc = mc.WithSysWalltime().WithSysNanotime().WithSysNanosleep()
	}
	if p.cfg.Grants.Random {
		mc = mc.WithRandSource(rand.Reader)
	}
	for k, v := range p.cfg.Grants.Env {
		mc = mc.WithEnv(k, v)
	}
	p.modCfg = mc

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

func isEmptyObject(b []byte) bool {
	return strings.TrimSpace(strings.Join(strings.Fields(string(b)), "")) == "{}"
}

// hostLog is aegis.log(level, ptr, len).
func (p *Plugin) hostLog(ctx context.Context, m api.Module, stack []uint64) {
	level, ptr, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
	n = min(n, maxLogLine)
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		p.log.Warn("aegis.log called with a message out of bounds", "ptr", ptr, "len", n)
		return
	}
	p.log.Log(ctx, slog.Level(level), strings.ToValidUTF8(string(b), "\uFFFD"))
}

// acquire takes an idle instance, or makes one if fewer than Workers
// exist, or waits for one.
func (p *Plugin) acquire(ctx context.Context) (*instance, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	select {
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
			<-p.tokens
			return nil, err
		}
		return inst, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Plugin) release(ctx context.Context, inst *instance, err error) {
	var ce *CallError
	if err != nil && (!errors.As(err, &ce) || ce.discards()) {
		p.discarded.Add(1)
		inst.close(ctx)
		<-p.tokens
		return
	}
	if p.closed.Load() {
		inst.close(ctx)
		<-p.tokens
		return
	}
	p.idle <- inst
}

// Close closes every instance and the plugin's runtime. Calls in flight
// fail.
func (p *Plugin) Close(ctx context.Context) error {
	if p.closed.Swap(true) {
		return nil
	}
	for {
		select {
		case inst := <-p.idle:
			inst.close(ctx)
		default:
			return p.rt.Close(ctx)
		}
	}
}

func (p *Plugin) callError(export string, batch uint64, event int, err error) *CallError {
	return &CallError{Plugin: p.name, Export: export, Batch: batch, Event: event, Err: err}
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
	inst, err := p.acquire(ctx)
	if err != nil {
		return out, fmt.Errorf("plugin[%s]: %w", p.name, err)
	}
	batch := p.batches.Add(1)
	out, err = inst.process(ctx, export, batch, in, out)
	p.release(ctx, inst, err)
	return out, err
}

// Accumulate implements engine.Aggregator.
func (p *Plugin) Accumulate(ctx context.Context, key string, acc []byte, in []engine.Event) ([]byte, error) {
	return aggCall(p, ctx, func(inst *instance, batch uint64) ([]byte, error) {
		return inst.accumulate(ctx, batch, key, acc, in)
	})
}

// Merge implements engine.Aggregator.
func (p *Plugin) Merge(ctx context.Context, key string, a, b []byte) ([]byte, error) {
	return aggCall(p, ctx, func(inst *instance, batch uint64) ([]byte, error) {
		return inst.merge(ctx, batch, key, a, b)
	})
}

// Finish implements engine.Aggregator.
func (p *Plugin) Finish(ctx context.Context, key string, acc []byte, w engine.Window, out []engine.Event) ([]engine.Event, error) {
	return aggCall(p, ctx, func(inst *instance, batch uint64) ([]engine.Event, error) {
		return inst.finish(ctx, batch, key, acc, w, out)
	})
}

func aggCall[T any](p *Plugin, ctx context.Context, call func(*instance, uint64) (T, error)) (T, error) {
	var zero T
	if p.kind != abi.KindAggregate {
		return zero, fmt.Errorf("plugin[%s]: %w: this step is a %s, not an aggregate", p.name, ErrKind, p.kind)
	}
	inst, err := p.acquire(ctx)
	if err != nil {
		return zero, fmt.Errorf("plugin[%s]: %w", p.name, err)
	}
	v, err := call(inst, p.batches.Add(1))
	p.release(ctx, inst, err)
	return v, err
}
