package sdk

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Logger returns the connector's logger. Its records reach the host's log
// at their level, with their attributes, tagged by the host with the
// connector's name; Debug and below reach it only when the host logs at
// that level. It is safe for concurrent use, and ready before [Serve].
//
// The records are lines of hclog's JSON format on the process's standard
// error, the form go-plugin's client reads:
//
//	{"@level":"info","@message":"opened","@timestamp":"2026-01-02T03:04:05.000000Z","file":"in.txt"}
//
// Levels below slog.LevelDebug are hclog's "trace". Groups become dotted
// keys ("db.host"), keys that start with "@" (hclog's own) get a "_"
// first, and a record whose line would pass 64 KiB (what the host reads
// as one line) has its long strings cut, and then its attributes dropped.
//
// Plain writes do not reach the host's log the same way. Once Serve runs,
// os.Stderr (and os.Stdout) is a pipe of go-plugin's, streamed to the host
// as raw bytes, which the host may keep or drop. The standard log package
// and slog.Default still write to the process's standard error, which
// go-plugin hands to the host line by line as plain messages, without
// attributes (at debug level, or at the level of a "[INFO]", "[WARN]", ...
// prefix). Prefer this logger.
func Logger() *slog.Logger { return logger }

// stderr is the process's standard error as the program started with it:
// plugin.Serve replaces os.Stderr, and only the original reaches the host's
// log. One write per line, under a lock, so that lines of concurrent
// records and of go-plugin's own logger never interleave.
var stderr = &lockedWriter{w: os.Stderr}

var logger = slog.New(&handler{out: stderr})

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// timeFormat is hclog's TimeFormatJSON, the one layout go-plugin's client
// parses "@timestamp" with: a line with another is logged as plain text.
const timeFormat = "2006-01-02T15:04:05.000000Z07:00"

// maxLine is the longest line go-plugin's client reads as one, newline
// included (its default PluginLogBufferSize); a longer one is logged in
// pieces, as plain text.
const maxLine = 64 * 1024

// Cuts for a record that would be longer than maxLine: its message, and
// each string attribute.
const (
	cutMessage = 8 << 10
	cutString  = 1 << 10
)

// handler is a slog.Handler writing hclog JSON lines.
type handler struct {
	out io.Writer
	// attrs are those of WithAttrs, as they come, each with its group.
	attrs []slog.Attr
	// group is the prefix of the keys: the groups of WithGroup, each
	// followed by ".".
	group string
}

func (h *handler) Enabled(context.Context, slog.Level) bool { return true }

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	line := h.line(&r, 0, true)
	if len(line) > maxLine {
		line = h.line(&r, cutString, true)
	}
	if len(line) > maxLine {
		line = h.line(&r, cutString, false)
	}
	_, err := h.out.Write(line)
	return err
}

// line encodes a record; cut > 0 cuts the message and string values, and
// attrs false leaves out the attributes.
func (h *handler) line(r *slog.Record, cut int, attrs bool) []byte {
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	msg := r.Message
	if cut > 0 {
		msg = truncate(msg, cutMessage)
	}
	b := make([]byte, 0, 256)
	b = append(b, `{"@level":"`...)
	b = append(b, levelName(r.Level)...)
	b = append(b, `","@message":`...)
	b = appendJSON(b, msg)
	b = append(b, `,"@timestamp":"`...)
	b = t.UTC().AppendFormat(b, timeFormat)
	b = append(b, '"')
	if attrs {
		for _, a := range h.attrs {
			b = appendAttr(b, "", a, cut)
		}
		r.Attrs(func(a slog.Attr) bool {
			b = appendAttr(b, h.group, a, cut)
			return true
		})
	} else {
		b = append(b, `,"log_truncated":true`...)
	}
	return append(b, '}', '\n')
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := *h
	c.attrs = make([]slog.Attr, 0, len(h.attrs)+len(attrs))
	c.attrs = append(c.attrs, h.attrs...)
	for _, a := range attrs {
		if h.group != "" {
			// Keep the attribute under the groups open now.
			a = slog.Attr{Key: strings.TrimSuffix(h.group, "."), Value: slog.GroupValue(a)}
		}
		c.attrs = append(c.attrs, a)
	}
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group = h.group + name + "."
	return &c
}

// levelName is the hclog name of a level, one of the five go-plugin's
// client understands (hclog.LevelFromString); others are logged as plain
// text at debug level.
func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}

func appendAttr(b []byte, prefix string, a slog.Attr, cut int) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			b = appendAttr(b, prefix, g, cut)
		}
		return b
	}
	key := prefix + a.Key
	if strings.HasPrefix(key, "@") {
		key = "_" + key
	}
	b = append(b, ',')
	b = appendJSON(b, key)
	b = append(b, ':')
	v := jsonValue(a.Value)
	if s, ok := v.(string); ok && cut > 0 {
		v = truncate(s, cut)
	}
	return appendJSON(b, v)
}

// jsonValue is what a value is in JSON: numbers and booleans as such, a
// duration as text ("1.5s"), a time in RFC 3339, an error as its message,
// and any other value as encoding/json encodes it.
func jsonValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return v.Uint64()
	case slog.KindFloat64:
		f := v.Float64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return f
	case slog.KindBool:
		return v.Bool()
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	}
	switch x := v.Any().(type) {
	case json.Marshaler, encoding.TextMarshaler:
		return x
	case error:
		return x.Error()
	}
	return v.Any()
}

// appendJSON appends v in JSON, or, when encoding/json cannot encode it,
// its fmt form as a JSON string. HTML characters stay as they are.
func appendJSON(b []byte, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		buf.Reset()
		_ = enc.Encode(fmt.Sprintf("%+v", v))
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...)
}

// truncate cuts s to at most n bytes, at a rune's start, and marks the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
