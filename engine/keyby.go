package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// KeyFunc returns an event's group key. It must not modify the event. An
// error means the event has no key: it fails alone (see [EventErrors]).
type KeyFunc func(e *Event) (string, error)

// KeyBy returns the KeyFunc that a group_by spec names:
//
//	""                  one group for all events; the key is ""
//	"type"              the event type
//	"source"            the event source (an empty source is the key "")
//	"id"                the event ID in its canonical form; an event without one has no key
//	"meta.<key>"        the metadata attribute <key>; an event without it has no key
//	"data.<m>[.<m>...]" a member of the JSON object that is the event's data,
//	                    following nested objects member by member
//
// For "data." specs the key is the member's value: a string as is (so the
// string "1" and the number 1 share a key), a number as its JSON text
// exactly as written ("1.50" stays "1.50"), true, false and null as
// "true", "false" and "null". An event whose data is not a JSON object, or
// lacks the member, or whose member is an object or an array has no key.
// Member names cannot contain '.'; when an object repeats a name the last
// one counts, as in encoding/json.
//
// The returned KeyFunc is safe for concurrent use.
func KeyBy(spec string) (KeyFunc, error) {
	switch spec {
	case "":
		return func(*Event) (string, error) { return "", nil }, nil
	case "type":
		return func(e *Event) (string, error) { return string(e.Type), nil }, nil
	case "source":
		return func(e *Event) (string, error) { return e.Source, nil }, nil
	case "id":
		return func(e *Event) (string, error) {
			if e.ID.IsZero() {
				return "", fmt.Errorf("key[id]: the event has no id")
			}
			return e.ID.String(), nil
		}, nil
	}
	if !utf8.ValidString(spec) {
		return nil, fmt.Errorf("key[%q]: not valid UTF-8", spec)
	}
	if name, ok := strings.CutPrefix(spec, "meta."); ok {
		if name == "" {
			return nil, fmt.Errorf("key[%s]: the metadata key is empty", spec)
		}
		return func(e *Event) (string, error) {
			v, ok := e.Metadata[name]
			if !ok {
				return "", fmt.Errorf("key[%s]: the event has no metadata %q", spec, name)
			}
			return v, nil
		}, nil
	}
	if member, ok := strings.CutPrefix(spec, "data."); ok {
		path, err := parseMemberPath(member)
		if err != nil {
			return nil, fmt.Errorf("key[%s]: %w", spec, err)
		}
		return func(e *Event) (string, error) {
			r := getJSONReader()
			defer putJSONReader(r)
			k, err := r.key(e.Data, path)
			if err != nil {
				return "", fmt.Errorf("key[%s]: %w", spec, err)
			}
			return k, nil
		}, nil
	}
	return nil, fmt.Errorf(`key[%s]: unknown group_by (want "", "type", "source", "id", "meta.<key>" or "data.<member>[.<member>...]")`, spec)
}

// parseMemberPath splits a dotted member path ("a.b.c") into its names.
func parseMemberPath(p string) ([]string, error) {
	if !utf8.ValidString(p) {
		return nil, fmt.Errorf("member path %q is not valid UTF-8", p)
	}
	if p == "" {
		return nil, fmt.Errorf("the member path is empty")
	}
	path := strings.Split(p, ".")
	for i, m := range path {
		if m == "" {
			return nil, fmt.Errorf("member path %q has an empty member name at position %d", p, i+1)
		}
	}
	return path, nil
}

// jsonReader reads members of an event's JSON data. It parses with
// fastjson, and falls back to encoding/json for the rare documents where
// fastjson's best-effort unescaping could give another answer (escaped
// UTF-16 surrogates, invalid UTF-8 inside strings) or that it refuses
// (nesting deeper than fastjson.MaxDepth), so that every document reads
// the same as encoding/json would read it. It is not safe for concurrent
// use: take one from getJSONReader per goroutine.
type jsonReader struct {
	p    fastjson.Parser
	raw  []byte
	root *fastjson.Value // the fast path's document
	slow map[string]any  // the slow path's document, when root is nil
	num  []byte          // scratch for a number's text
	// interned group keys, see intern
	interned map[string]string
}

var jsonReaders = sync.Pool{New: func() any { return new(jsonReader) }}

func getJSONReader() *jsonReader { return jsonReaders.Get().(*jsonReader) }

func putJSONReader(r *jsonReader) {
	r.raw, r.root, r.slow = nil, nil, nil
	jsonReaders.Put(r)
}

// load makes d the document that member reads.
func (r *jsonReader) load(d EventData) error {
	r.raw, r.root, r.slow = nil, nil, nil
	raw, ok := d.AsJSON()
	if !ok {
		return fmt.Errorf("data is %s data, not a JSON object", d.Kind())
	}
	r.raw = raw
	if !hasSurrogateEscape(raw) {
		if v, err := r.p.ParseBytes(raw); err == nil {
			if t := v.Type(); t != fastjson.TypeObject {
				return fmt.Errorf("data is %s, not a JSON object", jsonTypeName(t))
			}
			r.root = v
			return nil
		}
	}
	return r.loadSlow()
}

func (r *jsonReader) loadSlow() error {
	r.root = nil
	dec := json.NewDecoder(bytes.NewReader(r.raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("data is not valid JSON: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("data is %s, not a JSON object", jsonTypeName(slowType(v)))
	}
	r.slow = m
	return nil
}

// member finds the member at path in the loaded document and returns its
// type and, for a string, its unescaped bytes or, for a number, its JSON
// text. The bytes are valid until the next call.
func (r *jsonReader) member(path []string) (fastjson.Type, []byte, error) {
	if r.root == nil {
		return r.memberSlow(path)
	}
	v := r.root
	for i, name := range path {
		if i > 0 {
			if t := v.Type(); t != fastjson.TypeObject {
				return 0, nil, fmt.Errorf("%s is %s, not an object", dataPath(path[:i]), jsonTypeName(t))
			}
		}
		o, _ := v.Object()
		var found *fastjson.Value
		o.Visit(func(k []byte, x *fastjson.Value) {
			if string(k) == name {
				found = x // the last one wins, as in encoding/json
			}
		})
		if found == nil {
			return 0, nil, fmt.Errorf("%s is missing", dataPath(path[:i+1]))
		}
		v = found
	}
	switch t := v.Type(); t {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		if !utf8.Valid(b) {
			// encoding/json would have replaced the bad bytes.
			if err := r.loadSlow(); err != nil {
				return 0, nil, err
			}
			return r.memberSlow(path)
		}
		return t, b, nil
	case fastjson.TypeNumber:
		r.num = v.MarshalTo(r.num[:0])
		return t, r.num, nil
	default:
		return t, nil, nil
	}
}

func (r *jsonReader) memberSlow(path []string) (fastjson.Type, []byte, error) {
	var v any = r.slow
	for i, name := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return 0, nil, fmt.Errorf("%s is %s, not an object", dataPath(path[:i]), jsonTypeName(slowType(v)))
		}
		if v, ok = m[name]; !ok {
			return 0, nil, fmt.Errorf("%s is missing", dataPath(path[:i+1]))
		}
	}
	t := slowType(v)
	switch x := v.(type) {
	case string:
		return t, []byte(x), nil
	case json.Number:
		r.num = append(r.num[:0], x...)
		return t, r.num, nil
	}
	return t, nil, nil
}

// key returns the group key that the member at path of d gives (see
// [KeyBy]).
func (r *jsonReader) key(d EventData, path []string) (string, error) {
	if err := r.load(d); err != nil {
		return "", err
	}
	t, b, err := r.member(path)
	if err != nil {
		return "", err
	}
	switch t {
	case fastjson.TypeString, fastjson.TypeNumber:
		return r.intern(b), nil
	case fastjson.TypeTrue:
		return "true", nil
	case fastjson.TypeFalse:
		return "false", nil
	case fastjson.TypeNull:
		return "null", nil
	}
	return "", fmt.Errorf("%s is %s; a key must be a string, a number, a bool or null", dataPath(path), jsonTypeName(t))
}

// Bounds of a jsonReader's interned keys: group keys repeat, and making a
// string of each would allocate once per event.
const (
	maxInterned    = 4096
	maxInternedLen = 64
)

// intern returns b as a string, the same string for the same bytes while
// the reader has room to remember them.
func (r *jsonReader) intern(b []byte) string {
	if s, ok := r.interned[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(s) <= maxInternedLen {
		if r.interned == nil || len(r.interned) >= maxInterned {
			r.interned = make(map[string]string)
		}
		r.interned[s] = s
	}
	return s
}

// hasSurrogateEscape reports whether raw holds a \uD800-\uDFFF escape,
// which fastjson and encoding/json may read differently. A false positive
// (an escaped backslash followed by "uD8..") only costs the slow path.
func hasSurrogateEscape(raw []byte) bool {
	for {
		i := bytes.IndexByte(raw, '\\')
		if i < 0 || i+3 >= len(raw) {
			return false
		}
		if raw[i+1] == 'u' && raw[i+2]|0x20 == 'd' {
			switch raw[i+3] | 0x20 {
			case '8', '9', 'a', 'b', 'c', 'd', 'e', 'f':
				return true
			}
		}
		raw = raw[i+2:]
	}
}

func slowType(v any) fastjson.Type {
	switch x := v.(type) {
	case map[string]any:
		return fastjson.TypeObject
	case []any:
		return fastjson.TypeArray
	case string:
		return fastjson.TypeString
	case json.Number:
		return fastjson.TypeNumber
	case bool:
		if x {
			return fastjson.TypeTrue
		}
		return fastjson.TypeFalse
	}
	return fastjson.TypeNull
}

// jsonTypeName names a JSON type for messages, with its article.
func jsonTypeName(t fastjson.Type) string {
	switch t {
	case fastjson.TypeObject:
		return "an object"
	case fastjson.TypeArray:
		return "an array"
	case fastjson.TypeString:
		return "a string"
	case fastjson.TypeNumber:
		return "a number"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "a bool"
	}
	return "null"
}

func dataPath(path []string) string { return "data." + strings.Join(path, ".") }
