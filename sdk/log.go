package sdk

import "fmt"

// Level is a log level, as in log/slog.
type Level int32

// The levels.
const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

// Log sends a message to the host's log, tagged with the plugin. Messages
// longer than 4096 bytes are cut there.
func Log(level Level, msg string) { hostLog(int32(level), msg) }

// Logf formats a message with fmt.Sprintf and logs it.
func Logf(level Level, format string, args ...any) { Log(level, fmt.Sprintf(format, args...)) }

// Debug, Info, Warn and Error log at their level.
func Debug(msg string) { Log(LevelDebug, msg) }

// Info logs at info level.
func Info(msg string) { Log(LevelInfo, msg) }

// Warn logs at warn level.
func Warn(msg string) { Log(LevelWarn, msg) }

// Error logs at error level.
func Error(msg string) { Log(LevelError, msg) }
