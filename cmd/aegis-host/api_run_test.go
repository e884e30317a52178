package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/httpapi"
	"github.com/aegis-streaming/aegis/internal/tlstest"
)

// TestAPIDurableSubscribe: a durable subscription that acknowledges what
// it printed resumes, the next time, after the last event it
// acknowledged: two runs of subscribe --count 5 print ten events, none
// twice.
func TestAPIDurableSubscribe(t *testing.T) {
	addr := apiAddr(t)
	base := "http://" + addr
	dir := t.TempDir()
	m := writeFile(t, dir, "m.yaml", fmt.Sprintf(`apiVersion: aegis/v1
channels: {orders: {persistent: true}}
api: {listen: %q}
`, addr))
	r := startCLI(t, "run", "-f", m)
	waitReady(t, r, base)
	var in strings.Builder
	for i := range 10 {
		in.WriteString(eventLine("order.created", i) + "\n")
	}
	code, stdout, stderr := runCLI(t, "publish", "orders", "--url", base, "-f", writeFile(t, dir, "in.jsonl", in.String()))
	if code != exitOK || len(lines(stdout)) != 10 {
		t.Fatalf("publish: exit %d, stdout %q; stderr:\n%s", code, stdout, stderr)
	}
	seen := map[int]bool{}
	for round := range 2 {
		// The events the first stream was sent and did not print come
		// again at once: closing its subscription gave them back (the ack
		// wait, 30 s by default, is longer than this test may take).
		code, stdout, stderr := runCLI(t, "subscribe", "orders", "--url", base, "--durable", "d", "--ack", "--start", "all", "--count", "5")
		if code != exitOK {
			t.Fatalf("subscribe %d: exit %d; stderr:\n%s", round+1, code, stderr)
		}
		evs := decodeEvents(t, lines(stdout))
		if len(evs) != 5 {
			t.Fatalf("subscribe %d printed %d events:\n%s", round+1, len(evs), stdout)
		}
		for _, e := range evs {
			n := dataN(t, e)
			if seen[n] {
				t.Errorf("subscribe %d: event n=%d again", round+1, n)
			}
			seen[n] = true
		}
	}
	if len(seen) != 10 {
		t.Errorf("events printed: %v, want n=0 to 9", seen)
	}
	r.stop(t)
}

// TestAPIOutlivesPipelines: with the API, the run goes on when its
// pipelines have ended, and the channel they read stays open to the API's
// publishers; the stop drains what they published.
func TestAPIOutlivesPipelines(t *testing.T) {
	addr := apiAddr(t)
	base := "http://" + addr
	dir := t.TempDir()
	m := writeFile(t, dir, "m.yaml", `apiVersion: aegis/v1
channels: {orders: {}}
sources: {gen: {type: generator, count: 3}}
sinks: {out: {type: file, path: out.jsonl}}
pipelines:
  - {name: feed, from: gen, to: [orders]}
  - {name: store, from: orders, batch: {max_wait: 5ms}, to: [out]}
`)
	out := filepath.Join(dir, "out.jsonl")
	r := startCLI(t, "run", "-f", m, "--api-listen", addr)
	waitReady(t, r, base)
	waitLines(t, r, out, 3)
	// The generator's pipeline has ended; the API still takes events for
	// the channel, and the pipeline reading it still writes them out.
	code, stdout, stderr := runCLI(t, "publish", "orders", "--url", base, "--type", "late", "--data", `{"n":1}`)
	if code != exitOK {
		t.Fatalf("publish: exit %d %s; stderr:\n%s", code, stdout, stderr)
	}
	waitLines(t, r, out, 4)
	if r.ended() {
		t.Fatalf("the run ended by itself; stderr:\n%s", r.stderr.String())
	}
	r.stop(t)
	if got := readLines(t, out); len(got) != 4 || !strings.Contains(got[3], `"type":"late"`) {
		t.Errorf("the sink after the stop:\n%s", strings.Join(got, "\n"))
	}
	if s := pipelineSummary(t, r.stderr.String(), "store"); s.in != 4 || s.out != 4 {
		t.Errorf("summary: %s; want in 4, out 4", s.text)
	}
}

// TestAPIListenTaken: an API address in use fails the run, naming it,
// before anything runs.
func TestAPIListenTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	dir := t.TempDir()
	m := writeFile(t, dir, "m.yaml", `apiVersion: aegis/v1
sources: {gen: {type: generator, count: 3}}
sinks: {out: {type: file, path: out.jsonl}}
pipelines: [{name: p, from: gen, to: [out]}]
`)
	code, _, stderr := runCLI(t, "run", "-f", m, "--api-listen", addr)
	if want := "aegis-host: " + m + ": api: cannot listen on " + addr + ": "; code != exitError || !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "address already in use") {
		t.Errorf("exit %d, stderr %q; want 1 and %q... address already in use", code, stderr, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.jsonl")); err == nil {
		t.Error("the sink's file was created: something ran")
	}
	// validate listens on nothing: the same address is fine.
	code, stdout, stderr := runCLI(t, "validate", "-f", m, "--api-listen", addr)
	if want := m + ": ok: 1 pipeline(s), 0 step(s), 0 plugin(s), api on " + addr + "\n"; code != exitOK || stdout != want {
		t.Errorf("validate: exit %d, stdout %q, want %q; stderr:\n%s", code, stdout, want, stderr)
	}
}

// TestAPIManifestErrors: the run and validate commands report api
// problems as every manifest problem, file, line and column first; and
// --api-listen is checked as api.listen.
func TestAPIManifestErrors(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // the errors name the files as given
	writeFile(t, dir, "tokens.yaml", "tokens:\n  - name: reader\n    token: short\n")
	for _, tc := range []struct {
		name     string
		manifest string
		args     []string
		code     int
		want     []string
	}{
		{"public without tokens", "apiVersion: aegis/v1\nchannels: {c: {}}\napi:\n  listen: 0.0.0.0:8080\n", nil, exitError,
			[]string{`aegis-host: m.yaml:4:11: api.listen: "0.0.0.0:8080" is not a loopback address: without tokens anyone who can reach it may publish, read and delete; add api.tokens or set api.allow_unauthenticated`}},
		{"a token's problems", "apiVersion: aegis/v1\nchannels: {c: {}}\napi:\n  listen: 127.0.0.1:0\n  tokens:\n    - {name: a, token: 0123456789abcdef, grants: [{channels: [c], actions: [pub]}]}\n  tokens_file: tokens.yaml\n", nil, exitError,
			[]string{
				`aegis-host: m.yaml:6:77: api.tokens[0].grants[0].actions[0]: unknown action "pub": want publish, subscribe or admin (did you mean "publish"?)`,
				`tokens.yaml:3:12: tokens[0].token: the token is 5 bytes long: at least 16`,
			}},
		{"--api-listen without tokens", "apiVersion: aegis/v1\nchannels: {c: {}}\nsources: {g: {type: generator, count: 1}}\nsinks: {o: {type: drop}}\npipelines: [{name: p, from: g, to: [o]}]\n",
			[]string{"--api-listen", ":8080"}, exitUsage,
			[]string{`aegis-host: --api-listen :8080: ":8080" listens on every interface: without tokens anyone who can reach it may publish, read and delete; add api.tokens or set api.allow_unauthenticated`}},
		{"--api-listen not host:port", "apiVersion: aegis/v1\nchannels: {c: {}}\napi: {listen: \"127.0.0.1:0\"}\n",
			[]string{"--api-listen", "8080"}, exitUsage,
			[]string{`aegis-host: --api-listen 8080: must be host:port`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := writeFile(t, dir, "m.yaml", tc.manifest)
			for _, cmd := range []string{"validate", "run"} {
				code, _, stderr := runCLI(t, append([]string{cmd, "-f", filepath.Base(m)}, tc.args...)...)
				got := lines(stderr)
				ok := code == tc.code && len(got) >= len(tc.want)
				for i := 0; ok && i < len(tc.want); i++ {
					ok = strings.HasPrefix(got[i], tc.want[i])
				}
				if !ok {
					t.Errorf("%s: exit %d, stderr:\n%s\nwant exit %d and:\n%s", cmd, code, stderr, tc.code, strings.Join(tc.want, "\n"))
				}
			}
		})
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	c := tlstest.New(t)
	return writeFile(t, dir, "cert.pem", string(c.CertPEM)), writeFile(t, dir, "key.pem", string(c.KeyPEM))
}

// TestAPIClientTLS: the API serves HTTPS with the manifest's certificate;
// the client commands trust it with --ca-file, and refuse it without.
func TestAPIClientTLS(t *testing.T) {
	addr := apiAddr(t)
	base := "https://" + addr
	dir := t.TempDir()
	cert, _ := selfSigned(t, dir)
	m := writeFile(t, dir, "m.yaml", fmt.Sprintf(`apiVersion: aegis/v1
channels: {orders: {}}
api:
  listen: %q
  tls: {cert_file: cert.pem, key_file: key.pem}
`, addr))
	r := startCLI(t, "run", "-f", m)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(r.stderr.String(), "api listening on "+base+"\n") {
		if r.ended() || time.Now().After(deadline) {
			t.Fatalf("no \"api listening on %s\"; stderr:\n%s", base, r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, stdout, stderr := runCLI(t, "channels", "--url", base, "--ca-file", cert)
	if code != exitOK || !strings.Contains(stdout, "orders") {
		t.Errorf("channels --ca-file: exit %d, stdout %q; stderr:\n%s", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, "channels", "--url", base)
	if code != exitError || !strings.Contains(stderr, "certificate") {
		t.Errorf("channels without --ca-file: exit %d, stderr %q; want a certificate error", code, stderr)
	}
	code, _, stderr = runCLI(t, "channels", "--url", base, "--ca-file", m)
	if code != exitError || !strings.Contains(stderr, "no PEM certificate") {
		t.Errorf("channels --ca-file of a manifest: exit %d, stderr %q", code, stderr)
	}
	r.stop(t)
}

// TestClientUsage: the client commands' usage errors, before any request.
func TestClientUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"publish without a channel", []string{"publish", "--type", "x"}, "publish takes one CHANNEL, got 0 argument(s)"},
		{"publish without a type", []string{"publish", "orders"}, "--type is required"},
		{"publish data not JSON", []string{"publish", "orders", "--type", "x", "--data", "{"}, "--data: "},
		{"publish meta without =", []string{"publish", "orders", "--type", "x", "--meta", "k"}, `--meta "k": write KEY=VALUE`},
		{"publish -f with --type", []string{"publish", "orders", "-f", "-", "--type", "x"}, "--type builds one event: not with -f"},
		{"publish --batch 0", []string{"publish", "orders", "-f", "-", "--batch", "0"}, "--batch must be at least 1, got 0"},
		{"publish unknown flag after the channel", []string{"publish", "orders", "--typo", "x"}, "flag provided but not defined: -typo"},
		{"subscribe --start", []string{"subscribe", "orders", "--start", "oldest"}, `--start "oldest": all or new`},
		{"subscribe --after-id", []string{"subscribe", "orders", "--after-id", "x"}, "--after-id: "},
		{"subscribe --ack-wait without --ack", []string{"subscribe", "orders", "--ack-wait", "1s"}, "--ack-wait takes a positive duration, with --ack"},
		{"channels with an unknown subcommand", []string{"channels", "list"}, `unknown command "list"`},
		{"channels create without a name", []string{"channels", "create"}, "create takes one NAME, got 0 argument(s)"},
		{"a bad url", []string{"channels", "--url", "localhost:8080"}, `--url: api url "localhost:8080": want http(s)://host:port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != exitUsage || stdout != "" || !strings.HasPrefix(stderr, "aegis-host: "+tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout, stderr, exitUsage, tc.want)
			}
		})
	}
	// No host: the request's error, exit 1.
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "channels", "--url", "http://"+addr, "info", "orders")
	if code != exitError || !strings.Contains(stderr, addr) || !strings.Contains(stderr, "connection refused") {
		t.Errorf("no host: exit %d, stderr %q", code, stderr)
	}
}

// TestRunAPIExample runs examples/api.yaml: orders published through the
// API by the shop's token come out of the wasm filter and map into the
// channel the dashboard's token follows; each token is held to its grant.
func TestRunAPIExample(t *testing.T) {
	addr := apiAddr(t)
	base := "http://" + addr
	t.Setenv("AEGIS_PLUGINS", ordersPlugins(t))
	t.Setenv("AEGIS_API_LISTEN", addr)
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("AEGIS_API_TOKEN", adminToken)
	const shop, dashboard = "shop-token-0123456789", "dashboard-token-0123456789"
	t.Setenv("AEGIS_SHOP_TOKEN", shop)
	t.Setenv("AEGIS_DASHBOARD_TOKEN", dashboard)
	r := startCLI(t, "run", "-f", "../../examples/api.yaml")
	waitReady(t, r, base)
	for i, typ := range []string{"order.created", "order.refunded", "order.paid"} {
		code, _, stderr := runCLI(t, "publish", "orders", "--url", base, "--token", shop, "--type", typ,
			"--source", "urn:shop:checkout:eu-west-1:instance-07", "--data", fmt.Sprintf(`{"amount":%d.5}`, i+1))
		if code != exitOK {
			t.Fatalf("publish %s: exit %d; stderr:\n%s", typ, code, stderr)
		}
	}
	code, _, stderr := runCLI(t, "publish", "enriched", "--url", base, "--token", dashboard, "--type", "x")
	if code != exitError || !strings.Contains(stderr, "forbidden") {
		t.Fatalf("the dashboard publishing: exit %d; stderr:\n%s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "subscribe", "enriched", "--url", base, "--token", dashboard, "--start", "all", "--count", "2")
	if code != exitOK {
		t.Fatalf("subscribe: exit %d; stderr:\n%s", code, stderr)
	}
	evs := decodeEvents(t, lines(stdout))
	if len(evs) != 2 || evs[0].Type != "ORDER.CREATED" || evs[1].Type != "ORDER.PAID" {
		t.Fatalf("enriched: %s", stdout)
	}
	var doc struct {
		AmountCents int64  `json:"amount_cents"`
		Region      string `json:"region"`
	}
	if err := evs[1].Data.Decode(&doc); err != nil || doc.AmountCents != 350 || doc.Region != "eu-west-1" {
		t.Fatalf("enriched data: %+v %v: %s", doc, err, stdout)
	}
	r.stop(t)
}

// TestAPIChannelsSurviveRestart: channels made through the API are made
// again by the next run, a persistent one with its events; one deleted
// through the API is not; the manifest's own cannot be deleted.
func TestAPIChannelsSurviveRestart(t *testing.T) {
	addr := apiAddr(t)
	base := "http://" + addr
	dir := t.TempDir()
	m := writeFile(t, dir, "m.yaml", fmt.Sprintf("apiVersion: aegis/v1\nchannels: {orders: {}}\napi: {listen: %q}\n", addr))
	cli := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, append(args, "--url", base)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d; stderr:\n%s", args, code, stderr)
		}
		return stdout
	}
	r := startCLI(t, "run", "-f", m)
	waitReady(t, r, base)
	cli("channels", "create", "jobs", "--persistent")
	cli("channels", "create", "notes", "--max-events", "5")
	cli("channels", "create", "scratch")
	var in strings.Builder
	for i := range 3 {
		in.WriteString(eventLine("job.queued", i) + "\n")
	}
	cli("publish", "jobs", "-f", writeFile(t, dir, "in.jsonl", in.String()))
	cli("channels", "delete", "scratch")
	if code, _, stderr := runCLI(t, "channels", "delete", "orders", "--url", base); code != exitError || !strings.Contains(stderr, "unsupported") {
		t.Fatalf("deleting the manifest's channel: exit %d; stderr:\n%s", code, stderr)
	}
	r.stop(t)

	r = startCLI(t, "run", "-f", m)
	waitReady(t, r, base)
	var resp httpapi.ChannelList
	if err := json.Unmarshal([]byte(cli("channels", "--json")), &resp); err != nil {
		t.Fatal(err)
	}
	list := resp.Channels
	got := map[string]httpapi.ChannelInfo{}
	for _, c := range list {
		got[c.Name] = c
	}
	if len(got) != 3 || !got["jobs"].Persistent || got["notes"].Retention == nil || got["notes"].Retention.MaxEvents != 5 || got["orders"].Name == "" {
		t.Fatalf("channels after the restart: %+v, want orders, jobs (persistent) and notes (max_events 5)", list)
	}
	code, stdout, stderr := runCLI(t, "subscribe", "jobs", "--url", base, "--start", "all", "--count", "3")
	if code != exitOK || len(lines(stdout)) != 3 {
		t.Fatalf("the persistent channel's events after the restart: exit %d, %q; stderr:\n%s", code, stdout, stderr)
	}
	r.stop(t)
}
