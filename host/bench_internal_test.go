package host

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// BenchmarkEmptyCall is the host's overhead per call: an empty batch
// encoded, the export called, its result bounds-checked and parsed, with
// and without the default time limit.
func BenchmarkEmptyCall(b *testing.B) {
	for _, bc := range []struct {
		name   string
		plugin string
		limits Limits
	}{
		{"wat/nolimit", "wat/orders_filter", Limits{Timeout: -1}},
		{"wat/limit", "wat/orders_filter", Limits{}},
		{"go/nolimit", "orders/filter", Limits{Timeout: -1}},
		{"go/limit", "orders/filter", Limits{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := loadInternal(b, bc.plugin, bc.limits)
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
			p := loadInternal(b, name, Limits{})
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

func loadInternal(b *testing.B, name string, limits Limits) *Plugin {
	b.Helper()
	h, err := New(Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	p, err := h.LoadFile(context.Background(), plugintest.Path(b, name), StepConfig{Limits: limits})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close(context.Background()); h.Close(context.Background()) })
	return p
}
