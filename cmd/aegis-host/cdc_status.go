package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
)

// statusTimeout bounds how long cdc status waits for one source's
// database.
const statusTimeout = 10 * time.Second

func cdcCommand() *cli.Command {
	return &cli.Command{
		Name:         "cdc",
		Usage:        "Inspect change data capture sources",
		OnUsageError: onUsageError,
		Subcommands:  []*cli.Command{cdcStatusCommand()},
	}
}

// sourceStatus is one source's line of cdc status --json: where it
// stands, or why that is unknown.
type sourceStatus struct {
	cdc.PostgresStatus
	Error string `json:"error,omitempty"`
}

func cdcStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "Show where the postgres-cdc sources of a manifest stand: slot, lag, publication, snapshot",
		Description: "Connects to the database of every postgres-cdc source of the manifest and\n" +
			"shows its replication slot (whether it exists, whether a run is reading\n" +
			"it, its confirmed position), the server's current WAL position and the lag\n" +
			"between the two (WAL the slot keeps from being recycled), the slot's WAL\n" +
			"status, the publication and its tables, and the source's own state (its\n" +
			"snapshot, the position it last confirmed, when). Nothing is created or\n" +
			"changed. Exits 1 if a database cannot be reached.",
		OnUsageError: onUsageError,
		Flags: []cli.Flag{
			fileFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array, one object per source"},
		},
		Action: func(c *cli.Context) error {
			file, err := manifestFile(c)
			if err != nil {
				return err
			}
			m, err := manifest.Load(file)
			if err != nil {
				return err
			}
			var names []string
			for name, s := range m.Sources {
				if s.Type == "postgres-cdc" {
					names = append(names, name)
				}
			}
			slices.Sort(names)
			if len(names) == 0 {
				if c.Bool("json") {
					fmt.Fprintln(c.App.Writer, "[]")
				}
				fmt.Fprintf(c.App.ErrWriter, "%s: %s has no postgres-cdc source\n", appName, file)
				return nil
			}
			out := make([]sourceStatus, len(names))
			var errs []error
			for i, name := range names {
				out[i], err = postgresStatus(c.Context, m, name)
				if err != nil {
					errs = append(errs, fmt.Errorf("source %s: %w", name, err))
				}
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else if err := statusTable(c.App.Writer, out); err != nil {
				return err
			}
			return errors.Join(errs...)
		},
	}
}

// postgresStatus asks a postgres-cdc source's database where the source
// stands.
func postgresStatus(ctx context.Context, m *manifest.Manifest, name string) (sourceStatus, error) {
	cfg, err := postgresConfig(m, name, m.Sources[name], nil)
	if err != nil {
		return sourceStatus{Error: err.Error()}, err
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	st, err := cdc.Status(ctx, cfg)
	if err != nil {
		err = fmt.Errorf("cannot get its status from the database (is it reachable?): %w", err)
		return sourceStatus{PostgresStatus: st, Error: err.Error()}, err
	}
	return sourceStatus{PostgresStatus: st}, nil
}

// statusTable writes the statuses as a table, one line per source.
func statusTable(w io.Writer, out []sourceStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tSLOT\tEXISTS\tACTIVE\tCONFIRMED\tCURRENT WAL\tLAG\tWAL STATUS\tPUBLICATION\tTABLES\tSNAPSHOT\tLAST CONFIRMED\tUPDATED")
	for _, s := range out {
		if s.Error != "" && s.CurrentWAL == "" {
			fmt.Fprintf(tw, "%s\t%s\t?\t?\t-\t-\t-\t-\t%s\t-\t%s\t%s\t%s\n", s.Name, s.Slot, s.Publication,
				dash(s.Snapshot), dash(s.LastConfirmed), updated(s.Updated))
			continue
		}
		lag := "-"
		if s.SlotExists {
			lag = humanBytes(s.LagBytes)
		}
		active := yesNo(s.Active)
		if s.ActivePID != 0 {
			active += " (pid " + strconv.Itoa(s.ActivePID) + ")"
		}
		pub := s.Publication
		if !s.PublicationExists {
			pub += " (missing)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			s.Name, s.Slot, yesNo(s.SlotExists), active, dash(s.Confirmed), s.CurrentWAL, lag, dash(s.WALStatus),
			pub, dash(strings.Join(s.Tables, ",")), dash(s.Snapshot), dash(s.LastConfirmed), updated(s.Updated))
	}
	return tw.Flush()
}

// humanBytes is a byte count as "1.5 MiB (1572864 bytes)", or "0 bytes".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " bytes"
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", v, "KMGTP"[i], n)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func updated(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
