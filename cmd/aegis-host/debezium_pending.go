//go:build !aegis_debezium

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/engine"
)

// openDebezium would open a debezium source (see debezium.go, built with
// the tag aegis_debezium): package cdc has no Debezium intake yet.
func openDebezium(_ context.Context, _ *manifest.Manifest, name string, _ manifest.Source, _ stdio, _ engine.Sink, _ *slog.Logger) (engine.Source, error) {
	return nil, errors.New("the debezium source type is not in this build yet")
}
