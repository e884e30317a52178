// Package manifest reads and checks pipeline manifests: the YAML file that
// says which channels, sources, sinks and pipelines aegis-host runs.
//
// Load parses a file (after ${ENV} substitution), decodes it strictly
// (unknown keys and wrong types are errors), applies defaults and checks
// everything that can be checked before anything starts: names and
// references, durations and sizes, plugin files (wasm modules and
// connector executables) and their sha256 pins, window and error-policy
// settings, and cycles between pipelines through channels. Every error
// names the file, line, column and field.
//
// After Load, the structs hold final values: every default that applies
// is set (batch sizes, workers, error policies, plugin limits, channel
// buffers, formats, connector timeouts and restarts, the data directory,
// persistent channels' replicas, discard and duplicate window, the
// delivery of pipelines that read them, the slot, publication, before
// images, batch size and status interval of CDC sources, ...; see the
// Default constants),
// so the code that wires a manifest reads the fields as they are.
// Defaults are set only where they apply (a generator gets an interval, a
// file source a format, a connector a timeout, a persistent channel a
// duplicate window, an in-memory one a slow-subscriber policy), and a
// loaded manifest written back out loads again to the same value.
//
// Persistent channels (channels.NAME.persistent) are NATS JetStream
// streams: by default on an embedded server whose store is
// data_dir/jetstream ([Manifest.DataPath]("jetstream")), or on the
// external cluster that the nats block names. Pipelines that read them
// have a [Delivery] (acknowledgements, redelivery, dead letters). Paths stay as written; [Manifest.Resolve] resolves them,
// and [Manifest.DataPath] names what goes under the data directory.
//
// The exception is [Telemetry]: what it leaves unset stays unset (its
// exporters, endpoints, sampling ratio, service name and metric
// interval), because then the standard OTEL_* environment variables
// decide, which Load does not read; only the traces' queue size gets its
// default. The fields' documentation says which variables apply, and
// what holds when they are not set either.
//
// The api block serves the channels over HTTP ([API]). Its tokens are
// checked as the API server checks them, each error at the token and
// field at fault; its tokens_file is read at load, and its errors name
// that file, line and field. Without tokens, the API may listen on a
// loopback address only (127.0.0.0/8, ::1, localhost), unless
// allow_unauthenticated says otherwise. A manifest with an api block
// needs no pipelines: a host may only serve channels.
//
// Schema returns a JSON Schema of the format, for editors.
package manifest

// APIVersion is the only manifest version this build reads.
const APIVersion = "aegis/v1"

// Manifest is a whole pipeline manifest.
type Manifest struct {
	// APIVersion must be [APIVersion].
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	// Channels are the named channels pipelines read from and write to.
	Channels map[string]Channel `yaml:"channels,omitempty" json:"channels,omitempty"`
	// Sources are the named external inputs.
	Sources map[string]Source `yaml:"sources,omitempty" json:"sources,omitempty"`
	// Sinks are the named external outputs.
	Sinks map[string]Sink `yaml:"sinks,omitempty" json:"sinks,omitempty"`
	// Pipelines say what runs: from a source or channel, through steps, to
	// sinks and channels. At least one, unless the manifest has an api
	// block: a host may only serve its channels.
	Pipelines []Pipeline `yaml:"pipelines,omitempty" json:"pipelines,omitempty"`
	// Telemetry configures OpenTelemetry traces and metrics. Nil when
	// the manifest has no telemetry block (the standard OTEL_* variables
	// may apply).
	Telemetry *Telemetry `yaml:"telemetry,omitempty" json:"telemetry,omitempty"`
	// NATS configures the NATS JetStream server that holds persistent
	// channels. Nil when the manifest has no nats block: persistent
	// channels then live in an embedded server (in-process, listening on
	// no port) whose store is data_dir/jetstream. A manifest with
	// persistent channels needs no nats block.
	NATS *NATS `yaml:"nats,omitempty" json:"nats,omitempty"`
	// DataDir is the directory where aegis-host keeps what must survive a
	// restart: the last acknowledged position of each connector source,
	// and the store of the embedded NATS server for persistent channels
	// (data_dir/jetstream). Relative to the manifest
	// like other paths; default [DefaultDataDir] (".aegis"), which Load
	// sets. Load does not create it: whoever first needs it does (see
	// [Manifest.DataPath]); if it exists, it must be a directory.
	DataDir string `yaml:"data_dir,omitempty" json:"data_dir,omitempty"`
	// API serves the channels over HTTP: publishing, history, streams
	// (Server-Sent Events and WebSocket) and administration. Nil when the
	// manifest has no api block (aegis-host run --api-listen makes one).
	API *API `yaml:"api,omitempty" json:"api,omitempty"`

	// File is the path the manifest was read from (not part of the YAML).
	File string `yaml:"-" json:"-"`
	// Dir is the directory relative paths (plugins, files, the data
	// directory) resolve against: the manifest file's directory (not part
	// of the YAML).
	Dir string `yaml:"-" json:"-"`
}

// Channel is an engine channel: in memory (the default, the fast path),
// or persistent (a NATS JetStream stream that survives restarts and
// redelivers what its readers have not acknowledged). Replicas, Discard,
// DuplicateWindow and Retention.MaxBytes are for persistent channels
// only; SlowSubscriber is for in-memory channels only.
type Channel struct {
	// Persistent makes the channel durable: a NATS JetStream stream,
	// stored by the embedded server under data_dir/jetstream or by the
	// cluster of nats.urls. Pipelines that read it get acknowledged
	// delivery (see [Pipeline.Delivery]).
	Persistent bool `yaml:"persistent,omitempty" json:"persistent,omitempty"`
	// Buffer is how many events each subscription may hold (default 1024).
	Buffer int `yaml:"buffer,omitempty" json:"buffer,omitempty"`
	// SlowSubscriber: block (default), drop-oldest or disconnect. In-memory
	// channels only (a persistent channel's readers fall behind in its
	// stream instead, and lose nothing); Load sets it on those only.
	SlowSubscriber string `yaml:"slow_subscriber,omitempty" json:"slow_subscriber,omitempty"`
	// Retention bounds the channel's history (never nil after Load).
	Retention *Retention `yaml:"retention,omitempty" json:"retention,omitempty"`
	// Replicas is how many servers store each event of a persistent
	// channel: 1, 3 or 5 (odd, so that a majority can agree). More than 1
	// needs a cluster (nats.urls). Default: nats.replicas on a cluster,
	// else [DefaultReplicas] (1), which Load sets on persistent channels.
	Replicas int `yaml:"replicas,omitempty" json:"replicas,omitempty"`
	// Discard says what a full persistent channel (at retention.max_events
	// or retention.max_bytes) does with a new event: old (the default,
	// [DefaultDiscard]) removes the oldest events to make room, even those
	// a pipeline has not read yet; new refuses the new event, so its
	// publisher gets an error and nothing stored is lost. Age
	// (retention.max_age) always removes the oldest.
	Discard string `yaml:"discard,omitempty" json:"discard,omitempty"`
	// DuplicateWindow is how long a persistent channel remembers the IDs
	// of the events written to it, to drop an event written again with
	// the same ID (a producer's retry, a pipeline's replay after a crash):
	// what makes exactly-once delivery exactly once. At least 100ms and at
	// most retention.max_age; default [DefaultDuplicateWindow] (2m), or
	// retention.max_age when that is shorter, which Load sets.
	DuplicateWindow Duration `yaml:"duplicate_window,omitempty" json:"duplicate_window,omitempty"`
}

// Retention bounds a channel's history; an event leaves it when either
// bound says so (as engine.Retention). For a persistent channel the
// history is its stream: what its readers can still read.
type Retention struct {
	// MaxEvents is how many of the newest events are kept. In-memory
	// channels: default 1000 ([DefaultRetentionEvents], which Load sets);
	// -1 keeps none. Persistent channels: 0 (the default, which Load
	// leaves) is no limit but max_bytes, max_age and the store's quota;
	// -1 is refused.
	MaxEvents int `yaml:"max_events,omitempty" json:"max_events,omitempty"`
	// MaxAge drops events accepted longer ago than this (0: no limit); at
	// least 100ms on a persistent channel.
	MaxAge Duration `yaml:"max_age,omitempty" json:"max_age,omitempty"`
	// MaxBytes bounds the history's size (0: no limit but the store's
	// quota); persistent channels only.
	MaxBytes ByteSize `yaml:"max_bytes,omitempty" json:"max_bytes,omitempty"`
}

// NATS configures the NATS JetStream server of persistent channels: the
// embedded one (without URLs), or an external cluster (with URLs).
type NATS struct {
	// URLs are the nats:// (plaintext) or tls:// URLs of an external NATS
	// cluster with JetStream, one server each, such as
	// nats://nats-1:4222; any of them will do to connect, and the client
	// learns the others from the cluster. Empty: aegis-host runs an
	// embedded server in its own process, with its store under
	// data_dir/jetstream.
	URLs []string `yaml:"urls,omitempty" json:"urls,omitempty"`
	// Listen is the host:port on which the embedded server accepts other
	// NATS clients (such as the nats CLI, or other aegis-host processes
	// through their urls), such as 127.0.0.1:4222; port 0 picks a free
	// one. Empty (the default): no listener at all, only aegis-host's own
	// in-process connection. Embedded server only (not with URLs).
	Listen string `yaml:"listen,omitempty" json:"listen,omitempty"`
	// MaxStore caps the bytes the embedded server's store may hold, such
	// as 10GiB; past it, writes to persistent channels fail cleanly.
	// Unset (0): the host decides from the disk's free space when the
	// server starts. Embedded server only (not with URLs).
	MaxStore ByteSize `yaml:"max_store,omitempty" json:"max_store,omitempty"`
	// SyncAlways makes the embedded server write every stored event through
	// to the disk (fsync) before it is acknowledged, so that an operating
	// system crash or power loss loses nothing acknowledged either. Without
	// it the server syncs every two minutes: a crash of aegis-host alone
	// loses nothing, an OS crash up to that much. It costs about 90% of
	// publish throughput. Embedded server only (not with URLs).
	SyncAlways bool `yaml:"sync_always,omitempty" json:"sync_always,omitempty"`
	// Replicas is the default Replicas of persistent channels on the
	// cluster: 1, 3 or 5; Load sets [DefaultReplicas] (1) when URLs are
	// set. The embedded server stores one copy: without URLs it can only
	// be 1.
	Replicas int `yaml:"replicas,omitempty" json:"replicas,omitempty"`
}

// Source is an external input. Type says which; the other fields belong
// to one type each (checked).
type Source struct {
	// Type: generator, file, stdin, plugin (a connector), postgres-cdc
	// (PostgreSQL logical replication) or debezium (Debezium's change
	// envelopes from a file, stdin or HTTP).
	Type string `yaml:"type" json:"type"`

	// generator: the orders workload (internal/orders).
	// Count is how many events (0: without end).
	Count int64 `yaml:"count,omitempty" json:"count,omitempty"`
	// Rate is events per second (0: as fast as possible).
	Rate float64 `yaml:"rate,omitempty" json:"rate,omitempty"`
	// Start is the event time of the first event (RFC 3339; default: now).
	Start string `yaml:"start,omitempty" json:"start,omitempty"`
	// Interval is the event time between two events (default 1ms).
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`

	// file: JSON lines, one event each (the form aegis-host prints), or
	// bare JSON documents as data when Format is "data". Path is relative
	// to the manifest (see [Manifest.Resolve]); the file must exist.
	// debezium: the file of newline-delimited envelopes, or "-" for stdin
	// (Path or Listen, not both).
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Format of file and stdin: "event" (default) or "data".
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
	// EventType is the type of events read in the "data" format
	// (required with it).
	EventType string `yaml:"event_type,omitempty" json:"event_type,omitempty"`

	// plugin: an out-of-process connector (hashicorp/go-plugin), an
	// executable that aegis-host starts and talks to over gRPC.
	// Plugin is the path of the connector's executable, relative to the
	// manifest (see [Manifest.Resolve]); Load checks that it is a regular
	// file with an execute bit set.
	Plugin string `yaml:"plugin,omitempty" json:"plugin,omitempty"`
	// SHA256 pins the executable's hex digest (64 hex digits); Load
	// checks the file against it, as for a wasm step's plugin.
	SHA256 string `yaml:"sha256,omitempty" json:"sha256,omitempty"`
	// With is the connector's configuration, handed to it as a JSON
	// object (nil when left out or empty).
	With map[string]any `yaml:"with,omitempty" json:"with,omitempty"`
	// Timeout is how long a call to the connector may take beyond what
	// it is asked to wait, and how long it has to start; past it the host
	// treats the connector as hung. Positive; default
	// [DefaultConnectorTimeout] (30s), which Load sets.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// MaxRestarts is how many times in a row the host restarts the
	// connector when it crashes, hangs or returns invalid events, before
	// the pipeline fails; 0 never restarts. Nil when left out: Load sets
	// [DefaultConnectorMaxRestarts] (5), so it is never nil on a plugin
	// source after Load (and nil on the other types).
	MaxRestarts *int `yaml:"max_restarts,omitempty" json:"max_restarts,omitempty"`

	// postgres-cdc: the row changes of PostgreSQL tables, read from a
	// logical replication slot (pgoutput). The slot's position advances
	// only once the pipeline has written the changes out, and is kept by
	// the server; the source's own state (its snapshot's progress) is
	// kept under the data directory (cdc/NAME.json).
	// DSN is how to connect: a URL (postgres://user:pass@host:5432/db) or
	// libpq's key=value pairs; write secrets as ${VAR}. Required. The
	// user needs the REPLICATION attribute.
	DSN string `yaml:"dsn,omitempty" json:"dsn,omitempty"`
	// Slot is the replication slot: created when missing, resumed from
	// when it exists. Lowercase letters, digits and underscores; default
	// "aegis_" and the source's name in that alphabet, which Load sets.
	Slot string `yaml:"slot,omitempty" json:"slot,omitempty"`
	// Publication is the publication the slot reads: created for Tables
	// when missing. Default: the slot's name, which Load sets.
	Publication string `yaml:"publication,omitempty" json:"publication,omitempty"`
	// Snapshot reads the tables' rows (as read changes) when the slot is
	// created, consistently with the stream that follows.
	Snapshot bool `yaml:"snapshot,omitempty" json:"snapshot,omitempty"`
	// Tables are the tables whose changes are read, and how: required
	// (at least one) for postgres-cdc; optional for debezium, where
	// without it every table's changes are kept.
	Tables []Table `yaml:"tables,omitempty" json:"tables,omitempty"`
	// StatusInterval is how often the source tells the server how far the
	// pipeline has acknowledged (postgres-cdc). Positive; default
	// [DefaultStatusInterval] (1s), which Load sets.
	StatusInterval Duration `yaml:"status_interval,omitempty" json:"status_interval,omitempty"`

	// debezium: Debezium's JSON change envelopes, one a line from Path,
	// or POSTed to an HTTP endpoint on Listen (answered once the pipeline
	// has written them out).
	// Listen is the host:port of the HTTP endpoint, such as
	// 127.0.0.1:8083 (Path or Listen, not both).
	Listen string `yaml:"listen,omitempty" json:"listen,omitempty"`
	// DeadLetter names a channel that malformed envelopes go to, as
	// events of type aegis.undecodable holding the raw line, with the
	// metadata aegis.error, aegis.error.input and aegis.error.line.
	// Without it they are logged (at warn) and counted.
	DeadLetter string `yaml:"dead_letter,omitempty" json:"dead_letter,omitempty"`
	// AckTimeout is how long the HTTP endpoint waits for the pipeline to
	// acknowledge a request's changes before it answers 504 (the changes
	// were taken and still flow). Positive, with Listen only; default 30s.
	AckTimeout Duration `yaml:"ack_timeout,omitempty" json:"ack_timeout,omitempty"`

	// postgres-cdc and debezium: how changes are shaped and batched.
	// IncludeBefore keeps before images of updates and deletes; false
	// keeps the key and the after image only. Nil when left out: Load
	// sets true.
	IncludeBefore *bool `yaml:"include_before,omitempty" json:"include_before,omitempty"`
	// BatchSize is the most changes one read hands the pipeline.
	// Positive; default [DefaultCDCBatchSize] (256), which Load sets.
	BatchSize int `yaml:"batch_size,omitempty" json:"batch_size,omitempty"`
	// BatchTimeout is how long a read that has some changes waits for
	// more to fill its batch; 0 (the default) hands them on at once.
	BatchTimeout Duration `yaml:"batch_timeout,omitempty" json:"batch_timeout,omitempty"`
}

// Table selects a table's changes (a postgres-cdc or debezium source's
// tables) and shapes them.
type Table struct {
	// Table is "schema.table", or "table" in the schema public. Required;
	// a table is listed once.
	Table string `yaml:"table" json:"table"`
	// Changes are the change types kept: insert, update, delete, truncate
	// and read (rows of the snapshot); empty keeps them all.
	Changes []string `yaml:"changes,omitempty" json:"changes,omitempty"`
	// Columns, when set, are the only columns kept in the before and
	// after images (the key is kept whole).
	Columns []string `yaml:"columns,omitempty" json:"columns,omitempty"`
	// Filter is a CEL expression (https://cel.dev) a change must make
	// true to be kept, over op, schema, table, row, before and after,
	// such as row.status == "paid". Load compiles it.
	Filter string `yaml:"filter,omitempty" json:"filter,omitempty"`
}

// Sink is an external output. Type says which; the other fields belong
// to one type each (checked).
type Sink struct {
	// Type: stdout, file, drop or plugin (a connector).
	Type string `yaml:"type" json:"type"`
	// Path of a file sink, relative to the manifest; its directory must
	// exist.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Append to the file instead of truncating it.
	Append bool `yaml:"append,omitempty" json:"append,omitempty"`
	// Format of stdout and file: "event" (default, the whole event as
	// JSON) or "data" (the data only).
	Format string `yaml:"format,omitempty" json:"format,omitempty"`

	// plugin: an out-of-process connector (hashicorp/go-plugin), an
	// executable that aegis-host starts and talks to over gRPC.
	// Plugin is the path of the connector's executable, relative to the
	// manifest (see [Manifest.Resolve]); Load checks that it is a regular
	// file with an execute bit set.
	Plugin string `yaml:"plugin,omitempty" json:"plugin,omitempty"`
	// SHA256 pins the executable's hex digest (64 hex digits); Load
	// checks the file against it, as for a wasm step's plugin.
	SHA256 string `yaml:"sha256,omitempty" json:"sha256,omitempty"`
	// With is the connector's configuration, handed to it as a JSON
	// object (nil when left out or empty).
	With map[string]any `yaml:"with,omitempty" json:"with,omitempty"`
	// Timeout is how long a call to the connector may take beyond what
	// it is asked to wait, and how long it has to start; past it the host
	// treats the connector as hung. Positive; default
	// [DefaultConnectorTimeout] (30s), which Load sets.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// MaxRestarts is how many times in a row the host restarts the
	// connector when it crashes, hangs or returns invalid events, before
	// the pipeline fails; 0 never restarts. Nil when left out: Load sets
	// [DefaultConnectorMaxRestarts] (5), so it is never nil on a plugin
	// sink after Load (and nil on the other types).
	MaxRestarts *int `yaml:"max_restarts,omitempty" json:"max_restarts,omitempty"`
}

// Pipeline is one flow of events.
type Pipeline struct {
	// Name is unique among pipelines: letters, digits, '.', '-' and '_'.
	Name string `yaml:"name" json:"name"`
	// From names a source or a channel. A source feeds one pipeline only.
	From string `yaml:"from" json:"from"`
	// Steps run in order.
	Steps []Step `yaml:"steps,omitempty" json:"steps,omitempty"`
	// To names sinks and channels; every output event goes to each.
	To []string `yaml:"to" json:"to"`
	// Batch says how batches form (never nil after Load).
	Batch *Batch `yaml:"batch,omitempty" json:"batch,omitempty"`
	// Delivery says how a pipeline that reads a persistent channel
	// acknowledges what it reads, and what happens to events it fails to
	// process; for such pipelines only. Never nil on them after Load (nil
	// on the others).
	Delivery *Delivery `yaml:"delivery,omitempty" json:"delivery,omitempty"`
}

// Delivery is how a pipeline reads a persistent channel: through a
// durable subscription (named after the pipeline) that remembers, across
// restarts, which events the pipeline is done with. An event counts as
// done (acknowledged) once its batch has been processed and written to
// every output, or dropped on purpose; an event not acknowledged within
// the ack wait (a crash, a hang, a failed batch) is delivered again, up
// to MaxDeliver times in all.
type Delivery struct {
	// Mode is at-least-once (the default, [DefaultDeliveryMode]): no
	// event is lost, and an event whose batch was being processed when
	// aegis-host stopped or failed is processed again, so outputs may see
	// it twice. Or exactly-once: acknowledgements are confirmed by the
	// server, so an acknowledged event is never delivered again, and
	// events written to persistent channels are de-duplicated by event ID
	// within each channel's duplicate_window, so a replay after a crash
	// adds no duplicate there. Sinks (files, connectors) are not
	// de-duplicated: one may still see an event again after a crash.
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// AckWait is how long the server waits for an event's acknowledgement
	// before it delivers it again; longer than batch.max_wait, plus the
	// time a batch takes. Default [DefaultAckWait] (30s), which Load sets
	// when Backoff is not set (Backoff replaces it).
	AckWait Duration `yaml:"ack_wait,omitempty" json:"ack_wait,omitempty"`
	// MaxDeliver is how many times an event is delivered at most (1 or
	// more), or -1 ([NoMaxDeliver]) for no limit. An event that reaches
	// it without an acknowledgement goes to DeadLetter, if set; without
	// one, this pipeline gives up on it (it stays in the channel until
	// retention removes it). Default [DefaultMaxDeliver] (5).
	MaxDeliver int `yaml:"max_deliver,omitempty" json:"max_deliver,omitempty"`
	// Backoff are the ack waits after the 1st, 2nd, ... delivery of an
	// event, instead of AckWait (the last one repeats for later
	// deliveries), such as [1s, 10s, 1m]: redeliveries that back off. At
	// most MaxDeliver values. Optional.
	Backoff []Duration `yaml:"backoff,omitempty" json:"backoff,omitempty"`
	// DeadLetter names the channel (not the one the pipeline reads) that
	// events exhausting MaxDeliver go to, with the reason, and messages of
	// the channel read that are not events (as aegis.undecodable events
	// holding their bytes). A channel, not a sink: a pipeline may read it
	// into one. Needs a MaxDeliver limit.
	DeadLetter string `yaml:"dead_letter,omitempty" json:"dead_letter,omitempty"`
	// Start is where the durable subscription begins the first time the
	// pipeline runs: all (the default, [DefaultStart]) from the channel's
	// oldest retained event, or new from the events written after it
	// starts. Later runs resume where the last one left off, whatever
	// Start says.
	Start string `yaml:"start,omitempty" json:"start,omitempty"`
}

// Batch says how batches form: by size or time, whichever comes first.
type Batch struct {
	// MaxEvents per batch (default 256).
	MaxEvents int `yaml:"max_events,omitempty" json:"max_events,omitempty"`
	// MaxWait is how long a batch waits to fill after its first event
	// (default 50ms).
	MaxWait Duration `yaml:"max_wait,omitempty" json:"max_wait,omitempty"`
}

// Step is one stage of a pipeline: a wasm plugin (Plugin), a native filter
// (Filter), a native transform (Transform), or an aggregation (Aggregate,
// with built-in Functions or with Plugin). Exactly one kind per step.
type Step struct {
	// Name is unique in its pipeline: letters, digits, '.', '-' and '_'.
	Name string `yaml:"name" json:"name"`

	// Plugin is the path of a .wasm module (relative to the manifest).
	Plugin string `yaml:"plugin,omitempty" json:"plugin,omitempty"`
	// SHA256 pins the module's hex digest; Load checks the file against
	// it (and the host again when it loads the module).
	SHA256 string `yaml:"sha256,omitempty" json:"sha256,omitempty"`
	// Kind asserts the plugin's kind: filter, map or aggregate (default:
	// the module's only kind; Load sets aggregate for a plugin step with
	// an Aggregate block).
	Kind string `yaml:"kind,omitempty" json:"kind,omitempty"`
	// With is the plugin's configuration, handed to it as a JSON object.
	With map[string]any `yaml:"with,omitempty" json:"with,omitempty"`
	// Limits bound what the plugin may use (never nil on a plugin step
	// after Load).
	Limits *Limits `yaml:"limits,omitempty" json:"limits,omitempty"`
	// Grants give the plugin what it has not by default.
	Grants *Grants `yaml:"grants,omitempty" json:"grants,omitempty"`

	// Filter is a native filter.
	Filter *Filter `yaml:"filter,omitempty" json:"filter,omitempty"`
	// Transform is a native transform.
	Transform *Transform `yaml:"transform,omitempty" json:"transform,omitempty"`
	// Aggregate makes the step keyed and windowed.
	Aggregate *Aggregate `yaml:"aggregate,omitempty" json:"aggregate,omitempty"`

	// Workers is how many batches the step processes at once (default 1);
	// output order is kept. Aggregations take 1.
	Workers int `yaml:"workers,omitempty" json:"workers,omitempty"`
	// OnError is the step's error policy (default fail; never nil after
	// Load).
	OnError *ErrorPolicy `yaml:"on_error,omitempty" json:"on_error,omitempty"`
}

// Limits bound a plugin.
type Limits struct {
	// Memory caps an instance's memory (default 64MiB), e.g. "32MiB": a
	// multiple of 64KiB between 1MiB and 4GiB.
	Memory ByteSize `yaml:"memory,omitempty" json:"memory,omitempty"`
	// Timeout is the deadline of one call (default 1s); "none" for none,
	// which reads as [NoDeadline] (-1, what host.Limits takes for none).
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Fuel is the deterministic budget per event (default 10M), e.g.
	// "50M" or "2G": a call may spend Fuel x (events + 1), and calls
	// without events Fuel. Fuel counts the WebAssembly instructions run,
	// so the same input always costs the same and always passes or always
	// fails.
	// "none" for none, which reads as [NoFuel] (-1, what host.Limits takes
	// for none).
	Fuel Fuel `yaml:"fuel,omitempty" json:"fuel,omitempty"`
	// MaxOutput caps a call's result (default 16MiB, at most 1GiB).
	MaxOutput ByteSize `yaml:"max_output,omitempty" json:"max_output,omitempty"`
}

// Grants give a plugin real clocks, randomness or environment variables.
type Grants struct {
	// Clock gives the real clocks instead of fixed fakes.
	Clock bool `yaml:"clock,omitempty" json:"clock,omitempty"`
	// Random gives a cryptographic random source instead of a
	// deterministic one.
	Random bool `yaml:"random,omitempty" json:"random,omitempty"`
	// Env is the environment the plugin sees (empty by default).
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
}

// Filter is a native filter: the conditions set must all hold (at least
// one must be set). Not, Any and All nest.
type Filter struct {
	// Type: the event's type is one of these (engine.TypeIs).
	Type []string `yaml:"type,omitempty" json:"type,omitempty"`
	// Source: the event's source is exactly this (engine.SourceIs).
	Source string `yaml:"source,omitempty" json:"source,omitempty"`
	// SourcePrefix: the event's source starts with this.
	SourcePrefix string `yaml:"source_prefix,omitempty" json:"source_prefix,omitempty"`
	// SourceGlob: the event's whole source matches this glob
	// (engine.SourceGlob; checked by Load).
	SourceGlob string `yaml:"source_glob,omitempty" json:"source_glob,omitempty"`
	// Meta: the event's metadata has these keys with these values.
	Meta map[string]string `yaml:"meta,omitempty" json:"meta,omitempty"`
	// HasMeta: the event's metadata has these keys.
	HasMeta []string `yaml:"has_meta,omitempty" json:"has_meta,omitempty"`
	// Not: this filter does not match.
	Not *Filter `yaml:"not,omitempty" json:"not,omitempty"`
	// Any: at least one of these filters matches.
	Any []Filter `yaml:"any,omitempty" json:"any,omitempty"`
	// All: every one of these filters matches.
	All []Filter `yaml:"all,omitempty" json:"all,omitempty"`
}

// Transform is a native transform of each event (at least one field set;
// SetType and TypeCase exclude each other).
type Transform struct {
	// SetType replaces the type.
	SetType string `yaml:"set_type,omitempty" json:"set_type,omitempty"`
	// TypeCase: upper or lower.
	TypeCase string `yaml:"type_case,omitempty" json:"type_case,omitempty"`
	// SetSource replaces the source.
	SetSource string `yaml:"set_source,omitempty" json:"set_source,omitempty"`
	// SetMeta sets metadata attributes.
	SetMeta map[string]string `yaml:"set_meta,omitempty" json:"set_meta,omitempty"`
	// DeleteMeta removes metadata attributes.
	DeleteMeta []string `yaml:"delete_meta,omitempty" json:"delete_meta,omitempty"`
}

// Aggregate is a keyed, windowed aggregation by event time.
type Aggregate struct {
	// GroupBy is the key: "type", "source", "id", "data.<field>" (dotted
	// for nested members) or "meta.<key>"; empty: one group (see
	// engine.KeyBy).
	GroupBy string `yaml:"group_by,omitempty" json:"group_by,omitempty"`
	// Window is the windowing.
	Window Window `yaml:"window" json:"window"`
	// Watermark is how far behind the newest event time the watermark
	// trails (bounded out-of-orderness; default 0).
	Watermark Duration `yaml:"watermark,omitempty" json:"watermark,omitempty"`
	// AllowedLateness keeps a fired window's state this long past its end
	// for late events (default 0).
	AllowedLateness Duration `yaml:"allowed_lateness,omitempty" json:"allowed_lateness,omitempty"`
	// Late names a channel or sink for events later than that; without it
	// they are counted and dropped.
	Late string `yaml:"late,omitempty" json:"late,omitempty"`
	// Functions are built-in aggregates; without them the step's Plugin
	// aggregates.
	Functions []Function `yaml:"functions,omitempty" json:"functions,omitempty"`
	// EmitType is the type of built-in result events (default: the step's
	// name, which Load sets; not for plugin aggregates).
	EmitType string `yaml:"emit_type,omitempty" json:"emit_type,omitempty"`
}

// Window: tumbling (Size), sliding (Size, Every) or session (Gap); each
// type takes its own fields only (as engine.WindowSpec).
type Window struct {
	// Type: tumbling, sliding or session.
	Type string `yaml:"type" json:"type"`
	// Size is the length of a tumbling or sliding window.
	Size Duration `yaml:"size,omitempty" json:"size,omitempty"`
	// Every is how often a sliding window starts: at most Size, and Size
	// a whole multiple of it.
	Every Duration `yaml:"every,omitempty" json:"every,omitempty"`
	// Gap is the inactivity that closes a session.
	Gap Duration `yaml:"gap,omitempty" json:"gap,omitempty"`
}

// Function is a built-in aggregate: count, sum, avg, min or max of a data
// field (count takes none), named As in the result (default fn or
// fn_field, with dots as underscores; Load sets it).
type Function struct {
	// Fn: count, sum, avg, min or max.
	Fn string `yaml:"fn" json:"fn"`
	// Field is the data member, dotted for nested members; count takes
	// none, the others need one.
	Field string `yaml:"field,omitempty" json:"field,omitempty"`
	// As names the result's member; unique in the step, and not key,
	// window_start or window_end.
	As string `yaml:"as,omitempty" json:"as,omitempty"`
}

// ErrorPolicy says what happens to events a step fails on.
type ErrorPolicy struct {
	// Policy: fail (default), skip, dead-letter or retry.
	Policy string `yaml:"policy" json:"policy"`
	// DeadLetter names the channel or sink failed events go to
	// (dead-letter, or retry's Then).
	DeadLetter string `yaml:"dead_letter,omitempty" json:"dead_letter,omitempty"`
	// Retries is how many times retry tries again (default 3).
	Retries int `yaml:"retries,omitempty" json:"retries,omitempty"`
	// Backoff is the first wait between tries, doubling up to MaxBackoff
	// (defaults 100ms and 5s, or Backoff when that is longer).
	Backoff Duration `yaml:"backoff,omitempty" json:"backoff,omitempty"`
	// MaxBackoff is the longest wait between tries; at least Backoff.
	MaxBackoff Duration `yaml:"max_backoff,omitempty" json:"max_backoff,omitempty"`
	// Then is what retry does when the tries are used up: fail (default),
	// skip or dead-letter.
	Then string `yaml:"then,omitempty" json:"then,omitempty"`
}

// Telemetry configures OpenTelemetry: traces and metrics, and the
// resource they describe. Load sets Traces.QueueSize only: what else the
// manifest leaves out stays unset, and the standard OTEL_* environment
// variables decide it.
type Telemetry struct {
	// ServiceName is the resource's service.name; "" (unset) means
	// OTEL_SERVICE_NAME, else "aegis-host". It wins over a service.name
	// in Resource.
	ServiceName string `yaml:"service_name,omitempty" json:"service_name,omitempty"`
	// Resource adds resource attributes, over those of
	// OTEL_RESOURCE_ATTRIBUTES.
	Resource map[string]string `yaml:"resource,omitempty" json:"resource,omitempty"`
	// Traces configures trace export (nil: the OTEL_* variables decide
	// alone).
	Traces *Traces `yaml:"traces,omitempty" json:"traces,omitempty"`
	// Metrics configures metric export (nil: the OTEL_* variables decide
	// alone).
	Metrics *Metrics `yaml:"metrics,omitempty" json:"metrics,omitempty"`
}

// Traces configures trace export.
type Traces struct {
	// Exporter: none, stdout, otlp-grpc or otlp-http. Unset: the standard
	// variables decide (OTEL_TRACES_EXPORTER, and
	// OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT and
	// OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL), none when they say nothing.
	Exporter string `yaml:"exporter,omitempty" json:"exporter,omitempty"`
	// Endpoint is the collector's URL (http:// for plaintext, https:// for
	// TLS), for the otlp exporters; for otlp-http a URL without a path is
	// the collector's base URL, to which /v1/traces is added. Unset:
	// OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, else the exporter's default
	// (localhost:4317 for otlp-grpc, localhost:4318 for otlp-http).
	Endpoint string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	// Headers are sent with every export (otlp exporters); when set, they
	// replace those of OTEL_EXPORTER_OTLP_[TRACES_]HEADERS.
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// SampleRatio is the parent-based sampling ratio, 0 to 1. Nil:
	// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, else 1 (every
	// trace).
	SampleRatio *float64 `yaml:"sample_ratio,omitempty" json:"sample_ratio,omitempty"`
	// QueueSize is how many finished spans may wait for export (default
	// 2048, which Load sets); when the queue is full new spans are dropped
	// and counted, never waited for.
	QueueSize int `yaml:"queue_size,omitempty" json:"queue_size,omitempty"`
}

// Metrics configures metric export.
type Metrics struct {
	// Exporter: none, stdout, otlp-grpc or otlp-http. Unset: the standard
	// variables decide (OTEL_METRICS_EXPORTER, and
	// OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT and
	// OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL), none when they say nothing;
	// OTEL_METRICS_EXPORTER=prometheus is a Prometheus listener alone (see
	// Prometheus).
	Exporter string `yaml:"exporter,omitempty" json:"exporter,omitempty"`
	// Endpoint is the collector's URL, as [Traces.Endpoint] (with
	// /v1/metrics); unset: OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT, else the
	// exporter's default.
	Endpoint string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	// Headers are sent with every export (otlp exporters); when set, they
	// replace those of OTEL_EXPORTER_OTLP_[METRICS_]HEADERS.
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// Interval is the time between exports (push exporters), at least
	// 100ms; unset: OTEL_METRIC_EXPORT_INTERVAL, else 10s.
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Prometheus is the address (host:port) of an HTTP listener serving
	// the metrics at /metrics for Prometheus to scrape; unset: no
	// listener, unless Exporter is unset and OTEL_METRICS_EXPORTER is
	// prometheus (then OTEL_EXPORTER_PROMETHEUS_HOST, else localhost, and
	// OTEL_EXPORTER_PROMETHEUS_PORT, else 9464).
	Prometheus string `yaml:"prometheus,omitempty" json:"prometheus,omitempty"`
}

// API is the HTTP API of the host's channels. The tokens say who may do
// what; without any, everyone who can reach Listen may do everything,
// which Load allows on a loopback address only, unless
// AllowUnauthenticated says so.
type API struct {
	// Listen is the host:port to listen on, such as 127.0.0.1:8080, or
	// :8080 for every interface (port 0 picks a free one). Required.
	Listen string `yaml:"listen" json:"listen"`
	// TLS makes the API speak HTTPS only.
	TLS *APITLS `yaml:"tls,omitempty" json:"tls,omitempty"`
	// Tokens are the credentials accepted (as "Authorization: Bearer
	// TOKEN" or "X-API-Key: TOKEN"), each with what it may do. Write the
	// secrets as ${VAR}, or keep them in TokensFile.
	Tokens []APIToken `yaml:"tokens,omitempty" json:"tokens,omitempty"`
	// TokensFile is a YAML file, relative to the manifest, whose
	// top-level tokens list takes more tokens of the same form (${VAR}
	// substituted as in the manifest). Load reads it; its tokens are in
	// FileTokens.
	TokensFile string `yaml:"tokens_file,omitempty" json:"tokens_file,omitempty"`
	// CORSOrigins are the origins (scheme://host[:port]) whose web pages
	// may call the API; "*" allows any. None: same-origin pages only.
	CORSOrigins []string `yaml:"cors_origins,omitempty" json:"cors_origins,omitempty"`
	// MaxBody bounds a request's body; default [DefaultAPIMaxBody]
	// (16MiB), which Load sets.
	MaxBody ByteSize `yaml:"max_body,omitempty" json:"max_body,omitempty"`
	// MaxBatch bounds the events of one publish request; default
	// [DefaultAPIMaxBatch] (10000), which Load sets.
	MaxBatch int `yaml:"max_batch,omitempty" json:"max_batch,omitempty"`
	// RequestTimeout bounds a request that is not a stream; default
	// [DefaultAPIRequestTimeout] (30s), which Load sets.
	RequestTimeout Duration `yaml:"request_timeout,omitempty" json:"request_timeout,omitempty"`
	// WriteTimeout bounds each write to a streaming client, which is
	// disconnected when it does not take it in time; default
	// [DefaultAPIWriteTimeout] (10s), which Load sets.
	WriteTimeout Duration `yaml:"write_timeout,omitempty" json:"write_timeout,omitempty"`
	// SubscriberBuffer is how many events a streaming client of an
	// in-memory channel may fall behind before it is disconnected (it
	// resumes from its last event ID); default
	// [DefaultAPISubscriberBuffer] (the API server's), which Load sets.
	SubscriberBuffer int `yaml:"subscriber_buffer,omitempty" json:"subscriber_buffer,omitempty"`
	// Heartbeat is how often an idle stream gets a keep-alive; default
	// [DefaultAPIHeartbeat] (15s), which Load sets.
	Heartbeat Duration `yaml:"heartbeat,omitempty" json:"heartbeat,omitempty"`
	// AllowUnauthenticated lets an API without tokens listen on an address
	// other hosts may reach. Without tokens, anyone who can reach it may
	// publish, read and delete.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated,omitempty" json:"allow_unauthenticated,omitempty"`

	// FileTokens are the tokens read from TokensFile (not part of the
	// YAML).
	FileTokens []APIToken `yaml:"-" json:"-"`
}

// AllTokens are the tokens of the manifest and of its tokens file.
func (a *API) AllTokens() []APIToken {
	return append(append([]APIToken(nil), a.Tokens...), a.FileTokens...)
}

// APITLS is the certificate the API serves HTTPS with.
type APITLS struct {
	// CertFile is the PEM certificate (chain), relative to the manifest.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	// KeyFile is its PEM private key, relative to the manifest.
	KeyFile string `yaml:"key_file" json:"key_file"`
}

// APIToken is one credential of the API and what it grants.
type APIToken struct {
	// Name identifies the token in logs and errors (never the secret).
	Name string `yaml:"name" json:"name"`
	// Token is the secret: at least 16 bytes.
	Token string `yaml:"token" json:"token"`
	// Grants say what it may do; none: only health, readiness and the
	// OpenAPI document.
	Grants []APIGrant `yaml:"grants,omitempty" json:"grants,omitempty"`
}

// APIGrant gives actions on the channels whose names match any of its
// patterns, where "*" matches any run of characters ("*" is every
// channel, "orders.*" those starting with "orders.").
type APIGrant struct {
	// Channels are the patterns; at least one.
	Channels []string `yaml:"channels" json:"channels"`
	// Actions are publish, subscribe (and read the history, acknowledge)
	// or admin (create, inspect and delete channels; includes the other
	// two); at least one.
	Actions []string `yaml:"actions" json:"actions"`
}
