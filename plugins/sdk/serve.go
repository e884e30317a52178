package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/aegis-streaming/aegis/plugins/internal/shared"
)

// Connector is what a connector binary serves: a source, a sink, or both
// (the manifest says which one each of its sources and sinks uses).
// Either may be nil, not both.
type Connector struct {
	Source Source
	Sink   Sink
}

// Serve serves c to the host that started the process, over go-plugin's
// gRPC protocol (connector protocol version 1), and is what a connector's
// main calls. It returns only if serving ends: when the host stops the
// connector, the process exits without main's help.
//
// Run by hand, without a host, the binary says that it is a plugin and
// exits with status 1. Serve panics if c has neither a source nor a sink.
// Nothing may write to os.Stdout before Serve: go-plugin's handshake with
// the host is the first line there.
//
// Serve guards the host against a connector gone wrong:
//   - A panic in a call of the Source or the Sink is logged at error level
//     with its stack (see [Logger]) and ends the process with status 2, as
//     an unrecovered panic would, instead of leaving a half-broken
//     connector running; the host restarts it.
//   - A watchdog ends the process (status 0) once the host is gone, so
//     that a host killed without a chance to stop its connectors (SIGKILL)
//     leaves none behind: it polls the parent process ID every 250ms.
func Serve(c Connector) {
	if c.Source == nil && c.Sink == nil {
		panic("sdk: Serve needs a Source or a Sink")
	}
	g := &guard{log: Logger(), exit: os.Exit}
	set := plugin.PluginSet{}
	if c.Source != nil {
		set[shared.SourceName] = &shared.SourcePlugin{Impl: newSourceServer(c.Source, g)}
	}
	if c.Sink != nil {
		set[shared.SinkName] = &shared.SinkPlugin{Impl: newSinkServer(c.Sink, g)}
	}
	go watchParent(os.Getppid, watchEvery, os.Exit)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  shared.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{shared.ProtocolVersion: set},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return plugin.DefaultGRPCServer(append(opts, shared.ServerOptions()...))
		},
		// go-plugin's own records, in the same lines as Logger's.
		Logger: hclog.New(&hclog.LoggerOptions{Output: stderr, JSONFormat: true, Level: hclog.Trace}),
	})
}

// watchEvery is how often the watchdog looks for the host.
const watchEvery = 250 * time.Millisecond

// watchParent calls exit(0) once getppid returns another process than at
// its start: the parent is gone, and the process has a new one (init or a
// subreaper).
func watchParent(getppid func() int, every time.Duration, exit func(int)) {
	parent := getppid()
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		if getppid() != parent {
			exit(0)
			return
		}
	}
}

// guard ends the process on a panic in the connector's code.
type guard struct {
	log  *slog.Logger
	exit func(code int)
}

// recover, deferred by a call, turns a panic into a record with the
// stack and the end of the process; if exit returns (in tests), the call
// fails with INTERNAL.
func (g *guard) recover(call string, err *error) {
	v := recover()
	if v == nil {
		return
	}
	g.log.Error("connector panicked; exiting", "call", call, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	g.exit(2)
	*err = status.Errorf(codes.Internal, "%s: panic: %v", call, v)
}

// lock is a mutex whose Lock gives up when a context is done.
type lock chan struct{}

func newLock() lock { return make(lock, 1) }

func (l lock) acquire(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (l lock) release() { <-l }
