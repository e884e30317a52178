package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/aegis-streaming/aegis/engine"
)

// Helpers of the metrics tests; their names start with "om".

// omNew returns a meter whose measurements the returned reader collects.
func omNew(t testing.TB) (metric.Meter, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp.Meter("test"), reader
}

// omCollect collects the reader's metrics, by name.
func omCollect(t testing.TB, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if _, ok := out[m.Name]; ok {
				t.Errorf("metric %s collected twice", m.Name)
			}
			out[m.Name] = m
		}
	}
	return out
}

// omMatch reports whether set holds every attribute of want.
func omMatch(set attribute.Set, want []attribute.KeyValue) bool {
	for _, w := range want {
		if v, ok := set.Value(w.Key); !ok || v.String() != w.Value.String() || v.Type() != w.Value.Type() {
			return false
		}
	}
	return true
}

// omPoints returns the int64 points (of a sum or gauge) whose attributes
// hold want.
func omPoints(t testing.TB, m metricdata.Metrics, want ...attribute.KeyValue) []metricdata.DataPoint[int64] {
	t.Helper()
	var points []metricdata.DataPoint[int64]
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		if !d.IsMonotonic || d.Temporality != metricdata.CumulativeTemporality {
			t.Errorf("%s: monotonic %v, temporality %v; want a cumulative counter", m.Name, d.IsMonotonic, d.Temporality)
		}
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	case nil:
	default:
		t.Fatalf("%s: data %T, want int64 points", m.Name, m.Data)
	}
	var out []metricdata.DataPoint[int64]
	for _, p := range points {
		if omMatch(p.Attributes, want) {
			out = append(out, p)
		}
	}
	return out
}

// omValue returns the value of the one int64 point whose attributes hold
// want; ok is false if there is none.
func omValue(t testing.TB, m metricdata.Metrics, want ...attribute.KeyValue) (v int64, ok bool) {
	t.Helper()
	points := omPoints(t, m, want...)
	if len(points) > 1 {
		t.Errorf("%s: %d points with %v, want 1", m.Name, len(points), want)
	}
	if len(points) == 0 {
		return 0, false
	}
	return points[0].Value, true
}

// omWant checks the value of the one point of m with the attributes want.
func omWant(t testing.TB, m metricdata.Metrics, value int64, want ...attribute.KeyValue) {
	t.Helper()
	v, ok := omValue(t, m, want...)
	if !ok {
		t.Errorf("%s: no point with %v (want %d)", m.Name, want, value)
	} else if v != value {
		t.Errorf("%s %v = %d, want %d", m.Name, want, v, value)
	}
}

// omHistogram returns the one point of a histogram with the attributes
// want.
func omHistogram[N int64 | float64](t testing.TB, m metricdata.Metrics, want ...attribute.KeyValue) metricdata.HistogramDataPoint[N] {
	t.Helper()
	h, ok := m.Data.(metricdata.Histogram[N])
	if !ok {
		t.Fatalf("%s: data %T, want a histogram of %T", m.Name, m.Data, *new(N))
	}
	var out []metricdata.HistogramDataPoint[N]
	for _, p := range h.DataPoints {
		if omMatch(p.Attributes, want) {
			out = append(out, p)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%s: %d points with %v, want 1", m.Name, len(out), want)
	}
	return out[0]
}

// omFuel passes its input through and burns 7 fuel per event.
type omFuel struct {
	mu   sync.Mutex
	fuel uint64
}

func (s *omFuel) Process(_ context.Context, in, out []engine.Event) ([]engine.Event, error) {
	s.mu.Lock()
	s.fuel += 7 * uint64(len(in))
	s.mu.Unlock()
	return append(out, in...), nil
}

func (s *omFuel) Fuel() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fuel
}

var omOutcomes = []string{"in", "out", "errored", "skipped", "dead_letter", "late"}

func omOutcome(s engine.StageStats, outcome string) uint64 {
	switch outcome {
	case "in":
		return s.In
	case "out":
		return s.Out
	case "errored":
		return s.Failed
	case "skipped":
		return s.Skipped
	case "dead_letter":
		return s.DeadLetter
	case "late":
		return s.Late
	}
	panic(outcome)
}

// omCheckPipeline checks the step and batch metrics of a pipeline that ran
// against its stats; batches[i] is how many batches stage i processed.
func omCheckPipeline(t testing.TB, ms map[string]metricdata.Metrics, p *engine.Pipeline, plugins map[string]string, batches []int) {
	t.Helper()
	st := p.Stats()
	pl := engine.AttrPipeline.String(p.Name())
	for i, s := range st.Stages {
		attrs := []attribute.KeyValue{pl, engine.AttrStep.String(s.Name), engine.AttrStepKind.String(s.Kind)}
		if plugin := plugins[s.Name]; plugin != "" {
			attrs = append(attrs, engine.AttrPlugin.String(plugin))
		}
		for _, outcome := range omOutcomes {
			omWant(t, ms[engine.MetricStepEvents], int64(omOutcome(s, outcome)), append(attrs, engine.AttrOutcome.String(outcome))...)
		}
		if n := len(omPoints(t, ms[engine.MetricStepEvents], attrs...)); n != len(omOutcomes) {
			t.Errorf("stage %s: %d points of %s, want %d", s.Name, n, engine.MetricStepEvents, len(omOutcomes))
		}
		omWant(t, ms[engine.MetricStepRetries], int64(s.Retries), attrs...)
		if fuel, ok := omValue(t, ms[engine.MetricStepFuel], attrs...); ok != (s.Fuel > 0) || fuel != int64(s.Fuel) {
			t.Errorf("stage %s: fuel %d (reported %v), want %d", s.Name, fuel, ok, s.Fuel)
		}
		d := omHistogram[float64](t, ms[engine.MetricStepDuration], attrs...)
		if d.Count != uint64(batches[i]) || d.Sum < 0 {
			t.Errorf("stage %s: %d durations (sum %v), want %d", s.Name, d.Count, d.Sum, batches[i])
		}
	}
	b := omHistogram[int64](t, ms[engine.MetricBatchSize], pl)
	if b.Sum != int64(st.In) || b.Count != uint64(batches[0]) {
		t.Errorf("batch sizes: %d batches, %d events; want %d and %d", b.Count, b.Sum, batches[0], st.In)
	}
}

func TestPipelineMetrics(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		policy engine.ErrorPolicy
		step   engine.Step
	}{
		{"skip", engine.ErrorPolicy{Action: engine.Skip}, plPoisonMap(3, 17)},
		{"dead-letter", engine.ErrorPolicy{Action: engine.DeadLetter, DeadLetter: newPLSink()}, plPoisonCoded(3, 17)},
		{"retry then skip", engine.ErrorPolicy{Action: engine.Retry, Retries: 2, Backoff: time.Microsecond, Then: engine.Skip},
			plPoisonBatch(3, 17)},
		{"retry succeeds", engine.ErrorPolicy{Action: engine.Retry, Retries: 2, Backoff: time.Microsecond},
			&plFlaky{fails: 1, poison: []int64{3, 17}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			meter, reader := omNew(t)
			sink := newPLSink()
			p := plNew(t, engine.PipelineConfig{Name: "metered", Source: &plSliceSource{events: otEvents(50)},
				Stages: []engine.Stage{
					{Name: "poison", Kind: "wasm", Plugin: "poison.wasm", Step: tc.step, OnError: tc.policy},
					{Name: "drop", Kind: "filter", Step: engine.FilterStep{Filter: engine.FilterFunc(func(e *engine.Event) bool {
						return plNum(*e) < 20 || plNum(*e) >= 30
					})}},
					{Name: "fuel", Kind: "native", Step: &omFuel{}, Workers: 2},
				},
				Sinks: []engine.Sink{sink}, MaxBatch: 10, Meter: meter})
			// Nothing ran yet: every counter is 0.
			ms := omCollect(t, reader)
			for _, s := range p.Stats().Stages {
				omWant(t, ms[engine.MetricStepEvents], 0, engine.AttrStep.String(s.Name), engine.AttrOutcome.String("in"))
			}
			if err := plRun(t, t.Context(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			st := p.Stats()
			if st.In != 50 || st.Stages[0].Failed == 0 && tc.name != "retry succeeds" || st.Stages[2].Fuel == 0 {
				t.Errorf("stats %+v", st)
			}
			omCheckPipeline(t, omCollect(t, reader), p, map[string]string{"poison": "poison.wasm"}, []int{5, 5, 4})
		})
	}
}

// Pipelines sharing a meter, collected while they run.
func TestPipelineMetricsConcurrent(t *testing.T) {
	t.Parallel()
	meter, reader := omNew(t)
	const pipelines, n, maxBatch = 3, 3000, 16
	ps := make([]*engine.Pipeline, pipelines)
	for k := range ps {
		ps[k] = plNew(t, engine.PipelineConfig{Name: fmt.Sprint("m", k), Source: &plSliceSource{events: otEvents(n)},
			Stages: []engine.Stage{
				{Name: "poison", Kind: "map", Step: plPoisonMap(7, 700), OnError: engine.ErrorPolicy{Action: engine.Skip}, Workers: 1 + k},
				{Name: "fuel", Kind: "native", Step: &omFuel{}},
			},
			Sinks: []engine.Sink{newPLSink()}, MaxBatch: maxBatch, Meter: meter})
	}
	stop := make(chan struct{})
	collected := make(chan int)
	go func() {
		runs := 0
		for {
			select {
			case <-stop:
				collected <- runs
				return
			default:
			}
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Errorf("Collect: %v", err)
			}
			runs++
		}
	}()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() {
			if err := p.Run(t.Context()); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	wg.Wait()
	close(stop)
	if runs := <-collected; runs == 0 {
		t.Errorf("no collection ran")
	}
	ms := omCollect(t, reader)
	batches := (n + maxBatch - 1) / maxBatch
	for _, p := range ps {
		omCheckPipeline(t, ms, p, nil, []int{batches, batches})
		if s := p.Stats().Stages[0]; s.Skipped != 2 || s.Out != n-2 {
			t.Errorf("pipeline %s: stats %+v", p.Name(), s)
		}
	}
}

func TestEngineInstrument(t *testing.T) {
	t.Parallel()
	meter, reader := omNew(t)
	e := engine.New(engine.Config{})
	defer e.Close()
	if err := e.Instrument(meter); err != nil {
		t.Fatalf("Instrument: %v", err)
	}
	psCreate(t, e, "a", engine.ChannelConfig{BufferSize: 16})
	psCreate(t, e, "b", engine.ChannelConfig{BufferSize: 2, SlowSubscriber: engine.DropOldest})
	psCreate(t, e, "c", engine.ChannelConfig{})
	s1 := psSubscribe(t, e, "a", engine.SubscribeOptions{Subscriber: "one"})
	s2 := psSubscribe(t, e, "a", engine.SubscribeOptions{Subscriber: "two"})
	s3 := psSubscribe(t, e, "b", engine.SubscribeOptions{Subscriber: "three"})
	psPublish(t, e, "a", psRange(0, 5)...)
	psPublish(t, e, "b", psRange(0, 5)...)
	if got := psRecvNums(t, s1, 2); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("one received %v", got)
	}
	ms := omCollect(t, reader)
	events, subs, lag := ms[engine.MetricChannelEvents], ms[engine.MetricChannelSubscribers], ms[engine.MetricSubscriptionLag]
	for _, c := range []struct {
		channel                       string
		published, delivered, dropped int64
		subscribers                   int64
	}{
		{"a", 5, 2, 0, 2},
		{"b", 5, 0, 3, 1},
		{"c", 0, 0, 0, 0},
	} {
		ch := engine.AttrChannel.String(c.channel)
		st := psChannelStats(t, e, c.channel)
		if int64(st.Published) != c.published || int64(st.Delivered) != c.delivered || int64(st.Dropped) != c.dropped {
			t.Errorf("channel %s: stats %+v", c.channel, st)
		}
		omWant(t, events, c.published, ch, engine.AttrOutcome.String("published"))
		omWant(t, events, c.delivered, ch, engine.AttrOutcome.String("delivered"))
		omWant(t, events, c.dropped, ch, engine.AttrOutcome.String("dropped"))
		omWant(t, subs, c.subscribers, ch)
	}
	for _, s := range []struct {
		sub     *engine.Subscription
		channel string
		name    string
		lag     int64
	}{
		{s1, "a", "one", 3},
		{s2, "a", "two", 5},
		{s3, "b", "three", 2},
	} {
		omWant(t, lag, s.lag, engine.AttrChannel.String(s.channel), engine.AttrSubscriber.String(s.name),
			engine.AttrSubscription.String(s.sub.Info().ID))
	}
	if n := len(omPoints(t, lag)); n != 3 {
		t.Errorf("%d lag points, want 3", n)
	}
	// A subscription that goes is no longer reported.
	s2.Close()
	ms = omCollect(t, reader)
	omWant(t, ms[engine.MetricChannelSubscribers], 1, engine.AttrChannel.String("a"))
	if n := len(omPoints(t, ms[engine.MetricSubscriptionLag])); n != 2 {
		t.Errorf("%d lag points after a subscription closed, want 2", n)
	}
	// Close stops the metrics.
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ms = omCollect(t, reader)
	for _, name := range []string{engine.MetricChannelEvents, engine.MetricChannelSubscribers, engine.MetricSubscriptionLag} {
		if n := len(omPoints(t, ms[name])); n != 0 {
			t.Errorf("%s: %d points after Close, want none", name, n)
		}
	}
	// Instrumenting a closed engine registers nothing.
	meter2, reader2 := omNew(t)
	if err := e.Instrument(meter2); err != nil {
		t.Errorf("Instrument after Close: %v", err)
	}
	ms = omCollect(t, reader2)
	for _, name := range []string{engine.MetricChannelEvents, engine.MetricChannelSubscribers, engine.MetricSubscriptionLag} {
		if n := len(omPoints(t, ms[name])); n != 0 {
			t.Errorf("%s: %d points from a closed engine, want none", name, n)
		}
	}
}

// Engines instrumented with one meter, collected while they publish and
// close.
func TestEngineInstrumentConcurrent(t *testing.T) {
	t.Parallel()
	meter, reader := omNew(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Errorf("Collect: %v", err)
			}
		}
	}()
	var wg sync.WaitGroup
	for k := range 4 {
		wg.Go(func() {
			e := engine.New(engine.Config{})
			if err := e.Instrument(meter); err != nil {
				t.Errorf("Instrument: %v", err)
			}
			name := fmt.Sprint("ch", k)
			if err := e.CreateChannel(name, engine.ChannelConfig{SlowSubscriber: engine.DropOldest, BufferSize: 4}); err != nil {
				t.Error(err)
				return
			}
			s, err := e.Subscribe(name, engine.SubscribeOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			for i := range 200 {
				if err := e.Publish(t.Context(), name, psEvent(i)); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					s.TryRecv()
				}
			}
			e.Close()
		})
	}
	wg.Wait()
	close(stop)
	<-done
	ms := omCollect(t, reader)
	if n := len(omPoints(t, ms[engine.MetricChannelEvents])); n != 0 {
		t.Errorf("%d channel points after every engine closed, want none", n)
	}
}

// omCollectingMeter is a meter whose registrations' Unregister waits for a
// collection that is running their callback, as the SDK's do (it holds
// its lock while callbacks run, and Unregister takes it): Unregister starts
// a collection, waits until it is in the callback, then unregisters.
type omCollectingMeter struct {
	metric.Meter
	reader *sdkmetric.ManualReader
}

func (m omCollectingMeter) RegisterCallback(f metric.Callback, insts ...metric.Observable) (metric.Registration, error) {
	in := make(chan struct{}, 1)
	reg, err := m.Meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		select {
		case in <- struct{}{}:
		default:
		}
		return f(ctx, o)
	}, insts...)
	if err != nil {
		return nil, err
	}
	return omCollectingReg{reg, m.reader, in}, nil
}

type omCollectingReg struct {
	metric.Registration
	reader *sdkmetric.ManualReader
	in     chan struct{}
}

func (r omCollectingReg) Unregister() error {
	go func() {
		var rm metricdata.ResourceMetrics
		_ = r.reader.Collect(context.Background(), &rm)
	}()
	<-r.in
	return r.Registration.Unregister()
}

// Instrument on an engine that closed meanwhile unregisters what it
// registered; a collection running then must not deadlock with it.
func TestEngineInstrumentClosedWhileCollecting(t *testing.T) {
	t.Parallel()
	// Not shut down: should the bug deadlock them, they stay so.
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	e := engine.New(engine.Config{})
	if err := e.CreateChannel("a", engine.ChannelConfig{}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	done := make(chan error, 1)
	go func() { done <- e.Instrument(omCollectingMeter{meter, reader}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Instrument: %v", err)
		}
	case <-time.After(time.Second):
		// The engine and the reader stay deadlocked: neither is used again.
		t.Errorf("Instrument on a closed engine deadlocked with a collection")
	}
}

func TestPipelineClose(t *testing.T) {
	t.Parallel()
	meter, reader := omNew(t)
	p := plNew(t, engine.PipelineConfig{Name: "closed", Source: &plSliceSource{events: otEvents(5)},
		Stages: []engine.Stage{{Name: "pass", Step: plPass}}, Sinks: []engine.Sink{newPLSink()}, Meter: meter})
	if err := plRun(t, t.Context(), p); err != nil {
		t.Fatal(err)
	}
	omWant(t, omCollect(t, reader)[engine.MetricStepEvents], 5, engine.AttrPipeline.String("closed"), engine.AttrOutcome.String("in"))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	// Closed, it is no longer observed.
	if pts := omPoints(t, omCollect(t, reader)[engine.MetricStepEvents], engine.AttrPipeline.String("closed")); len(pts) != 0 {
		t.Fatalf("%d points after Close", len(pts))
	}
}
