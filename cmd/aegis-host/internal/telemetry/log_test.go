package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/telemetry"
)

func TestSpanEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		innerLevel slog.Level // the wrapped handler's
		span       string     // "recording", "remote" (not recording) or "" (none)
		logger     func(*slog.Logger) *slog.Logger
		level      slog.Level
		msg        string
		args       []any
		wantEvent  map[string]string // the "log" event's attributes; nil: no event
		wantOut    []string          // in the wrapped handler's output; nil: nothing
	}{
		{name: "warn on a span", innerLevel: slog.LevelInfo, span: "recording", level: slog.LevelWarn,
			msg: "disk almost full", args: []any{"free", 3, "unit", "GB"},
			wantEvent: map[string]string{"log.message": "disk almost full", "log.severity": "WARN", "log.free": "3", "log.unit": "GB"},
			wantOut:   []string{"level=WARN", `msg="disk almost full"`, "free=3", "unit=GB"}},
		{name: "error on a span", innerLevel: slog.LevelInfo, span: "recording", level: slog.LevelError,
			msg: "plugin failed", args: []any{"err", "boom"},
			wantEvent: map[string]string{"log.message": "plugin failed", "log.severity": "ERROR", "log.err": "boom"},
			wantOut:   []string{"level=ERROR", `msg="plugin failed"`, "err=boom"}},
		{name: "above error on a span", innerLevel: slog.LevelInfo, span: "recording", level: slog.LevelError + 4,
			msg: "fatal", wantEvent: map[string]string{"log.message": "fatal", "log.severity": "ERROR+4"},
			wantOut: []string{"level=ERROR+4", "msg=fatal"}},
		{name: "WithAttrs attributes", innerLevel: slog.LevelInfo, span: "recording", level: slog.LevelWarn,
			logger: func(l *slog.Logger) *slog.Logger { return l.With("plugin", "upper").With("pipeline", "p1") },
			msg:    "slow", args: []any{"ms", 250},
			wantEvent: map[string]string{"log.message": "slow", "log.severity": "WARN", "log.plugin": "upper",
				"log.pipeline": "p1", "log.ms": "250"},
			wantOut: []string{"plugin=upper", "pipeline=p1", "ms=250", "msg=slow"}},
		{name: "WithAttrs then WithGroup", innerLevel: slog.LevelInfo, span: "recording", level: slog.LevelWarn,
			logger: func(l *slog.Logger) *slog.Logger { return l.With("plugin", "upper").WithGroup("g") },
			msg:    "grouped", args: []any{"k", "v"},
			wantEvent: map[string]string{"log.message": "grouped", "log.severity": "WARN", "log.plugin": "upper", "log.g.k": "v"},
			wantOut:   []string{"plugin=upper", "g.k=v"}},
		{name: "info on a span", innerLevel: slog.LevelInfo, span: "recording", level: slog.LevelInfo,
			msg: "started", args: []any{"n", 1}, wantOut: []string{"level=INFO", "msg=started", "n=1"}},
		{name: "debug on a span, inner at debug", innerLevel: slog.LevelDebug, span: "recording", level: slog.LevelDebug,
			msg: "details", wantOut: []string{"level=DEBUG", "msg=details"}},
		{name: "info on a span, inner at error", innerLevel: slog.LevelError, span: "recording", level: slog.LevelInfo,
			msg: "started"},
		{name: "warn without a span", innerLevel: slog.LevelInfo, level: slog.LevelWarn,
			msg: "no span", args: []any{"k", "v"}, wantOut: []string{"level=WARN", `msg="no span"`, "k=v"}},
		{name: "warn on a span that does not record", innerLevel: slog.LevelInfo, span: "remote", level: slog.LevelWarn,
			msg: "remote", wantOut: []string{"level=WARN", "msg=remote"}},
		{name: "warn on a span, inner at error", innerLevel: slog.LevelError, span: "recording", level: slog.LevelWarn,
			msg: "quiet warning", args: []any{"k", "v"},
			wantEvent: map[string]string{"log.message": "quiet warning", "log.severity": "WARN", "log.k": "v"}},
		{name: "warn without a span, inner at error", innerLevel: slog.LevelError, level: slog.LevelWarn, msg: "dropped"},
		{name: "error on a span, inner at error", innerLevel: slog.LevelError, span: "recording", level: slog.LevelError,
			msg: "loud", wantEvent: map[string]string{"log.message": "loud", "log.severity": "ERROR"},
			wantOut: []string{"level=ERROR", "msg=loud"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			defer tp.Shutdown(context.Background())

			ctx := context.Background()
			var span trace.Span
			switch tt.span {
			case "recording":
				ctx, span = tp.Tracer("test").Start(ctx, "call")
			case "remote":
				ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
					TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true}))
			}
			var out bytes.Buffer
			h := telemetry.SpanEvents(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: tt.innerLevel}))
			logger := slog.New(h)
			if tt.logger != nil {
				logger = tt.logger(logger)
			}
			logger.Log(ctx, tt.level, tt.msg, tt.args...)
			if span != nil {
				span.End()
			}

			var events []sdktrace.Event
			for _, s := range rec.Ended() {
				events = append(events, s.Events()...)
			}
			if tt.wantEvent == nil {
				if len(events) != 0 {
					t.Errorf("span events %v, want none", events)
				}
			} else {
				if len(events) != 1 {
					t.Fatalf("span events %v, want one", events)
				}
				ev := events[0]
				if ev.Name != "log" {
					t.Errorf("event name %q, want log", ev.Name)
				}
				if ev.Time.IsZero() {
					t.Error("event has no time")
				}
				got := map[string]string{}
				for _, kv := range ev.Attributes {
					got[string(kv.Key)] = kv.Value.AsString()
				}
				if !maps.Equal(got, tt.wantEvent) {
					t.Errorf("event attributes %v, want %v", got, tt.wantEvent)
				}
			}

			s := out.String()
			if tt.wantOut == nil && s != "" {
				t.Errorf("the wrapped handler printed %q, want nothing", s)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(s, w) {
					t.Errorf("the wrapped handler printed %q, want %q in it", s, w)
				}
			}
		})
	}
}

func TestSpanEventsEnabled(t *testing.T) {
	t.Parallel()
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelError + 4}
	tests := []struct {
		name       string
		innerLevel slog.Level
	}{
		{"inner at debug", slog.LevelDebug},
		{"inner at info", slog.LevelInfo},
		{"inner at warn", slog.LevelWarn},
		{"inner at error", slog.LevelError},
		{"inner above error", slog.LevelError + 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inner := slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: tt.innerLevel})
			handlers := map[string]slog.Handler{
				"SpanEvents":           telemetry.SpanEvents(inner),
				"SpanEvents.WithAttrs": telemetry.SpanEvents(inner).WithAttrs([]slog.Attr{slog.String("k", "v")}),
				"SpanEvents.WithGroup": telemetry.SpanEvents(inner).WithGroup("g"),
			}
			for hn, h := range handlers {
				for _, l := range levels {
					want := l >= slog.LevelWarn || l >= tt.innerLevel
					if got := h.Enabled(context.Background(), l); got != want {
						t.Errorf("%s.Enabled(%v) = %v, want %v", hn, l, got, want)
					}
				}
			}
		})
	}
}

// TestSpanEventsWithAttrsIndependent: handlers derived from the same one
// do not share the attributes added afterwards.
func TestSpanEventsWithAttrsIndependent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		logger func(base *slog.Logger) *slog.Logger
		want   map[string]string
	}{
		{name: "first child", logger: func(base *slog.Logger) *slog.Logger { return base.With("child", "a") },
			want: map[string]string{"log.message": "m", "log.severity": "WARN", "log.base": "1", "log.child": "a"}},
		{name: "second child", logger: func(base *slog.Logger) *slog.Logger { return base.With("child", "b") },
			want: map[string]string{"log.message": "m", "log.severity": "WARN", "log.base": "1", "log.child": "b"}},
		{name: "base", logger: func(base *slog.Logger) *slog.Logger { return base },
			want: map[string]string{"log.message": "m", "log.severity": "WARN", "log.base": "1"}},
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	var out bytes.Buffer
	base := slog.New(telemetry.SpanEvents(slog.NewTextHandler(&out, nil))).With("base", 1)
	loggers := make([]*slog.Logger, len(tests))
	for i, tt := range tests {
		loggers[i] = tt.logger(base)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, span := tp.Tracer("test").Start(context.Background(), tt.name)
			loggers[i].WarnContext(ctx, "m")
			span.End()
			var got map[string]string
			for _, s := range rec.Ended() {
				if s.Name() != tt.name {
					continue
				}
				for _, ev := range s.Events() {
					got = map[string]string{}
					for _, kv := range ev.Attributes {
						got[string(kv.Key)] = kv.Value.AsString()
					}
				}
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("event attributes %v, want %v", got, tt.want)
			}
		})
	}
}

// secret is a value that logs redacted.
type secret string

func (secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// TestSpanEventsResolvesLogValuer: a slog.LogValuer is logged as what its
// LogValue returns, on spans as in the log, so that a redacted value does
// not reach the traces.
func TestSpanEventsResolvesLogValuer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		logger func(*slog.Logger) *slog.Logger
		args   []any
	}{
		{name: "record attribute", logger: func(l *slog.Logger) *slog.Logger { return l }, args: []any{"token", secret("hunter2")}},
		{name: "WithAttrs attribute", logger: func(l *slog.Logger) *slog.Logger { return l.With("token", secret("hunter2")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			defer tp.Shutdown(context.Background())
			var out bytes.Buffer
			logger := tt.logger(slog.New(telemetry.SpanEvents(slog.NewTextHandler(&out, nil))))
			ctx, span := tp.Tracer("test").Start(context.Background(), "call")
			logger.WarnContext(ctx, "m", tt.args...)
			span.End()
			if s := out.String(); !strings.Contains(s, "token=REDACTED") {
				t.Errorf("the wrapped handler printed %q, want token=REDACTED", s)
			}
			var got string
			for _, s := range rec.Ended() {
				for _, ev := range s.Events() {
					for _, kv := range ev.Attributes {
						if kv.Key == "log.token" {
							got = kv.Value.AsString()
						}
					}
				}
			}
			if got != "REDACTED" {
				t.Errorf("log.token = %q, want REDACTED", got)
			}
		})
	}
}
