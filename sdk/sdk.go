// Package sdk is the Go guest SDK for aegis-host plugins. A plugin is a
// main package, built with GOOS=wasip1 GOARCH=wasm and -buildmode=c-shared
// (`aegis-host plugin build` does it), that registers its step in init:
//
//	package main
//
//	import "github.com/aegis-streaming/aegis/sdk"
//
//	func init() {
//		sdk.Filter(func(e sdk.Event) bool { return e.Type() != "order.refunded" })
//	}
//
//	func main() {}
//
// The SDK implements the module side of ABI v1 (abi/ABI.md): it exports the
// ABI functions, decodes the batches the host writes into views that copy
// nothing, and encodes results into buffers it reuses, so the per-event work
// is the plugin's own.
//
// A module registers one step of each kind at most. Plugin code runs one
// call at a time: the host never calls an instance concurrently.
package sdk

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/aegis-streaming/aegis/abi"
)

var (
	filterFn func(Event) bool
	mapFn    func(Event, *Output) error
	aggImpl  aggregator
	configFn func(Config) error

	res abi.ResultWriter
)

// records calls fn for each record of the batch b, in order, after checking
// its framing (abi.SplitRecord); fields are decoded when plugin code asks.
func records(b []byte, fn func(r abi.RawRecord) error) error {
	if len(b) < abi.BatchHeaderSize {
		return fmt.Errorf("batch header: %w", abi.ErrShort)
	}
	n := binary.LittleEndian.Uint32(b)
	p := b[abi.BatchHeaderSize:]
	for i := uint32(0); i < n; i++ {
		r, rest, err := abi.SplitRecord(p)
		if err != nil {
			return fmt.Errorf("batch record %d: %w", i, err)
		}
		p = rest
		if err := fn(r); err != nil {
			return err
		}
	}
	if len(p) != 0 {
		return fmt.Errorf("batch: %d %w after %d records", len(p), abi.ErrTrailing, n)
	}
	return nil
}

func mustBeFirst(what string, taken bool) {
	if taken {
		panic("sdk: " + what + " registered twice")
	}
}

// Filter registers the module's filter: keep reports whether an event goes
// on. Events it drops are dropped, not errors.
func Filter(keep func(e Event) bool) {
	mustBeFirst("Filter", filterFn != nil)
	filterFn = keep
}

// Map registers the module's map: fn emits zero or more events to out for
// each input event. An error fails that event alone (what happens to it is
// the step's error policy); the events fn emitted for it are discarded. Use
// [EventError] for an error with a code.
func Map(fn func(e Event, out *Output) error) {
	mustBeFirst("Map", mapFn != nil)
	mapFn = fn
}

// OnConfig registers fn to receive the step's configuration (the manifest's
// `with:` map) before the first event. An error refuses it, and the step
// does not start. A module without OnConfig refuses any non-empty
// configuration.
func OnConfig(fn func(Config) error) {
	mustBeFirst("OnConfig", configFn != nil)
	configFn = fn
}

// Config is the step's configuration, a JSON object. It is a copy, so a
// plugin may keep it and what Get returns.
type Config struct{ raw []byte }

// Raw is the configuration as JSON.
func (c Config) Raw() []byte { return c.raw }

// Get returns one member of the configuration.
func (c Config) Get(key string) JSON { return Lookup(c.raw, key) }

// Decode unmarshals the configuration into v, as encoding/json does.
func (c Config) Decode(v any) error { return json.Unmarshal(c.raw, v) }

// EventError returns an error that fails one event with a code of the
// plugin's choosing, reported to the host with the message.
func EventError(code uint32, msg string) error { return &codedError{code, msg} }

type codedError struct {
	code uint32
	msg  string
}

func (e *codedError) Error() string { return e.msg }

// ErrorCode is the code the host receives for an event that failed with
// err: the code of an [EventError] in its chain, else 1.
func ErrorCode(err error) uint32 {
	var c *codedError
	if errors.As(err, &c) {
		return c.code
	}
	return 1
}

// Window is the event-time window an aggregate finishes: [Start, End) in
// nanoseconds since the Unix epoch.
type Window struct {
	Start, End int64
}

// AggregateFuncs is an aggregate over a state S that the host keeps between
// calls (per group key and window), so it survives instance restarts.
// The SDK encodes S with encoding/binary when S has a fixed size (a struct
// of numbers, say) and with encoding/json otherwise, unless Marshal and
// Unmarshal are given.
type AggregateFuncs[S any] struct {
	// Init returns the state of a group that has seen no events; nil means
	// the zero S.
	Init func() S
	// Add accumulates one event. An error fails that event alone; Add must
	// then leave s as it was.
	Add func(s *S, e Event) error
	// Merge folds other into s (two partial results of one group).
	Merge func(s *S, other *S)
	// Finish emits the results of a group's window when it closes, also for
	// a window that saw no events (s is then the initial state).
	Finish func(key string, s *S, w Window, out *Output) error

	Marshal   func(s *S, b []byte) []byte
	Unmarshal func(b []byte, s *S) error
}

// Aggregate registers the module's aggregate.
func Aggregate[S any](a AggregateFuncs[S]) {
	mustBeFirst("Aggregate", aggImpl != nil)
	if a.Add == nil || a.Merge == nil || a.Finish == nil {
		panic("sdk: Aggregate needs Add, Merge and Finish")
	}
	if (a.Marshal == nil) != (a.Unmarshal == nil) {
		panic("sdk: Aggregate needs both Marshal and Unmarshal, or neither")
	}
	var zero S
	if a.Marshal == nil {
		if f := unexportedField(reflect.TypeFor[S](), "S"); f != "" {
			panic("sdk: Aggregate: the state's field " + f + " is unexported; the host keeps the state " +
				"encoded between calls, so the default encoding needs exported fields (or give Marshal and Unmarshal)")
		}
		if binary.Size(&zero) > 0 {
			a.Marshal = func(s *S, b []byte) []byte {
				b, err := binary.Append(b, binary.LittleEndian, s)
				if err != nil {
					panic(err)
				}
				return b
			}
			a.Unmarshal = func(b []byte, s *S) error {
				n, err := binary.Decode(b, binary.LittleEndian, s)
				if err == nil && n != len(b) {
					err = fmt.Errorf("%d bytes after the state", len(b)-n)
				}
				return err
			}
		} else {
			a.Marshal = func(s *S, b []byte) []byte {
				j, err := json.Marshal(s)
				if err != nil {
					panic(err)
				}
				return append(b, j...)
			}
			a.Unmarshal = func(b []byte, s *S) error { return json.Unmarshal(b, s) }
		}
	}
	aggImpl = &aggFuncs[S]{AggregateFuncs: a}
}

// unexportedField names the first unexported struct field in t (path is
// how t was reached), or returns "".
func unexportedField(t reflect.Type, path string) string {
	switch t.Kind() {
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				return path + "." + f.Name
			}
			if u := unexportedField(f.Type, path+"."+f.Name); u != "" {
				return u
			}
		}
	case reflect.Array, reflect.Slice, reflect.Pointer, reflect.Map:
		return unexportedField(t.Elem(), path+"[]")
	}
	return ""
}

type aggregator interface {
	add(acc []byte, batch []byte) error
	merge(a, b []byte) error
	finish(key string, acc []byte, w Window, out *Output) error
}

type aggFuncs[S any] struct {
	AggregateFuncs[S]
	s, t S
}

func (a *aggFuncs[S]) load(acc []byte, s *S) error {
	// s holds the state of the previous call, of another group maybe:
	// Unmarshal must start from the zero S (json.Unmarshal would merge
	// into maps and keep fields the accumulator omits).
	var zero S
	*s = zero
	if len(acc) == 0 {
		if a.Init != nil {
			*s = a.Init()
		}
		return nil
	}
	if err := a.Unmarshal(acc, s); err != nil {
		return fmt.Errorf("accumulator: %w", err)
	}
	return nil
}

func (a *aggFuncs[S]) add(acc []byte, batch []byte) error {
	if err := a.load(acc, &a.s); err != nil {
		return err
	}
	err := records(batch, func(r abi.RawRecord) error {
		if err := a.Add(&a.s, Event{r: r}); err != nil {
			failEvent(r.Index(), err)
		}
		return nil
	})
	if err != nil {
		return badInput{err}
	}
	buf := res.Buffer()
	n := len(buf)
	buf = a.Marshal(&a.s, buf)
	res.Added(buf, len(buf)-n)
	return nil
}

func (a *aggFuncs[S]) merge(x, y []byte) error {
	if err := a.load(x, &a.s); err != nil {
		return err
	}
	if err := a.load(y, &a.t); err != nil {
		return err
	}
	a.Merge(&a.s, &a.t)
	buf := res.Buffer()
	n := len(buf)
	buf = a.Marshal(&a.s, buf)
	res.Added(buf, len(buf)-n)
	return nil
}

func (a *aggFuncs[S]) finish(key string, acc []byte, w Window, out *Output) error {
	if err := a.load(acc, &a.s); err != nil {
		return err
	}
	return a.Finish(key, &a.s, w, out)
}

// kinds is the bit set of registered step kinds.
func kinds() uint32 {
	var k abi.Kind
	if filterFn != nil {
		k |= abi.KindFilter
	}
	if mapFn != nil {
		k |= abi.KindMap
	}
	if aggImpl != nil {
		k |= abi.KindAggregate
	}
	return uint32(k)
}

// badInput is an error decoding the input, as opposed to a failure of the
// plugin's code.
type badInput struct{ error }

// failCall fails the whole call, and failEvent reports one event as
// failed. Both make the message valid UTF-8, as the ABI requires of every
// message, since a plugin's error may hold any bytes.
func failCall(status abi.Status, msg string) []byte { return res.Fail(status, validText(msg)) }

func failEvent(index uint32, err error) {
	res.AddError(index, ErrorCode(err), validText(err.Error()))
}

func validText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// The handlers below are the bodies of the ABI exports: each takes the
// input region and returns the result region (res's buffer).

func handleInit(in []byte) []byte {
	res.Reset()
	if configFn == nil {
		if !emptyObject(in) {
			return res.Fail(abi.StatusBadConfig, "this plugin takes no configuration")
		}
		return res.Finish()
	}
	// A copy: the host writes the next input over in.
	if err := configFn(Config{raw: bytes.Clone(in)}); err != nil {
		return failCall(abi.StatusBadConfig, err.Error())
	}
	return res.Finish()
}

func emptyObject(b []byte) bool {
	empty := true
	return Members(b, func(_, _ []byte) bool { empty = false; return false }) && empty
}

func handleFilter(in []byte) []byte {
	res.Reset()
	if filterFn == nil {
		return res.Fail(abi.StatusUnsupported, "this plugin has no filter")
	}
	// The loop of records, inlined: a call costs much more in Go's wasm
	// code than natively, and this is the hottest loop of a filter.
	if len(in) < abi.BatchHeaderSize {
		return res.Fail(abi.StatusBadInput, "batch header: truncated")
	}
	n := binary.LittleEndian.Uint32(in)
	p := in[abi.BatchHeaderSize:]
	for i := uint32(0); i < n; i++ {
		r, rest, err := abi.SplitRecord(p)
		if err != nil {
			return res.Fail(abi.StatusBadInput, fmt.Sprintf("batch record %d: %v", i, err))
		}
		p = rest
		if filterFn(Event{r: r}) {
			res.AppendIndex(r.Index())
		}
	}
	if len(p) != 0 {
		return res.Fail(abi.StatusBadInput, "batch: trailing bytes after the last record")
	}
	return res.Finish()
}

func handleMap(in []byte) []byte {
	res.Reset()
	if mapFn == nil {
		return res.Fail(abi.StatusUnsupported, "this plugin has no map")
	}
	if err := records(in, mapRecord); err != nil {
		return res.Fail(abi.StatusBadInput, err.Error())
	}
	return res.Finish()
}

var mapOut = Output{w: &res}

func mapRecord(r abi.RawRecord) error {
	mapOut.origin = r.Index()
	err := mapFn(Event{r: r}, &mapOut)
	if err == nil {
		err = mapOut.takeErr()
	}
	if err != nil {
		// The host discards what was emitted for a failed event.
		failEvent(r.Index(), err)
	}
	return nil
}

func handleAggregate(in []byte) []byte {
	res.Reset()
	if aggImpl == nil {
		return res.Fail(abi.StatusUnsupported, "this plugin has no aggregate")
	}
	s, batch, err := abi.ParseState(in)
	if err != nil {
		return res.Fail(abi.StatusBadInput, err.Error())
	}
	if err := aggImpl.add(s.Acc, batch); err != nil {
		if _, ok := err.(badInput); ok {
			return failCall(abi.StatusBadInput, err.Error())
		}
		return failCall(abi.StatusFailed, err.Error())
	}
	return res.Finish()
}

func handleMerge(in []byte) []byte {
	res.Reset()
	if aggImpl == nil {
		return res.Fail(abi.StatusUnsupported, "this plugin has no aggregate")
	}
	s, other, err := abi.ParseMergeInput(in)
	if err != nil {
		return res.Fail(abi.StatusBadInput, err.Error())
	}
	if err := aggImpl.merge(s.Acc, other); err != nil {
		return failCall(abi.StatusFailed, err.Error())
	}
	return res.Finish()
}

func handleFinish(in []byte) []byte {
	res.Reset()
	if aggImpl == nil {
		return res.Fail(abi.StatusUnsupported, "this plugin has no aggregate")
	}
	s, start, end, err := abi.ParseFinishInput(in)
	if err != nil {
		return res.Fail(abi.StatusBadInput, err.Error())
	}
	out := Output{w: &res}
	err = aggImpl.finish(string(s.Key), s.Acc, Window{Start: start, End: end}, &out)
	if err == nil {
		err = out.takeErr()
	}
	if err != nil {
		return failCall(abi.StatusFailed, err.Error())
	}
	return res.Finish()
}
