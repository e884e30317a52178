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
func (t EventType) Validate() error {
	if t == "" {
		return fmt.Errorf("event type is empty")
	}
	if len(t) > MaxEventTypeLen {
		return fmt.Errorf("event type is %d bytes long, the limit is %d", len(t), MaxEventTypeLen)
	}
	ascii := true
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("event type %q contains white space or a control character", string(t))
		}
	}
	if ascii {
		return nil
	}
	if !utf8.ValidString(string(t)) {
		return fmt.Errorf("event type %q is not valid UTF-8", string(t))
	}
	for _, r := range string(t) {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("event type %q contains white space or a control character", string(t))
		}
	}
	return nil
}
