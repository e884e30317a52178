package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/aegis-streaming/aegis/httpapi"
)

// tokensFile is the shape of api.tokens_file.
type tokensFile struct {
	// Tokens are more tokens of the API, as api.tokens.
	Tokens []APIToken `yaml:"tokens" json:"tokens"`
}

// apiActions are the actions a grant may give, as the API names them.
var apiActions = func() []string {
	var out []string
	for _, a := range httpapi.Actions() {
		out = append(out, string(a))
	}
	return out
}()

// api checks the api block.
func (v *validator) api() {
	a := v.m.API
	if a == nil {
		return
	}
	const p = "api"
	if msg := checkAPIListen(a.Listen); msg != "" {
		v.errf(p+".listen", "%s", msg)
	}
	if t := a.TLS; t != nil {
		for _, f := range []struct{ key, path string }{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
			fp := p + ".tls." + f.key
			switch {
			case !v.d.has(fp):
				v.errAt(p+".tls", fp, "required: tls needs cert_file and key_file (PEM files, relative to the manifest)")
			case f.path == "":
				v.errf(fp, "cannot be empty: a PEM file, relative to the manifest")
			default:
				v.readableFile(fp, f.path)
			}
		}
	}
	for i, o := range a.CORSOrigins {
		if msg := checkOrigin(o); msg != "" {
			v.errf(indexPath(p+".cors_origins", i), "%s", msg)
		}
	}
	if v.d.has(p+".max_body") && a.MaxBody <= 0 {
		v.errf(p+".max_body", "must be positive, such as 16MiB (leave it out for the default)")
	}
	for _, n := range []struct {
		key string
		val int
	}{{"max_batch", a.MaxBatch}, {"subscriber_buffer", a.SubscriberBuffer}} {
		if v.d.has(p+"."+n.key) && n.val < 1 {
			v.errf(p+"."+n.key, "must be 1 or more, got %d (leave it out for the default)", n.val)
		}
	}
	for _, d := range []struct {
		key string
		val Duration
	}{{"request_timeout", a.RequestTimeout}, {"write_timeout", a.WriteTimeout}, {"heartbeat", a.Heartbeat}} {
		if v.d.has(p+"."+d.key) && d.val <= 0 {
			v.errf(p+"."+d.key, "must be positive (leave it out for the default)")
		}
	}
	var valid []httpapi.Token
	valid = v.tokens(v.d, p+".tokens", a.Tokens, valid)
	fileOK := true
	if v.d.has(p + ".tokens_file") {
		n := len(v.errs)
		a.FileTokens = v.readTokensFile(p+".tokens_file", a.TokensFile, valid)
		fileOK = len(v.errs) == n
	}
	// What counts is the tokens there are: an empty tokens file is no
	// authentication either (one that could not be read is reported as
	// such).
	if a.Listen != "" && len(a.AllTokens()) == 0 && fileOK && !a.AllowUnauthenticated {
		if msg := unauthenticated(a.Listen); msg != "" {
			v.errf(p+".listen", "%s", msg)
		}
	}
}

// checkAPIListen says what is wrong with api.listen, if anything.
func checkAPIListen(s string) string {
	if s == "" {
		return "required: the host:port to listen on, such as 127.0.0.1:8080 or :8080 (every interface)"
	}
	if msg := checkListenAddr(s, "8080"); msg != "" {
		return msg
	}
	return ""
}

// unauthenticated says why an API without tokens may not listen on
// addr; "" when addr is a loopback address.
func unauthenticated(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if strings.EqualFold(host, "localhost") {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return ""
	}
	where := fmt.Sprintf("%q is not a loopback address", addr)
	if host == "" {
		where = fmt.Sprintf("%q listens on every interface", addr)
	}
	return where + ": without tokens anyone who can reach it may publish, read and delete; add api.tokens or set api.allow_unauthenticated"
}

// CheckAPIListen checks an address for the API as Load checks api.listen
// in a manifest without tokens: host:port, and a loopback address (or
// allowUnauthenticated). aegis-host run --api-listen checks its value
// with it when the manifest has no api block.
func CheckAPIListen(addr string, allowUnauthenticated bool) error {
	if msg := checkAPIListen(addr); msg != "" {
		return errors.New(msg)
	}
	if !allowUnauthenticated {
		if msg := unauthenticated(addr); msg != "" {
			return errors.New(msg)
		}
	}
	return nil
}

// checkOrigin says what is wrong with a CORS origin, if anything.
func checkOrigin(s string) string {
	if s == "*" {
		return ""
	}
	const want = `an origin such as https://app.example.com or http://localhost:3000, or "*" for any`
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Sprintf("must be %s, got %q", want, s)
	}
	return ""
}

// tokens checks the tokens at path (in the document d) with
// httpapi.Config.Validate, one at a time after those already valid, so
// that each problem is reported at the token, and the field, at fault. It
// returns valid with the tokens that passed added.
func (v *validator) tokens(d *doc, path string, tokens []APIToken, valid []httpapi.Token) []httpapi.Token {
	for i, t := range tokens {
		tp := indexPath(path, i)
		ht := httpToken(t)
		err := httpapi.Config{Tokens: append(slices.Clip(valid), ht)}.Validate()
		if err == nil {
			valid = append(valid, ht)
			continue
		}
		var te *httpapi.TokenError
		if !errors.As(err, &te) {
			v.errs = append(v.errs, d.errAt(d.at(tp), tp, "%v", err))
			continue
		}
		field, msg := tokenField(t, te)
		if te.Grant >= 0 {
			// Its name and secret passed: later tokens must not repeat
			// them either.
			valid = append(valid, httpapi.Token{Name: t.Name, Secret: t.Token})
		}
		fp := tp + "." + field
		v.errs = append(v.errs, d.errAt(d.at(fp), fp, "%s", msg))
	}
	return valid
}

// HTTPTokens converts the API's tokens (of the manifest and its tokens
// file) to the API server's.
func (a *API) HTTPTokens() []httpapi.Token {
	all := a.AllTokens()
	out := make([]httpapi.Token, len(all))
	for i, t := range all {
		out[i] = httpToken(t)
	}
	return out
}

func httpToken(t APIToken) httpapi.Token {
	ht := httpapi.Token{Name: t.Name, Secret: t.Token}
	for _, g := range t.Grants {
		hg := httpapi.Grant{Channels: g.Channels}
		for _, a := range g.Actions {
			hg.Actions = append(hg.Actions, httpapi.Action(a))
		}
		ht.Grants = append(ht.Grants, hg)
	}
	return ht
}

// tokenField is the field of token t at fault (relative to the token)
// and what to say of it: te's, with advice where the manifest can give
// some.
func tokenField(t APIToken, te *httpapi.TokenError) (field, msg string) {
	if te.Grant < 0 || te.Grant >= len(t.Grants) {
		return te.Field, te.Msg
	}
	g := t.Grants[te.Grant]
	gp := indexPath("grants", te.Grant)
	switch te.Field {
	case gp + ".channels":
		return te.Field, te.Msg + ": give channel name patterns, such as [\"*\"] or [\"orders.*\"]"
	case gp + ".actions":
		return te.Field, te.Msg + ": give " + orList(apiActions)
	}
	for k, a := range g.Actions {
		if te.Field == indexPath(gp+".actions", k) {
			msg := fmt.Sprintf("unknown action %q: want %s", a, orList(apiActions))
			if s := suggest(a, apiActions); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return te.Field, msg
		}
	}
	return te.Field, te.Msg
}

// readTokensFile reads and checks api.tokens_file (the field at path);
// its errors name that file. valid are the tokens of the manifest that
// passed, which the file's must not repeat.
func (v *validator) readTokensFile(path, name string, valid []httpapi.Token) []APIToken {
	if name == "" {
		v.errf(path, "cannot be empty: a YAML file with a top-level tokens list, relative to the manifest")
		return nil
	}
	data, err := os.ReadFile(v.m.Resolve(name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.errf(path, "no such file: %s", name)
		return nil
	case err != nil:
		v.errf(path, "cannot read %s: %v", name, unwrapPathError(err))
		return nil
	}
	// Errors name the file as the manifest's name goes: next to it.
	file := name
	if !filepath.IsAbs(name) {
		file = filepath.Join(filepath.Dir(v.d.file), name)
	}
	data, errs := expand(file, data, v.env)
	if len(errs) > 0 {
		v.fileErrs = append(v.fileErrs, errs...)
		return nil
	}
	var tf tokensFile
	d, errs := decodeInto(file, data, &tf)
	if len(errs) > 0 {
		errs.sort()
		v.fileErrs = append(v.fileErrs, errs...)
		return nil
	}
	if !d.has("tokens") {
		v.fileErrs = append(v.fileErrs, d.errAt(position{1, 1}, "tokens", "required: the file's top-level tokens list"))
		return nil
	}
	before := len(v.errs)
	v.tokens(d, "tokens", tf.Tokens, valid)
	// The file's errors go with the file's, after the manifest's.
	v.fileErrs = append(v.fileErrs, v.errs[before:]...)
	v.errs = v.errs[:before]
	return tf.Tokens
}

// decodeInto decodes a YAML file other than the manifest (data, already
// substituted) into out, a pointer to a struct, checking its shape as the
// manifest's is checked.
func decodeInto(file string, data []byte, out any) (*doc, Errors) {
	d := newDoc(file)
	f, err := parseYAML(data)
	if err != nil {
		return d, Errors{yamlError(d, err)}
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return d, nil
	}
	if len(f.Docs) > 1 {
		return d, Errors{d.errAt(position{1, 1}, "", "one YAML document is expected; the file has %d", len(f.Docs))}
	}
	w := &walker{doc: d, anchors: map[string]ast.Node{}, budget: maxNodes}
	w.walk("", f.Docs[0].Body, reflect.TypeOf(out).Elem(), false)
	if len(w.errs) > 0 {
		return d, w.errs
	}
	if err := decodeStrictInto(data, out); err != nil && !errors.Is(err, io.EOF) {
		return d, Errors{yamlError(d, err)}
	}
	return d, nil
}

func decodeStrictInto(data []byte, out any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the YAML decoder failed: %v", r)
		}
	}()
	return yaml.NewDecoder(bytes.NewReader(data), yaml.DisallowUnknownField(), yaml.AllowDuplicateMapKey()).Decode(out)
}

// SetAPIListen makes addr the API's listen address, as aegis-host run
// --api-listen does: it replaces api.listen, or, in a manifest without an
// api block, makes one with just that address and the defaults (so a
// non-loopback address is refused, as Load refuses it without tokens).
func (m *Manifest) SetAPIListen(addr string) error {
	if m.API == nil {
		if err := CheckAPIListen(addr, false); err != nil {
			return err
		}
		m.API = &API{Listen: addr}
		apiDefaults(m.API)
		return nil
	}
	a := m.API
	if err := CheckAPIListen(addr, a.AllowUnauthenticated || len(a.AllTokens()) > 0); err != nil {
		return err
	}
	a.Listen = addr
	return nil
}
