package manifest

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem with a manifest.
type Error struct {
	// File is the manifest's file name as given to [Load] or [Parse].
	File string
	// Line and Column locate the problem, 1-based; 0 when unknown.
	Line, Column int
	// Field is the path of the field at fault, such as
	// "pipelines[0].steps[1].plugin" or `channels.orders.buffer`; empty for
	// the manifest as a whole.
	Field string
	// Msg says what is wrong.
	Msg string

	err error // the underlying error, if any (for errors.Is)
}

// Error renders "pipeline.yaml:12:7: pipelines[0].steps[1].plugin: msg",
// leaving out the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	}
	if e.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Column))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error (such as an fs.PathError), if any.
func (e *Error) Unwrap() error { return e.err }

// Errors is every problem found in a manifest, in the order of their
// positions in the file. Decoding stops at the first YAML syntax error;
// validation reports every problem it finds.
type Errors []*Error

// Error joins the errors one per line.
func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sort orders es by position, keeping the order of errors at one position.
func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Column, b.Column)
	})
}
