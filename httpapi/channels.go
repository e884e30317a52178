package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// Duration is a time.Duration written as Go writes it ("1m30s").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler: "1m30s", or a number of
// seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if json.Unmarshal(b, &secs) != nil {
			return fmt.Errorf("a duration is a string such as \"1m30s\" or a number of seconds")
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ChannelSpec is a channel's configuration as the API reads and writes
// it (engine.ChannelConfig; the manifest's channel block uses the same
// names). Zero fields take the engine's defaults.
type ChannelSpec struct {
	Name            string         `json:"name"`
	Persistent      bool           `json:"persistent,omitempty"`
	Buffer          int            `json:"buffer,omitempty"`
	MaxSubscribers  int            `json:"max_subscribers,omitempty"`
	SlowSubscriber  string         `json:"slow_subscriber,omitempty"` // block, drop-oldest, disconnect (in memory)
	BlockTimeout    Duration       `json:"block_timeout,omitempty"`
	Retention       *RetentionSpec `json:"retention,omitempty"`
	Replicas        int            `json:"replicas,omitempty"`         // persistent
	Discard         string         `json:"discard,omitempty"`          // old, new (persistent)
	DuplicateWindow Duration       `json:"duplicate_window,omitempty"` // persistent
}

// RetentionSpec is engine.Retention.
type RetentionSpec struct {
	MaxEvents int      `json:"max_events,omitempty"`
	MaxAge    Duration `json:"max_age,omitempty"`
	MaxBytes  int64    `json:"max_bytes,omitempty"`
}

// ChannelInfo describes a channel: its settings (defaults applied), when
// it was made, and its counters.
type ChannelInfo struct {
	ChannelSpec
	Created time.Time    `json:"created"`
	Stats   ChannelStats `json:"stats"`
}

// ChannelStats are engine.ChannelStats.
type ChannelStats struct {
	Name        string `json:"name"`
	Published   uint64 `json:"published"`
	Delivered   uint64 `json:"delivered"`
	Dropped     uint64 `json:"dropped"`
	Duplicates  uint64 `json:"duplicates"`
	Subscribers int    `json:"subscribers"`
	Lag         uint64 `json:"lag"`
	MaxLag      uint64 `json:"max_lag"`
	Pending     uint64 `json:"pending"`
	AckPending  uint64 `json:"ack_pending"`
	Redelivered uint64 `json:"redelivered"`
	Retained    int    `json:"retained"`
}

// Stats are the engine's counters over the channels a token may see.
type Stats struct {
	Channels    int            `json:"channels"`
	Subscribers int            `json:"subscribers"`
	Published   uint64         `json:"published"`
	Delivered   uint64         `json:"delivered"`
	Dropped     uint64         `json:"dropped"`
	Lag         uint64         `json:"lag"`
	Streams     int            `json:"streams"` // SSE and WebSocket clients of the API on these channels
	PerChannel  []ChannelStats `json:"per_channel"`
}

// Config converts the spec to the engine's configuration.
func (c ChannelSpec) Config() (engine.ChannelConfig, error) {
	cfg := engine.ChannelConfig{
		BufferSize:      c.Buffer,
		MaxSubscribers:  c.MaxSubscribers,
		BlockTimeout:    time.Duration(c.BlockTimeout),
		Persistent:      c.Persistent,
		Replicas:        c.Replicas,
		DuplicateWindow: time.Duration(c.DuplicateWindow),
	}
	if c.Retention != nil {
		cfg.Retention = engine.Retention{MaxEvents: c.Retention.MaxEvents, MaxAge: time.Duration(c.Retention.MaxAge), MaxBytes: c.Retention.MaxBytes}
	}
	var err error
	if c.SlowSubscriber != "" {
		if cfg.SlowSubscriber, err = engine.ParseSlowSubscriberPolicy(c.SlowSubscriber); err != nil {
			return cfg, fmt.Errorf("slow_subscriber: %w", err)
		}
	}
	if c.Discard != "" {
		if cfg.Discard, err = engine.ParseDiscardPolicy(c.Discard); err != nil {
			return cfg, fmt.Errorf("discard: %w", err)
		}
	}
	return cfg, nil
}

func specOf(name string, cfg engine.ChannelConfig) ChannelSpec {
	s := ChannelSpec{
		Name:           name,
		Persistent:     cfg.Persistent,
		Buffer:         cfg.BufferSize,
		MaxSubscribers: cfg.MaxSubscribers,
		Retention:      &RetentionSpec{MaxEvents: cfg.Retention.MaxEvents, MaxAge: Duration(cfg.Retention.MaxAge), MaxBytes: cfg.Retention.MaxBytes},
	}
	if cfg.Persistent {
		s.Replicas, s.Discard, s.DuplicateWindow = cfg.Replicas, cfg.Discard.String(), Duration(cfg.DuplicateWindow)
	} else {
		s.SlowSubscriber, s.BlockTimeout = cfg.SlowSubscriber.String(), Duration(cfg.BlockTimeout)
	}
	return s
}

func statsOf(s engine.ChannelStats) ChannelStats {
	return ChannelStats{
		Name: s.Name, Published: s.Published, Delivered: s.Delivered, Dropped: s.Dropped, Duplicates: s.Duplicates,
		Subscribers: s.Subscribers, Lag: s.Lag, MaxLag: s.MaxLag, Pending: s.Pending,
		AckPending: s.AckPending, Redelivered: s.Redelivered, Retained: s.Retained,
	}
}

func infoOf(ci engine.ChannelInfo) ChannelInfo {
	return ChannelInfo{ChannelSpec: specOf(ci.Name, ci.Config), Created: ci.Created.UTC(), Stats: statsOf(ci.Stats)}
}

// ChannelList is the answer of GET /v1/channels.
type ChannelList struct {
	Channels []ChannelInfo `json:"channels"`
}

func (s *Server) listChannels(w http.ResponseWriter, r *http.Request, p *principal) *Error {
	out := ChannelList{Channels: []ChannelInfo{}}
	for _, ci := range s.eng.Channels() {
		if p.canAny(ci.Name) {
			out.Channels = append(out.Channels, infoOf(ci))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createChannel(w http.ResponseWriter, r *http.Request, p *principal) *Error {
	var spec ChannelSpec
	if err := s.decodeBody(w, r, &spec); err != nil {
		return err
	}
	if spec.Name == "" {
		return apiErr(http.StatusBadRequest, CodeBadRequest, `the channel's "name" is missing`)
	}
	if !p.can(permAdmin, spec.Name) {
		return forbidden(p, permAdmin, spec.Name)
	}
	cfg, err := spec.Config()
	if err != nil {
		return apiErr(http.StatusBadRequest, CodeBadRequest, "channel %q: %v", spec.Name, err)
	}
	if err := s.eng.CreateChannel(spec.Name, cfg); err != nil {
		e := fromEngine(spec.Name, err)
		if e.Code == CodeInternal {
			// The engine refuses a bad configuration with plain errors.
			e = apiErr(http.StatusBadRequest, CodeBadRequest, "%v", err)
		}
		return e
	}
	ci, err := s.eng.Channel(spec.Name)
	if err != nil {
		return fromEngine(spec.Name, err)
	}
	if s.cfg.Registry != nil {
		// What is recorded is the spec as the engine took it, defaults
		// applied: a later default does not change a channel made now.
		if err := s.cfg.Registry.ChannelCreated(specOf(ci.Name, ci.Config)); err != nil {
			if derr := s.eng.DeleteChannel(spec.Name); derr != nil {
				s.log.Error("api: a channel that could not be recorded could not be deleted either", "channel", spec.Name, "error", derr)
			}
			return apiErr(http.StatusServiceUnavailable, CodeUnavailable, "channel %q could not be recorded for the host's next start, so it was not made: %v", spec.Name, err)
		}
	}
	w.Header().Set("Location", channelPath(spec.Name, ""))
	writeJSON(w, http.StatusCreated, infoOf(ci))
	return nil
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request, p *principal) *Error {
	name := r.PathValue("channel")
	if !p.canAny(name) {
		return forbidden(p, permSubscribe, name)
	}
	ci, err := s.eng.Channel(name)
	if err != nil {
		return fromEngine(name, err)
	}
	writeJSON(w, http.StatusOK, infoOf(ci))
	return nil
}

func (s *Server) deleteChannel(w http.ResponseWriter, r *http.Request, p *principal) *Error {
	name := r.PathValue("channel")
	if !p.can(permAdmin, name) {
		return forbidden(p, permAdmin, name)
	}
	if slices.Contains(s.cfg.Fixed, name) {
		return apiErr(http.StatusUnprocessableEntity, CodeUnsupported, "channel %q belongs to the host's manifest, whose pipelines use it: remove it there", name)
	}
	if err := s.eng.DeleteChannel(name); err != nil {
		return fromEngine(name, err)
	}
	if s.cfg.Registry != nil {
		if err := s.cfg.Registry.ChannelDeleted(name); err != nil {
			s.log.Error("api: a deleted channel could not be unrecorded: the host's next start makes it again", "channel", name, "error", err)
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// SubscriptionList is the answer of GET /v1/channels/{channel}/subscriptions.
type SubscriptionList struct {
	Subscriptions []SubscriptionInfo `json:"subscriptions"`
}

// SubscriptionInfo is engine.SubscriptionInfo.
type SubscriptionInfo struct {
	ID           string            `json:"id"`
	Subscriber   string            `json:"subscriber"`
	Durable      string            `json:"durable,omitempty"`
	Delivery     string            `json:"delivery"`
	Ack          string            `json:"ack"`
	Filter       string            `json:"filter,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Created      time.Time         `json:"created"`
	Buffer       int               `json:"buffer"`
	Received     uint64            `json:"received"`
	Acknowledged uint64            `json:"acknowledged"`
	Dropped      uint64            `json:"dropped"`
	Pending      int               `json:"pending"`
	AckPending   int               `json:"ack_pending"`
	Redelivered  int               `json:"redelivered"`
	DeadLettered uint64            `json:"dead_lettered"`
	Lag          uint64            `json:"lag"`
	Err          string            `json:"error,omitempty"`
}

func (s *Server) subscriptions(w http.ResponseWriter, r *http.Request, p *principal) *Error {
	name := r.PathValue("channel")
	if !p.can(permAdmin, name) {
		return forbidden(p, permAdmin, name)
	}
	subs, err := s.eng.Subscriptions(name)
	if err != nil {
		return fromEngine(name, err)
	}
	out := SubscriptionList{Subscriptions: make([]SubscriptionInfo, len(subs))}
	for i, si := range subs {
		out.Subscriptions[i] = SubscriptionInfo{
			ID: si.ID, Subscriber: si.Subscriber, Durable: si.Durable, Delivery: si.DeliveryMode.String(),
			Ack: si.AckMode.String(), Filter: si.Filter, Metadata: si.Metadata, Created: si.Created.UTC(),
			Buffer: si.BufferSize, Received: si.Received, Acknowledged: si.Acknowledged, Dropped: si.Dropped,
			Pending: si.Pending, AckPending: si.AckPending, Redelivered: si.Redelivered,
			DeadLettered: si.DeadLettered, Lag: si.Lag, Err: si.Err,
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request, p *principal) *Error {
	st := s.eng.Stats()
	out := Stats{PerChannel: []ChannelStats{}, Streams: s.streams.count(p)}
	all := p == anonymous
	if all {
		out.Channels, out.Subscribers, out.Published, out.Delivered, out.Dropped, out.Lag = st.Channels, st.Subscribers, st.Published, st.Delivered, st.Dropped, st.Lag
	}
	for _, cs := range st.PerChannel {
		if !p.canAny(cs.Name) {
			continue
		}
		c := statsOf(cs)
		out.PerChannel = append(out.PerChannel, c)
		if !all {
			out.Channels++
			out.Subscribers += c.Subscribers
			out.Published += c.Published
			out.Delivered += c.Delivered
			out.Dropped += c.Dropped
			out.Lag += c.Lag
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
