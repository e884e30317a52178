package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// hclogger hands go-plugin's own logging to a slog.Logger. The logger
// go-plugin names after a connector's binary, through which it would log
// the lines of the connector's stderr, is off: go-plugin's parsing of those
// lines panics on JSON it does not expect, which a connector must not be
// able to do to the host. The lines reach the host's log through
// [outputLog] instead.
type hclogger struct {
	log  *slog.Logger
	name string
	off  bool
	args []any
}

func newHCLogger(l *slog.Logger) hclog.Logger { return &hclogger{log: l} }

var hclogLevels = map[hclog.Level]slog.Level{
	hclog.Trace: slog.LevelDebug - 4,
	hclog.Debug: slog.LevelDebug,
	hclog.Info:  slog.LevelInfo,
	hclog.Warn:  slog.LevelWarn,
	hclog.Error: slog.LevelError,
}

func (h *hclogger) Log(level hclog.Level, msg string, args ...any) {
	l, ok := hclogLevels[level]
	if !ok {
		l = slog.LevelInfo
	}
	ctx := context.Background()
	if h.off || !h.log.Enabled(ctx, l) {
		return
	}
	h.log.Log(ctx, l, msg, append(h.args, args...)...)
}

func (h *hclogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogger) enabled(level hclog.Level) bool {
	return !h.off && h.log.Enabled(context.Background(), hclogLevels[level])
}

func (h *hclogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hclogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hclogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hclogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hclogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hclogger) ImpliedArgs() []any { return h.args }

func (h *hclogger) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(h.args[:len(h.args):len(h.args)], args...)
	return &c
}

func (h *hclogger) Name() string { return h.name }

// Named is how go-plugin makes the logger of a connector's stderr, named
// after its binary, which is off; and that of its own stdio client, named
// "stdio".
func (h *hclogger) Named(name string) hclog.Logger {
	c := *h
	c.off = name != "stdio"
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	return &c
}

func (h *hclogger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel does nothing: the slog handler decides.
func (h *hclogger) SetLevel(hclog.Level) {}

func (h *hclogger) GetLevel() hclog.Level {
	if h.off {
		return hclog.Off
	}
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if h.enabled(l) {
			return l
		}
	}
	return hclog.Error
}

func (h *hclogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hclogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer { return lineWriter{h} }

// outputLog logs what a connector writes, a line at a time. go-plugin
// carries what a gRPC connector writes to os.Stdout and os.Stderr to the
// host in a stream of its own; those lines are logged at Info with the
// stream's name. What it writes to its process's stderr (the SDK's
// logger, a panic's trace) go-plugin copies as is: a line in hclog's JSON
// form (the SDK's) is logged at its level with its attributes; any other
// at Info, or at Error from a Go panic's first line on.
type outputLog struct {
	log    *slog.Logger
	stream string
	hclog  bool // lines may be hclog's JSON
	mu     sync.Mutex
	buf    []byte
	panic  bool
}

// maxLine is the longest line kept whole; a longer one is logged in parts.
const maxLine = 64 << 10

func (w *outputLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			for len(w.buf) >= maxLine {
				w.line(w.buf[:maxLine])
				w.buf = w.buf[:copy(w.buf, w.buf[maxLine:])]
			}
			return len(p), nil
		}
		w.line(w.buf[:i])
		w.buf = w.buf[:copy(w.buf, w.buf[i+1:])]
	}
}

func (w *outputLog) line(b []byte) {
	if b = bytes.TrimRight(b, "\r"); len(b) == 0 {
		return
	}
	if w.hclog && !w.panic && b[0] == '{' {
		if level, msg, attrs, ok := parseHCLog(b); ok {
			w.log.Log(context.Background(), level, msg, attrs...)
			return
		}
	}
	line := string(b)
	if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		w.panic = true
	}
	level := slog.LevelInfo
	if w.panic {
		level = slog.LevelError
	}
	w.log.Log(context.Background(), level, line, "stream", w.stream)
}

// hclogNames are hclog's level names.
var hclogNames = map[string]slog.Level{
	"trace": slog.LevelDebug - 4, "debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "error": slog.LevelError,
}

// parseHCLog reads a line of hclog's JSON form: an object with "@level"
// and "@message" strings; its other keys but "@timestamp" and "@module"
// are the attributes, in key order. It reports whether the line is one.
func parseHCLog(b []byte) (slog.Level, string, []any, bool) {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return 0, "", nil, false
	}
	lv, _ := m["@level"].(string)
	level, ok := hclogNames[strings.ToLower(lv)]
	msg, isString := m["@message"].(string)
	if !ok || !isString {
		return 0, "", nil, false
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		switch k {
		case "@level", "@message", "@timestamp", "@module":
		default:
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	attrs := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		attrs = append(attrs, k, m[k])
	}
	return level, msg, attrs, true
}

// lineWriter logs each write as an Info message.
type lineWriter struct{ h *hclogger }

func (w lineWriter) Write(p []byte) (int, error) {
	w.h.Info(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
