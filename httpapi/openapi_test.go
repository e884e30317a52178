package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
)

// docURL is where the tests' schema compiler finds the document.
const docURL = "http://aegis.test/openapi.json"

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// readDoc reads openapi.json: its bytes and its JSON.
func readDoc(t *testing.T) ([]byte, map[string]any) {
	t.Helper()
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return b, doc
}

// obj is v[keys[0]][keys[1]]... as an object; nil where there is none.
func obj(v any, keys ...string) map[string]any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	m, _ := v.(map[string]any)
	return m
}

// operations are the document's operations by "METHOD path".
func operations(doc map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for path, item := range obj(doc, "paths") {
		for _, m := range httpMethods {
			if op := obj(item, m); op != nil {
				out[strings.ToUpper(m)+" "+path] = op
			}
		}
	}
	return out
}

// diff says what is in want and not in got, and the other way round.
func diff(what string, got, want []string) string {
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return ""
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return fmt.Sprintf("%s: missing %q; not expected %q", what, missing, extra)
}

func newServer(t *testing.T, cfg httpapi.Config) (*httpapi.Server, *httptest.Server) {
	t.Helper()
	eng := engine.New(engine.Config{})
	t.Cleanup(func() { eng.Close() })
	srv, err := httpapi.New(eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts
}

func TestOpenAPIDocument(t *testing.T) {
	b, doc := readDoc(t)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", doc["openapi"])
	}
	if info := obj(doc, "info"); info["title"] != "aegis-host API" || info["version"] != "1" {
		t.Errorf("info: title %v, version %v", info["title"], info["version"])
	}
	// Pretty-printed with two spaces, ending in a newline.
	var compact, indented bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		t.Fatal(err)
	}
	if err := json.Indent(&indented, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	indented.WriteByte('\n')
	if !bytes.Equal(indented.Bytes(), b) {
		t.Error("openapi.json is not indented with two spaces (as json.Indent writes it) or does not end in one newline")
	}
	if !bytes.Equal(httpapi.OpenAPI, b) {
		t.Error("httpapi.OpenAPI is not openapi.json")
	}
}

func TestOpenAPIRoutes(t *testing.T) {
	srv, _ := newServer(t, httpapi.Config{})
	var want []string
	for path, methods := range srv.Routes() {
		for _, m := range methods {
			want = append(want, m+" "+path)
		}
	}
	_, doc := readDoc(t)
	ops := operations(doc)
	got := slices.Collect(maps.Keys(ops))
	if d := diff("operations of openapi.json against Server.Routes", got, want); d != "" {
		t.Error(d)
	}
	for key := range ops {
		if strings.HasPrefix(key, "HEAD ") {
			t.Errorf("%s: HEAD is not documented", key)
		}
	}

	camel := regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	ids := map[string]string{}
	for key, op := range ops {
		id, _ := op["operationId"].(string)
		switch {
		case !camel.MatchString(id):
			t.Errorf("%s: operationId %q is not camelCase", key, id)
		case ids[id] != "":
			t.Errorf("%s: operationId %q is %s's too", key, id, ids[id])
		}
		ids[id] = key
	}

	// Every {name} of a path is a path parameter, and every path
	// parameter is in the path.
	placeholder := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range obj(doc, "paths") {
		var inPath []string
		for _, m := range placeholder.FindAllStringSubmatch(path, -1) {
			inPath = append(inPath, m[1])
		}
		for _, m := range httpMethods {
			op := obj(item, m)
			if op == nil {
				continue
			}
			var declared []string
			params, _ := obj(item)["parameters"].([]any)
			more, _ := op["parameters"].([]any)
			for _, p := range append(slices.Clone(params), more...) {
				p := resolve(t, doc, p)
				if p["in"] == "path" {
					if p["required"] != true {
						t.Errorf("%s %s: path parameter %v is not required", m, path, p["name"])
					}
					declared = append(declared, p["name"].(string))
				}
			}
			if d := diff(strings.ToUpper(m)+" "+path+": path parameters", declared, inPath); d != "" {
				t.Error(d)
			}
		}
	}
}

// resolve follows v's $ref, if it has one, within the document.
func resolve(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	target, err := pointer(doc, ref)
	if err != nil {
		t.Fatal(err)
	}
	return resolve(t, doc, target)
}

// pointer finds a "#/..." reference in the document.
func pointer(doc map[string]any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("$ref %q does not point into the document", ref)
	}
	var v any = doc
	for tok := range strings.SplitSeq(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q: %q is not in an object", ref, tok)
		}
		if v, ok = m[tok]; !ok {
			return nil, fmt.Errorf("$ref %q: no %q", ref, tok)
		}
	}
	return v, nil
}

func TestOpenAPIErrorCodes(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Code") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("errors.go: %s is not a string literal", name.Name)
				}
				code, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				codes = append(codes, code)
			}
		}
	}
	if len(codes) < 10 {
		t.Fatalf("errors.go has %d Code constants: the parse missed them", len(codes))
	}
	if httpapi.CodeChannelNotFound != "channel_not_found" || !slices.Contains(codes, httpapi.CodeChannelNotFound) {
		t.Fatalf("the parse of errors.go does not find the constants' values: %q", codes)
	}
	_, doc := readDoc(t)
	enum, _ := obj(doc, "components", "schemas", "Error", "properties", "code")["enum"].([]any)
	var documented []string
	for _, v := range enum {
		documented = append(documented, v.(string))
	}
	if d := diff("the Error schema's code enum against errors.go", documented, codes); d != "" {
		t.Error(d)
	}
	desc, _ := obj(doc, "components", "schemas", "Error", "properties", "code")["description"].(string)
	for _, c := range codes {
		if !strings.Contains(desc, c) {
			t.Errorf("the description of the Error schema's code does not explain %q", c)
		}
	}
}

func TestOpenAPIReferences(t *testing.T) {
	_, doc := readDoc(t)
	used := map[string]bool{}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if _, err := pointer(doc, ref); err != nil {
					t.Errorf("%s: %v", where, err)
				}
				if c, ok := strings.CutPrefix(ref, "#/components/"); ok {
					used[c] = true
				} else {
					t.Errorf("%s: $ref %q is not to a component", where, ref)
				}
			}
			for k, e := range v {
				walk(where+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				walk(where+"/"+strconv.Itoa(i), e)
			}
		}
	}
	walk("#", doc)
	for section, comps := range obj(doc, "components") {
		if section == "securitySchemes" {
			continue
		}
		for name := range comps.(map[string]any) {
			if !used[section+"/"+name] {
				t.Errorf("components/%s/%s is never referred to", section, name)
			}
		}
	}

	// Security requirements name the schemes defined, and every scheme
	// is named.
	schemes := slices.Collect(maps.Keys(obj(doc, "components", "securitySchemes")))
	var named []string
	requirements := func(where string, v any) {
		list, ok := v.([]any)
		if !ok {
			t.Errorf("%s: security is not a list", where)
			return
		}
		for _, r := range list {
			for name := range r.(map[string]any) {
				if !slices.Contains(schemes, name) {
					t.Errorf("%s: security scheme %q is not defined", where, name)
				}
				if !slices.Contains(named, name) {
					named = append(named, name)
				}
			}
		}
	}
	requirements("#/security", doc["security"])
	for key, op := range operations(doc) {
		if s, ok := op["security"]; ok {
			requirements(key, s)
		}
	}
	if d := diff("security schemes used", named, schemes); d != "" {
		t.Error(d)
	}
}

func TestOpenAPIMethodNotAllowed(t *testing.T) {
	v := newValidator(t)
	_, ts := newServer(t, httpapi.Config{})
	for path, item := range obj(v.doc, "paths") {
		t.Run(path, func(t *testing.T) {
			var methods []string
			for _, m := range httpMethods {
				if obj(item, m) != nil {
					methods = append(methods, strings.ToUpper(m))
				}
			}
			target := regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "x")
			req, _ := http.NewRequest(http.MethodPatch, ts.URL+target, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("PATCH: %s", res.Status)
			}
			allow := strings.Split(res.Header.Get("Allow"), ", ")
			if d := diff("the Allow header against the documented methods", allow, methods); d != "" {
				t.Error(d)
			}
			for _, m := range methods {
				v.check("PATCH "+path, v.responseSchema(m, path, res.StatusCode, "application/json"), b)
			}
		})
	}
}

// open are the routes that need no token.
var open = []string{"GET /healthz", "GET /readyz", "GET /v1/openapi.json"}

func TestOpenAPISecurity(t *testing.T) {
	_, ts := newServer(t, httpapi.Config{Tokens: []httpapi.Token{{
		Name: "reader", Secret: "0123456789abcdef0123",
		Grants: []httpapi.Grant{{Channels: []string{"*"}, Actions: []httpapi.Action{httpapi.Subscribe}}},
	}}})
	_, doc := readDoc(t)
	if len(obj(doc)["security"].([]any)) != 3 {
		t.Errorf("the document's security: %v, want the three ways of sending a token", doc["security"])
	}
	for key, op := range operations(doc) {
		t.Run(key, func(t *testing.T) {
			sec, hasSec := op["security"].([]any)
			isOpen := slices.Contains(open, key)
			switch {
			case isOpen && (!hasSec || len(sec) != 0):
				t.Errorf("security: %v, want []", op["security"])
			case !isOpen && hasSec:
				t.Errorf("security: %v, want the document's", op["security"])
			}
			responses := obj(op, "responses")
			if obj(responses, "405") == nil {
				t.Error("405 is not documented")
			}
			if !isOpen && obj(responses, "401") == nil {
				t.Error("401 is not documented")
			}
			method, path, _ := strings.Cut(key, " ")
			path = regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "x")
			req, _ := http.NewRequest(method, ts.URL+path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if (res.StatusCode == http.StatusUnauthorized) == isOpen {
				t.Errorf("%s without a token: %s", key, res.Status)
			}
		})
	}
}

func TestOpenAPIServed(t *testing.T) {
	b, _ := readDoc(t)
	_, ts := newServer(t, httpapi.Config{Tokens: []httpapi.Token{{Name: "admin", Secret: "0123456789abcdef0123"}}})
	res, err := http.Get(ts.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	served, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json without a token: %s: %s", res.Status, served)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if !bytes.Equal(served, b) {
		t.Errorf("the served document (%d bytes) is not openapi.json (%d bytes)", len(served), len(b))
	}
}

// jsonNames are the JSON object keys of struct type typ: embedded
// structs flatten, "-" is skipped. omitempty says which keys may be left
// out.
func jsonNames(typ reflect.Type) (names []string, omitempty map[string]bool) {
	omitempty = map[string]bool{}
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			n, o := jsonNames(f.Type)
			names = append(names, n...)
			maps.Copy(omitempty, o)
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		omitempty[name] = slices.Contains(strings.Split(opts, ","), "omitempty")
	}
	return names, omitempty
}

// schemaProperties are the property names of a schema, those of its
// allOf members included, and its required ones.
func schemaProperties(t *testing.T, doc map[string]any, schema map[string]any) (props, required []string) {
	t.Helper()
	props = slices.Collect(maps.Keys(obj(schema, "properties")))
	req, _ := schema["required"].([]any)
	for _, r := range req {
		required = append(required, r.(string))
	}
	all, _ := schema["allOf"].([]any)
	for _, s := range all {
		p, r := schemaProperties(t, doc, resolve(t, doc, s))
		props, required = append(props, p...), append(required, r...)
	}
	return props, required
}

func TestOpenAPISchemasMirrorTypes(t *testing.T) {
	_, doc := readDoc(t)
	for _, tc := range []struct {
		name string
		v    any
		// answer is true for a type the host writes: its fields that
		// are never left out are required.
		answer bool
	}{
		{name: "ChannelSpec", v: httpapi.ChannelSpec{}},
		{name: "RetentionSpec", v: httpapi.RetentionSpec{}, answer: true},
		{name: "ChannelInfo", v: httpapi.ChannelInfo{}, answer: true},
		{name: "ChannelStats", v: httpapi.ChannelStats{}, answer: true},
		{name: "ChannelList", v: httpapi.ChannelList{}, answer: true},
		{name: "Stats", v: httpapi.Stats{}, answer: true},
		{name: "PublishResult", v: httpapi.PublishResult{}, answer: true},
		{name: "HistoryResult", v: httpapi.HistoryResult{}, answer: true},
		{name: "SubscriptionInfo", v: httpapi.SubscriptionInfo{}, answer: true},
		{name: "SubscriptionList", v: httpapi.SubscriptionList{}, answer: true},
		{name: "Subscribed", v: httpapi.Subscribed{}, answer: true},
		{name: "SettleRequest", v: httpapi.SettleRequest{}},
		{name: "SettleResult", v: httpapi.SettleResult{}, answer: true},
		{name: "WSMessage", v: httpapi.WSMessage{}},
		{name: "Error", v: httpapi.Error{}, answer: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			schema := obj(doc, "components", "schemas", tc.name)
			if schema == nil {
				t.Fatal("no such schema")
			}
			props, required := schemaProperties(t, doc, schema)
			fields, omitempty := jsonNames(reflect.TypeOf(tc.v))
			if d := diff("properties against the JSON fields of httpapi."+tc.name, props, fields); d != "" {
				t.Error(d)
			}
			for _, r := range required {
				if !slices.Contains(props, r) {
					t.Errorf("required %q is no property", r)
				}
			}
			if tc.answer {
				for _, f := range fields {
					if !omitempty[f] && !slices.Contains(required, f) {
						t.Errorf("%q is always written but not required", f)
					}
				}
			}
		})
	}
}

// validator checks JSON against the document's schemas.
type validator struct {
	t   *testing.T
	doc map[string]any
	raw map[string]any // doc with its numbers as json.Number, exact
	c   *jsonschema.Compiler
}

func newValidator(t *testing.T) *validator {
	b, doc := readDoc(t)
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(docURL, raw); err != nil {
		t.Fatal(err)
	}
	return &validator{t: t, doc: doc, raw: raw.(map[string]any), c: c}
}

// check validates the JSON b against the schema at the pointer loc.
func (v *validator) check(what, loc string, b []byte) {
	v.t.Helper()
	sch, err := v.c.Compile(docURL + loc)
	if err != nil {
		v.t.Fatalf("%s: schema %s: %v", what, loc, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		v.t.Fatalf("%s: not JSON: %v: %s", what, err, b)
	}
	if err := sch.Validate(inst); err != nil {
		v.t.Errorf("%s: %s does not match %s: %v", what, b, loc, err)
	}
}

// checkValue validates a value of the document (an example) against the
// schema at the pointer loc.
func (v *validator) checkValue(what, loc string, inst any) {
	v.t.Helper()
	sch, err := v.c.Compile(docURL + loc)
	if err != nil {
		v.t.Fatalf("%s: schema %s: %v", what, loc, err)
	}
	if err := sch.Validate(inst); err != nil {
		v.t.Errorf("%s: does not match %s: %v", what, loc, err)
	}
}

func escape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

// responseSchema is where the schema of an answer of the operation is:
// "#/..." of the response (or the component it refers to) for the
// status and media type. It fails the test when the answer is not
// documented.
func (v *validator) responseSchema(method, path string, status int, media string) string {
	v.t.Helper()
	loc := "#/paths/" + escape(path) + "/" + strings.ToLower(method) + "/responses/" + strconv.Itoa(status)
	res, err := pointer(v.doc, loc)
	if err != nil {
		v.t.Fatalf("%s %s: status %d is not documented", method, path, status)
	}
	if ref, ok := res.(map[string]any)["$ref"].(string); ok {
		loc = ref
		res, _ = pointer(v.doc, ref)
	}
	if obj(res, "content", media) == nil {
		v.t.Fatalf("%s %s: status %d has no %s content", method, path, status, media)
	}
	return loc + "/content/" + escape(media) + "/schema"
}

// call makes a request and checks its body against the documented
// request schema, and the answer's against the response's; it returns
// the answer's body.
func (v *validator) call(ts *httptest.Server, method, route, path, media string, body []byte, wantStatus int) []byte {
	v.t.Helper()
	what := method + " " + path
	if body != nil && media == "application/json" {
		loc := "#/paths/" + escape(route) + "/" + strings.ToLower(method) + "/requestBody"
		rb, err := pointer(v.doc, loc)
		if err != nil {
			v.t.Fatalf("%s: no request body is documented", what)
		}
		if ref, ok := rb.(map[string]any)["$ref"].(string); ok {
			loc = ref
		}
		v.check(what+" request", loc+"/content/"+escape(media)+"/schema", body)
	}
	req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", media)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		v.t.Fatal(err)
	}
	if res.StatusCode != wantStatus {
		v.t.Fatalf("%s: %s, want %d: %s", what, res.Status, wantStatus, b)
	}
	if res.StatusCode == http.StatusNoContent {
		v.responseSchemaless(method, route, res.StatusCode)
		return b
	}
	ct, _, _ := strings.Cut(res.Header.Get("Content-Type"), ";")
	v.check(what+" answer", v.responseSchema(method, route, res.StatusCode, ct), b)
	return b
}

// responseSchemaless checks that a status without a body is documented.
func (v *validator) responseSchemaless(method, path string, status int) {
	v.t.Helper()
	if _, err := pointer(v.doc, "#/paths/"+escape(path)+"/"+strings.ToLower(method)+"/responses/"+strconv.Itoa(status)); err != nil {
		v.t.Errorf("%s %s: status %d is not documented", method, path, status)
	}
}

// sseEvent reads the next Server-Sent Event (comments skipped): its name
// and data.
func sseEvent(t *testing.T, r *bufio.Reader) (name, data string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && data != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// TestOpenAPIAnswersMatchSchemas makes requests of every kind and checks
// what is sent and answered against the document's schemas.
func TestOpenAPIAnswersMatchSchemas(t *testing.T) {
	v := newValidator(t)
	_, ts := newServer(t, httpapi.Config{})
	const (
		channels = "/v1/channels"
		channel  = "/v1/channels/{channel}"
		events   = "/v1/channels/{channel}/events"
		subs     = "/v1/channels/{channel}/subscriptions"
		ack      = "/v1/subscriptions/{id}/ack"
	)
	js, nd := "application/json", "application/x-ndjson"

	v.call(ts, "GET", "/healthz", "/healthz", "", nil, 200)
	v.call(ts, "GET", "/readyz", "/readyz", "", nil, 200)
	v.call(ts, "POST", channels, channels, js, []byte(`{"name":"orders","buffer":64,"block_timeout":2.5,"retention":{"max_events":100,"max_age":"1h"}}`), 201)
	v.call(ts, "POST", channels, channels, js, []byte(`{"name":"orders"}`), 409)
	v.call(ts, "POST", channels, channels, js, []byte(`{"name":"bad name"}`), 400)
	v.call(ts, "POST", channels, channels, js, []byte(`{"name":"mem","replicas":3}`), 422)
	v.call(ts, "GET", channels, channels, "", nil, 200)
	v.call(ts, "GET", channel, "/v1/channels/orders", "", nil, 200)
	v.call(ts, "GET", channel, "/v1/channels/nope", "", nil, 404)

	// Every kind of data, in and out.
	batch := `[
		{"type":"t.null","data":{"kind":"null"}},
		{"type":"t.null2","data":null},
		{"type":"t.bool","source":"urn:test","data":{"kind":"bool","value":true}},
		{"type":"t.int","data":{"kind":"int","value":-9223372036854775808}},
		{"type":"t.float","data":{"kind":"float","value":0.1}},
		{"type":"t.nan","data":{"kind":"float","value":"NaN"}},
		{"type":"t.inf","data":{"kind":"float","value":"-Inf"}},
		{"type":"t.string","data":{"kind":"string","value":"héllo"}},
		{"type":"t.bytes","data":{"kind":"bytes","value":"AAEC/w=="}},
		{"type":"t.json","time":"2026-11-26T12:00:00.123456789Z","metadata":{"k":"v"},"data":{"kind":"json","value":{"amount":79.19}}},
		{"id":"0190f3a2-5c1e-7b4a-9d2e-1f0a3c4b5d6e","type":"t.noData"}
	]`
	var published httpapi.PublishResult
	if err := json.Unmarshal(v.call(ts, "POST", events, "/v1/channels/orders/events", js, []byte(batch), 200), &published); err != nil {
		t.Fatal(err)
	}
	v.call(ts, "POST", events, "/v1/channels/orders/events", js, []byte(`{"type":"one","data":{"kind":"int","value":1}}`), 200)
	v.call(ts, "POST", events, "/v1/channels/orders/events", nd, []byte("{\"type\":\"a\"}\n\n{\"type\":\"b\"}\n"), 200)
	v.call(ts, "POST", events, "/v1/channels/orders/events", js, []byte(`{"type":"bad type"}`), 400)
	v.call(ts, "POST", events, "/v1/channels/nope/events", js, []byte(`{"type":"x"}`), 404)
	v.call(ts, "POST", events, "/v1/channels/orders/events", "text/plain", []byte("x"), 415)
	v.call(ts, "GET", events, "/v1/channels/orders/events", "", nil, 200)
	v.call(ts, "GET", events, "/v1/channels/orders/events?type=t.json,t.bytes&meta.k=v&limit=5", "", nil, 200)
	v.call(ts, "GET", events, "/v1/channels/orders/events?typo=1", "", nil, 400)
	v.call(ts, "GET", events, "/v1/channels/orders/events?after_seq=1", "", nil, 422)
	v.call(ts, "GET", events, "/v1/channels/orders/events?after_id=0190f3a2-5c1e-7b4a-9d2e-000000000000", "", nil, 404)

	// NDJSON history: every line is an Event.
	req, _ := http.NewRequest("GET", ts.URL+"/v1/channels/orders/events", nil)
	req.Header.Set("Accept", nd)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	v.responseSchema("GET", events, res.StatusCode, nd)
	sc := bufio.NewScanner(res.Body)
	lines := 0
	for sc.Scan() {
		v.check("an NDJSON history line", "#/components/schemas/Event", sc.Bytes())
		lines++
	}
	res.Body.Close()
	if lines != len(published.IDs)+3 {
		t.Errorf("NDJSON history: %d lines, want %d", lines, len(published.IDs)+3)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Server-Sent Events: the subscribed event, then the events.
	req, _ = http.NewRequestWithContext(ctx, "GET", ts.URL+"/v1/channels/orders/stream?start=all", nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	v.responseSchema("GET", "/v1/channels/{channel}/stream", res.StatusCode, "text/event-stream")
	if res.Header.Get("Aegis-Subscription") == "" {
		t.Error("the stream has no Aegis-Subscription header")
	}
	sse := bufio.NewReader(res.Body)
	if name, data := sseEvent(t, sse); name != "subscribed" {
		t.Errorf("the first SSE event is %q, want subscribed", name)
	} else {
		v.check("the SSE subscribed event", "#/components/schemas/Subscribed", []byte(data))
	}
	for range 3 {
		name, data := sseEvent(t, sse)
		if name != "" {
			t.Errorf("an event is named %q", name)
		}
		v.check("an SSE event", "#/components/schemas/Event", []byte(data))
	}

	// The stream is listed.
	var list httpapi.SubscriptionList
	if err := json.Unmarshal(v.call(ts, "GET", subs, "/v1/channels/orders/subscriptions", "", nil, 200), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Subscriptions) == 0 {
		t.Error("the open stream is not listed")
	}
	v.call(ts, "GET", "/v1/stats", "/v1/stats", "", nil, 200)
	v.call(ts, "POST", ack, "/v1/subscriptions/nope/ack", js, []byte(`{"ids":["0190f3a2-5c1e-7b4a-9d2e-1f0a3c4b5d6e"]}`), 404)
	v.call(ts, "POST", ack, "/v1/subscriptions/"+res.Header.Get("Aegis-Subscription")+"/ack", js, []byte(`{"ids":["0190f3a2-5c1e-7b4a-9d2e-1f0a3c4b5d6e"]}`), 422)
	v.call(ts, "GET", "/v1/channels/{channel}/stream", "/v1/channels/orders/stream?ack=manual", "", nil, 422)
	v.call(ts, "GET", "/v1/channels/{channel}/stream", "/v1/channels/orders/stream?start=maybe", "", nil, 400)

	// WebSocket: the subscribed message, the events, and an error
	// message for a settlement the stream cannot take.
	c, wsRes, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/v1/channels/orders/ws?start=all", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	v.responseSchemaless("GET", "/v1/channels/{channel}/ws", wsRes.StatusCode)
	read := func() httpapi.WSMessage {
		t.Helper()
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.MessageText {
			t.Errorf("a %v message, want text", typ)
		}
		v.check("a WebSocket message", "#/components/schemas/WSMessage", b)
		var m httpapi.WSMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := read(); m.Type != "subscribed" {
		t.Errorf("the first message is %q, want subscribed", m.Type)
	}
	for range 3 {
		if m := read(); m.Type != "event" {
			t.Errorf("a message of type %q, want event", m.Type)
		}
	}
	settle := []byte(`{"type":"ack","ids":["0190f3a2-5c1e-7b4a-9d2e-1f0a3c4b5d6e"]}`)
	v.check("a WebSocket ack", "#/components/schemas/WSMessage", settle)
	if err := c.Write(ctx, websocket.MessageText, settle); err != nil {
		t.Fatal(err)
	}
	for {
		if m := read(); m.Type == "error" {
			if m.Error == nil || m.Error.Code != httpapi.CodeUnsupported {
				t.Errorf("the answer to an ack without ack=manual: %+v", m.Error)
			}
			break
		}
	}
	c.Close(websocket.StatusNormalClosure, "")

	v.call(ts, "DELETE", channel, "/v1/channels/orders", "", nil, 204)
	v.call(ts, "DELETE", channel, "/v1/channels/orders", "", nil, 404)
}

// TestOpenAPIExamples checks the document's examples against their
// schemas, and that every component schema is a valid JSON Schema.
func TestOpenAPIExamples(t *testing.T) {
	v := newValidator(t)
	for name, s := range obj(v.raw, "components", "schemas") {
		loc := "#/components/schemas/" + name
		if _, err := v.c.Compile(docURL + loc); err != nil {
			t.Errorf("%s: %v", loc, err)
			continue
		}
		examples, _ := s.(map[string]any)["examples"].([]any)
		for i, ex := range examples {
			v.checkValue(fmt.Sprintf("%s example %d", loc, i), loc, ex)
		}
	}
	n := 0
	var walk func(loc string, m map[string]any)
	walk = func(loc string, m map[string]any) {
		for k, e := range m {
			sub, ok := e.(map[string]any)
			if !ok {
				continue
			}
			if k == "content" {
				for media, mt := range sub {
					mloc := loc + "/content/" + escape(media)
					ex, has := mt.(map[string]any)["example"]
					if !has {
						continue
					}
					if _, hasSchema := mt.(map[string]any)["schema"]; !hasSchema {
						t.Errorf("%s: an example without a schema", mloc)
						continue
					}
					// A media type that is not JSON is described as
					// a string, its example too.
					v.checkValue(mloc+" example", mloc+"/schema", ex)
					n++
				}
				continue
			}
			walk(loc+"/"+escape(k), sub)
		}
	}
	walk("#", v.raw)
	if n == 0 {
		t.Error("no example was checked")
	}
}
