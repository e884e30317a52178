package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/telemetry"
	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/host"
)

// Hooks the tests replace: where stdin comes from, and what a second
// signal does (exit at once).
var (
	stdinReader io.Reader = os.Stdin
	forceExit             = func() { os.Exit(130) }
)

// fileFlag is the manifest flag of run and validate. It is checked by
// manifestFile rather than marked Required: urfave/cli reports a missing
// required flag as a plain error (exit 1) after printing the help to
// stdout, where a usage error belongs on stderr with exit code 2.
func fileFlag() cli.Flag {
	return &cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "the pipeline manifest `FILE` (YAML; required)"}
}

// manifestFile returns the --file of a command, which takes no arguments.
func manifestFile(c *cli.Context) (string, error) {
	if c.NArg() > 0 {
		return "", usageError{err: fmt.Errorf("%s takes no arguments, got %q", c.Command.Name, c.Args().First()), helpName: c.Command.HelpName}
	}
	file := c.String("file")
	if file == "" {
		return "", usageError{err: errors.New(`required flag "file" not set: -f FILE names the manifest`), helpName: c.Command.HelpName}
	}
	return file, nil
}

// lockedWriter serializes writes to a stream that several goroutines of a
// run write to: sinks, the engine's and the host's loggers (two slog
// handlers, each with its own lock), the status line and the signal
// handler. Its lock may be shared with other writers of the same stream.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// lockStdio makes the app's stdout and stderr safe for concurrent writes.
func lockStdio(c *cli.Context) {
	if _, ok := c.App.Writer.(*lockedWriter); !ok {
		c.App.Writer = &lockedWriter{mu: new(sync.Mutex), w: c.App.Writer}
	}
	if _, ok := c.App.ErrWriter.(*lockedWriter); !ok {
		c.App.ErrWriter = &lockedWriter{mu: new(sync.Mutex), w: c.App.ErrWriter}
	}
}

// isTerminal reports whether w (behind a lockedWriter) is a terminal.
func isTerminal(w io.Writer) bool {
	if l, ok := w.(*lockedWriter); ok {
		w = l.w
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// apiListenFlag is --api-listen of run and validate.
func apiListenFlag() cli.Flag {
	return &cli.StringFlag{Name: "api-listen", Usage: "serve the channels over HTTP on `ADDR` (host:port), over the manifest's api.listen; without an api block, an API without tokens, so on a loopback address only"}
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:         "run",
		Usage:        "Run the pipelines of a manifest",
		OnUsageError: onUsageError,
		Description: "Checks the manifest, loads its plugins, and runs its pipelines until their\n" +
			"sources end (a pipeline reading a persistent channel: once the pipelines\n" +
			"writing to it have ended and it has caught up). SIGINT or SIGTERM stops the\n" +
			"sources, lets the batches in flight through to the sinks, fires the windows\n" +
			"that are complete and exits 0; a second signal exits at once. On a terminal\n" +
			"a status line shows events in and out per step; otherwise a summary is\n" +
			"logged every --status interval.\n\n" +
			"With an API (the manifest's api block, or --api-listen), the channels are\n" +
			"served over HTTP from the start of the run, and the run goes on until\n" +
			"SIGINT or SIGTERM, also when every pipeline has ended: API clients publish\n" +
			"to the channels, so none ends under them. On the signal the API shuts down\n" +
			"first, then the pipelines that read channels drain and end.",
		Flags: []cli.Flag{
			fileFlag(),
			&cli.DurationFlag{Name: "status", Value: 10 * time.Second, Usage: "how often to log progress when stderr is not a terminal (0: never)"},
			apiListenFlag(),
		},
		Action: func(c *cli.Context) error {
			file, err := manifestFile(c)
			if err != nil {
				return err
			}
			lockStdio(c)
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			// Until runManifest returns, ctx ends only with a signal (or
			// the caller's context). The watcher is waited for, so that it
			// never writes after the command returned: a watcher that had
			// not started when a fast run (a manifest error) ended would
			// otherwise see both finished and the ctx that stop cancels,
			// and could announce a stop that never was.
			finished := make(chan struct{})
			var watcher sync.WaitGroup
			watcher.Go(func() {
				select {
				case <-ctx.Done():
				case <-finished:
					return
				}
				if c.Context.Err() != nil {
					return
				}
				sig := make(chan os.Signal, 1)
				signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
				defer signal.Stop(sig)
				fmt.Fprintf(c.App.ErrWriter, "%s: stopping: draining the batches in flight (signal again to exit at once)\n", appName)
				select {
				case <-sig:
					forceExit()
				case <-finished:
				}
			})
			err = runManifest(c, file, ctx)
			close(finished)
			watcher.Wait()
			return err
		},
	}
}

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:         "validate",
		Usage:        "Check a manifest and load its plugins without running anything",
		OnUsageError: onUsageError,
		Flags:        []cli.Flag{fileFlag(), apiListenFlag()},
		Action: func(c *cli.Context) error {
			file, err := manifestFile(c)
			if err != nil {
				return err
			}
			lockStdio(c)
			d, h, err := prepare(c, file, true)
			if err != nil {
				return err
			}
			defer h.Close(c.Context)
			if err := d.close(c.Context); err != nil {
				return err
			}
			n := 0
			for _, p := range d.m.Pipelines {
				n += len(p.Steps)
			}
			api := ""
			if d.m.API != nil {
				api = ", api on " + d.m.API.Listen
			}
			fmt.Fprintf(c.App.Writer, "%s: ok: %d pipeline(s), %d step(s), %d plugin(s)%s\n", d.m.File, len(d.m.Pipelines), n, len(d.plugins), api)
			return nil
		},
	}
}

func schemaCommand() *cli.Command {
	return &cli.Command{
		Name:         "schema",
		Usage:        "Print the JSON Schema of pipeline manifests (for editors)",
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			_, err := c.App.Writer.Write(manifest.Schema())
			return err
		},
	}
}

// prepare loads the manifest in file and deploys it; dry (validate) opens
// no source or sink (see deploy).
//
// A run's telemetry starts here (validate only checks its settings); the
// deployment holds it, and runManifest shuts it down after the run. Logs
// at warn and above during a traced call become events of its span.
func prepare(c *cli.Context, file string, dry bool) (*deployment, *host.Host, error) {
	m, err := manifest.Load(file)
	if err != nil {
		return nil, nil, err
	}
	if addr := c.String("api-listen"); addr != "" {
		if err := m.SetAPIListen(addr); err != nil {
			return nil, nil, usageError{err: fmt.Errorf("--api-listen %s: %w", addr, err), helpName: c.Command.HelpName}
		}
	}
	log := slog.New(telemetry.SpanEvents(slog.NewTextHandler(c.App.ErrWriter, nil)))
	std := stdio{in: stdinReader, out: c.App.Writer, outMu: new(sync.Mutex)}
	var tel *telemetry.Telemetry
	if dry {
		err = telemetry.Check(m.Telemetry, os.Getenv)
	} else {
		tel, err = telemetry.Start(c.Context, m.Telemetry, telemetry.Options{Version: buildVersion(),
			// The stdout exporters write under the lock the stdout sinks
			// hold while they write a batch, so that spans never land
			// inside a sink's line.
			Stdout: &lockedWriter{w: c.App.Writer, mu: std.outMu}, Log: log})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", m.File, err)
	}
	h, err := host.New(host.Options{Logger: log})
	if err == nil {
		var d *deployment
		if d, err = deploy(c.Context, m, h, std, log, tel, dry); err == nil {
			return d, h, nil
		}
		h.Close(c.Context)
	}
	if tel != nil {
		shutdownTelemetry(c, tel, log)
	}
	return nil, nil, err
}

// telemetryShutdown bounds the final export of spans and metrics: a
// collector that cannot be reached does not keep aegis-host from exiting.
const telemetryShutdown = 5 * time.Second

// shutdownTelemetry flushes and stops tel; a failure to export is logged,
// not the run's error.
func shutdownTelemetry(c *cli.Context, tel *telemetry.Telemetry, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), telemetryShutdown)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn("telemetry shutdown", "error", err)
	}
}

func runManifest(c *cli.Context, file string, stop context.Context) error {
	d, h, err := prepare(c, file, false)
	if err != nil {
		return err
	}
	defer h.Close(c.Context)
	if d.api != nil {
		fmt.Fprintf(c.App.ErrWriter, "%s: api listening on %s\n", appName, d.api.url())
	}
	began := time.Now()
	done := make(chan struct{})
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		reportStatus(c, d, done, began)
	}()
	err = d.run(stop)
	close(done)
	<-statusDone
	if cerr := d.close(c.Context); err == nil {
		err = cerr
	}
	shutdownTelemetry(c, d.tel, d.log)
	elapsed := time.Since(began)
	for _, s := range d.stats() {
		fmt.Fprintf(c.App.ErrWriter, "%s: %s\n", appName, summary(s, elapsed))
	}
	if rss := peakRSS(); rss > 0 {
		fmt.Fprintf(c.App.ErrWriter, "%s: ran %s, peak RSS %.1f MiB\n", appName, elapsed.Round(time.Millisecond), float64(rss)/(1<<20))
	}
	return err
}

// reportStatus keeps a status line on a terminal, or logs a summary every
// --status, until done.
func reportStatus(c *cli.Context, d *deployment, done <-chan struct{}, began time.Time) {
	tty := isTerminal(c.App.ErrWriter)
	every := c.Duration("status")
	if tty {
		every = 500 * time.Millisecond
	}
	if every <= 0 {
		<-done
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			if tty {
				fmt.Fprint(c.App.ErrWriter, "\r\033[K")
			}
			return
		case <-t.C:
		}
		var lines []string
		for _, s := range d.stats() {
			lines = append(lines, summary(s, time.Since(began)))
		}
		if tty {
			fmt.Fprintf(c.App.ErrWriter, "\r\033[K%s", strings.Join(lines, "  ||  "))
		} else {
			for _, l := range lines {
				fmt.Fprintf(c.App.ErrWriter, "%s: %s\n", appName, l)
			}
		}
	}
}

// summary is one pipeline's counters on one line:
//
//	orders: in 100000 | filter 100000>75000 fuel/event 1021 | map 75000>75000 fuel/event 76543 | out 75000 | 1.2s, 83333 events/s
func summary(s engine.PipelineStats, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: in %d", s.Name, s.In)
	for _, st := range s.Stages {
		fmt.Fprintf(&b, " | %s %d>%d", st.Name, st.In, st.Out)
		if st.Failed > 0 {
			fmt.Fprintf(&b, " failed %d", st.Failed)
		}
		if st.Skipped > 0 {
			fmt.Fprintf(&b, " skipped %d", st.Skipped)
		}
		if st.DeadLetter > 0 {
			fmt.Fprintf(&b, " dead-lettered %d", st.DeadLetter)
		}
		if st.Retries > 0 {
			fmt.Fprintf(&b, " retries %d", st.Retries)
		}
		if st.Late > 0 {
			fmt.Fprintf(&b, " late %d", st.Late)
		}
		if st.Fuel > 0 && st.In > 0 {
			fmt.Fprintf(&b, " fuel/event %d", st.Fuel/st.In)
		}
	}
	fmt.Fprintf(&b, " | out %d | %s, %.0f events/s", s.Out, elapsed.Round(time.Millisecond), float64(s.In)/elapsed.Seconds())
	return b.String()
}
