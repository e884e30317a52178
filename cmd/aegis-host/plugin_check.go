package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/host/conformance"
)

func pluginTestCommand() *cli.Command {
	return &cli.Command{
		Name:         "test",
		Usage:        "Check plugins against the ABI with the conformance suite",
		ArgsUsage:    "FILE...",
		OnUsageError: onUsageError,
		Description: "Loads each module as a step would, then runs every step kind it implements\n" +
			"through the ABI's conformance suite: empty, large and repeated batches, a\n" +
			"1 MiB event, unicode, binary and every data kind, output that is the same\n" +
			"for the same input, an instance that outlives a thousand calls and its\n" +
			"events' failures, and for aggregates merges that agree with one\n" +
			"accumulation. Per-event errors pass; a trap, a bad result or a failed call\n" +
			"does not. Prints one line per check; exits 1 if a check failed.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "with", Usage: "the plugins' configuration, a JSON `OBJECT` (as a step's with:)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError{err: fmt.Errorf("test takes one or more FILEs"), helpName: c.Command.HelpName}
			}
			var config []byte
			if w := c.String("with"); w != "" {
				config = []byte(w)
			}
			// Plugins' warnings only: the suite makes them fail on purpose.
			h, err := host.New(host.Options{Logger: slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelError}))})
			if err != nil {
				return err
			}
			defer h.Close(c.Context)
			var failed []string
			for _, file := range c.Args().Slice() {
				wasm, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				r := conformance.Run(c.Context, h, wasm, conformance.Options{Name: strings.TrimSuffix(filepath.Base(file), ".wasm"), Config: config})
				if err := r.Write(c.App.Writer); err != nil {
					return err
				}
				if !r.Passed() {
					failed = append(failed, file)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d plugins failed the conformance suite: %s", len(failed), c.NArg(), strings.Join(failed, ", "))
			}
			return nil
		},
	}
}
