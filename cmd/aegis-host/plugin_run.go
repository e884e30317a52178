package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/aegis-streaming/aegis/abi"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/internal/orders"
)

func pluginRunCommand() *cli.Command {
	return &cli.Command{
		Name:         "run",
		Usage:        "Run events through filter and map plugins, in order, and print the results",
		ArgsUsage:    "FILE...",
		OnUsageError: onUsageError,
		Description: "Reads events as JSON lines from stdin (the form `aegis-host` prints), or\n" +
			"generates the orders workload with --orders, passes them in batches through\n" +
			"each plugin in turn, and prints the events that come out as JSON lines, with\n" +
			"a summary on stderr. A quick way to try a plugin; pipelines are for real work.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "orders", Usage: "generate `N` events of the orders workload instead of reading stdin"},
			&cli.IntFlag{Name: "batch", Value: 256, Usage: "events per batch"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print the summary only"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError{err: errors.New("run takes one or more plugin FILEs"), helpName: c.Command.HelpName}
			}
			batchSize := c.Int("batch")
			if batchSize < 1 {
				return usageError{err: fmt.Errorf("--batch must be at least 1, got %d", batchSize), helpName: c.Command.HelpName}
			}
			h, err := newHost(c)
			if err != nil {
				return err
			}
			defer h.Close(c.Context)
			var steps []*host.Plugin
			defer func() {
				for _, p := range steps {
					p.Close(c.Context)
				}
			}()
			for _, file := range c.Args().Slice() {
				p, err := h.LoadFile(c.Context, file, host.StepConfig{})
				if err != nil {
					return err
				}
				steps = append(steps, p)
				if p.Kind() != abi.KindFilter && p.Kind() != abi.KindMap {
					return fmt.Errorf("plugin[%s] is a %s; run takes filters and maps", p.Name(), p.Kind())
				}
			}
			var next func() (engine.Event, error)
			if n := c.Int("orders"); n > 0 {
				start, i := time.Now().UnixNano(), 0
				next = func() (engine.Event, error) {
					if i == n {
						return engine.Event{}, io.EOF
					}
					i++
					return orders.Event(i-1, start), nil
				}
			} else {
				dec := json.NewDecoder(bufio.NewReader(os.Stdin))
				line := 0
				next = func() (engine.Event, error) {
					var e engine.Event
					line++
					if err := dec.Decode(&e); err != nil {
						if err == io.EOF {
							return e, err
						}
						return e, fmt.Errorf("stdin: event %d: %w", line, err)
					}
					if err := e.Validate(); err != nil {
						return e, fmt.Errorf("stdin: event %d: %w", line, err)
					}
					if e.ID.IsZero() {
						e.ID = engine.NewEventID()
					}
					return e, nil
				}
			}
			return runSteps(c, steps, next, batchSize)
		},
	}
}

// runSteps passes the events of next through steps in batches and prints
// what comes out.
func runSteps(c *cli.Context, steps []*host.Plugin, next func() (engine.Event, error), batchSize int) error {
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	enc := json.NewEncoder(w)
	quiet := c.Bool("quiet")
	var in, out []engine.Event
	var nIn, nOut, nFailed int
	began := time.Now()
	flush := func() error {
		nIn += len(in)
		cur := in
		for _, p := range steps {
			var err error
			out, err = p.Process(c.Context, cur, out[:0])
			var ee *engine.EventErrors
			if errors.As(err, &ee) {
				nFailed += len(ee.Errors)
				fmt.Fprintf(c.App.ErrWriter, "%s: %v\n", appName, err)
			} else if err != nil {
				return err
			}
			cur, out = out, cur[:0:0]
			if len(cur) == 0 {
				break
			}
		}
		nOut += len(cur)
		if !quiet {
			for i := range cur {
				if err := enc.Encode(&cur[i]); err != nil {
					return err
				}
			}
		}
		in = in[:0]
		return nil
	}
	for {
		e, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		in = append(in, e)
		if len(in) == batchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	elapsed := time.Since(began)
	names := make([]string, len(steps))
	for i, p := range steps {
		names[i] = strings.TrimSuffix(filepath.Base(p.Name()), ".wasm")
	}
	fmt.Fprintf(c.App.ErrWriter, "%s: %d events in, %d out, %d failed through %s in %s (%.0f events/s)\n",
		appName, nIn, nOut, nFailed, strings.Join(names, " -> "), elapsed.Round(time.Millisecond), float64(nIn)/elapsed.Seconds())
	return nil
}
