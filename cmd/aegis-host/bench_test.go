package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/telemetry"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/internal/plugintest"
	"github.com/aegis-streaming/aegis/plugins"
)

// BenchmarkPipeline runs the whole orders pipeline (internal/orders)
// (generator -> filter -> map -> sink) through the engine's pipeline
// runner, with the steps as wasm plugins (Go SDK, and hand-written WAT;
// default limits) and as native Go steps, into the drop and the file sink, at batch sizes 1, 100
// and 1000, in one run. Each sub-benchmark reports events in per second.
func BenchmarkPipeline(b *testing.B) {
	ctx := context.Background()
	h, err := host.New(host.Options{Logger: slog.New(slog.DiscardHandler)}) // plugin logs would interleave with the results
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	load := func(b *testing.B, name string, workers int) engine.Step {
		p, err := h.LoadFile(ctx, plugintest.Path(b, name), host.StepConfig{Workers: workers})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close(ctx) })
		return p
	}
	type steps struct {
		name           string
		filter, mapper func(b *testing.B) engine.Step
		mapWorkers     int
	}
	variants := []steps{
		{"native", func(*testing.B) engine.Step { return orders.Filter }, func(*testing.B) engine.Step { return orders.Map }, 1},
		{"wasm", func(b *testing.B) engine.Step { return load(b, "orders/filter", 1) }, func(b *testing.B) engine.Step { return load(b, "orders/map", 1) }, 1},
		{"wasm-map2", func(b *testing.B) engine.Step { return load(b, "orders/filter", 1) }, func(b *testing.B) engine.Step { return load(b, "orders/map", 2) }, 2},
		{"wasm-wat", func(b *testing.B) engine.Step { return load(b, "wat/orders_filter", 1) }, func(b *testing.B) engine.Step { return load(b, "wat/orders_map", 1) }, 1},
	}
	for _, sink := range []string{"drop", "file"} {
		for _, batch := range []int{1, 100, 1000} {
			for _, v := range variants {
				b.Run(fmt.Sprintf("sink=%s/batch=%d/steps=%s", sink, batch, v.name), func(b *testing.B) {
					var s engine.Sink = engine.Drop()
					if sink == "file" {
						f, err := os.Create(filepath.Join(b.TempDir(), "out.jsonl"))
						if err != nil {
							b.Fatal(err)
						}
						s = engine.JSONLinesSink(f, engine.FormatEvent)
						defer s.Close()
					}
					p, err := engine.NewPipeline(engine.PipelineConfig{
						Name:   "orders",
						Source: ordersGenerator(b.N),
						Stages: []engine.Stage{
							{Name: "filter", Step: v.filter(b)},
							{Name: "map", Step: v.mapper(b), Workers: v.mapWorkers},
						},
						Sinks:    []engine.Sink{s},
						MaxBatch: batch,
					})
					if err != nil {
						b.Fatal(err)
					}
					b.ResetTimer()
					if err := p.Run(ctx); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
					b.ReportMetric(0, "ns/op")
				})
			}
		}
	}
}

// BenchmarkTracing runs the orders pipeline (filter and map as wasm
// plugins, Go SDK and WAT; drop sink; batch 1000) with tracing off, on
// with every trace sampled, and on with 1% sampled, in one run. The spans
// go through the run's own telemetry setup (batching, OTLP over HTTP) to
// a local HTTP server that reads and discards them, so that their
// encoding and sending are counted too. Metrics are on where tracing is.
// Besides events per second it reports the process's CPU time per event,
// which includes the background export.
func BenchmarkTracing(b *testing.B) {
	ctx := context.Background()
	h, err := host.New(host.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	steps := map[string][2]engine.Step{}
	for _, lang := range []struct{ name, filter, mapper string }{
		{"go", "orders/filter", "orders/map"}, {"wat", "wat/orders_filter", "wat/orders_map"}} {
		var s [2]engine.Step
		for i, name := range []string{lang.filter, lang.mapper} {
			p, err := h.LoadFile(ctx, plugintest.Path(b, name), host.StepConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(ctx)
			s[i] = p
		}
		steps[lang.name] = s
	}
	for _, lang := range []string{"go", "wat"} {
		for _, mode := range []string{"off", "1.0", "0.01"} {
			b.Run(fmt.Sprintf("steps=%s/tracing=%s", lang, mode), func(b *testing.B) {
				tel := &telemetry.Telemetry{}
				if mode != "off" {
					ratio, _ := strconv.ParseFloat(mode, 64)
					tel, err = telemetry.Start(ctx, &manifest.Telemetry{
						Traces:  &manifest.Traces{Exporter: telemetry.OTLPHTTP, Endpoint: collector.URL, SampleRatio: &ratio},
						Metrics: &manifest.Metrics{Exporter: telemetry.OTLPHTTP, Endpoint: collector.URL},
					}, telemetry.Options{Log: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }})
					if err != nil {
						b.Fatal(err)
					}
				}
				p, err := engine.NewPipeline(engine.PipelineConfig{
					Name:   "orders",
					Source: ordersGenerator(b.N),
					Stages: []engine.Stage{
						{Name: "filter", Kind: "filter", Step: steps[lang][0]},
						{Name: "map", Kind: "map", Step: steps[lang][1]},
					},
					Sinks:    []engine.Sink{engine.Drop()},
					MaxBatch: 1000,
					Tracer:   tel.Tracer,
					Meter:    tel.Meter,
				})
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu := cpuTime()
				if err := p.Run(ctx); err != nil {
					b.Fatal(err)
				}
				if err := tel.Shutdown(ctx); err != nil {
					b.Fatal(err)
				}
				// CPU time counts the exporter's work in the background,
				// and varies less than the wall clock on a shared machine.
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/event")
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(0, "ns/op")
				if mode != "off" {
					ended, exported, _ := tel.SpanCounts()
					b.ReportMetric(float64(ended-exported), "spans-lost")
				}
			})
		}
	}
}

// ordersGenerator is n events of the orders workload, 1ms apart from now.
func ordersGenerator(n int) engine.Source {
	start := time.Now().UnixNano()
	return engine.Generator(engine.GeneratorConfig{Count: int64(n),
		Event: func(i int64) engine.Event { return orders.Generated(i, start, 1e6) }})
}

// BenchmarkConnector measures what the out-of-process boundary costs: the
// orders pipeline (filter and map as wasm, Go SDK or WAT, or no steps at
// all; batch 1000; drop sink) fed by the built-in generator and by the
// test source connector (testplugins/connectors/source) making the same
// events in its own process, over go-plugin's gRPC. Besides events per
// second it reports the CPU time per event of both processes together.
func BenchmarkConnector(b *testing.B) {
	ctx := context.Background()
	h, err := host.New(host.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	steps := map[string][]engine.Stage{"none": nil}
	for _, lang := range []struct{ name, filter, mapper string }{
		{"go", "orders/filter", "orders/map"}, {"wat", "wat/orders_filter", "wat/orders_map"}} {
		for i, name := range []string{lang.filter, lang.mapper} {
			p, err := h.LoadFile(ctx, plugintest.Path(b, name), host.StepConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(ctx)
			steps[lang.name] = append(steps[lang.name], engine.Stage{Name: []string{"filter", "map"}[i], Step: p})
		}
	}
	connector := plugintest.Path(b, "connectors/source")
	for _, lang := range []string{"none", "wat", "go"} {
		for _, from := range []string{"generator", "connector"} {
			b.Run(fmt.Sprintf("steps=%s/source=%s", lang, from), func(b *testing.B) {
				src := ordersGenerator(b.N)
				if from == "connector" {
					src, err = plugins.NewSource(ctx, plugins.Config{Name: "orders", Path: connector,
						Config: fmt.Appendf(nil, `{"count": %d, "orders": true}`, b.N), Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						b.Fatal(err)
					}
					defer src.Close()
				}
				p, err := engine.NewPipeline(engine.PipelineConfig{Name: "orders", Source: src, Stages: steps[lang],
					Sinks: []engine.Sink{engine.Drop()}, MaxBatch: 1000})
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu := cpuTime() + childrenCPUTime()
				if err := p.Run(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := src.Close(); err != nil { // the connector's CPU time counts once it has exited
					b.Fatal(err)
				}
				b.ReportMetric(float64(cpuTime()+childrenCPUTime()-cpu)/float64(b.N), "cpu-ns/event")
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
