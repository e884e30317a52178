package engine

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics the engine records when given a meter ([Config.Meter],
// [PipelineConfig.Meter]). Counters are cumulative since the engine or
// pipeline started.
const (
	// MetricStepEvents counts a stage's events by aegis.outcome: in, out,
	// errored (failed, before the error policy), skipped, dead_letter,
	// late (an aggregation's late events).
	MetricStepEvents = "aegis.step.events"
	// MetricStepRetries counts the calls a stage retried.
	MetricStepRetries = "aegis.step.retries"
	// MetricStepFuel counts the fuel a metered stage used.
	MetricStepFuel = "aegis.step.fuel"
	// MetricStepDuration is the time a stage took per batch, error policy
	// included, in seconds.
	MetricStepDuration = "aegis.step.duration"
	// MetricBatchSize is the number of events per batch a pipeline's
	// source gave.
	MetricBatchSize = "aegis.pipeline.batch.size"
	// MetricChannelEvents counts a channel's events by aegis.outcome:
	// published, delivered, dropped (by its slow-subscriber policy).
	MetricChannelEvents = "aegis.channel.events"
	// MetricChannelSubscribers is how many subscriptions a channel has.
	MetricChannelSubscribers = "aegis.channel.subscribers"
	// MetricSubscriptionLag is how many events a subscription has not
	// finished ([SubscriptionInfo.Lag]), by channel, aegis.subscriber and
	// aegis.subscription: those waiting in its buffer (in memory); on a
	// persistent channel, those not yet delivered plus those delivered
	// and awaiting an acknowledgement, so an event counts until it is
	// acknowledged and a redelivery keeps it counted.
	MetricSubscriptionLag = "aegis.subscription.lag"
)

// Attribute keys of metrics.
const (
	AttrOutcome      = attribute.Key("aegis.outcome")
	AttrChannel      = attribute.Key("aegis.channel")
	AttrSubscriber   = attribute.Key("aegis.subscriber")
	AttrSubscription = attribute.Key("aegis.subscription")
)

var (
	outcomeIn         = AttrOutcome.String("in")
	outcomeOut        = AttrOutcome.String("out")
	outcomeErrored    = AttrOutcome.String("errored")
	outcomeSkipped    = AttrOutcome.String("skipped")
	outcomeDeadLetter = AttrOutcome.String("dead_letter")
	outcomeLate       = AttrOutcome.String("late")
	outcomePublished  = AttrOutcome.String("published")
	outcomeDelivered  = AttrOutcome.String("delivered")
	outcomeDropped    = AttrOutcome.String("dropped")
)

// pipelineMetrics are a pipeline's instruments.
type pipelineMetrics struct {
	duration      metric.Float64Histogram
	batchSize     metric.Int64Histogram
	pipelineAttrs metric.MeasurementOption
	callback      metric.Registration // the counters' callback, until Close
}

func newPipelineMetrics(p *Pipeline, m metric.Meter) (*pipelineMetrics, error) {
	pm := &pipelineMetrics{pipelineAttrs: metric.WithAttributes(AttrPipeline.String(p.cfg.Name))}
	var err1, err2, err3, err4, err5 error
	pm.duration, err1 = m.Float64Histogram(MetricStepDuration, metric.WithUnit("s"),
		metric.WithDescription("Time a step took per batch, error policy included"),
		metric.WithExplicitBucketBoundaries(0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))
	pm.batchSize, err2 = m.Int64Histogram(MetricBatchSize, metric.WithUnit("{event}"),
		metric.WithDescription("Events per batch read from the pipeline's source"),
		metric.WithExplicitBucketBoundaries(1, 10, 50, 100, 250, 500, 1000, 5000, 10000))
	events, err3 := m.Int64ObservableCounter(MetricStepEvents, metric.WithUnit("{event}"),
		metric.WithDescription("Events of a step, by outcome: in, out, errored, skipped, dead_letter, late"))
	retries, err4 := m.Int64ObservableCounter(MetricStepRetries, metric.WithUnit("{call}"),
		metric.WithDescription("Calls a step retried under its error policy"))
	fuel, err5 := m.Int64ObservableCounter(MetricStepFuel, metric.WithUnit("{instruction}"),
		metric.WithDescription("Fuel a metered step used (WebAssembly instructions)"))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return nil, err
	}
	var err error
	pm.callback, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, st := range p.stages {
			s := st.stats()
			set := st.metricAttrs
			for _, c := range []struct {
				n       uint64
				outcome attribute.KeyValue
			}{{s.In, outcomeIn}, {s.Out, outcomeOut}, {s.Failed, outcomeErrored}, {s.Skipped, outcomeSkipped},
				{s.DeadLetter, outcomeDeadLetter}, {s.Late, outcomeLate}} {
				o.ObserveInt64(events, int64(c.n), set, metric.WithAttributes(c.outcome))
			}
			o.ObserveInt64(retries, int64(s.Retries), set)
			if s.Fuel > 0 {
				o.ObserveInt64(fuel, int64(s.Fuel), set)
			}
		}
		return nil
	}, events, retries, fuel)
	return pm, err
}

// stepDuration records how long a stage took on a batch.
func (pm *pipelineMetrics) stepDuration(ctx context.Context, st *stage, d time.Duration) {
	pm.duration.Record(ctx, d.Seconds(), st.metricAttrs)
}

// Instrument records the engine's metrics with m: events per channel,
// subscriptions, and each subscription's lag (see the Metric constants).
// They are observed when m's reader collects, so publishing pays nothing
// for them. Close stops them.
func (e *Engine) Instrument(m metric.Meter) error {
	reg, err := e.instrument(m)
	if err != nil {
		return err
	}
	e.mu.Lock()
	closed := e.closed
	if !closed {
		e.metrics = append(e.metrics, reg)
	}
	e.mu.Unlock()
	if closed {
		// Not under e.mu: a collection running the callback holds the
		// meter's lock, which Unregister waits for, and the callback
		// takes e.mu.
		return reg.Unregister()
	}
	return nil
}

func (e *Engine) instrument(m metric.Meter) (metric.Registration, error) {
	events, err1 := m.Int64ObservableCounter(MetricChannelEvents, metric.WithUnit("{event}"),
		metric.WithDescription("Events of a channel, by outcome: published, delivered, dropped"))
	subs, err2 := m.Int64ObservableGauge(MetricChannelSubscribers, metric.WithUnit("{subscription}"),
		metric.WithDescription("Subscriptions of a channel"))
	lag, err3 := m.Int64ObservableGauge(MetricSubscriptionLag, metric.WithUnit("{event}"),
		metric.WithDescription("Events a subscription has not finished: buffered (in memory), or undelivered plus awaiting an ack (persistent)"))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, info := range e.Channels() {
			ch := AttrChannel.String(info.Name)
			s := info.Stats
			o.ObserveInt64(events, int64(s.Published), metric.WithAttributes(ch, outcomePublished))
			o.ObserveInt64(events, int64(s.Delivered), metric.WithAttributes(ch, outcomeDelivered))
			o.ObserveInt64(events, int64(s.Dropped), metric.WithAttributes(ch, outcomeDropped))
			o.ObserveInt64(subs, int64(s.Subscribers), metric.WithAttributes(ch))
			subsInfo, err := e.Subscriptions(info.Name)
			if err != nil {
				continue // deleted meanwhile
			}
			for _, si := range subsInfo {
				o.ObserveInt64(lag, int64(si.Lag), metric.WithAttributes(ch, AttrSubscriber.String(si.Subscriber), AttrSubscription.String(si.ID)))
			}
		}
		return nil
	}, events, subs, lag)
}
