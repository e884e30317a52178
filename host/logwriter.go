package host

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// maxLogLine is the longest log line a plugin can produce; longer ones are
// cut.
const maxLogLine = 4096

// lineLogger turns a plugin's stdout or stderr into log records, one per
// line, tagged with the plugin.
type lineLogger struct {
	log    *slog.Logger
	level  slog.Level
	stream string

	mu  sync.Mutex
	buf []byte
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := strings.IndexByte(string(p), '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLogLine {
				w.emit()
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

// Flush logs a partial last line.
func (w *lineLogger) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit()
	}
}

func (w *lineLogger) emit() {
	line := w.buf
	if len(line) > maxLogLine {
		line = line[:maxLogLine]
	}
	w.log.Log(context.Background(), w.level, strings.ToValidUTF8(string(line), "\uFFFD"), "stream", w.stream)
	w.buf = w.buf[:0]
}
