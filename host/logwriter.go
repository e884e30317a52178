package host

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
)

const (
	// maxLogLine is the longest log line a plugin can produce; longer ones
	// are cut.
	maxLogLine = 4096
	// maxLogPerCall is how many bytes of stdout or stderr one call may log;
	// the rest is dropped and counted, so a plugin cannot make the host
	// spend its time or memory on logging.
	maxLogPerCall = 64 << 10
)

// lineLogger turns a plugin's stdout or stderr into log records, one per
// line, tagged with the plugin.
type lineLogger struct {
	log    *slog.Logger
	level  slog.Level
	stream string

	mu      sync.Mutex
	ctx     context.Context // the current call's, for its lines' records (a trace's span)
	buf     []byte          // the current line, at most maxLogLine bytes
	cut     bool            // the current line was cut: skip to its end
	budget  int             // bytes this call may still log
	dropped int             // bytes dropped over the budget in this call
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if len(p) > w.budget {
		w.dropped += len(p) - w.budget
		p = p[:w.budget]
	}
	w.budget -= len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		line := p
		if i >= 0 {
			line = p[:i]
		}
		if !w.cut {
			room := maxLogLine - len(w.buf)
			if len(line) > room {
				line, w.cut = line[:room], true
			}
			w.buf = append(w.buf, line...)
			if w.cut {
				w.emit()
			}
		}
		if i < 0 {
			break
		}
		if !w.cut {
			w.emit()
		}
		w.cut = false
		p = p[i+1:]
	}
	return n, nil
}

// take spends n bytes of the call's budget on a message written another
// way (aegis.log); false means it is over budget, counted as dropped.
func (w *lineLogger) take(n int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n > w.budget {
		w.dropped += n
		return false
	}
	w.budget -= n
	return true
}

// startCall gives a new call its logging budget, and reports what the last
// one dropped. The lines the call writes are logged with ctx, so that a
// handler can tell which call (and which span) they belong to.
func (w *lineLogger) startCall(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.report()
	w.budget = maxLogPerCall
	w.ctx = ctx
}

// Flush logs a partial last line and what was dropped.
func (w *lineLogger) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit()
	}
	w.report()
}

func (w *lineLogger) report() {
	if w.dropped > 0 {
		w.log.Warn("plugin output over the per-call limit dropped", "stream", w.stream, "bytes", w.dropped, "limit", maxLogPerCall)
		w.dropped = 0
	}
}

func (w *lineLogger) emit() {
	if len(w.buf) == 0 {
		return // a blank line says nothing
	}
	ctx := w.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	w.log.Log(ctx, w.level, strings.ToValidUTF8(string(w.buf), "\uFFFD"), "stream", w.stream)
	w.buf = w.buf[:0]
}
