package conformance_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

// BenchmarkLanguages runs the orders filter and map of every language on
// batches of 1000 events, beside the native Go steps, in one run, and
// reports events per second; and each plugin's module size and load time,
// without a compilation cache (cold) and with one (warm).
func BenchmarkLanguages(b *testing.B) {
	ctx := context.Background()
	h, err := host.New(host.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	start := int64(1767225600000000000)
	raw := make([]engine.Event, 1000)
	for i := range raw {
		raw[i] = orders.Generated(int64(i), start, int64(time.Millisecond))
	}
	kept, err := orders.Filter.Process(ctx, raw, nil)
	if err != nil {
		b.Fatal(err)
	}
	type step struct {
		name string
		in   []engine.Event
	}
	for _, kind := range []step{{"filter", raw}, {"map", kept}} {
		b.Run("step="+kind.name+"/lang=native", func(b *testing.B) {
			s := engine.Step(orders.Filter)
			if kind.name == "map" {
				s = orders.Map
			}
			benchStep(b, s, kind.in)
		})
		for _, lang := range languages {
			name := lang.filter
			if kind.name == "map" {
				name = lang.mapper
			}
			b.Run("step="+kind.name+"/lang="+lang.name, func(b *testing.B) {
				p, err := h.Load(ctx, plugintest.Bytes(b, name), host.StepConfig{Name: name})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close(ctx)
				benchStep(b, p, kind.in)
			})
		}
	}
	for _, lang := range languages {
		for _, name := range []string{lang.filter, lang.mapper, lang.aggreg} {
			wasm := plugintest.Bytes(b, name)
			for _, cache := range []string{"cold", "warm"} {
				b.Run("load="+cache+"/lang="+lang.name+"/plugin="+name, func(b *testing.B) {
					dir := b.TempDir()
					if cache == "warm" {
						warm(b, dir, wasm)
					}
					b.ResetTimer()
					for range b.N {
						if cache == "cold" {
							b.StopTimer()
							dir = b.TempDir()
							b.StartTimer()
						}
						h, err := host.New(host.Options{CacheDir: dir, Logger: slog.New(slog.DiscardHandler)})
						if err != nil {
							b.Fatal(err)
						}
						p, err := h.Load(ctx, wasm, host.StepConfig{Name: name})
						if err != nil {
							b.Fatal(err)
						}
						p.Close(ctx)
						h.Close(ctx)
					}
					b.ReportMetric(float64(len(wasm)), "bytes")
					b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/load")
				})
			}
		}
	}
}

// warm compiles wasm into the cache in dir.
func warm(b *testing.B, dir string, wasm []byte) {
	h, err := host.New(host.Options{CacheDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	p, err := h.Load(context.Background(), wasm, host.StepConfig{})
	if err != nil {
		b.Fatal(err)
	}
	p.Close(context.Background())
}

func benchStep(b *testing.B, s engine.Step, in []engine.Event) {
	ctx := context.Background()
	out := make([]engine.Event, 0, len(in))
	b.ResetTimer()
	for range b.N {
		var err error
		if out, err = s.Process(ctx, in, out[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}
