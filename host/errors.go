package host

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Load errors, wrapped with the plugin's name and the details.
var (
	// ErrInvalidModule: the bytes are not a WebAssembly module wazero can
	// compile.
	ErrInvalidModule = errors.New("not a valid WebAssembly module")
	// ErrUnsupported: the module uses a feature beyond WebAssembly 2.0
	// that the host does not run (threads, tail calls, exceptions, ...).
	ErrUnsupported = errors.New("module not supported")
	// ErrChecksum: the module's SHA-256 is not the one the step pins.
	ErrChecksum = errors.New("sha256 mismatch")
	// ErrABIVersion: the module speaks an ABI version the host does not.
	ErrABIVersion = errors.New("unsupported ABI version")
	// ErrMissingExport: a required export is missing.
	ErrMissingExport = errors.New("missing export")
	// ErrBadSignature: an export or import has the wrong type.
	ErrBadSignature = errors.New("wrong signature")
	// ErrBadImport: the module imports something the host does not give.
	ErrBadImport = errors.New("import not allowed")
	// ErrKind: the module does not implement the step's kind, or the step
	// must name one of several.
	ErrKind = errors.New("step kind")
	// ErrConfig: the plugin refused its configuration.
	ErrConfig = errors.New("configuration refused")
	// ErrInstantiate: instantiation or initialisation failed.
	ErrInstantiate = errors.New("instantiation failed")
)

// Call errors: what ended a call, the Err of a [CallError].
var (
	// ErrTrap: the plugin trapped or exited (a Go plugin's panic or fatal
	// error, unreachable, an out-of-bounds access, memory exhausted).
	ErrTrap = errors.New("trap")
	// ErrDeadline: the call ran past the step's time limit (a
	// [*LimitError] says which).
	ErrDeadline = errors.New("deadline exceeded")
	// ErrFuel: the call used up its fuel budget (a [*LimitError] says
	// which).
	ErrFuel = errors.New("fuel exhausted")
	// ErrBadResult: the result region is out of bounds, too large or not
	// a valid result.
	ErrBadResult = errors.New("bad result")
	// ErrFailed: the plugin reported that the call failed (a non-zero
	// status); the instance stays in use.
	ErrFailed = errors.New("plugin failed")
	// ErrClosed: the plugin was closed.
	ErrClosed = errors.New("plugin closed")

	// ErrInput: the host cannot give this input to a plugin (an event with
	// more metadata entries than the ABI counts, a batch larger than the
	// step's memory); no instance was harmed.
	ErrInput = errors.New("input not accepted")
)

// LimitError is a call that one of the step's limits ended. Its Err is
// ErrFuel or ErrDeadline.
type LimitError struct {
	Err     error
	Budget  int64         // the call's fuel budget (ErrFuel)
	Events  int           // the events given to the call
	Timeout time.Duration // the step's deadline (ErrDeadline)
}

func (e *LimitError) Error() string {
	if e.Err == ErrFuel {
		return fmt.Sprintf("%v: the call needed more than its budget of %d fuel (%d events)", e.Err, e.Budget, e.Events)
	}
	return fmt.Sprintf("%v: the call ran longer than %s", e.Err, e.Timeout)
}

func (e *LimitError) Unwrap() error { return e.Err }

// CallError is a failed call into a plugin. Every error but ErrFailed,
// ErrInput and ErrClosed discarded the instance that was called.
type CallError struct {
	Plugin string
	Export string
	Batch  uint64 // the plugin's call count, from 1
	Event  int    // index in the batch of the event at fault; -1 when unknown
	Key    string // the group of an aggregate call; "" otherwise
	Err    error  // wraps one of the call errors above, or a context error
}

func (e *CallError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plugin[%s] export[%s] batch[%d]", e.Plugin, e.Export, e.Batch)
	if e.Key != "" {
		fmt.Fprintf(&b, " key[%s]", e.Key)
	}
	if e.Event >= 0 {
		fmt.Fprintf(&b, " event[%d]", e.Event)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *CallError) Unwrap() error { return e.Err }

// ErrorType names what ended the call, for the error.type attribute of
// traces: trap, deadline, fuel, bad_result, failed, closed, input,
// canceled, or error.
func (e *CallError) ErrorType() string {
	for _, k := range []struct {
		err  error
		name string
	}{{ErrTrap, "trap"}, {ErrDeadline, "deadline"}, {ErrFuel, "fuel"}, {ErrBadResult, "bad_result"},
		{ErrFailed, "failed"}, {ErrClosed, "closed"}, {ErrInput, "input"},
		{context.Canceled, "canceled"}, {context.DeadlineExceeded, "canceled"}} {
		if errors.Is(e.Err, k.err) {
			return k.name
		}
	}
	return "error"
}
