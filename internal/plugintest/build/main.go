// Command build builds test plugins, in any of their languages, and copies
// the modules into a directory: what `go tool task plugins` runs, so that
// the tests and the task build them the same way.
//
//	go run ./internal/plugintest/build -o bin/plugins orders/filter wat/orders_map rust/orders_map as/orders_map
//
// A module is named after the plugin, with "-" for "/":
// bin/plugins/rust-orders_map.wasm; a connector is an executable:
// bin/plugins/connectors-source.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aegis-streaming/aegis/internal/plugintest"
)

func main() {
	out := flag.String("o", "bin/plugins", "the `DIR` the modules go to")
	flag.Parse()
	if err := run(*out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run(dir string, names []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range names {
		p, err := plugintest.Build(name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		// A connector is an executable: keep its mode and its extension
		// (none but on Windows).
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		out := filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+filepath.Ext(p))
		if err := os.WriteFile(out, b, st.Mode().Perm()); err != nil {
			return err
		}
		if err := os.Chmod(out, st.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}
