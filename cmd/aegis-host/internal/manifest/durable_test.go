package manifest_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
)

// chans is head with channel x's mapping replaced by x (on line 2, from
// column 15) and one pipeline from gen to out.
func chans(x string) string {
	return strings.Replace(head, "x: {}", "x: "+x, 1) + "pipelines: [{name: p, from: gen, to: [out]}]\n"
}

// deliv is head with channel x's mapping replaced by x, a pipeline w
// from gen to x, and a pipeline r from x to out whose delivery (line 10,
// column 15) is delivery and whose more fields follow from line 11.
func deliv(x, delivery, more string) string {
	return strings.Replace(head, "x: {}", "x: "+x, 1) + `pipelines:
  - {name: w, from: gen, to: [x]}
  - name: r
    from: x
    to: [out]
    delivery: ` + delivery + "\n" + indent(more, 4)
}

// natsBlock is the minimal manifest with a persistent channel and a nats
// block (line 6, its value at column 7).
func natsBlock(block string) string {
	return `apiVersion: aegis/v1
channels: {x: {persistent: true}}
sources: {gen: {type: generator}}
sinks: {out: {type: stdout}}
pipelines: [{name: p, from: gen, to: [x]}, {name: q, from: x, to: [out]}]
nats: ` + block + "\n"
}

// TestDurableErrors has a case for each problem validation finds with
// persistent channels, the nats block and pipelines' delivery.
func TestDurableErrors(t *testing.T) {
	dir, _ := fixture(t)
	for _, tc := range []struct {
		name string
		text string
		want []string
	}{
		// Fields of persistent channels on an in-memory one.
		{"replicas in memory", chans("{replicas: 3}"),
			[]string{`2:26: channels.x.replicas: replicas applies to persistent channels only (persistent: true)`}},
		{"discard in memory", chans("{persistent: false, discard: new}"),
			[]string{`2:44: channels.x.discard: discard applies to persistent channels only (persistent: true)`}},
		{"duplicate_window in memory", chans("{duplicate_window: 1m}"),
			[]string{`2:34: channels.x.duplicate_window: duplicate_window applies to persistent channels only (persistent: true)`}},
		{"max_bytes in memory", chans("{retention: {max_events: 5, max_bytes: 1GiB}}"),
			[]string{`2:54: channels.x.retention.max_bytes: max_bytes applies to persistent channels only (persistent: true); an in-memory channel is bounded by max_events and max_age`}},
		{"all of them in memory", chans("{replicas: 1, discard: old, duplicate_window: 1m, retention: {max_bytes: 1MiB}}"),
			[]string{
				`2:26: channels.x.replicas: replicas applies to persistent channels only`,
				`2:38: channels.x.discard: discard applies to persistent channels only`,
				`2:61: channels.x.duplicate_window: duplicate_window applies to persistent channels only`,
				`2:88: channels.x.retention.max_bytes: max_bytes applies to persistent channels only`,
			}},

		// Persistent channels.
		{"slow_subscriber on a persistent channel", chans("{persistent: true, slow_subscriber: block}"),
			[]string{`2:51: channels.x.slow_subscriber: slow_subscriber applies to in-memory channels (a persistent channel's readers fall behind in its stream instead, and lose nothing)`}},
		{"replicas even", chans("{persistent: true, replicas: 2}"),
			[]string{`2:44: channels.x.replicas: must be 1, 3 or 5 (an odd number up to 5, so that a majority of the replicas can agree), got 2`}},
		{"replicas zero", chans("{persistent: true, replicas: 0}"),
			[]string{`2:44: channels.x.replicas: must be 1, 3 or 5`}},
		{"replicas too many", chans("{persistent: true, replicas: 7}"),
			[]string{`2:44: channels.x.replicas: must be 1, 3 or 5 (an odd number up to 5, so that a majority of the replicas can agree), got 7`}},
		{"replicas on the embedded server", chans("{persistent: true, replicas: 3}"),
			[]string{`2:44: channels.x.replicas: 3 replicas need a NATS cluster (nats.urls); the embedded server stores one copy`}},
		{"replicas not an integer", chans("{persistent: true, replicas: three}"),
			[]string{`2:44: channels.x.replicas: expected an integer, got a string`}},
		{"discard unknown", chans("{persistent: true, discard: oldest}"),
			[]string{`2:43: channels.x.discard: unknown value "oldest": want old or new`}},
		{"discard misspelt", chans("{persistent: true, discard: News}"),
			[]string{`2:43: channels.x.discard: unknown value "News": want old or new (did you mean "new"?)`}},
		{"discard empty", chans(`{persistent: true, discard: ""}`),
			[]string{`2:43: channels.x.discard: must be old or new (leave it out for the default, old)`}},
		{"duplicate_window zero", chans("{persistent: true, duplicate_window: 0s}"),
			[]string{`2:52: channels.x.duplicate_window: must be at least 100ms, got 0s (leave it out for the default, 2m)`}},
		{"duplicate_window too short", chans("{persistent: true, duplicate_window: 10ms}"),
			[]string{`2:52: channels.x.duplicate_window: must be at least 100ms, got 10ms`}},
		{"duplicate_window without unit", chans("{persistent: true, duplicate_window: 120}"),
			[]string{`2:52: channels.x.duplicate_window: duration 120 has no unit; write one such as 120ms or 120s`}},
		{"duplicate_window beyond max_age", chans("{persistent: true, duplicate_window: 5m, retention: {max_age: 1m}}"),
			[]string{`2:52: channels.x.duplicate_window: must be at most retention.max_age (1m), got 5m: an event's ID is remembered only while the event is kept`}},
		{"max_events -1 on a persistent channel", chans("{persistent: true, retention: {max_events: -1}}"),
			[]string{`2:58: channels.x.retention.max_events: must be 0 (no limit, the default for a persistent channel) or more, got -1: a persistent channel keeps events for its readers (-1, keep none, is for in-memory channels)`}},
		{"max_age too short on a persistent channel", chans("{persistent: true, retention: {max_age: 50ms}}"),
			[]string{`2:55: channels.x.retention.max_age: must be at least 100ms on a persistent channel (or 0, no limit), got 50ms`}},
		{"max_bytes zero", chans("{persistent: true, retention: {max_bytes: 0}}"),
			[]string{`2:57: channels.x.retention.max_bytes: must be positive, such as 1GiB (leave it out for no limit)`}},
		{"max_bytes not a size", chans("{persistent: true, retention: {max_bytes: lots}}"),
			[]string{`2:57: channels.x.retention.max_bytes: invalid size "lots"`}},
		{"persistent misspelt", chans("{persistant: true}"),
			[]string{`2:16: channels.x.persistant: unknown field "persistant" (did you mean "persistent"?)`}},
		{"duplicate_window misspelt", chans("{persistent: true, dedupe_window: 1m}"),
			[]string{`2:34: channels.x.dedupe_window: unknown field "dedupe_window"; known fields: persistent, buffer, slow_subscriber, retention, replicas, discard, duplicate_window`}},

		// The nats block.
		{"nats not a mapping", natsBlock(`"nats://localhost:4222"`),
			[]string{`6:7: nats: expected a mapping with the fields urls, listen, max_store, sync_always, replicas, got a string`}},
		{"nats url misspelt", natsBlock("{url: [nats://localhost:4222]}"),
			[]string{`6:8: nats.url: unknown field "url" (did you mean "urls"?)`}},
		{"urls a string", natsBlock("{urls: nats://localhost:4222}"),
			[]string{`6:14: nats.urls: expected a list, got a string (write [nats://localhost:4222] for a list of one)`}},
		{"urls empty", natsBlock("{urls: []}"),
			[]string{`6:14: nats.urls: needs at least one URL, such as nats://localhost:4222 (leave urls out for the embedded server)`}},
		{"url without a scheme", natsBlock(`{urls: ["localhost:4222"]}`),
			[]string{`6:15: nats.urls[0]: must be a nats:// or tls:// URL such as nats://localhost:4222, got "localhost:4222"`}},
		{"url of another scheme", natsBlock(`{urls: ["http://localhost:4222"]}`),
			[]string{`6:15: nats.urls[0]: must be a nats:// or tls:// URL such as nats://localhost:4222, got "http://localhost:4222"`}},
		{"url scheme misspelt", natsBlock(`{urls: ["nat://localhost:4222"]}`),
			[]string{`6:15: nats.urls[0]: must be a nats:// or tls:// URL such as nats://localhost:4222, got "nat://localhost:4222" (did you mean nats://?)`}},
		{"urls joined by a comma", natsBlock(`{urls: ["nats://a:4222,nats://b:4222"]}`),
			[]string{`6:15: nats.urls[0]: must be one URL, got "nats://a:4222,nats://b:4222": list each server as an entry of urls`}},
		{"url with a path", natsBlock(`{urls: ["nats://localhost:4222/x"]}`),
			[]string{`6:15: nats.urls[0]: must be a nats:// or tls:// URL such as nats://localhost:4222, without a path, query or fragment, got "nats://localhost:4222/x"`}},
		{"url without a host", natsBlock(`{urls: ["nats://:4222"]}`),
			[]string{`6:15: nats.urls[0]: must be a nats:// or tls:// URL such as nats://localhost:4222, got "nats://:4222"`}},
		{"url port out of range", natsBlock(`{urls: ["tls://localhost:99999"]}`),
			[]string{`6:15: nats.urls[0]: port 99999 is out of range: a port is 0 to 65535`}},
		{"url twice", natsBlock(`{urls: ["nats://a:4222", "nats://a:4222"]}`),
			[]string{`6:32: nats.urls[1]: "nats://a:4222" is listed twice (urls[0])`}},
		{"listen with urls", natsBlock(`{urls: ["nats://a:4222"], listen: ":4222"}`),
			[]string{`6:41: nats.listen: listen applies to the embedded server (without urls); an external cluster is configured on its servers`}},
		{"max_store with urls", natsBlock(`{urls: ["nats://a:4222"], max_store: 1GiB}`),
			[]string{`6:44: nats.max_store: max_store applies to the embedded server (without urls)`}},
		{"listen a URL", natsBlock(`{listen: "nats://localhost:4222"}`),
			[]string{`6:16: nats.listen: is a URL; give host:port, such as 127.0.0.1:4222 or :4222 (every interface)`}},
		{"listen without a port", natsBlock(`{listen: localhost}`),
			[]string{`6:16: nats.listen: must be host:port, such as 127.0.0.1:4222 or :4222 (every interface), got "localhost"`}},
		{"listen port out of range", natsBlock(`{listen: ":70000"}`),
			[]string{`6:16: nats.listen: port "70000" is not a number from 0 to 65535`}},
		{"listen a number", natsBlock(`{listen: 4222}`),
			[]string{`6:16: nats.listen: expected a string, got an integer (quote it: "4222")`}},
		{"sync_always with urls", natsBlock(`{urls: ["nats://a:4222"], sync_always: true}`),
			[]string{`6:46: nats.sync_always: sync_always applies to the embedded server (without urls)`}},
		{"max_store zero", natsBlock(`{max_store: 0}`),
			[]string{`6:19: nats.max_store: must be positive, such as 10GiB (leave it out for the host to decide)`}},
		{"max_store not a size", natsBlock(`{max_store: huge}`),
			[]string{`6:19: nats.max_store: invalid size "huge"`}},
		{"nats replicas without urls", natsBlock(`{replicas: 3}`),
			[]string{`6:18: nats.replicas: 3 replicas need a NATS cluster (urls); the embedded server stores one copy`}},
		{"nats replicas even", natsBlock(`{urls: ["nats://a:4222"], replicas: 4}`),
			[]string{`6:43: nats.replicas: must be 1, 3 or 5 (an odd number up to 5, so that a majority of the replicas can agree), got 4`}},

		// Delivery.
		{"delivery from a source", head + "pipelines:\n  - {name: p, from: gen, to: [out], delivery: {mode: at-least-once}}\n",
			[]string{`6:47: pipelines[0].delivery: delivery applies to pipelines that read a persistent channel, and "gen" is a source (a source is read once; to have acknowledged, redelivered events, let this pipeline write to a persistent channel and another read it)`}},
		{"delivery from an in-memory channel", deliv("{}", "{max_deliver: 3}", ""),
			[]string{`10:15: pipelines[1].delivery: delivery applies to pipelines that read a persistent channel, and channel "x" is in memory (set persistent: true on it for acknowledged, redelivered events)`}},
		{"delivery null from an in-memory channel", deliv("{}", "", ""),
			[]string{`10:5: pipelines[1].delivery: delivery applies to pipelines that read a persistent channel, and channel "x" is in memory`}},
		{"delivery misspelt", deliv("{persistent: true}", "{max_deliveries: 3}", ""),
			[]string{`10:16: pipelines[1].delivery.max_deliveries: unknown field "max_deliveries" (did you mean "max_deliver"?)`}},
		{"mode unknown", deliv("{persistent: true}", "{mode: exactly_once}", ""),
			[]string{`10:22: pipelines[1].delivery.mode: unknown value "exactly_once": want at-least-once or exactly-once (did you mean "exactly-once"?)`}},
		{"mode at-most-once", deliv("{persistent: true}", "{mode: at-most-once}", ""),
			[]string{`10:22: pipelines[1].delivery.mode: at-most-once is not offered for a persistent channel's reader`}},
		{"mode empty", deliv("{persistent: true}", `{mode: ""}`, ""),
			[]string{`10:22: pipelines[1].delivery.mode: cannot be empty (leave it out for the default, at-least-once)`}},
		{"start unknown", deliv("{persistent: true}", "{start: first}", ""),
			[]string{`10:23: pipelines[1].delivery.start: unknown value "first": want all or new`}},
		{"start empty", deliv("{persistent: true}", `{start: ""}`, ""),
			[]string{`10:23: pipelines[1].delivery.start: cannot be empty (leave it out for the default, all)`}},
		{"ack_wait zero", deliv("{persistent: true}", "{ack_wait: 0s}", ""),
			[]string{`10:26: pipelines[1].delivery.ack_wait: must be positive (leave it out for the default, 30s)`}},
		{"ack_wait without unit", deliv("{persistent: true}", "{ack_wait: 30}", ""),
			[]string{`10:26: pipelines[1].delivery.ack_wait: duration 30 has no unit; write one such as 30ms or 30s`}},
		{"ack_wait within the batch wait", deliv("{persistent: true}", "{ack_wait: 1s}", "batch: {max_wait: 2s}\n"),
			[]string{`10:26: pipelines[1].delivery.ack_wait: must be longer than batch.max_wait (2s), which events may wait in a batch before they are processed and acknowledged, got 1s`}},
		{"ack_wait within the default batch wait", deliv("{persistent: true}", "{ack_wait: 50ms}", ""),
			[]string{`10:26: pipelines[1].delivery.ack_wait: must be longer than batch.max_wait (50ms)`}},
		{"ack_wait and backoff", deliv("{persistent: true}", "{ack_wait: 10s, backoff: [1s]}", ""),
			[]string{`10:26: pipelines[1].delivery.ack_wait: ack_wait and backoff exclude each other: with backoff, backoff[0] is the first ack wait (leave ack_wait out)`}},
		{"max_deliver zero", deliv("{persistent: true}", "{max_deliver: 0}", ""),
			[]string{`10:29: pipelines[1].delivery.max_deliver: must be 1 or more, or -1 for no limit, got 0`}},
		{"max_deliver below -1", deliv("{persistent: true}", "{max_deliver: -2}", ""),
			[]string{`10:29: pipelines[1].delivery.max_deliver: must be 1 or more, or -1 for no limit, got -2`}},
		{"backoff empty", deliv("{persistent: true}", "{backoff: []}", ""),
			[]string{`10:25: pipelines[1].delivery.backoff: needs at least one duration (leave it out to wait ack_wait before each redelivery)`}},
		{"backoff a duration", deliv("{persistent: true}", "{backoff: 1s}", ""),
			[]string{`10:25: pipelines[1].delivery.backoff: expected a list, got a string (write [1s] for a list of one)`}},
		{"backoff longer than max_deliver", deliv("{persistent: true}", "{max_deliver: 2, backoff: [1s, 2s, 4s]}", ""),
			[]string{`10:41: pipelines[1].delivery.backoff: has 3 durations, more than max_deliver (2) deliveries can use`}},
		{"backoff longer than the default max_deliver", deliv("{persistent: true}", "{backoff: [1s, 2s, 3s, 4s, 5s, 6s]}", ""),
			[]string{`10:25: pipelines[1].delivery.backoff: has 6 durations, more than max_deliver (5) deliveries can use`}},
		{"backoff zero", deliv("{persistent: true}", "{backoff: [1s, 0s]}", ""),
			[]string{`10:30: pipelines[1].delivery.backoff[1]: must be positive`}},
		{"backoff within the batch wait", deliv("{persistent: true}", "{backoff: [10ms, 1s]}", ""),
			[]string{`10:26: pipelines[1].delivery.backoff[0]: must be longer than batch.max_wait (50ms)`}},
		{"backoff negative", deliv("{persistent: true}", "{backoff: [-1s]}", ""),
			[]string{`10:26: pipelines[1].delivery.backoff[0]: negative duration "-1s"`}},
		{"dead_letter unknown", deliv("{persistent: true}", "{dead_letter: dlq}", ""),
			[]string{`10:29: pipelines[1].delivery.dead_letter: no channel named "dlq"`}},
		{"dead_letter misspelt", deliv("{persistent: true}", "{dead_letter: yy}", ""),
			[]string{`10:29: pipelines[1].delivery.dead_letter: no channel named "yy" (did you mean "y"?)`}},
		{"dead_letter a source", deliv("{persistent: true}", "{dead_letter: gen2}", ""),
			[]string{`10:29: pipelines[1].delivery.dead_letter: "gen2" is a source; this takes a channel`}},
		{"dead_letter a sink", deliv("{persistent: true}", "{dead_letter: void}", ""),
			[]string{`10:29: pipelines[1].delivery.dead_letter: "void" is a sink; this takes a channel`}},
		{"dead_letter the channel read", deliv("{persistent: true}", "{dead_letter: x}", ""),
			[]string{`10:29: pipelines[1].delivery.dead_letter: "x" is the channel this pipeline reads; events that keep failing must go elsewhere`}},
		{"dead_letter empty", deliv("{persistent: true}", `{dead_letter: ""}`, ""),
			[]string{`10:29: pipelines[1].delivery.dead_letter: required: the name of a channel`}},
		{"dead_letter without a limit", deliv("{persistent: true}", "{max_deliver: -1, dead_letter: y}", ""),
			[]string{`10:46: pipelines[1].delivery.dead_letter: needs a max_deliver limit: events go to the dead letter after max_deliver deliveries, and -1 never gives up`}},
		{"dead_letter makes a cycle", strings.Replace(head, "x: {}, y: {}", "x: {persistent: true}, y: {}", 1) + `pipelines:
  - {name: a, from: x, to: [out], delivery: {dead_letter: y}}
  - {name: b, from: y, to: [x]}
  - {name: w, from: gen, to: [x]}
`,
			[]string{`6:59: pipelines[0].delivery.dead_letter: pipelines a -> b -> a form a cycle through channels y, x`}},
		{"delivery, several", deliv("{persistent: true}", "\n      mode: once\n      ack_wait: 0s\n      max_deliver: 0\n      start: latest", ""),
			[]string{
				`11:13: pipelines[1].delivery.mode: unknown value "once"`,
				`12:17: pipelines[1].delivery.ack_wait: must be positive`,
				`13:20: pipelines[1].delivery.max_deliver: must be 1 or more, or -1 for no limit, got 0`,
				`14:14: pipelines[1].delivery.start: unknown value "latest": want all or new`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkParseErrors(t, dir, tc.text, tc.want)
		})
	}
}

// TestDurableDefaults checks what Load sets on persistent channels, the
// nats block and the delivery of pipelines that read persistent
// channels, and that it sets it there only; and that each manifest reads
// back the same when written out.
func TestDurableDefaults(t *testing.T) {
	dir, _ := fixture(t)
	s := func(n int) manifest.Duration { return manifest.Duration(time.Duration(n) * time.Second) }
	memory := manifest.Channel{Buffer: 1024, SlowSubscriber: "block", Retention: &manifest.Retention{MaxEvents: 1000}}
	durable := manifest.Channel{Persistent: true, Buffer: 1024, Retention: &manifest.Retention{},
		Replicas: 1, Discard: "old", DuplicateWindow: s(120)}
	delivery := &manifest.Delivery{Mode: "at-least-once", AckWait: s(30), MaxDeliver: 5, Start: "all"}
	with := func(c manifest.Channel, f func(*manifest.Channel)) manifest.Channel {
		c.Retention = new(*c.Retention)
		f(&c)
		return c
	}
	withD := func(f func(*manifest.Delivery)) *manifest.Delivery {
		d := *delivery
		f(&d)
		return &d
	}
	for _, tc := range []struct {
		name     string
		channel  string // channel x
		nats     string // the nats block, if any
		delivery string // the delivery of pipeline r, from x, if any
		wantX    manifest.Channel
		wantNATS *manifest.NATS
		wantD    *manifest.Delivery
	}{
		{name: "in memory", channel: "{}", wantX: memory},
		{name: "persistent", channel: "{persistent: true}", wantX: durable, wantD: delivery},
		{name: "persistent, delivery null", channel: "{persistent: true}", delivery: "null", wantX: durable, wantD: delivery},
		{name: "persistent, delivery empty", channel: "{persistent: true}", delivery: "{}", wantX: durable, wantD: delivery},
		{name: "persistent, max_age shorter than the window", channel: "{persistent: true, retention: {max_age: 30s}}",
			wantX: with(durable, func(c *manifest.Channel) { c.Retention.MaxAge = s(30); c.DuplicateWindow = s(30) }), wantD: delivery},
		{name: "persistent, max_age longer than the window", channel: "{persistent: true, retention: {max_age: 1h}}",
			wantX: with(durable, func(c *manifest.Channel) { c.Retention.MaxAge = s(3600) }), wantD: delivery},
		{name: "persistent, every field", channel: "{persistent: true, buffer: 8, replicas: 1, discard: new, duplicate_window: 1s, retention: {max_events: 10, max_age: 1m, max_bytes: 1MiB}}",
			wantX: manifest.Channel{Persistent: true, Buffer: 8, Replicas: 1, Discard: "new", DuplicateWindow: s(1),
				Retention: &manifest.Retention{MaxEvents: 10, MaxAge: s(60), MaxBytes: manifest.MiB}}, wantD: delivery},
		{name: "persistent, duplicate_window as max_age", channel: "{persistent: true, duplicate_window: 100ms, retention: {max_age: 100ms}}",
			wantX: with(durable, func(c *manifest.Channel) {
				c.Retention.MaxAge = manifest.Duration(100 * time.Millisecond)
				c.DuplicateWindow = manifest.Duration(100 * time.Millisecond)
			}), wantD: delivery},
		{name: "embedded, nats empty", channel: "{persistent: true}", nats: "{}", wantX: durable, wantNATS: &manifest.NATS{}, wantD: delivery},
		{name: "embedded, listen and max_store", channel: "{persistent: true}", nats: `{listen: "127.0.0.1:4222", max_store: 10GiB, replicas: 1}`,
			wantX: durable, wantNATS: &manifest.NATS{Listen: "127.0.0.1:4222", MaxStore: 10 * manifest.GiB, Replicas: 1}, wantD: delivery},
		{name: "cluster, default replicas", channel: "{persistent: true}", nats: `{urls: ["nats://a:4222", "tls://b:4222"]}`,
			wantX: durable, wantNATS: &manifest.NATS{URLs: []string{"nats://a:4222", "tls://b:4222"}, Replicas: 1}, wantD: delivery},
		{name: "cluster, replicas from nats", channel: "{persistent: true}", nats: `{urls: ["nats://a:4222/"], replicas: 3}`,
			wantX: with(durable, func(c *manifest.Channel) { c.Replicas = 3 }), wantNATS: &manifest.NATS{URLs: []string{"nats://a:4222/"}, Replicas: 3}, wantD: delivery},
		{name: "cluster, replicas of the channel", channel: "{persistent: true, replicas: 5}", nats: `{urls: ["nats://user:pass@a:4222"], replicas: 3}`,
			wantX: with(durable, func(c *manifest.Channel) { c.Replicas = 5 }), wantNATS: &manifest.NATS{URLs: []string{"nats://user:pass@a:4222"}, Replicas: 3}, wantD: delivery},
		{name: "nats without persistent channels", channel: "{}", nats: `{urls: ["nats://a:4222"]}`,
			wantX: memory, wantNATS: &manifest.NATS{URLs: []string{"nats://a:4222"}, Replicas: 1}},
		{name: "delivery, exactly-once from new", channel: "{persistent: true}", delivery: "{mode: exactly-once, start: new}",
			wantX: durable, wantD: withD(func(d *manifest.Delivery) { d.Mode = "exactly-once"; d.Start = "new" })},
		{name: "delivery, backoff replaces ack_wait", channel: "{persistent: true}", delivery: "{backoff: [1s, 10s, 1m, 2m, 5m]}",
			wantX: durable, wantD: withD(func(d *manifest.Delivery) {
				d.AckWait = 0
				d.Backoff = []manifest.Duration{s(1), s(10), s(60), s(120), s(300)}
			})},
		{name: "delivery, no limit", channel: "{persistent: true}", delivery: "{max_deliver: -1, backoff: [1s, 2s, 3s, 4s, 5s, 6s, 7s]}",
			wantX: durable, wantD: withD(func(d *manifest.Delivery) {
				d.AckWait, d.MaxDeliver = 0, manifest.NoMaxDeliver
				d.Backoff = []manifest.Duration{s(1), s(2), s(3), s(4), s(5), s(6), s(7)}
			})},
		{name: "delivery, once, to a dead letter", channel: "{persistent: true}", delivery: "{max_deliver: 1, ack_wait: 2m, dead_letter: y}",
			wantX: durable, wantD: withD(func(d *manifest.Delivery) { d.MaxDeliver, d.AckWait, d.DeadLetter = 1, s(120), "y" })},
		{name: "delivery, dead letter with backoff", channel: "{persistent: true}", delivery: "{dead_letter: y, backoff: [1s]}",
			wantX: durable, wantD: withD(func(d *manifest.Delivery) { d.AckWait, d.Backoff, d.DeadLetter = 0, []manifest.Duration{s(1)}, "y" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(head, "x: {}", "x: "+tc.channel, 1) + "pipelines:\n  - {name: w, from: gen, to: [x]}\n  - {name: q, from: gen2, to: [out]}\n  - name: r\n    from: x\n    to: [out]\n"
			if tc.delivery != "" {
				text += "    delivery: " + tc.delivery + "\n"
			}
			if tc.nats != "" {
				text += "nats: " + tc.nats + "\n"
			}
			m, err := parse(t, dir, text, nil)
			if err != nil {
				t.Fatal(err)
			}
			check := func(name string, got, want any) {
				t.Helper()
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %s, want %s", name, dump(got), dump(want))
				}
			}
			check("channels.x", m.Channels["x"], tc.wantX)
			check("channels.y", m.Channels["y"], memory)
			check("nats", m.NATS, tc.wantNATS)
			check("pipelines[0].delivery (from a source)", m.Pipelines[0].Delivery, (*manifest.Delivery)(nil))
			check("pipelines[1].delivery (from a source)", m.Pipelines[1].Delivery, (*manifest.Delivery)(nil))
			check("pipelines[2].delivery", m.Pipelines[2].Delivery, tc.wantD)
			check("data_dir/jetstream", m.DataPath("jetstream"), dir+"/.aegis/jetstream")
			roundTrip(t, dir, m)
		})
	}
	for name, got := range map[string][2]any{
		"DefaultReplicas":        {manifest.DefaultReplicas, 1},
		"DefaultDiscard":         {manifest.DefaultDiscard, "old"},
		"DefaultDuplicateWindow": {manifest.DefaultDuplicateWindow.D(), 2 * time.Minute},
		"DefaultDeliveryMode":    {manifest.DefaultDeliveryMode, "at-least-once"},
		"DefaultAckWait":         {manifest.DefaultAckWait.D(), 30 * time.Second},
		"DefaultMaxDeliver":      {manifest.DefaultMaxDeliver, 5},
		"DefaultStart":           {manifest.DefaultStart, "all"},
		"NoMaxDeliver":           {manifest.NoMaxDeliver, -1},
	} {
		if got[0] != got[1] {
			t.Errorf("%s = %v, want %v", name, got[0], got[1])
		}
	}
}

// TestSchemaDurable checks the schema on persistent channels, the nats
// block and delivery: it accepts what Parse accepts, and rejects
// structural mistakes that Parse rejects too.
func TestSchemaDurable(t *testing.T) {
	sch := compileSchema(t)
	dir, _ := fixture(t)
	for _, tc := range []struct {
		name   string
		text   string
		accept bool
	}{
		{"persistent channel", chans("{persistent: true, replicas: 1, discard: new, duplicate_window: 1m, retention: {max_events: 0, max_age: 1h, max_bytes: 1GiB}}"), true},
		{"embedded server", natsBlock(`{listen: ":4222", max_store: 1GiB, replicas: 1}`), true},
		{"cluster", natsBlock(`{urls: ["nats://a:4222", "TLS://b:4222/"], replicas: 5}`), true},
		{"delivery", deliv("{persistent: true}", "{mode: exactly-once, max_deliver: 3, backoff: [1s, 1m], dead_letter: y, start: new}", ""), true},
		{"delivery, no limit", deliv("{persistent: true}", "{max_deliver: -1, ack_wait: 1m}", ""), true},

		{"replicas in memory", chans("{replicas: 1}"), false},
		{"discard in memory", chans("{persistent: false, discard: old}"), false},
		{"duplicate_window in memory", chans("{duplicate_window: 1m}"), false},
		{"max_bytes in memory", chans("{retention: {max_bytes: 1MiB}}"), false},
		{"slow_subscriber on a persistent channel", chans("{persistent: true, slow_subscriber: block}"), false},
		{"max_events -1 on a persistent channel", chans("{persistent: true, retention: {max_events: -1}}"), false},
		{"replicas even", chans("{persistent: true, replicas: 2}"), false},
		{"replicas 7", chans("{persistent: true, replicas: 7}"), false},
		{"discard unknown", chans("{persistent: true, discard: oldest}"), false},
		{"duplicate_window without unit", chans("{persistent: true, duplicate_window: 120}"), false},
		{"nats unknown key", natsBlock("{url: [nats://a:4222]}"), false},
		{"urls empty", natsBlock("{urls: []}"), false},
		{"urls a string", natsBlock("{urls: nats://a:4222}"), false},
		{"url of another scheme", natsBlock(`{urls: ["http://a:4222"]}`), false},
		{"url without a scheme", natsBlock(`{urls: ["a:4222"]}`), false},
		{"urls joined by a comma", natsBlock(`{urls: ["nats://a:4222,nats://b:4222"]}`), false},
		{"url with a path", natsBlock(`{urls: ["nats://a:4222/x"]}`), false},
		{"url twice", natsBlock(`{urls: ["nats://a:4222", "nats://a:4222"]}`), false},
		{"listen with urls", natsBlock(`{urls: ["nats://a:4222"], listen: ":4222"}`), false},
		{"max_store with urls", natsBlock(`{urls: ["nats://a:4222"], max_store: 1GiB}`), false},
		{"listen without a port", natsBlock(`{listen: localhost}`), false},
		{"nats replicas without urls", natsBlock(`{replicas: 3}`), false},
		{"nats replicas even", natsBlock(`{urls: ["nats://a:4222"], replicas: 2}`), false},
		{"delivery unknown key", deliv("{persistent: true}", "{max_deliveries: 3}", ""), false},
		{"mode unknown", deliv("{persistent: true}", "{mode: at-most-once}", ""), false},
		{"start unknown", deliv("{persistent: true}", "{start: first}", ""), false},
		{"max_deliver zero", deliv("{persistent: true}", "{max_deliver: 0}", ""), false},
		{"max_deliver below -1", deliv("{persistent: true}", "{max_deliver: -2}", ""), false},
		{"backoff empty", deliv("{persistent: true}", "{backoff: []}", ""), false},
		{"backoff without unit", deliv("{persistent: true}", "{backoff: [1]}", ""), false},
		{"ack_wait and backoff", deliv("{persistent: true}", "{ack_wait: 10s, backoff: [1s]}", ""), false},
		{"dead_letter without a limit", deliv("{persistent: true}", "{max_deliver: -1, dead_letter: y}", ""), false},
		{"dead_letter empty", deliv("{persistent: true}", `{dead_letter: ""}`, ""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serr := sch.Validate(instance(t, tc.text))
			_, perr := parse(t, dir, tc.text, nil)
			switch {
			case tc.accept && serr != nil:
				t.Errorf("the schema rejects:\n%s\n%v", tc.text, serr)
			case tc.accept && perr != nil:
				t.Errorf("Parse rejects:\n%s\n%v", tc.text, perr)
			case !tc.accept && serr == nil:
				t.Errorf("the schema accepts:\n%s", tc.text)
			case !tc.accept && perr == nil:
				t.Errorf("Parse accepts:\n%s", tc.text)
			}
		})
	}
}
