package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newHost returns a Host sharing the user's compilation cache (so Go
// plugins compile once per machine) and logging into a buffer.
func newHost(t testing.TB) (*host.Host, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	h, err := host.New(host.Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h, logs
}

func load(t testing.TB, h *host.Host, name string, cfg host.StepConfig) *host.Plugin {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = name
	}
	p, err := h.LoadFile(context.Background(), plugintest.Path(t, name), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func TestLoadRefusesBadModules(t *testing.T) {
	h, _ := newHost(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		plugin  string // a test plugin, or "" to use wasm
		wasm    []byte
		cfg     host.StepConfig
		want    error
		message string
	}{
		{name: "not wasm", wasm: []byte("\x00asm but not really"), want: host.ErrInvalidModule},
		{name: "wrong major version", plugin: "wat/wrong_version", want: host.ErrABIVersion, message: "speaks ABI 2.0, this host speaks 1.0"},
		{name: "newer minor version", plugin: "wat/newer_minor", want: host.ErrABIVersion, message: "speaks ABI 1.7"},
		{name: "no step export", plugin: "wat/missing_export", want: host.ErrMissingExport, message: "no step exports"},
		{name: "no alloc", plugin: "wat/missing_alloc", want: host.ErrMissingExport, message: "aegis_alloc"},
		{name: "wrong signature", plugin: "wat/bad_signature", want: host.ErrBadSignature, message: "export aegis_filter is (i32)->(i32), want (i32,i32)->(i64)"},
		{name: "foreign import", plugin: "wat/bad_import", want: host.ErrBadImport, message: "env.abort"},
		{name: "alloc returns 0", plugin: "wat/alloc_fails", want: host.ErrInstantiate, message: "returned 0"},
		{name: "sha256 pin", plugin: "wat/orders_filter", cfg: host.StepConfig{SHA256: strings.Repeat("ab", 32)}, want: host.ErrChecksum},
		{name: "wrong kind", plugin: "wat/orders_filter", cfg: host.StepConfig{Kind: abi.KindMap}, want: host.ErrKind, message: "the step is a map, the module implements filter"},
		{name: "config without aegis_init", plugin: "wat/keep_all_map", cfg: host.StepConfig{Config: []byte(`{"x":1}`)}, want: host.ErrConfig},
		{name: "Go plugin refuses config", plugin: "orders/filter", cfg: host.StepConfig{Config: []byte(`{"x":1}`)}, want: host.ErrConfig, message: "takes no configuration"},
		{name: "Go plugin of another kind", plugin: "orders/filter", cfg: host.StepConfig{Kind: abi.KindAggregate}, want: host.ErrKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wasm := tt.wasm
			if tt.plugin != "" {
				wasm = plugintest.Bytes(t, tt.plugin)
			}
			cfg := tt.cfg
			cfg.Name = "under-test"
			p, err := h.Load(ctx, wasm, cfg)
			if err == nil {
				p.Close(ctx)
				t.Fatalf("loaded; want %v", tt.want)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %q; want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "plugin[under-test]: ") || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("error %q does not name the plugin or say %q", err, tt.message)
			}
		})
	}
}

// TestMisbehavingPlugins shows that every misbehaviour ends the call with a
// typed error naming plugin, export and batch, discards the instance, and
// leaves the host working: the same step serves the next batch on a fresh
// instance.
func TestMisbehavingPlugins(t *testing.T) {
	h, _ := newHost(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		plugin  string
		limits  host.Limits
		want    error
		message string
		keeps   bool // the instance survives (a reported failure, not a fault)
	}{
		{name: "trap", plugin: "wat/trap", want: host.ErrTrap, message: "unreachable"},
		{name: "infinite loop in WAT", plugin: "wat/loop", limits: host.Limits{Timeout: 100 * time.Millisecond, Fuel: -1}, want: host.ErrDeadline, message: "longer than 100ms"},
		{name: "infinite loop in Go", plugin: "bad/loop", limits: host.Limits{Timeout: 200 * time.Millisecond, Fuel: -1}, want: host.ErrDeadline},
		{name: "infinite loop in WAT on fuel", plugin: "wat/loop", limits: host.Limits{Fuel: 1000}, want: host.ErrFuel, message: "budget of 9000 fuel (8 events)"},
		{name: "infinite loop in Go on fuel", plugin: "bad/loop", limits: host.Limits{Fuel: 1_000_000, Timeout: -1}, want: host.ErrFuel, message: "budget of 9000000 fuel"},
		{name: "memory bomb in WAT", plugin: "wat/memory_bomb", limits: host.Limits{MemoryPages: 64}, want: host.ErrTrap},
		{name: "memory bomb in Go", plugin: "bad/membomb", limits: host.Limits{MemoryPages: 512, Timeout: 10 * time.Second}, want: host.ErrTrap},
		{name: "result out of bounds", plugin: "wat/oob_result", want: host.ErrBadResult, message: "outside the module's memory"},
		{name: "garbage result", plugin: "wat/garbage_result", want: host.ErrBadResult},
		{name: "indices not increasing", plugin: "wat/bad_index_result", want: host.ErrBadResult, message: "indices must increase"},
		{name: "reported failure", plugin: "wat/status_failed", want: host.ErrFailed, message: "database unavailable", keeps: true},
	}
	in := orders.Events(8, 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := load(t, h, tt.plugin, host.StepConfig{Name: "bad", Limits: tt.limits})
			for round := 1; round <= 2; round++ {
				out, err := p.Process(ctx, in, nil)
				var ce *host.CallError
				if !errors.As(err, &ce) || !errors.Is(err, tt.want) {
					t.Fatalf("round %d: error %v (%T); want a *CallError wrapping %v", round, err, err, tt.want)
				}
				if ce.Plugin != "bad" || ce.Export != abi.ExportFilter || ce.Batch != uint64(round) {
					t.Fatalf("round %d: error names plugin %q export %q batch %d", round, ce.Plugin, ce.Export, ce.Batch)
				}
				if !strings.Contains(err.Error(), "plugin[bad] export[aegis_filter] batch[") || !strings.Contains(err.Error(), tt.message) {
					t.Fatalf("round %d: message %q", round, err)
				}
				if len(out) != 0 {
					t.Fatalf("round %d: %d outputs from a failed call", round, len(out))
				}
			}
			st := p.Stats()
			created, discarded := st.Created, st.Discarded
			if tt.keeps {
				if created != 1 || discarded != 0 {
					t.Fatalf("instances created %d, discarded %d; want 1, 0", created, discarded)
				}
			} else if created != 2 || discarded != 2 {
				// The one made at load, discarded by round 1, and a fresh one
				// for round 2, discarded too.
				t.Fatalf("instances created %d, discarded %d; want 2, 2", created, discarded)
			}
		})
	}
	// And the host still runs good plugins.
	good := load(t, h, "wat/orders_filter", host.StepConfig{})
	if out, err := good.Process(ctx, in, nil); err != nil || len(out) != 6 {
		t.Fatalf("after the misbehaviour: %d events, %v", len(out), err)
	}
}

// TestPanicGetsFreshInstance: a Go plugin that panics on one event fails
// that batch; its stderr and logs reach the host log; the next batch runs
// on a fresh instance.
func TestPanicGetsFreshInstance(t *testing.T) {
	h, logs := newHost(t)
	ctx := context.Background()
	p := load(t, h, "bad/panic", host.StepConfig{Name: "panicky"})
	in := orders.Events(4, 1)
	boom := append(append([]engine.Event{}, in...), engine.Event{Type: "boom", Data: engine.NullData(), Time: 1})
	_, err := p.Process(ctx, boom, nil)
	if !errors.Is(err, host.ErrTrap) || !strings.Contains(err.Error(), "export[aegis_map]") {
		t.Fatalf("error %v; want a trap in aegis_map", err)
	}
	out, err := p.Process(ctx, in, nil)
	if err != nil || len(out) != 4 {
		t.Fatalf("next batch: %d events, %v", len(out), err)
	}
	log := logs.String()
	for _, want := range []string{
		`level=WARN msg="about to panic" plugin=panicky`,
		`msg="stderr: going down" plugin=panicky stream=stderr`,
		`panic: boom at index 4`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestPluginLogsAtInit(t *testing.T) {
	h, logs := newHost(t)
	load(t, h, "wat/orders_filter", host.StepConfig{Name: "watty"})
	if !strings.Contains(logs.String(), `level=INFO msg="orders_filter ready" plugin=watty`) {
		t.Fatalf("log: %s", logs)
	}
}

func TestEventErrors(t *testing.T) {
	h, _ := newHost(t)
	p := load(t, h, "wat/event_errors", host.StepConfig{Name: "picky"})
	in := orders.Events(5, 1)
	out, err := p.Process(context.Background(), in, nil)
	var ee *engine.EventErrors
	if !errors.As(err, &ee) {
		t.Fatalf("error %v; want *engine.EventErrors", err)
	}
	if ee.Step != "picky" || len(ee.Errors) != 2 || ee.Errors[0] != (engine.EventError{Index: 1, Code: 7, Message: "odd"}) || ee.Errors[1].Index != 3 {
		t.Fatalf("event errors %+v", ee)
	}
	if len(out) != 3 || out[0].ID != in[0].ID || out[1].ID != in[2].ID || out[2].ID != in[4].ID {
		t.Fatalf("kept %d events", len(out))
	}
	// Failed events are not a fault of the instance: it stays in use.
	for i := 0; i < 2; i++ {
		p.Process(context.Background(), in, nil)
	}
	if st := p.Stats(); st.Created != 1 || st.Discarded != 0 {
		t.Fatalf("instances created %d, discarded %d; want 1, 0", st.Created, st.Discarded)
	}
}

// TestLogFloodIsBounded: a plugin that writes megabytes to stdout per call
// gets its per-call budget logged, the rest counted as dropped, and keeps
// its instance.
func TestLogFloodIsBounded(t *testing.T) {
	h, logs := newHost(t)
	p := load(t, h, "wat/log_flood", host.StepConfig{Name: "noisy"})
	for i := 0; i < 3; i++ {
		if _, err := p.Process(context.Background(), orders.Events(2, 1), nil); err != nil {
			t.Fatal(err)
		}
	}
	p.Close(context.Background())
	if n := strings.Count(logs.String(), `msg="plugin output over the per-call limit dropped" plugin=noisy stream=stdout bytes=4128768`); n != 3 {
		t.Fatalf("%d drop reports, want 3:\n%.2000s", n, logs)
	}
	if st := p.Stats(); st.Created != 1 || st.Discarded != 0 {
		t.Fatalf("instances created %d, discarded %d; want 1, 0", st.Created, st.Discarded)
	}
}

// TestCancelledCallerKeepsInstances: calls with a done context fail with
// the context's error before touching an instance.
func TestCancelledCallerKeepsInstances(t *testing.T) {
	h, _ := newHost(t)
	p := load(t, h, "wat/orders_filter", host.StepConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < 3; i++ {
		if _, err := p.Process(ctx, orders.Events(2, 1), nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v; want context.Canceled", err)
		}
	}
	if st := p.Stats(); st.Created != 1 || st.Discarded != 0 {
		t.Fatalf("instances created %d, discarded %d; want 1, 0", st.Created, st.Discarded)
	}
	if out, err := p.Process(context.Background(), orders.Events(4, 1), nil); err != nil || len(out) != 3 {
		t.Fatalf("then: %d events, %v", len(out), err)
	}
}

// TestCloseDuringCalls: closing a plugin while goroutines call it ends
// every call with success or ErrClosed, never anything else, and no call
// waits forever.
func TestCloseDuringCalls(t *testing.T) {
	h, _ := newHost(t)
	p := load(t, h, "wat/orders_filter", host.StepConfig{Workers: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, err := p.Process(context.Background(), orders.Events(64, 1), nil)
				if errors.Is(err, host.ErrClosed) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	p.Close(context.Background())
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("during Close: %v", err)
	}
}

// TestMapRoundTrip: a WAT map that copies its input returns events equal to
// it, of every data kind, with metadata, the metadata map shared.
func TestMapRoundTrip(t *testing.T) {
	h, _ := newHost(t)
	p := load(t, h, "wat/keep_all_map", host.StepConfig{})
	in := []engine.Event{
		{ID: engine.NewEventID(), Type: "null", Time: 1, Data: engine.NullData()},
		{ID: engine.NewEventID(), Type: "bool", Time: 2, Data: engine.BoolData(true)},
		{ID: engine.NewEventID(), Type: "int", Time: 3, Data: engine.IntData(-42)},
		{ID: engine.NewEventID(), Type: "float", Time: 4, Data: engine.FloatData(2.5)},
		{ID: engine.NewEventID(), Type: "string", Source: "ünïcødé", Time: 5, Data: engine.StringData("héllo, 世界")},
		{ID: engine.NewEventID(), Type: "bytes", Time: 6, Data: engine.BytesData([]byte{0, 0xff, 1})},
		{ID: engine.NewEventID(), Type: "json", Time: 7, Data: engine.MustJSONData(`{"a":[1,2,{"b":null}]}`),
			Metadata: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "k": "v"}},
	}
	out, err := p.Process(context.Background(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d outputs for %d inputs", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.ID != b.ID || a.Type != b.Type || a.Source != b.Source || a.Time != b.Time || !a.Data.Equal(b.Data) || len(a.Metadata) != len(b.Metadata) {
			t.Errorf("event %d: %+v became %+v", i, a, b)
		}
	}
	if m := out[6].Metadata; m["k"] != "v" {
		t.Errorf("metadata %v", m)
	}
}

// TestOrdersMatchNative: the SDK and WAT plugins give what the native steps
// give on the orders workload.
func TestOrdersMatchNative(t *testing.T) {
	h, _ := newHost(t)
	ctx := context.Background()
	in := orders.Events(1000, 1)
	check := func(name string, native, plugin engine.Step) {
		want, err := native.Process(ctx, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := plugin.Process(ctx, in, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, native %d", name, len(got), len(want))
		}
		for i := range want {
			w, g := want[i], got[i]
			if w.ID != g.ID || w.Type != g.Type || w.Source != g.Source || w.Time != g.Time || !sameJSON(t, w.Data, g.Data) {
				t.Fatalf("%s: event %d:\n got %s %s\nwant %s %s", name, i, g.Type, g.Data, w.Type, w.Data)
			}
		}
	}
	check("go filter", orders.Filter, load(t, h, "orders/filter", host.StepConfig{}))
	check("wat filter", orders.Filter, load(t, h, "wat/orders_filter", host.StepConfig{}))
	check("go map", orders.Map, load(t, h, "orders/map", host.StepConfig{}))
	check("native lazy map", orders.Map, mapLazy)
}

func sameJSON(t *testing.T, a, b engine.EventData) bool {
	var x, y any
	if a.Decode(&x) != nil || b.Decode(&y) != nil {
		return false
	}
	return equalJSON(x, y)
}

func equalJSON(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			if !equalJSON(v, bm[k]) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

func TestAggregate(t *testing.T) {
	h, _ := newHost(t)
	ctx := context.Background()
	p := load(t, h, "orders/aggregate", host.StepConfig{})
	mapped, err := load(t, h, "orders/map", host.StepConfig{}).Process(ctx, orders.Events(8, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	var paid []engine.Event
	for _, e := range mapped {
		if e.Type == "ORDER.PAID" {
			paid = append(paid, e)
		}
	}
	if len(paid) != 2 {
		t.Fatalf("%d paid events", len(paid))
	}
	a, err := p.Accumulate(ctx, "ORDER.PAID", nil, paid[:1])
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Accumulate(ctx, "ORDER.PAID", nil, paid[1:])
	if err != nil {
		t.Fatal(err)
	}
	both, err := p.Merge(ctx, "ORDER.PAID", a, b)
	if err != nil {
		t.Fatal(err)
	}
	w := engine.Window{Start: 1000, End: 2000}
	out, err := p.Finish(ctx, "ORDER.PAID", both, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Type != "order.window" || out[0].Time != 2000 {
		t.Fatalf("finish: %+v", out)
	}
	if got := string(mustJSON(t, out[0].Data)); got != `{"key":"ORDER.PAID","count":2,"sum_cents":15838,"start":1000,"end":2000}` {
		t.Fatalf("finish data %s", got)
	}
	// An empty window still has a result: count 0.
	out, err = p.Finish(ctx, "ORDER.SHIPPED", nil, w, nil)
	if err != nil || len(out) != 1 || !strings.Contains(string(mustJSON(t, out[0].Data)), `"count":0`) {
		t.Fatalf("empty window: %v %v", out, err)
	}
	// An event without amount_cents is an event error, not counted.
	raw := orders.Events(1, 1)
	acc, err := p.Accumulate(ctx, "x", a, append(raw, paid[0]))
	var ee *engine.EventErrors
	if !errors.As(err, &ee) || len(ee.Errors) != 1 || ee.Errors[0].Index != 0 || ee.Errors[0].Code != 2 {
		t.Fatalf("accumulate error %v", err)
	}
	out, _ = p.Finish(ctx, "x", acc, w, nil)
	if len(out) != 1 || !strings.Contains(string(mustJSON(t, out[0].Data)), `"count":2,"sum_cents":15838`) {
		t.Fatalf("after an event error: %s", mustJSON(t, out[0].Data))
	}
	// A filter is not an aggregate.
	if _, err := load(t, h, "orders/filter", host.StepConfig{}).Accumulate(ctx, "", nil, raw); !errors.Is(err, host.ErrKind) {
		t.Fatalf("accumulate on a filter: %v", err)
	}
}

func mustJSON(t *testing.T, d engine.EventData) []byte {
	raw, ok := d.AsJSON()
	if !ok {
		t.Fatalf("data is %s, not json", d.Kind())
	}
	return raw
}

// TestConcurrentCalls hammers one step from many goroutines: no instance is
// used twice at once (the race detector would see it), there are never more
// instances than workers, and every result is right.
func TestConcurrentCalls(t *testing.T) {
	h, _ := newHost(t)
	ctx := context.Background()
	p := load(t, h, "wat/orders_filter", host.StepConfig{Workers: 3})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out []engine.Event
			for i := 0; i < 50; i++ {
				n := 1 + (g*50+i)%64
				in := orders.Events(n, 1)
				var err error
				out, err = p.Process(ctx, in, out[:0])
				if err != nil {
					errs <- err
					return
				}
				want := n - (n+1)/4 // every fourth event, from the third, is a refund
				if len(out) != want {
					errs <- errors.New("wrong number of events kept")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if created := p.Stats().Created; created > 3 {
		t.Fatalf("%d instances for 3 workers", created)
	}
}

func TestClosedPlugin(t *testing.T) {
	h, _ := newHost(t)
	p := load(t, h, "wat/orders_filter", host.StepConfig{})
	p.Close(context.Background())
	if _, err := p.Process(context.Background(), orders.Events(1, 1), nil); !errors.Is(err, host.ErrClosed) {
		t.Fatalf("error %v", err)
	}
}

// TestCallerCancellation: a caller's cancelled context is reported as
// such, not as the plugin's fault.
func TestCallerCancellation(t *testing.T) {
	h, _ := newHost(t)
	p := load(t, h, "wat/loop", host.StepConfig{Limits: host.Limits{Timeout: time.Minute, Fuel: -1}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Process(ctx, orders.Events(1, 1), nil)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, host.ErrDeadline) {
		t.Fatalf("error %v; want the caller's context.DeadlineExceeded", err)
	}
}

// TestHostAllocationsDoNotGrowWithBatch: what the host allocates per call
// does not depend on the number of events (zero per event).
func TestHostAllocationsDoNotGrowWithBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	h, _ := newHost(t)
	p := load(t, h, "wat/orders_filter", host.StepConfig{Limits: host.Limits{Timeout: -1}})
	ctx := context.Background()
	allocs := func(n int) float64 {
		in := orders.Events(n, 1)
		out := make([]engine.Event, 0, n)
		return testing.AllocsPerRun(20, func() { out, _ = p.Process(ctx, in, out[:0]) })
	}
	small, large := allocs(16), allocs(4096)
	if large > small+1 {
		t.Fatalf("allocations per call: %v at 16 events, %v at 4096", small, large)
	}
}

func TestCompilationCacheOnDisk(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		h, err := host.New(host.Options{CacheDir: dir, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		p, err := h.LoadFile(ctx, plugintest.Path(t, "wat/orders_filter"), host.StepConfig{})
		if err != nil {
			t.Fatal(err)
		}
		p.Close(ctx)
		h.Close(ctx)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("cache directory is empty (%v)", err)
	}
	// The rewritten module is cached too, and a corrupt entry is rewritten
	// again.
	rewritten, err := filepath.Glob(filepath.Join(dir, "metered", "*.wasm"))
	if err != nil || len(rewritten) != 1 {
		t.Fatalf("rewritten modules cached: %v (%v)", rewritten, err)
	}
	if err := os.WriteFile(rewritten[0], []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := host.New(host.Options{CacheDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	p, err := h.LoadFile(ctx, plugintest.Path(t, "wat/orders_filter"), host.StepConfig{})
	if err != nil {
		t.Fatalf("after a corrupt cache entry: %v", err)
	}
	p.Close(ctx)
	if b, err := os.ReadFile(rewritten[0]); err != nil || string(b) == "garbage" {
		t.Fatalf("the corrupt entry was not replaced (%v)", err)
	}
}

func TestInspect(t *testing.T) {
	h, _ := newHost(t)
	info, err := h.Inspect(context.Background(), plugintest.Bytes(t, "orders/filter"), host.StepConfig{Name: "f"})
	if err != nil {
		t.Fatal(err)
	}
	if info.ABIVersion != abi.Version || info.Kinds != abi.KindFilter || len(info.SHA256) != 64 || info.Size == 0 {
		t.Fatalf("info %+v", info)
	}
	joined := strings.Join(info.Exports, " ") + " " + strings.Join(info.Imports, " ")
	for _, want := range []string{"aegis_filter(i32,i32)->(i64)", "aegis_alloc(i32)->(i32)", "wasi_snapshot_preview1.fd_write"} {
		if !strings.Contains(joined, want) {
			t.Errorf("exports and imports lack %s: %s", want, joined)
		}
	}
}

// TestHammerFailuresAndSuccesses: many goroutines share a Go plugin with
// two workers, and a third of their batches make it panic. Every good batch
// succeeds, every bad one fails with a trap, the pool never holds more than
// two instances, and none is lost: the step still serves when it is over.
func TestHammerFailuresAndSuccesses(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	h, _ := newHost(t)
	p := load(t, h, "bad/panic", host.StepConfig{Workers: 2})
	good := orders.Events(16, 1)
	bad := append(orders.Events(3, 1), engine.Event{Type: "boom", Data: engine.NullData(), Time: 1})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 6; i++ {
				in, wantErr := good, false
				if (g+i)%3 == 0 {
					in, wantErr = bad, true
				}
				out, err := p.Process(context.Background(), in, nil)
				switch {
				case wantErr && !errors.Is(err, host.ErrTrap):
					errs <- fmt.Errorf("bad batch: %v", err)
				case !wantErr && (err != nil || len(out) != len(in)):
					errs <- fmt.Errorf("good batch: %d events, %v", len(out), err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := p.Stats()
	created, discarded := st.Created, st.Discarded
	if live := created - discarded; live > 2 {
		t.Fatalf("%d instances live for 2 workers (created %d, discarded %d)", live, created, discarded)
	}
	if discarded != 8 {
		t.Errorf("discarded %d instances for 8 panics", discarded)
	}
	if out, err := p.Process(context.Background(), good, nil); err != nil || len(out) != len(good) {
		t.Fatalf("after the hammer: %d events, %v", len(out), err)
	}
}

// TestRefusedInputKeepsInstance: a batch the host will not hand to the
// module (larger than half the step's memory) fails with ErrInput before
// the module sees it, and the instance stays in use.
func TestRefusedInputKeepsInstance(t *testing.T) {
	h, _ := newHost(t)
	p := load(t, h, "wat/orders_filter", host.StepConfig{Limits: host.Limits{MemoryPages: 2}})
	_, err := p.Process(context.Background(), orders.Events(400, 1), nil)
	if !errors.Is(err, host.ErrInput) || !strings.Contains(err.Error(), "does not fit in the step's memory") {
		t.Fatalf("error %v; want ErrInput", err)
	}
	if out, err := p.Process(context.Background(), orders.Events(4, 1), nil); err != nil || len(out) != 3 {
		t.Fatalf("then: %d events, %v", len(out), err)
	}
	if st := p.Stats(); st.Created != 1 || st.Discarded != 0 {
		t.Fatalf("instances created %d, discarded %d; want 1, 0", st.Created, st.Discarded)
	}
}
