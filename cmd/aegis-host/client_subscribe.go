package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/aegis-streaming/aegis/engine"
)

func subscribeCommand() *cli.Command {
	return &cli.Command{
		Name:         "subscribe",
		Usage:        "Print the events of a channel of a host's API as they come",
		ArgsUsage:    "CHANNEL",
		OnUsageError: onUsageError,
		Description: "Tails the channel (Server-Sent Events) and prints its events as JSON lines,\n" +
			"until SIGINT or SIGTERM, or --count events. A lost connection is made again,\n" +
			"resuming after the last event printed. With --ack (persistent channels)\n" +
			"each event is acknowledged once it is printed: with --durable NAME, the next\n" +
			"subscribe with that name resumes after the last one acknowledged.",
		Flags: withClientFlags(
			&cli.StringSliceFlag{Name: "type", Usage: "only events of this `TYPE` (repeatable, or comma-separated)"},
			&cli.StringFlag{Name: "source", Usage: "only events from this `SOURCE`"},
			metaFlag("only events with the metadata attribute `KEY=VALUE` (repeatable)"),
			&cli.StringFlag{Name: "start", Usage: "`all` to print what the channel retains first, new (the default) to print what comes"},
			&cli.StringFlag{Name: "after-id", Usage: "start after the event with this `ID`"},
			&cli.StringFlag{Name: "durable", Usage: "a durable subscription `NAME` (persistent channels): it resumes where the last one left off"},
			&cli.BoolFlag{Name: "ack", Usage: "acknowledge each event once it is printed (persistent channels)"},
			&cli.DurationFlag{Name: "ack-wait", Usage: "with --ack: how long, such as `1m`, an event may go unacknowledged before it is delivered again (left out: the host's default)"},
			&cli.IntFlag{Name: "count", Usage: "stop after `N` events (0: never)"},
		),
		Action: func(c *cli.Context) error {
			channel, err := oneArg(c, "one CHANNEL")
			if err != nil {
				return err
			}
			q, err := subscribeQuery(c)
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			// After the first signal, a second one is the default's: it
			// ends the process, also while a write to stdout is stuck.
			context.AfterFunc(ctx, stop)
			sub, err := cl.Subscribe(ctx, channel, q)
			if err != nil {
				if ctx.Err() != nil && c.Context.Err() == nil {
					return nil // a signal while connecting
				}
				return apiError(err)
			}
			defer sub.Close()
			ack, count := c.Bool("ack"), c.Int("count")
			for n := 0; count <= 0 || n < count; n++ {
				ev, err := sub.Next()
				if err != nil {
					if errors.Is(err, context.Canceled) && ctx.Err() != nil {
						return nil // stopped
					}
					return apiError(err)
				}
				b, err := json.Marshal(ev)
				if err != nil {
					return err
				}
				if _, err := c.App.Writer.Write(append(b, '\n')); err != nil {
					return err
				}
				if ack {
					actx, cancel := requestContext(c)
					err := sub.Ack(actx, ev.ID)
					cancel()
					if err != nil {
						return fmt.Errorf("acknowledging %s: %w", ev.ID, apiError(err))
					}
				}
			}
			return nil
		},
	}
}

// subscribeQuery is the stream's query: the filter, the start, and the
// acknowledgements the flags ask for.
func subscribeQuery(c *cli.Context) (url.Values, error) {
	usage := func(format string, args ...any) error {
		return usageError{err: fmt.Errorf(format, args...), helpName: c.Command.HelpName}
	}
	q := url.Values{}
	if types := c.StringSlice("type"); len(types) > 0 {
		q.Set("type", strings.Join(types, ","))
	}
	if c.IsSet("source") {
		q.Set("source", c.String("source"))
	}
	meta, err := parseMeta(c, "meta")
	if err != nil {
		return nil, err
	}
	for k, v := range meta {
		q.Set("meta."+k, v)
	}
	switch s := c.String("start"); s {
	case "", "new":
	case "all":
		q.Set("start", s)
	default:
		return nil, usage("--start %q: all or new", s)
	}
	if id := c.String("after-id"); id != "" {
		if _, err := engine.ParseEventID(id); err != nil {
			return nil, usage("--after-id: %v", err)
		}
		q.Set("after_id", id)
	}
	if d := c.String("durable"); d != "" {
		q.Set("durable", d)
	}
	if c.Bool("ack") {
		q.Set("ack", "manual")
	}
	if c.IsSet("ack-wait") {
		if !c.Bool("ack") || c.Duration("ack-wait") <= 0 {
			return nil, usage("--ack-wait takes a positive duration, with --ack")
		}
		q.Set("ack_wait", c.Duration("ack-wait").String())
	}
	if c.Int("count") < 0 {
		return nil, usage("--count must be 0 or more, got %d", c.Int("count"))
	}
	return q, nil
}
