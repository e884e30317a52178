// Command otelcol is a minimal OpenTelemetry Collector distribution used by
// aegis tests and local development. It bundles only the OTLP receiver, the
// batch processor and the file/debug exporters (see components.go).
//
// Usage:
//
//	otelcol --config=file:testdata/config.yaml
//
// All component modules are pinned to a single collector release in go.mod
// (core v0.161.0 / stable v1.67.0, contrib v0.161.0).
package main

import (
	"os"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
)

// collectorVersion is the upstream collector release the components come from.
const collectorVersion = "0.161.0"

func main() {
	settings := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol",
			Description: "Minimal OpenTelemetry Collector for aegis",
			Version:     collectorVersion,
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				// URIs are supplied on the command line via --config.
				ProviderFactories: []confmap.ProviderFactory{
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
				// ${VAR} without a scheme resolves from the environment.
				DefaultScheme: "env",
			},
		},
		// Only informational (shown by the "components" subcommand).
		ProviderModules: map[string]string{
			"file": "go.opentelemetry.io/collector/confmap/provider/fileprovider v1.67.0",
			"env":  "go.opentelemetry.io/collector/confmap/provider/envprovider v1.67.0",
			"yaml": "go.opentelemetry.io/collector/confmap/provider/yamlprovider v1.67.0",
		},
	}

	// cobra already prints the error ("Error: ...") to stderr.
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		os.Exit(1)
	}
}
