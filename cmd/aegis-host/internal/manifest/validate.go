package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/engine"
)

// Bounds checked by validation.
const (
	maxNameLen      = 255 // engine.MaxChannelNameLen, for every name
	maxBatchEvents  = 1_000_000
	maxWorkers      = 256
	minMemory       = 1 * MiB
	maxMemory       = 4 * GiB
	memoryPage      = 64 * KiB
	maxOutput       = 1 * GiB
	maxAggFunctions = 255
	maxQueueSize    = 1_000_000
	minInterval     = Duration(100 * time.Millisecond) // telemetry.metrics.interval
	minStreamTime   = Duration(100 * time.Millisecond) // JetStream's least max_age and duplicate window
)

// The enumerations of the manifest.
var (
	sourceTypes     = []string{"generator", "file", "stdin", "plugin", "postgres-cdc", "debezium"}
	sinkTypes       = []string{"stdout", "file", "drop", "plugin"}
	formats         = []string{"event", "data"}
	slowSubscribers = []string{"block", "drop-oldest", "disconnect"}
	pluginKinds     = []string{"filter", "map", "aggregate"}
	typeCases       = []string{"upper", "lower"}
	windowTypes     = []string{"tumbling", "sliding", "session"}
	aggregateFns    = []string{"count", "sum", "avg", "min", "max"}
	errorPolicies   = []string{"fail", "skip", "dead-letter", "retry"}
	retryThens      = []string{"fail", "skip", "dead-letter"}
	exporters       = []string{"none", "stdout", "otlp-grpc", "otlp-http"}
	discards        = []string{"old", "new"}
	deliveryModes   = []string{"at-least-once", "exactly-once"}
	starts          = []string{"all", "new"}
	replicaCounts   = []int{1, 3, 5}
	natsSchemes     = []string{"nats", "tls"}
	changeTypes     = []string{"insert", "update", "delete", "truncate", "read"}
)

// What a name in the shared namespace of channels, sources and sinks is.
type nameKind int

const (
	isChannel nameKind = iota + 1
	isSource
	isSink
)

func (k nameKind) String() string {
	switch k {
	case isChannel:
		return "channel"
	case isSource:
		return "source"
	case isSink:
		return "sink"
	}
	return "?"
}

// write is a channel a pipeline writes to, and the field that says so.
type write struct {
	channel string
	path    string
}

type validator struct {
	m    *Manifest
	d    *doc
	errs Errors

	names   map[string]nameKind // channels, sources and sinks
	feeds   map[string]int      // source -> the pipeline it feeds
	reads   []string            // pipeline -> the channel it reads ("" for a source)
	writes  [][]write           // pipeline -> the channels it writes
	digests map[string]string   // resolved plugin path -> sha256 (computed once)

	env func(string) (string, bool) // for ${NAME} in files the manifest names
	// fileErrs are the errors of other files the manifest names (its
	// tokens file), reported after the manifest's own.
	fileErrs Errors
}

// validate checks m, decoded from the document d, and returns every
// problem it finds. env looks up the variables of the files the manifest
// names (its tokens file).
func validate(m *Manifest, d *doc, env func(string) (string, bool)) Errors {
	v := &validator{m: m, d: d, names: map[string]nameKind{}, feeds: map[string]int{}, digests: map[string]string{}, env: env}
	v.apiVersion()
	v.dataDir()
	v.namespace()
	v.nats()
	v.channels()
	v.sources()
	v.sinks()
	v.pipelines()
	v.cycles()
	v.telemetry()
	v.api()
	v.errs.sort()
	return append(v.errs, v.fileErrs...)
}

// errf reports a problem with the field at path, at its value.
func (v *validator) errf(path, format string, args ...any) {
	v.errs = append(v.errs, v.d.errAt(v.d.at(path), path, format, args...))
}

// keyErrf reports a problem with a name (a key of a mapping of names).
func (v *validator) keyErrf(path, format string, args ...any) {
	v.errs = append(v.errs, v.d.errAt(v.d.keyAt(path), path, format, args...))
}

// errAt reports a problem with the field at path at the position of
// another (for a missing field that another one calls for).
func (v *validator) errAt(at, path, format string, args ...any) {
	v.errs = append(v.errs, v.d.errAt(v.d.at(at), path, format, args...))
}

// oneOf checks an enumeration; the empty string is left to the caller.
func (v *validator) oneOf(path, s string, values []string) bool {
	if s == "" || slices.Contains(values, s) {
		return true
	}
	msg := fmt.Sprintf("unknown value %q: want %s", s, orList(values))
	if g := suggest(s, values); g != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", g)
	}
	v.errf(path, "%s", msg)
	return false
}

// orList renders "a, b or c".
func orList(values []string) string {
	if len(values) == 1 {
		return values[0]
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

// notFor reports fields that the document sets but that do not apply.
func (v *validator) notFor(path string, keys []string, why string) {
	for _, k := range keys {
		if p := fieldPath(path, k); v.d.has(p) {
			v.errf(p, "%s %s", k, why)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (v *validator) apiVersion() {
	switch v.m.APIVersion {
	case APIVersion:
	case "":
		v.errf("apiVersion", "required: this build reads %s", supportedVersions())
	default:
		v.errf("apiVersion", "unsupported apiVersion %q: this build reads %s only", v.m.APIVersion, supportedVersions())
	}
}

// checkName checks a name of a channel, source, sink, pipeline or step.
func (v *validator) checkName(path, name string, key bool) bool {
	report := v.errf
	if key {
		report = v.keyErrf
	}
	switch {
	case name == "":
		report(path, "a name cannot be empty")
	case len(name) > maxNameLen:
		report(path, "name is %d bytes long, the limit is %d", len(name), maxNameLen)
	case strings.IndexFunc(name, func(r rune) bool { return !isNameRune(r) }) >= 0:
		report(path, "name %q may hold only letters, digits, '.', '-' and '_'", name)
	default:
		return true
	}
	return false
}

func isNameRune(r rune) bool {
	return r == '.' || r == '-' || r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
}

// namespace checks the names of channels, sources and sinks, which share
// one namespace.
func (v *validator) namespace() {
	type entry struct {
		kind nameKind
		path string
	}
	seen := map[string]entry{}
	add := func(section string, kind nameKind, keys []string) {
		for _, name := range keys {
			p := entryPath(section, name)
			v.checkName(p, name, true)
			if prev, ok := seen[name]; ok {
				// Report the one further down the file.
				at, other := p, prev
				if a, b := v.d.keyAt(p), v.d.keyAt(prev.path); a.line < b.line || a.line == b.line && a.col < b.col {
					at, other = prev.path, entry{kind, p}
				}
				v.keyErrf(at, "%q is also the name of a %s (channels, sources and sinks share one namespace)", name, other.kind)
				continue
			}
			seen[name] = entry{kind, p}
			v.names[name] = kind
		}
	}
	add("channels", isChannel, sortedKeys(v.m.Channels))
	add("sources", isSource, sortedKeys(v.m.Sources))
	add("sinks", isSink, sortedKeys(v.m.Sinks))
}

func (v *validator) channels() {
	for _, name := range sortedKeys(v.m.Channels) {
		c, p := v.m.Channels[name], entryPath("channels", name)
		if c.Buffer < 0 {
			v.errf(p+".buffer", "must be 0 (the default, %d) or more, got %d", engine.DefaultBufferSize, c.Buffer)
		}
		if c.Persistent {
			v.persistent(p, c)
		} else {
			v.oneOf(p+".slow_subscriber", c.SlowSubscriber, slowSubscribers)
			v.notFor(p, []string{"replicas", "discard", "duplicate_window"}, "applies to persistent channels only (persistent: true)")
			v.notFor(p+".retention", []string{"max_bytes"}, "applies to persistent channels only (persistent: true); an in-memory channel is bounded by max_events and max_age")
		}
		if r := c.Retention; r != nil && !c.Persistent && r.MaxEvents < -1 {
			v.errf(p+".retention.max_events", "must be -1 (keep no history), 0 (the default, %d) or more, got %d", engine.DefaultRetentionEvents, r.MaxEvents)
		}
	}
}

// persistent checks the fields of a persistent channel (at p).
func (v *validator) persistent(p string, c Channel) {
	if v.d.has(p + ".slow_subscriber") {
		v.errf(p+".slow_subscriber", "slow_subscriber applies to in-memory channels (a persistent channel's readers fall behind in its stream instead, and lose nothing)")
	}
	r := c.Retention
	if r == nil {
		r = &Retention{}
	}
	if r.MaxEvents < 0 {
		v.errf(p+".retention.max_events", "must be 0 (no limit, the default for a persistent channel) or more, got %d: a persistent channel keeps events for its readers (-1, keep none, is for in-memory channels)", r.MaxEvents)
	}
	if v.d.has(p+".retention.max_age") && r.MaxAge != 0 && r.MaxAge < minStreamTime {
		v.errf(p+".retention.max_age", "must be at least %v on a persistent channel (or 0, no limit), got %v", minStreamTime, r.MaxAge)
	}
	if v.d.has(p+".retention.max_bytes") && r.MaxBytes <= 0 {
		v.errf(p+".retention.max_bytes", "must be positive, such as 1GiB (leave it out for no limit)")
	}
	if v.d.has(p + ".replicas") {
		if v.replicas(p+".replicas", c.Replicas) && c.Replicas > 1 && !v.cluster() {
			v.errf(p+".replicas", "%d replicas need a NATS cluster (nats.urls); the embedded server stores one copy", c.Replicas)
		}
	}
	v.oneOf(p+".discard", c.Discard, discards)
	if v.d.has(p+".discard") && c.Discard == "" {
		v.errf(p+".discard", "must be old or new (leave it out for the default, %s)", DefaultDiscard)
	}
	if v.d.has(p + ".duplicate_window") {
		switch w := c.DuplicateWindow; {
		case w < minStreamTime:
			v.errf(p+".duplicate_window", "must be at least %v, got %v (leave it out for the default, %v)", minStreamTime, w, DefaultDuplicateWindow)
		case r.MaxAge > 0 && w > r.MaxAge:
			v.errf(p+".duplicate_window", "must be at most retention.max_age (%v), got %v: an event's ID is remembered only while the event is kept", r.MaxAge, w)
		}
	}
}

// replicas checks a number of replicas: 1, 3 or 5.
func (v *validator) replicas(path string, n int) bool {
	if slices.Contains(replicaCounts, n) {
		return true
	}
	v.errf(path, "must be 1, 3 or 5 (an odd number up to 5, so that a majority of the replicas can agree), got %d", n)
	return false
}

// cluster reports whether persistent channels live on an external
// cluster (nats.urls) rather than the embedded server.
func (v *validator) cluster() bool { return v.m.NATS != nil && len(v.m.NATS.URLs) > 0 }

// nats checks the nats block.
func (v *validator) nats() {
	n := v.m.NATS
	if n == nil {
		return
	}
	const p = "nats"
	if v.d.has(p+".urls") && len(n.URLs) == 0 {
		v.errf(p+".urls", "needs at least one URL, such as nats://localhost:4222 (leave urls out for the embedded server)")
	}
	seen := map[string]int{}
	for i, u := range n.URLs {
		up := indexPath(p+".urls", i)
		if msg := checkNATSURL(u); msg != "" {
			v.errf(up, "%s", msg)
			continue
		}
		if j, dup := seen[u]; dup {
			v.errf(up, "%q is listed twice (urls[%d])", u, j)
			continue
		}
		seen[u] = i
	}
	if len(n.URLs) > 0 {
		v.notFor(p, []string{"listen", "max_store", "sync_always"}, "applies to the embedded server (without urls); an external cluster is configured on its servers")
	} else if v.d.has(p + ".listen") {
		if msg := checkListenAddr(n.Listen, "4222"); msg != "" {
			v.errf(p+".listen", "%s", msg)
		}
	}
	if len(n.URLs) == 0 && v.d.has(p+".max_store") && n.MaxStore <= 0 {
		v.errf(p+".max_store", "must be positive, such as 10GiB (leave it out for the host to decide)")
	}
	if v.d.has(p + ".replicas") {
		if v.replicas(p+".replicas", n.Replicas) && n.Replicas > 1 && len(n.URLs) == 0 {
			v.errf(p+".replicas", "%d replicas need a NATS cluster (urls); the embedded server stores one copy", n.Replicas)
		}
	}
}

// checkNATSURL says what is wrong with the URL of a NATS server, if
// anything.
func checkNATSURL(s string) string {
	const want = "a nats:// or tls:// URL such as nats://localhost:4222"
	if strings.Contains(s, ",") {
		return fmt.Sprintf("must be one URL, got %q: list each server as an entry of urls", s)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Hostname() == "":
		return fmt.Sprintf("must be %s, got %q", want, s)
	case !slices.Contains(natsSchemes, u.Scheme):
		msg := fmt.Sprintf("must be %s, got %q", want, s)
		if g := suggest(u.Scheme, natsSchemes); g != "" && u.Scheme != "" {
			msg += fmt.Sprintf(" (did you mean %s://?)", g)
		}
		return msg
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		return fmt.Sprintf("must be %s, without a path, query or fragment, got %q", want, s)
	case u.Port() != "" && !isPort(u.Port()):
		return fmt.Sprintf("port %s is out of range: a port is 0 to 65535", u.Port())
	}
	return ""
}

// owners says which types of source or sink a field applies to.
type owners map[string][]string

// typed checks the type of the source or sink at p: present, one of
// types, and no field set that does not apply to it (fields). It reports
// whether the type is known.
func (v *validator) typed(p, typ string, types []string, fields owners) bool {
	if typ == "" {
		v.errf(p+".type", "required: %s", orList(types))
		return false
	}
	if !v.oneOf(p+".type", typ, types) {
		return false
	}
	for _, k := range sortedKeys(fields) {
		applies := fields[k]
		if fp := fieldPath(p, k); v.d.has(fp) && !slices.Contains(applies, typ) {
			word := "type"
			if len(applies) > 1 {
				word = "types"
			}
			v.errf(fp, "%s applies to %s %s", k, word, strings.Replace(orList(applies), " or ", " and ", 1))
		}
	}
	return true
}

var sourceFields = owners{
	"count": {"generator"}, "rate": {"generator"}, "start": {"generator"}, "interval": {"generator"},
	"path": {"file", "debezium"}, "format": {"file", "stdin"}, "event_type": {"file", "stdin"},
	"plugin": {"plugin"}, "sha256": {"plugin"}, "with": {"plugin"}, "timeout": {"plugin"}, "max_restarts": {"plugin"},
	"dsn": {"postgres-cdc"}, "slot": {"postgres-cdc"}, "publication": {"postgres-cdc"}, "snapshot": {"postgres-cdc"},
	"status_interval": {"postgres-cdc"}, "listen": {"debezium"}, "dead_letter": {"debezium"}, "ack_timeout": {"debezium"},
	"tables": {"postgres-cdc", "debezium"}, "include_before": {"postgres-cdc", "debezium"},
	"batch_size": {"postgres-cdc", "debezium"}, "batch_timeout": {"postgres-cdc", "debezium"},
}

var sinkFields = owners{
	"path": {"file"}, "append": {"file"}, "format": {"stdout", "file"},
	"plugin": {"plugin"}, "sha256": {"plugin"}, "with": {"plugin"}, "timeout": {"plugin"}, "max_restarts": {"plugin"},
}

func (v *validator) sources() {
	var stdin string
	for _, name := range sortedKeys(v.m.Sources) {
		s, p := v.m.Sources[name], entryPath("sources", name)
		if !v.typed(p, s.Type, sourceTypes, sourceFields) {
			continue
		}
		switch s.Type {
		case "generator":
			v.generator(p, s)
		case "file":
			if s.Path == "" {
				v.errf(p+".path", "required for a file source")
			} else {
				v.readableFile(p+".path", s.Path)
			}
			v.format(p, s)
		case "stdin":
			if stdin != "" {
				v.errf(p+".type", "source %q already reads stdin; only one source can", stdin)
			}
			stdin = name
			v.format(p, s)
		case "plugin":
			v.connector(p, "source", s.Plugin, s.SHA256, s.With, s.Timeout, s.MaxRestarts)
		case "postgres-cdc":
			v.postgresCDC(p, s)
		case "debezium":
			if s.Path == "-" {
				if stdin != "" {
					v.errf(p+".path", "source %q already reads stdin; only one source can", stdin)
				}
				stdin = name
			}
			v.debezium(p, s)
		}
	}
}

// postgresCDC checks a postgres-cdc source.
func (v *validator) postgresCDC(p string, s Source) {
	if s.DSN == "" {
		v.errf(p+".dsn", "required for a postgres-cdc source: the database to connect to, such as postgres://user@host:5432/db (write secrets as ${VAR})")
	}
	if v.d.has(p+".slot") && !cdc.ValidSlot(s.Slot) {
		v.errf(p+".slot", "must be 1 to 63 lowercase letters, digits or underscores, got %q (leave it out for the default, %s)", s.Slot, cdc.DefaultSlot(v.sourceName(p)))
	}
	if v.d.has(p+".publication") && !cdc.ValidPublication(s.Publication) {
		v.errf(p+".publication", "must be a letter or underscore, then letters, digits or underscores (at most 63), got %q", s.Publication)
	}
	if v.d.has(p+".status_interval") && s.StatusInterval == 0 {
		v.errf(p+".status_interval", "must be positive (leave it out for the default, %v)", DefaultStatusInterval)
	}
	if len(s.Tables) == 0 {
		v.errf(p+".tables", "required for a postgres-cdc source: at least one table, such as [{table: public.orders}]")
	}
	v.changes(p, s)
}

// debezium checks a debezium source.
func (v *validator) debezium(p string, s Source) {
	switch hasPath, hasListen := v.d.has(p+".path"), v.d.has(p+".listen"); {
	case hasPath && hasListen:
		v.errf(p+".listen", "a debezium source reads path or listens on listen, not both")
	case !hasPath && !hasListen:
		v.errf(p+".type", "a debezium source needs path (a file of envelopes, or - for stdin) or listen (host:port of an HTTP endpoint)")
	case hasPath && s.Path == "":
		v.errf(p+".path", "cannot be empty: a file of envelopes, or - for stdin")
	case hasPath && s.Path != "-":
		v.readableFile(p+".path", s.Path)
	case hasListen:
		if msg := checkListenAddr(s.Listen, "8083"); msg != "" {
			v.errf(p+".listen", "%s", msg)
		}
	}
	if s.DeadLetter != "" || v.d.has(p+".dead_letter") {
		v.ref(p+".dead_letter", s.DeadLetter, isChannel)
	}
	switch {
	case !v.d.has(p + ".ack_timeout"):
	case !v.d.has(p + ".listen"):
		v.errf(p+".ack_timeout", "applies to an HTTP endpoint (listen) only")
	case s.AckTimeout <= 0:
		v.errf(p+".ack_timeout", "must be positive (leave it out for the default, 30s)")
	}
	v.changes(p, s)
}

// sourceName is the name of the source at p.
func (v *validator) sourceName(p string) string {
	for name := range v.m.Sources {
		if entryPath("sources", name) == p {
			return name
		}
	}
	return ""
}

// changes checks what postgres-cdc and debezium sources share: batching
// and the tables.
func (v *validator) changes(p string, s Source) {
	if v.d.has(p+".batch_size") && (s.BatchSize < 1 || s.BatchSize > maxBatchEvents) {
		v.errf(p+".batch_size", "must be between 1 and %d, got %d", maxBatchEvents, s.BatchSize)
	}
	seen := map[string]int{}
	for i, t := range s.Tables {
		tp := indexPath(p+".tables", i)
		if t.Table == "" {
			v.errf(tp+".table", "required: the table's name, schema.table or table (in the schema public)")
		} else if schema, table, ok := strings.Cut(t.Table, "."); schema == "" || table == "" && ok || strings.Contains(table, ".") {
			v.errf(tp+".table", "must be schema.table or table, got %q", t.Table)
		} else {
			q := t.Table
			if !ok {
				q = "public." + t.Table
			}
			if j, dup := seen[q]; dup {
				v.errf(tp+".table", "table %s is already listed (tables[%d])", q, j)
			} else {
				seen[q] = i
			}
		}
		for j, c := range t.Changes {
			cp := indexPath(tp+".changes", j)
			if c == "" {
				v.errf(cp, "cannot be empty: %s", orList(changeTypes))
			} else if v.oneOf(cp, c, changeTypes) && slices.Contains(t.Changes[:j], c) {
				v.errf(cp, "%q is listed twice", c)
			}
		}
		for j, c := range t.Columns {
			cp := indexPath(tp+".columns", j)
			switch {
			case c == "":
				v.errf(cp, "cannot be empty: a column's name")
			case slices.Contains(t.Columns[:j], c):
				v.errf(cp, "%q is listed twice", c)
			}
		}
		if v.d.has(tp + ".filter") {
			if strings.TrimSpace(t.Filter) == "" {
				v.errf(tp+".filter", "cannot be empty: a CEL expression such as row.status == \"paid\" (leave it out to keep every change)")
			} else if err := cdc.CompileFilter(t.Filter); err != nil {
				v.errf(tp+".filter", "invalid CEL expression: %s", celMessage(err.Error()))
			}
		}
	}
}

// celMessage makes CEL's errors one line each, without the lines that
// point at the expression ("ERROR: <input>:1:5: Syntax error: ..." becomes
// "1:5 in the expression: Syntax error: ...").
func celMessage(s string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "|") || strings.TrimSpace(line) == "" {
			continue
		}
		line = strings.TrimPrefix(line, "ERROR: ")
		if rest, ok := strings.CutPrefix(line, "<input>:"); ok {
			if pos, msg, ok := strings.Cut(rest, ": "); ok {
				line = pos + " in the expression: " + msg
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "; ")
}

func (v *validator) generator(p string, s Source) {
	if s.Count < 0 {
		v.errf(p+".count", "must be 0 (without end) or more, got %d", s.Count)
	}
	if !(s.Rate >= 0) || math.IsInf(s.Rate, 0) {
		v.errf(p+".rate", "must be 0 (as fast as possible) or a positive number of events per second, got %v", s.Rate)
	}
	if s.Start != "" {
		if _, err := time.Parse(time.RFC3339Nano, s.Start); err != nil {
			v.errf(p+".start", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", s.Start)
		}
	}
	if v.d.has(p+".interval") && s.Interval == 0 {
		v.errf(p+".interval", "must be positive (the default is 1ms)")
	}
}

// format checks the format and event_type of a file or stdin source.
func (v *validator) format(p string, s Source) {
	v.oneOf(p+".format", s.Format, formats)
	switch {
	case s.Format == "data" && s.EventType == "":
		v.errAt(p+".format", p+".event_type", "required with format data: the type of the events read")
	case s.Format != "data" && v.d.has(p+".event_type"):
		v.errf(p+".event_type", "event_type applies to format data (in format event, each event has its own type)")
	case s.EventType != "":
		if err := engine.EventType(s.EventType).Validate(); err != nil {
			v.errf(p+".event_type", "%v", err)
		}
	}
}

func (v *validator) sinks() {
	files := map[string]string{} // resolved path -> sink
	for _, name := range sortedKeys(v.m.Sinks) {
		s, p := v.m.Sinks[name], entryPath("sinks", name)
		if !v.typed(p, s.Type, sinkTypes, sinkFields) {
			continue
		}
		v.oneOf(p+".format", s.Format, formats)
		if s.Type == "plugin" {
			v.connector(p, "sink", s.Plugin, s.SHA256, s.With, s.Timeout, s.MaxRestarts)
		}
		if s.Type != "file" {
			continue
		}
		if s.Path == "" {
			v.errf(p+".path", "required for a file sink")
			continue
		}
		resolved := filepath.Clean(v.m.Resolve(s.Path))
		if other, ok := files[resolved]; ok {
			v.errf(p+".path", "sink %q writes to this file too", other)
		}
		files[resolved] = name
		if fi, err := os.Stat(resolved); err == nil && fi.IsDir() {
			v.errf(p+".path", "%s is a directory", s.Path)
			continue
		}
		dir := filepath.Dir(resolved)
		switch fi, err := os.Stat(dir); {
		case errors.Is(err, fs.ErrNotExist):
			v.errf(p+".path", "the directory of %s does not exist: %s", s.Path, dir)
		case err != nil:
			v.errf(p+".path", "cannot use the directory of %s: %v", s.Path, unwrapPathError(err))
		case !fi.IsDir():
			v.errf(p+".path", "%s is not a directory", dir)
		}
	}
}

// connector checks the fields of a plugin source or sink (what, at p):
// the executable and its pin, the configuration, the timeout and the
// restarts.
func (v *validator) connector(p, what, plugin, pin string, with map[string]any, timeout Duration, maxRestarts *int) {
	if plugin == "" {
		v.errf(p+".plugin", "required for a plugin %s: the path of %s", what, connectorFile.what)
	} else {
		v.pluginFile(p, plugin, pin, connectorFile)
	}
	v.with(p+".with", with, "connector")
	if v.d.has(p+".timeout") && timeout == 0 {
		v.errf(p+".timeout", "must be positive (leave it out for the default, %v)", DefaultConnectorTimeout)
	}
	if v.d.has(p + ".max_restarts") {
		switch {
		case maxRestarts == nil:
			v.errf(p+".max_restarts", "must be 0 (never restart) or more, got null (leave it out for the default, %d)", DefaultConnectorMaxRestarts)
		case *maxRestarts < 0:
			v.errf(p+".max_restarts", "must be 0 (never restart) or more, got %d", *maxRestarts)
		}
	}
}

// dataDir checks data_dir: not empty, and a directory if it exists (Load
// does not create it).
func (v *validator) dataDir() {
	if !v.d.has("data_dir") {
		return
	}
	if v.m.DataDir == "" {
		v.errf("data_dir", "cannot be empty (leave it out for the default, %s)", DefaultDataDir)
		return
	}
	switch fi, err := os.Stat(v.m.Resolve(v.m.DataDir)); {
	case errors.Is(err, fs.ErrNotExist):
		// Created when first needed.
	case err != nil:
		v.errf("data_dir", "cannot use %s: %v", v.m.DataDir, unwrapPathError(err))
	case !fi.IsDir():
		v.errf("data_dir", "%s is not a directory", v.m.DataDir)
	}
}

// readableFile checks that a file exists and can be read.
func (v *validator) readableFile(path, name string) {
	resolved := v.m.Resolve(name)
	fi, err := os.Stat(resolved)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.errf(path, "no such file: %s", name)
		return
	case err != nil:
		v.errf(path, "cannot read %s: %v", name, unwrapPathError(err))
		return
	case fi.IsDir():
		v.errf(path, "%s is a directory, not a file", name)
		return
	case !fi.Mode().IsRegular():
		return // a device or a pipe: opening it could block; the source will tell
	}
	f, err := os.Open(resolved)
	if err != nil {
		v.errf(path, "cannot read %s: %v", name, unwrapPathError(err))
		return
	}
	f.Close()
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ref checks a reference to a channel, source or sink.
func (v *validator) ref(path, name string, want ...nameKind) (nameKind, bool) {
	wants := make([]string, len(want))
	for i, k := range want {
		wants[i] = k.String()
	}
	what := strings.Join(wants, " or ")
	if name == "" {
		v.errf(path, "required: the name of a %s", what)
		return 0, false
	}
	k, ok := v.names[name]
	if !ok {
		var candidates []string
		for n, k := range v.names {
			if slices.Contains(want, k) {
				candidates = append(candidates, n)
			}
		}
		slices.Sort(candidates)
		msg := fmt.Sprintf("no %s named %q", what, name)
		if s := suggest(name, candidates); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		v.errf(path, "%s", msg)
		return 0, false
	}
	if !slices.Contains(want, k) {
		v.errf(path, "%q is a %s; this takes a %s", name, k, what)
		return k, false
	}
	return k, true
}

func (v *validator) pipelines() {
	if len(v.m.Pipelines) == 0 {
		if v.m.API == nil {
			v.errf("pipelines", "required: a manifest runs at least one pipeline (or serves its channels: see api)")
		}
		return
	}
	v.reads = make([]string, len(v.m.Pipelines))
	v.writes = make([][]write, len(v.m.Pipelines))
	names := map[string]int{}
	for i := range v.m.Pipelines {
		pl, p := &v.m.Pipelines[i], indexPath("pipelines", i)
		if pl.Name == "" {
			v.errf(p+".name", "required: a pipeline needs a name")
		} else if v.checkName(p+".name", pl.Name, false) {
			if j, dup := names[pl.Name]; dup {
				v.errf(p+".name", "pipeline %q is already defined (pipelines[%d])", pl.Name, j)
			} else {
				names[pl.Name] = i
			}
		}
		if k, ok := v.ref(p+".from", pl.From, isSource, isChannel); ok {
			switch k {
			case isSource:
				if j, used := v.feeds[pl.From]; used {
					v.errf(p+".from", "source %q already feeds pipeline %q; a source feeds exactly one pipeline (let that one write to a channel, and read the channel here)", pl.From, v.m.Pipelines[j].Name)
				} else {
					v.feeds[pl.From] = i
				}
			case isChannel:
				v.reads[i] = pl.From
			}
		}
		if len(pl.To) == 0 {
			v.errf(p+".to", "required: at least one sink or channel")
		}
		for j, to := range pl.To {
			tp := indexPath(p+".to", j)
			if slices.Contains(pl.To[:j], to) {
				v.errf(tp, "%q is listed twice", to)
				continue
			}
			v.output(i, tp, to)
		}
		if b := pl.Batch; b != nil {
			if v.d.has(p+".batch.max_events") && (b.MaxEvents < 1 || b.MaxEvents > maxBatchEvents) {
				v.errf(p+".batch.max_events", "must be between 1 and %d, got %d", maxBatchEvents, b.MaxEvents)
			}
			if v.d.has(p+".batch.max_wait") && b.MaxWait == 0 {
				v.errf(p+".batch.max_wait", "must be positive")
			}
		}
		v.delivery(i, p, pl)
		steps := map[string]int{}
		for k := range pl.Steps {
			sp := indexPath(p+".steps", k)
			s := &pl.Steps[k]
			if s.Name == "" {
				v.errf(sp+".name", "required: a step needs a name")
			} else if v.checkName(sp+".name", s.Name, false) {
				if j, dup := steps[s.Name]; dup {
					v.errf(sp+".name", "step %q is already defined in this pipeline (steps[%d])", s.Name, j)
				} else {
					steps[s.Name] = k
				}
			}
			v.step(i, sp, s)
		}
	}
}

// delivery checks the delivery block of pipeline i (at p): set only on a
// pipeline that reads a persistent channel.
func (v *validator) delivery(i int, p string, pl *Pipeline) {
	dp := p + ".delivery"
	c, isChan := v.m.Channels[pl.From]
	if !isChan || !c.Persistent {
		if !v.d.has(dp) {
			return
		}
		switch k := v.names[pl.From]; {
		case k == isSource:
			v.errf(dp, "delivery applies to pipelines that read a persistent channel, and %q is a source (a source is read once; to have acknowledged, redelivered events, let this pipeline write to a persistent channel and another read it)", pl.From)
		case k == isChannel:
			v.errf(dp, "delivery applies to pipelines that read a persistent channel, and channel %q is in memory (set persistent: true on it for acknowledged, redelivered events)", pl.From)
		}
		return
	}
	d := pl.Delivery
	if d == nil {
		return // null: the defaults
	}
	has := func(k string) bool { return v.d.has(dp + "." + k) }
	if d.Mode == "at-most-once" {
		v.errf(dp+".mode", "at-most-once is not offered for a persistent channel's reader: it acknowledges each event once written (at-least-once or exactly-once), and acknowledging on read would lose, on a crash, what was read and not written; read an in-memory channel for at-most-once")
	} else {
		v.oneOf(dp+".mode", d.Mode, deliveryModes)
	}
	v.oneOf(dp+".start", d.Start, starts)
	for _, k := range []string{"mode", "start"} {
		if has(k) && (k == "mode" && d.Mode == "" || k == "start" && d.Start == "") {
			v.errf(dp+"."+k, "cannot be empty (leave it out for the default, %s)", map[string]string{"mode": DefaultDeliveryMode, "start": DefaultStart}[k])
		}
	}
	maxWait := DefaultBatchMaxWait
	if pl.Batch != nil && pl.Batch.MaxWait > 0 {
		maxWait = pl.Batch.MaxWait
	}
	if has("ack_wait") {
		switch {
		case len(d.Backoff) > 0:
			v.errf(dp+".ack_wait", "ack_wait and backoff exclude each other: with backoff, backoff[0] is the first ack wait (leave ack_wait out)")
		case d.AckWait == 0:
			v.errf(dp+".ack_wait", "must be positive (leave it out for the default, %v)", DefaultAckWait)
		case d.AckWait <= maxWait:
			v.errf(dp+".ack_wait", "must be longer than batch.max_wait (%v), which events may wait in a batch before they are processed and acknowledged, got %v", maxWait, d.AckWait)
		}
	}
	if has("max_deliver") && d.MaxDeliver < 1 && d.MaxDeliver != NoMaxDeliver {
		v.errf(dp+".max_deliver", "must be 1 or more, or -1 for no limit, got %d", d.MaxDeliver)
	}
	maxDeliver := d.MaxDeliver
	if maxDeliver == 0 {
		maxDeliver = DefaultMaxDeliver
	}
	if has("backoff") {
		switch n := len(d.Backoff); {
		case n == 0:
			v.errf(dp+".backoff", "needs at least one duration (leave it out to wait ack_wait before each redelivery)")
		case maxDeliver > 0 && n > maxDeliver:
			v.errf(dp+".backoff", "has %d durations, more than max_deliver (%d) deliveries can use", n, maxDeliver)
		}
		for j, b := range d.Backoff {
			bp := indexPath(dp+".backoff", j)
			switch {
			case b == 0:
				v.errf(bp, "must be positive")
			case b <= maxWait:
				v.errf(bp, "must be longer than batch.max_wait (%v), which events may wait in a batch before they are processed and acknowledged, got %v", maxWait, b)
			}
		}
	}
	if has("dead_letter") {
		switch {
		case d.DeadLetter == pl.From:
			v.errf(dp+".dead_letter", "%q is the channel this pipeline reads; events that keep failing must go elsewhere", d.DeadLetter)
		default:
			// A channel: the subscription moves what it gives up on there,
			// also while the pipeline is not running (a pipeline can read
			// it into a sink).
			if _, ok := v.ref(dp+".dead_letter", d.DeadLetter, isChannel); ok {
				v.writes[i] = append(v.writes[i], write{d.DeadLetter, dp + ".dead_letter"})
			}
		}
		if maxDeliver == NoMaxDeliver {
			v.errf(dp+".dead_letter", "needs a max_deliver limit: events go to the dead letter after max_deliver deliveries, and -1 never gives up")
		}
	}
}

// output checks a sink or channel that pipeline i writes to (a to entry, a
// dead letter, a late output), and records channels for the cycle check.
func (v *validator) output(i int, path, name string) {
	if k, ok := v.ref(path, name, isSink, isChannel); ok && k == isChannel {
		v.writes[i] = append(v.writes[i], write{name, path})
	}
}

func (v *validator) step(pi int, p string, s *Step) {
	has := func(k string) bool { return v.d.has(p + "." + k) }
	plugin := s.Plugin != "" || has("plugin")
	filter := s.Filter != nil || has("filter")
	transform := s.Transform != nil || has("transform")
	aggregate := s.Aggregate != nil || has("aggregate")
	functions := aggregate && s.Aggregate != nil && len(s.Aggregate.Functions) > 0

	var kinds []string
	for _, k := range []struct {
		on   bool
		name string
	}{{plugin, "plugin"}, {filter, "filter"}, {transform, "transform"}, {aggregate && !(plugin && !functions), "aggregate"}} {
		if k.on {
			kinds = append(kinds, k.name)
		}
	}
	switch {
	case len(kinds) == 0:
		v.errf(p, "a step needs one of plugin, filter, transform or aggregate")
	case plugin && functions:
		v.errf(p+".aggregate.functions", "built-in functions and a plugin exclude each other: leave functions out to aggregate with the plugin, or the plugin out to use the functions")
	case len(kinds) > 1:
		v.errf(p+"."+kinds[1], "a step is one of plugin, filter, transform or aggregate (an aggregate may have a plugin instead of functions); this one has %s", strings.Join(kinds, " and "))
	}

	aggregation := aggregate // built-in functions or a wasm aggregate
	if plugin {
		v.plugin(p, s, aggregate)
	} else {
		v.notFor(p, []string{"sha256", "kind", "with", "limits", "grants"}, "applies to plugin steps")
	}
	if filter {
		v.filter(p+".filter", s.Filter)
	}
	if transform {
		v.transform(p+".transform", s.Transform)
	}
	if aggregate {
		v.aggregate(pi, p, s, plugin)
	}

	if has("workers") && (s.Workers < 1 || s.Workers > maxWorkers) {
		v.errf(p+".workers", "must be between 1 and %d, got %d", maxWorkers, s.Workers)
	} else if aggregation && s.Workers > 1 {
		v.errf(p+".workers", "an aggregation runs on one worker (its state is keyed and ordered); leave workers out or set it to 1")
	}
	if has("on_error") {
		v.errorPolicy(pi, p+".on_error", s.OnError)
	}
}

func (v *validator) plugin(p string, s *Step, aggregate bool) {
	if s.Plugin == "" {
		v.errf(p+".plugin", "required: the path of %s", wasmFile.what)
	} else {
		v.pluginFile(p, s.Plugin, s.SHA256, wasmFile)
	}
	if v.oneOf(p+".kind", s.Kind, pluginKinds) {
		switch {
		case s.Kind == "aggregate" && !aggregate:
			v.errf(p+".kind", "kind aggregate needs an aggregate block on the step (group_by, window)")
		case s.Kind != "" && s.Kind != "aggregate" && aggregate:
			v.errf(p+".kind", "kind %s contradicts the step's aggregate block (which makes it an aggregate step)", s.Kind)
		}
	}
	v.with(p+".with", s.With, "plugin")
	if l := s.Limits; l != nil {
		if v.d.has(p + ".limits.memory") {
			switch m := l.Memory; {
			case m%memoryPage != 0:
				v.errf(p+".limits.memory", "must be a multiple of 64KiB (a wasm page), got %d bytes", m.Bytes())
			case m < minMemory || m > maxMemory:
				v.errf(p+".limits.memory", "must be between 1MiB and 4GiB, got %s", m)
			}
		}
		if v.d.has(p+".limits.timeout") && l.Timeout == 0 {
			v.errf(p+".limits.timeout", "must be positive, or none for no deadline")
		}
		// Decoding rejects fuel that is not positive or none, except null.
		if v.d.has(p+".limits.fuel") && l.Fuel == 0 {
			v.errf(p+".limits.fuel", "must be positive, such as 100M, or none for no budget (leave it out for the default, %s)", DefaultFuel)
		}
		if v.d.has(p+".limits.max_output") && (l.MaxOutput < 1 || l.MaxOutput > maxOutput) {
			v.errf(p+".limits.max_output", "must be between 1 byte and 1GiB, got %s", l.MaxOutput)
		}
	}
	if g := s.Grants; g != nil {
		for _, k := range sortedKeys(g.Env) {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				v.keyErrf(entryPath(p+".grants.env", k), "%q is not a valid environment variable name", k)
			}
		}
	}
}

// with checks the configuration of a plugin step or a connector (at
// path), which is handed to it as a JSON object.
func (v *validator) with(path string, with map[string]any, what string) {
	if with == nil {
		return
	}
	if _, err := json.Marshal(with); err != nil {
		v.errf(path, "cannot be handed to the %s as JSON: %v", what, err)
	}
}

// pluginKind is what the plugin field of a step or a connector names.
type pluginKind struct {
	what string // for "required: the path of ..."
	file string // for "... is a directory, not ..."
	exec bool   // the file must be executable
}

var (
	wasmFile      = pluginKind{what: "a .wasm module", file: "a .wasm file"}
	connectorFile = pluginKind{what: "the connector's executable", file: "an executable", exec: true}
)

// pluginFile checks the file that the plugin field at p+".plugin" names
// (name, as written): that it exists and is a regular file, executable
// if kind says so, and that it matches the sha256 pin at p+".sha256"
// (pin, as written), if any. It neither loads nor runs the plugin: the
// CLI does, and reports what is wrong with it.
func (v *validator) pluginFile(p, name, pin string, kind pluginKind) {
	want := strings.ToLower(pin)
	pinOK := true
	if v.d.has(p + ".sha256") {
		if _, err := hex.DecodeString(want); err != nil || len(want) != 2*sha256.Size {
			v.errf(p+".sha256", "must be a SHA-256 digest, 64 hex digits, got %q", pin)
			pinOK = false
		}
	}
	resolved := v.m.Resolve(name)
	fi, err := os.Stat(resolved)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.errf(p+".plugin", "no such file: %s", name)
		return
	case err != nil:
		v.errf(p+".plugin", "cannot read %s: %v", name, unwrapPathError(err))
		return
	case fi.IsDir():
		v.errf(p+".plugin", "%s is a directory, not %s", name, kind.file)
		return
	case !fi.Mode().IsRegular():
		v.errf(p+".plugin", "%s is not a regular file", name)
		return
	case kind.exec && !isExecutable(fi):
		v.errf(p+".plugin", "%s is not executable (its mode is %v; chmod +x it)", name, fi.Mode().Perm())
	}
	if pin == "" || !pinOK {
		return
	}
	sum, ok := v.digests[resolved]
	if !ok {
		var err error
		if sum, err = fileSHA256(resolved); err != nil {
			v.errf(p+".plugin", "cannot read %s: %v", name, unwrapPathError(err))
			return
		}
		v.digests[resolved] = sum
	}
	if sum != want {
		v.errf(p+".sha256", "sha256 mismatch: the file has %s, the manifest pins %s", sum, want)
	}
}

// isExecutable reports whether a regular file has an execute bit set.
// Windows has no such bits (whether a file runs depends on its name), so
// there every file passes, and starting the connector tells.
func isExecutable(fi fs.FileInfo) bool {
	return runtime.GOOS == "windows" || fi.Mode().Perm()&0o111 != 0
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (v *validator) filter(p string, f *Filter) {
	if f == nil {
		f = &Filter{}
	}
	has := func(k string) bool { return v.d.has(p + "." + k) }
	conditions := 0
	for _, k := range []string{"type", "source", "source_prefix", "source_glob", "meta", "has_meta", "not", "any", "all"} {
		if has(k) {
			conditions++
		}
	}
	if conditions == 0 {
		v.errf(p, "a filter needs at least one condition: type, source, source_prefix, source_glob, meta, has_meta, not, any or all")
	}
	if has("type") && len(f.Type) == 0 {
		v.errf(p+".type", "needs at least one event type")
	}
	for i, t := range f.Type {
		if err := engine.EventType(t).Validate(); err != nil {
			v.errf(indexPath(p+".type", i), "%v", err)
		}
	}
	if has("source_glob") {
		if _, err := engine.SourceGlob(f.SourceGlob); err != nil {
			v.errf(p+".source_glob", "%v", err)
		}
	}
	if has("meta") && len(f.Meta) == 0 {
		v.errf(p+".meta", "needs at least one key")
	}
	if has("has_meta") && len(f.HasMeta) == 0 {
		v.errf(p+".has_meta", "needs at least one key")
	}
	for _, k := range sortedKeys(f.Meta) {
		if k == "" {
			v.keyErrf(entryPath(p+".meta", k), "a metadata key cannot be empty")
		}
	}
	for i, k := range f.HasMeta {
		if k == "" {
			v.errf(indexPath(p+".has_meta", i), "a metadata key cannot be empty")
		}
	}
	if has("not") {
		v.filter(p+".not", f.Not)
	}
	for _, list := range []struct {
		key     string
		filters []Filter
	}{{"any", f.Any}, {"all", f.All}} {
		if has(list.key) && len(list.filters) == 0 {
			v.errf(p+"."+list.key, "needs at least one filter")
		}
		for i := range list.filters {
			v.filter(indexPath(p+"."+list.key, i), &list.filters[i])
		}
	}
}

func (v *validator) transform(p string, t *Transform) {
	if t == nil {
		t = &Transform{}
	}
	ops := 0
	for _, k := range []string{"set_type", "type_case", "set_source", "set_meta", "delete_meta"} {
		if v.d.has(p + "." + k) {
			ops++
		}
	}
	if ops == 0 {
		v.errf(p, "a transform needs at least one of set_type, type_case, set_source, set_meta or delete_meta")
	}
	if v.d.has(p + ".set_type") {
		if err := engine.EventType(t.SetType).Validate(); err != nil {
			v.errf(p+".set_type", "%v", err)
		}
	}
	if v.oneOf(p+".type_case", t.TypeCase, typeCases) && t.TypeCase != "" && t.SetType != "" {
		v.errf(p+".type_case", "set_type and type_case both change the type; use one")
	}
	for _, k := range []string{"set_meta", "delete_meta"} {
		if v.d.has(p+"."+k) && (k == "set_meta" && len(t.SetMeta) == 0 || k == "delete_meta" && len(t.DeleteMeta) == 0) {
			v.errf(p+"."+k, "needs at least one key")
		}
	}
	for _, k := range sortedKeys(t.SetMeta) {
		if k == "" {
			v.keyErrf(entryPath(p+".set_meta", k), "a metadata key cannot be empty")
		}
	}
	for i, k := range t.DeleteMeta {
		switch {
		case k == "":
			v.errf(indexPath(p+".delete_meta", i), "a metadata key cannot be empty")
		case t.SetMeta != nil && v.d.has(entryPath(p+".set_meta", k)):
			v.errf(indexPath(p+".delete_meta", i), "%q is also in set_meta; a key is set or deleted, not both", k)
		}
	}
}

func (v *validator) aggregate(pi int, sp string, s *Step, plugin bool) {
	p := sp + ".aggregate"
	a := s.Aggregate
	if a == nil {
		a = &Aggregate{}
	}
	before := len(v.errs)
	v.groupBy(p+".group_by", a.GroupBy)
	v.window(p+".window", a.Window)
	if v.d.has(p + ".late") {
		v.output(pi, p+".late", a.Late)
	}
	switch {
	case plugin:
		if v.d.has(p + ".emit_type") {
			v.errf(p+".emit_type", "emit_type applies to built-in functions (a plugin makes its own result events)")
		}
		return
	case len(a.Functions) == 0:
		v.errf(p, "an aggregate needs functions, or a plugin on its step to aggregate with")
		return
	case len(a.Functions) > maxAggFunctions:
		v.errf(p+".functions", "%d functions; the limit is %d", len(a.Functions), maxAggFunctions)
	}
	if v.d.has(p+".emit_type") || a.EmitType != "" {
		if err := engine.EventType(a.EmitType).Validate(); err != nil {
			v.errf(p+".emit_type", "%v", err)
		}
	}
	names := map[string]int{"key": -1, "window_start": -1, "window_end": -1}
	fns := make([]engine.AggregateFunction, 0, len(a.Functions))
	for i, f := range a.Functions {
		fp := indexPath(p+".functions", i)
		if f.Fn == "" {
			v.errf(fp+".fn", "required: %s", orList(aggregateFns))
			continue
		}
		if !v.oneOf(fp+".fn", f.Fn, aggregateFns) {
			continue
		}
		fn, err := engine.ParseAggregateFn(f.Fn)
		if err != nil {
			v.errf(fp+".fn", "%v", err)
			continue
		}
		fns = append(fns, engine.AggregateFunction{Fn: fn, Field: f.Field, As: f.As})
		if f.Fn == "count" {
			if v.d.has(fp + ".field") {
				v.errf(fp+".field", "count takes no field (it counts events)")
			}
		} else if f.Field == "" {
			v.errAt(fp+".fn", fp+".field", "required: the data member to %s, such as amount or order.total", f.Fn)
		} else if slices.Contains(strings.Split(f.Field, "."), "") {
			v.errf(fp+".field", "%q has an empty member name; write members separated by single dots, such as order.total", f.Field)
		}
		as, asPath := defaultAs(f), fp+".as"
		if !v.d.has(asPath) {
			asPath = fp
		}
		switch j, dup := names[as]; {
		case dup && j < 0:
			v.errf(asPath, "%q is a member of every result (key, window_start, window_end); set as to another name", as)
		case dup:
			v.errf(asPath, "functions[%d] already makes the member %q; set as to another name", j, as)
		default:
			names[as] = i
		}
	}
	emit := a.EmitType
	if emit == "" {
		emit = s.Name
	}
	if len(v.errs) == before && engine.EventType(emit).Validate() == nil {
		// The engine has the last word on what it runs.
		if _, err := engine.Functions(emit, fns...); err != nil {
			v.errf(p+".functions", "%v", err)
		}
	}
}

// defaultAs is the member name a function's result has without as.
func defaultAs(f Function) string {
	switch {
	case f.As != "":
		return f.As
	case f.Fn == "count":
		return "count"
	}
	return f.Fn + "_" + strings.ReplaceAll(f.Field, ".", "_")
}

func (v *validator) groupBy(p, g string) {
	ok := false
	switch g {
	case "", "type", "source", "id":
		ok = true
	default:
		if k, found := strings.CutPrefix(g, "meta."); found {
			ok = k != ""
		} else if m, found := strings.CutPrefix(g, "data."); found {
			ok = !slices.Contains(strings.Split(m, "."), "")
		}
	}
	if !ok {
		v.errf(p, `must be type, source, id, meta.<key> or data.<member>[.<member>...] (or left out for one group), got %q`, g)
		return
	}
	if _, err := engine.KeyBy(g); err != nil {
		v.errf(p, "%v", err)
	}
}

func (v *validator) window(p string, w Window) {
	before := len(v.errs)
	kind := engine.Tumbling
	switch w.Type {
	case "":
		v.errAt(p, p+".type", "required: %s", orList(windowTypes))
		return
	case "tumbling":
		if w.Size <= 0 {
			v.errf(p+".size", "a tumbling window needs a positive size")
		}
		v.notFor(p, []string{"every"}, "applies to sliding windows")
		v.notFor(p, []string{"gap"}, "applies to session windows")
	case "sliding":
		kind = engine.Sliding
		switch {
		case w.Size <= 0:
			v.errf(p+".size", "a sliding window needs a positive size")
		case w.Every <= 0:
			v.errf(p+".every", "a sliding window needs a positive every (how often a window starts)")
		case w.Every > w.Size:
			v.errf(p+".every", "every (%v) is longer than size (%v), which would leave events in no window", w.Every, w.Size)
		case w.Size%w.Every != 0:
			v.errf(p+".size", "size (%v) must be a whole multiple of every (%v)", w.Size, w.Every)
		}
		v.notFor(p, []string{"gap"}, "applies to session windows")
	case "session":
		kind = engine.Session
		if w.Gap <= 0 {
			v.errf(p+".gap", "a session window needs a positive gap (the inactivity that closes a session)")
		}
		v.notFor(p, []string{"size", "every"}, "applies to tumbling and sliding windows")
	default:
		v.oneOf(p+".type", w.Type, windowTypes)
		return
	}
	if len(v.errs) == before {
		spec := engine.WindowSpec{Kind: kind, Size: w.Size.D(), Every: w.Every.D(), Gap: w.Gap.D()}
		if err := spec.Validate(); err != nil {
			v.errf(p, "%v", err)
		}
	}
}

func (v *validator) errorPolicy(pi int, p string, e *ErrorPolicy) {
	if e == nil {
		e = &ErrorPolicy{}
	}
	has := func(k string) bool { return v.d.has(p + "." + k) }
	switch e.Policy {
	case "":
		v.errAt(p, p+".policy", "required: %s", orList(errorPolicies))
		return
	default:
		if !v.oneOf(p+".policy", e.Policy, errorPolicies) {
			return
		}
	}
	retry := e.Policy == "retry"
	if !retry {
		v.notFor(p, []string{"retries", "backoff", "max_backoff", "then"}, "applies to policy retry")
	}
	needsDL := e.Policy == "dead-letter" || retry && e.Then == "dead-letter"
	switch {
	case needsDL && e.DeadLetter == "":
		at := p + ".policy"
		if retry {
			at = p + ".then"
		}
		v.errAt(at, p+".dead_letter", "required with %s: the channel or sink that failed events go to", map[bool]string{true: "then: dead-letter", false: "policy dead-letter"}[retry])
	case needsDL:
		v.output(pi, p+".dead_letter", e.DeadLetter)
	case has("dead_letter"):
		v.errf(p+".dead_letter", "dead_letter applies to policy dead-letter, or retry with then: dead-letter")
	}
	if !retry {
		return
	}
	if has("retries") && e.Retries < 1 {
		v.errf(p+".retries", "must be 1 or more, got %d", e.Retries)
	}
	if has("backoff") && e.Backoff == 0 {
		v.errf(p+".backoff", "must be positive")
	}
	backoff := e.Backoff
	if backoff == 0 {
		backoff = DefaultBackoff
	}
	if has("max_backoff") && e.MaxBackoff < backoff {
		v.errf(p+".max_backoff", "must be at least backoff (%v), got %v", backoff, e.MaxBackoff)
	}
	if e.Then == "retry" {
		v.errf(p+".then", "must be fail, skip or dead-letter (what happens when the retries are used up)")
	} else {
		v.oneOf(p+".then", e.Then, retryThens)
	}
}

// cycles finds pipelines that feed each other through channels.
func (v *validator) cycles() {
	n := len(v.writes)
	type edge struct {
		to      int
		channel string
		path    string
	}
	adj := make([][]edge, n)
	for i, ws := range v.writes {
		for _, w := range ws {
			if w.channel == v.reads[i] {
				v.errf(w.path, "pipeline %s writes to channel %s, which it reads from", v.m.Pipelines[i].Name, w.channel)
				continue
			}
			for j := range n {
				if j != i && v.reads[j] == w.channel && !slices.ContainsFunc(adj[i], func(e edge) bool { return e.to == j }) {
					adj[i] = append(adj[i], edge{j, w.channel, w.path})
				}
			}
		}
	}
	// Tarjan's strongly connected components.
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	next := 0
	var sccs [][]int
	var connect func(int)
	connect = func(u int) {
		index[u], low[u] = next, next
		next++
		stack = append(stack, u)
		onStack[u] = true
		for _, e := range adj[u] {
			switch {
			case index[e.to] < 0:
				connect(e.to)
				low[u] = min(low[u], low[e.to])
			case onStack[e.to]:
				low[u] = min(low[u], index[e.to])
			}
		}
		if low[u] == index[u] {
			var scc []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				scc = append(scc, w)
				if w == u {
					break
				}
			}
			if len(scc) > 1 {
				sccs = append(sccs, scc)
			}
		}
	}
	for i := range n {
		if index[i] < 0 {
			connect(i)
		}
	}
	for _, scc := range sccs {
		start := slices.Min(scc)
		// The shortest cycle through start, by breadth-first search.
		prev := map[int]edge{} // node -> the edge that reached it (edge.to is the node before)
		from := map[int]int{}
		queue := []int{start}
		seen := map[int]bool{start: true}
		for len(queue) > 0 && !seen[-1] {
			u := queue[0]
			queue = queue[1:]
			for _, e := range adj[u] {
				if !slices.Contains(scc, e.to) {
					continue
				}
				if e.to == start {
					prev[-1], from[-1], seen[-1] = e, u, true
					break
				}
				if !seen[e.to] {
					seen[e.to] = true
					prev[e.to], from[e.to] = e, u
					queue = append(queue, e.to)
				}
			}
		}
		var nodes []int
		var edges []edge
		for at := -1; ; {
			edges = append(edges, prev[at])
			at = from[at]
			nodes = append(nodes, at)
			if at == start {
				break
			}
		}
		slices.Reverse(nodes)
		slices.Reverse(edges)
		names := make([]string, 0, len(nodes)+1)
		for _, u := range nodes {
			names = append(names, v.m.Pipelines[u].Name)
		}
		names = append(names, v.m.Pipelines[start].Name)
		channels := make([]string, len(edges))
		for i, e := range edges {
			channels[i] = e.channel
		}
		word := "channels"
		if len(slices.Compact(slices.Sorted(slices.Values(channels)))) == 1 {
			word = "channel"
		}
		v.errf(edges[0].path, "pipelines %s form a cycle through %s %s", strings.Join(names, " -> "), word, strings.Join(channels, ", "))
	}
}

func (v *validator) telemetry() {
	t := v.m.Telemetry
	if t == nil {
		return
	}
	if v.d.has("telemetry.service_name") && t.ServiceName == "" {
		v.errf("telemetry.service_name", "cannot be empty")
	}
	for _, k := range sortedKeys(t.Resource) {
		if k == "" {
			v.keyErrf(entryPath("telemetry.resource", k), "an attribute name cannot be empty")
		}
	}
	if tr := t.Traces; tr != nil {
		const p = "telemetry.traces"
		v.exporter(p, tr.Exporter, tr.Endpoint, tr.Headers)
		if r := tr.SampleRatio; r != nil && !(*r >= 0 && *r <= 1) {
			v.errf(p+".sample_ratio", "must be between 0 and 1, got %s", strconv.FormatFloat(*r, 'g', -1, 64))
		}
		if v.d.has(p+".queue_size") && (tr.QueueSize < 1 || tr.QueueSize > maxQueueSize) {
			v.errf(p+".queue_size", "must be between 1 and %d, got %d", maxQueueSize, tr.QueueSize)
		}
	}
	if m := t.Metrics; m != nil {
		const p = "telemetry.metrics"
		v.exporter(p, m.Exporter, m.Endpoint, m.Headers)
		if v.d.has(p+".interval") && m.Interval < minInterval {
			v.errf(p+".interval", "must be at least %v, got %v", minInterval, m.Interval)
		}
		if v.d.has(p + ".prometheus") {
			if msg := checkListenAddr(m.Prometheus, "9464"); msg != "" {
				v.errf(p+".prometheus", "%s", msg)
			}
		}
	}
}

// exporter checks the exporter of telemetry.traces or telemetry.metrics
// (at p), and the endpoint and headers that go with the otlp ones.
func (v *validator) exporter(p, exporter, endpoint string, headers map[string]string) {
	if !v.oneOf(p+".exporter", exporter, exporters) {
		return
	}
	if exporter == "none" || exporter == "stdout" {
		// Unset is fine: the OTEL_* variables may choose an otlp exporter.
		v.notFor(p, []string{"endpoint", "headers"}, "applies to the otlp-grpc and otlp-http exporters")
		return
	}
	if v.d.has(p + ".endpoint") {
		if msg := checkEndpoint(endpoint, exporter); msg != "" {
			v.errf(p+".endpoint", "%s", msg)
		}
	}
	for _, k := range sortedKeys(headers) {
		hp := entryPath(p+".headers", k)
		switch {
		case k == "":
			v.keyErrf(hp, "a header name cannot be empty")
		case !isToken(k):
			v.keyErrf(hp, "%q is not a valid HTTP header name: it may hold only letters, digits and !#$%%&'*+-.^_`|~", k)
		}
		if strings.ContainsAny(headers[k], "\r\n") {
			v.errf(hp, "a header value cannot hold a line break")
		}
	}
}

// checkEndpoint says what is wrong with the URL of an OTLP collector, if
// anything.
func checkEndpoint(s, exporter string) string {
	example := "http://localhost:4317"
	if exporter == "otlp-http" {
		example = "http://localhost:4318"
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return fmt.Sprintf("must be a URL such as %s (http:// for plaintext, https:// for TLS), got %q", example, s)
	}
	if port := u.Port(); port != "" && !isPort(port) {
		return fmt.Sprintf("port %s is out of range: a port is 0 to 65535", port)
	}
	return ""
}

// checkListenAddr says what is wrong with the host:port a listener is to
// listen on, if anything; port is the one its examples give.
func checkListenAddr(s, port string) string {
	want := "host:port, such as 127.0.0.1:" + port + " or :" + port + " (every interface)"
	if strings.Contains(s, "://") {
		return "is a URL; give " + want
	}
	host, port, err := net.SplitHostPort(s)
	switch {
	case err != nil || strings.ContainsAny(host, "/?#@ \t"):
		return fmt.Sprintf("must be %s, got %q", want, s)
	case !isPort(port):
		return fmt.Sprintf("port %q is not a number from 0 to 65535", port)
	}
	return ""
}

// isPort reports whether s is a port number, 0 to 65535.
func isPort(s string) bool {
	_, err := strconv.ParseUint(s, 10, 16)
	return err == nil
}

// isToken reports whether s is an HTTP token (RFC 9110), as header names
// are.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}
