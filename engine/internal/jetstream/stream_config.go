package jetstream

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Discard says what a full stream does with a new message.
type Discard int

const (
	// DiscardOld (the default) removes the oldest messages to make room.
	DiscardOld Discard = iota
	// DiscardNew refuses the new message: the publish fails with
	// [ErrStreamFull].
	DiscardNew
)

// String is "old" or "new".
func (d Discard) String() string {
	if d == DiscardNew {
		return "new"
	}
	return "old"
}

// DefaultDuplicateWindow is the de-duplication window of a stream whose
// [StreamOptions.DuplicateWindow] is 0.
const DefaultDuplicateWindow = 2 * time.Minute

// StreamOptions configure the stream of a channel. Zero values are the
// defaults. Limits combine: a message is removed (or, with [DiscardNew], a
// new one refused) as soon as any limit is exceeded.
type StreamOptions struct {
	// MaxMsgs is the most messages kept; 0: no limit.
	MaxMsgs int64
	// MaxAge is how long a message is kept; 0: forever.
	MaxAge time.Duration
	// MaxBytes is the most bytes kept (message bodies, headers and about 40
	// bytes of overhead each); 0: no limit but the server's store limit.
	MaxBytes int64
	// Discard is what a full stream does; default [DiscardOld]. It applies to
	// MaxMsgs and MaxBytes; MaxAge always removes old messages.
	Discard Discard
	// Replicas is the number of servers that store each message (1 to 5); 0:
	// the connection's default (1 embedded; [ConnectOptions.Replicas]).
	Replicas int
	// DuplicateWindow is how long the stream remembers message IDs to drop
	// re-published duplicates; 0: [DefaultDuplicateWindow], cut to MaxAge
	// when MaxAge is shorter.
	DuplicateWindow time.Duration
}

func (o StreamOptions) config(channel string, defReplicas int) (jetstream.StreamConfig, error) {
	if o.MaxMsgs < 0 || o.MaxAge < 0 || o.MaxBytes < 0 || o.DuplicateWindow < 0 || o.Replicas < 0 {
		return jetstream.StreamConfig{}, fmt.Errorf("channel[%s]: negative stream option", channel)
	}
	if o.Replicas > 5 {
		return jetstream.StreamConfig{}, fmt.Errorf("channel[%s]: %d replicas, the limit is 5", channel, o.Replicas)
	}
	replicas := o.Replicas
	if replicas == 0 {
		replicas = defReplicas
	}
	dup := o.DuplicateWindow
	if dup == 0 {
		dup = DefaultDuplicateWindow
		if o.MaxAge > 0 && o.MaxAge < dup {
			dup = o.MaxAge
		}
	}
	if o.MaxAge > 0 && dup > o.MaxAge {
		return jetstream.StreamConfig{}, fmt.Errorf("channel[%s]: duplicate window %v is longer than max age %v", channel, dup, o.MaxAge)
	}
	cfg := jetstream.StreamConfig{
		Name:       StreamName(channel),
		Subjects:   []string{Subject(channel)},
		Retention:  jetstream.LimitsPolicy,
		MaxMsgs:    -1,
		MaxBytes:   -1,
		MaxAge:     o.MaxAge,
		Discard:    jetstream.DiscardOld,
		Storage:    jetstream.FileStorage,
		Replicas:   replicas,
		Duplicates: dup,
		Metadata:   map[string]string{metaChannel: channel},
	}
	if o.MaxMsgs > 0 {
		cfg.MaxMsgs = o.MaxMsgs
	}
	if o.MaxBytes > 0 {
		cfg.MaxBytes = o.MaxBytes
	}
	if o.Discard == DiscardNew {
		cfg.Discard = jetstream.DiscardNew
	}
	return cfg, nil
}
