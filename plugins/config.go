package plugins

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of [Config].
const (
	DefaultTimeout     = 30 * time.Second
	DefaultMaxRestarts = 5
	DefaultBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
)

// Config says how to run a connector.
type Config struct {
	// Name is the source's or sink's name, in errors and logs, and what the
	// connector is told it is.
	Name string
	// Path is the connector's executable.
	Path string
	// SHA256, when set, pins the executable's hex SHA-256 digest: it is
	// checked before every start, and a connector that does not match is
	// not started.
	SHA256 string
	// Config is the connector's configuration, a JSON object (nil: "{}").
	Config []byte
	// Dir is the connector's working directory, against which relative
	// paths of its configuration resolve ("": the host's).
	Dir string
	// Timeout bounds a call to the connector beyond what it is asked to
	// wait, and its start: past it the connector is deemed hung, killed and
	// restarted (default DefaultTimeout).
	Timeout time.Duration
	// MaxRestarts is how many times in a row a connector that crashed, hung
	// or returned events that are not valid is restarted before the
	// pipeline fails (default DefaultMaxRestarts; NoRestarts for none). A
	// call that succeeds resets the count.
	MaxRestarts int
	// Backoff is the wait before the first restart or retry, doubling up
	// to MaxBackoff (defaults DefaultBackoff and DefaultMaxBackoff).
	Backoff, MaxBackoff time.Duration
	// PositionFile, for a source, is where the position of the last events
	// the pipeline acknowledged is kept, so that a new run starts after
	// them; "" keeps none, and a new run starts where the connector starts
	// by default. Its directory is made if needed.
	PositionFile string
	// Logger receives the connector's log and stderr, and the host's
	// messages about it; nil means slog.Default().
	Logger *slog.Logger
}

// NoRestarts as [Config.MaxRestarts] restarts a connector never.
const NoRestarts = -1

func (c *Config) setDefaults() error {
	if c.Path == "" {
		return fmt.Errorf("connector[%s]: no executable", c.Name)
	}
	if c.Config == nil {
		c.Config = []byte("{}")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch {
	case c.MaxRestarts == 0:
		c.MaxRestarts = DefaultMaxRestarts
	case c.MaxRestarts == NoRestarts:
		c.MaxRestarts = 0
	case c.MaxRestarts < 0:
		return fmt.Errorf("connector[%s]: %d restarts", c.Name, c.MaxRestarts)
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.Backoff)
	}
	if c.Timeout < 0 || c.Backoff < 0 || c.MaxBackoff < 0 {
		return fmt.Errorf("connector[%s]: timeout %v, backoff %v and max backoff %v must be positive", c.Name, c.Timeout, c.Backoff, c.MaxBackoff)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("connector", c.Name)
	return nil
}
