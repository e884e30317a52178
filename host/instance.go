package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host/internal/meter"
)

// initialBuffer is the size of the first input buffer a module allocates.
const initialBuffer = 64 << 10

// maxInterned bounds the strings an instance interns.
const maxInterned = 4096

// instance is one instantiated module. It is used by one goroutine at a
// time (the pool sees to it).
type instance struct {
	p       *Plugin
	mod     api.Module
	mem     api.Memory
	fns     map[string]api.Function
	stdout  *lineLogger
	stderr  *lineLogger
	version uint32
	kinds   abi.Kind

	buf, bufCap uint32 // the input buffer aegis_alloc returned
	stack       [2]uint64

	// The metering globals (nil when the plugin runs unmetered) and the
	// current call's deadline in monotonic nanoseconds (0: none).
	fuel, limit api.MutableGlobal
	deadline    int64

	types   map[string]engine.EventType
	sources map[string]string
	failed  []bool // scratch: events of the current batch that failed
}

// newInstance instantiates the module and runs the ABI handshake:
// _initialize, aegis_abi_version, aegis_kinds, aegis_alloc and aegis_init.
// The caller holds a token for it.
func (p *Plugin) newInstance(ctx context.Context) (*instance, error) {
	inst := &instance{
		p:       p,
		stdout:  &lineLogger{log: p.log, level: slog.LevelInfo, stream: "stdout", budget: maxLogPerCall},
		stderr:  &lineLogger{log: p.log, level: slog.LevelWarn, stream: "stderr", budget: maxLogPerCall},
		fns:     make(map[string]api.Function),
		types:   make(map[string]engine.EventType),
		sources: make(map[string]string),
	}
	mod, err := p.rt.InstantiateModule(ctx, p.compiled, p.modCfg.WithStdout(inst.stdout).WithStderr(inst.stderr))
	if err != nil {
		inst.stderr.Flush()
		var st *stop
		if errors.As(err, &st) && st.cause == ErrFuel {
			// The start function, which runs on fuel alone.
			err = fmt.Errorf("the start function: %w", &LimitError{Err: ErrFuel, Budget: handshakeFuel})
		} else {
			err = p.classify(ctx, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrInstantiate, err)
	}
	p.created.Add(1)
	inst.mod, inst.mem = mod, mod.ExportedMemory(abi.ExportMemory)
	p.insts.Store(mod, inst)
	for name := range p.compiled.ExportedFunctions() {
		inst.fns[name] = mod.ExportedFunction(name)
	}
	fail := func(err error) (*instance, error) {
		inst.close(ctx)
		return nil, err
	}
	if p.metered() {
		var ok1, ok2 bool
		inst.fuel, ok1 = mod.ExportedGlobal(meter.FuelExport).(api.MutableGlobal)
		inst.limit, ok2 = mod.ExportedGlobal(meter.LimitExport).(api.MutableGlobal)
		if !ok1 || !ok2 {
			return fail(fmt.Errorf("%w: the metering globals are missing", ErrInstantiate))
		}
	}
	if p.hasInitialize {
		// A Go module's runtime starts here.
		if _, err := inst.callRaw(ctx, abi.ExportInitialize, handshakeFuel, 0); err != nil {
			inst.stderr.Flush()
			return fail(fmt.Errorf("%w: %s: %v", ErrInstantiate, abi.ExportInitialize, err))
		}
	}

	if _, err := inst.callRaw(ctx, abi.ExportVersion, handshakeFuel, 0); err != nil {
		return fail(fmt.Errorf("%w: %s: %v", ErrInstantiate, abi.ExportVersion, err))
	}
	inst.version = uint32(inst.stack[0])
	if inst.version>>16 != abi.VersionMajor || inst.version&0xffff > abi.VersionMinor {
		return fail(fmt.Errorf("%w: the module speaks ABI %s, this host speaks %s (same major, minor up to %d)",
			ErrABIVersion, abi.VersionString(inst.version), abi.VersionString(abi.Version), abi.VersionMinor))
	}
	inst.kinds = p.info.Kinds
	if _, ok := inst.fns[abi.ExportKinds]; ok {
		if _, err := inst.callRaw(ctx, abi.ExportKinds, handshakeFuel, 0); err != nil {
			return fail(fmt.Errorf("%w: %s: %v", ErrInstantiate, abi.ExportKinds, err))
		}
		k := abi.Kind(uint32(inst.stack[0]))
		if k&^p.info.Kinds != 0 {
			return fail(fmt.Errorf("%w: %s says %s, but the module exports the functions of %s only",
				ErrMissingExport, abi.ExportKinds, k, p.info.Kinds))
		}
		if k == 0 {
			return fail(fmt.Errorf("%w: %s reports no step kinds", ErrKind, abi.ExportKinds))
		}
		inst.kinds = k
	}
	if err := inst.grow(ctx, initialBuffer); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrInstantiate, err))
	}
	if p.hasInit {
		cfg := p.cfg.Config
		_, err := inst.call(ctx, abi.ExportInit, 0, len(cfg), func(dst []byte) { copy(dst, cfg) }, abi.BodyEmpty, 0)
		if err != nil {
			var ce *CallError
			if errors.As(err, &ce) && errors.Is(err, ErrFailed) {
				return fail(fmt.Errorf("%w: %s", ErrConfig, ce.Err))
			}
			return fail(fmt.Errorf("%w: %s: %v", ErrInstantiate, abi.ExportInit, err))
		}
	}
	return inst, nil
}

func (inst *instance) close(ctx context.Context) {
	if inst.mod != nil {
		inst.p.insts.Delete(inst.mod)
		inst.mod.Close(ctx)
	}
	inst.stdout.Flush()
	inst.stderr.Flush()
}

// classify turns an error from wazero that no limit explains into a call
// error: a context error of the caller, or a trap.
func (p *Plugin) classify(parent context.Context, err error) error {
	if perr := parent.Err(); perr != nil {
		return perr
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("%w: the module exited with code %d (a Go plugin does when it panics or runs out of memory; see its stderr in the log)", ErrTrap, exit.ExitCode())
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i] // the first line; the wasm stack trace follows
	}
	return fmt.Errorf("%w: %s", ErrTrap, msg)
}

// callRaw calls an export with the values in inst.stack and a fuel
// budget, under the step's deadline and ctx, which its checkpoints
// enforce; results are left in inst.stack. It returns the fuel the call
// used. events is the number of events given, for errors.
func (inst *instance) callRaw(ctx context.Context, export string, budget int64, events int) (int64, error) {
	fn := inst.fns[export]
	p := inst.p
	inst.stdout.startCall(ctx)
	inst.stderr.startCall(ctx)
	if !p.metered() {
		// Only the benchmarks that compare with wazero's own interruption.
		cctx := ctx
		if p.cfg.interrupt == closeOnContextDone && p.cfg.Limits.Timeout > 0 {
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(ctx, p.cfg.Limits.Timeout)
			defer cancel()
		}
		if err := fn.CallWithStack(cctx, inst.stack[:]); err != nil {
			if cctx.Err() != nil && ctx.Err() == nil {
				return 0, &LimitError{Err: ErrDeadline, Timeout: p.cfg.Limits.Timeout, Events: events}
			}
			return 0, p.classify(ctx, err)
		}
		return 0, nil
	}
	inst.fuel.Set(uint64(budget))
	inst.limit.Set(uint64(max(budget-checkpointFuel, 0)))
	inst.deadline = 0
	if t := p.cfg.Limits.Timeout; t > 0 {
		inst.deadline = monotonic() + int64(t)
	}
	err := fn.CallWithStack(ctx, inst.stack[:])
	left := int64(inst.fuel.Get())
	used := budget - max(left, 0)
	if err == nil && left < 0 {
		err = &stop{ErrFuel} // spent in the last stretch, after the module's last check
	}
	if err == nil {
		return used, nil
	}
	var st *stop
	if errors.As(err, &st) {
		switch st.cause {
		case ErrFuel:
			p.exhausted.Add(1)
			return used, &LimitError{Err: ErrFuel, Budget: budget, Events: events}
		case ErrDeadline:
			p.deadlines.Add(1)
			return used, &LimitError{Err: ErrDeadline, Timeout: p.cfg.Limits.Timeout, Events: events}
		}
		return used, st.cause // the caller's context ended
	}
	return used, p.classify(ctx, err)
}

// grow makes the input buffer hold at least size bytes. It asks for twice
// the current size, to grow rarely, while that leaves room in the step's
// memory; an input that cannot fit at all is refused before the module is
// asked.
func (inst *instance) grow(ctx context.Context, size int) error {
	if size <= int(inst.bufCap) {
		return nil
	}
	memory := int64(inst.p.cfg.Limits.MemoryPages) * 65536
	if int64(size) > memory/2 {
		return fmt.Errorf("%w: an input of %d bytes does not fit in the step's memory of %d bytes (the module needs room besides its input)", ErrInput, size, memory)
	}
	want := int64(max(size, initialBuffer))
	if double := 2 * int64(inst.bufCap); double > want && double <= memory/4 {
		want = double
	}
	inst.stack[0] = uint64(want)
	if _, err := inst.callRaw(ctx, abi.ExportAlloc, handshakeFuel, 0); err != nil {
		return fmt.Errorf("%s(%d): %w", abi.ExportAlloc, want, err)
	}
	ptr := uint32(inst.stack[0])
	if ptr == 0 {
		return fmt.Errorf("%w: %s(%d) returned 0: the module could not allocate its input buffer", ErrBadResult, abi.ExportAlloc, want)
	}
	if _, ok := inst.mem.Read(ptr, uint32(want)); !ok {
		return fmt.Errorf("%w: %s(%d) returned %#x, outside the module's memory of %d bytes",
			ErrBadResult, abi.ExportAlloc, want, ptr, inst.mem.Size())
	}
	inst.buf, inst.bufCap = ptr, uint32(want)
	return nil
}

// call writes an input of size bytes with write, calls export and parses
// its result region, bounds-checked, as body. The result points into the
// module's memory and is valid until the next call.
func (inst *instance) call(ctx context.Context, export string, batch uint64, size int, write func([]byte), body abi.Body, inputLen int) (abi.Result, error) {
	p := inst.p
	if err := inst.grow(ctx, size); err != nil {
		return abi.Result{}, p.callError(export, batch, -1, err)
	}
	dst, ok := inst.mem.Read(inst.buf, uint32(size))
	if !ok {
		return abi.Result{}, p.callError(export, batch, -1, fmt.Errorf("%w: the input buffer left the module's memory", ErrBadResult))
	}
	write(dst)
	inst.stack[0], inst.stack[1] = uint64(inst.buf), uint64(size)
	budget := p.cfg.Limits.budget(inputLen)
	if export == abi.ExportInit {
		budget = handshakeFuel
	}
	used, err := inst.callRaw(ctx, export, budget, inputLen)
	if export != abi.ExportInit {
		p.fuel.Add(uint64(used))
	}
	if err != nil {
		return abi.Result{}, p.callError(export, batch, -1, err)
	}
	ptr, n := abi.Unpack(inst.stack[0])
	if n > p.cfg.Limits.MaxOutputBytes {
		return abi.Result{}, p.callError(export, batch, -1, fmt.Errorf("%w: a result of %d bytes is over the step's limit of %d",
			ErrBadResult, n, p.cfg.Limits.MaxOutputBytes))
	}
	region, ok := inst.mem.Read(ptr, n)
	if !ok {
		return abi.Result{}, p.callError(export, batch, -1, fmt.Errorf("%w: region [%#x, +%d) is outside the module's memory of %d bytes",
			ErrBadResult, ptr, n, inst.mem.Size()))
	}
	r, err := abi.ParseResult(region, body, inputLen)
	if err != nil {
		return r, p.callError(export, batch, -1, fmt.Errorf("%w: %v", ErrBadResult, err))
	}
	if r.Status != abi.StatusOK {
		return r, p.callError(export, batch, -1, fmt.Errorf("%w: %s: %s", ErrFailed, r.Status, clip(r.Message())))
	}
	return r, nil
}

func clip(s string) string {
	if len(s) > maxLogLine {
		return strings.ToValidUTF8(s[:maxLogLine], "") + "..."
	}
	return s
}

// batchSize is the size of the encoded batch of events.
func batchSize(in []engine.Event) (int, error) {
	n := abi.BatchHeaderSize
	for i := range in {
		if len(in[i].Metadata) > engine.ABIMetaLimit {
			return 0, fmt.Errorf("%w: event[%d] has %d metadata entries, a plugin takes at most %d", ErrInput, i, len(in[i].Metadata), engine.ABIMetaLimit)
		}
		n += engine.ABIRecordSize(&in[i])
	}
	return n, nil
}

func putBatch(dst []byte, in []engine.Event) {
	abi.PutBatchHeader(dst, uint32(len(in)))
	off := abi.BatchHeaderSize
	for i := range in {
		off += engine.PutABIRecord(dst[off:], &in[i], uint32(i))
	}
}

func (inst *instance) process(ctx context.Context, export string, batch uint64, in, out []engine.Event) ([]engine.Event, error) {
	size, err := batchSize(in)
	if err != nil {
		return out, inst.p.callError(export, batch, -1, err)
	}
	body := abi.BodyIndices
	if export == abi.ExportMap {
		body = abi.BodyRecords
	}
	r, err := inst.call(ctx, export, batch, size, func(dst []byte) { putBatch(dst, in) }, body, len(in))
	if err != nil {
		return out, err
	}
	errs := inst.eventErrors(&r, len(in))
	if body == abi.BodyIndices {
		for i := 0; i < int(r.Count); i++ {
			idx := r.Index(i)
			if errs != nil && inst.failed[idx] {
				continue
			}
			out = append(out, in[idx])
		}
	} else {
		out, err = inst.decodeRecords(&r, in, out, errs != nil, 0, export, batch)
		if err != nil {
			return out, err
		}
	}
	if errs != nil {
		return out, errs
	}
	return out, nil
}

// eventErrors collects a result's event errors and marks the failed events
// in inst.failed; nil when there are none.
func (inst *instance) eventErrors(r *abi.Result, n int) *engine.EventErrors {
	if r.ErrorCount == 0 {
		return nil
	}
	if cap(inst.failed) < n {
		inst.failed = make([]bool, n)
	}
	inst.failed = inst.failed[:n]
	clear(inst.failed)
	errs := &engine.EventErrors{Step: inst.p.name}
	for ee, rest, ok := abi.NextError(r.Errors); ok; ee, rest, ok = abi.NextError(rest) {
		if int(ee.Index) < n {
			inst.failed[ee.Index] = true
		}
		errs.Errors = append(errs.Errors, engine.EventError{Index: int(ee.Index), Code: ee.Code, Message: clip(string(ee.Message))})
	}
	slices.SortStableFunc(errs.Errors, func(a, b engine.EventError) int { return a.Index - b.Index })
	return errs
}

// decodeRecords appends the records of a map or finish result to out as
// events. For a map (in not nil) each record's index names its input
// event, whose time fills a zero time and whose metadata map is shared
// when the record's is the same, and whose ID derives the output's when the
// module names none (engine.DerivedEventID); outputs of failed events are
// dropped. For a finish, a zero time is the window end (defaultTime), and
// a zero ID stays zero: the engine's aggregation gives the result its
// deterministic ID.
func (inst *instance) decodeRecords(r *abi.Result, in, out []engine.Event, skipFailed bool, defaultTime int64, export string, batch uint64) ([]engine.Event, error) {
	p := inst.p
	// One allocation holds the data of every output event of the batch.
	arena := make([]byte, 0, len(r.Body))
	recs := r.Records()
	prev := 0
	// The outputs of the current input event so far (map), for the IDs.
	nth, first := 0, len(out)
	for i := 0; ; i++ {
		v, ok, err := recs.Next()
		if err != nil {
			return out, p.callError(export, batch, -1, fmt.Errorf("%w: output %v", ErrBadResult, err))
		}
		if !ok {
			return out, nil
		}
		var origin *engine.Event
		if in != nil {
			o := int(v.Index)
			if o >= len(in) || o < prev {
				return out, p.callError(export, batch, -1, fmt.Errorf("%w: output record %d names input event %d (inputs: %d, previous: %d; indices must not decrease)",
					ErrBadResult, i, o, len(in), prev))
			}
			if o != prev || i == 0 {
				nth, first = 0, len(out)
			}
			prev = o
			if skipFailed && inst.failed[o] {
				continue
			}
			origin = &in[o]
		}
		ev, err := inst.event(&v, origin, defaultTime, &arena)
		if err != nil {
			event := -1
			if origin != nil {
				event = int(v.Index)
			}
			return out, p.callError(export, batch, event, fmt.Errorf("%w: output record %d: %v", ErrBadResult, i, err))
		}
		if origin != nil {
			// A zero ID, or one that an earlier output of the same input
			// took (a module that copies the input's ID into each of its
			// outputs), is derived from the input's: the same on a replay,
			// and never the same for two outputs.
			if ev.ID.IsZero() || slices.ContainsFunc(out[first:], func(e engine.Event) bool { return e.ID == ev.ID }) {
				ev.ID = engine.DerivedEventID(p.name, origin.ID, nth)
			}
			nth++
		}
		out = append(out, ev)
	}
}

// event builds an event from a record a module wrote, copying its bytes
// out of the module's memory.
func (inst *instance) event(v *abi.View, origin *engine.Event, defaultTime int64, arena *[]byte) (engine.Event, error) {
	var ev engine.Event
	ev.ID = engine.EventID(v.ID) // a zero ID: see decodeRecords, and engine.Aggregator's Finish
	ev.Time = v.Time
	if ev.Time == 0 {
		ev.Time = defaultTime
		if origin != nil {
			ev.Time = origin.Time
		}
	}
	typ, ok := inst.types[string(v.Type)]
	if !ok {
		typ = engine.EventType(v.Type)
		if err := typ.Validate(); err != nil {
			return ev, err
		}
		if len(inst.types) < maxInterned {
			inst.types[string(typ)] = typ
		}
	}
	ev.Type = typ
	if src, ok := inst.sources[string(v.Source)]; ok {
		ev.Source = src
	} else {
		ev.Source = string(v.Source)
		if len(inst.sources) < maxInterned {
			inst.sources[ev.Source] = ev.Source
		}
	}
	if origin != nil && sameData(v, origin.Data) {
		// Unchanged data (a map that changes the type or metadata, or
		// passes events on): share the input's, already checked.
		ev.Data = origin.Data
	} else {
		start := len(*arena)
		*arena = append(*arena, v.Data...)
		data, err := engine.DataFromABI(v.Kind, (*arena)[start:len(*arena):len(*arena)])
		if err != nil {
			return ev, err
		}
		ev.Data = data
	}
	if v.MetaCount > 0 {
		if origin != nil && sameMeta(v, origin.Metadata) {
			ev.Metadata = origin.Metadata
		} else {
			ev.Metadata = make(map[string]string, v.MetaCount)
			for k, val, rest, ok := abi.NextMeta(v.Meta); ok; k, val, rest, ok = abi.NextMeta(rest) {
				ev.Metadata[string(k)] = string(val)
			}
			if len(ev.Metadata) != int(v.MetaCount) {
				return ev, errors.New("metadata has a key twice")
			}
		}
	}
	return ev, nil
}

// sameData reports whether the record's data is d's, byte for byte and of
// the same kind. Only data held as bytes is compared: numbers are cheap to
// decode anyway.
func sameData(v *abi.View, d engine.EventData) bool {
	if engine.DataKind(v.Kind) != d.Kind() {
		return false
	}
	var b []byte
	switch d.Kind() {
	case engine.KindJSON:
		b, _ = d.AsJSON()
	case engine.KindBytes:
		b, _ = d.AsBytes()
	default:
		return false
	}
	return bytes.Equal(v.Data, b)
}

// sameMeta reports whether the record's metadata is exactly m.
func sameMeta(v *abi.View, m map[string]string) bool {
	if int(v.MetaCount) != len(m) {
		return false
	}
	for k, val, rest, ok := abi.NextMeta(v.Meta); ok; k, val, rest, ok = abi.NextMeta(rest) {
		if mv, found := m[string(k)]; !found || mv != string(val) {
			return false
		}
	}
	return true
}

func (inst *instance) accumulate(ctx context.Context, batch uint64, key string, acc []byte, in []engine.Event) ([]byte, error) {
	size, err := batchSize(in)
	if err != nil {
		return nil, inst.p.callError(abi.ExportAggregate, batch, -1, err)
	}
	st := abi.State{Key: []byte(key), Acc: acc}
	r, err := inst.call(ctx, abi.ExportAggregate, batch, st.StateSize()+size, func(dst []byte) {
		n := abi.PutState(dst, &st)
		putBatch(dst[n:], in)
	}, abi.BodyBytes, len(in))
	if err != nil {
		return nil, err
	}
	next := append([]byte(nil), r.Body...)
	if errs := inst.eventErrors(&r, len(in)); errs != nil {
		return next, errs
	}
	return next, nil
}

func (inst *instance) merge(ctx context.Context, batch uint64, key string, a, b []byte) ([]byte, error) {
	st := abi.State{Key: []byte(key), Acc: a}
	r, err := inst.call(ctx, abi.ExportMerge, batch, st.StateSize()+4+len(b), func(dst []byte) {
		n := abi.PutState(dst, &st)
		binary.LittleEndian.PutUint32(dst[n:], uint32(len(b)))
		copy(dst[n+4:], b)
	}, abi.BodyBytes, 0)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), r.Body...), nil
}

func (inst *instance) finish(ctx context.Context, batch uint64, key string, acc []byte, w engine.Window, out []engine.Event) ([]engine.Event, error) {
	st := abi.State{Key: []byte(key), Acc: acc}
	r, err := inst.call(ctx, abi.ExportFinish, batch, st.StateSize()+abi.WindowSize, func(dst []byte) {
		n := abi.PutState(dst, &st)
		abi.PutWindow(dst[n:], w.Start, w.End)
	}, abi.BodyRecords, 0)
	if err != nil {
		return out, err
	}
	return inst.decodeRecords(&r, nil, out, false, w.End, abi.ExportFinish, batch)
}
