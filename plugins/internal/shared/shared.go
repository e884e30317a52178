// Package shared holds what both ends of a connector plugin agree on: the
// go-plugin handshake, the plugin names, the glue between go-plugin and the
// gRPC services of plugins/proto, and the conversion of events to and from
// their protobuf form.
package shared

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/plugins/internal/pb"
)

// ProtocolVersion is the version of the connector protocol this build
// speaks (plugins/proto/aegis/connector/v1).
const ProtocolVersion = 1

// The magic cookie: an environment variable the host sets for the
// connectors it starts, so that a connector binary run by hand says what it
// is instead of waiting for a host. It is a check of intent, not security.
const (
	MagicCookieKey   = "AEGIS_CONNECTOR_COOKIE"
	MagicCookieValue = "aegis-connector-7d1c3f0e"
)

// MaxMessageSize is the largest message either end sends or takes (gRPC's
// default is 4 MiB): a batch of events. The host splits a sink's batch
// into writes of at most half of it; a source must return fewer events at
// a time.
const MaxMessageSize = 64 << 20

// ServerOptions are the gRPC options of a connector's server.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize),
	}
}

// SizeOf is about the size of an event in a message, at least its
// size: its fields, and a few bytes of tags and lengths for each.
func SizeOf(e *engine.Event) int {
	n := 64 + len(e.Type) + len(e.Source) + e.Data.Size()
	for k, v := range e.Metadata {
		n += 16 + len(k) + len(v)
	}
	return n
}

// The names under which a connector binary serves its source and its sink.
const (
	SourceName = "source"
	SinkName   = "sink"
)

// Handshake is the go-plugin handshake of both ends. Its protocol version
// is only the default: both ends also list the versions they speak
// (VersionedPlugins), and go-plugin picks the highest they share.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// SourcePlugin is the go-plugin plugin of a source: the connector serves
// Impl; the host dispenses a pb.SourceClient.
type SourcePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl pb.SourceServer
}

func (p *SourcePlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterSourceServer(s, p.Impl)
	return nil
}

func (p *SourcePlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pb.NewSourceClient(c), nil
}

// SinkPlugin is the go-plugin plugin of a sink: the connector serves
// Impl; the host dispenses a pb.SinkClient.
type SinkPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl pb.SinkServer
}

func (p *SinkPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterSinkServer(s, p.Impl)
	return nil
}

func (p *SinkPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pb.NewSinkClient(c), nil
}
