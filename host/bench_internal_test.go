package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// BenchmarkEmptyCall is the host's overhead per call: an empty batch
// encoded, the export called, its result bounds-checked and parsed, for
// the module as compiled and metered (the default).
func BenchmarkEmptyCall(b *testing.B) {
	for _, bc := range []struct {
		name   string
		plugin string
		cfg    StepConfig
	}{
		{"wat/raw", "wat/orders_filter", StepConfig{interrupt: rawModule}},
		{"wat/metered", "wat/orders_filter", StepConfig{}},
		{"go/raw", "orders/filter", StepConfig{interrupt: rawModule}},
		{"go/metered", "orders/filter", StepConfig{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := loadInternal(b, bc.plugin, bc.cfg)
			inst := <-p.idle
			defer func() { p.idle <- inst }()
			ctx := context.Background()
			write := func(dst []byte) { abi.PutBatchHeader(dst, 0) }
			b.ReportAllocs()
			for b.Loop() {
				if _, err := inst.call(ctx, abi.ExportFilter, 1, abi.BatchHeaderSize, write, abi.BodyIndices, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInstance reports the memory of one instance (its linear memory
// after the ABI handshake) and the time to make one.
func BenchmarkInstance(b *testing.B) {
	for _, name := range []string{"wat/orders_filter", "orders/filter", "orders/map"} {
		b.Run(name, func(b *testing.B) {
			p := loadInternal(b, name, StepConfig{})
			ctx := context.Background()
			var size uint32
			for b.Loop() {
				inst, err := p.newInstance(ctx)
				if err != nil {
					b.Fatal(err)
				}
				size = inst.mem.Size()
				inst.close(ctx)
			}
			b.ReportMetric(float64(size)/(1<<20), "MiB/instance")
		})
	}
}

// BenchmarkLoad is the time to load a plugin (compile, check, make the
// first instance) in a new Host: cold, with an empty compilation cache, and
// from a cache a previous load filled.
func BenchmarkLoad(b *testing.B) {
	for _, name := range []string{"wat/orders_filter", "orders/filter"} {
		wasm := plugintest.Bytes(b, name)
		for _, cached := range []bool{false, true} {
			mode := "cold"
			if cached {
				mode = "cached"
			}
			b.Run(name+"/"+mode, func(b *testing.B) {
				dir := b.TempDir()
				ctx := context.Background()
				loadOnce := func(dir string) {
					h, err := New(Options{CacheDir: dir, Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						b.Fatal(err)
					}
					p, err := h.Load(ctx, wasm, StepConfig{})
					if err != nil {
						b.Fatal(err)
					}
					p.Close(ctx)
					h.Close(ctx)
				}
				if cached {
					loadOnce(dir)
				}
				for b.Loop() {
					d := dir
					if !cached {
						b.StopTimer()
						d, _ = os.MkdirTemp(dir, "cold")
						b.StartTimer()
					}
					loadOnce(d)
				}
			})
		}
	}
}

func loadInternal(b *testing.B, name string, cfg StepConfig) *Plugin {
	b.Helper()
	h, err := New(Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	p, err := h.LoadFile(context.Background(), plugintest.Path(b, name), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close(context.Background()); h.Close(context.Background()) })
	return p
}

// BenchmarkLimits compares what limits cost: the orders filter and map,
// as Go-SDK and hand-written WAT plugins, at batch sizes 16 and 1000, run
// as compiled with nothing to stop them ("unlimited"), metered with the
// default fuel and deadline (the host's design) and interrupted by
// wazero's WithCloseOnContextDone with the same deadline, in one run. It
// reports events in per second.
func BenchmarkLimits(b *testing.B) {
	modes := []struct {
		name string
		cfg  StepConfig
	}{
		{"unlimited", StepConfig{interrupt: rawModule}},
		{"metered", StepConfig{}},
		{"closeOnContextDone", StepConfig{interrupt: closeOnContextDone}},
	}
	ctx := context.Background()
	for _, step := range []struct{ name, plugin string }{
		{"filter/go", "orders/filter"},
		{"filter/wat", "wat/orders_filter"},
		{"map/go", "orders/map"},
		{"map/wat", "wat/orders_map"},
	} {
		for _, n := range []int{16, 1000} {
			in := orders.Events(n, 1)
			for _, mode := range modes {
				b.Run(fmt.Sprintf("%s/batch=%d/%s", step.name, n, mode.name), func(b *testing.B) {
					p := loadInternal(b, step.plugin, mode.cfg)
					out := make([]engine.Event, 0, n)
					var err error
					for b.Loop() {
						if out, err = p.Process(ctx, in, out[:0]); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "events/s")
					b.ReportMetric(0, "ns/op")
				})
			}
		}
	}
}

// BenchmarkDeadline measures how late an endless loop is stopped after
// its deadline, by the metered design's watchdog, for a WAT loop and a Go
// loop.
func BenchmarkDeadline(b *testing.B) {
	const timeout = 20 * time.Millisecond
	ctx := context.Background()
	for _, plugin := range []string{"wat/loop", "bad/loop"} {
		b.Run(plugin, func(b *testing.B) {
			p := loadInternal(b, plugin, StepConfig{Limits: Limits{Timeout: timeout, Fuel: -1}})
			in := orders.Events(1, 1)
			var worst, total time.Duration
			for b.Loop() {
				// A fresh instance first: a call that ends at its deadline
				// discards its own, and making one is not the deadline's
				// lateness.
				inst, err := p.acquire(ctx, "", 0)
				if err != nil {
					b.Fatal(err)
				}
				p.release(ctx, inst, nil)
				start := time.Now()
				if _, err := p.Process(ctx, in, nil); !errors.Is(err, ErrDeadline) {
					b.Fatalf("%v, want a deadline", err)
				}
				late := time.Since(start) - timeout
				worst, total = max(worst, late), total+late
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-late-mean")
			b.ReportMetric(float64(worst.Microseconds())/1000, "ms-late-max")
			b.ReportMetric(0, "ns/op")
		})
	}
}
