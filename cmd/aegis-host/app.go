package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

const appName = "aegis-host"

// Exit codes returned by run.
const (
	exitOK    = 0 // success
	exitError = 1 // the command ran and failed
	exitUsage = 2 // the command line was wrong: unknown command or flag, bad argument
)

// usageError marks an error in how the CLI was invoked, as opposed to an
// error of the command that ran. It maps to exitUsage. helpName is the
// command whose help the user is pointed to ("aegis-host version"); empty
// means the app itself.
type usageError struct {
	err      error
	helpName string
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// run executes the CLI with args (args[0] is the program name) and returns the
// process exit code. It never exits the process itself and writes only to
// stdout and stderr, so it is safe to call from tests.
func run(args []string, stdout, stderr io.Writer) int {
	// unknownHelpTopic records "aegis-host help <unknown>": urfave/cli reports
	// it through CommandNotFound rather than as an error.
	var unknownHelpTopic string

	app := newApp(stdout, stderr)
	app.CommandNotFound = func(_ *cli.Context, name string) { unknownHelpTopic = name }

	err := app.RunContext(context.Background(), args)
	if err == nil && unknownHelpTopic != "" {
		err = usageError{err: fmt.Errorf("unknown command %q", unknownHelpTopic)}
	}
	return report(err, stderr)
}

// report prints err, if any, to stderr and returns the exit code for it:
// exitOK for nil, exitUsage for a usageError, the code of a cli.ExitCoder,
// exitError for anything else.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var usage usageError
	if errors.As(err, &usage) {
		helpName := usage.helpName
		if helpName == "" {
			helpName = appName
		}
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", appName, err, helpName)
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s: %v\n", appName, err)
	var coder cli.ExitCoder
	if errors.As(err, &coder) && coder.ExitCode() != 0 {
		return coder.ExitCode()
	}
	return exitError
}

// newApp builds a fresh *cli.App on every call and modifies nothing
// package-level. (urfave/cli v2 itself fills in its shared help command the
// first time it runs, so do not call run from several goroutines at once.)
func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  appName,
		Usage: "stream processing host: pub/sub, change data capture and WebAssembly steps",
		Description: "aegis-host runs stream processing pipelines. Events arrive on channels\n" +
			"(in-memory or durable) and from change data capture sources such as\n" +
			"PostgreSQL logical replication. The processing steps (filter, map,\n" +
			"aggregate) are WebAssembly modules run in a sandbox behind a versioned ABI:\n" +
			"write them in any language that compiles to wasm and load them without\n" +
			"rebuilding the host.",
		Version:   buildVersion(),
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed, and mapped to an exit code, by run once the app
		// returns; urfave/cli must neither print them nor call os.Exit.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		Action:         rootAction,
		Commands: []*cli.Command{
			versionCommand(),
			pluginCommand(),
			runCommand(),
			validateCommand(),
			schemaCommand(),
			cdcCommand(),
			publishCommand(),
			subscribeCommand(),
			channelsCommand(),
		},
	}
}

// rootAction runs when no command matched: without arguments it shows help,
// with arguments the first one is an unknown command.
func rootAction(c *cli.Context) error {
	if !c.Args().Present() {
		return cli.ShowAppHelp(c)
	}
	return usageError{err: fmt.Errorf("unknown command %q", c.Args().First())}
}

// onUsageError turns flag parsing errors (unknown flag, bad value) into
// usageErrors for the app and every command.
func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	u := usageError{err: err}
	if isSubcommand {
		u.helpName = c.Command.HelpName
	}
	return u
}
