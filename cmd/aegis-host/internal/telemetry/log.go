package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// SpanEvents wraps a log handler so that records at warn level and above
// logged with the context of a recording span (a plugin's log lines and
// output during a traced call, say) also become events on that span,
// named "log", with the message, the level and the record's attributes.
func SpanEvents(h slog.Handler) slog.Handler { return &spanEvents{Handler: h} }

type spanEvents struct {
	slog.Handler
	attrs  []attribute.KeyValue // from WithAttrs
	prefix string               // of attribute keys: "log." and the groups
}

func (h *spanEvents) key(k string) string {
	if h.prefix == "" {
		return "log." + k
	}
	return h.prefix + k
}

func (h *spanEvents) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			attrs := make([]attribute.KeyValue, 0, 2+len(h.attrs)+r.NumAttrs())
			attrs = append(attrs, attribute.String("log.message", r.Message), attribute.String("log.severity", r.Level.String()))
			attrs = append(attrs, h.attrs...)
			r.Attrs(func(a slog.Attr) bool {
				attrs = append(attrs, attribute.String(h.key(a.Key), a.Value.Resolve().String()))
				return true
			})
			span.AddEvent("log", trace.WithAttributes(attrs...), trace.WithTimestamp(r.Time))
		}
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

// Enabled is true from warn up, whatever the wrapped handler's level, so
// that warnings reach the spans.
func (h *spanEvents) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.Handler.Enabled(ctx, l)
}

func (h *spanEvents) WithAttrs(as []slog.Attr) slog.Handler {
	n := &spanEvents{Handler: h.Handler.WithAttrs(as), attrs: append([]attribute.KeyValue(nil), h.attrs...), prefix: h.prefix}
	for _, a := range as {
		n.attrs = append(n.attrs, attribute.String(h.key(a.Key), a.Value.Resolve().String()))
	}
	return n
}

func (h *spanEvents) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &spanEvents{Handler: h.Handler.WithGroup(name), attrs: h.attrs, prefix: h.key(name) + "."}
}

// errorsTo sends the OpenTelemetry SDK's errors (a process-wide setting: the
// last Start's log gets them) (a collector that cannot
// be reached, say) to log, at most one a minute per message.
func errorsTo(log *slog.Logger) {
	var mu sync.Mutex
	last := map[string]time.Time{}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		msg := err.Error()
		mu.Lock()
		if t, ok := last[msg]; ok && time.Since(t) < time.Minute {
			mu.Unlock()
			return
		}
		if len(last) > 1000 {
			clear(last)
		}
		last[msg] = time.Now()
		mu.Unlock()
		log.Warn("telemetry export", "error", err)
	}))
}
