package manifest

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// expand substitutes environment variables in the raw text of a manifest,
// before it is parsed:
//
//	${NAME}            the value of NAME; an error if NAME is not set
//	${NAME:-default}   the value of NAME, or default if NAME is unset or empty
//	$$                 a literal $
//
// A $ followed by anything else is left as it is. The text is substituted
// as it is, comments included, and a value is not quoted: it becomes part
// of the YAML (write "${NAME}" in quotes for a string that might look like
// a number). A value with a line break is an error, since it would move
// the lines that errors point at.
func expand(file string, data []byte, env func(string) (string, bool)) ([]byte, Errors) {
	if bytes.IndexByte(data, '$') < 0 {
		return data, nil
	}
	var (
		out       = make([]byte, 0, len(data))
		errs      Errors
		line      = 1
		lineStart = 0 // offset of the current line in data
	)
	fail := func(at int, format string, args ...any) {
		errs = append(errs, &Error{
			File:   file,
			Line:   line,
			Column: utf8.RuneCount(data[lineStart:at]) + 1,
			Msg:    fmt.Sprintf(format, args...),
		})
	}
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '\n':
			out = append(out, c)
			i++
			line++
			lineStart = i
			continue
		case c != '$' || i+1 == len(data):
			out = append(out, c)
			i++
			continue
		}
		switch data[i+1] {
		case '$':
			out = append(out, '$')
			i += 2
			continue
		case '{':
		default:
			out = append(out, c)
			i++
			continue
		}
		// ${...}: find the end on this line.
		end := -1
		for j := i + 2; j < len(data) && data[j] != '\n'; j++ {
			if data[j] == '}' {
				end = j
				break
			}
		}
		if end < 0 {
			fail(i, "unterminated ${: write ${NAME} or ${NAME:-default}, or $$ for a literal $")
			out = append(out, c)
			i++
			continue
		}
		expr := string(data[i+2 : end])
		name, def, hasDef := strings.Cut(expr, ":-")
		switch {
		case !validEnvName(name):
			fail(i, "invalid substitution ${%s}: write ${NAME} or ${NAME:-default}, where NAME is letters, digits and _ (not starting with a digit)", expr)
		default:
			val, ok := env(name)
			if hasDef && (!ok || val == "") {
				val, ok = def, true
			}
			switch {
			case !ok:
				fail(i, "environment variable %s is not set (write ${%s:-default} to give a default)", name, name)
			case strings.ContainsAny(val, "\n\r"):
				fail(i, "environment variable %s contains a line break, which a manifest value cannot hold", name)
			default:
				out = append(out, val...)
			}
		}
		i = end + 1
	}
	return out, errs
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
