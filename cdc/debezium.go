package cdc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aegis-streaming/aegis/engine"
)

// ParseDebezium parses one change in Debezium's JSON envelope, with its
// schema wrapper ({"schema":{...},"payload":{...}}) or without it (the
// payload alone). It reads:
//
//	op              c, u, d, r or t (required)
//	before, after   the row images, objects or null, in column order
//	source          connector, name, db, schema, table, snapshot (a bool
//	                or one of Debezium's strings: "true", "false",
//	                "first", "last", "incremental", ...), txId (an
//	                integer or null), lsn (an integer, or a string
//	                holding one or PostgreSQL's form 0/16B3748), ts_ms
//	ts_ms           when the connector handled the change
//
// The commit time is source.ts_ms (else, or when 0, ts_ms), the transaction id
// source.txId, the position's LSN source.lsn (its index 0). Envelopes
// without a schema (MySQL's) keep db as the database and an empty schema.
// The key is not in the envelope (Kafka carries it apart), so it is nil;
// the transaction block is ignored. A create or read needs an after image,
// an update an after image, a delete a before image, and all four a
// source.table. An error names the field at fault:
//
//	debezium envelope: "op": "x" is not one of c, u, d, r, t
func ParseDebezium(b []byte) (ChangeEvent, error) {
	c, err := parseDebezium(b)
	if err != nil {
		return ChangeEvent{}, fmt.Errorf("debezium envelope: %w", err)
	}
	return c, nil
}

func parseDebezium(b []byte) (ChangeEvent, error) {
	var c ChangeEvent
	if !utf8.Valid(b) {
		return c, errors.New("not valid UTF-8")
	}
	top, err := object("", b)
	if err != nil {
		return c, err
	}
	if _, ok := top["op"]; !ok {
		if p, ok := top["payload"]; ok {
			if top, err = object("payload", p); err != nil {
				return c, err
			}
		}
	}
	op, ok, err := str("op", top["op"])
	if err != nil {
		return c, err
	}
	if !ok {
		return c, errors.New(`"op" is missing`)
	}
	for t := Insert; t <= Read; t++ {
		if op == ops[t] {
			c.Type = t
		}
	}
	if c.Type == 0 {
		return c, fmt.Errorf(`"op": %s is not one of c, u, d, r, t`, strconv.Quote(op))
	}
	if c.Before, err = row("before", top["before"]); err != nil {
		return c, err
	}
	if c.After, err = row("after", top["after"]); err != nil {
		return c, err
	}
	var src map[string]json.RawMessage
	if raw, ok := top["source"]; ok && string(raw) != "null" {
		if src, err = object("source", raw); err != nil {
			return c, err
		}
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"connector", &c.Source.Connector}, {"name", &c.Source.Name}, {"db", &c.Source.Database},
		{"schema", &c.Source.Schema}, {"table", &c.Source.Table},
	} {
		if *f.dst, _, err = str("source."+f.name, src[f.name]); err != nil {
			return c, err
		}
	}
	if c.Source.Snapshot, err = snapshot(src["snapshot"]); err != nil {
		return c, err
	}
	if c.TxID, _, err = uinteger("source.txId", src["txId"]); err != nil {
		return c, err
	}
	if c.Position.LSN, err = lsn(src["lsn"]); err != nil {
		return c, err
	}
	ms, ok, err := millis("source.ts_ms", src["ts_ms"])
	if err != nil {
		return c, err
	}
	if !ok || ms == 0 { // MySQL's snapshot reads have a source.ts_ms of 0
		if ms, ok, err = millis("ts_ms", top["ts_ms"]); err != nil {
			return c, err
		}
	}
	if ok && ms != 0 {
		c.CommitTime = time.UnixMilli(ms).UTC()
	}
	switch c.Type {
	case Insert, Read, Update:
		if c.After == nil {
			return c, fmt.Errorf(`"after" is missing or null: op %q needs the row after the change`, op)
		}
	case Delete:
		if c.Before == nil {
			return c, fmt.Errorf(`"before" is missing or null: op %q needs the row before the change`, op)
		}
	}
	if c.Type != Truncate && c.Source.Table == "" {
		return c, errors.New(`"source.table" is missing or empty`)
	}
	return c, nil
}

// kind names the JSON type of a value, for errors.
func kind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// object decodes a JSON object's members; field names it in errors (""
// for the envelope itself).
func object(field string, raw []byte) (map[string]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		if field == "" {
			var v any
			if err := json.Unmarshal(raw, &v); len(raw) > 0 && err != nil {
				return nil, fmt.Errorf("not JSON: %w", err)
			}
			return nil, fmt.Errorf("want a JSON object, got %s", kind(raw))
		}
		return nil, fmt.Errorf("%q: want an object, got %s", field, kind(raw))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		if field == "" {
			return nil, fmt.Errorf("not JSON: %w", err)
		}
		return nil, fmt.Errorf("%q: %w", field, err)
	}
	return m, nil
}

// str decodes a string member; a missing or null one is ("", false).
func str(field string, raw json.RawMessage) (string, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	if raw[0] != '"' {
		return "", false, fmt.Errorf("%q: want a string, got %s", field, kind(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%q: %w", field, err)
	}
	return s, true, nil
}

// row decodes a row image: an object, or null or missing for none.
func row(field string, raw json.RawMessage) (Row, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, fmt.Errorf("%q: want an object or null, got %s", field, kind(raw))
	}
	r, err := parseRow(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", field, err)
	}
	return r, nil
}

// uinteger decodes a non-negative integer member; a missing or null one
// is (0, false).
func uinteger(field string, raw json.RawMessage) (uint64, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	if kind(raw) != "a number" {
		return 0, false, fmt.Errorf("%q: want an integer, got %s", field, kind(raw))
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%q: %s is not an integer from 0 to %d", field, raw, uint64(math.MaxUint64))
	}
	return n, true, nil
}

// maxMillis bounds times in milliseconds to what an event's time (Unix
// nanoseconds in an int64) can hold.
const maxMillis = math.MaxInt64 / int64(time.Millisecond)

// millis decodes a time in Unix milliseconds.
func millis(field string, raw json.RawMessage) (int64, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	if kind(raw) != "a number" {
		return 0, false, fmt.Errorf("%q: want an integer (Unix milliseconds), got %s", field, kind(raw))
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n > maxMillis || n < -maxMillis {
		return 0, false, fmt.Errorf("%q: %s is not a time in Unix milliseconds (an integer of at most %d)", field, raw, maxMillis)
	}
	return n, true, nil
}

// snapshot decodes source.snapshot: a bool, or one of Debezium's strings.
func snapshot(raw json.RawMessage) (bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	s, _, err := str("source.snapshot", raw)
	if err != nil {
		return false, fmt.Errorf(`"source.snapshot": want a bool or a string, got %s`, kind(raw))
	}
	switch s {
	case "false", "":
		return false, nil
	case "true", "first", "first_in_data_collection", "last", "last_in_data_collection", "incremental":
		return true, nil
	}
	return false, fmt.Errorf(`"source.snapshot": %s is not one of true, false, first, first_in_data_collection, last, last_in_data_collection, incremental`, strconv.Quote(s))
}

// lsn decodes source.lsn: an integer, or a string holding one or
// PostgreSQL's form of it. Other strings (other databases' positions)
// are no LSN.
func lsn(raw json.RawMessage) (uint64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] == '"' {
		s, _, err := str("source.lsn", raw)
		if err != nil {
			return 0, err
		}
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return n, nil
		}
		if n, err := ParseLSN(s); err == nil {
			return n, nil
		}
		return 0, nil
	}
	n, _, err := uinteger("source.lsn", raw)
	if err != nil {
		return 0, fmt.Errorf(`"source.lsn": want an integer or a string, got %s`, describe(raw))
	}
	return n, nil
}

func describe(raw []byte) string {
	if k := kind(raw); k != "a number" {
		return k
	}
	return string(raw)
}

// Malformed is an envelope that a Debezium intake could not take.
type Malformed struct {
	// Input names where it came from: the input's name given to
	// [NewDebezium], or "http" for [DebeziumHandler].
	Input string
	// Line is its line in the input (in the request's body for HTTP),
	// from 1.
	Line int
	// Raw is the line (the first bytes of it, for a line too long). It is
	// the callee's.
	Raw []byte
	// Err says what is wrong with it.
	Err error
}

// DebeziumConfig configures a Debezium intake: [NewDebezium] and
// [NewDebeziumHandler].
type DebeziumConfig struct {
	// Name names the intake: in logs, in errors and in the events' IDs.
	// Required.
	Name string
	// Config is how changes are batched and shaped. Without
	// IncludeBefore, only deletes keep their before image (Tables'
	// filters still see it).
	Config
	// Tables, when set, are the only tables whose changes pass, each with
	// its types, columns and filter; none lets every change pass as it
	// is. "schema.table" (or "table", in schema public) matches envelopes
	// with a source.schema (PostgreSQL's, SQL Server's); envelopes without
	// one (MySQL's) are matched by their database instead: "shop.orders"
	// matches db "shop", table "orders" (and a filter's schema variable is
	// "" for them).
	//
	// A filter that fails on a change, or a column of Columns that a
	// change lacks, stops a [NewDebezium] source with an error naming the
	// input and the line (the envelopes after it are not read, so none is
	// lost: fix the filter and read the input again); the handler rejects
	// that envelope to its client.
	Tables []TableConfig
	// AckTimeout is how long [DebeziumHandler] waits for a request's
	// changes to be taken and acknowledged by the pipeline before it
	// answers 504 (or, when they could not even be queued, 503).
	// Default [DefaultAckTimeout].
	AckTimeout time.Duration
	// OnMalformed is called with each envelope that could not be parsed
	// (never concurrently); nil ignores them, and [Debezium.Malformed]
	// and [DebeziumHandler.Malformed] count them either way.
	OnMalformed func(Malformed)
	// Logger receives warnings about malformed envelopes; nil discards
	// them.
	Logger *slog.Logger
}

// DefaultAckTimeout is [DebeziumConfig.AckTimeout]'s default.
const DefaultAckTimeout = 30 * time.Second

// debeziumIDPrefix begins the bytes a Debezium intake's event IDs are
// hashed over.
const debeziumIDPrefix = "aegis.cdc.debezium\x00"

// debeziumIntake is what the file source and the handler share: the
// config, the compiled tables, and the making of events.
type debeziumIntake struct {
	cfg       DebeziumConfig
	rules     *rules // nil: every table
	log       *slog.Logger
	idPre     []byte
	malformed atomic.Uint64
	onMu      sync.Mutex
}

func newIntake(cfg DebeziumConfig) (*debeziumIntake, error) {
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if err := cfg.Config.validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.AckTimeout < 0 {
		errs = append(errs, fmt.Errorf("ack timeout %s: must not be negative", cfg.AckTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	in := &debeziumIntake{cfg: cfg, log: cfg.Logger}
	in.cfg.Config = cfg.Config.withDefaults()
	if in.cfg.AckTimeout == 0 {
		in.cfg.AckTimeout = DefaultAckTimeout
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	in.log = in.log.With("source", cfg.Name)
	if len(cfg.Tables) > 0 {
		rs, err := compileTables(cfg.Tables, "public")
		if err != nil {
			return nil, err
		}
		in.rules = rs
	}
	in.idPre = append([]byte(debeziumIDPrefix+cfg.Name), 0)
	return in, nil
}

// event parses one envelope (trimmed) and makes its event. keep is false
// for a change that Tables leave out; a parse error is bad, an error of
// the table's rule is ruleErr.
func (in *debeziumIntake) event(b []byte) (ev engine.Event, keep bool, bad, ruleErr error) {
	c, err := ParseDebezium(b)
	if err != nil {
		return ev, false, err, nil
	}
	if in.rules != nil {
		schema := c.Source.Schema
		if schema == "" {
			schema = c.Source.Database
		}
		r := in.rules.lookup(schema, c.Source.Table)
		if r == nil {
			return ev, false, nil, nil
		}
		ok, err := r.apply(&c)
		if err != nil || !ok {
			return ev, false, nil, err
		}
	}
	if !in.cfg.IncludeBefore && c.Type != Delete {
		c.Before = nil
	}
	id := make([]byte, 0, len(in.idPre)+len(b))
	id = append(append(id, in.idPre...), b...)
	return c.Event(engine.HashEventID(id)), true, nil, nil
}

// reject counts, logs and reports a malformed envelope.
func (in *debeziumIntake) reject(m Malformed) {
	in.malformed.Add(1)
	in.log.Warn("malformed debezium envelope", "input", m.Input, "line", m.Line, "error", m.Err)
	if in.cfg.OnMalformed != nil {
		in.onMu.Lock()
		defer in.onMu.Unlock()
		in.cfg.OnMalformed(m)
	}
}

// Debezium is a source of changes read from newline-delimited Debezium
// envelopes (a file, stdin): one envelope a line, blank lines skipped. A
// line that is not a valid envelope (or is longer than
// [engine.MaxLineSize]) is reported to OnMalformed and counted, and the
// stream goes on; the end of the input ends the source.
//
// An event's ID is a hash of the intake's name and the envelope's line
// (without its surrounding white space): the same envelope read again (a
// file read twice, a connector that delivers at least once) has the same
// ID, so that a persistent channel written exactly-once stores it once.
// Two identical envelopes are the same event; the same change written
// with other white space or another order of members is another.
type Debezium struct {
	*debeziumIntake
	input string
	r     io.Reader

	*chunks
	stop    chan struct{}
	started sync.Once // the scan, at the first Read
	once    sync.Once
}

// NewDebezium returns a source of the envelopes in r; input names r in
// errors and in malformed reports ("stdin", a file's name). Reading starts
// with the first Read, in the background: what OnMalformed does with the
// first lines (publish them to a channel, say) happens once the pipelines
// run, not while they are still being set up.
func NewDebezium(r io.Reader, input string, cfg DebeziumConfig) (*Debezium, error) {
	in, err := newIntake(cfg)
	if err != nil {
		return nil, fmt.Errorf("cdc: debezium source %q: %w", cfg.Name, err)
	}
	s := &Debezium{debeziumIntake: in, input: input, r: r, chunks: newChunks(in.cfg.Config, 2), stop: make(chan struct{})}
	return s, nil
}

// scan reads and parses lines in its own goroutine, so that Read can
// honour its context while the reader blocks.
func (s *Debezium) scan() {
	defer close(s.ch)
	br := bufio.NewReaderSize(s.r, 64<<10)
	line := 0
	var batch []engine.Event
	send := func(err error) bool {
		select {
		case s.ch <- chunk{batch, err}:
			batch = nil
			return true
		case <-s.stop:
			return false
		}
	}
	var long []byte // a line longer than the buffer, collected
	tooLong := false
	var fail error // a read error, sent after the last events
	readErr := func(err error) error {
		if err == io.EOF {
			return nil
		}
		return fmt.Errorf("cdc: debezium source %q: %s: after line %d: %w", s.cfg.Name, s.input, line, err)
	}
	for {
		b, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if !tooLong {
				long = append(long, b...)
				if len(long) > engine.MaxLineSize {
					tooLong = true
				}
			}
			continue
		}
		if tooLong {
			// The rest of the line is skipped; the first bytes are kept.
			line++
			s.reject(Malformed{Input: s.input, Line: line, Raw: long[:min(len(long), 1024)],
				Err: fmt.Errorf("line longer than %d bytes", engine.MaxLineSize)})
			long, tooLong = nil, false
			if err != nil {
				fail = readErr(err)
				break
			}
			continue
		}
		if long != nil {
			b, long = append(long, b...), nil
		}
		if err != nil && !(err == io.EOF && len(b) > 0) {
			fail = readErr(err)
			break
		}
		line++
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			if err != nil {
				break
			}
			continue
		}
		if len(b) > engine.MaxLineSize {
			s.reject(Malformed{Input: s.input, Line: line, Raw: bytes.Clone(b[:1024]),
				Err: fmt.Errorf("line longer than %d bytes", engine.MaxLineSize)})
		} else {
			ev, keep, bad, ruleErr := s.event(b)
			switch {
			case ruleErr != nil:
				if len(batch) > 0 && !send(nil) {
					return
				}
				send(fmt.Errorf("cdc: debezium source %q: %s: line %d: %w", s.cfg.Name, s.input, line, ruleErr))
				return
			case bad != nil:
				s.reject(Malformed{Input: s.input, Line: line, Raw: bytes.Clone(b), Err: bad})
			case keep:
				batch = append(batch, ev)
			}
		}
		if err != nil {
			break // the last line, without a newline
		}
		if len(batch) > 0 && (len(batch) == s.cfg.BatchSize || br.Buffered() == 0) {
			if !send(nil) {
				return
			}
		}
	}
	if len(batch) > 0 && !send(nil) {
		return
	}
	if fail != nil {
		send(fail)
	}
}

// Read returns the next changes, up to max (and the batch size), waiting
// for the first; with a batch timeout, it waits that long for more. After
// the last change it returns io.EOF (or the error that stopped the
// source).
func (s *Debezium) Read(ctx context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	s.started.Do(func() { go s.scan() })
	return s.chunks.read(ctx, dst, max)
}

// Malformed returns how many envelopes were malformed so far.
func (s *Debezium) Malformed() uint64 { return s.malformed.Load() }

// Close stops reading and closes the reader if it is an io.Closer.
func (s *Debezium) Close() error {
	s.once.Do(func() { close(s.stop) })
	if c, ok := s.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// DebeziumHandler is an HTTP intake of Debezium envelopes (from Debezium
// Server's HTTP sink, say), and the source of their changes: an
// http.Handler, an [engine.Source] and an [engine.Acker].
//
// A request is a POST whose body is one envelope (which may span lines)
// or newline-delimited envelopes, as application/json or
// application/x-ndjson (the Content-Type is not checked), of at most
// [MaxDebeziumBody] bytes. Its valid envelopes are queued for Read
// together, in their order, and the handler answers only once the
// pipeline has acknowledged every one of them: a client that gets a 200
// knows its changes went through the pipeline (and are durable, when the
// pipeline writes to a persistent channel). A client that gives up before
// then gets no answer, but its queued changes still flow. The answer is
// JSON:
//
//	200 {"accepted": 3, "rejected": []}
//	200 {"accepted": 2, "rejected": [{"line": 3, "error": "debezium envelope: ..."}]}
//	400 {"error": {"code": "rejected", "message": "..."}, "accepted": 0, "rejected": [...]}
//
// that is, 200 when at least one envelope was accepted, with the lines
// rejected (reported to OnMalformed too), and 400 when none was. Accepted
// envelopes include those that Tables leave out. Other errors are
// {"error": {"code": "...", "message": "..."}}: 405 for a method other
// than POST, 413 for a body too large, 400 for a body without envelopes,
// 503 "busy" when the queue stayed full for AckTimeout (nothing was
// accepted), 503 "closed" once the handler is closed, and 504
// "ack_timeout" when the changes were queued but not acknowledged within
// AckTimeout. After a 503 or 504, sending the same body again is safe: an
// event's ID is a hash of the intake's name and the envelope (as for
// [Debezium]), so a persistent channel written exactly-once keeps one of
// each.
//
// The queue is bounded: when the pipeline is slow, requests wait for room
// (up to AckTimeout); no change is dropped.
type DebeziumHandler struct {
	*debeziumIntake
	limit int // queued events above which requests wait

	mu       sync.Mutex
	queue    []engine.Event // queued, not yet read
	enqueued uint64         // events ever queued
	acked    uint64         // events acknowledged
	closed   bool
	changed  chan struct{} // closed and replaced on each change of the above
}

var (
	_ engine.Source = (*DebeziumHandler)(nil)
	_ engine.Acker  = (*DebeziumHandler)(nil)
	_ http.Handler  = (*DebeziumHandler)(nil)
	_ engine.Source = (*Debezium)(nil)
)

// MaxDebeziumBody is the largest request body [DebeziumHandler] takes.
const MaxDebeziumBody = 16 << 20

// NewDebeziumHandler returns a handler; an error says what is wrong with
// cfg.
func NewDebeziumHandler(cfg DebeziumConfig) (*DebeziumHandler, error) {
	in, err := newIntake(cfg)
	if err != nil {
		return nil, fmt.Errorf("cdc: debezium handler %q: %w", cfg.Name, err)
	}
	return &DebeziumHandler{debeziumIntake: in, limit: max(4*in.cfg.BatchSize, 1024), changed: make(chan struct{})}, nil
}

// notify wakes whoever waits for a change; h.mu is held.
func (h *DebeziumHandler) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

type debeziumRejection struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

type httpErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type debeziumResponse struct {
	Error    *httpErrorBody      `json:"error,omitempty"`
	Accepted int                 `json:"accepted"`
	Rejected []debeziumRejection `json:"rejected"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func httpError(w http.ResponseWriter, status int, code, format string, args ...any) {
	writeJSON(w, status, struct {
		Error httpErrorBody `json:"error"`
	}{httpErrorBody{code, fmt.Sprintf(format, args...)}})
}

var (
	errHandlerClosed = errors.New("closed")
	errBusy          = errors.New("busy")
	errAckTimeout    = errors.New("ack timeout")
)

// ServeHTTP takes a request of envelopes (see [DebeziumHandler]).
func (h *DebeziumHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method %s: post the envelopes", r.Method)
		return
	}
	if h.isClosed() {
		httpError(w, http.StatusServiceUnavailable, "closed", "the intake is closed: nothing was accepted")
		return
	}
	if r.ContentLength > MaxDebeziumBody {
		httpError(w, http.StatusRequestEntityTooLarge, "too_large", "the body is %d bytes: at most %d", r.ContentLength, MaxDebeziumBody)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxDebeziumBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			httpError(w, http.StatusRequestEntityTooLarge, "too_large", "the body is larger than %d bytes", MaxDebeziumBody)
			return
		}
		httpError(w, http.StatusBadRequest, "bad_body", "reading the body: %v", err)
		return
	}
	timer := time.NewTimer(h.cfg.AckTimeout)
	defer timer.Stop()
	events, resp, err := h.parseBody(body)
	if err != nil {
		resp.Error = &httpErrorBody{"rejected", "every envelope was rejected"}
		writeJSON(w, http.StatusBadRequest, resp)
		return
	}
	if resp.Accepted == 0 {
		httpError(w, http.StatusBadRequest, "empty", "the body holds no envelope")
		return
	}
	if len(events) > 0 {
		end, err := h.enqueue(events, timer.C)
		switch err {
		case errHandlerClosed:
			httpError(w, http.StatusServiceUnavailable, "closed", "the intake is closed: nothing was accepted")
			return
		case errBusy:
			w.Header().Set("Retry-After", "1")
			httpError(w, http.StatusServiceUnavailable, "busy", "the pipeline is behind: the queue stayed full for %s and nothing was accepted; send again later", h.cfg.AckTimeout)
			return
		}
		switch err := h.waitAck(r.Context(), end, timer.C); err {
		case nil:
		case errHandlerClosed:
			httpError(w, http.StatusServiceUnavailable, "closed", "the intake closed before the pipeline acknowledged the %d changes queued: they may or may not have gone through; sending them again is safe", len(events))
			return
		case errAckTimeout:
			httpError(w, http.StatusGatewayTimeout, "ack_timeout", "the %d changes were accepted but not yet acknowledged by the pipeline after %s: they are still queued; sending them again is safe", len(events), h.cfg.AckTimeout)
			return
		default:
			return // the client is gone; the changes still flow
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// parseBody parses a body's envelopes: the events to queue, the answer,
// and an error when there were envelopes and every one was rejected.
func (h *DebeziumHandler) parseBody(body []byte) ([]engine.Event, debeziumResponse, error) {
	resp := debeziumResponse{Rejected: []debeziumRejection{}}
	var events []engine.Event
	take := func(line int, b []byte) {
		ev, keep, bad, ruleErr := h.event(b)
		if bad == nil {
			bad = ruleErr
		}
		if bad != nil {
			resp.Rejected = append(resp.Rejected, debeziumRejection{line, bad.Error()})
			h.reject(Malformed{Input: "http", Line: line, Raw: bytes.Clone(b), Err: bad})
			return
		}
		resp.Accepted++
		if keep {
			events = append(events, ev)
		}
	}
	if all := bytes.TrimSpace(body); len(all) > 0 && all[0] == '{' && json.Valid(all) {
		take(1, all) // one envelope, on one line or more
	} else {
		for line := 1; len(body) > 0; line++ {
			b, rest, _ := bytes.Cut(body, []byte("\n"))
			body = rest
			if b = bytes.TrimSpace(b); len(b) > 0 {
				take(line, b)
			}
		}
	}
	if resp.Accepted == 0 && len(resp.Rejected) > 0 {
		return nil, resp, errors.New("every envelope was rejected")
	}
	return events, resp, nil
}

func (h *DebeziumHandler) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// enqueue queues events together once the queue has room, and returns
// how many events were ever queued with them.
func (h *DebeziumHandler) enqueue(events []engine.Event, timeout <-chan time.Time) (uint64, error) {
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return 0, errHandlerClosed
		}
		if len(h.queue) < h.limit {
			h.queue = append(h.queue, events...)
			h.enqueued += uint64(len(events))
			end := h.enqueued
			h.notify()
			h.mu.Unlock()
			return end, nil
		}
		ch := h.changed
		h.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			return 0, errBusy
		}
	}
}

// waitAck waits until the first end events are acknowledged.
func (h *DebeziumHandler) waitAck(ctx context.Context, end uint64, timeout <-chan time.Time) error {
	for {
		h.mu.Lock()
		acked, closed, ch := h.acked >= end, h.closed, h.changed
		h.mu.Unlock()
		switch {
		case acked:
			return nil
		case closed:
			return errHandlerClosed
		}
		select {
		case <-ch:
		case <-timeout:
			return errAckTimeout
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Read returns the next queued changes, in the order they were queued, up
// to max (and the batch size), waiting for the first; with a batch
// timeout, it waits that long for more. Once the handler is closed and
// its queue is empty, it returns io.EOF.
func (h *DebeziumHandler) Read(ctx context.Context, dst []engine.Event, max int) ([]engine.Event, error) {
	limit := min(max, h.cfg.BatchSize)
	n := 0
	var timer <-chan time.Time
	for {
		h.mu.Lock()
		if k := min(len(h.queue), limit-n); k > 0 {
			dst = append(dst, h.queue[:k]...)
			clear(h.queue[:k])
			h.queue = h.queue[k:]
			n += k
			h.notify()
		}
		closed, empty, ch := h.closed, len(h.queue) == 0, h.changed
		h.mu.Unlock()
		switch {
		case n >= limit:
			return dst, nil
		case n > 0:
			if h.cfg.BatchTimeout == 0 || closed && empty {
				return dst, nil
			}
			if timer == nil {
				t := time.NewTimer(h.cfg.BatchTimeout)
				defer t.Stop()
				timer = t.C
			}
			select {
			case <-ch:
			case <-timer:
				return dst, nil
			case <-ctx.Done():
				return dst, nil
			}
		case closed:
			return dst, io.EOF
		default:
			select {
			case <-ch:
			case <-ctx.Done():
				return dst, ctx.Err()
			}
		}
	}
}

// Ack records that the pipeline is done with the first n changes Read
// returned: the requests whose changes are all among them are answered.
func (h *DebeziumHandler) Ack(_ context.Context, n uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n > h.acked {
		h.acked = n
		h.notify()
	}
	return nil
}

// Malformed returns how many envelopes were rejected so far.
func (h *DebeziumHandler) Malformed() uint64 { return h.malformed.Load() }

// Close stops the intake: requests waiting and to come get 503, and Read
// returns io.EOF once the queued changes are read.
func (h *DebeziumHandler) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		h.notify()
	}
	return nil
}
