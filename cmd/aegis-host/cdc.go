package main

import (
	"fmt"
	"log/slog"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
)

// postgresConfig is the configuration of a postgres-cdc source: its state
// file under the data directory (cdc/NAME.json), its slot and publication
// as Load defaulted them, and log for its warnings.
func postgresConfig(m *manifest.Manifest, name string, s manifest.Source, log *slog.Logger) (cdc.PostgresConfig, error) {
	tables, err := cdcTables(s.Tables)
	if err != nil {
		return cdc.PostgresConfig{}, err
	}
	return cdc.PostgresConfig{
		Name: name, DSN: s.DSN, Slot: s.Slot, Publication: s.Publication,
		Tables: tables, Snapshot: s.Snapshot,
		StateFile:      m.DataPath("cdc", name+".json"),
		Config:         cdcConfig(s),
		StatusInterval: s.StatusInterval.D(),
		Logger:         log,
	}, nil
}

// cdcConfig is how a postgres-cdc or debezium source batches and shapes
// its changes.
func cdcConfig(s manifest.Source) cdc.Config {
	return cdc.Config{
		BatchSize:     s.BatchSize,
		BatchTimeout:  s.BatchTimeout.D(),
		IncludeBefore: s.IncludeBefore == nil || *s.IncludeBefore,
	}
}

// cdcTables converts a source's tables.
func cdcTables(tables []manifest.Table) ([]cdc.TableConfig, error) {
	out := make([]cdc.TableConfig, len(tables))
	for i, t := range tables {
		out[i] = cdc.TableConfig{Table: t.Table, Columns: t.Columns, Filter: t.Filter}
		for _, c := range t.Changes {
			ct, err := cdc.ParseChangeType(c)
			if err != nil {
				return nil, fmt.Errorf("tables[%d]: %w", i, err)
			}
			out[i].Types = append(out[i].Types, ct)
		}
	}
	return out, nil
}
