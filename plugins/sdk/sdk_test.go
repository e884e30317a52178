package sdk_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/internal/plugintest"
	"github.com/aegis-streaming/aegis/plugins/internal/pb"
	"github.com/aegis-streaming/aegis/plugins/internal/shared"
)

// buffer is a bytes.Buffer for concurrent writers.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// conn is a connector started as the host starts one: its client, its
// log (the client's hclog logger, in JSON) and what it wrote to os.Stderr
// (go-plugin's stdio stream).
type conn struct {
	client      *plugin.Client
	log, stderr *buffer
}

// start starts a test connector through go-plugin's client, as the host
// does, and dispenses kind from it.
func start(t *testing.T, name, kind string) (*conn, any) {
	t.Helper()
	c := &conn{log: &buffer{}, stderr: &buffer{}}
	c.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: shared.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			shared.ProtocolVersion: {shared.SourceName: &shared.SourcePlugin{}, shared.SinkName: &shared.SinkPlugin{}},
		},
		Cmd:              exec.Command(plugintest.Path(t, name)),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: c.log, JSONFormat: true, Level: hclog.Trace}),
		SyncStderr:       c.stderr,
	})
	t.Cleanup(c.client.Kill)
	rpc, err := c.client.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(kind)
	if err != nil {
		t.Fatal(err)
	}
	return c, raw
}

func startSource(t *testing.T, config string, position []byte) (*conn, pb.SourceClient) {
	t.Helper()
	c, raw := start(t, "connectors/source", shared.SourceName)
	src := raw.(pb.SourceClient)
	ctx := t.Context()
	if _, err := src.Configure(ctx, &pb.ConfigureRequest{Name: "in", Config: []byte(config)}); err != nil {
		t.Fatalf("Configure(%s): %v", config, err)
	}
	if _, err := src.Open(ctx, &pb.OpenSourceRequest{Position: position}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c, src
}

// records are the host's log records of the connector: those whose
// message is msg.
func (c *conn) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(c.log.String(), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("the host's log: %v: %s", err, line)
		}
		if rec["@message"] == msg {
			recs = append(recs, rec)
		}
	}
	return recs
}

// eventually waits for f to hold.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !f(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func position(i int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

func read(t *testing.T, src pb.SourceClient, max int32) *pb.ReadResponse {
	t.Helper()
	resp, err := src.Read(t.Context(), &pb.ReadRequest{MaxEvents: max, WaitMillis: 5000})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return resp
}

func events(t *testing.T, resp *pb.ReadResponse) []engine.Event {
	t.Helper()
	evs, err := shared.EventsFromProto(nil, resp.Events)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestSource runs connectors/source as the host does: reads 10 events,
// acknowledges them, and finds the ack in its acks file and its log
// records in the host's log.
func TestSource(t *testing.T) {
	dir := t.TempDir()
	acks := filepath.Join(dir, "acks")
	cfg := `{"count": 25, "acks_file": ` + quote(acks) + `, "log": "opened for the test"}`
	c, src := startSource(t, cfg, nil)
	resp := read(t, src, 10)
	evs := events(t, resp)
	if len(evs) != 10 || resp.End || !bytes.Equal(resp.Position, position(10)) {
		t.Fatalf("Read = %d events, end %v, position %x; want 10, false, position 10", len(evs), resp.End, resp.Position)
	}
	for i, e := range evs {
		if v, _ := e.Data.AsInt(); v != int64(i) || e.Type != "test.count" {
			t.Errorf("event %d = %s %v, want test.count %d", i, e.Type, e.Data, i)
		}
	}
	if _, err := src.Ack(t.Context(), &pb.AckRequest{Position: resp.Position}); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if b, err := os.ReadFile(acks); err != nil || string(b) != "10" {
		t.Errorf("acks file = %q, %v; want 10", b, err)
	}
	// The rest, up to the end.
	n := len(evs)
	for !resp.End {
		resp = read(t, src, 10)
		n += len(resp.Events)
	}
	if n != 25 || !bytes.Equal(resp.Position, position(25)) {
		t.Errorf("read %d events up to %x, want 25 up to position 25", n, resp.Position)
	}
	if _, err := src.Teardown(t.Context(), &pb.TeardownRequest{}); err != nil {
		t.Fatalf("Teardown: %v", err)
	}

	// Logger's record reaches the host's log at its level with its
	// attributes; a plain line of os.Stderr reaches the stdio stream.
	recs := c.records(t, "opened for the test")
	if len(recs) != 1 || recs[0]["@level"] != "info" || recs[0]["position"] != 0.0 {
		t.Errorf("records of the log line = %v, want one at info with position=0\n%s", recs, c.log)
	}
	eventually(t, "the plain line on the stdio stream", func() bool {
		return strings.Contains(c.stderr.String(), "opened for the test\n")
	})
}

// TestSourceResume: a source opened at a position returns the events
// after it, the same (IDs and all) as before.
func TestSourceResume(t *testing.T) {
	for _, mode := range []string{"count", "orders"} {
		t.Run(mode, func(t *testing.T) {
			cfg := `{"orders": ` + map[string]string{"count": "false", "orders": "true"}[mode] + `}`
			_, src := startSource(t, cfg, nil)
			first := events(t, read(t, src, 20))
			_, src2 := startSource(t, cfg, position(10))
			second := events(t, read(t, src2, 10))
			if len(first) != 20 || len(second) != 10 {
				t.Fatalf("read %d and %d events, want 20 and 10", len(first), len(second))
			}
			for i := range second {
				a, b := first[10+i], second[i]
				if a.ID != b.ID || a.Time != b.Time || a.Type != b.Type || !a.Data.Equal(b.Data) {
					t.Errorf("event %d after resuming = %+v, want %+v", 10+i, b, a)
				}
			}
			if mode == "orders" && !strings.HasPrefix(string(first[0].Type), "order.") {
				t.Errorf("orders mode: type %s", first[0].Type)
			}
		})
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestSourceConfigure(t *testing.T) {
	tests := []struct {
		name, config, want string
	}{
		{name: "fail_configure", config: `{"fail_configure": "no way"}`, want: "no way"},
		{name: "unknown key", config: `{"count": 1, "cuont": 2}`, want: `unknown field "cuont"`},
		{name: "negative", config: `{"crash_after": -1}`, want: "crash_after is -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, raw := start(t, "connectors/source", shared.SourceName)
			_, err := raw.(pb.SourceClient).Configure(t.Context(), &pb.ConfigureRequest{Name: "in", Config: []byte(tt.config)})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Configure = %v, want InvalidArgument with %q", err, tt.want)
			}
		})
	}
}

// TestSourceMisbehaves: the misbehaviours come at the first Read at
// their index, and with a once file only once.
func TestSourceMisbehaves(t *testing.T) {
	tests := []struct {
		name   string
		config string
		// check checks the Read at index 5.
		check func(t *testing.T, c *conn, resp *pb.ReadResponse, err error)
	}{
		{name: "crash", config: `"crash_after": 5`, check: func(t *testing.T, c *conn, _ *pb.ReadResponse, err error) {
			if err == nil {
				t.Fatal("Read after crash_after returned")
			}
			exited(t, c, "exit status 3")
		}},
		{name: "panic", config: `"panic_after": 5`, check: func(t *testing.T, c *conn, _ *pb.ReadResponse, err error) {
			if err == nil {
				t.Fatal("Read after panic_after returned")
			}
			exited(t, c, "exit status 2")
			recs := c.records(t, "connector panicked; exiting")
			if len(recs) != 1 || recs[0]["@level"] != "error" || recs[0]["call"] != "Read" ||
				!strings.Contains(recs[0]["panic"].(string), "at index 5") || !strings.Contains(recs[0]["stack"].(string), "main.go") {
				t.Errorf("records of the panic = %v, want one at error with call, panic and stack\n%s", recs, c.log)
			}
		}},
		{name: "hang", config: `"hang_after": 5`, check: func(t *testing.T, _ *conn, _ *pb.ReadResponse, err error) {
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("Read after hang_after = %v, want DeadlineExceeded", err)
			}
		}},
		{name: "malformed", config: `"malformed_after": 5`, check: func(t *testing.T, _ *conn, resp *pb.ReadResponse, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Events) != 1 || resp.Events[0].Type != "bad type!" || !bytes.Equal(resp.Position, position(6)) {
				t.Fatalf("Read after malformed_after = %v, want one bad event at position 6", resp)
			}
			if _, err := shared.EventsFromProto(nil, resp.Events); err == nil {
				t.Error("the malformed event is valid")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			once := filepath.Join(t.TempDir(), "once")
			cfg := `{"batch": 100, "once_file": ` + quote(once) + `, ` + tt.config + `}`
			c, src := startSource(t, cfg, nil)
			if n := len(read(t, src, 100).Events); n != 5 {
				t.Fatalf("read %d events before the misbehaviour, want 5", n)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			resp, err := src.Read(ctx, &pb.ReadRequest{MaxEvents: 100, WaitMillis: 500})
			tt.check(t, c, resp, err)
			c.client.Kill()
			// Started again at index 5, it goes on.
			_, src = startSource(t, cfg, position(5))
			evs := events(t, read(t, src, 3))
			if v, _ := evs[0].Data.AsInt(); len(evs) != 3 || v != 5 {
				t.Errorf("after a restart: %d events from %v, want 3 from 5", len(evs), evs[0].Data)
			}
		})
	}
}

// exited waits for the connector's process to end, and checks how the
// client logged its end.
func exited(t *testing.T, c *conn, status string) {
	t.Helper()
	eventually(t, "the process to end", c.client.Exited)
	eventually(t, "the client to log the end", func() bool { return len(c.records(t, "plugin process exited")) > 0 })
	recs := c.records(t, "plugin process exited")
	if e, _ := recs[0]["error"].(string); e != status {
		t.Errorf("the client logged %v, want error=%q", recs[0], status)
	}
}

func TestSourceRate(t *testing.T) {
	_, src := startSource(t, `{"rate": 100}`, nil)
	begin := time.Now()
	n := 0
	for n < 30 {
		n += len(read(t, src, 1000).Events)
	}
	// 30 events at 100/s: the 30th is due 290ms after Open.
	if d := time.Since(begin); d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("30 events at 100/s took %v", d)
	}
}

func startSink(t *testing.T, config string) (*conn, pb.SinkClient) {
	t.Helper()
	c, raw := start(t, "connectors/sink", shared.SinkName)
	sink := raw.(pb.SinkClient)
	if _, err := sink.Configure(t.Context(), &pb.ConfigureRequest{Name: "out", Config: []byte(config)}); err != nil {
		t.Fatalf("Configure(%s): %v", config, err)
	}
	if _, err := sink.Open(t.Context(), &pb.OpenSinkRequest{}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c, sink
}

func batch(from, n int) *pb.WriteRequest {
	evs := make([]engine.Event, n)
	for i := range evs {
		evs[i] = engine.Event{ID: engine.NewEventID(), Type: "test.count", Time: 1, Data: engine.IntData(int64(from + i))}
	}
	return &pb.WriteRequest{Events: shared.EventsToProto(evs)}
}

// written is what the sink wrote: the data of each line's event.
func written(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var e engine.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		v, _ := e.Data.AsInt()
		out = append(out, v)
	}
	return out
}

func TestSink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	_, sink := startSink(t, `{"path": `+quote(path)+`, "retryable_failures": 2}`)
	ctx := t.Context()
	for i := range 2 {
		if _, err := sink.Write(ctx, batch(0, 3)); status.Code(err) != codes.Unavailable {
			t.Fatalf("Write %d = %v, want Unavailable", i, err)
		}
	}
	for _, b := range []*pb.WriteRequest{batch(0, 3), batch(3, 2)} {
		if _, err := sink.Write(ctx, b); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if _, err := sink.Flush(ctx, &pb.FlushRequest{}); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if _, err := sink.Teardown(ctx, &pb.TeardownRequest{}); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if got := written(t, path); len(got) != 5 || got[0] != 0 || got[4] != 4 {
		t.Errorf("written %v, want 0 to 4", got)
	}
}

func TestSinkMisbehaves(t *testing.T) {
	t.Run("no path", func(t *testing.T) {
		_, raw := start(t, "connectors/sink", shared.SinkName)
		_, err := raw.(pb.SinkClient).Configure(t.Context(), &pb.ConfigureRequest{Name: "out", Config: []byte(`{}`)})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "path is required") {
			t.Errorf("Configure = %v, want InvalidArgument", err)
		}
	})
	t.Run("fail_write", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.jsonl")
		_, sink := startSink(t, `{"path": `+quote(path)+`, "fail_write": "disk on fire"}`)
		_, err := sink.Write(t.Context(), batch(0, 1))
		if st, _ := status.FromError(err); st.Code() != codes.Unknown || st.Message() != "disk on fire" {
			t.Errorf("Write = %v, want Unknown: disk on fire", err)
		}
	})
	t.Run("crash_after", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "out.jsonl")
		cfg := `{"path": ` + quote(path) + `, "crash_after": 4, "once_file": ` + quote(filepath.Join(dir, "once")) + `}`
		c, sink := startSink(t, cfg)
		if _, err := sink.Write(t.Context(), batch(0, 3)); err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Write(t.Context(), batch(3, 3)); err == nil {
			t.Fatal("Write of event 4 returned")
		}
		exited(t, c, "exit status 3")
		if got := written(t, path); len(got) != 3 {
			t.Errorf("written %v, want the first batch only", got)
		}
		_, sink = startSink(t, cfg)
		if _, err := sink.Write(t.Context(), batch(3, 3)); err != nil {
			t.Fatalf("Write after a restart: %v", err)
		}
		if got := written(t, path); len(got) != 6 {
			t.Errorf("written %v, want 6 events", got)
		}
	})
	t.Run("hang_after", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.jsonl")
		_, sink := startSink(t, `{"path": `+quote(path)+`, "hang_after": 0}`)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if _, err := sink.Write(ctx, batch(0, 1)); status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("Write = %v, want DeadlineExceeded", err)
		}
	})
}
