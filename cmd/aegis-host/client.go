package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/aegis-streaming/aegis/httpapi"
)

// The commands publish, subscribe and channels are clients of a host's
// API (aegis-host run with an api block or --api-listen).

// defaultAPIURL is where the client commands find the API without --url
// or AEGIS_URL.
const defaultAPIURL = "http://127.0.0.1:8080"

// clientFlags are the flags of every client command.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "url", EnvVars: []string{"AEGIS_URL"}, Value: defaultAPIURL, Usage: "the API's base `URL`"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"AEGIS_TOKEN"}, Usage: "the API `TOKEN` (sent as a bearer token)"},
		&cli.StringFlag{Name: "ca-file", Usage: "trust the CA certificates of this PEM `FILE` for https (besides the system's)"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long a request may take (subscribe: to connect), such as `30s`"},
	}
}

// withClientFlags adds the client flags to a command's own.
func withClientFlags(flags ...cli.Flag) []cli.Flag { return append(flags, clientFlags()...) }

// newClient returns the API client the flags describe.
func newClient(c *cli.Context) (*httpapi.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if t := flagContext(c, "timeout").Duration("timeout"); t > 0 {
		// Bounds the wait for an answer's headers, which a stream sends
		// at once: also subscribe's connection.
		tr.ResponseHeaderTimeout = t
	}
	if ca := flagContext(c, "ca-file").String("ca-file"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", ca)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	cl, err := httpapi.NewClient(flagContext(c, "url").String("url"), flagContext(c, "token").String("token"), &http.Client{Transport: tr})
	if err != nil {
		return nil, usageError{err: fmt.Errorf("--url: %w", err), helpName: c.Command.HelpName}
	}
	return cl, nil
}

// flagContext is the context whose value of a client flag counts: the
// nearest one, from the command up through its parents, whose command
// line sets it (so that "channels --url U info X" works as "channels info
// X --url U"); else the command's own (its default, or its variable).
func flagContext(c *cli.Context, name string) *cli.Context {
	for _, x := range c.Lineage() {
		if slices.Contains(x.LocalFlagNames(), name) {
			return x
		}
	}
	return c
}

// requestContext bounds one request by --timeout.
func requestContext(c *cli.Context) (context.Context, context.CancelFunc) {
	if t := flagContext(c, "timeout").Duration("timeout"); t > 0 {
		return context.WithTimeout(c.Context, t)
	}
	return context.WithCancel(c.Context)
}

// apiError makes an error the API answered with read "CODE: message".
func apiError(err error) error {
	var e *httpapi.Error
	if !errors.As(err, &e) {
		return err
	}
	msg := e.Code + ": " + e.Message
	if e.Published != nil {
		msg += fmt.Sprintf(" (the first %d events of the request were published)", *e.Published)
	}
	return errors.New(msg)
}

// interspersed returns a command's arguments, applying the flags that
// come after the first of them: urfave/cli stops reading flags at the
// first argument, where "publish orders --type t" should work as
// "publish --type t orders". After "--" everything is an argument.
func interspersed(c *cli.Context) ([]string, error) {
	args := c.Args().Slice()
	bools := map[string]bool{}
	primary := map[string]string{} // a flag's names -> its first, which c.Set sets
	for _, f := range c.Command.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			primary[n], bools[n] = f.Names()[0], isBool
		}
	}
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			out = append(out, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if primary[name] == "" {
			return nil, usageError{err: fmt.Errorf("flag provided but not defined: -%s", name), helpName: c.Command.HelpName}
		}
		switch {
		case hasValue:
		case bools[name]:
			value = "true"
		case i+1 < len(args):
			i++
			value = args[i]
		default:
			return nil, usageError{err: fmt.Errorf("flag needs an argument: -%s", name), helpName: c.Command.HelpName}
		}
		if err := c.Set(primary[name], value); err != nil {
			return nil, usageError{err: fmt.Errorf("invalid value %q for flag -%s: %v", value, name, err), helpName: c.Command.HelpName}
		}
	}
	return out, nil
}

// oneArg returns the single argument of a command (what names it, for
// errors), after the flags that follow it are applied.
func oneArg(c *cli.Context, what string) (string, error) {
	args, err := interspersed(c)
	if err != nil {
		return "", err
	}
	if len(args) != 1 {
		return "", usageError{err: fmt.Errorf("%s takes %s, got %d argument(s)", c.Command.Name, what, len(args)), helpName: c.Command.HelpName}
	}
	return args[0], nil
}

// metaList is the value of a repeatable KEY=VALUE flag; unlike a string
// slice flag it does not split a value at its commas.
type metaList []string

func (m *metaList) Set(s string) error { *m = append(*m, s); return nil }
func (m *metaList) String() string     { return strings.Join(*m, " ") }

// metaFlag is the repeatable --meta KEY=VALUE.
func metaFlag(usage string) cli.Flag {
	return &cli.GenericFlag{Name: "meta", Value: new(metaList), Usage: usage}
}

// parseMeta reads the KEY=VALUE flags of flag (a metaFlag).
func parseMeta(c *cli.Context, flag string) (map[string]string, error) {
	list, _ := c.Generic(flag).(*metaList)
	if list == nil || len(*list) == 0 {
		return nil, nil
	}
	vals := *list
	out := make(map[string]string, len(vals))
	for _, kv := range vals {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{err: fmt.Errorf("--%s %q: write KEY=VALUE", flag, kv), helpName: c.Command.HelpName}
		}
		out[k] = v
	}
	return out, nil
}
