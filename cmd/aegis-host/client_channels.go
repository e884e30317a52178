package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/aegis-streaming/aegis/httpapi"
)

func channelsCommand() *cli.Command {
	return &cli.Command{
		Name:         "channels",
		Usage:        "List, create, inspect and delete the channels of a host's API",
		ArgsUsage:    "[create|delete|info NAME]",
		OnUsageError: onUsageError,
		Description: "Without a subcommand, lists the channels the token may see: name,\n" +
			"persistent, events published, subscribers and lag (--json: as JSON).",
		Flags: withClientFlags(&cli.BoolFlag{Name: "json", Usage: "print the list as JSON"}),
		Subcommands: []*cli.Command{
			channelsCreateCommand(),
			channelsDeleteCommand(),
			channelsInfoCommand(),
		},
		Action: func(c *cli.Context) error {
			args, err := interspersed(c)
			if err != nil {
				return err
			}
			if len(args) > 0 {
				return usageError{err: fmt.Errorf("unknown command %q: channels takes create, delete or info", args[0]), helpName: c.Command.HelpName}
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := requestContext(c)
			defer cancel()
			list, err := cl.Channels(ctx)
			if err != nil {
				return apiError(err)
			}
			if c.Bool("json") {
				return printJSON(c, httpapi.ChannelList{Channels: list})
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPERSISTENT\tPUBLISHED\tSUBSCRIBERS\tLAG")
			for _, ch := range list {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", ch.Name, strconv.FormatBool(ch.Persistent), ch.Stats.Published, ch.Stats.Subscribers, ch.Stats.Lag)
			}
			return tw.Flush()
		},
	}
}

func channelsCreateCommand() *cli.Command {
	return &cli.Command{
		Name:         "create",
		Usage:        "Create a channel (admin) and print it as JSON",
		ArgsUsage:    "NAME",
		OnUsageError: onUsageError,
		Flags: withClientFlags(
			&cli.BoolFlag{Name: "persistent", Usage: "a persistent channel (the host needs a store for them)"},
			&cli.IntFlag{Name: "buffer", Usage: "`N` events each subscription may hold (0: the host's default)"},
			&cli.IntFlag{Name: "max-events", Usage: "the newest `N` events are retained (0: the default)"},
			&cli.DurationFlag{Name: "max-age", Usage: "events older than `DURATION` are dropped from the history (0: no limit)"},
		),
		Action: func(c *cli.Context) error {
			name, err := oneArg(c, "one NAME")
			if err != nil {
				return err
			}
			if c.Int("buffer") < 0 || c.Int("max-events") < -1 || c.Duration("max-age") < 0 {
				return usageError{err: fmt.Errorf("--buffer, --max-events and --max-age cannot be negative (--max-events -1: keep no history)"), helpName: c.Command.HelpName}
			}
			spec := httpapi.ChannelSpec{Name: name, Persistent: c.Bool("persistent"), Buffer: c.Int("buffer")}
			if c.IsSet("max-events") || c.IsSet("max-age") {
				spec.Retention = &httpapi.RetentionSpec{MaxEvents: c.Int("max-events"), MaxAge: httpapi.Duration(c.Duration("max-age"))}
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := requestContext(c)
			defer cancel()
			info, err := cl.CreateChannel(ctx, spec)
			if err != nil {
				return apiError(err)
			}
			return printJSON(c, info)
		},
	}
}

func channelsDeleteCommand() *cli.Command {
	return channelCommand("delete", "Delete a channel and its history (admin)", func(c *cli.Context, ctx context.Context, cl *httpapi.Client, name string) error {
		return cl.DeleteChannel(ctx, name)
	})
}

func channelsInfoCommand() *cli.Command {
	return channelCommand("info", "Print a channel's settings and counters as JSON", func(c *cli.Context, ctx context.Context, cl *httpapi.Client, name string) error {
		info, err := cl.Channel(ctx, name)
		if err != nil {
			return err
		}
		return printJSON(c, info)
	})
}

// channelCommand is a channels subcommand that does one request about the
// channel NAME; an API error it returns prints as such.
func channelCommand(name, usage string, do func(c *cli.Context, ctx context.Context, cl *httpapi.Client, name string) error) *cli.Command {
	return &cli.Command{
		Name:         name,
		Usage:        usage,
		ArgsUsage:    "NAME",
		OnUsageError: onUsageError,
		Flags:        clientFlags(),
		Action: func(c *cli.Context) error {
			channel, err := oneArg(c, "one NAME")
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := requestContext(c)
			defer cancel()
			if err := do(c, ctx, cl, channel); err != nil {
				return apiError(err)
			}
			return nil
		},
	}
}

// printJSON prints v as indented JSON.
func printJSON(c *cli.Context, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = c.App.Writer.Write(append(b, '\n'))
	return err
}
