// Package sdk is the Go SDK for aegis-host's connectors: sources and sinks
// that run as processes of their own, which aegis-host starts, talks to
// over gRPC (hashicorp/go-plugin, protocol plugins/proto/aegis/connector/v1)
// and restarts when they crash or hang.
//
// A connector is a main package that implements [Source], [Sink] or both,
// and hands them to [Serve]:
//
//	func main() {
//		sdk.Serve(sdk.Connector{Source: &tail{}})
//	}
//
// A manifest then uses the built binary as a source or a sink of type
// plugin:
//
//	sources:
//	  lines:
//	    type: plugin
//	    plugin: bin/connectors/tail   # relative to the manifest
//	    with: {path: input.txt}       # the connector's configuration
//
// What the SDK does for the connector: it converts events to and from
// the protocol, turns errors into the statuses the host acts on
// ([Retryable] for the ones to retry), bounds Read by the time the host is
// willing to wait, keeps calls from running concurrently where the
// interfaces say so, ends the process on a panic and when the host is
// gone, and logs to the host's log ([Logger]).
//
// examples/connector is a complete connector (a file tail source and a JSON
// lines sink) with a README.
package sdk
