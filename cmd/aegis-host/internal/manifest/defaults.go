package manifest

import (
	"time"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/httpapi"
)

// Defaults that Load and Parse set on the structs, so that the code that
// wires a manifest reads final values. (Channel and plugin limits take
// the engine's and the host's own defaults.)
const (
	DefaultBatchMaxEvents = 256
	DefaultBatchMaxWait   = Duration(50 * time.Millisecond)
	DefaultWorkers        = 1
	DefaultErrorPolicy    = "fail"
	DefaultRetries        = 3
	DefaultBackoff        = Duration(100 * time.Millisecond)
	// DefaultMaxBackoff is the default max_backoff, or backoff when that
	// is longer.
	DefaultMaxBackoff      = Duration(5 * time.Second)
	DefaultRetryThen       = "fail"
	DefaultInterval        = Duration(time.Millisecond)
	DefaultFormat          = "event"
	DefaultSlowSubscriber  = "block"
	DefaultQueueSize       = 2048
	DefaultMemory          = ByteSize(host.DefaultMemoryPages) * memoryPage
	DefaultTimeout         = Duration(host.DefaultTimeout)
	DefaultFuel            = Fuel(host.DefaultFuel)
	DefaultMaxOutput       = ByteSize(host.DefaultMaxOutputBytes)
	DefaultBuffer          = engine.DefaultBufferSize
	DefaultRetentionEvents = engine.DefaultRetentionEvents
	// DefaultConnectorTimeout is a connector's (a plugin source's or
	// sink's) default timeout.
	DefaultConnectorTimeout = Duration(30 * time.Second)
	// DefaultConnectorMaxRestarts is a connector's default max_restarts.
	DefaultConnectorMaxRestarts = 5
	// DefaultDataDir is the default data_dir, relative to the manifest.
	DefaultDataDir = ".aegis"

	// DefaultReplicas is the default replicas of a persistent channel
	// (without nats.replicas), and of nats.replicas on a cluster.
	DefaultReplicas = 1
	// DefaultDiscard is a persistent channel's default discard.
	DefaultDiscard = "old"
	// DefaultDuplicateWindow is a persistent channel's default
	// duplicate_window, or retention.max_age when that is shorter.
	DefaultDuplicateWindow = Duration(2 * time.Minute)
	// DefaultDeliveryMode is the default delivery.mode.
	DefaultDeliveryMode = "at-least-once"
	// DefaultAckWait is the default delivery.ack_wait (without backoff).
	DefaultAckWait = Duration(30 * time.Second)
	// DefaultMaxDeliver is the default delivery.max_deliver.
	DefaultMaxDeliver = 5
	// DefaultStart is the default delivery.start.
	DefaultStart = "all"
	// DefaultCDCBatchSize is the default batch_size of postgres-cdc and
	// debezium sources.
	DefaultCDCBatchSize = cdc.DefaultBatchSize
	// DefaultStatusInterval is a postgres-cdc source's default
	// status_interval.
	DefaultStatusInterval = Duration(time.Second)

	// The defaults of the api block, the API server's own.
	DefaultAPIMaxBody          = ByteSize(httpapi.DefaultMaxBody)
	DefaultAPIMaxBatch         = httpapi.DefaultMaxBatch
	DefaultAPIRequestTimeout   = Duration(httpapi.DefaultRequestTimeout)
	DefaultAPIWriteTimeout     = Duration(httpapi.DefaultWriteTimeout)
	DefaultAPISubscriberBuffer = httpapi.DefaultSubscriberBuffer
	DefaultAPIHeartbeat        = Duration(httpapi.DefaultHeartbeat)
)

// NoMaxDeliver is the delivery.max_deliver that sets no limit: an event
// is delivered again until it is acknowledged.
const NoMaxDeliver = -1

// applyDefaults fills in what a valid manifest leaves out. Only fields
// that apply are filled (a generator gets an interval, a file source a
// format), so that a manifest with its defaults is still valid and reads
// back the same.
func applyDefaults(m *Manifest) {
	if m.DataDir == "" {
		m.DataDir = DefaultDataDir
	}
	if m.API != nil {
		apiDefaults(m.API)
	}
	replicas := DefaultReplicas
	if n := m.NATS; n != nil && len(n.URLs) > 0 {
		if n.Replicas == 0 {
			n.Replicas = DefaultReplicas
		}
		replicas = n.Replicas
	}
	for name, c := range m.Channels {
		if c.Buffer == 0 {
			c.Buffer = DefaultBuffer
		}
		if c.Retention == nil {
			c.Retention = &Retention{}
		}
		if c.Persistent {
			if c.Replicas == 0 {
				c.Replicas = replicas
			}
			if c.Discard == "" {
				c.Discard = DefaultDiscard
			}
			if c.DuplicateWindow == 0 {
				c.DuplicateWindow = DefaultDuplicateWindow
				if a := c.Retention.MaxAge; a > 0 && a < c.DuplicateWindow {
					c.DuplicateWindow = a
				}
			}
		} else {
			if c.SlowSubscriber == "" {
				c.SlowSubscriber = DefaultSlowSubscriber
			}
			if c.Retention.MaxEvents == 0 {
				c.Retention.MaxEvents = DefaultRetentionEvents
			}
		}
		m.Channels[name] = c
	}
	for name, s := range m.Sources {
		switch s.Type {
		case "generator":
			if s.Interval == 0 {
				s.Interval = DefaultInterval
			}
		case "file", "stdin":
			if s.Format == "" {
				s.Format = DefaultFormat
			}
		case "plugin":
			connectorDefaults(&s.With, &s.Timeout, &s.MaxRestarts)
		case "postgres-cdc":
			if s.Slot == "" {
				s.Slot = cdc.DefaultSlot(name)
			}
			if s.Publication == "" {
				s.Publication = s.Slot
			}
			if s.StatusInterval == 0 {
				s.StatusInterval = DefaultStatusInterval
			}
			cdcDefaults(&s)
		case "debezium":
			cdcDefaults(&s)
		}
		m.Sources[name] = s
	}
	for name, s := range m.Sinks {
		switch s.Type {
		case "stdout", "file":
			if s.Format == "" {
				s.Format = DefaultFormat
			}
		case "plugin":
			connectorDefaults(&s.With, &s.Timeout, &s.MaxRestarts)
		}
		m.Sinks[name] = s
	}
	for i := range m.Pipelines {
		p := &m.Pipelines[i]
		if p.Batch == nil {
			p.Batch = &Batch{}
		}
		if p.Batch.MaxEvents == 0 {
			p.Batch.MaxEvents = DefaultBatchMaxEvents
		}
		if p.Batch.MaxWait == 0 {
			p.Batch.MaxWait = DefaultBatchMaxWait
		}
		if c, ok := m.Channels[p.From]; ok && c.Persistent {
			deliveryDefaults(p)
		}
		for k := range p.Steps {
			stepDefaults(&p.Steps[k])
		}
	}
	if t := m.Telemetry; t != nil {
		telemetryDefaults(t)
	}
}

// deliveryDefaults fills in the delivery of a pipeline that reads a
// persistent channel: ack_wait only without backoff, which replaces it.
func deliveryDefaults(p *Pipeline) {
	if p.Delivery == nil {
		p.Delivery = &Delivery{}
	}
	d := p.Delivery
	if d.Mode == "" {
		d.Mode = DefaultDeliveryMode
	}
	if d.AckWait == 0 && len(d.Backoff) == 0 {
		d.AckWait = DefaultAckWait
	}
	if d.MaxDeliver == 0 {
		d.MaxDeliver = DefaultMaxDeliver
	}
	if d.Start == "" {
		d.Start = DefaultStart
	}
}

// cdcDefaults sets what postgres-cdc and debezium sources share: before
// images kept, and the batch size. Empty lists of a table become nil, as
// good as them, so that the manifest written back out reads the same.
func cdcDefaults(s *Source) {
	if s.IncludeBefore == nil {
		s.IncludeBefore = new(true)
	}
	if s.BatchSize == 0 {
		s.BatchSize = DefaultCDCBatchSize
	}
	for i := range s.Tables {
		t := &s.Tables[i]
		if len(t.Changes) == 0 {
			t.Changes = nil
		}
		if len(t.Columns) == 0 {
			t.Columns = nil
		}
	}
}

// telemetryDefaults sets the traces' queue size, and nothing else: the
// OTEL_* variables decide what the manifest leaves out. Empty mappings
// become nil, which they are as good as, so that a manifest written back
// out (without them) reads the same.
func telemetryDefaults(t *Telemetry) {
	if len(t.Resource) == 0 {
		t.Resource = nil
	}
	if tr := t.Traces; tr != nil {
		if tr.QueueSize == 0 {
			tr.QueueSize = DefaultQueueSize
		}
		if len(tr.Headers) == 0 {
			tr.Headers = nil
		}
	}
	if m := t.Metrics; m != nil && len(m.Headers) == 0 {
		m.Headers = nil
	}
}

// connectorDefaults sets the timeout and max_restarts of a plugin source
// or sink. An empty with becomes nil, which it is as good as (both hand
// the connector {}), so that the manifest written back out (without it)
// reads the same.
func connectorDefaults(with *map[string]any, timeout *Duration, maxRestarts **int) {
	if len(*with) == 0 {
		*with = nil
	}
	if *timeout == 0 {
		*timeout = DefaultConnectorTimeout
	}
	if *maxRestarts == nil {
		*maxRestarts = new(int(DefaultConnectorMaxRestarts))
	}
}

func stepDefaults(s *Step) {
	if s.Workers == 0 {
		s.Workers = DefaultWorkers
	}
	if s.OnError == nil {
		s.OnError = &ErrorPolicy{}
	}
	if e := s.OnError; e.Policy == "" {
		e.Policy = DefaultErrorPolicy
	} else if e.Policy == "retry" {
		if e.Retries == 0 {
			e.Retries = DefaultRetries
		}
		if e.Backoff == 0 {
			e.Backoff = DefaultBackoff
		}
		if e.MaxBackoff == 0 {
			e.MaxBackoff = max(DefaultMaxBackoff, e.Backoff)
		}
		if e.Then == "" {
			e.Then = DefaultRetryThen
		}
	}
	if s.Plugin != "" {
		if len(s.With) == 0 {
			s.With = nil // as good as {} (the host hands the plugin {}), and it reads back the same
		}
		if s.Grants != nil && len(s.Grants.Env) == 0 {
			s.Grants.Env = nil // as good as {}, and it reads back the same
		}
		if s.Limits == nil {
			s.Limits = &Limits{}
		}
		l := s.Limits
		if l.Memory == 0 {
			l.Memory = DefaultMemory
		}
		if l.Timeout == 0 {
			l.Timeout = DefaultTimeout
		}
		if l.Fuel == 0 {
			l.Fuel = DefaultFuel
		}
		if l.MaxOutput == 0 {
			l.MaxOutput = DefaultMaxOutput
		}
		if s.Aggregate != nil && s.Kind == "" {
			s.Kind = "aggregate"
		}
	}
	if a := s.Aggregate; a != nil && s.Plugin == "" {
		if a.EmitType == "" {
			a.EmitType = s.Name
		}
		for i := range a.Functions {
			a.Functions[i].As = defaultAs(a.Functions[i])
		}
	}
}

// apiDefaults fills in the limits an api block leaves out.
func apiDefaults(a *API) {
	if a.MaxBody == 0 {
		a.MaxBody = DefaultAPIMaxBody
	}
	if a.MaxBatch == 0 {
		a.MaxBatch = DefaultAPIMaxBatch
	}
	if a.RequestTimeout == 0 {
		a.RequestTimeout = DefaultAPIRequestTimeout
	}
	if a.WriteTimeout == 0 {
		a.WriteTimeout = DefaultAPIWriteTimeout
	}
	if a.SubscriberBuffer == 0 {
		a.SubscriberBuffer = DefaultAPISubscriberBuffer
	}
	if a.Heartbeat == 0 {
		a.Heartbeat = DefaultAPIHeartbeat
	}
}
