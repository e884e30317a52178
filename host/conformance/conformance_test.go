package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/host"
	"github.com/aegis-streaming/aegis/host/conformance"
	"github.com/aegis-streaming/aegis/internal/plugintest"
)

func newHost(t *testing.T) *host.Host {
	t.Helper()
	h, err := host.New(host.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h
}

// TestConformingPlugins: the orders plugins in Go and WAT pass every check
// of every kind they implement.
func TestConformingPlugins(t *testing.T) {
	h := newHost(t)
	for _, tt := range []struct {
		plugin string
		checks int
	}{
		{"orders/filter", 11}, {"orders/map", 11}, {"orders/aggregate", 13},
		{"wat/orders_filter", 11}, {"wat/orders_map", 11}, {"wat/event_errors", 11},
	} {
		t.Run(tt.plugin, func(t *testing.T) {
			t.Parallel()
			r := conformance.Run(context.Background(), h, plugintest.Bytes(t, tt.plugin), conformance.Options{Name: tt.plugin})
			var out bytes.Buffer
			r.Write(&out)
			if !r.Passed() || len(r.Results) != tt.checks {
				t.Errorf("passed %v with %d checks, want all %d to pass:\n%s", r.Passed(), len(r.Results), tt.checks, &out)
			}
			if !strings.HasSuffix(out.String(), "all "+strconv.Itoa(tt.checks)+" checks passed\n") {
				t.Errorf("report does not end with the summary:\n%s", &out)
			}
		})
	}
}

// TestNonConformingPlugins: each misbehaving plugin fails the check that
// shows its fault, with the host's typed error.
func TestNonConformingPlugins(t *testing.T) {
	h := newHost(t)
	for _, tt := range []struct {
		plugin string
		check  string // the first check to fail
		err    error
	}{
		{"wat/trap", "filter: orders batch", host.ErrTrap},
		{"wat/garbage_result", "filter: orders batch", host.ErrBadResult},
		{"wat/oob_result", "filter: orders batch", host.ErrBadResult},
		{"wat/bad_index_result", "filter: orders batch", host.ErrBadResult},
		{"wat/status_failed", "filter: orders batch", host.ErrFailed},
		{"wat/memory_bomb", "filter: orders batch", host.ErrTrap},
		{"wat/loop", "filter: orders batch", host.ErrDeadline},
		{"wat/missing_export", "load", host.ErrMissingExport},
		{"wat/missing_alloc", "load", host.ErrMissingExport},
		{"wat/wrong_version", "load", host.ErrABIVersion},
		{"wat/bad_signature", "load", host.ErrBadSignature},
		{"wat/bad_import", "load", host.ErrBadImport},
	} {
		t.Run(tt.plugin, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := conformance.Run(context.Background(), h, plugintest.Bytes(t, tt.plugin),
				conformance.Options{Name: tt.plugin, Limits: host.Limits{Timeout: 100 * time.Millisecond}})
			var out bytes.Buffer
			r.Write(&out)
			failed := r.Failed()
			if r.Passed() || len(failed) == 0 {
				t.Fatalf("passed:\n%s", &out)
			}
			if failed[0].Name != tt.check || !errors.Is(failed[0].Err, tt.err) {
				t.Errorf("first failure %q: %v; want %q with %v:\n%s", failed[0].Name, failed[0].Err, tt.check, tt.err, &out)
			}
			if !strings.Contains(out.String(), "FAIL  "+tt.check) || !strings.Contains(out.String(), "checks failed") {
				t.Errorf("the report does not show the failure:\n%s", &out)
			}
			// A plugin that runs past its deadline is not called again:
			// the suite ends within a few deadlines.
			if took := time.Since(start); tt.err == host.ErrDeadline && took > 5*time.Second {
				t.Errorf("the suite took %v", took)
			}
		})
	}
}
