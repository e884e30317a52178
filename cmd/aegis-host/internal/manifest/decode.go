package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Decoding runs in two passes over the YAML syntax tree. The first (the
// walker below) checks the shape of the document against the Go types:
// unknown keys, wrong types, durations, sizes and fuel. It reports every
// such problem with its position and field path, and it records where
// each field is, so that the semantic checks later can point at the line
// and column of the value they find wrong. Only a document that passes it
// is decoded into the Go types, by goccy/go-yaml in strict mode.

// position is a 1-based line and column; zero when unknown.
type position struct{ line, col int }

// doc says where the fields of a manifest are in its file.
type doc struct {
	file string
	vals map[string]position // field path -> position of its value
	keys map[string]position // field path -> position of its key
}

func newDoc(file string) *doc {
	return &doc{
		file: file,
		vals: map[string]position{"": {1, 1}},
		keys: map[string]position{},
	}
}

// has reports whether the document sets the field (even to zero or null).
func (d *doc) has(path string) bool {
	_, ok := d.vals[path]
	return ok
}

// at is the position of a field's value, or of its closest ancestor that
// the document has.
func (d *doc) at(path string) position {
	for p := path; ; p = parentPath(p) {
		if pos, ok := d.vals[p]; ok && pos.line > 0 {
			return pos
		}
		if p == "" {
			return position{1, 1}
		}
	}
}

// keyAt is the position of a field's key (a name in a mapping of names).
func (d *doc) keyAt(path string) position {
	if pos, ok := d.keys[path]; ok && pos.line > 0 {
		return pos
	}
	return d.at(path)
}

// errAt makes an Error at a position (or, when that is unknown, at the
// field's).
func (d *doc) errAt(pos position, path, format string, args ...any) *Error {
	if pos.line <= 0 {
		pos = d.at(path)
	}
	return &Error{File: d.file, Line: pos.line, Column: pos.col, Field: path, Msg: fmt.Sprintf(format, args...)}
}

// pathAt finds the field whose value is at pos (for errors from the YAML
// library, which know positions but not our field paths).
func (d *doc) pathAt(pos position) string {
	best := ""
	for p, q := range d.vals {
		if q == pos && len(p) > len(best) {
			best = p
		}
	}
	return best
}

// Field paths: "pipelines[0].steps[1].plugin", "channels.orders.buffer",
// and `channels["odd name"]` for names that are not plain.

func fieldPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func entryPath(parent, name string) string {
	plain := name != ""
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			plain = false
			break
		}
	}
	if plain {
		return fieldPath(parent, name)
	}
	return parent + "[" + strconv.Quote(name) + "]"
}

func indexPath(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// decode parses data (already substituted) into a Manifest, and says where
// its fields are.
func decode(file string, data []byte) (m *Manifest, d *doc, errs Errors) {
	d = newDoc(file)
	f, err := parseYAML(data)
	if err != nil {
		return nil, d, Errors{yamlError(d, err)}
	}
	var body ast.Node
	for i, dn := range f.Docs {
		if i == 0 {
			body = dn.Body
			continue
		}
		if dn.Body != nil {
			pos := nodePos(dn.Body)
			if dn.Start != nil && dn.Start.Position != nil {
				pos = position{dn.Start.Position.Line, dn.Start.Position.Column}
			}
			return nil, d, Errors{d.errAt(pos, "", "a manifest is one YAML document; this is a second one")}
		}
	}
	if body == nil {
		return &Manifest{}, d, nil // empty: validation says what is missing
	}
	if e := checkAPIVersion(d, body); e != nil {
		// Another version may have another shape: say only this.
		return nil, d, Errors{e}
	}
	w := &walker{doc: d, anchors: map[string]ast.Node{}, budget: maxNodes}
	w.walk("", body, reflect.TypeFor[Manifest](), false)
	if len(w.errs) > 0 {
		return nil, d, w.errs
	}
	m = new(Manifest)
	if err := decodeStrict(data, m); err != nil && !errors.Is(err, io.EOF) { // EOF: a null document
		return nil, d, Errors{yamlError(d, err)}
	}
	return m, d, nil
}

// parseYAML parses data; the YAML library's panics (it has had some on
// malformed input) become errors.
func parseYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("the YAML parser failed: %v", r)
		}
	}()
	return parser.ParseBytes(data, 0)
}

func decodeStrict(data []byte, m *Manifest) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the YAML decoder failed: %v", r)
		}
	}()
	// The walker has rejected duplicate keys; what remains are keys that
	// override those of a merge key ("<<"), which YAML allows.
	return yaml.NewDecoder(bytes.NewReader(data), yaml.DisallowUnknownField(), yaml.AllowDuplicateMapKey()).Decode(m)
}

// yamlError turns an error of the YAML library into an Error.
func yamlError(d *doc, err error) *Error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		pos := position{}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			pos = position{tk.Position.Line, tk.Position.Column}
		}
		msg := ye.GetMessage()
		if _, ok := ye.(*yaml.SyntaxError); ok {
			msg = "invalid YAML: " + msg
		}
		return d.errAt(pos, d.pathAt(pos), "%s", msg)
	}
	return &Error{File: d.file, Msg: err.Error(), err: err}
}

// checkAPIVersion checks apiVersion when the document sets it to a string;
// a missing one is reported by validation, with everything else.
func checkAPIVersion(d *doc, body ast.Node) *Error {
	mn, ok := body.(ast.MapNode)
	if !ok {
		return nil
	}
	for it := mn.MapRange(); it.Next(); {
		if k, ok := it.Key().(*ast.StringNode); !ok || k.Value != "apiVersion" {
			continue
		}
		v, ok := it.Value().(*ast.StringNode)
		if !ok || v.Value == "" || v.Value == APIVersion {
			return nil
		}
		return d.errAt(nodePos(v), "apiVersion", "unsupported apiVersion %q: this build reads %s only", v.Value, supportedVersions())
	}
	return nil
}

func supportedVersions() string { return strconv.Quote(APIVersion) }

// maxNodes bounds the nodes the walker visits, aliases expanded, so that
// an alias bomb fails instead of exhausting memory.
const (
	maxNodes = 100_000
	maxDepth = 200
)

// walker checks the shape of a document against the Go types.
type walker struct {
	doc     *doc
	errs    Errors
	anchors map[string]ast.Node
	budget  int
	depth   int
}

// enter counts a node against the budget and the depth limit; when it
// returns true, the caller must call leave when done with the node.
func (w *walker) enter(path string, n ast.Node) bool {
	if w.budget <= 0 {
		return false
	}
	if w.budget--; w.budget == 0 {
		w.fail(nodePos(n), path, "the document is too large, or its aliases expand too far (more than %d nodes)", maxNodes)
		return false
	}
	if w.depth >= maxDepth {
		w.fail(nodePos(n), path, "nested too deeply (more than %d levels)", maxDepth)
		w.budget = 0
		return false
	}
	w.depth++
	return true
}

func (w *walker) leave() { w.depth-- }

func (w *walker) fail(pos position, path, format string, args ...any) {
	w.errs = append(w.errs, w.doc.errAt(pos, path, format, args...))
}

var (
	durationType = reflect.TypeFor[Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
	fuelType     = reflect.TypeFor[Fuel]()
	limitsType   = reflect.TypeFor[Limits]()
)

// movedFields are keys of earlier forms of the manifest, by the type that
// had them, and where their settings went.
var movedFields = map[reflect.Type]map[string]string{
	reflect.TypeFor[Manifest](): {
		"tracing": "moved: use telemetry.traces (exporter, endpoint, sample_ratio) and telemetry.service_name",
	},
}

// unitChecks check the scalar of a unit type (noneOK: the field is
// limits.timeout, the one duration that takes "none").
var unitChecks = map[reflect.Type]func(v any, noneOK bool) error{
	durationType: func(v any, noneOK bool) error {
		d, err := parseDurationValue(v)
		if err == nil && d == NoDeadline && !noneOK {
			err = errors.New(`"none" is only for limits.timeout; write a duration such as 1s`)
		}
		return err
	},
	byteSizeType: func(v any, _ bool) error { _, err := parseByteSizeValue(v); return err },
	fuelType:     func(v any, _ bool) error { _, err := parseFuelValue(v); return err },
}

// walk checks node n, the value of the field at path, against type t.
// noneOK says "none" is a valid duration here (Limits.Timeout).
func (w *walker) walk(path string, n ast.Node, t reflect.Type, noneOK bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem() // null is nil, anything else is what it points to
	}
	if !w.enter(path, n) {
		return
	}
	defer w.leave()

	switch x := n.(type) {
	case *ast.AnchorNode:
		w.walk(path, x.Value, t, noneOK)
		// Registered after its value, so that it cannot refer to itself.
		w.anchors[tokenValue(x.Name)] = x.Value
		return
	case *ast.AliasNode:
		name := tokenValue(x.Value)
		target, ok := w.anchors[name]
		if !ok {
			w.fail(nodePos(x), path, "unknown alias *%s", name)
			return
		}
		w.walk(path, target, t, noneOK)
		w.doc.vals[path] = nodePos(x)
		return
	case *ast.TagNode:
		if x.Start != nil && x.Start.Value == "!!str" && t.Kind() == reflect.String && isScalar(x.Value) {
			w.doc.vals[path] = nodePos(x)
			return
		}
		w.walk(path, x.Value, t, noneOK)
		return
	}
	w.doc.vals[path] = nodePos(n)
	if _, null := n.(*ast.NullNode); null || n == nil {
		return // null is the zero value of every type
	}

	if check, ok := unitChecks[t]; ok {
		v, ok := scalarValue(n)
		if !ok {
			w.fail(nodePos(n), path, "expected %s, got %s", expected(t), nodeKind(n))
			return
		}
		if err := check(v, noneOK); err != nil {
			w.fail(nodePos(n), path, "%v", err)
		}
		return
	}

	switch t.Kind() {
	case reflect.Interface:
		w.any(path, n)
	case reflect.String:
		switch n.(type) {
		case *ast.StringNode, *ast.LiteralNode:
		default:
			if isScalar(n) {
				w.fail(nodePos(n), path, "expected a string, got %s (quote it: \"%s\")", nodeKind(n), tokenValue(n))
			} else {
				w.fail(nodePos(n), path, "expected a string, got %s", nodeKind(n))
			}
		}
	case reflect.Bool:
		if _, ok := n.(*ast.BoolNode); !ok {
			w.fail(nodePos(n), path, "expected true or false, got %s", nodeKind(n))
		}
	case reflect.Int, reflect.Int64:
		in, ok := n.(*ast.IntegerNode)
		if !ok {
			w.fail(nodePos(n), path, "expected an integer, got %s", nodeKind(n))
			return
		}
		if u, ok := in.Value.(uint64); ok && u > 1<<63-1 {
			w.fail(nodePos(n), path, "%d is too large", u)
		}
	case reflect.Float64:
		switch n.(type) {
		case *ast.IntegerNode, *ast.FloatNode:
		case *ast.InfinityNode, *ast.NanNode:
			w.fail(nodePos(n), path, "expected a finite number, got %s", tokenValue(n))
		default:
			w.fail(nodePos(n), path, "expected a number, got %s", nodeKind(n))
		}
	case reflect.Slice:
		sn, ok := n.(*ast.SequenceNode)
		if !ok {
			if isScalar(n) {
				w.fail(nodePos(n), path, "expected a list, got %s (write [%s] for a list of one)", nodeKind(n), tokenValue(n))
			} else {
				w.fail(nodePos(n), path, "expected a list, got %s", nodeKind(n))
			}
			return
		}
		for i, v := range sn.Values {
			w.walk(indexPath(path, i), v, t.Elem(), false)
		}
	case reflect.Map:
		if !w.isMap(path, n, t) {
			return
		}
		w.entries(path, n, func(k ast.Node, name string, v ast.Node) {
			p := entryPath(path, name)
			w.doc.keys[p] = nodePos(k)
			w.walk(p, v, t.Elem(), false)
			w.nullAtKey(p, k, v)
		})
	case reflect.Struct:
		if !w.isMap(path, n, t) {
			return
		}
		fields := fieldsOf(t)
		w.entries(path, n, func(k ast.Node, key string, v ast.Node) {
			f, ok := fields.byName[key]
			p := fieldPath(path, key)
			if !ok {
				if msg, moved := movedFields[t][key]; moved {
					w.fail(nodePos(k), p, "%s", msg)
					return
				}
				msg := fmt.Sprintf("unknown field %q", key)
				if s := suggest(key, fields.names); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				} else {
					msg += "; known fields: " + strings.Join(fields.names, ", ")
				}
				w.fail(nodePos(k), p, "%s", msg)
				return
			}
			w.doc.keys[p] = nodePos(k)
			w.walk(p, v, f.Type, t == limitsType && key == "timeout")
			w.nullAtKey(p, k, v)
		})
	default:
		panic(fmt.Sprintf("manifest: no shape check for %v", t)) // a new field type
	}
}

// nullAtKey points a null value (as in "name:") at its key, since the
// position of an implicit null is not always useful.
func (w *walker) nullAtKey(p string, k, v ast.Node) {
	if _, null := v.(*ast.NullNode); null || v == nil {
		w.doc.vals[p] = nodePos(k)
	}
}

// isMap checks that n is a mapping, for a struct or map type.
func (w *walker) isMap(path string, n ast.Node, t reflect.Type) bool {
	if _, ok := n.(ast.MapNode); ok {
		return true
	}
	if t.Kind() == reflect.Struct {
		w.fail(nodePos(n), path, "expected a mapping with the fields %s, got %s", strings.Join(fieldsOf(t).names, ", "), nodeKind(n))
	} else {
		w.fail(nodePos(n), path, "expected a mapping, got %s", nodeKind(n))
	}
	return false
}

// entries calls fn for each entry of a mapping, merge keys ("<<: *x")
// expanded first so that the mapping's own keys come after (and win).
func (w *walker) entries(path string, n ast.Node, fn func(k ast.Node, key string, v ast.Node)) {
	mn := n.(ast.MapNode)
	seen := map[string]position{}
	for pass := 0; pass < 2; pass++ {
		for it := mn.MapRange(); it.Next(); {
			k := ast.Node(it.Key())
			if mk, ok := k.(*ast.MappingKeyNode); ok {
				k = mk.Value
			}
			_, merge := k.(*ast.MergeKeyNode)
			if merge != (pass == 0) {
				continue
			}
			if merge {
				w.merge(path, it.Value(), fn)
				continue
			}
			for {
				switch x := k.(type) {
				case *ast.TagNode:
					k = x.Value
					continue
				case *ast.AnchorNode:
					k = x.Value
					continue
				}
				break
			}
			sk, ok := k.(*ast.StringNode)
			if !ok {
				if isScalar(k) {
					w.fail(nodePos(k), path, "expected a key that is a string, got %s (quote it: \"%s\")", nodeKind(k), tokenValue(k))
				} else {
					w.fail(nodePos(k), path, "expected a key that is a string, got %s", nodeKind(k))
				}
				continue
			}
			if at, dup := seen[sk.Value]; dup {
				w.fail(nodePos(k), path, "duplicate key %q (first at line %d, column %d)", sk.Value, at.line, at.col)
				continue
			}
			seen[sk.Value] = nodePos(k)
			fn(k, sk.Value, it.Value())
		}
	}
}

// merge expands the value of a merge key: a mapping, an alias of one, or a
// list of those.
func (w *walker) merge(path string, v ast.Node, fn func(k ast.Node, key string, v ast.Node)) {
	if !w.enter(path, v) {
		return
	}
	defer w.leave()
	switch x := v.(type) {
	case *ast.AliasNode:
		name := tokenValue(x.Value)
		target, ok := w.anchors[name]
		if !ok {
			w.fail(nodePos(x), path, "unknown alias *%s", name)
			return
		}
		w.merge(path, target, fn)
	case *ast.AnchorNode:
		w.merge(path, x.Value, fn)
		w.anchors[tokenValue(x.Name)] = x.Value
	case *ast.SequenceNode:
		for _, e := range x.Values {
			w.merge(path, e, fn)
		}
	case ast.MapNode:
		w.entries(path, v, fn)
	default:
		w.fail(nodePos(v), path, "a merge key (<<) takes a mapping or a list of them, got %s", nodeKind(v))
	}
}

// any walks a value of any shape (a plugin's "with"), to count its nodes
// and register its anchors.
func (w *walker) any(path string, n ast.Node) {
	if !w.enter(path, n) {
		return
	}
	defer w.leave()
	switch x := n.(type) {
	case *ast.AnchorNode:
		w.any(path, x.Value)
		w.anchors[tokenValue(x.Name)] = x.Value
	case *ast.AliasNode:
		name := tokenValue(x.Value)
		if target, ok := w.anchors[name]; ok {
			w.any(path, target)
		} else {
			w.fail(nodePos(x), path, "unknown alias *%s", name)
		}
	case *ast.TagNode:
		w.any(path, x.Value)
	case *ast.SequenceNode:
		for i, v := range x.Values {
			w.any(indexPath(path, i), v)
		}
	case ast.MapNode:
		w.entries(path, n, func(k ast.Node, key string, v ast.Node) { w.any(entryPath(path, key), v) })
	}
}

// tokenValue is the text of a node's token (an anchor's or alias's name).
func tokenValue(n ast.Node) string {
	if n == nil {
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

func isScalar(n ast.Node) bool {
	switch n.(type) {
	case *ast.StringNode, *ast.LiteralNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode,
		*ast.InfinityNode, *ast.NanNode:
		return true
	}
	return false
}

// scalarValue is the value of a scalar node, as the YAML library decodes
// it into an interface.
func scalarValue(n ast.Node) (any, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		return x.Value.Value, true
	case *ast.IntegerNode:
		return x.Value, true
	case *ast.FloatNode:
		return x.Value, true
	case *ast.BoolNode:
		return x.Value, true
	}
	return nil, false
}

// nodeKind names the kind of a node for messages.
func nodeKind(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	}
	return strings.ToLower(n.Type().String())
}

// expected names what a duration, size or fuel field takes, for messages.
func expected(t reflect.Type) string {
	switch t {
	case durationType:
		return "a duration such as 250ms, 1s or 1h30m"
	case fuelType:
		return "fuel such as 500k, 100M or 2G, or none"
	}
	return "a size such as 65536, 512KiB or 64MiB"
}

// nodePos is where a node starts.
func nodePos(n ast.Node) position {
	switch x := n.(type) {
	case nil:
		return position{}
	case *ast.MappingNode:
		if !x.IsFlowStyle && len(x.Values) > 0 {
			return nodePos(x.Values[0].Key)
		}
	case *ast.MappingValueNode:
		return nodePos(x.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return position{}
	}
	return position{tk.Position.Line, tk.Position.Column}
}

// fields are a struct type's fields by YAML key.
type fields struct {
	byName map[string]reflect.StructField
	names  []string // in declaration order
}

var fieldCache sync.Map // reflect.Type -> *fields

func fieldsOf(t reflect.Type) *fields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*fields)
	}
	f := &fields{byName: map[string]reflect.StructField{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" || !sf.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		f.byName[name] = sf
		f.names = append(f.names, name)
	}
	fieldCache.Store(t, f)
	return f
}

// suggest returns the candidate closest to s, if it is close enough to be
// what was meant.
func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if len(s) >= 3 && strings.HasPrefix(c, s) {
			return c // a prefix: "drop" for "drop-oldest"
		}
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= max(1, min(len(s), len(best))/3) {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
