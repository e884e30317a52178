package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
)

func publishCommand() *cli.Command {
	return &cli.Command{
		Name:         "publish",
		Usage:        "Publish events to a channel of a host's API",
		ArgsUsage:    "CHANNEL",
		OnUsageError: onUsageError,
		Description: "Publishes one event built from --type, --source, --data and --meta, or with\n" +
			"-f the events of a file (- for stdin), one JSON event a line in the form\n" +
			"aegis-host prints them ({\"type\":...,\"data\":{\"kind\":\"json\",\"value\":...}}),\n" +
			"sent in requests of --batch lines. Prints the events' IDs, one a line.",
		Flags: withClientFlags(
			&cli.StringFlag{Name: "type", Usage: "the event's `TYPE` (required without -f)"},
			&cli.StringFlag{Name: "source", Usage: "the event's `SOURCE`"},
			&cli.StringFlag{Name: "data", Usage: "the event's data, as `JSON`"},
			metaFlag("a metadata attribute `KEY=VALUE` (repeatable)"),
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "publish the NDJSON events of `FILE` (- for stdin)"},
			&cli.IntFlag{Name: "batch", Value: 1000, Usage: "`N` events per request with -f"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "do not print the IDs"},
		),
		Action: func(c *cli.Context) error {
			channel, err := oneArg(c, "one CHANNEL")
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			printIDs := func(ids []engine.EventID) {
				if c.Bool("quiet") {
					return
				}
				var b bytes.Buffer
				for _, id := range ids {
					b.WriteString(id.String())
					b.WriteByte('\n')
				}
				c.App.Writer.Write(b.Bytes())
			}
			if file := c.String("file"); file != "" {
				for _, f := range []string{"type", "source", "data", "meta"} {
					if c.IsSet(f) {
						return usageError{err: fmt.Errorf("--%s builds one event: not with -f, whose lines are whole events", f), helpName: c.Command.HelpName}
					}
				}
				if c.Int("batch") < 1 {
					return usageError{err: fmt.Errorf("--batch must be at least 1, got %d", c.Int("batch")), helpName: c.Command.HelpName}
				}
				return publishFile(c, cl, channel, file, printIDs)
			}
			ev, err := flagEvent(c)
			if err != nil {
				return err
			}
			ctx, cancel := requestContext(c)
			defer cancel()
			ids, err := cl.Publish(ctx, channel, ev)
			if err != nil {
				return apiError(err)
			}
			printIDs(ids)
			return nil
		},
	}
}

// flagEvent is the event --type, --source, --data and --meta describe.
func flagEvent(c *cli.Context) (engine.Event, error) {
	var ev engine.Event
	if c.String("type") == "" {
		return ev, usageError{err: errors.New("--type is required (or -f FILE of events)"), helpName: c.Command.HelpName}
	}
	ev.Type, ev.Source = engine.EventType(c.String("type")), c.String("source")
	if c.IsSet("data") {
		d, err := engine.JSONData([]byte(c.String("data")))
		if err != nil {
			return ev, usageError{err: fmt.Errorf("--data: %w", err), helpName: c.Command.HelpName}
		}
		ev.Data = d
	}
	meta, err := parseMeta(c, "meta")
	if err != nil {
		return ev, err
	}
	ev.Metadata = meta
	return ev, nil
}

// publishBatchBytes bounds a request of publish -f: it is sent when it
// reaches this size even before --batch lines.
const publishBatchBytes = 4 << 20

// publishFile publishes the NDJSON events of file ("-": stdin) in
// requests of --batch lines (at most publishBatchBytes), printing the IDs of
// each as it is answered.
func publishFile(c *cli.Context, cl *httpapi.Client, channel, file string, printIDs func([]engine.EventID)) error {
	var in io.Reader = stdinReader
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	r := bufio.NewReaderSize(in, 64<<10)
	size := c.Int("batch")
	var buf bytes.Buffer
	line, first, n, published := 0, 0, 0, 0
	send := func() error {
		if n == 0 {
			return nil
		}
		ctx, cancel := requestContext(c)
		defer cancel()
		ids, err := cl.PublishNDJSON(ctx, channel, bytes.NewReader(buf.Bytes()))
		if err != nil {
			name := file
			if name == "-" {
				name = "stdin"
			}
			return fmt.Errorf("%w (the request of %s lines %d to %d; %d events published before it)", apiError(err), name, first, line, published)
		}
		printIDs(ids)
		published += len(ids)
		buf.Reset()
		n = 0
		return nil
	}
	for {
		b, err := r.ReadBytes('\n')
		if len(b) > 0 {
			line++
			if len(bytes.TrimSpace(b)) > 0 {
				if n == 0 {
					first = line
				}
				buf.Write(bytes.TrimRight(b, "\r\n"))
				buf.WriteByte('\n')
				// A request of --batch lines, or of publishBatchBytes, well
				// under the host's default body limit (16 MiB).
				if n++; n == size || buf.Len() >= publishBatchBytes {
					if err := send(); err != nil {
						return err
					}
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return send()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
}
