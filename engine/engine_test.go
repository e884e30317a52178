package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// Helpers of the pub/sub tests. Their names start with "ps" so that they do
// not collide with the helpers of the event-model tests in this package.

// psWait bounds every wait of these tests: a test that would hang fails.
const psWait = 10 * time.Second

// psQuiet is how long a test waits for something that must NOT happen (a
// publisher that must stay blocked, a receiver that must keep waiting).
const psQuiet = 20 * time.Millisecond

// psContext returns a context that ends after psWait.
func psContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), psWait)
	t.Cleanup(cancel)
	return ctx
}

// psEngine returns a new engine that is closed when the test ends.
func psEngine(t testing.TB, cfg engine.Config) *engine.Engine {
	t.Helper()
	e := engine.New(cfg)
	t.Cleanup(func() { e.Close() })
	return e
}

func psCreate(t testing.TB, e *engine.Engine, name string, cfg engine.ChannelConfig) {
	t.Helper()
	if err := e.CreateChannel(name, cfg); err != nil {
		t.Fatalf("CreateChannel(%q): %v", name, err)
	}
}

// psSubscribe subscribes and closes the subscription when the test ends.
func psSubscribe(t testing.TB, e *engine.Engine, channel string, opts engine.SubscribeOptions) *engine.Subscription {
	t.Helper()
	s, err := e.Subscribe(channel, opts)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", channel, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// psEvent returns a valid event that carries n as its data.
func psEvent(n int) engine.Event {
	return engine.Event{Type: "test.event", Source: "urn:test", Data: engine.IntData(int64(n))}
}

// psTyped returns psEvent(n) with the given type.
func psTyped(n int, typ engine.EventType) engine.Event {
	ev := psEvent(n)
	ev.Type = typ
	return ev
}

// psBatch returns the events psEvent(n) for each n.
func psBatch(ns ...int) engine.EventBatch {
	b := engine.NewEventBatch(len(ns))
	for _, n := range ns {
		b.Append(psEvent(n))
	}
	return b
}

// psRange returns from, from+1, ..., to-1.
func psRange(from, to int) []int {
	out := make([]int, 0, max(0, to-from))
	for n := from; n < to; n++ {
		out = append(out, n)
	}
	return out
}

// psNum returns the number an event carries.
func psNum(t testing.TB, ev engine.Event) int {
	t.Helper()
	n, ok := ev.Data.AsInt()
	if !ok {
		t.Fatalf("event %v carries %v, want an int", ev.ID, ev.Data)
	}
	return int(n)
}

func psNums(t testing.TB, evs []engine.Event) []int {
	t.Helper()
	out := make([]int, len(evs))
	for i, ev := range evs {
		out[i] = psNum(t, ev)
	}
	return out
}

// psPublish publishes psEvent(n) for each n, one Publish call each.
func psPublish(t testing.TB, e *engine.Engine, channel string, ns ...int) {
	t.Helper()
	for _, n := range ns {
		if err := e.Publish(psContext(t), channel, psEvent(n)); err != nil {
			t.Fatalf("Publish(%q, %d): %v", channel, n, err)
		}
	}
}

// psRecvNums receives n events and returns their numbers.
func psRecvNums(t testing.TB, s *engine.Subscription, n int) []int {
	t.Helper()
	ctx := psContext(t)
	out := make([]int, 0, n)
	for range n {
		ev, err := s.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv after %d of %d events %v: %v", len(out), n, out, err)
		}
		out = append(out, psNum(t, ev))
	}
	return out
}

// psDrain takes every event a subscription holds, without waiting.
func psDrain(t testing.TB, s *engine.Subscription) []int {
	t.Helper()
	var out []int
	for {
		ev, ok, err := s.TryRecv()
		if err != nil {
			t.Fatalf("TryRecv after %v: %v", out, err)
		}
		if !ok {
			return out
		}
		out = append(out, psNum(t, ev))
	}
}

// psNoEvent fails if the subscription holds an event.
func psNoEvent(t testing.TB, s *engine.Subscription) {
	t.Helper()
	ev, ok, err := s.TryRecv()
	if err != nil {
		t.Fatalf("TryRecv: %v", err)
	}
	if ok {
		t.Fatalf("TryRecv returned event %v (data %v), want none", ev.ID, ev.Data)
	}
}

// psEnded receives until the subscription ends and returns what it got and
// the error that ended it.
func psEnded(t testing.TB, s *engine.Subscription) ([]int, error) {
	t.Helper()
	ctx := psContext(t)
	var got []int
	for {
		ev, err := s.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the subscription did not end within %v; it received %v", psWait, got)
			}
			return got, err
		}
		got = append(got, psNum(t, ev))
	}
}

// psHistory returns the numbers of a channel's history for q.
func psHistory(t testing.TB, e *engine.Engine, channel string, q engine.HistoryQuery) []int {
	t.Helper()
	evs, err := e.History(channel, q)
	if err != nil {
		t.Fatalf("History(%q, %+v): %v", channel, q, err)
	}
	return psNums(t, evs)
}

func psChannelStats(t testing.TB, e *engine.Engine, channel string) engine.ChannelStats {
	t.Helper()
	st, err := e.ChannelStats(channel)
	if err != nil {
		t.Fatalf("ChannelStats(%q): %v", channel, err)
	}
	return st
}

func psSubscriptionIDs(t testing.TB, e *engine.Engine, channel string) []string {
	t.Helper()
	infos, err := e.Subscriptions(channel)
	if err != nil {
		t.Fatalf("Subscriptions(%q): %v", channel, err)
	}
	ids := make([]string, len(infos))
	for i, info := range infos {
		ids[i] = info.ID
	}
	return ids
}

// psProbe subscribes a filter that selects nothing and reports every call.
// The publisher runs filters after it has taken the channel and before it
// delivers, so a receive from the returned channel means that a publish is
// under way and is past its lookup. The probe is never a blocker, since it
// selects nothing.
func psProbe(t testing.TB, e *engine.Engine, channel string) <-chan struct{} {
	t.Helper()
	called := make(chan struct{}, 1)
	psSubscribe(t, e, channel, engine.SubscribeOptions{Filter: engine.FilterFunc(func(*engine.Event) bool {
		select {
		case called <- struct{}{}:
		default:
		}
		return false
	})})
	return called
}

// psAwait waits for a receive from c or fails with what.
func psAwait[T any](t testing.TB, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(psWait):
		t.Fatalf("timed out after %v waiting for %s", psWait, what)
		panic("unreachable")
	}
}

// psNotYet fails if c delivers within psQuiet.
func psNotYet[T any](t testing.TB, c <-chan T, what string) {
	t.Helper()
	select {
	case v := <-c:
		t.Fatalf("%s happened (%v), but it should not have yet", what, v)
	case <-time.After(psQuiet):
	}
}

// psEventually polls cond until it holds, or fails after psWait.
func psEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(psWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", psWait, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// psGo runs f in a goroutine and returns a channel that gets its error.
func psGo(f func() error) <-chan error {
	c := make(chan error, 1)
	go func() { c <- f() }()
	return c
}

// psClock is a settable clock for Config.Now.
type psClock struct{ ns atomic.Int64 }

func psNewClock(t time.Time) *psClock {
	c := &psClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *psClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *psClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// psIsPublishError checks that err wraps want inside a *PublishError for
// channel that reports published events, and returns it.
func psIsPublishError(t testing.TB, err error, channel string, published int, want error) *engine.PublishError {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want one wrapping %v", err, want)
	}
	var pe *engine.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *PublishError", err, err)
	}
	if pe.Channel != channel || pe.Published != published {
		t.Errorf("PublishError{Channel: %q, Published: %d}, want {%q, %d}", pe.Channel, pe.Published, channel, published)
	}
	return pe
}

func TestCreateChannelNames(t *testing.T) {
	tests := []struct {
		name    string
		channel string
		wantErr string // "" when the name is valid
	}{
		{name: "simple", channel: "orders"},
		{name: "dots and dashes", channel: "orders.eu-west-1"},
		{name: "urn with slashes", channel: "urn:shop:checkout/v1"},
		{name: "non-ASCII letters", channel: "événements-日本"},
		{name: "longest", channel: strings.Repeat("a", engine.MaxChannelNameLen)},
		{name: "empty", channel: "", wantErr: "empty"},
		{name: "one byte too long", channel: strings.Repeat("a", engine.MaxChannelNameLen+1), wantErr: "256 bytes"},
		{name: "invalid UTF-8", channel: "orders\xff", wantErr: "UTF-8"},
		{name: "space", channel: "two words", wantErr: "white space"},
		{name: "tab", channel: "a\tb", wantErr: "white space"},
		{name: "newline", channel: "orders\n", wantErr: "white space"},
		{name: "NUL", channel: "a\x00b", wantErr: "control"},
		{name: "DEL", channel: "a\x7fb", wantErr: "control"},
		{name: "no-break space", channel: "a\u00a0b", wantErr: "white space"},
		{name: "ideographic space", channel: "a\u3000b", wantErr: "white space"},
		{name: "line separator", channel: "a\u2028b", wantErr: "white space"},
		{name: "C1 control", channel: "a\u0085b", wantErr: "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := psEngine(t, engine.Config{})
			err := e.CreateChannel(tt.channel, engine.ChannelConfig{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CreateChannel(%q): %v", tt.channel, err)
				}
				info, err := e.Channel(tt.channel)
				if err != nil || info.Name != tt.channel {
					t.Fatalf("Channel(%q) = %q, %v; want the channel", tt.channel, info.Name, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CreateChannel(%q) succeeded, want an error about %q", tt.channel, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("CreateChannel(%q) error %q does not mention %q", tt.channel, err, tt.wantErr)
			}
			if n := len(e.Channels()); n != 0 {
				t.Errorf("a refused name left %d channel(s)", n)
			}
		})
	}
}

func TestCreateChannelExists(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "orders", engine.ChannelConfig{BufferSize: 8})
	err := e.CreateChannel("orders", engine.ChannelConfig{BufferSize: 16})
	if !errors.Is(err, engine.ErrChannelExists) {
		t.Fatalf("second CreateChannel: %v, want ErrChannelExists", err)
	}
	if !strings.Contains(err.Error(), "orders") {
		t.Errorf("error %q does not name the channel", err)
	}
	info, err := e.Channel("orders")
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.BufferSize != 8 {
		t.Errorf("the refused CreateChannel changed the config: BufferSize %d, want 8", info.Config.BufferSize)
	}
}

func TestChannelNotFound(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "present", engine.ChannelConfig{})
	ctx := psContext(t)
	tests := []struct {
		name string
		call func() error
	}{
		{name: "Channel", call: func() error { _, err := e.Channel("missing"); return err }},
		{name: "DeleteChannel", call: func() error { return e.DeleteChannel("missing") }},
		{name: "Publish", call: func() error { return e.Publish(ctx, "missing", psEvent(1)) }},
		{name: "PublishBatch", call: func() error { return e.PublishBatch(ctx, "missing", psBatch(1, 2)) }},
		{name: "PublishBatch empty", call: func() error { return e.PublishBatch(ctx, "missing", engine.EventBatch{}) }},
		{name: "PublishToMany", call: func() error { return e.PublishToMany(ctx, []string{"present", "missing"}, psEvent(1)) }},
		{name: "Subscribe", call: func() error { _, err := e.Subscribe("missing", engine.SubscribeOptions{}); return err }},
		{name: "Subscriptions", call: func() error { _, err := e.Subscriptions("missing"); return err }},
		{name: "History", call: func() error { _, err := e.History("missing", engine.HistoryQuery{}); return err }},
		{name: "ChannelStats", call: func() error { _, err := e.ChannelStats("missing"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, engine.ErrChannelNotFound) {
				t.Fatalf("error %v, want ErrChannelNotFound", err)
			}
			if !strings.Contains(err.Error(), "missing") {
				t.Errorf("error %q does not name the channel", err)
			}
		})
	}
	if st := e.Stats(); st.Published != 0 || st.Subscribers != 0 {
		t.Errorf("calls on a missing channel changed the stats: %+v", st)
	}
}

func TestDeleteChannel(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "orders", engine.ChannelConfig{})
	psCreate(t, e, "other", engine.ChannelConfig{})
	psPublish(t, e, "orders", 1, 2, 3)
	if err := e.DeleteChannel("orders"); err != nil {
		t.Fatalf("DeleteChannel: %v", err)
	}
	if _, err := e.Channel("orders"); !errors.Is(err, engine.ErrChannelNotFound) {
		t.Errorf("Channel after delete: %v, want ErrChannelNotFound", err)
	}
	if err := e.DeleteChannel("orders"); !errors.Is(err, engine.ErrChannelNotFound) {
		t.Errorf("second DeleteChannel: %v, want ErrChannelNotFound", err)
	}
	if names := psChannelNames(e); !slices.Equal(names, []string{"other"}) {
		t.Errorf("Channels() = %v, want [other]", names)
	}
	// The name is free again, and the new channel starts empty.
	psCreate(t, e, "orders", engine.ChannelConfig{})
	if got := psHistory(t, e, "orders", engine.HistoryQuery{}); len(got) != 0 {
		t.Errorf("the re-created channel has history %v, want none", got)
	}
	if st := psChannelStats(t, e, "orders"); st.Published != 0 || st.Retained != 0 {
		t.Errorf("the re-created channel has stats %+v, want zero counters", st)
	}
}

func psChannelNames(e *engine.Engine) []string {
	var names []string
	for _, info := range e.Channels() {
		names = append(names, info.Name)
	}
	return names
}

func TestChannelsSortedWithInfo(t *testing.T) {
	clock := psNewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	e := psEngine(t, engine.Config{Now: clock.Now})
	for _, name := range []string{"c", "a", "b"} {
		psCreate(t, e, name, engine.ChannelConfig{BufferSize: 4})
		clock.Advance(time.Second)
	}
	psPublish(t, e, "b", 1, 2)
	infos := e.Channels()
	if names := psChannelNames(e); !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Fatalf("Channels() names %v, want [a b c]", names)
	}
	wantCreated := map[string]time.Time{
		"c": time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		"a": time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC),
		"b": time.Date(2026, 1, 2, 3, 4, 7, 0, time.UTC),
	}
	for _, info := range infos {
		if !info.Created.Equal(wantCreated[info.Name]) {
			t.Errorf("channel %s Created %v, want %v (from Config.Now)", info.Name, info.Created, wantCreated[info.Name])
		}
		if info.Config.BufferSize != 4 {
			t.Errorf("channel %s BufferSize %d, want 4", info.Name, info.Config.BufferSize)
		}
		if info.Stats.Name != info.Name {
			t.Errorf("channel %s Stats.Name %q", info.Name, info.Stats.Name)
		}
	}
	if infos[1].Stats.Published != 2 || infos[1].Stats.Retained != 2 {
		t.Errorf("channel b stats %+v, want 2 published and retained", infos[1].Stats)
	}
	one, err := e.Channel("b")
	if err != nil {
		t.Fatal(err)
	}
	if one.Name != "b" || one.Config != infos[1].Config || !one.Created.Equal(infos[1].Created) || one.Stats != infos[1].Stats {
		t.Errorf("Channel(b) = %+v, want what Channels() says: %+v", one, infos[1])
	}
}

func TestMaxChannels(t *testing.T) {
	e := psEngine(t, engine.Config{MaxChannels: 2})
	psCreate(t, e, "a", engine.ChannelConfig{})
	psCreate(t, e, "b", engine.ChannelConfig{})
	err := e.CreateChannel("c", engine.ChannelConfig{})
	if !errors.Is(err, engine.ErrTooManyChannels) {
		t.Fatalf("third CreateChannel: %v, want ErrTooManyChannels", err)
	}
	if !strings.Contains(err.Error(), "2") {
		t.Errorf("error %q does not say the limit", err)
	}
	if err := e.DeleteChannel("a"); err != nil {
		t.Fatal(err)
	}
	if err := e.CreateChannel("c", engine.ChannelConfig{}); err != nil {
		t.Fatalf("CreateChannel after a delete freed a slot: %v", err)
	}
}

func TestMaxChannelsConcurrent(t *testing.T) {
	const limit, tries = 5, 64
	e := psEngine(t, engine.Config{MaxChannels: limit})
	start := make(chan struct{})
	var wg sync.WaitGroup
	var ok atomic.Int32
	errs := make(chan error, tries)
	for i := range tries {
		wg.Go(func() {
			<-start
			err := e.CreateChannel(fmt.Sprintf("ch-%02d", i), engine.ChannelConfig{})
			if err == nil {
				ok.Add(1)
			} else if !errors.Is(err, engine.ErrTooManyChannels) {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("CreateChannel: %v, want nil or ErrTooManyChannels", err)
	}
	if got := ok.Load(); got != limit {
		t.Errorf("%d of %d concurrent CreateChannel calls succeeded, want exactly %d", got, tries, limit)
	}
	if n := len(e.Channels()); n != limit {
		t.Errorf("%d channels exist, want %d", n, limit)
	}
}

func TestChannelConfigDefaults(t *testing.T) {
	tests := []struct {
		name   string
		engine engine.Config
		cfg    engine.ChannelConfig
		want   engine.ChannelConfig
	}{
		{
			name: "zero config",
			want: engine.ChannelConfig{
				BufferSize:     engine.DefaultBufferSize,
				Retention:      engine.Retention{MaxEvents: engine.DefaultRetentionEvents},
				SlowSubscriber: engine.Block,
				BlockTimeout:   engine.DefaultBlockTimeout,
			},
		},
		{
			name:   "subscriber limit from the engine",
			engine: engine.Config{MaxSubscribersPerChannel: 7},
			want: engine.ChannelConfig{
				BufferSize:     engine.DefaultBufferSize,
				MaxSubscribers: 7,
				Retention:      engine.Retention{MaxEvents: engine.DefaultRetentionEvents},
				BlockTimeout:   engine.DefaultBlockTimeout,
			},
		},
		{
			name:   "explicit values kept",
			engine: engine.Config{MaxSubscribersPerChannel: 7},
			cfg: engine.ChannelConfig{
				BufferSize:     8,
				MaxSubscribers: 3,
				Retention:      engine.Retention{MaxEvents: 10, MaxAge: time.Minute},
				SlowSubscriber: engine.DropOldest,
				BlockTimeout:   time.Second,
			},
			want: engine.ChannelConfig{
				BufferSize:     8,
				MaxSubscribers: 3,
				Retention:      engine.Retention{MaxEvents: 10, MaxAge: time.Minute},
				SlowSubscriber: engine.DropOldest,
				BlockTimeout:   time.Second,
			},
		},
		{
			name:   "negative subscriber limit and retention kept",
			engine: engine.Config{MaxSubscribersPerChannel: 7},
			cfg:    engine.ChannelConfig{MaxSubscribers: -1, Retention: engine.Retention{MaxEvents: -1}, SlowSubscriber: engine.Disconnect},
			want: engine.ChannelConfig{
				BufferSize:     engine.DefaultBufferSize,
				MaxSubscribers: -1,
				Retention:      engine.Retention{MaxEvents: -1},
				SlowSubscriber: engine.Disconnect,
				BlockTimeout:   engine.DefaultBlockTimeout,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := psEngine(t, tt.engine)
			psCreate(t, e, "ch", tt.cfg)
			info, err := e.Channel("ch")
			if err != nil {
				t.Fatal(err)
			}
			if info.Config != tt.want {
				t.Errorf("Config = %+v, want %+v", info.Config, tt.want)
			}
		})
	}
}

func TestChannelConfigInvalid(t *testing.T) {
	tests := []struct {
		name    string
		cfg     engine.ChannelConfig
		wantErr string
	}{
		{name: "negative buffer", cfg: engine.ChannelConfig{BufferSize: -1}, wantErr: "buffer size -1"},
		{name: "negative max age", cfg: engine.ChannelConfig{Retention: engine.Retention{MaxAge: -time.Second}}, wantErr: "max age"},
		{name: "unknown policy", cfg: engine.ChannelConfig{SlowSubscriber: engine.Disconnect + 1}, wantErr: "policy"},
		{name: "negative block timeout", cfg: engine.ChannelConfig{BlockTimeout: -time.Millisecond}, wantErr: "block timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := psEngine(t, engine.Config{})
			err := e.CreateChannel("ch", tt.cfg)
			if err == nil {
				t.Fatalf("CreateChannel(%+v) succeeded, want an error", tt.cfg)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "ch") {
				t.Errorf("error %q, want one that names the channel and mentions %q", err, tt.wantErr)
			}
			if _, err := e.Channel("ch"); !errors.Is(err, engine.ErrChannelNotFound) {
				t.Errorf("the refused channel exists: %v", err)
			}
		})
	}
}

func TestPublishAssignsIDAndTime(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 123, time.UTC)
	givenID := engine.NewEventID()
	givenTime := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC).UnixNano()
	tests := []struct {
		name   string
		id     engine.EventID
		time   int64
		wantID engine.EventID // zero: a new version 7 ID
	}{
		{name: "both zero"},
		{name: "ID given", id: givenID, wantID: givenID},
		{name: "time given", time: givenTime},
		{name: "both given", id: givenID, time: givenTime, wantID: givenID},
	}
	publishers := []struct {
		name    string
		publish func(ctx context.Context, e *engine.Engine, ev engine.Event) error
	}{
		{name: "Publish", publish: func(ctx context.Context, e *engine.Engine, ev engine.Event) error {
			return e.Publish(ctx, "ch", ev)
		}},
		{name: "PublishBatch", publish: func(ctx context.Context, e *engine.Engine, ev engine.Event) error {
			return e.PublishBatch(ctx, "ch", engine.EventBatch{Events: []engine.Event{ev}})
		}},
		{name: "PublishToMany", publish: func(ctx context.Context, e *engine.Engine, ev engine.Event) error {
			return e.PublishToMany(ctx, []string{"ch"}, ev)
		}},
	}
	for _, p := range publishers {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				e := psEngine(t, engine.Config{Now: psNewClock(now).Now})
				psCreate(t, e, "ch", engine.ChannelConfig{})
				s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
				ev := psEvent(1)
				ev.ID, ev.Time = tt.id, tt.time
				if err := p.publish(psContext(t), e, ev); err != nil {
					t.Fatalf("publish: %v", err)
				}
				got, err := s.Recv(psContext(t))
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case !tt.wantID.IsZero() && got.ID != tt.wantID:
					t.Errorf("ID = %v, want the given %v", got.ID, tt.wantID)
				case tt.wantID.IsZero() && (got.ID.IsZero() || got.ID.Version() != 7):
					t.Errorf("ID = %v, want a new version 7 ID", got.ID)
				}
				wantTime := tt.time
				if wantTime == 0 {
					wantTime = now.UnixNano()
				}
				if got.Time != wantTime {
					t.Errorf("Time = %v, want %v", got.Timestamp(), time.Unix(0, wantTime).UTC())
				}
				hist, err := e.History("ch", engine.HistoryQuery{})
				if err != nil || len(hist) != 1 || hist[0].ID != got.ID || hist[0].Time != got.Time {
					t.Errorf("History = %v, %v; want the received event", hist, err)
				}
			})
		}
	}
}

func TestPublishBatchFillsInPlace(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	e := psEngine(t, engine.Config{Now: psNewClock(now).Now})
	psCreate(t, e, "ch", engine.ChannelConfig{})
	s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
	given := engine.NewEventID()
	batch := psBatch(0, 1, 2)
	batch.Events[1].ID = given
	if err := e.PublishBatch(psContext(t), "ch", batch); err != nil {
		t.Fatal(err)
	}
	seen := map[engine.EventID]bool{}
	for i, ev := range batch.Events {
		if ev.ID.IsZero() || ev.Time != now.UnixNano() {
			t.Errorf("batch event %d after PublishBatch: ID %v, time %v; want both filled in", i, ev.ID, ev.Timestamp())
		}
		seen[ev.ID] = true
	}
	if batch.Events[1].ID != given {
		t.Errorf("the given ID was replaced by %v", batch.Events[1].ID)
	}
	if len(seen) != 3 {
		t.Errorf("the batch got %d distinct IDs, want 3", len(seen))
	}
	for i := range batch.Events {
		got, err := s.Recv(psContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != batch.Events[i].ID {
			t.Errorf("received event %d has ID %v, want %v as filled in the batch", i, got.ID, batch.Events[i].ID)
		}
	}
}

func TestPublishInvalidEvent(t *testing.T) {
	invalid := []struct {
		name string
		ev   engine.Event
	}{
		{name: "no type", ev: engine.Event{Data: engine.IntData(1)}},
		{name: "type with a space", ev: engine.Event{Type: "order created"}},
		{name: "source not UTF-8", ev: engine.Event{Type: "t", Source: "\xff"}},
		{name: "string data not UTF-8", ev: engine.Event{Type: "t", Data: engine.StringData("\xfe")}},
		{name: "empty metadata key", ev: engine.Event{Type: "t", Metadata: map[string]string{"": "v"}}},
	}
	ways := []struct {
		name    string
		wantErr string
		publish func(ctx context.Context, e *engine.Engine, bad engine.Event) error
	}{
		{name: "Publish", publish: func(ctx context.Context, e *engine.Engine, bad engine.Event) error {
			return e.Publish(ctx, "ch", bad)
		}},
		{name: "PublishBatch", wantErr: "batch event 2", publish: func(ctx context.Context, e *engine.Engine, bad engine.Event) error {
			batch := psBatch(0, 1)
			batch.Append(bad, psEvent(3))
			return e.PublishBatch(ctx, "ch", batch)
		}},
		{name: "PublishToMany", publish: func(ctx context.Context, e *engine.Engine, bad engine.Event) error {
			return e.PublishToMany(ctx, []string{"ch", "other"}, bad)
		}},
	}
	for _, w := range ways {
		for _, tt := range invalid {
			t.Run(w.name+"/"+tt.name, func(t *testing.T) {
				e := psEngine(t, engine.Config{})
				psCreate(t, e, "ch", engine.ChannelConfig{})
				psCreate(t, e, "other", engine.ChannelConfig{})
				s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
				err := w.publish(psContext(t), e, tt.ev)
				if err == nil {
					t.Fatal("publishing an invalid event succeeded")
				}
				if !strings.Contains(err.Error(), w.wantErr) {
					t.Errorf("error %q does not say %q", err, w.wantErr)
				}
				psNoEvent(t, s)
				if got := psHistory(t, e, "ch", engine.HistoryQuery{}); len(got) != 0 {
					t.Errorf("history %v, want nothing published", got)
				}
				if st := e.Stats(); st.Published != 0 {
					t.Errorf("Stats().Published = %d, want 0", st.Published)
				}
			})
		}
	}
}

func TestPublishToMany(t *testing.T) {
	e := psEngine(t, engine.Config{})
	names := []string{"a", "b", "c"}
	subs := map[string]*engine.Subscription{}
	for _, name := range names {
		psCreate(t, e, name, engine.ChannelConfig{})
		subs[name] = psSubscribe(t, e, name, engine.SubscribeOptions{})
	}
	// A name given twice is published to once.
	if err := e.PublishToMany(psContext(t), []string{"a", "b", "c", "a"}, psEvent(7)); err != nil {
		t.Fatalf("PublishToMany: %v", err)
	}
	var id engine.EventID
	for _, name := range names {
		ev, err := subs[name].Recv(psContext(t))
		if err != nil {
			t.Fatalf("channel %s: %v", name, err)
		}
		if id.IsZero() {
			id = ev.ID
		}
		if ev.ID.IsZero() || ev.ID != id || psNum(t, ev) != 7 {
			t.Errorf("channel %s received event %v (%v), want the same ID %v in every channel", name, ev.ID, ev.Data, id)
		}
		psNoEvent(t, subs[name])
		if st := psChannelStats(t, e, name); st.Published != 1 {
			t.Errorf("channel %s Published = %d, want 1", name, st.Published)
		}
	}
	if st := e.Stats(); st.Published != 3 {
		t.Errorf("engine Published = %d, want 3", st.Published)
	}
}

func TestPublishToManyMissingChannel(t *testing.T) {
	tests := []struct {
		name     string
		channels []string
	}{
		{name: "missing last", channels: []string{"a", "b", "missing"}},
		{name: "missing first", channels: []string{"missing", "a", "b"}},
		{name: "missing between", channels: []string{"a", "missing", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := psEngine(t, engine.Config{})
			psCreate(t, e, "a", engine.ChannelConfig{})
			psCreate(t, e, "b", engine.ChannelConfig{})
			sa := psSubscribe(t, e, "a", engine.SubscribeOptions{})
			sb := psSubscribe(t, e, "b", engine.SubscribeOptions{})
			err := e.PublishToMany(psContext(t), tt.channels, psEvent(1))
			if !errors.Is(err, engine.ErrChannelNotFound) || !strings.Contains(err.Error(), "missing") {
				t.Fatalf("PublishToMany: %v, want ErrChannelNotFound naming the channel", err)
			}
			psNoEvent(t, sa)
			psNoEvent(t, sb)
			if st := e.Stats(); st.Published != 0 {
				t.Errorf("Published = %d, want nothing published", st.Published)
			}
			for _, name := range []string{"a", "b"} {
				if got := psHistory(t, e, name, engine.HistoryQuery{}); len(got) != 0 {
					t.Errorf("channel %s history %v, want none", name, got)
				}
			}
		})
	}
}

func TestPublishOrderPerSubscriber(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "ch", engine.ChannelConfig{})
	psCreate(t, e, "other", engine.ChannelConfig{})
	subs := []*engine.Subscription{
		psSubscribe(t, e, "ch", engine.SubscribeOptions{}),
		psSubscribe(t, e, "ch", engine.SubscribeOptions{}),
		psSubscribe(t, e, "ch", engine.SubscribeOptions{BufferSize: 64}),
	}
	ctx := psContext(t)
	psPublish(t, e, "ch", psRange(0, 10)...)
	if err := e.PublishBatch(ctx, "ch", psBatch(psRange(10, 30)...)); err != nil {
		t.Fatal(err)
	}
	if err := e.PublishToMany(ctx, []string{"other", "ch"}, psEvent(30)); err != nil {
		t.Fatal(err)
	}
	psPublish(t, e, "ch", 31)
	want := psRange(0, 32)
	for i, s := range subs {
		if got := psRecvNums(t, s, len(want)); !slices.Equal(got, want) {
			t.Errorf("subscriber %d received %v, want %v", i, got, want)
		}
	}
	if got := psHistory(t, e, "ch", engine.HistoryQuery{}); !slices.Equal(got, want) {
		t.Errorf("history %v, want %v", got, want)
	}
}

func TestSubscribeFilter(t *testing.T) {
	for _, policy := range []engine.SlowSubscriberPolicy{engine.Block, engine.DropOldest, engine.Disconnect} {
		t.Run(policy.String(), func(t *testing.T) {
			e := psEngine(t, engine.Config{})
			psCreate(t, e, "ch", engine.ChannelConfig{BufferSize: 4, SlowSubscriber: policy, BlockTimeout: psWait})
			s := psSubscribe(t, e, "ch", engine.SubscribeOptions{Filter: engine.TypeIs("keep")})
			ctx := psContext(t)
			var want []int
			batch := engine.EventBatch{}
			for n := range 40 {
				typ := engine.EventType("skip")
				if n%10 == 3 {
					typ = "keep"
					want = append(want, n)
				}
				if n < 20 {
					if err := e.Publish(ctx, "ch", psTyped(n, typ)); err != nil {
						t.Fatal(err)
					}
				} else {
					batch.Append(psTyped(n, typ))
				}
			}
			if err := e.PublishBatch(ctx, "ch", batch); err != nil {
				t.Fatal(err)
			}
			info := s.Info()
			if info.Pending != len(want) || info.Dropped != 0 {
				t.Errorf("Pending %d, Dropped %d; want %d pending (only what the filter selects) and nothing dropped", info.Pending, info.Dropped, len(want))
			}
			st := psChannelStats(t, e, "ch")
			if st.Lag != uint64(len(want)) || st.Dropped != 0 || st.Published != 40 {
				t.Errorf("channel stats %+v, want Lag %d, Dropped 0, Published 40", st, len(want))
			}
			if got := psDrain(t, s); !slices.Equal(got, want) {
				t.Errorf("received %v, want only the selected %v", got, want)
			}
		})
	}
}

func TestSubscribeLimits(t *testing.T) {
	tests := []struct {
		name     string
		engine   engine.Config
		channel  engine.ChannelConfig
		channels []string // subscribers spread over these
		limit    int
	}{
		{name: "channel limit", channel: engine.ChannelConfig{MaxSubscribers: 5}, channels: []string{"a"}, limit: 5},
		{name: "engine per-channel default", engine: engine.Config{MaxSubscribersPerChannel: 4}, channels: []string{"a"}, limit: 4},
		{name: "engine-wide limit", engine: engine.Config{MaxSubscribers: 6}, channels: []string{"a", "b", "c"}, limit: 6},
		{name: "engine-wide below channel limits", engine: engine.Config{MaxSubscribers: 3}, channel: engine.ChannelConfig{MaxSubscribers: 10}, channels: []string{"a", "b"}, limit: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const tries = 64
			e := psEngine(t, tt.engine)
			for _, name := range tt.channels {
				psCreate(t, e, name, tt.channel)
			}
			start := make(chan struct{})
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				subs []*engine.Subscription
			)
			errs := make(chan error, tries)
			for i := range tries {
				wg.Go(func() {
					<-start
					s, err := e.Subscribe(tt.channels[i%len(tt.channels)], engine.SubscribeOptions{})
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					subs = append(subs, s)
					mu.Unlock()
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if !errors.Is(err, engine.ErrTooManySubscribers) {
					t.Errorf("Subscribe: %v, want nil or ErrTooManySubscribers", err)
				}
			}
			if len(subs) != tt.limit {
				t.Fatalf("%d of %d concurrent Subscribe calls succeeded, want exactly %d", len(subs), tries, tt.limit)
			}
			if st := e.Stats(); st.Subscribers != tt.limit {
				t.Errorf("Stats().Subscribers = %d, want %d (refused subscriptions must not hold a slot)", st.Subscribers, tt.limit)
			}
			if n := len(e.Subscribers()); n != tt.limit {
				t.Errorf("%d subscriber records, want %d", n, tt.limit)
			}
			// Closing frees a slot on that subscription's channel.
			ch := subs[0].Channel()
			if _, err := e.Subscribe(ch, engine.SubscribeOptions{}); !errors.Is(err, engine.ErrTooManySubscribers) {
				t.Fatalf("Subscribe at the limit: %v, want ErrTooManySubscribers", err)
			}
			subs[0].Close()
			s, err := e.Subscribe(ch, engine.SubscribeOptions{})
			if err != nil {
				t.Fatalf("Subscribe after a Close freed a slot: %v", err)
			}
			s.Close()
			for _, s := range subs[1:] {
				s.Close()
			}
			if st := e.Stats(); st.Subscribers != 0 {
				t.Errorf("Stats().Subscribers = %d after closing everything, want 0", st.Subscribers)
			}
		})
	}
}

func TestSubscribeChannelLimitDoesNotLeakEngineSlots(t *testing.T) {
	e := psEngine(t, engine.Config{MaxSubscribers: 3})
	psCreate(t, e, "small", engine.ChannelConfig{MaxSubscribers: 1})
	psCreate(t, e, "big", engine.ChannelConfig{})
	psSubscribe(t, e, "small", engine.SubscribeOptions{})
	for range 10 {
		_, err := e.Subscribe("small", engine.SubscribeOptions{Subscriber: "refused"})
		if !errors.Is(err, engine.ErrTooManySubscribers) || !strings.Contains(err.Error(), "channel allows 1") {
			t.Fatalf("Subscribe beyond the channel's limit: %v, want ErrTooManySubscribers from the channel", err)
		}
	}
	for _, sub := range e.Subscribers() {
		if sub.Name == "refused" {
			t.Errorf("a refused subscription left a subscriber record: %+v", sub)
		}
	}
	// The refused subscriptions gave their engine slots back.
	psSubscribe(t, e, "big", engine.SubscribeOptions{})
	psSubscribe(t, e, "big", engine.SubscribeOptions{})
	if _, err := e.Subscribe("big", engine.SubscribeOptions{}); !errors.Is(err, engine.ErrTooManySubscribers) || !strings.Contains(err.Error(), "engine allows 3") {
		t.Errorf("fourth Subscribe: %v, want ErrTooManySubscribers from the engine", err)
	}
}

func TestSubscribeModes(t *testing.T) {
	tests := []struct {
		name        string
		opts        engine.SubscribeOptions
		unsupported bool     // errors.Is ErrUnsupported
		wantErr     []string // "" entries: must succeed
	}{
		{name: "defaults"},
		{name: "at-most-once ack none", opts: engine.SubscribeOptions{AckMode: engine.AckNone}},
		{name: "at-least-once", opts: engine.SubscribeOptions{DeliveryMode: engine.AtLeastOnce}, unsupported: true, wantErr: []string{"at-least-once", "persistent channel"}},
		{name: "exactly-once", opts: engine.SubscribeOptions{DeliveryMode: engine.ExactlyOnce}, unsupported: true, wantErr: []string{"exactly-once", "persistent channel"}},
		{name: "ack manual", opts: engine.SubscribeOptions{AckMode: engine.AckManual}, unsupported: true, wantErr: []string{"manual", "persistent channel"}},
		{name: "at-least-once with ack manual", opts: engine.SubscribeOptions{DeliveryMode: engine.AtLeastOnce, AckMode: engine.AckManual}, unsupported: true, wantErr: []string{"persistent channel"}},
		{name: "unknown delivery mode", opts: engine.SubscribeOptions{DeliveryMode: engine.ExactlyOnce + 1}, wantErr: []string{"delivery mode"}},
		{name: "unknown ack mode", opts: engine.SubscribeOptions{AckMode: engine.AckNone + 1}, wantErr: []string{"ack mode"}},
		{name: "negative buffer", opts: engine.SubscribeOptions{BufferSize: -1}, wantErr: []string{"buffer size -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := psEngine(t, engine.Config{})
			psCreate(t, e, "ch", engine.ChannelConfig{})
			s, err := e.Subscribe("ch", tt.opts)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Subscribe(%+v): %v", tt.opts, err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("Subscribe(%+v) succeeded, want an error", tt.opts)
			}
			if got := errors.Is(err, engine.ErrUnsupported); got != tt.unsupported {
				t.Errorf("errors.Is(%q, ErrUnsupported) = %v, want %v", err, got, tt.unsupported)
			}
			for _, want := range append(tt.wantErr, "ch") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if st := e.Stats(); st.Subscribers != 0 || len(e.Subscribers()) != 0 {
				t.Errorf("a refused subscription is counted: %d subscribers, records %v", st.Subscribers, e.Subscribers())
			}
		})
	}
}

func TestAckModeCounters(t *testing.T) {
	tests := []struct {
		name    string
		ack     engine.AckMode
		wantAck uint64
	}{
		{name: "auto", ack: engine.AckAuto, wantAck: 3},
		{name: "none", ack: engine.AckNone, wantAck: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := psEngine(t, engine.Config{})
			psCreate(t, e, "ch", engine.ChannelConfig{})
			s := psSubscribe(t, e, "ch", engine.SubscribeOptions{AckMode: tt.ack})
			psPublish(t, e, "ch", psRange(0, 5)...)
			psRecvNums(t, s, 2)
			if _, ok, err := s.TryRecv(); !ok || err != nil {
				t.Fatalf("TryRecv: %v, %v", ok, err)
			}
			info := s.Info()
			if info.AckMode != tt.ack || info.Received != 3 || info.Acknowledged != tt.wantAck || info.Pending != 2 {
				t.Errorf("Info: AckMode %v, Received %d, Acknowledged %d, Pending %d; want %v, 3, %d, 2",
					info.AckMode, info.Received, info.Acknowledged, info.Pending, tt.ack, tt.wantAck)
			}
		})
	}
}

func TestEnumNames(t *testing.T) {
	policy := func(s string) (string, error) {
		v, err := engine.ParseSlowSubscriberPolicy(s)
		return v.String(), err
	}
	delivery := func(s string) (string, error) {
		v, err := engine.ParseDeliveryMode(s)
		return v.String(), err
	}
	ack := func(s string) (string, error) {
		v, err := engine.ParseAckMode(s)
		return v.String(), err
	}
	known := []struct {
		name  string
		value fmt.Stringer
		want  string
		parse func(string) (string, error)
	}{
		{name: "block", value: engine.Block, want: "block", parse: policy},
		{name: "drop-oldest", value: engine.DropOldest, want: "drop-oldest", parse: policy},
		{name: "disconnect", value: engine.Disconnect, want: "disconnect", parse: policy},
		{name: "at-most-once", value: engine.AtMostOnce, want: "at-most-once", parse: delivery},
		{name: "at-least-once", value: engine.AtLeastOnce, want: "at-least-once", parse: delivery},
		{name: "exactly-once", value: engine.ExactlyOnce, want: "exactly-once", parse: delivery},
		{name: "auto", value: engine.AckAuto, want: "auto", parse: ack},
		{name: "manual", value: engine.AckManual, want: "manual", parse: ack},
		{name: "none", value: engine.AckNone, want: "none", parse: ack},
	}
	for _, tt := range known {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.value.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			got, err := tt.parse(tt.want)
			if err != nil || got != tt.want {
				t.Errorf("Parse(%q).String() = %q, %v; want a round trip", tt.want, got, err)
			}
		})
	}
	unknownValues := []struct {
		name  string
		value fmt.Stringer
		want  string
	}{
		{name: "policy", value: engine.SlowSubscriberPolicy(9), want: "policy(9)"},
		{name: "delivery", value: engine.DeliveryMode(9), want: "delivery(9)"},
		{name: "ack", value: engine.AckMode(9), want: "ack(9)"},
	}
	for _, tt := range unknownValues {
		t.Run("unknown value "+tt.name, func(t *testing.T) {
			if got := tt.value.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
	unknownNames := []struct {
		name  string
		input string
		parse func(string) (string, error)
		what  string
	}{
		{name: "policy empty", input: "", parse: policy, what: "slow-subscriber policy"},
		{name: "policy case", input: "Block", parse: policy, what: "slow-subscriber policy"},
		{name: "policy underscore", input: "drop_oldest", parse: policy, what: "slow-subscriber policy"},
		{name: "delivery", input: "at-least-twice", parse: delivery, what: "delivery mode"},
		{name: "delivery of another enum", input: "auto", parse: delivery, what: "delivery mode"},
		{name: "ack", input: "manually", parse: ack, what: "ack mode"},
		{name: "ack of another enum", input: "block", parse: ack, what: "ack mode"},
	}
	for _, tt := range unknownNames {
		t.Run("unknown name "+tt.name, func(t *testing.T) {
			_, err := tt.parse(tt.input)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want an error", tt.input)
			}
			if !strings.Contains(err.Error(), tt.what) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.input)) {
				t.Errorf("error %q, want one naming the %s and the input", err, tt.what)
			}
		})
	}
}

func TestStats(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "a", engine.ChannelConfig{})
	psCreate(t, e, "b", engine.ChannelConfig{BufferSize: 2, SlowSubscriber: engine.DropOldest, Retention: engine.Retention{MaxEvents: 4}})
	psSubscribe(t, e, "a", engine.SubscribeOptions{})
	a1 := psSubscribe(t, e, "a", engine.SubscribeOptions{}) // the newer one lags less
	psSubscribe(t, e, "b", engine.SubscribeOptions{})
	psPublish(t, e, "a", psRange(0, 5)...)
	psRecvNums(t, a1, 2)
	psPublish(t, e, "b", psRange(0, 5)...)

	wantA := engine.ChannelStats{Name: "a", Published: 5, Delivered: 2, Subscribers: 2, Lag: 3 + 5, MaxLag: 5, Retained: 5}
	wantB := engine.ChannelStats{Name: "b", Published: 5, Dropped: 3, Subscribers: 1, Lag: 2, MaxLag: 2, Retained: 4}
	if got := psChannelStats(t, e, "a"); got != wantA {
		t.Errorf("ChannelStats(a) = %+v, want %+v", got, wantA)
	}
	if got := psChannelStats(t, e, "b"); got != wantB {
		t.Errorf("ChannelStats(b) = %+v, want %+v", got, wantB)
	}
	st := e.Stats()
	want := engine.Stats{Channels: 2, Subscribers: 3, Published: 10, Delivered: 2, Dropped: 3, Lag: 10}
	if !psStatsEqual(st, want, []engine.ChannelStats{wantA, wantB}) {
		t.Errorf("Stats() = %+v, want %+v with PerChannel [%+v %+v]", st, want, wantA, wantB)
	}

	// Deleting a channel keeps its counts in the engine's totals; its
	// receivers still take what they held, which counts as delivered.
	if err := e.DeleteChannel("a"); err != nil {
		t.Fatal(err)
	}
	if got := psRecvNums(t, a1, 3); !slices.Equal(got, []int{2, 3, 4}) {
		t.Errorf("after delete the receiver got %v, want [2 3 4]", got)
	}
	st = e.Stats()
	want = engine.Stats{Channels: 1, Subscribers: 1, Published: 10, Delivered: 5, Dropped: 3, Lag: 2}
	if !psStatsEqual(st, want, []engine.ChannelStats{wantB}) {
		t.Errorf("Stats() after delete = %+v, want %+v with PerChannel [%+v]", st, want, wantB)
	}
}

func psStatsEqual(got, want engine.Stats, perChannel []engine.ChannelStats) bool {
	return slices.Equal(got.PerChannel, perChannel) &&
		got.Channels == want.Channels && got.Subscribers == want.Subscribers &&
		got.Published == want.Published && got.Delivered == want.Delivered &&
		got.Dropped == want.Dropped && got.Lag == want.Lag
}

func TestSubscribers(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "a", engine.ChannelConfig{})
	psCreate(t, e, "b", engine.ChannelConfig{})
	alice1 := psSubscribe(t, e, "a", engine.SubscribeOptions{Subscriber: "alice"})
	bob := psSubscribe(t, e, "a", engine.SubscribeOptions{Subscriber: "bob"})
	alice2 := psSubscribe(t, e, "b", engine.SubscribeOptions{Subscriber: "alice"})
	anon := psSubscribe(t, e, "b", engine.SubscribeOptions{})

	want := []engine.SubscriberInfo{
		{Name: "alice", Subscriptions: []string{alice1.ID(), alice2.ID()}},
		{Name: "bob", Subscriptions: []string{bob.ID()}},
		{Name: anon.ID(), Subscriptions: []string{anon.ID()}},
	}
	psCheckSubscribers(t, e, want)

	alice1.Close()
	want[0].Subscriptions = []string{alice2.ID()}
	psCheckSubscribers(t, e, want)

	alice2.Close()
	anon.Close()
	psCheckSubscribers(t, e, want[1:2])

	// Deleting the channel ends bob's last subscription.
	if err := e.DeleteChannel("a"); err != nil {
		t.Fatal(err)
	}
	psCheckSubscribers(t, e, nil)
}

func psCheckSubscribers(t *testing.T, e *engine.Engine, want []engine.SubscriberInfo) {
	t.Helper()
	got := e.Subscribers()
	if !slices.EqualFunc(got, want, func(a, b engine.SubscriberInfo) bool {
		return a.Name == b.Name && slices.Equal(a.Subscriptions, b.Subscriptions)
	}) {
		t.Errorf("Subscribers() = %+v, want %+v", got, want)
	}
}

func TestDeleteChannelEndsReceivers(t *testing.T) {
	receivers := []struct {
		name string
		recv func(t *testing.T, s *engine.Subscription) ([]int, error)
	}{
		{name: "Recv", recv: func(t *testing.T, s *engine.Subscription) ([]int, error) { return psEnded(t, s) }},
		{name: "RecvBatch", recv: func(t *testing.T, s *engine.Subscription) ([]int, error) {
			var got []int
			var batch engine.EventBatch
			for {
				var err error
				batch, err = s.RecvBatch(psContext(t), batch, 2)
				if err != nil {
					return got, err
				}
				got = append(got, psNums(t, batch.Events)...)
			}
		}},
		{name: "TryRecv", recv: func(t *testing.T, s *engine.Subscription) ([]int, error) {
			var got []int
			for {
				ev, ok, err := s.TryRecv()
				if err != nil {
					return got, err
				}
				if !ok {
					return got, errors.New("TryRecv: no event and no error from an ended subscription")
				}
				got = append(got, psNum(t, ev))
			}
		}},
	}
	for _, r := range receivers {
		t.Run(r.name, func(t *testing.T) {
			e := psEngine(t, engine.Config{})
			psCreate(t, e, "ch", engine.ChannelConfig{})
			psCreate(t, e, "other", engine.ChannelConfig{})
			s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
			keep := psSubscribe(t, e, "other", engine.SubscribeOptions{})
			psPublish(t, e, "ch", 1, 2, 3)
			if err := e.DeleteChannel("ch"); err != nil {
				t.Fatal(err)
			}
			got, err := r.recv(t, s)
			if !slices.Equal(got, []int{1, 2, 3}) {
				t.Errorf("received %v before the end, want what it held: [1 2 3]", got)
			}
			if !errors.Is(err, engine.ErrChannelDeleted) {
				t.Errorf("end error %v, want ErrChannelDeleted", err)
			}
			if st := e.Stats(); st.Subscribers != 1 {
				t.Errorf("Stats().Subscribers = %d, want 1 (the other channel's)", st.Subscribers)
			}
			psCheckSubscribers(t, e, []engine.SubscriberInfo{{Name: keep.ID(), Subscriptions: []string{keep.ID()}}})
		})
	}
}

func TestDeleteChannelWakesWaitingReceivers(t *testing.T) {
	e := psEngine(t, engine.Config{})
	psCreate(t, e, "ch", engine.ChannelConfig{})
	s := psSubscribe(t, e, "ch", engine.SubscribeOptions{})
	const waiting = 3
	ended := make(chan error, waiting)
	for range waiting {
		go func() {
			_, err := s.Recv(psContext(t))
			ended <- err
		}()
	}
	psNotYet(t, ended, "Recv on an empty subscription returning")
	if err := e.DeleteChannel("ch"); err != nil {
		t.Fatal(err)
	}
	for range waiting {
		if err := psAwait(t, ended, "a waiting Recv to end"); !errors.Is(err, engine.ErrChannelDeleted) {
			t.Errorf("Recv: %v, want ErrChannelDeleted", err)
		}
	}
}

func TestEngineClose(t *testing.T) {
	e := engine.New(engine.Config{})
	psCreate(t, e, "a", engine.ChannelConfig{})
	psCreate(t, e, "b", engine.ChannelConfig{BufferSize: 1, BlockTimeout: psWait})
	sa := psSubscribe(t, e, "a", engine.SubscribeOptions{})
	sb := psSubscribe(t, e, "b", engine.SubscribeOptions{})
	waiting := psSubscribe(t, e, "a", engine.SubscribeOptions{Filter: engine.TypeIs("never")})
	psPublish(t, e, "a", 1, 2)
	psPublish(t, e, "b", 10)
	probe := psProbe(t, e, "b")
	blocked := psGo(func() error { return e.Publish(psContext(t), "b", psEvent(11)) })
	psAwait(t, probe, "the publisher to reach the channel")
	waitingEnd := psGo(func() error { _, err := waiting.Recv(psContext(t)); return err })

	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	psIsPublishError(t, psAwait(t, blocked, "the blocked publisher to end"), "b", 0, engine.ErrEngineClosed)
	if err := psAwait(t, waitingEnd, "the waiting receiver to end"); !errors.Is(err, engine.ErrEngineClosed) {
		t.Errorf("waiting Recv: %v, want ErrEngineClosed", err)
	}
	for _, tt := range []struct {
		s    *engine.Subscription
		want []int
	}{{sa, []int{1, 2}}, {sb, []int{10}}} {
		got, err := psEnded(t, tt.s)
		if !slices.Equal(got, tt.want) || !errors.Is(err, engine.ErrEngineClosed) {
			t.Errorf("subscription of %s got %v then %v; want %v then ErrEngineClosed", tt.s.Channel(), got, err, tt.want)
		}
	}

	ctx := psContext(t)
	later := []struct {
		name string
		call func() error
	}{
		{name: "CreateChannel", call: func() error { return e.CreateChannel("c", engine.ChannelConfig{}) }},
		{name: "DeleteChannel", call: func() error { return e.DeleteChannel("a") }},
		{name: "Channel", call: func() error { _, err := e.Channel("a"); return err }},
		{name: "Publish", call: func() error { return e.Publish(ctx, "a", psEvent(1)) }},
		{name: "PublishBatch", call: func() error { return e.PublishBatch(ctx, "a", psBatch(1)) }},
		{name: "PublishToMany", call: func() error { return e.PublishToMany(ctx, []string{"a", "b"}, psEvent(1)) }},
		{name: "Subscribe", call: func() error { _, err := e.Subscribe("a", engine.SubscribeOptions{}); return err }},
		{name: "Subscriptions", call: func() error { _, err := e.Subscriptions("a"); return err }},
		{name: "History", call: func() error { _, err := e.History("a", engine.HistoryQuery{}); return err }},
		{name: "ChannelStats", call: func() error { _, err := e.ChannelStats("a"); return err }},
	}
	for _, tt := range later {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, engine.ErrEngineClosed) {
				t.Errorf("after Close: %v, want ErrEngineClosed", err)
			}
		})
	}
	if n := len(e.Channels()); n != 0 {
		t.Errorf("Channels() lists %d channels after Close", n)
	}
	if st := e.Stats(); st.Channels != 0 || st.Subscribers != 0 || st.Published != 3 {
		t.Errorf("Stats() after Close = %+v, want no channels, no subscribers, 3 published", st)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
