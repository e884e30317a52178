package host_test

import (
	"cmp"
	"context"
	"errors"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// spin returns a batch for testplugins/wat/spin.wat: one event per time,
// which tells the plugin what to do (see its header).
func spin(times ...int64) []engine.Event {
	in := orders.Events(len(times), 1)
	for i, t := range times {
		in[i].Time = t
	}
	return in
}

// TestLimitsStopRunawayCode: every kind of endless loop is ended by the
// deadline alone, by the fuel budget alone, and by the defaults; the error
// is typed and names the limit; the host stays up and the next batch runs
// on a fresh instance.
func TestLimitsStopRunawayCode(t *testing.T) {
	h, _ := newHost(t)
	ctx := context.Background()
	loops := []struct {
		name string
		time int64
		deep bool // recursion: a stack overflow may come first
	}{
		{"tight", -1, false},
		{"nested", -2, false},
		{"recursion", -3, true},
		{"call_indirect", -4, true},
	}
	limits := []struct {
		name   string
		limits host.Limits
		want   error
	}{
		{"deadline", host.Limits{Timeout: 50 * time.Millisecond, Fuel: -1}, host.ErrDeadline},
		{"fuel", host.Limits{Timeout: -1, Fuel: 5_000_000}, host.ErrFuel},
		{"defaults", host.Limits{}, nil}, // whichever comes first
	}
	for _, l := range loops {
		for _, lim := range limits {
			t.Run(l.name+"/"+lim.name, func(t *testing.T) {
				p := load(t, h, "wat/spin", host.StepConfig{Name: "spin", Limits: lim.limits})
				fuel, timeout := cmp.Or(lim.limits.Fuel, host.DefaultFuel), cmp.Or(lim.limits.Timeout, host.DefaultTimeout)
				start := time.Now()
				_, err := p.Process(ctx, spin(5, l.time, 7), nil)
				elapsed := time.Since(start)
				t.Logf("%s: %v", elapsed, err)
				var le *host.LimitError
				var ce *host.CallError
				switch {
				case !errors.As(err, &ce) || ce.Plugin != "spin" || ce.Export != "aegis_filter" || ce.Batch != 1:
					t.Fatalf("error %v: want a *CallError naming plugin, export and batch", err)
				case l.deep && errors.Is(err, host.ErrTrap) && strings.Contains(err.Error(), "stack overflow"):
					// The stack ran out before the limit: a trap all the same.
				case !errors.As(err, &le):
					t.Fatalf("error %v (%T): want a *LimitError", err, err)
				case lim.want != nil && le.Err != lim.want:
					t.Fatalf("error %v: want %v", err, lim.want)
				case le.Err == host.ErrFuel && (le.Budget != 4*fuel || le.Events != 3):
					t.Fatalf("error %v: budget %d for %d events, want %d for 3", err, le.Budget, le.Events, 4*fuel)
				case le.Err == host.ErrDeadline && le.Timeout != timeout:
					t.Fatalf("error %v: timeout %s, want %s", err, le.Timeout, timeout)
				}
				if elapsed > 5*time.Second {
					t.Errorf("the call took %s", elapsed)
				}
				// The host is up and a fresh instance serves the next batch.
				if _, err := p.Process(ctx, spin(3, 2, 1), nil); err != nil {
					t.Fatalf("the next batch: %v", err)
				}
				if st := p.Stats(); st.Created != 2 || st.Discarded != 1 {
					t.Errorf("instances created %d, discarded %d; want 2, 1", st.Created, st.Discarded)
				}
			})
		}
	}
}

// fuelOf runs one batch and returns the fuel it used.
func fuelOf(t *testing.T, p *host.Plugin, in []engine.Event) (uint64, error) {
	t.Helper()
	before := p.Stats().Fuel
	_, err := p.Process(context.Background(), in, nil)
	return p.Stats().Fuel - before, err
}

// TestFuelIsDeterministic: the same input costs the same fuel on the same
// instance, on a fresh one and in another plugin; a long but finite loop
// passes a budget above its cost and always fails one below.
func TestFuelIsDeterministic(t *testing.T) {
	h, _ := newHost(t)
	unlimited := host.StepConfig{Limits: host.Limits{Fuel: math.MaxInt64 / 4, Timeout: -1}}
	p := load(t, h, "wat/spin", unlimited)
	in := spin(100_000)
	cost, err := fuelOf(t, p, in)
	if err != nil {
		t.Fatal(err)
	}
	if cost < 100_000 {
		t.Fatalf("100,000 iterations cost %d fuel", cost)
	}
	for i := range 3 {
		if again, err := fuelOf(t, p, in); err != nil || again != cost {
			t.Fatalf("run %d: %d fuel (%v), first %d", i, again, err, cost)
		}
	}
	if again, _ := fuelOf(t, load(t, h, "wat/spin", unlimited), in); again != cost {
		t.Fatalf("another plugin: %d fuel, first %d", again, cost)
	}

	// A budget of Fuel x (events + 1): with one event, 2 x Fuel.
	under := load(t, h, "wat/spin", host.StepConfig{Limits: host.Limits{Fuel: int64(cost+1) / 2, Timeout: -1}})
	over := load(t, h, "wat/spin", host.StepConfig{Limits: host.Limits{Fuel: int64(cost-2) / 2, Timeout: -1}})
	for i := range 3 {
		if _, err := fuelOf(t, under, in); err != nil {
			t.Fatalf("run %d: a budget of %d failed a call costing %d: %v", i, 2*((cost+1)/2), cost, err)
		}
		if _, err := fuelOf(t, over, in); !errors.Is(err, host.ErrFuel) {
			t.Fatalf("run %d: a budget of %d, a call costing %d: %v, want fuel exhausted", i, 2*((cost-2)/2), cost, err)
		}
	}

	// A Go plugin: the same sequence of batches costs the same fuel call
	// by call, in two plugins (the Go runtime's collector included).
	seq := func() []uint64 {
		p := load(t, h, "orders/map", host.StepConfig{})
		var fuel []uint64
		for i := range 30 {
			f, err := fuelOf(t, p, orders.Events(1+i*7, 1))
			if err != nil {
				t.Fatal(err)
			}
			fuel = append(fuel, f)
		}
		return fuel
	}
	if a, b := seq(), seq(); !slices.Equal(a, b) {
		t.Fatalf("the Go map's fuel differs between two runs:\n%v\n%v", a, b)
	}
}

// TestNoLimitsStillMetered: with neither limit a step still counts fuel
// and reaches its checkpoints, so a collection completes while the step
// runs a long call.
func TestNoLimitsStillMetered(t *testing.T) {
	h, _ := newHost(t)
	p := load(t, h, "wat/spin", host.StepConfig{Limits: host.Limits{Fuel: -1, Timeout: -1}})
	if f, err := fuelOf(t, p, spin(1000)); err != nil || f == 0 {
		t.Fatalf("fuel %d, %v", f, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := p.Process(ctx, spin(-1), nil) // forever, until cancelled
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	runtime.GC() // waits for every goroutine to reach a safe point
	select {
	case err := <-done:
		t.Fatalf("the endless call returned: %v", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want the caller's cancellation", err)
	}
}

// TestUnsupportedModuleRefused: a module the rewriter cannot instrument is
// refused at load with the plugin, the function and the instruction named.
func TestUnsupportedModuleRefused(t *testing.T) {
	h, _ := newHost(t)
	threads := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00,
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
		0x03, 0x02, 0x01, 0x00, // function 0 of type 0
		0x0a, 0x07, 0x01, 0x05, 0x00, 0xfe, 0x03, 0x00, 0x0b, // atomic.fence
	}
	_, err := h.Load(context.Background(), threads, host.StepConfig{Name: "threaded"})
	if !errors.Is(err, host.ErrUnsupported) {
		t.Fatalf("error %v, want ErrUnsupported", err)
	}
	for _, want := range []string{"plugin[threaded]", "function[0]", "instruction 0xfe (threads) is not supported"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestStartFunctionRunsOnFuel: a WebAssembly start function runs while the
// module is instantiated, before any deadline can reach it; an endless one
// runs out of its fuel and the plugin is refused.
func TestStartFunctionRunsOnFuel(t *testing.T) {
	h, _ := newHost(t)
	_, err := h.LoadFile(context.Background(), plugintest.Path(t, "wat/start_loop"), host.StepConfig{Name: "start"})
	if !errors.Is(err, host.ErrInstantiate) || !errors.Is(err, host.ErrFuel) || !strings.Contains(err.Error(), "plugin[start]") {
		t.Fatalf("error %v; want the start function out of fuel", err)
	}
}
