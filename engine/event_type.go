package engine

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// EventType says what happened. Three types are well known, [Created],
// [Updated] and [Deleted]; any other name is a custom type, made by
// [CustomType]. The string form is the type itself, stable across versions:
// "created", "updated", "deleted", or the custom name (for example
// "order.created").
type EventType string

// The well-known event types.
const (
	Created EventType = "created"
	Updated EventType = "updated"
	Deleted EventType = "deleted"
)

// MaxEventTypeLen is the longest event type accepted, in bytes.
const MaxEventTypeLen = 255

// CustomType returns the event type with the given name, after checking that
// the name is a valid type (see [EventType.Validate]). The names "created",
// "updated" and "deleted" return the well-known types themselves, so a custom
// type never shadows one.
func CustomType(name string) (EventType, error) {
	t := EventType(name)
	if err := t.Validate(); err != nil {
		return "", err
	}
	return t, nil
}

// IsCustom reports whether t is not one of the well-known types.
func (t EventType) IsCustom() bool {
	switch t {
	case Created, Updated, Deleted:
		return false
	}
	return true
}

// String returns the stable string form of the type.
func (t EventType) String() string { return string(t) }

// Validate checks that t is 1 to [MaxEventTypeLen] bytes of valid UTF-8 with
// no white space and no control characters.
func (t EventType) Validate() error { return checkName("event type", string(t), MaxEventTypeLen) }

// checkName checks a name (an event type, a channel): 1 to limit bytes of valid
// UTF-8 with no white space and no control characters. It runs on every
// publish, so ASCII, the common case, takes a fast path.
func checkName(what, name string, limit int) error {
	if name == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(name) > limit {
		return fmt.Errorf("%s is %d bytes long, the limit is %d", what, len(name), limit)
	}
	ascii := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("%s %q contains white space or a control character", what, name)
		}
	}
	if ascii {
		return nil
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%s %q is not valid UTF-8", what, name)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%s %q contains white space or a control character", what, name)
		}
	}
	return nil
}
