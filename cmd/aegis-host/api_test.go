package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
)

// The tokens of the API tests.
const (
	adminToken = "admin-secret-0123456789"
	shopToken  = "shop-secret-0123456789"
	wrongToken = "wrong-secret-0123456789"
)

// curlPath finds curl, which the deps task installs.
func curlPath(t *testing.T) string {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is missing: go tool task deps installs it")
	}
	return curl
}

// curlDo runs curl with args (the URL among them) and returns the
// answer's status and body.
func curlDo(t *testing.T, args ...string) (int, string) {
	t.Helper()
	all := append([]string{"-sS", "-w", "\n%{http_code}"}, args...)
	out, err := exec.CommandContext(t.Context(), curlPath(t), all...).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", strings.Join(args, " "), err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	code, err := strconv.Atoi(s[i+1:])
	if err != nil {
		t.Fatalf("curl %s: no status in %q", strings.Join(args, " "), s)
	}
	return code, s[:i]
}

// apiErrorBody decodes an error answer of the API.
func apiErrorBody(t *testing.T, body string) httpapi.Error {
	t.Helper()
	var e struct {
		Error *httpapi.Error `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == nil {
		t.Fatalf("not an API error: %v: %s", err, body)
	}
	return *e.Error
}

// apiAddr is a free address for a run's API. It first runs the CLI once:
// urfave/cli's first run must come before runs overlap.
func apiAddr(t *testing.T) string {
	t.Helper()
	runCLI(t, "version")
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// waitReady waits until the run's API answers /readyz with 200.
func waitReady(t *testing.T, r *bgRun, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if r.ended() {
			t.Fatalf("the run ended: exit code %d; stderr:\n%s", r.code, r.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API is not ready after 30s; stderr:\n%s", r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLines waits until the file at path has n lines, and returns them.
func waitLines(t *testing.T, r *bgRun, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		ls := lines(string(b))
		if len(ls) >= n {
			return ls
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines after 30s, want %d; stderr:\n%s", path, len(ls), n, r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventLine is one event in the engine's JSON form, with data {"n": n}.
func eventLine(typ string, n int) string {
	return fmt.Sprintf(`{"type":%q,"source":"shop","data":{"kind":"json","value":{"n":%d}}}`, typ, n)
}

// dataN is the n of an event's data.
func dataN(t *testing.T, e engine.Event) int {
	t.Helper()
	var v struct{ N int }
	if err := e.Data.Decode(&v); err != nil {
		t.Fatalf("event %s: data: %v", e.ID, err)
	}
	return v.N
}

// TestAPIEndToEnd runs a host with an in-memory channel served by the API
// and a pipeline that filters it into a file; curl and the client commands
// publish, read and administer it; a stop drains the pipeline.
func TestAPIEndToEnd(t *testing.T) {
	addr := apiAddr(t)
	base := "http://" + addr
	t.Setenv("ADMIN_TOKEN", adminToken)
	dir := t.TempDir()
	m := writeFile(t, dir, "m.yaml", fmt.Sprintf(`apiVersion: aegis/v1
channels: {orders: {}}
sinks: {out: {type: file, path: out.jsonl}}
api:
  listen: %q
  max_body: 64KiB
  heartbeat: 100ms
  tokens:
    - {name: admin, token: "${ADMIN_TOKEN}", grants: [{channels: ["*"], actions: [admin]}]}
    - {name: shop, token: %q, grants: [{channels: [orders], actions: [publish]}]}
pipelines:
  - name: created
    from: orders
    batch: {max_wait: 5ms}
    steps: [{name: only-created, filter: {type: [order.created]}}]
    to: [out]
`, addr, shopToken))
	out := filepath.Join(dir, "out.jsonl")
	r := startCLI(t, "run", "-f", m)
	waitReady(t, r, base)
	if want := "aegis-host: api listening on " + base + "\n"; !strings.Contains(r.stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, r.stderr.String())
	}
	events := base + "/v1/channels/orders/events"
	bearer := func(tok string) string { return "Authorization: Bearer " + tok }

	// One event as JSON, by the publish-only token.
	code, body := curlDo(t, "-H", bearer(shopToken), "-H", "Content-Type: application/json", "--data-binary", eventLine("order.created", 0), events)
	var res httpapi.PublishResult
	if code != http.StatusOK || json.Unmarshal([]byte(body), &res) != nil || len(res.IDs) != 1 {
		t.Fatalf("publish one: HTTP %d: %s", code, body)
	}
	first := res.IDs[0]
	// A bulk of 100 as NDJSON, and one event the filter drops.
	var bulk strings.Builder
	for i := 1; i <= 100; i++ {
		bulk.WriteString(eventLine("order.created", i) + "\n")
	}
	code, body = curlDo(t, "-H", bearer(shopToken), "-H", "Content-Type: application/x-ndjson", "--data-binary", bulk.String(), events)
	if code != http.StatusOK || json.Unmarshal([]byte(body), &res) != nil || len(res.IDs) != 100 {
		t.Fatalf("publish NDJSON: HTTP %d: %.300s", code, body)
	}
	if code, body = curlDo(t, "-H", bearer(shopToken), "--json", eventLine("order.cancelled", 101), events); code != http.StatusOK {
		t.Fatalf("publish the cancelled one: HTTP %d: %s", code, body)
	}
	got := decodeEvents(t, waitLines(t, r, out, 101))
	for i, e := range got {
		if dataN(t, e) != i || e.Type != "order.created" {
			t.Fatalf("line %d of the sink: %s %v, want order.created n=%d", i+1, e.Type, dataN(t, e), i)
		}
	}
	if got[0].ID != first {
		t.Errorf("the sink's first event is %s, want the one published first, %s", got[0].ID, first)
	}

	// Refusals: JSON bodies with stable codes, and no secret in them.
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		code   string
	}{
		{"no token", []string{"--json", eventLine("order.created", 1), events}, 401, httpapi.CodeUnauthorized},
		{"wrong token", []string{"-H", bearer(wrongToken), "--json", eventLine("order.created", 1), events}, 401, httpapi.CodeUnauthorized},
		{"wrong API key", []string{"-H", "X-API-Key: " + wrongToken, base + "/v1/channels"}, 401, httpapi.CodeUnauthorized},
		{"publish-only token subscribing", []string{"-H", bearer(shopToken), base + "/v1/channels/orders/stream"}, 403, httpapi.CodeForbidden},
		{"publish-only token reading the history", []string{"-H", bearer(shopToken), events}, 403, httpapi.CodeForbidden},
		{"publish-only token deleting", []string{"-H", bearer(shopToken), "-X", "DELETE", base + "/v1/channels/orders"}, 403, httpapi.CodeForbidden},
		{"malformed JSON", []string{"-H", bearer(adminToken), "--json", `{"type":"order.created",`, events}, 400, httpapi.CodeInvalidJSON},
		{"not an event", []string{"-H", bearer(adminToken), "--json", `{"type":""}`, events}, 400, httpapi.CodeInvalidEvent},
		{"too large", []string{"-H", bearer(adminToken), "--json", `{"type":"order.created","source":"` + strings.Repeat("x", 70<<10) + `"}`, events}, 413, httpapi.CodeTooLarge},
		{"no such channel", []string{"-H", bearer(adminToken), base + "/v1/channels/nope"}, 404, httpapi.CodeChannelNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := curlDo(t, tc.args...)
			e := apiErrorBody(t, body)
			if code != tc.status || e.Code != tc.code {
				t.Errorf("HTTP %d %s, want %d %s: %s", code, e.Code, tc.status, tc.code, body)
			}
			for _, secret := range []string{adminToken, shopToken, wrongToken} {
				if strings.Contains(body, secret) {
					t.Errorf("the answer shows a secret: %s", body)
				}
			}
		})
	}

	// A Server-Sent Events stream gets what is published after it opened.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sse := exec.CommandContext(ctx, curlPath(t), "-sS", "-N", "-H", bearer(adminToken), base+"/v1/channels/orders/stream?type=order.created")
	stdout, err := sse.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sse.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	next := func(prefix string) string {
		t.Helper()
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("the stream ended before a line %q: %v", prefix, sc.Err())
		return ""
	}
	next("event: subscribed")
	code, body = curlDo(t, "-H", bearer(shopToken), "--json", eventLine("order.created", 200), events)
	if code != http.StatusOK || json.Unmarshal([]byte(body), &res) != nil {
		t.Fatalf("publish: HTTP %d: %s", code, body)
	}
	if l := next("id: "); l != "id: "+res.IDs[0].String() {
		t.Errorf("the stream's next event is %q, want id %s", l, res.IDs[0])
	}
	var streamed engine.Event
	if err := json.Unmarshal([]byte(strings.TrimPrefix(next("data: "), "data: ")), &streamed); err != nil || dataN(t, streamed) != 200 {
		t.Errorf("the stream's event: %v, n=%d", err, dataN(t, streamed))
	}
	cancel()
	sse.Wait()

	// The client commands, against the same host.
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(args, "--url", base, "--token", adminToken)...)
	}
	code, stdoutText, stderr := cli("publish", "orders", "--type", "order.created", "--source", "cli", "--data", `{"n":201}`, "--meta", "via=cli", "--meta", "tags=a,b")
	if code != exitOK || len(lines(stdoutText)) != 1 {
		t.Fatalf("publish: exit %d, stdout %q; stderr:\n%s", code, stdoutText, stderr)
	}
	cliID := strings.TrimSpace(stdoutText)
	var fileEvents strings.Builder
	for i := 202; i < 207; i++ {
		fileEvents.WriteString(eventLine("order.created", i) + "\n\n") // blank lines are skipped
	}
	input := writeFile(t, dir, "events.jsonl", fileEvents.String())
	code, stdoutText, stderr = cli("publish", "orders", "-f", input, "--batch", "2")
	if code != exitOK || len(lines(stdoutText)) != 5 {
		t.Fatalf("publish -f: exit %d, stdout %q; stderr:\n%s", code, stdoutText, stderr)
	}
	setStdin(t, eventLine("order.created", 207)+"\n")
	if code, stdoutText, stderr = cli("publish", "orders", "-f", "-", "--quiet"); code != exitOK || stdoutText != "" {
		t.Fatalf("publish -f - --quiet: exit %d, stdout %q; stderr:\n%s", code, stdoutText, stderr)
	}
	code, stdoutText, stderr = runCLI(t, "publish", "audit", "--url", base, "--token", shopToken, "--type", "x")
	if want := `aegis-host: forbidden: token "shop" may not publish on channel "audit"`; code != exitError || strings.TrimSpace(stderr) != want || stdoutText != "" {
		t.Errorf("publish without the grant: exit %d, stdout %q, stderr %q, want 1 and %q", code, stdoutText, stderr, want)
	}
	code, stdoutText, stderr = cli("publish", "orders", "-f", writeFile(t, dir, "bad.jsonl", eventLine("order.created", 1)+"\n{\"type\":\n"))
	if code != exitError || !strings.HasPrefix(stderr, "aegis-host: invalid_json: line 2: ") || stdoutText != "" {
		t.Errorf("publish -f of a bad line: exit %d, stdout %q, stderr %q", code, stdoutText, stderr)
	}

	code, stdoutText, stderr = cli("subscribe", "orders", "--start", "all", "--type", "order.created", "--count", "3")
	if code != exitOK {
		t.Fatalf("subscribe: exit %d; stderr:\n%s", code, stderr)
	}
	subbed := decodeEvents(t, lines(stdoutText))
	if len(subbed) != 3 || subbed[0].ID != first || dataN(t, subbed[1]) != 1 || dataN(t, subbed[2]) != 2 {
		t.Errorf("subscribe --start all --count 3:\n%s", stdoutText)
	}
	code, stdoutText, stderr = cli("subscribe", "orders", "--meta", "tags=a,b", "--meta", "via=cli", "--count", "1", "--start", "all")
	if code != exitOK || !strings.Contains(stdoutText, `"id":"`+cliID+`"`) || !strings.Contains(stdoutText, `"metadata":{"tags":"a,b","via":"cli"}`) {
		t.Errorf("subscribe --meta: exit %d, stdout %q; stderr:\n%s", code, stdoutText, stderr)
	}
	code, stdoutText, stderr = cli("subscribe", "orders", "--after-id", first.String(), "--count", "1")
	if subbed = decodeEvents(t, lines(stdoutText)); code != exitOK || len(subbed) != 1 || dataN(t, subbed[0]) != 1 {
		t.Errorf("subscribe --after-id: exit %d, stdout %q; stderr:\n%s", code, stdoutText, stderr)
	}
	code, _, stderr = runCLI(t, "subscribe", "orders", "--url", base, "--token", shopToken, "--count", "1")
	if want := `aegis-host: forbidden: token "shop" may not subscribe on channel "orders"`; code != exitError || strings.TrimSpace(stderr) != want {
		t.Errorf("subscribe without the grant: exit %d, stderr %q, want 1 and %q", code, stderr, want)
	}

	code, stdoutText, stderr = cli("channels")
	table := lines(stdoutText)
	row := []string{}
	if len(table) == 2 {
		row = strings.Fields(table[1])
	}
	// The lag is whatever the pipeline has still to take.
	if code != exitOK || len(row) != 5 || strings.Join(strings.Fields(table[0]), " ") != "NAME PERSISTENT PUBLISHED SUBSCRIBERS LAG" ||
		strings.Join(row[:4], " ") != "orders false 110 1" || strings.Trim(row[4], "0123456789") != "" {
		t.Errorf("channels: exit %d:\n%s%s", code, stdoutText, stderr)
	}
	code, stdoutText, _ = cli("channels", "--json")
	var list httpapi.ChannelList
	if code != exitOK || json.Unmarshal([]byte(stdoutText), &list) != nil || len(list.Channels) != 1 || list.Channels[0].Stats.Published != 110 {
		t.Errorf("channels --json: exit %d:\n%s", code, stdoutText)
	}
	code, stdoutText, stderr = cli("channels", "create", "audit", "--max-events", "5", "--max-age", "1h")
	var info httpapi.ChannelInfo
	if code != exitOK || json.Unmarshal([]byte(stdoutText), &info) != nil || info.Name != "audit" || info.Retention.MaxEvents != 5 || time.Duration(info.Retention.MaxAge) != time.Hour {
		t.Errorf("channels create: exit %d:\n%s%s", code, stdoutText, stderr)
	}
	if code, _, stderr = cli("channels", "create", "audit"); code != exitError || !strings.HasPrefix(stderr, "aegis-host: channel_exists: ") {
		t.Errorf("channels create, again: exit %d, stderr %q", code, stderr)
	}
	if code, stdoutText, stderr = cli("channels", "info", "audit"); code != exitOK || json.Unmarshal([]byte(stdoutText), &info) != nil || info.Name != "audit" {
		t.Errorf("channels info: exit %d:\n%s%s", code, stdoutText, stderr)
	}
	if code, stdoutText, stderr = cli("channels", "delete", "audit"); code != exitOK || stdoutText != "" {
		t.Errorf("channels delete: exit %d:\n%s%s", code, stdoutText, stderr)
	}
	if code, _, stderr = cli("channels", "info", "audit"); code != exitError || strings.TrimSpace(stderr) != `aegis-host: channel_not_found: channel "audit" not found` {
		t.Errorf("channels info of a deleted channel: exit %d, stderr %q", code, stderr)
	}

	// The stop drains the pipeline: everything published is in the sink.
	r.stop(t)
	got = decodeEvents(t, readLines(t, out))
	if len(got) != 109 {
		t.Fatalf("%d events in the sink after the stop, want 109", len(got))
	}
	for i, e := range got {
		want := i
		if i > 100 {
			want = i + 99 // 200 to 207
		}
		if dataN(t, e) != want {
			t.Fatalf("line %d of the sink: n=%d, want %d", i+1, dataN(t, e), want)
		}
	}
	if s := pipelineSummary(t, r.stderr.String(), "created"); s.in != 110 || s.out != 109 {
		t.Errorf("summary: %s; want in 110, out 109", s.text)
	}
}
