package engine

import (
	"context"
	"fmt"
	"strings"
)

// Step is one stage of a pipeline that turns a batch of events into output
// events: a filter, a map or a transform, native or WebAssembly. The engine
// runs every step through this interface.
//
// Process appends the outputs for in to out and returns the extended slice,
// so a caller that reuses out allocates nothing. It must not modify the
// events of in (they are shared). A filter appends the events it keeps;
// a map appends zero or more new events per input, in input order.
//
// When some events failed but the others were processed, Process returns
// the outputs of the others and an *[EventErrors]; the step's error policy
// decides the failed events' fate. Any other error fails the whole batch
// and out is to be ignored.
//
// A Step may be called from several goroutines at once (one per worker);
// implementations that cannot run concurrently serialise or pool.
type Step interface {
	Process(ctx context.Context, in []Event, out []Event) ([]Event, error)
}

// Aggregator is an aggregation whose state the engine keeps: the
// accumulator is opaque bytes that the engine stores per group key and
// window, passes in and takes back, so it survives restarts of whatever
// computes it. An empty accumulator is the initial state.
//
// Accumulate folds in into acc and returns the new accumulator (which may
// reuse nothing of acc). Merge combines two accumulators of one group.
// Finish appends the results of a group's window when it closes, also for a
// window that saw no events. Per-event failures in Accumulate are reported
// as in [Step].
type Aggregator interface {
	Accumulate(ctx context.Context, key string, acc []byte, in []Event) ([]byte, error)
	Merge(ctx context.Context, key string, a, b []byte) ([]byte, error)
	Finish(ctx context.Context, key string, acc []byte, w Window, out []Event) ([]Event, error)
}

// Window is the event-time window [Start, End), in nanoseconds since the
// Unix epoch, that an aggregate's results are for.
type Window struct {
	Start, End int64
}

// EventError is one event a step could not process.
type EventError struct {
	Index   int    // position of the event in the step's input
	Code    uint32 // the step's own code; 0 when it has none
	Message string
}

// EventErrors reports the events of a batch that a step could not process,
// in input order; the step's other outputs are valid.
type EventErrors struct {
	Step   string
	Errors []EventError
}

func (e *EventErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "step[%s]: %d event(s) failed", e.Step, len(e.Errors))
	for i, ee := range e.Errors {
		if i == 3 {
			fmt.Fprintf(&b, "; ...")
			break
		}
		fmt.Fprintf(&b, "; event[%d]", ee.Index)
		if ee.Code != 0 {
			fmt.Fprintf(&b, " code %d", ee.Code)
		}
		fmt.Fprintf(&b, ": %s", ee.Message)
	}
	return b.String()
}

// FilterStep is a native Step that keeps the events f matches.
type FilterStep struct {
	Filter EventFilter
}

// Process implements [Step].
func (s FilterStep) Process(_ context.Context, in []Event, out []Event) ([]Event, error) {
	for i := range in {
		if s.Filter.Match(&in[i]) {
			out = append(out, in[i])
		}
	}
	return out, nil
}

// MapStep is a native Step that calls Map for each event; Map appends its
// outputs (zero or more) to out and returns it. An error fails that event
// alone, and what Map appended for it is dropped.
type MapStep struct {
	Name string
	Map  func(e *Event, out []Event) ([]Event, error)
}

// Process implements [Step].
func (s MapStep) Process(_ context.Context, in []Event, out []Event) ([]Event, error) {
	var errs *EventErrors
	for i := range in {
		n := len(out)
		var err error
		out, err = s.Map(&in[i], out)
		if err != nil {
			out = out[:n]
			if errs == nil {
				errs = &EventErrors{Step: s.Name}
			}
			errs.Errors = append(errs.Errors, EventError{Index: i, Message: err.Error()})
		}
	}
	if errs != nil {
		return out, errs
	}
	return out, nil
}
