package manifest_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
	"github.com/aegis-streaming/aegis/httpapi"
)

// api is a manifest of one channel and an api block: "api:" is on line 3,
// and the block's fields start on line 4 at column 3.
func api(block string) string {
	return "apiVersion: aegis/v1\nchannels: {orders: {}}\napi:\n" + indent(block, 2)
}

// Secrets of the tests' tokens: 16 bytes and more.
const (
	secretA = "aaaaaaaaaaaaaaaa"
	secretB = "bbbbbbbbbbbbbbbb"
)

func TestAPIValid(t *testing.T) {
	dir, _ := fixture(t)
	for _, tc := range []struct{ name, text string }{
		{"loopback without tokens", api("listen: 127.0.0.1:8080\n")},
		{"localhost without tokens", api("listen: localhost:0\n")},
		{"IPv6 loopback without tokens", api("listen: \"[::1]:8080\"\n")},
		{"every interface, allowed", api("listen: \":8080\"\nallow_unauthenticated: true\n")},
		{"every interface with tokens", api("listen: \":8080\"\ntokens:\n  - {name: a, token: " + secretA + ", grants: [{channels: [\"*\"], actions: [admin]}]}\n")},
		{"a token without grants", api("listen: 10.1.2.3:8080\ntokens: [{name: a, token: " + secretA + "}]\n")},
		{"no pipelines, but the api", api("listen: 127.0.0.1:0\n")},
		{"every setting", api(`listen: 127.0.0.1:0
cors_origins: ["*", "https://app.example.com", "http://localhost:3000"]
max_body: 1MiB
max_batch: 10
request_timeout: 5s
write_timeout: 1s
subscriber_buffer: 16
heartbeat: 2s
tokens:
  - name: ops
    token: ` + secretA + `
    grants:
      - {channels: ["*"], actions: [admin]}
      - {channels: ["orders", "orders.*"], actions: [publish, subscribe]}
`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parse(t, dir, tc.text, nil)
			if err != nil {
				t.Fatalf("Parse:\n%v", err)
			}
			if len(m.Pipelines) != 0 {
				t.Errorf("pipelines: %d", len(m.Pipelines))
			}
			roundTrip(t, dir, m)
		})
	}
}

func TestAPIDefaults(t *testing.T) {
	dir, _ := fixture(t)
	m, err := parse(t, dir, api("listen: 127.0.0.1:0\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := manifest.API{Listen: "127.0.0.1:0", MaxBody: 16 * manifest.MiB, MaxBatch: 10_000,
		RequestTimeout: manifest.Duration(30 * time.Second), WriteTimeout: manifest.Duration(10 * time.Second),
		SubscriberBuffer: httpapi.DefaultSubscriberBuffer, Heartbeat: manifest.Duration(15 * time.Second)}
	if got := *m.API; !apiEqual(got, want) {
		t.Errorf("api after Load = %+v, want %+v", got, want)
	}
}

func apiEqual(a, b manifest.API) bool {
	return a.Listen == b.Listen && a.MaxBody == b.MaxBody && a.MaxBatch == b.MaxBatch && a.RequestTimeout == b.RequestTimeout &&
		a.WriteTimeout == b.WriteTimeout && a.SubscriberBuffer == b.SubscriberBuffer && a.Heartbeat == b.Heartbeat &&
		a.AllowUnauthenticated == b.AllowUnauthenticated && len(a.Tokens) == len(b.Tokens) && a.TLS == nil == (b.TLS == nil)
}

// TestAPIErrors has a case for each problem of an api block; want are the
// errors, each "line:column: field: " and the start of the message.
func TestAPIErrors(t *testing.T) {
	dir, _ := fixture(t)
	tok := func(name, secret, grants string) string {
		s := "  - {name: " + name + ", token: " + secret
		if grants != "" {
			s += ", grants: [" + grants + "]"
		}
		return s + "}\n"
	}
	const admin = `{channels: ["*"], actions: [admin]}`
	for _, tc := range []struct {
		name string
		text string
		want []string
	}{
		{"listen missing", api("cors_origins: [\"*\"]\n"),
			[]string{`4:3: api.listen: required: the host:port to listen on`}},
		{"listen empty", api("listen: \"\"\n"),
			[]string{`4:11: api.listen: required: the host:port to listen on`}},
		{"listen without a port", api("listen: localhost\n"),
			[]string{`4:11: api.listen: must be host:port, such as 127.0.0.1:8080 or :8080 (every interface), got "localhost"`}},
		{"listen a URL", api("listen: http://localhost:8080\n"),
			[]string{`4:11: api.listen: is a URL; give host:port`}},
		{"listen port out of range", api("listen: 127.0.0.1:99999\n"),
			[]string{`4:11: api.listen: port "99999" is not a number from 0 to 65535`}},
		{"every interface without tokens", api("listen: \":8080\"\n"),
			[]string{`4:11: api.listen: ":8080" listens on every interface: without tokens anyone who can reach it may publish, read and delete; add api.tokens or set api.allow_unauthenticated`}},
		{"another address without tokens", api("listen: 10.0.0.1:8080\ntokens: []\n"),
			[]string{`4:11: api.listen: "10.0.0.1:8080" is not a loopback address: without tokens anyone who can reach it may publish, read and delete; add api.tokens or set api.allow_unauthenticated`}},
		{"a host name without tokens", api("listen: aegis.example.com:8080\n"),
			[]string{`4:11: api.listen: "aegis.example.com:8080" is not a loopback address: without tokens`}},
		{"no pipelines and no api", "apiVersion: aegis/v1\nchannels: {orders: {}}\n",
			[]string{`1:1: pipelines: required: a manifest runs at least one pipeline (or serves its channels: see api)`}},
		{"api not a mapping", "apiVersion: aegis/v1\nchannels: {orders: {}}\napi: 127.0.0.1:8080\n",
			[]string{`3:6: api: expected a mapping with the fields listen, tls, tokens, tokens_file, cors_origins, max_body, max_batch, request_timeout, write_timeout, subscriber_buffer, heartbeat, allow_unauthenticated, got a string`}},
		{"unknown key", api("listen: 127.0.0.1:0\nlistn: x\n"),
			[]string{`5:3: api.listn: unknown field "listn" (did you mean "listen"?)`}},

		// TLS.
		{"tls without key_file", api("listen: 127.0.0.1:0\ntls: {cert_file: input.jsonl}\n"),
			[]string{`5:8: api.tls.key_file: required: tls needs cert_file and key_file`}},
		{"tls without cert_file", api("listen: 127.0.0.1:0\ntls:\n  key_file: input.jsonl\n"),
			[]string{`6:5: api.tls.cert_file: required: tls needs cert_file and key_file`}},
		{"tls files missing", api("listen: 127.0.0.1:0\ntls:\n  cert_file: cert.pem\n  key_file: key.pem\n"),
			[]string{`6:16: api.tls.cert_file: no such file: cert.pem`, `7:15: api.tls.key_file: no such file: key.pem`}},
		{"tls key_file a directory", api("listen: 127.0.0.1:0\ntls: {cert_file: input.jsonl, key_file: out}\n"),
			[]string{`5:43: api.tls.key_file: out is a directory, not a file`}},
		{"tls cert_file empty", api("listen: 127.0.0.1:0\ntls: {cert_file: \"\", key_file: input.jsonl}\n"),
			[]string{`5:20: api.tls.cert_file: cannot be empty`}},

		// Limits.
		{"limits zero", api("listen: 127.0.0.1:0\nmax_body: 0\nmax_batch: 0\nrequest_timeout: 0s\nwrite_timeout: 0\nsubscriber_buffer: -1\nheartbeat: 0ms\n"),
			[]string{
				`5:13: api.max_body: must be positive`,
				`6:14: api.max_batch: must be 1 or more, got 0`,
				`7:20: api.request_timeout: must be positive`,
				`8:18: api.write_timeout: must be positive`,
				`9:22: api.subscriber_buffer: must be 1 or more, got -1`,
				`10:14: api.heartbeat: must be positive`,
			}},
		{"max_body not a size", api("listen: 127.0.0.1:0\nmax_body: lots\n"),
			[]string{`5:13: api.max_body: invalid size "lots"`}},
		{"heartbeat without unit", api("listen: 127.0.0.1:0\nheartbeat: 15\n"),
			[]string{`5:14: api.heartbeat: duration 15 has no unit`}},
		{"cors origins", api("listen: 127.0.0.1:0\ncors_origins: [\"\", example.com, \"https://a.example.com/app\", \"https://b.example.com\"]\n"),
			[]string{
				`5:18: api.cors_origins[0]: must be an origin such as https://app.example.com`,
				`5:22: api.cors_origins[1]: must be an origin such as https://app.example.com`,
				`5:35: api.cors_origins[2]: must be an origin such as https://app.example.com`,
			}},

		// Tokens, checked by the API's own rules, at the token at fault.
		{"token too short", api("listen: 127.0.0.1:0\ntokens:\n" + tok("a", "short", admin)),
			[]string{`6:24: api.tokens[0].token: the token is 5 bytes long: at least 16`}},
		{"token missing", api("listen: 127.0.0.1:0\ntokens:\n  - name: a\n    grants: [" + admin + "]\n"),
			[]string{`6:7: api.tokens[0].token: the token is 0 bytes long: at least 16`}},
		{"token name empty", api("listen: 127.0.0.1:0\ntokens:\n" + tok(`""`, secretA, admin)),
			[]string{`6:14: api.tokens[0].name: the name is empty`}},
		{"token name twice", api("listen: 127.0.0.1:0\ntokens:\n" + tok("a", secretA, admin) + tok("a", secretB, admin)),
			[]string{`7:14: api.tokens[1].name: the name "a" is used twice`}},
		{"secret twice", api("listen: 127.0.0.1:0\ntokens:\n" + tok("a", secretA, admin) + tok("b", secretA, admin)),
			[]string{`7:24: api.tokens[1].token: the same token is given to another name`}},
		{"grant without channels", api("listen: 127.0.0.1:0\ntokens:\n" + tok("a", secretA, `{channels: [], actions: [admin]}`)),
			[]string{`6:62: api.tokens[0].grants[0].channels: no channels`}},
		{"grant with an empty pattern", api("listen: 127.0.0.1:0\ntokens:\n" + tok("a", secretA, admin+`, {channels: [orders, ""], actions: [publish]}`)),
			[]string{`6:108: api.tokens[0].grants[1].channels[1]: an empty channel pattern`}},
		{"grant without actions", api("listen: 127.0.0.1:0\ntokens:\n" + tok("a", secretA, `{channels: ["*"]}`)),
			[]string{`6:51: api.tokens[0].grants[0].actions: no actions`}},
		{"unknown action", api("listen: 127.0.0.1:0\ntokens:\n" + tok("a", secretA, `{channels: ["*"], actions: [publish, subscrib]}`)),
			[]string{`6:88: api.tokens[0].grants[0].actions[1]: unknown action "subscrib": want publish, subscribe or admin (did you mean "subscribe"?)`}},
		{"every token's problem", api("listen: 127.0.0.1:0\ntokens:\n" + tok("a", "x", "") + tok("b", secretB, `{channels: [a], actions: [read]}`) + tok("b", secretA, "")),
			[]string{
				`6:24: api.tokens[0].token: the token is 1 bytes long`,
				`7:77: api.tokens[1].grants[0].actions[0]: unknown action "read"`,
				`8:14: api.tokens[2].name: the name "b" is used twice`,
			}},
		{"token not a mapping", api("listen: 127.0.0.1:0\ntokens: [" + secretA + "]\n"),
			[]string{`5:12: api.tokens[0]: expected a mapping with the fields name, token, grants, got a string`}},
		{"tokens_file missing", api("listen: \":8080\"\ntokens_file: nope.yaml\n"),
			[]string{`5:16: api.tokens_file: no such file: nope.yaml`}},
		{"tokens_file empty", api("listen: 127.0.0.1:0\ntokens_file: \"\"\n"),
			[]string{`5:16: api.tokens_file: cannot be empty`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkParseErrors(t, dir, tc.text, tc.want)
		})
	}
}

// TestAPIErrorsHideSecrets: no error about a token shows its secret.
func TestAPIErrorsHideSecrets(t *testing.T) {
	dir, _ := fixture(t)
	const secret = "sixteen-byte-sec"
	_, err := parse(t, dir, api("listen: 127.0.0.1:0\ntokens:\n  - {name: a, token: "+secret+", grants: [{channels: [x], actions: [root]}]}\n  - {name: b, token: "+secret+"}\n"), nil)
	if err == nil {
		t.Fatal("Parse accepted an unknown action and a secret used twice")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the errors show the secret:\n%v", err)
	}
}

func TestAPITokensFromEnv(t *testing.T) {
	dir, _ := fixture(t)
	text := api("listen: \":0\"\ntokens:\n  - {name: ci, token: \"${CI_TOKEN}\", grants: [{channels: [orders], actions: [publish]}]}\n")
	m, err := parse(t, dir, text, map[string]string{"CI_TOKEN": secretA})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.API.Tokens[0].Token; got != secretA {
		t.Errorf("token = %q, want the variable's value", got)
	}
	// Unset: the substitution's own error, at the variable.
	checkParseErrors(t, dir, text, []string{`6:26: environment variable CI_TOKEN is not set`})
	// Set but too short: the token's error.
	_, err = parse(t, dir, text, map[string]string{"CI_TOKEN": "x"})
	checkErrors(t, err, []string{`pipeline.yaml:6:25: api.tokens[0].token: the token is 1 bytes long: at least 16`})
}

// writeTokens writes a tokens file into dir.
func writeTokens(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAPITokensFile(t *testing.T) {
	dir, _ := fixture(t)
	writeTokens(t, dir, "tokens.yaml", `# the API's tokens
tokens:
  - name: reader
    token: ${READER_TOKEN}
    grants: [{channels: ["orders*"], actions: [subscribe]}]
`)
	text := api("listen: \":8080\"\ntokens: [{name: admin, token: " + secretA + ", grants: [{channels: [\"*\"], actions: [admin]}]}]\ntokens_file: tokens.yaml\n")
	m, err := parse(t, dir, text, map[string]string{"READER_TOKEN": secretB})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tk := range m.API.AllTokens() {
		names = append(names, tk.Name+"="+tk.Token)
	}
	if want := []string{"admin=" + secretA, "reader=" + secretB}; !slices.Equal(names, want) {
		t.Errorf("tokens %v, want %v", names, want)
	}
	if ht := m.API.HTTPTokens(); len(ht) != 2 || ht[1].Secret != secretB || string(ht[1].Grants[0].Actions[0]) != "subscribe" {
		t.Errorf("HTTPTokens = %+v", ht)
	}
	// Written back out, the file's tokens stay in the file (one without
	// variables, as roundTrip reads it back without any).
	writeTokens(t, dir, "plain.yaml", "tokens: [{name: reader, token: "+secretB+"}]\n")
	m, err = parse(t, dir, strings.Replace(text, "tokens.yaml", "plain.yaml", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, dir, m)

	// A tokens file alone counts as tokens for a public address; an empty
	// one does not.
	if _, err := parse(t, dir, api("listen: \":8080\"\ntokens_file: tokens.yaml\n"), map[string]string{"READER_TOKEN": secretB}); err != nil {
		t.Errorf("a tokens file without manifest tokens: %v", err)
	}
	writeTokens(t, dir, "empty.yaml", "tokens: []\n")
	if _, err := parse(t, dir, api("listen: \":8080\"\ntokens_file: empty.yaml\n"), nil); err == nil || !strings.Contains(err.Error(), "api.listen") {
		t.Errorf("an empty tokens file on a public address: %v", err)
	}
}

// TestAPITokensFileErrors: the errors of a tokens file name that file, its
// lines and fields, after the manifest's own.
func TestAPITokensFileErrors(t *testing.T) {
	dir, _ := fixture(t)
	manifestText := api("listen: 127.0.0.1:0\nmax_batch: 0\ntokens: [{name: admin, token: " + secretA + "}]\ntokens_file: tokens.yaml\n")
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       []string
	}{
		{"short token", "tokens:\n  - name: reader\n    token: short\n", nil,
			[]string{`tokens.yaml:3:12: tokens[0].token: the token is 5 bytes long: at least 16`}},
		{"a name of the manifest's", "tokens:\n  - {name: admin, token: " + secretB + "}\n", nil,
			[]string{`tokens.yaml:2:12: tokens[0].name: the name "admin" is used twice`}},
		{"a secret of the manifest's", "tokens:\n  - {name: other, token: " + secretA + "}\n", nil,
			[]string{`tokens.yaml:2:26: tokens[0].token: the same token is given to another name`}},
		{"unknown action", "tokens:\n  - name: r\n    token: " + secretB + "\n    grants:\n      - channels: [a]\n        actions: [write]\n", nil,
			[]string{`tokens.yaml:6:19: tokens[0].grants[0].actions[0]: unknown action "write"`}},
		{"unknown field", "tokens:\n  - {nam: r, token: " + secretB + "}\n", nil,
			[]string{`tokens.yaml:2:6: tokens[0].nam: unknown field "nam" (did you mean "name"?)`}},
		{"not a list", "tokens: {r: " + secretB + "}\n", nil,
			[]string{`tokens.yaml:1:9: tokens: expected a list, got a mapping`}},
		{"no tokens key", "# nothing yet\n", nil,
			[]string{`tokens.yaml:1:1: tokens: required: the file's top-level tokens list`}},
		{"unset variable", "tokens:\n  - {name: r, token: \"${R_TOKEN}\"}\n", nil,
			[]string{`tokens.yaml:2:23: environment variable R_TOKEN is not set`}},
		{"invalid YAML", "tokens:\n  - {name: r\n", nil,
			[]string{`tokens.yaml:2:`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeTokens(t, dir, "tokens.yaml", tc.file)
			_, err := parse(t, dir, manifestText, tc.env)
			want := append([]string{`pipeline.yaml:5:14: api.max_batch: must be 1 or more, got 0`}, tc.want...)
			checkErrors(t, err, want)
		})
	}
}

func TestSetAPIListen(t *testing.T) {
	dir, _ := fixture(t)
	minimal := validManifests["minimal"]
	for _, tc := range []struct {
		name, text, addr, err string
	}{
		{"no api block, loopback", minimal, "127.0.0.1:9000", ""},
		{"no api block, every interface", minimal, ":9000", `":9000" listens on every interface: without tokens anyone who can reach it may publish, read and delete; add api.tokens or set api.allow_unauthenticated`},
		{"no api block, not host:port", minimal, "9000", `must be host:port`},
		{"tokens", api("listen: 127.0.0.1:0\ntokens: [{name: a, token: " + secretA + "}]\n"), "0.0.0.0:9000", ""},
		{"allowed", api("listen: 127.0.0.1:0\nallow_unauthenticated: true\n"), "0.0.0.0:9000", ""},
		{"no tokens", api("listen: 127.0.0.1:0\n"), "0.0.0.0:9000", `"0.0.0.0:9000" is not a loopback address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parse(t, dir, tc.text, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = m.SetAPIListen(tc.addr)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("SetAPIListen(%q): %v", tc.addr, err)
			case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
				t.Fatalf("SetAPIListen(%q) = %v, want %q", tc.addr, err, tc.err)
			case err == nil:
				if m.API.Listen != tc.addr || m.API.MaxBatch != manifest.DefaultAPIMaxBatch {
					t.Errorf("api after SetAPIListen: %+v", *m.API)
				}
			}
		})
	}
}
