package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
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
	v, err := yamlScalar(unmarshal)
	if err != nil {
		return err
	}
	return setUnit(d, v, parseDurationValue)
}

// MarshalJSON writes d as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a JSON string such as "1s" (or the number 0).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return setUnit(d, v, parseDurationValue)
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
	v, err := yamlScalar(unmarshal)
	if err != nil {
		return err
	}
	return setUnit(b, v, parseByteSizeValue)
}

// MarshalJSON writes b like MarshalYAML.
func (b ByteSize) MarshalJSON() ([]byte, error) {
	v, _ := b.MarshalYAML()
	return json.Marshal(v)
}

// UnmarshalJSON reads a number or a string such as "64MiB".
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	v, err := jsonScalar(data)
	if err != nil {
		return err
	}
	if n, ok := v.(json.Number); ok {
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			return fmt.Errorf("size %s is not a whole number of bytes", n)
		}
		v = i
	}
	return setUnit(b, v, parseByteSizeValue)
}

// Fuel is a deterministic budget of work per event (host.Limits.Fuel):
// a positive integer, written as a number or as a string with an optional
// suffix k, M or G (thousand, million, billion), as in "500k", "100M" or
// "2G"; underscores may separate digits ("100_000_000"). "none" reads as
// [NoFuel].
type Fuel int64

// NoFuel is the Fuel "none" reads as: no budget at all. It is what
// host.Limits.Fuel takes for none.
const NoFuel Fuel = -1

// Int64 returns the budget as host.Limits.Fuel takes it (-1 for
// [NoFuel]).
func (f Fuel) Int64() int64 { return int64(f) }

var fuelSuffixes = []struct {
	name string
	mult int64
	exp  string // mult as an exponent
}{{"G", 1e9, "e9"}, {"M", 1e6, "e6"}, {"k", 1e3, "e3"}} // largest first, for String

// String returns "none" for [NoFuel], and otherwise the number with the
// largest suffix that divides it ("100M", "2G", "1500k") or the bare
// number.
func (f Fuel) String() string {
	if f == NoFuel {
		return "none"
	}
	for _, u := range fuelSuffixes {
		if f > 0 && int64(f)%u.mult == 0 {
			return strconv.FormatInt(int64(f)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(f), 10)
}

const fuelHint = "write a positive integer with an optional suffix k, M or G, such as 500k, 100M or 2G, or none for no budget"

// ParseFuel parses the forms Fuel reads.
func ParseFuel(s string) (Fuel, error) {
	switch {
	case s == "none":
		return NoFuel, nil
	case s == "":
		return 0, fmt.Errorf("empty fuel; %s", fuelHint)
	case strings.EqualFold(s, "none"):
		return 0, fmt.Errorf("invalid fuel %q; write none, in lower case, for no budget", s)
	case s[0] == '-':
		return 0, fmt.Errorf("negative fuel %q; write a positive budget such as 100M, or none for no budget", s)
	}
	// The number: digits, with single underscores between them; what
	// follows is the suffix.
	i := 0
	for i < len(s) && (isDigit(s[i]) || s[i] == '_' && i > 0 && i+1 < len(s) && isDigit(s[i-1]) && isDigit(s[i+1])) {
		i++
	}
	num, suffix := strings.ReplaceAll(s[:i], "_", ""), s[i:]
	mult := int64(1)
	if suffix != "" {
		mult = 0
		for _, u := range fuelSuffixes {
			if suffix == u.name {
				mult = u.mult
			}
		}
	}
	if mult != 0 && num != "" {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("fuel %q is too large; the most is %d, or write none for no budget", s, int64(math.MaxInt64))
		}
		if n == 0 {
			return 0, fmt.Errorf("fuel must be positive, got %q; write a budget such as 100M, or none for no budget", s)
		}
		return Fuel(n * mult), nil
	}
	if strings.ContainsAny(s, ".eE") {
		if err := fuelNotInteger(s); err != nil {
			return 0, err
		}
	}
	if num != "" && strings.IndexFunc(suffix, func(r rune) bool { return !unicode.IsLetter(r) }) < 0 {
		msg := fmt.Sprintf("fuel %q has an unknown suffix %q; the suffixes are k (thousand), M (million) and G (billion), as in 500k, 100M or 2G", s, suffix)
		for _, u := range fuelSuffixes {
			if strings.EqualFold(suffix, u.name) {
				msg += fmt.Sprintf(" (did you mean %s%s?)", s[:i], u.name)
			}
		}
		return 0, errors.New(msg)
	}
	return 0, fmt.Errorf("invalid fuel %q; %s", s, fuelHint)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// fuelNotInteger is the error of a fuel written with a fraction or an
// exponent ("1.5M", "1e8"), which suggests the integer form when there is
// one; nil when s is no number of that kind either.
func fuelNotInteger(s string) error {
	t := s
	for _, u := range fuelSuffixes {
		if num, ok := strings.CutSuffix(s, u.name); ok {
			t = num + u.exp // "1.5M" is 1.5e6
			break
		}
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(t, "_", ""), 64)
	switch {
	case err != nil || math.IsInf(v, 0) || math.IsNaN(v):
		return nil
	case v >= 1 && v == math.Trunc(v) && v < math.MaxInt64:
		return fmt.Errorf("fuel %q is not written as an integer; write %s", s, Fuel(v))
	}
	return fmt.Errorf("fuel %q is not a whole number; %s", s, fuelHint)
}

// parseFuelValue reads a decoded YAML or JSON scalar.
func parseFuelValue(v any) (Fuel, error) {
	switch v := v.(type) {
	case string:
		return ParseFuel(v)
	case int64:
		if v <= 0 {
			return 0, fuelNotPositive(v)
		}
		return Fuel(v), nil
	case int:
		return parseFuelValue(int64(v))
	case uint64:
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("fuel %d is too large; the most is %d, or write none for no budget", v, int64(math.MaxInt64))
		}
		return parseFuelValue(int64(v))
	case float64:
		switch {
		case v != math.Trunc(v) || math.IsInf(v, 0):
			return 0, fmt.Errorf("fuel %v is not a whole number; %s", v, fuelHint)
		case v <= 0:
			return 0, fuelNotPositive(v)
		case v >= math.MaxInt64:
			return 0, fmt.Errorf("fuel %v is too large; the most is %d, or write none for no budget", v, int64(math.MaxInt64))
		}
		return Fuel(v), nil
	case nil:
		return 0, nil
	}
	return 0, fmt.Errorf("fuel is a positive integer or a string such as 100M or none, not %s", kindOf(v))
}

func fuelNotPositive(v any) error {
	if fmt.Sprint(v) == "0" {
		return fmt.Errorf("fuel must be positive, got 0; write a budget such as 100M, or none for no budget")
	}
	return fmt.Errorf("negative fuel %v; write a positive budget such as 100M, or none for no budget", v)
}

// MarshalYAML writes f as a string when it has a suffix or is none
// ("100M", "none"), else as an integer.
func (f Fuel) MarshalYAML() (any, error) {
	if s := f.String(); strings.Trim(s, "0123456789") != "" {
		return s, nil
	}
	return int64(f), nil
}

// UnmarshalYAML reads an integer, or a string such as "100M" or "none".
func (f *Fuel) UnmarshalYAML(unmarshal func(any) error) error {
	v, err := yamlScalar(unmarshal)
	if err != nil {
		return err
	}
	return setUnit(f, v, parseFuelValue)
}

// MarshalJSON writes f like MarshalYAML.
func (f Fuel) MarshalJSON() ([]byte, error) {
	v, _ := f.MarshalYAML()
	return json.Marshal(v)
}

// UnmarshalJSON reads a number, or a string such as "100M" or "none".
func (f *Fuel) UnmarshalJSON(data []byte) error {
	v, err := jsonScalar(data)
	if err != nil {
		return err
	}
	if n, ok := v.(json.Number); ok {
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			v = i
		} else if x, err := strconv.ParseFloat(string(n), 64); err == nil {
			v = x
		} else {
			return fmt.Errorf("fuel %s is too large; the most is %d, or write none for no budget", n, int64(math.MaxInt64))
		}
	}
	return setUnit(f, v, parseFuelValue)
}

// setUnit parses a decoded YAML or JSON scalar with parse into *dst.
func setUnit[T any](dst *T, v any, parse func(any) (T, error)) error {
	x, err := parse(v)
	if err != nil {
		return err
	}
	*dst = x
	return nil
}

// jsonScalar decodes a JSON value for an UnmarshalJSON method, numbers
// as json.Number.
func jsonScalar(data []byte) (any, error) {
	var v any
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.UseNumber()
	err := d.Decode(&v)
	return v, err
}

// yamlScalar decodes a YAML value for an UnmarshalYAML method.
func yamlScalar(unmarshal func(any) error) (any, error) {
	var v any
	err := unmarshal(&v)
	return v, err
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
