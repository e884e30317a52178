package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/telemetry"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/internal/orders"
	"github.com/aegis-streaming/aegis/plugins"
)

// deployment is a manifest made real: the engine and its channels, the
// loaded plugins, the sources and sinks, and the pipelines, ready to run.
type deployment struct {
	m       *manifest.Manifest
	eng     *engine.Engine
	log     *slog.Logger
	plugins []*host.Plugin
	// steps[i] names the pipeline and step of plugins[i], for metrics.
	steps []attribute.Set
	// connectors are the plugin sources and sinks, for metrics.
	connectors []connectorStats
	// postgres and debezium are the CDC sources, for metrics.
	postgres []postgresStats
	debezium []debeziumStats
	sinks    map[string]engine.Sink
	tel      *telemetry.Telemetry // never nil; traces and metrics may be off
	flows    []*flow
	// writers counts, per channel, the pipelines that write to it; when the
	// last one ends an in-memory channel is deleted, which ends the
	// pipelines that read it once they have taken everything, and a
	// persistent one's written is closed (see caughtUp).
	writers map[string]*atomic.Int32
	// written is closed, per persistent channel, when no pipeline of the
	// run writes to it any more.
	written map[string]chan struct{}
	// api serves the channels over HTTP (nil: no api block). Its
	// publishers count as one more writer of every channel of the
	// manifest, until the run stops (see run).
	api *apiServer
}

// flow is one pipeline of the deployment.
type flow struct {
	p      *engine.Pipeline
	src    engine.Source
	writes []string // channels written to (outputs, dead letters, late events)
	// drained is set when the pipeline reads a channel: it then ends when
	// the pipelines that write to it have (at once when none does); the
	// others stop when the run is stopped.
	drained *drained
	// persistent is set when it reads a persistent channel: its source is
	// closed when it ends, which stops moving its dead letters before the
	// dead-letter channel counts it out of its writers.
	persistent bool
}

// io of the process, for the stdin source and the stdout sinks.
type stdio struct {
	in  io.Reader
	out io.Writer
	// outMu is held by a stdout sink while it writes a batch, so that
	// several stdout sinks (say, results as data and dead letters as
	// events) never interleave their lines.
	outMu *sync.Mutex
}

// deploy builds everything m declares; nothing runs yet. On error what was
// built is closed. dry (validate) loads the plugins and builds the
// pipelines but opens no input and no output: no file is read, created or
// truncated, and stdin is left alone. tel traces and measures the
// pipelines (nil: neither); deploy does not shut it down.
func deploy(ctx context.Context, m *manifest.Manifest, h *host.Host, std stdio, log *slog.Logger, tel *telemetry.Telemetry, dry bool) (_ *deployment, err error) {
	if std.outMu == nil {
		std.outMu = new(sync.Mutex)
	}
	if tel == nil {
		tel = &telemetry.Telemetry{}
	}
	d := &deployment{m: m, log: log, tel: tel, sinks: map[string]engine.Sink{},
		writers: map[string]*atomic.Int32{}, written: map[string]chan struct{}{}}
	if d.eng, err = openEngine(ctx, m, log, dry); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.close(ctx)
		}
	}()
	if tel.Meter != nil {
		if err := d.eng.Instrument(tel.Meter); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		defer func() {
			if err == nil {
				err = d.instrumentPlugins()
			}
		}()
	}
	_, durable := d.eng.DurableStore()
	if durable {
		if err := checkChannels(ctx, d.eng, m); err != nil {
			return nil, err
		}
	}
	for name, c := range m.Channels {
		cfg, err := channelConfig(c)
		if err != nil {
			return nil, fmt.Errorf("channel[%s]: %w", name, err)
		}
		if dry && cfg.Persistent {
			// validate starts no store: the channel is checked above and
			// stands in memory for the pipelines that name it.
			cfg = engine.ChannelConfig{BufferSize: cfg.BufferSize}
		}
		if err := d.eng.CreateChannel(name, cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", m.File, err)
		}
		d.writers[name] = new(atomic.Int32)
		if c.Persistent {
			d.written[name] = make(chan struct{})
		}
	}
	if durable {
		if err := recordChannels(m); err != nil {
			return nil, fmt.Errorf("%s: persistent channels: record: %w", m.File, err)
		}
	}
	if m.API != nil {
		// Listening now, before any source or sink opens, makes an
		// address in use an error before anything runs.
		if d.api, err = newAPI(m, d.eng, log, d.tel, dry); err != nil {
			return nil, err
		}
		if !dry {
			for name := range m.Channels {
				d.writers[name].Add(1)
			}
		}
	}
	for name, s := range m.Sinks {
		var sink engine.Sink = engine.Drop()
		if !dry {
			sink, err = openSink(ctx, m, name, s, std, log)
		}
		if err != nil {
			return nil, fmt.Errorf("sink[%s]: %w", name, err)
		}
		d.sinks[name] = sink
		d.watch(name, "sink", sink)
	}
	for i := range m.Pipelines {
		f, err := d.build(ctx, &m.Pipelines[i], h, std, dry)
		if err != nil {
			return nil, fmt.Errorf("pipeline[%s]: %w", m.Pipelines[i].Name, err)
		}
		d.flows = append(d.flows, f)
		for _, c := range f.writes {
			d.writers[c].Add(1)
		}
	}
	return d, nil
}

// connectorStats names a connector and reads its restarts.
type connectorStats struct {
	attrs    attribute.Set
	restarts func() uint64
}

// The attributes of connector metrics.
const (
	attrConnector     = attribute.Key("aegis.connector")
	attrConnectorKind = attribute.Key("aegis.connector.kind")
)

// postgresStats names a postgres-cdc source and reads its counts.
type postgresStats struct {
	attrs attribute.Set
	stats func() cdc.PostgresStats
}

// debeziumStats names a debezium source and reads its malformed count.
type debeziumStats struct {
	attrs     attribute.Set
	malformed func() uint64
}

// attrSource names a CDC source in its metrics.
const attrSource = attribute.Key("aegis.source")

// watch records a connector (a source or sink that restarts) or a CDC
// source for metrics.
func (d *deployment) watch(name, kind string, v any) {
	switch v := v.(type) {
	case interface{ Restarts() uint64 }:
		d.connectors = append(d.connectors, connectorStats{
			attrs: attribute.NewSet(attrConnector.String(name), attrConnectorKind.String(kind)), restarts: v.Restarts})
	case interface{ Stats() cdc.PostgresStats }:
		d.postgres = append(d.postgres, postgresStats{attrs: attribute.NewSet(attrSource.String(name)), stats: v.Stats})
	case interface{ Malformed() uint64 }:
		d.debezium = append(d.debezium, debeziumStats{attrs: attribute.NewSet(attrSource.String(name)), malformed: v.Malformed})
	}
}

// output returns the sink for a name in a to:, dead_letter: or late: list,
// and records a channel as written.
func (d *deployment) output(name string, writes *[]string) engine.Sink {
	if s, ok := d.sinks[name]; ok {
		return s
	}
	*writes = append(*writes, name)
	return d.eng.ChannelSink(name)
}

func (d *deployment) build(ctx context.Context, mp *manifest.Pipeline, h *host.Host, std stdio, dry bool) (*flow, error) {
	f := &flow{}
	cfg := engine.PipelineConfig{Name: mp.Name, Logger: d.log, Tracer: d.tel.Tracer, Meter: d.tel.Meter}
	if mp.Batch != nil {
		cfg.MaxBatch, cfg.MaxWait = mp.Batch.MaxEvents, mp.Batch.MaxWait.D()
	}
	var err error
	ch, fromChannel := d.m.Channels[mp.From]
	persistent := fromChannel && ch.Persistent
	var opts engine.SubscribeOptions
	if persistent {
		if opts, err = deliveryOptions(mp); err != nil {
			return nil, fmt.Errorf("from %s: %w", mp.From, err)
		}
	}
	switch src, ok := d.m.Sources[mp.From]; {
	case ok && dry:
		f.src = emptySource{}
	case ok && src.Type == "debezium":
		var dead engine.Sink
		if src.DeadLetter != "" {
			dead = d.output(src.DeadLetter, &f.writes)
		}
		f.src, err = openDebezium(ctx, d.m, mp.From, src, std, dead, d.log)
	case ok:
		f.src, err = openSource(ctx, d.m, mp.From, src, std, d.log)
	case persistent && !dry:
		f.src, err = d.eng.ChannelSourceWith(mp.From, opts)
	default:
		f.src, err = d.eng.ChannelSource(mp.From, "pipeline:"+mp.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("from %s: %w", mp.From, err)
	}
	d.watch(mp.From, "source", f.src)
	cfg.Source = f.src
	switch {
	case persistent && !dry:
		cfg.Source = &caughtUp{Source: f.src, eng: d.eng, channel: mp.From, durable: opts.Durable, written: d.written[mp.From]}
		f.persistent = true
		if opts.DeadLetter != "" {
			// Written by the source's dead-letter mover.
			f.writes = append(f.writes, opts.DeadLetter)
		}
	case fromChannel:
		f.drained = &drained{Source: f.src}
		cfg.Source = f.drained
	}
	for _, to := range mp.To {
		cfg.Sinks = append(cfg.Sinks, d.output(to, &f.writes))
	}
	for i := range mp.Steps {
		st, err := d.stage(ctx, mp.Name, &mp.Steps[i], h, &f.writes)
		if err != nil {
			f.src.Close()
			return nil, fmt.Errorf("step[%s]: %w", mp.Steps[i].Name, err)
		}
		cfg.Stages = append(cfg.Stages, st)
	}
	if f.p, err = engine.NewPipeline(cfg); err != nil {
		f.src.Close()
		return nil, err
	}
	return f, nil
}

func (d *deployment) stage(ctx context.Context, pipeline string, s *manifest.Step, h *host.Host, writes *[]string) (engine.Stage, error) {
	st := engine.Stage{Name: s.Name, Workers: s.Workers}
	if pol := s.OnError; pol != nil {
		var err error
		if st.OnError.Action, err = engine.ParseErrorAction(pol.Policy); err != nil {
			return st, err
		}
		if pol.Then != "" {
			if st.OnError.Then, err = engine.ParseErrorAction(pol.Then); err != nil {
				return st, err
			}
		}
		st.OnError.Retries, st.OnError.Backoff, st.OnError.MaxBackoff = pol.Retries, pol.Backoff.D(), pol.MaxBackoff.D()
		if pol.DeadLetter != "" {
			st.OnError.DeadLetter = d.output(pol.DeadLetter, writes)
		}
	}
	var plugin *host.Plugin
	if s.Plugin != "" {
		var err error
		if plugin, err = d.load(ctx, pipeline, s, h); err != nil {
			return st, err
		}
		st.Plugin = plugin.Name()
		info := plugin.Info()
		st.Attributes = []attribute.KeyValue{engine.AttrPluginSHA256.String(info.SHA256),
			engine.AttrABIVersion.String(abi.VersionString(info.ABIVersion))}
	}
	switch {
	case s.Aggregate != nil:
		a := s.Aggregate
		st.Kind = "aggregate"
		key, err := engine.KeyBy(a.GroupBy)
		if err != nil {
			return st, err
		}
		kind, err := engine.ParseWindowKind(a.Window.Type)
		if err != nil {
			return st, err
		}
		var agg engine.Aggregator = plugin
		if plugin == nil {
			fns := make([]engine.AggregateFunction, len(a.Functions))
			for i, fn := range a.Functions {
				if fns[i].Fn, err = engine.ParseAggregateFn(fn.Fn); err != nil {
					return st, err
				}
				fns[i].Field, fns[i].As = fn.Field, fn.As
			}
			emit := a.EmitType
			if emit == "" {
				emit = s.Name
			}
			if agg, err = engine.Functions(emit, fns...); err != nil {
				return st, err
			}
		}
		st.Aggregation, err = engine.NewAggregation(engine.AggregationConfig{
			Name: s.Name, Key: key, Aggregator: agg,
			Window:    engine.WindowSpec{Kind: kind, Size: a.Window.Size.D(), Every: a.Window.Every.D(), Gap: a.Window.Gap.D()},
			Watermark: a.Watermark.D(), AllowedLateness: a.AllowedLateness.D(),
		})
		if err != nil {
			return st, err
		}
		if a.Late != "" {
			st.Late = d.output(a.Late, writes)
		}
	case plugin != nil:
		st.Kind, st.Step = plugin.Kind().String(), plugin
	case s.Filter != nil:
		flt, err := buildFilter(s.Filter)
		if err != nil {
			return st, err
		}
		st.Kind, st.Step = "filter", engine.FilterStep{Filter: flt}
	case s.Transform != nil:
		st.Kind, st.Step = "transform", transformStep(s.Name, s.Transform)
	default:
		return st, errors.New("the step does nothing")
	}
	return st, nil
}

// load loads a step's plugin.
func (d *deployment) load(ctx context.Context, pipeline string, s *manifest.Step, h *host.Host) (*host.Plugin, error) {
	cfg := host.StepConfig{
		Name:    strings.TrimSuffix(filepath.Base(s.Plugin), ".wasm"),
		SHA256:  strings.ToLower(s.SHA256),
		Workers: s.Workers,
	}
	if s.Kind != "" {
		k, err := abi.ParseKind(s.Kind)
		if err != nil {
			return nil, err
		}
		cfg.Kind = k
	}
	if s.With != nil {
		b, err := json.Marshal(s.With)
		if err != nil {
			return nil, fmt.Errorf("with: %w", err)
		}
		cfg.Config = b
	}
	if l := s.Limits; l != nil {
		cfg.Limits = host.Limits{MemoryPages: uint32(l.Memory.Bytes() / 65536), Timeout: l.Timeout.D(), Fuel: l.Fuel.Int64(), MaxOutputBytes: uint32(l.MaxOutput.Bytes())}
		if l.Timeout == manifest.NoDeadline {
			cfg.Limits.Timeout = -1
		}
		if l.Fuel == manifest.NoFuel {
			cfg.Limits.Fuel = -1
		}
	}
	if g := s.Grants; g != nil {
		cfg.Grants = host.Grants{Clock: g.Clock, Random: g.Random, Env: g.Env}
	}
	p, err := h.LoadFile(ctx, d.m.Resolve(s.Plugin), cfg)
	if err != nil {
		return nil, err
	}
	d.plugins = append(d.plugins, p)
	d.steps = append(d.steps, attribute.NewSet(engine.AttrPipeline.String(pipeline), engine.AttrStep.String(s.Name), engine.AttrPlugin.String(p.Name())))
	return p, nil
}

func buildFilter(f *manifest.Filter) (engine.EventFilter, error) {
	var all []engine.EventFilter
	if len(f.Type) > 0 {
		types := make([]engine.EventType, len(f.Type))
		for i, t := range f.Type {
			types[i] = engine.EventType(t)
		}
		all = append(all, engine.TypeIs(types...))
	}
	if f.Source != "" {
		all = append(all, engine.SourceIs(f.Source))
	}
	if f.SourcePrefix != "" {
		all = append(all, engine.SourcePrefix(f.SourcePrefix))
	}
	if f.SourceGlob != "" {
		g, err := engine.SourceGlob(f.SourceGlob)
		if err != nil {
			return nil, err
		}
		all = append(all, g)
	}
	for k, v := range f.Meta {
		all = append(all, engine.MetadataIs(k, v))
	}
	for _, k := range f.HasMeta {
		all = append(all, engine.HasMetadata(k))
	}
	if f.Not != nil {
		n, err := buildFilter(f.Not)
		if err != nil {
			return nil, err
		}
		all = append(all, engine.Not(n))
	}
	for _, group := range []struct {
		fs []manifest.Filter
		op func(...engine.EventFilter) engine.EventFilter
	}{{f.Any, engine.Or}, {f.All, engine.And}} {
		if len(group.fs) == 0 {
			continue
		}
		var sub []engine.EventFilter
		for i := range group.fs {
			s, err := buildFilter(&group.fs[i])
			if err != nil {
				return nil, err
			}
			sub = append(sub, s)
		}
		all = append(all, group.op(sub...))
	}
	return engine.And(all...), nil
}

// transformStep is the native transform: each event's type, source and
// metadata rewritten as t says.
func transformStep(name string, t *manifest.Transform) engine.Step {
	return engine.MapStep{Name: name, Map: func(e *engine.Event, out []engine.Event) ([]engine.Event, error) {
		o := *e
		if len(t.SetMeta) > 0 || len(t.DeleteMeta) > 0 {
			o = e.Clone()
			for k, v := range t.SetMeta {
				o.SetMeta(k, v)
			}
			for _, k := range t.DeleteMeta {
				delete(o.Metadata, k)
			}
		}
		if t.SetType != "" {
			o.Type = engine.EventType(t.SetType)
		}
		switch t.TypeCase {
		case "upper":
			o.Type = engine.EventType(strings.ToUpper(string(o.Type)))
		case "lower":
			o.Type = engine.EventType(strings.ToLower(string(o.Type)))
		}
		if t.SetSource != "" {
			o.Source = t.SetSource
		}
		return append(out, o), nil
	}}
}

func openSource(ctx context.Context, m *manifest.Manifest, name string, s manifest.Source, std stdio, log *slog.Logger) (engine.Source, error) {
	format, err := engine.ParseFormat(orDefault(s.Format, "event"))
	if err != nil {
		return nil, err
	}
	cfg := engine.JSONLinesConfig{Name: name, Format: format, Type: engine.EventType(s.EventType)}
	switch s.Type {
	case "generator":
		start := time.Now().UnixNano()
		if s.Start != "" {
			t, err := time.Parse(time.RFC3339Nano, s.Start)
			if err != nil {
				return nil, fmt.Errorf("start: %w", err)
			}
			start = t.UnixNano()
		}
		interval := int64(s.Interval.D())
		if interval == 0 {
			interval = int64(time.Millisecond)
		}
		return engine.Generator(engine.GeneratorConfig{Count: s.Count, Rate: s.Rate,
			Event: func(i int64) engine.Event { return orders.Generated(i, start, interval) }}), nil
	case "file":
		f, err := os.Open(m.Resolve(s.Path))
		if err != nil {
			return nil, err
		}
		cfg.Name = s.Path
		return engine.JSONLines(f, cfg), nil
	case "stdin":
		cfg.Name = "stdin"
		return engine.JSONLines(std.in, cfg), nil
	case "plugin":
		c, err := connector(m, name, s.Plugin, s.SHA256, s.With, s.Timeout, s.MaxRestarts, log)
		if err != nil {
			return nil, err
		}
		// The position of the events the pipelines are done with, for the
		// next run.
		c.PositionFile = m.DataPath("connectors", name+".position")
		return plugins.NewSource(ctx, c)
	case "postgres-cdc":
		cfg, err := postgresConfig(m, name, s, log)
		if err != nil {
			return nil, err
		}
		return cdc.NewPostgres(ctx, cfg)
	}
	return nil, fmt.Errorf("unknown source type %q", s.Type)
}

func openSink(ctx context.Context, m *manifest.Manifest, name string, s manifest.Sink, std stdio, log *slog.Logger) (engine.Sink, error) {
	format, err := engine.ParseFormat(orDefault(s.Format, "event"))
	if err != nil {
		return nil, err
	}
	switch s.Type {
	case "drop":
		return engine.Drop(), nil
	case "stdout":
		sink := engine.JSONLinesSink(struct{ io.Writer }{std.out}, format) // never closes stdout
		return &lockedSink{Sink: sink, mu: std.outMu}, nil
	case "file":
		flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if s.Append {
			flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
		}
		f, err := os.OpenFile(m.Resolve(s.Path), flags, 0o644)
		if err != nil {
			return nil, err
		}
		return engine.JSONLinesSink(f, format), nil
	case "plugin":
		c, err := connector(m, name, s.Plugin, s.SHA256, s.With, s.Timeout, s.MaxRestarts, log)
		if err != nil {
			return nil, err
		}
		return plugins.NewSink(ctx, c)
	}
	return nil, fmt.Errorf("unknown sink type %q", s.Type)
}

// connector is how to run the connector of a plugin source or sink.
func connector(m *manifest.Manifest, name, path, sha string, with map[string]any, timeout manifest.Duration, restarts *int, log *slog.Logger) (plugins.Config, error) {
	// A connector runs in the manifest's directory, so that the relative
	// paths of its configuration mean what they mean in the manifest.
	c := plugins.Config{Name: name, Path: m.Resolve(path), Dir: m.Dir, SHA256: sha, Timeout: timeout.D(), Logger: log}
	if restarts != nil {
		c.MaxRestarts = *restarts
		if c.MaxRestarts == 0 {
			c.MaxRestarts = plugins.NoRestarts
		}
	}
	if len(with) > 0 {
		b, err := json.Marshal(with)
		if err != nil {
			return c, fmt.Errorf("with: %w", err)
		}
		c.Config = b
	}
	return c, nil
}

// emptySource is the source of a pipeline that validate builds: it is
// never read.
type emptySource struct{}

func (emptySource) Read(_ context.Context, dst []engine.Event, _ int) ([]engine.Event, error) {
	return dst, io.EOF
}

func (emptySource) Close() error { return nil }

// drained is the source of a pipeline that reads a channel. The channel
// ends (io.EOF) once every pipeline writing to it has ended and the
// pipeline has read everything they wrote. If the run was stopped by then
// (stop is done), the end of the channel is the end of a stopped run, not
// of the stream: drained ends the pipeline's context (end) and returns its
// error, so that the pipeline ends as stopped, firing only the windows
// that are complete, as the pipelines before it did.
type drained struct {
	engine.Source
	stop context.Context
	end  context.CancelFunc
}

func (s *drained) Read(ctx context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	dst, err := s.Source.Read(ctx, dst, max)
	if errors.Is(err, io.EOF) && s.stop != nil && s.stop.Err() != nil {
		s.end()
		return dst, context.Canceled
	}
	return dst, err
}

// lockedSink is a sink that holds a lock, shared with other sinks of the
// same stream, while it writes or flushes.
type lockedSink struct {
	engine.Sink
	mu *sync.Mutex
}

func (s *lockedSink) Write(ctx context.Context, events []engine.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Sink.Write(ctx, events)
}

func (s *lockedSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Sink.Close()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// run runs every pipeline until each has ended. Cancelling stop stops the
// pipelines that read sources; they drain, and the pipelines they feed
// through channels end after them, also as stopped (they fire only the
// windows that are complete). An in-memory channel that no pipeline
// writes to never gets an event: its readers end at once. The readers of a
// persistent channel end once its writers have and they have caught up
// with it, or at once when the run is stopped (see caughtUp). The first
// pipeline that fails
// stops the others the same way; its error is returned.
//
// With the API, the run goes on until it is stopped, also when every
// pipeline has ended: until then the API's publishers are writers of
// every channel of the manifest, so that no channel ends under them. On
// stop, the API shuts down first, then lets go of the channels, and the
// pipelines that read them drain and end as above.
func (d *deployment) run(stop context.Context) error {
	stop, cancel := context.WithCancel(stop)
	defer cancel()
	for name, n := range d.writers {
		if n.Load() == 0 {
			d.writtenAll(name)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(d.flows)+1)
	if d.api != nil {
		wg.Go(func() {
			if err := d.api.serve(stop, d.log, d.releaseAPI); err != nil {
				errs[len(d.flows)] = err
				cancel()
			}
		})
	}
	for i, f := range d.flows {
		wg.Go(func() {
			ctx := stop
			if f.drained != nil {
				// A fed pipeline reads until its channel ends, also after
				// a stop, so that nothing its writers drained is lost;
				// then it ends as stopped rather than at the end of its
				// stream if the run was stopped meanwhile.
				var end context.CancelFunc
				ctx, end = context.WithCancel(context.WithoutCancel(stop))
				defer end()
				f.drained.stop, f.drained.end = stop, end
			}
			if err := f.p.Run(ctx); err != nil {
				errs[i] = err
				cancel()
			}
			if f.drained != nil || f.persistent {
				// Let go of the subscription (a failed pipeline leaves
				// events in it): the pipelines that write to the channel
				// must not wait for room that never comes; and a
				// persistent channel's source stops moving dead letters.
				f.src.Close()
			}
			for _, c := range f.writes {
				if d.writers[c].Add(-1) == 0 {
					d.writtenAll(c)
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// releaseAPI lets go of the API's hold on the channels of the manifest.
func (d *deployment) releaseAPI() {
	for name := range d.m.Channels {
		if d.writers[name].Add(-1) == 0 {
			d.writtenAll(name)
		}
	}
}

// stats are the pipelines' counters.
func (d *deployment) stats() []engine.PipelineStats {
	out := make([]engine.PipelineStats, len(d.flows))
	for i, f := range d.flows {
		out[i] = f.p.Stats()
	}
	return out
}

// close releases everything: sources, sinks (flushing them), plugins, the
// engine.
func (d *deployment) close(ctx context.Context) error {
	var errs []error
	if d.api != nil {
		d.api.close()
	}
	for _, f := range d.flows {
		errs = append(errs, f.src.Close())
	}
	for name, s := range d.sinks {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sink[%s]: %w", name, err))
		}
	}
	for _, p := range d.plugins {
		errs = append(errs, p.Close(ctx))
	}
	errs = append(errs, d.eng.Close())
	return errors.Join(errs...)
}

// instrumentPlugins records the plugins' counters as metrics: calls,
// instances created and discarded (restarts after a trap or a limit),
// and calls ended by a limit; the connectors' restarts; and the CDC
// sources' changes, acknowledgements, lag, reconnections and malformed
// envelopes.
func (d *deployment) instrumentPlugins() error {
	m := d.tel.Meter
	calls, err1 := m.Int64ObservableCounter("aegis.plugin.calls", metric.WithUnit("{call}"),
		metric.WithDescription("Calls into a plugin for batches, merges and windows"))
	insts, err2 := m.Int64ObservableCounter("aegis.plugin.instances", metric.WithUnit("{instance}"),
		metric.WithDescription("Plugin instances by outcome: created, discarded (after a trap or a limit; the next call restarts one)"))
	limits, err3 := m.Int64ObservableCounter("aegis.plugin.limits", metric.WithUnit("{call}"),
		metric.WithDescription("Calls ended by a limit, by outcome: fuel, deadline"))
	restarts, err4 := m.Int64ObservableCounter("aegis.connector.restarts", metric.WithUnit("{restart}"),
		metric.WithDescription("Connector processes started again after a crash, a hang or invalid events"))
	changes, err5 := m.Int64ObservableCounter("aegis.cdc.changes", metric.WithUnit("{change}"),
		metric.WithDescription("Changes a postgres-cdc source handed to its pipeline, by state: read, acknowledged"))
	lag, err6 := m.Int64ObservableGauge("aegis.cdc.lag", metric.WithUnit("By"),
		metric.WithDescription("WAL between the server's end and the position a postgres-cdc source's slot confirms"))
	reconnects, err7 := m.Int64ObservableCounter("aegis.cdc.reconnects", metric.WithUnit("{connection}"),
		metric.WithDescription("Replication connections a postgres-cdc source made again after one was lost"))
	malformed, err8 := m.Int64ObservableCounter("aegis.cdc.malformed", metric.WithUnit("{envelope}"),
		metric.WithDescription("Envelopes a debezium source could not read"))
	if err := errors.Join(err1, err2, err3, err4, err5, err6, err7, err8); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	state := func(s string) metric.ObserveOption { return metric.WithAttributes(attribute.String("state", s)) }
	outcome := func(s string) metric.ObserveOption { return metric.WithAttributes(engine.AttrOutcome.String(s)) }
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i, p := range d.plugins {
			s, at := p.Stats(), metric.WithAttributeSet(d.steps[i])
			o.ObserveInt64(calls, int64(s.Calls), at)
			o.ObserveInt64(insts, int64(s.Created), at, outcome("created"))
			o.ObserveInt64(insts, int64(s.Discarded), at, outcome("discarded"))
			o.ObserveInt64(limits, int64(s.FuelExhausted), at, outcome("fuel"))
			o.ObserveInt64(limits, int64(s.Deadlines), at, outcome("deadline"))
		}
		for _, c := range d.connectors {
			o.ObserveInt64(restarts, int64(c.restarts()), metric.WithAttributeSet(c.attrs))
		}
		for _, p := range d.postgres {
			st, at := p.stats(), metric.WithAttributeSet(p.attrs)
			o.ObserveInt64(changes, int64(st.Changes), at, state("read"))
			o.ObserveInt64(changes, int64(st.Acknowledged), at, state("acknowledged"))
			o.ObserveInt64(lag, int64(st.LagBytes()), at)
			o.ObserveInt64(reconnects, int64(st.Reconnects), at)
		}
		for _, s := range d.debezium {
			o.ObserveInt64(malformed, int64(s.malformed()), metric.WithAttributeSet(s.attrs))
		}
		return nil
	}, calls, insts, limits, restarts, changes, lag, reconnects, malformed)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
