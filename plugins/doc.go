// Package plugins runs connector plugins: sources and sinks that need
// sockets, files or drivers, and so run as processes of their own instead
// of in the WebAssembly sandbox. The host starts them through
// hashicorp/go-plugin and talks to them over gRPC (the protocol is
// plugins/proto/aegis/connector/v1/connector.proto); a connector is a
// program written with plugins/sdk, or any program that serves the
// protocol behind go-plugin's handshake.
//
// [NewSource] and [NewSink] start a connector and return an engine source
// or sink. They supervise it: a connector that crashes, hangs past its
// timeout or returns events that are not valid is killed and started
// again, with backoff, where the pipeline left off; one that keeps failing
// fails the pipeline with what went wrong. A source's acknowledged
// position is stored (Config.PositionFile) so that the next run starts
// after it. A connector never outlives the host: the host kills what it
// started when it stops, the kernel kills it if the host dies (on Linux),
// and the SDK's connectors also exit when their parent is gone.
//
// The handshake's magic cookie only keeps a connector binary started by
// hand from waiting for a host that is not there: it is a convenience, not
// security. What runs is what the manifest names; pin it with a sha256.
package plugins
