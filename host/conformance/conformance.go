// Package conformance checks a WebAssembly plugin against the aegis ABI
// (abi/ABI.md), whatever language it was written in: that the host loads
// it (version, exports, signatures, imports, kinds, the handshake), and
// that each step kind it implements behaves as the ABI requires on empty
// batches, large batches, large events, unicode, binary and every data
// kind, repeated calls on one instance, and, for aggregates, merges that
// agree with accumulating everything at once.
//
// It cannot know what a plugin is meant to compute; it checks what every
// plugin owes the host: no trap, no bad result, no call that fails as a
// whole on input it can be given, the same output for the same input, an
// instance that outlives its calls and its events' failures. Failures of
// single events (per-event errors) are a plugin's right and pass.
//
// aegis-host plugin test FILE runs it.
package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/internal/orders"
)

// Options configure a run of the suite.
type Options struct {
	// Name names the plugin in the report and in errors.
	Name string
	// Config is the JSON object the plugin's aegis_init gets; nil: {}.
	Config []byte
	// Limits are the steps' limits. A zero Fuel means none and a zero
	// Timeout 5s: the suite checks what the ABI requires, not whether
	// the work fits the host's default budget (a Go plugin's map of a
	// 1 MiB event needs twice the default fuel of an event).
	Limits host.Limits
}

// Result is the outcome of one check.
type Result struct {
	// Name says what was checked: "load", "filter: empty batch", ...
	Name string
	// Err is why it failed; nil when it passed.
	Err error
	// Note says more about a check that passed (per-event errors seen).
	Note string
	// Took is how long it ran.
	Took time.Duration
}

// Report is the outcome of the suite for one module.
type Report struct {
	Plugin string
	// Info describes the module; zero when it did not load.
	Info    host.Info
	Results []Result
}

// Passed reports whether every check passed.
func (r *Report) Passed() bool {
	for _, c := range r.Results {
		if c.Err != nil {
			return false
		}
	}
	return len(r.Results) > 0
}

// Failed returns the checks that failed.
func (r *Report) Failed() []Result {
	var out []Result
	for _, c := range r.Results {
		if c.Err != nil {
			out = append(out, c)
		}
	}
	return out
}

// Write prints the report, one line per check.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", r.Plugin)
	if r.Info.SHA256 != "" {
		fmt.Fprintf(&b, ": ABI %s, kinds %s, %d bytes", abi.VersionString(r.Info.ABIVersion), r.Info.Kinds, r.Info.Size)
	}
	b.WriteString("\n")
	for _, c := range r.Results {
		status := "ok  "
		if c.Err != nil {
			status = "FAIL"
		}
		fmt.Fprintf(&b, "  %s  %-40s %8s", status, c.Name, c.Took.Round(time.Millisecond))
		switch {
		case c.Err != nil:
			fmt.Fprintf(&b, "  %v", c.Err)
		case c.Note != "":
			fmt.Fprintf(&b, "  (%s)", c.Note)
		}
		b.WriteString("\n")
	}
	if failed := len(r.Failed()); failed > 0 {
		fmt.Fprintf(&b, "%d of %d checks failed\n", failed, len(r.Results))
	} else {
		fmt.Fprintf(&b, "all %d checks passed\n", len(r.Results))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Run runs the suite against wasm with h.
func Run(ctx context.Context, h *host.Host, wasm []byte, opts Options) *Report {
	if opts.Name == "" {
		opts.Name = "plugin"
	}
	if opts.Limits.Fuel == 0 {
		opts.Limits.Fuel = -1
	}
	if opts.Limits.Timeout == 0 {
		opts.Limits.Timeout = 5 * time.Second
	}
	r := &Report{Plugin: opts.Name}
	start := time.Now()
	info, err := h.Inspect(ctx, wasm, host.StepConfig{Name: opts.Name, Config: opts.Config, Limits: opts.Limits})
	r.add(Result{Name: "load", Err: err, Took: time.Since(start)})
	if err != nil {
		return r
	}
	r.Info = info
	for _, k := range []abi.Kind{abi.KindFilter, abi.KindMap, abi.KindAggregate} {
		if info.Kinds&k == 0 {
			continue
		}
		start := time.Now()
		p, err := h.Load(ctx, wasm, host.StepConfig{Name: opts.Name, Kind: k, Config: opts.Config, Limits: opts.Limits})
		r.add(Result{Name: k.String() + ": instantiate", Err: err, Took: time.Since(start)})
		if err != nil {
			continue
		}
		s := &suite{ctx: ctx, p: p, r: r, kind: k}
		if k == abi.KindAggregate {
			s.aggregate()
		} else {
			s.step()
		}
		p.Close(ctx)
	}
	return r
}

func (r *Report) add(c Result) { r.Results = append(r.Results, c) }

// suite runs the checks of one kind on one loaded plugin.
type suite struct {
	ctx  context.Context
	p    *host.Plugin
	r    *Report
	kind abi.Kind
	// stuck is set when a call ran past its deadline: the kind's other
	// checks are not run, each would wait as long.
	stuck bool
}

// check runs one check; a panic in it (a bug of the suite or the host) is
// its failure, not the caller's.
func (s *suite) check(name string, f func() (note string, err error)) {
	if s.stuck {
		s.r.add(Result{Name: s.kind.String() + ": " + name, Err: errors.New("not run: a call ran past its deadline")})
		return
	}
	start := time.Now()
	var note string
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("panic: %v", v)
			}
		}()
		note, err = f()
		return err
	}()
	s.stuck = errors.Is(err, host.ErrDeadline)
	s.r.add(Result{Name: s.kind.String() + ": " + name, Err: err, Note: note, Took: time.Since(start)})
}

// process runs a filter or map batch. Per-event errors are allowed: it
// returns their count.
func (s *suite) process(in []engine.Event) ([]engine.Event, int, error) {
	out, err := s.p.Process(s.ctx, in, nil)
	return eventErrors(out, err)
}

func eventErrors[T any](v T, err error) (T, int, error) {
	var ee *engine.EventErrors
	if errors.As(err, &ee) {
		for _, e := range ee.Errors {
			if e.Message == "" {
				return v, 0, fmt.Errorf("event %d failed without a message (code %d)", e.Index, e.Code)
			}
		}
		return v, len(ee.Errors), nil
	}
	return v, 0, err
}

func noted(failed int) string {
	if failed == 0 {
		return ""
	}
	return fmt.Sprintf("%d per-event errors", failed)
}

// lasted checks that the calls since before ran on the instance there was:
// none was created or discarded.
func (s *suite) lasted(before host.Stats) error {
	after := s.p.Stats()
	if after.Created != before.Created || after.Discarded != before.Discarded {
		return fmt.Errorf("instances created %d and discarded %d during the calls: the instance did not last",
			after.Created-before.Created, after.Discarded-before.Discarded)
	}
	return nil
}

// step checks a filter or a map.
func (s *suite) step() {
	ordersIn := ordersBatch(256, 0)
	var first []engine.Event
	s.check("empty batch", func() (string, error) {
		out, err := s.p.Process(s.ctx, nil, nil)
		if err == nil && len(out) > 0 {
			return "", fmt.Errorf("%d events out of an empty batch", len(out))
		}
		return "", err
	})
	s.check("orders batch", func() (string, error) {
		out, failed, err := s.process(ordersIn)
		first = out
		if err == nil && s.kind == abi.KindFilter {
			err = subset(out, ordersIn)
		}
		return noted(failed), err
	})
	s.check("same input, same output", func() (string, error) {
		for range 3 {
			out, _, err := s.process(ordersIn)
			if err != nil {
				return "", err
			}
			if err := sameEvents(out, first); err != nil {
				return "", err
			}
		}
		return "", nil
	})
	s.check("1000 calls on one instance", func() (string, error) {
		before := s.p.Stats()
		for i := range 1000 {
			if _, _, err := s.process(ordersIn[i%200 : i%200+50]); err != nil {
				return "", fmt.Errorf("call %d: %w", i+1, err)
			}
		}
		return "", s.lasted(before)
	})
	s.check("large batch (10,000 events)", func() (string, error) {
		_, failed, err := s.process(ordersBatch(10000, 1))
		return noted(failed), err
	})
	s.check("large event (1 MiB)", func() (string, error) {
		_, failed, err := s.process(largeEvents())
		return noted(failed), err
	})
	s.check("unicode", func() (string, error) {
		_, failed, err := s.process(unicodeEvents())
		return noted(failed), err
	})
	s.check("binary and every data kind", func() (string, error) {
		_, failed, err := s.process(kindEvents())
		return noted(failed), err
	})
	s.check("after event errors", func() (string, error) {
		if _, _, err := s.process(kindEvents()); err != nil {
			return "", err
		}
		out, _, err := s.process(ordersIn)
		if err != nil {
			return "", err
		}
		return "", sameEvents(out, first)
	})
}

// aggregate checks an aggregate: accumulate, merge and finish.
func (s *suite) aggregate() {
	const key = "ORDER.PAID"
	w := engine.Window{Start: 1767225600000000000, End: 1767225601000000000}
	in := ordersBatch(256, 0)
	var all []byte
	var want []engine.Event
	s.check("accumulate from empty state", func() (string, error) {
		acc, failed, err := eventErrors(s.p.Accumulate(s.ctx, key, nil, in))
		all = acc
		return noted(failed), err
	})
	s.check("empty batch", func() (string, error) {
		acc, err := s.p.Accumulate(s.ctx, key, all, nil)
		if err != nil {
			return "", err
		}
		a, err := s.p.Finish(s.ctx, key, acc, w, nil)
		if err != nil {
			return "", err
		}
		b, err := s.p.Finish(s.ctx, key, all, w, nil)
		if err != nil {
			return "", err
		}
		return "", sameEvents(a, b)
	})
	s.check("finish", func() (string, error) {
		out, err := s.p.Finish(s.ctx, key, all, w, nil)
		want = out
		return "", err
	})
	s.check("same input, same output", func() (string, error) {
		acc, _, err := eventErrors(s.p.Accumulate(s.ctx, key, nil, in))
		if err != nil {
			return "", err
		}
		out, err := s.p.Finish(s.ctx, key, acc, w, nil)
		if err != nil {
			return "", err
		}
		return "", sameEvents(out, want)
	})
	s.check("merge agrees with one accumulation", func() (string, error) {
		// In three parts, merged in two orders: as the host merges the
		// windows of a session, or the partial states of workers.
		var parts [3][]byte
		for i := range parts {
			acc, _, err := eventErrors(s.p.Accumulate(s.ctx, key, nil, in[i*len(in)/3:(i+1)*len(in)/3]))
			if err != nil {
				return "", err
			}
			parts[i] = acc
		}
		ab, err := s.p.Merge(s.ctx, key, parts[0], parts[1])
		if err != nil {
			return "", err
		}
		left, err := s.p.Merge(s.ctx, key, ab, parts[2])
		if err != nil {
			return "", err
		}
		bc, err := s.p.Merge(s.ctx, key, parts[1], parts[2])
		if err != nil {
			return "", err
		}
		right, err := s.p.Merge(s.ctx, key, parts[0], bc)
		if err != nil {
			return "", err
		}
		for _, acc := range [][]byte{left, right} {
			out, err := s.p.Finish(s.ctx, key, acc, w, nil)
			if err != nil {
				return "", err
			}
			if err := sameEvents(out, want); err != nil {
				return "", fmt.Errorf("merged parts finish differently from one accumulation: %w", err)
			}
		}
		return "", nil
	})
	s.check("accumulate in steps", func() (string, error) {
		var acc []byte
		for i := 0; i < len(in); i += 10 {
			var err error
			if acc, _, err = eventErrors(s.p.Accumulate(s.ctx, key, acc, in[i:min(i+10, len(in))])); err != nil {
				return "", err
			}
		}
		out, err := s.p.Finish(s.ctx, key, acc, w, nil)
		if err != nil {
			return "", err
		}
		return "", sameEvents(out, want)
	})
	for _, c := range []struct {
		name string
		in   func() []engine.Event
	}{
		{"large batch (10,000 events)", func() []engine.Event { return ordersBatch(10000, 1) }},
		{"large event (1 MiB)", largeEvents},
		{"unicode", unicodeEvents},
		{"binary and every data kind", kindEvents},
	} {
		s.check(c.name, func() (string, error) {
			acc, failed, err := eventErrors(s.p.Accumulate(s.ctx, key, nil, c.in()))
			if err != nil {
				return "", err
			}
			_, err = s.p.Finish(s.ctx, "ключ ✓", acc, w, nil)
			return noted(failed), err
		})
	}
	s.check("1000 calls on one instance", func() (string, error) {
		before := s.p.Stats()
		var acc []byte
		for i := range 1000 {
			var err error
			if acc, _, err = eventErrors(s.p.Accumulate(s.ctx, key, acc, in[i%200:i%200+50])); err != nil {
				return "", fmt.Errorf("call %d: %w", i+1, err)
			}
		}
		if _, err := s.p.Finish(s.ctx, key, acc, w, nil); err != nil {
			return "", err
		}
		return "", s.lasted(before)
	})
}

// ordersBatch is n events of the orders workload, mapped as the orders
// map would (so that an aggregate finds amount_cents), from the seed-th
// series.
func ordersBatch(n int, seed int64) []engine.Event {
	start := int64(1767225600000000000) + seed*int64(time.Hour)
	raw := make([]engine.Event, n)
	for i := range raw {
		raw[i] = orders.Generated(int64(i), start, int64(time.Millisecond))
	}
	mapped, err := orders.Map.Process(context.Background(), raw, nil)
	if err != nil {
		panic(err) // the workload is ours
	}
	// The raw and the mapped events both: a filter and a map get orders,
	// an aggregate gets what a map made of them.
	out := make([]engine.Event, 0, n)
	for i := range n {
		if i%2 == 0 {
			out = append(out, raw[i])
		} else {
			out = append(out, mapped[min(i, len(mapped)-1)])
		}
	}
	return out
}

// largeEvents is one event with a payload of 1 MiB, a JSON object with the
// orders fields and a long string.
func largeEvents() []engine.Event {
	e := orders.Generated(0, 1767225600000000000, 1)
	doc := map[string]any{"type": "order.created", "source": e.Source, "amount": 12.5, "amount_cents": 1250,
		"note": strings.Repeat("0123456789abcdef", 1<<16)}
	b, _ := json.Marshal(doc)
	e.Data = engine.MustJSONData(string(b))
	return []engine.Event{e}
}

// unicodeEvents have non-ASCII text everywhere text goes.
func unicodeEvents() []engine.Event {
	var out []engine.Event
	for i, s := range []string{"заказ", "注文", "طلب", "🛒✓", "e\u0301", "\u2028\u2029", "\\\"quoted\"", "tab\there"} {
		e := orders.Generated(int64(i), 1767225600000000000, 1)
		e.Type = engine.EventType("order." + fmt.Sprint(i))
		e.Source = "urn:shop:" + s + ":eu-west-1:" + s
		b, _ := json.Marshal(map[string]any{"type": "order.created." + s, "source": e.Source, "amount": 1.5, "amount_cents": 150, s: s})
		e.Data = engine.MustJSONData(string(b))
		e.Metadata = map[string]string{s: s, "k": s}
		out = append(out, e)
	}
	return out
}

// kindEvents have every kind of data: null, bool, int, float, string,
// bytes (all 256 byte values, and invalid UTF-8) and JSON that is not an
// object.
func kindEvents() []engine.Event {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	data := []engine.EventData{engine.NullData(), engine.BoolData(true), engine.IntData(-1 << 63), engine.FloatData(-0.5),
		engine.StringData("not json {"), engine.BytesData(all), engine.BytesData([]byte{0xff, 0xfe, 0x00}), engine.BytesData(nil),
		engine.MustJSONData(`[1,2,3]`), engine.MustJSONData(`"text"`), engine.MustJSONData(`{"amount":"12"}`), engine.MustJSONData(`{}`)}
	out := make([]engine.Event, len(data))
	for i, d := range data {
		e := orders.Generated(int64(i), 1767225600000000000, 1)
		e.Data = d
		out[i] = e
	}
	return out
}

// subset checks that a filter's output is events of its input, in order.
func subset(out, in []engine.Event) error {
	j := 0
	for _, e := range out {
		for j < len(in) && in[j].ID != e.ID {
			j++
		}
		if j == len(in) {
			return fmt.Errorf("the filter's output has event %s, not of its input in order", e.ID)
		}
		j++
	}
	return nil
}

// sameEvents compares two outputs, but for their IDs: the host gives an
// output without one a new one.
func sameEvents(a, b []engine.Event) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d events out, then %d", len(a), len(b))
	}
	for i := range a {
		ea, eb := a[i], b[i]
		ea.ID, eb.ID = engine.EventID{}, engine.EventID{}
		x, _ := json.Marshal(ea)
		y, _ := json.Marshal(eb)
		if !slices.Equal(x, y) {
			return fmt.Errorf("event %d differs:\n  %s\n  %s", i, x, y)
		}
	}
	return nil
}
