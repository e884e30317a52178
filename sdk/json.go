package sdk

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// JSON is one value of a JSON document, as the bytes that spell it in the
// document (no copy). Its zero value is a missing value.
type JSON struct {
	raw []byte
}

// Raw returns the value's bytes as they appear in the document.
func (j JSON) Raw() []byte { return j.raw }

// Exists reports whether the value was found.
func (j JSON) Exists() bool { return len(j.raw) != 0 }

// IsNull reports whether the value is the literal null.
func (j JSON) IsNull() bool { return string(j.raw) == "null" }

// String returns the value of a JSON string. Without escapes the result
// shares the document's bytes (valid as long as they are, which for an
// event is the current call); with escapes it is decoded into a new string.
func (j JSON) String() (string, bool) {
	r := j.raw
	if len(r) < 2 || r[0] != '"' || r[len(r)-1] != '"' {
		return "", false
	}
	body := r[1 : len(r)-1]
	for _, c := range body {
		if c == '\\' {
			s, ok := unescape(body)
			return string(s), ok
		}
	}
	return unsafe.String(unsafe.SliceData(body), len(body)), true
}

// Float returns the value of a JSON number.
func (j JSON) Float() (float64, bool) {
	if !isNumber(j.raw) {
		return 0, false
	}
	f, err := strconv.ParseFloat(view(j.raw), 64)
	return f, err == nil
}

// Int returns the value of a JSON number that is an integer within int64.
func (j JSON) Int() (int64, bool) {
	if !isNumber(j.raw) {
		return 0, false
	}
	i, err := strconv.ParseInt(view(j.raw), 10, 64)
	return i, err == nil
}

// Bool returns the value of true or false.
func (j JSON) Bool() (v, ok bool) {
	switch string(j.raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// Get returns the member key of an object value: a field lookup that reads
// only as far as it must and decodes nothing else.
func (j JSON) Get(key string) JSON { return Lookup(j.raw, key) }

func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func isNumber(b []byte) bool {
	return len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9'))
}

// Lookup finds the member key of the JSON object doc without decoding the
// document: it walks the top-level members, skipping values it does not
// need. A missing key, or a doc that is not an object, gives a missing
// value. It assumes a well-formed document (the host checks JSON data) and
// never reads outside doc on a malformed one.
func Lookup(doc []byte, key string) JSON {
	var found JSON
	Members(doc, func(k, v []byte) bool {
		if keyEquals(k, key) {
			found = JSON{raw: v}
			return false
		}
		return true
	})
	return found
}

// Members calls fn for each top-level member of the JSON object doc, with
// the key as spelled (quotes included) and the raw value, until fn returns
// false. It reports whether doc was walked to its end as an object.
func Members(doc []byte, fn func(key, value []byte) bool) bool {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return false
	}
	i = skipSpace(doc, i+1)
	if i < len(doc) && doc[i] == '}' {
		return true
	}
	for i < len(doc) {
		if doc[i] != '"' {
			return false
		}
		kend := skipString(doc, i)
		if kend < 0 {
			return false
		}
		key := doc[i:kend]
		i = skipSpace(doc, kend)
		if i >= len(doc) || doc[i] != ':' {
			return false
		}
		i = skipSpace(doc, i+1)
		vend := skipValue(doc, i)
		if vend < 0 {
			return false
		}
		if !fn(key, doc[i:vend]) {
			return true
		}
		i = skipSpace(doc, vend)
		if i >= len(doc) {
			return false
		}
		switch doc[i] {
		case ',':
			i = skipSpace(doc, i+1)
		case '}':
			return true
		default:
			return false
		}
	}
	return false
}

// keyEquals compares a quoted JSON key with a Go string.
func keyEquals(quoted []byte, key string) bool {
	body := quoted[1 : len(quoted)-1]
	for _, c := range body {
		if c == '\\' {
			// A key with an escape is compared by its text, never by
			// its spelling: the key of {"\n":1} is a newline, not a
			// backslash and an n.
			u, ok := unescape(body)
			return ok && string(u) == key
		}
	}
	return string(body) == key
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"',
// or -1.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				e := skipString(b, i)
				if e < 0 {
					return -1
				}
				i = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	start := i
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if i == start {
				return -1
			}
			return i
		}
		i++
	}
	if i == start {
		return -1
	}
	return i
}

// unescape decodes the body of a JSON string (between the quotes).
func unescape(s []byte) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(s) {
			return nil, false
		}
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s, i+1)
			if !ok {
				return nil, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(s, i+3); ok && i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false
		}
	}
	return out, true
}

func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// AppendString appends s as a JSON string, escaped as encoding/json does
// (but without HTML escaping).
func AppendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid in JSON but not in JavaScript
		// source; encoding/json escapes them always.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
