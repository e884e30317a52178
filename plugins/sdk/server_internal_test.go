package sdk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/plugins/internal/pb"
	"github.com/aegis-streaming/aegis/plugins/internal/shared"
)

// fakeSource calls its functions; a nil one does nothing.
type fakeSource struct {
	configure func(ctx context.Context, name string, config []byte) error
	open      func(ctx context.Context, position []byte) error
	read      func(ctx context.Context, max int) ([]engine.Event, []byte, error)
	ack       func(ctx context.Context, position []byte) error
	close     func(ctx context.Context) error
}

func (f *fakeSource) Configure(ctx context.Context, name string, config []byte) error {
	if f.configure == nil {
		return nil
	}
	return f.configure(ctx, name, config)
}

func (f *fakeSource) Open(ctx context.Context, position []byte) error {
	if f.open == nil {
		return nil
	}
	return f.open(ctx, position)
}

func (f *fakeSource) Read(ctx context.Context, max int) ([]engine.Event, []byte, error) {
	if f.read == nil {
		<-ctx.Done()
		return nil, nil, nil
	}
	return f.read(ctx, max)
}

func (f *fakeSource) Ack(ctx context.Context, position []byte) error {
	if f.ack == nil {
		return nil
	}
	return f.ack(ctx, position)
}

func (f *fakeSource) Close(ctx context.Context) error {
	if f.close == nil {
		return nil
	}
	return f.close(ctx)
}

// fakeSink calls its functions; a nil one does nothing.
type fakeSink struct {
	configure func(ctx context.Context, name string, config []byte) error
	open      func(ctx context.Context) error
	write     func(ctx context.Context, events []engine.Event) error
	flush     func(ctx context.Context) error
	close     func(ctx context.Context) error
}

func (f *fakeSink) Configure(ctx context.Context, name string, config []byte) error {
	if f.configure == nil {
		return nil
	}
	return f.configure(ctx, name, config)
}

func (f *fakeSink) Open(ctx context.Context) error {
	if f.open == nil {
		return nil
	}
	return f.open(ctx)
}

func (f *fakeSink) Write(ctx context.Context, events []engine.Event) error {
	if f.write == nil {
		return nil
	}
	return f.write(ctx, events)
}

func (f *fakeSink) Flush(ctx context.Context) error {
	if f.flush == nil {
		return nil
	}
	return f.flush(ctx)
}

func (f *fakeSink) Close(ctx context.Context) error {
	if f.close == nil {
		return nil
	}
	return f.close(ctx)
}

// testGuard is a guard whose exit records its code instead of exiting, and
// whose records go to a buffer.
type testGuard struct {
	guard
	mu    sync.Mutex
	buf   bytes.Buffer
	codes []int
}

func newTestGuard() *testGuard {
	g := &testGuard{}
	g.log = slog.New(&handler{out: &lockedWriter{w: &g.buf}})
	g.exit = func(code int) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.codes = append(g.codes, code)
	}
	return g
}

func (g *testGuard) exits() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.codes...)
}

// serve runs the servers over a loopback gRPC connection, with go-plugin's
// test helper.
func serve(t *testing.T, src Source, sink Sink) (pb.SourceClient, pb.SinkClient, *testGuard) {
	t.Helper()
	g := newTestGuard()
	conn, server := plugin.TestGRPCConn(t, func(s *grpc.Server) {
		if src != nil {
			pb.RegisterSourceServer(s, newSourceServer(src, &g.guard))
		}
		if sink != nil {
			pb.RegisterSinkServer(s, newSinkServer(sink, &g.guard))
		}
	})
	t.Cleanup(func() {
		conn.Close()
		server.Stop()
	})
	return pb.NewSourceClient(conn), pb.NewSinkClient(conn), g
}

func TestReadWaitRunsOut(t *testing.T) {
	tests := []struct {
		name string
		read func(ctx context.Context, max int) ([]engine.Event, []byte, error)
	}{
		{name: "nil", read: func(ctx context.Context, _ int) ([]engine.Event, []byte, error) {
			<-ctx.Done()
			return nil, nil, nil
		}},
		{name: "ctx error", read: func(ctx context.Context, _ int) ([]engine.Event, []byte, error) {
			<-ctx.Done()
			return nil, nil, ctx.Err()
		}},
		{name: "wrapped ctx error", read: func(ctx context.Context, _ int) ([]engine.Event, []byte, error) {
			<-ctx.Done()
			return nil, nil, errors.Join(errors.New("poll"), ctx.Err())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, _, _ := serve(t, &fakeSource{read: tt.read}, nil)
			start := time.Now()
			resp, err := src.Read(t.Context(), &pb.ReadRequest{MaxEvents: 10, WaitMillis: 50})
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(resp.Events) != 0 || resp.End || len(resp.Position) != 0 {
				t.Errorf("Read = %v, want an empty response", resp)
			}
			if d := time.Since(start); d < 50*time.Millisecond {
				t.Errorf("Read returned after %v, before the wait of 50ms", d)
			}
		})
	}
}

func TestReadCallDeadline(t *testing.T) {
	// The host's own deadline passing is not an empty response.
	src, _, _ := serve(t, &fakeSource{read: func(ctx context.Context, _ int) ([]engine.Event, []byte, error) {
		<-ctx.Done()
		return nil, nil, ctx.Err()
	}}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := src.Read(ctx, &pb.ReadRequest{MaxEvents: 10})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Read = %v, want DeadlineExceeded", err)
	}
}

func TestReadEnd(t *testing.T) {
	ev := engine.Event{ID: engine.NewEventID(), Type: "test.end", Time: 1, Data: engine.IntData(7)}
	tests := []struct {
		name   string
		events []engine.Event
		err    error
	}{
		{name: "with events", events: []engine.Event{ev}, err: io.EOF},
		{name: "without events", err: io.EOF},
		{name: "wrapped", events: []engine.Event{ev}, err: errors.Join(errors.New("the end"), io.EOF)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, _, _ := serve(t, &fakeSource{read: func(context.Context, int) ([]engine.Event, []byte, error) {
				return tt.events, []byte("pos"), tt.err
			}}, nil)
			resp, err := src.Read(t.Context(), &pb.ReadRequest{MaxEvents: 10, WaitMillis: 1000})
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if !resp.End || len(resp.Events) != len(tt.events) || string(resp.Position) != "pos" {
				t.Errorf("Read = %v, want end with %d events at pos", resp, len(tt.events))
			}
		})
	}
}

func TestReadArguments(t *testing.T) {
	var gotMax atomic.Int64
	src, _, _ := serve(t, &fakeSource{read: func(_ context.Context, max int) ([]engine.Event, []byte, error) {
		gotMax.Store(int64(max))
		evs := make([]engine.Event, 3)
		for i := range evs {
			evs[i] = engine.Event{Type: "t"}
		}
		return evs, nil, nil
	}}, nil)
	if _, err := src.Read(t.Context(), &pb.ReadRequest{MaxEvents: 0}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Read of 0 events = %v, want InvalidArgument", err)
	}
	if _, err := src.Read(t.Context(), &pb.ReadRequest{MaxEvents: 2}); status.Code(err) != codes.Internal ||
		!strings.Contains(err.Error(), "3 events for at most 2") {
		t.Errorf("Read of 3 events for 2 = %v, want Internal", err)
	}
	if gotMax.Load() != 2 {
		t.Errorf("max = %d, want 2", gotMax.Load())
	}
}

// TestErrorCodes: every call of both services answers INVALID_ARGUMENT
// (Configure) or UNKNOWN (the others) to an error, UNAVAILABLE to a
// Retryable one, and the context's codes to its errors.
func TestErrorCodes(t *testing.T) {
	errs := []struct {
		name string
		err  error
		code codes.Code // for calls other than Configure
	}{
		{name: "plain", err: errors.New("boom"), code: codes.Unknown},
		{name: "retryable", err: Retryable(errors.New("boom")), code: codes.Unavailable},
		{name: "wrapped retryable", err: errors.Join(errors.New("x"), Retryable(errors.New("boom"))), code: codes.Unavailable},
		{name: "canceled", err: context.Canceled, code: codes.Canceled},
		{name: "deadline", err: context.DeadlineExceeded, code: codes.DeadlineExceeded},
	}
	for _, e := range errs {
		t.Run(e.name, func(t *testing.T) {
			fail := func() error { return e.err }
			src, sink, _ := serve(t, &fakeSource{
				configure: func(context.Context, string, []byte) error { return fail() },
				open:      func(context.Context, []byte) error { return fail() },
				read:      func(context.Context, int) ([]engine.Event, []byte, error) { return nil, nil, fail() },
				ack:       func(context.Context, []byte) error { return fail() },
				close:     func(context.Context) error { return fail() },
			}, &fakeSink{
				configure: func(context.Context, string, []byte) error { return fail() },
				open:      func(context.Context) error { return fail() },
				write:     func(context.Context, []engine.Event) error { return fail() },
				flush:     func(context.Context) error { return fail() },
				close:     func(context.Context) error { return fail() },
			})
			ctx := t.Context()
			configureCode := e.code
			if configureCode == codes.Unknown {
				configureCode = codes.InvalidArgument
			}
			ev := shared.EventsToProto([]engine.Event{engine.NewEvent("t", "", engine.IntData(1))})
			calls := []struct {
				call string
				code codes.Code
				do   func() error
			}{
				{"source Configure", configureCode, func() error {
					_, err := src.Configure(ctx, &pb.ConfigureRequest{Name: "s"})
					return err
				}},
				{"source Open", e.code, func() error { _, err := src.Open(ctx, &pb.OpenSourceRequest{}); return err }},
				{"source Read", e.code, func() error {
					_, err := src.Read(ctx, &pb.ReadRequest{MaxEvents: 1, WaitMillis: 1000})
					return err
				}},
				{"source Ack", e.code, func() error { _, err := src.Ack(ctx, &pb.AckRequest{Position: []byte{1}}); return err }},
				{"source Teardown", e.code, func() error { _, err := src.Teardown(ctx, &pb.TeardownRequest{}); return err }},
				{"sink Configure", configureCode, func() error {
					_, err := sink.Configure(ctx, &pb.ConfigureRequest{Name: "s"})
					return err
				}},
				{"sink Open", e.code, func() error { _, err := sink.Open(ctx, &pb.OpenSinkRequest{}); return err }},
				{"sink Write", e.code, func() error { _, err := sink.Write(ctx, &pb.WriteRequest{Events: ev}); return err }},
				{"sink Flush", e.code, func() error { _, err := sink.Flush(ctx, &pb.FlushRequest{}); return err }},
				{"sink Teardown", e.code, func() error { _, err := sink.Teardown(ctx, &pb.TeardownRequest{}); return err }},
			}
			for _, c := range calls {
				err := c.do()
				st, _ := status.FromError(err)
				if st.Code() != c.code || st.Message() != e.err.Error() {
					t.Errorf("%s = %v, want %v with %q", c.call, err, c.code, e.err.Error())
				}
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	if Retryable(nil) != nil {
		t.Error("Retryable(nil) is not nil")
	}
	base := errors.New("broker down")
	err := Retryable(base)
	if !errors.Is(err, base) || err.Error() != "broker down" {
		t.Errorf("Retryable(%v) = %v, does not wrap it", base, err)
	}
}

func TestConfigureArguments(t *testing.T) {
	type got struct {
		name, config string
	}
	var mu sync.Mutex
	var calls []got
	record := func(_ context.Context, name string, config []byte) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, got{name, string(config)})
		return nil
	}
	src, sink, _ := serve(t, &fakeSource{configure: record}, &fakeSink{configure: record})
	ctx := t.Context()
	if _, err := src.Configure(ctx, &pb.ConfigureRequest{Name: "in", Config: []byte(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Configure(ctx, &pb.ConfigureRequest{Name: "out"}); err != nil {
		t.Fatal(err)
	}
	want := []got{{"in", `{"a":1}`}, {"out", "{}"}}
	if len(calls) != 2 || calls[0] != want[0] || calls[1] != want[1] {
		t.Errorf("Configure calls = %v, want %v", calls, want)
	}
}

func TestOpenPosition(t *testing.T) {
	var got [][]byte
	src, _, _ := serve(t, &fakeSource{open: func(_ context.Context, position []byte) error {
		got = append(got, position)
		return nil
	}}, nil)
	for _, p := range [][]byte{nil, {}, {0, 1}} {
		if _, err := src.Open(t.Context(), &pb.OpenSourceRequest{Position: p}); err != nil {
			t.Fatal(err)
		}
	}
	if got[0] != nil || got[1] != nil || !bytes.Equal(got[2], []byte{0, 1}) {
		t.Errorf("positions = %q, want nil, nil and 0001", got)
	}
}

// everyKind is one event of each kind of data, with the fields the
// protocol carries.
func everyKind() []engine.Event {
	data := []engine.EventData{
		engine.NullData(),
		engine.BoolData(true),
		engine.BoolData(false),
		engine.IntData(-1 << 62),
		engine.FloatData(3.25),
		engine.StringData("héllo\n"),
		engine.BytesData([]byte{0, 1, 0xff}),
		engine.MustJSONData(`{"a":[1,2,{"b":null}]}`),
	}
	evs := make([]engine.Event, len(data))
	for i, d := range data {
		evs[i] = engine.Event{
			ID:     engine.NewEventID(),
			Type:   "test.kind",
			Source: "urn:test:" + d.Kind().String(),
			Time:   int64(1e18 + i),
			Data:   d,
		}
		if i%2 == 0 {
			evs[i].Metadata = map[string]string{"kind": d.Kind().String(), "traceparent": "00-x"}
		}
	}
	return evs
}

func sameEvents(t *testing.T, got, want []engine.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := &got[i], &want[i]
		if g.ID != w.ID || g.Type != w.Type || g.Source != w.Source || g.Time != w.Time ||
			g.Data.Kind() != w.Data.Kind() || !g.Data.Equal(w.Data) || !maps.Equal(g.Metadata, w.Metadata) {
			t.Errorf("event %d = %+v, want %+v", i, *g, *w)
		}
	}
}

func TestEventRoundTrip(t *testing.T) {
	want := everyKind()
	var written []engine.Event
	src, sink, _ := serve(t, &fakeSource{read: func(context.Context, int) ([]engine.Event, []byte, error) {
		return want, []byte{9}, nil
	}}, &fakeSink{write: func(_ context.Context, events []engine.Event) error {
		written = append(written, events...)
		return nil
	}})
	resp, err := src.Read(t.Context(), &pb.ReadRequest{MaxEvents: 100, WaitMillis: 1000})
	if err != nil {
		t.Fatal(err)
	}
	read, err := shared.EventsFromProto(nil, resp.Events)
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, read, want)
	if _, err := sink.Write(t.Context(), &pb.WriteRequest{Events: shared.EventsToProto(read)}); err != nil {
		t.Fatal(err)
	}
	sameEvents(t, written, want)
}

func TestWriteEvents(t *testing.T) {
	var calls atomic.Int32
	_, sink, _ := serve(t, nil, &fakeSink{write: func(context.Context, []engine.Event) error {
		calls.Add(1)
		return nil
	}})
	ctx := t.Context()
	if _, err := sink.Write(ctx, &pb.WriteRequest{}); err != nil {
		t.Errorf("Write of no events: %v", err)
	}
	bad := &pb.WriteRequest{Events: []*pb.Event{{Type: "ok"}, {Type: "bad type!"}}}
	if _, err := sink.Write(ctx, bad); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "event 1 of 2") {
		t.Errorf("Write of an invalid event = %v, want InvalidArgument naming event 1", err)
	}
	if calls.Load() != 0 {
		t.Errorf("the sink's Write ran %d times, want 0", calls.Load())
	}
}

func TestPanic(t *testing.T) {
	src, sink, g := serve(t, &fakeSource{read: func(context.Context, int) ([]engine.Event, []byte, error) {
		panic("read exploded")
	}}, &fakeSink{flush: func(context.Context) error {
		var evs []engine.Event
		_ = evs[len(evs)] // a runtime error
		return nil
	}})
	_, err := src.Read(t.Context(), &pb.ReadRequest{MaxEvents: 1, WaitMillis: 1000})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "read exploded") {
		t.Errorf("Read = %v, want Internal naming the panic", err)
	}
	_, err = sink.Flush(t.Context(), &pb.FlushRequest{})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "index out of range") {
		t.Errorf("Flush = %v, want Internal naming the panic", err)
	}
	if got := g.exits(); len(got) != 2 || got[0] != 2 || got[1] != 2 {
		t.Errorf("exit codes = %v, want [2 2]", got)
	}
	lines := strings.Split(strings.TrimSpace(g.buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), g.buf.String())
	}
	for i, want := range []struct{ call, panic string }{{"Read", "read exploded"}, {"Flush", "index out of range"}} {
		rec := parseLine(t, lines[i])
		stack, _ := rec["stack"].(string)
		if rec["@level"] != "error" || rec["call"] != want.call || !strings.Contains(rec["panic"].(string), want.panic) ||
			!strings.Contains(stack, "server_internal_test.go") {
			t.Errorf("record %d = %v, want an error naming %s, %q and the stack", i, rec, want.call, want.panic)
		}
	}
}

// TestSourceCalls: Ack runs while Read blocks; Teardown waits for Read.
func TestSourceCalls(t *testing.T) {
	reading := make(chan struct{})
	release := make(chan struct{})
	var inRead atomic.Bool
	src, _, _ := serve(t, &fakeSource{
		read: func(context.Context, int) ([]engine.Event, []byte, error) {
			inRead.Store(true)
			close(reading)
			<-release
			inRead.Store(false)
			return nil, nil, nil
		},
		close: func(context.Context) error {
			if inRead.Load() {
				return errors.New("Close while Read runs")
			}
			return nil
		},
	}, nil)
	ctx := t.Context()
	done := make(chan error, 1)
	go func() {
		_, err := src.Read(ctx, &pb.ReadRequest{MaxEvents: 1})
		done <- err
	}()
	<-reading
	if _, err := src.Ack(ctx, &pb.AckRequest{Position: []byte{1}}); err != nil {
		t.Fatalf("Ack during Read: %v", err)
	}
	// Teardown waits for Read, and gives up when its context is done.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := src.Teardown(short, &pb.TeardownRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Teardown during Read = %v, want DeadlineExceeded", err)
	}
	torn := make(chan error, 1)
	go func() {
		_, err := src.Teardown(ctx, &pb.TeardownRequest{})
		torn <- err
	}()
	time.Sleep(20 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Read: %v", err)
	}
	if err := <-torn; err != nil {
		t.Fatalf("Teardown: %v", err)
	}
}

// TestSinkOneAtATime hammers the sink from many goroutines: calls never
// overlap.
func TestSinkOneAtATime(t *testing.T) {
	var in, overlaps atomic.Int32
	enter := func() {
		if in.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(100 * time.Microsecond)
		in.Add(-1)
	}
	_, sink, _ := serve(t, nil, &fakeSink{
		write: func(context.Context, []engine.Event) error { enter(); return nil },
		flush: func(context.Context) error { enter(); return nil },
	})
	ev := shared.EventsToProto([]engine.Event{engine.NewEvent("t", "", engine.IntData(1))})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for range 20 {
				var err error
				if i%4 == 0 {
					_, err = sink.Flush(t.Context(), &pb.FlushRequest{})
				} else {
					_, err = sink.Write(t.Context(), &pb.WriteRequest{Events: ev})
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Errorf("%d calls overlapped another", overlaps.Load())
	}
}

func TestWatchParent(t *testing.T) {
	var calls atomic.Int32
	getppid := func() int {
		if calls.Add(1) < 4 {
			return 100
		}
		return 1
	}
	exited := make(chan int, 1)
	go watchParent(getppid, time.Millisecond, func(code int) { exited <- code })
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit(%d), want exit(0)", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watchdog did not exit")
	}
}
