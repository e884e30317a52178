package sdk_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/plugins/sdk"
)

// countdown is a source of n events, "countdown.tick" with the number
// left as data. Its position is the count of events returned, 8 bytes.
type countdown struct {
	n, next uint64
}

func (c *countdown) Configure(_ context.Context, _ string, config []byte) error {
	c.n = 10
	return nil // a real source decodes config here, and refuses what it cannot use
}

func (c *countdown) Open(_ context.Context, position []byte) error {
	switch len(position) {
	case 0:
	case 8:
		c.next = binary.BigEndian.Uint64(position)
	default:
		return fmt.Errorf("countdown: position %x is not 8 bytes", position)
	}
	sdk.Logger().Info("countdown: open", "next", c.next)
	return nil
}

func (c *countdown) Read(ctx context.Context, max int) ([]engine.Event, []byte, error) {
	select {
	case <-ctx.Done(): // the host stopped waiting: nothing this time
		return nil, nil, nil
	case <-time.After(100 * time.Millisecond):
	}
	var events []engine.Event
	for ; c.next < c.n && len(events) < max; c.next++ {
		events = append(events, engine.Event{Type: "countdown.tick", Data: engine.IntData(int64(c.n - c.next - 1))})
	}
	position := binary.BigEndian.AppendUint64(nil, c.next)
	if c.next == c.n {
		return events, position, io.EOF
	}
	return events, position, nil
}

func (c *countdown) Ack(context.Context, []byte) error { return nil }

func (c *countdown) Close(context.Context) error { return nil }

// A source is a type with five methods, served from main.
func Example() {
	// func main() {
	sdk.Serve(sdk.Connector{Source: &countdown{}})
	// }
}

// An error worth retrying: the host tries the call again.
func ExampleRetryable() {
	write := func() error {
		err := errors.New("connection refused") // say, from a broker
		return sdk.Retryable(fmt.Errorf("publish: %w", err))
	}
	fmt.Println(write())
	// Output: publish: connection refused
}
