package manifest

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as Go writes durations: "250ms",
// "1s", "1h30m" ("0" and the number 0 are zero). Negative durations are
// rejected. Limits.Timeout also takes "none", which reads as [NoDeadline].
type Duration time.Duration

// NoDeadline is the Duration "none" reads as (Limits.Timeout only): no
// deadline at all. It is what host.Limits.Timeout takes for "none".
const NoDeadline Duration = -1

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns "none" for [NoDeadline] and the time.Duration form
// otherwise, without zero minutes and seconds at its end ("1h", "1m30s",
// "50ms", "0s").
func (d Duration) String() string {
	if d == NoDeadline {
		return "none"
	}
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParseDuration parses the forms Duration reads.
func ParseDuration(s string) (Duration, error) {
	if s == "none" {
		return NoDeadline, nil
	}
	if s == "" {
		return 0, fmt.Errorf("empty duration; write one such as 250ms, 1s or 1h30m")
	}
	switch s[0] {
	case '-':
		return 0, fmt.Errorf("negative duration %q", s)
	case '+', ' ', '\t':
		return 0, fmt.Errorf("invalid duration %q; write one such as 250ms, 1s or 1h30m", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return 0, fmt.Errorf("duration %q has no unit; write one such as %sms or %ss", s, s, s)
		}
		return 0, fmt.Errorf("invalid duration %q; write one such as 250ms, 1s or 1h30m", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return Duration(d), nil
}

// parseDurationValue reads a decoded YAML or JSON scalar.
func parseDurationValue(v any) (Duration, error) {
	switch v := v.(type) {
	case string:
		return ParseDuration(v)
	case int64, uint64, int, float64:
		if fmt.Sprint(v) == "0" {
			return 0, nil
		}
		return 0, fmt.Errorf("duration %v has no unit; write one such as %vms or %vs", v, v, v)
	case nil:
		return 0, nil
	}
	return 0, fmt.Errorf("a duration is a string such as 250ms, 1s or 1h30m, not %s", kindOf(v))
}

// MarshalYAML writes d as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a string such as "1s" (or the number 0).
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var v any
	if err := unmarshal(&v); err != nil {
		return err
	}
	x, err := parseDurationValue(v)
	if err != nil {
		return err
	}
	*d = x
	return nil
}

// MarshalJSON writes d as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a JSON string such as "1s" (or the number 0).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	x, err := parseDurationValue(v)
	if err != nil {
		return err
	}
	*d = x
	return nil
}

// ByteSize is a number of bytes, written as an integer or as an integer
// with a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB
// (powers of 1024), as in "64MiB" or "10MB".
type ByteSize int64

// Byte sizes.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
)

// Bytes returns the size in bytes.
func (b ByteSize) Bytes() int64 { return int64(b) }

var sizeUnits = []struct {
	name string
	mult int64
}{
	// Longest first, so "MiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// String returns the size with the largest binary unit that divides it
// ("64MiB"), or the bare number of bytes.
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		mult ByteSize
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if b != 0 && b%u.mult == 0 {
			return strconv.FormatInt(int64(b/u.mult), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// ParseByteSize parses the forms ByteSize reads.
func ParseByteSize(s string) (ByteSize, error) {
	t := s
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.name); ok {
			t, mult = strings.TrimRight(num, " "), u.mult
			break
		}
	}
	if t == "" || strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("invalid size %q; write a number of bytes or one with a unit, such as 512KiB, 64MiB, 1GiB or 10MB", s)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * mult), nil
}

// parseByteSizeValue reads a decoded YAML or JSON scalar.
func parseByteSizeValue(v any) (ByteSize, error) {
	switch v := v.(type) {
	case string:
		return ParseByteSize(v)
	case int64:
		if v < 0 {
			return 0, fmt.Errorf("negative size %d", v)
		}
		return ByteSize(v), nil
	case uint64:
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("size %d is too large", v)
		}
		return ByteSize(v), nil
	case int:
		if v < 0 {
			return 0, fmt.Errorf("negative size %d", v)
		}
		return ByteSize(v), nil
	case float64:
		if v < 0 || v != math.Trunc(v) || v >= math.MaxInt64 {
			return 0, fmt.Errorf("size %v is not a whole, non-negative number of bytes", v)
		}
		return ByteSize(v), nil
	case nil:
		return 0, nil
	}
	return 0, fmt.Errorf("a size is a number of bytes or a string such as 64MiB, not %s", kindOf(v))
}

// MarshalYAML writes b as "64MiB" when a binary unit divides it, else as
// an integer.
func (b ByteSize) MarshalYAML() (any, error) {
	if s := b.String(); strings.HasSuffix(s, "B") {
		return s, nil
	}
	return int64(b), nil
}

// UnmarshalYAML reads an integer or a string such as "64MiB".
func (b *ByteSize) UnmarshalYAML(unmarshal func(any) error) error {
	var v any
	if err := unmarshal(&v); err != nil {
		return err
	}
	x, err := parseByteSizeValue(v)
	if err != nil {
		return err
	}
	*b = x
	return nil
}

// MarshalJSON writes b like MarshalYAML.
func (b ByteSize) MarshalJSON() ([]byte, error) {
	v, _ := b.MarshalYAML()
	return json.Marshal(v)
}

// UnmarshalJSON reads a number or a string such as "64MiB".
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var v any
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return err
	}
	if n, ok := v.(json.Number); ok {
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			return fmt.Errorf("size %s is not a whole number of bytes", n)
		}
		v = i
	}
	x, err := parseByteSizeValue(v)
	if err != nil {
		return err
	}
	*b = x
	return nil
}

// kindOf names the YAML/JSON kind of a decoded value, for messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, uint64:
		return "an integer"
	case float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}
