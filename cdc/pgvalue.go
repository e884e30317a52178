package cdc

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/aegis-streaming/aegis/internal/jsonstr"
)

// A valueEncoder appends a column's value, given in PostgreSQL's text
// form, as JSON. The PostgreSQL source reads every value in text form (the
// pgoutput default, and what a snapshot asks for) and writes it with the
// encoder of its type, so that a row read by a snapshot and the same row
// streamed later look alike.
type valueEncoder func(b, text []byte) ([]byte, error)

// PostgreSQL type OIDs with an encoder of their own (pg_type.dat).
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// encoderFor returns the encoder of a type. Types without one of their
// own are decoded by pgx's type map (arrays, ranges, intervals, network
// addresses, ...) and written as encoding/json writes the Go value; types
// that pgx does not know either (enums, domains of unknown types, types
// of extensions) are written as their text, a JSON string.
func encoderFor(m *pgtype.Map, oid uint32) valueEncoder {
	switch oid {
	case oidBool:
		return encodeBool
	case oidInt2, oidInt4, oidInt8, oidOID:
		return encodeInteger
	case oidFloat4, oidFloat8, oidNumeric:
		return encodeNumber
	case oidJSON, oidJSONB:
		return encodeJSON
	case oidText, oidVarchar, oidBPChar, oidName, oidUUID, oidDate:
		return encodeString
	case oidTimestampTZ:
		return encodeTimestampTZ
	case oidTimestamp:
		return encodeTimestamp
	case oidBytea:
		return encodeBytea
	}
	t, ok := m.TypeForOID(oid)
	if !ok {
		return encodeString
	}
	return func(b, text []byte) ([]byte, error) {
		v, err := t.Codec.DecodeValue(m, oid, pgtype.TextFormatCode, text)
		if err != nil {
			return b, fmt.Errorf("%s value %q: %w", t.Name, text, err)
		}
		j, err := json.Marshal(v)
		if err != nil {
			// A value with no JSON form (an infinite interval, say) is
			// written as its text.
			return jsonstr.Append(b, string(text)), nil
		}
		return append(b, j...), nil
	}
}

func encodeString(b, text []byte) ([]byte, error) { return jsonstr.Append(b, string(text)), nil }

func encodeBool(b, text []byte) ([]byte, error) {
	switch string(text) {
	case "t":
		return append(b, "true"...), nil
	case "f":
		return append(b, "false"...), nil
	}
	return b, fmt.Errorf("bool value %q: want t or f", text)
}

func encodeInteger(b, text []byte) ([]byte, error) {
	v, err := strconv.ParseInt(string(text), 10, 64)
	if err != nil {
		return b, fmt.Errorf("integer value %q: not an integer", text)
	}
	return strconv.AppendInt(b, v, 10), nil
}

// encodeNumber writes float and numeric values as JSON numbers, exactly as
// PostgreSQL wrote them (numeric keeps all its digits); NaN and the
// infinities, which JSON has no number for, become the strings "NaN",
// "Infinity" and "-Infinity".
func encodeNumber(b, text []byte) ([]byte, error) {
	switch string(text) {
	case "NaN", "Infinity", "-Infinity":
		return jsonstr.Append(b, string(text)), nil
	}
	if !isNumber(text) {
		return b, fmt.Errorf("number value %q: not a number", text)
	}
	return append(b, text...), nil
}

// isNumber reports whether b is a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	start := i
	if n := digits(); n == 0 || n > 1 && b[start] == '0' {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

func encodeJSON(b, text []byte) ([]byte, error) {
	if !json.Valid(text) {
		return b, fmt.Errorf("json value %.40q: not valid JSON", text)
	}
	return append(b, text...), nil
}

// PostgreSQL's text forms of timestamps (ISO DateStyle, which replication
// connections use): 2026-11-27 20:45:46.123456+00, with an offset of hours
// and possibly minutes and seconds for timestamptz.
const (
	pgTimestamp   = "2006-01-02 15:04:05.999999999"
	pgTimestampTZ = "2006-01-02 15:04:05.999999999Z07"
)

// encodeTimestampTZ writes a timestamptz as RFC 3339 in UTC.
func encodeTimestampTZ(b, text []byte) ([]byte, error) {
	s := string(text)
	t, err := time.Parse(pgTimestampTZ, s)
	if err != nil {
		if t, err = time.Parse(pgTimestampTZ+":00", s); err != nil {
			if t, err = time.Parse(pgTimestampTZ+":00:00", s); err != nil {
				return infiniteOr(b, s, err)
			}
		}
	}
	return appendTime(b, t.UTC()), nil
}

// encodeTimestamp writes a timestamp without time zone as RFC 3339 with
// no offset given by the database: as UTC ("Z"), which is how the host
// reads times without a zone everywhere.
func encodeTimestamp(b, text []byte) ([]byte, error) {
	t, err := time.Parse(pgTimestamp, string(text))
	if err != nil {
		return infiniteOr(b, string(text), err)
	}
	return appendTime(b, t), nil
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// infiniteOr writes PostgreSQL's infinite timestamps, and timestamps
// outside RFC 3339's years (BC, or past 9999), as their text.
func infiniteOr(b []byte, s string, err error) ([]byte, error) {
	if s == "infinity" || s == "-infinity" || strings.HasSuffix(s, " BC") && len(s) > 10 && s[4] == '-' || farYear(s) {
		return jsonstr.Append(b, s), nil
	}
	return b, fmt.Errorf("timestamp value %q: %w", s, err)
}

// farYear reports whether s begins with a year of five digits or more.
func farYear(s string) bool {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > 4 && i < len(s) && s[i] == '-'
}

// encodeBytea writes bytea's hex text form (\x0102ff) as standard base64.
func encodeBytea(b, text []byte) ([]byte, error) {
	if len(text) < 2 || text[0] != '\\' || text[1] != 'x' {
		return b, fmt.Errorf("bytea value: want the hex form \\x..., got %.20q", text)
	}
	raw := make([]byte, hex.DecodedLen(len(text)-2))
	if _, err := hex.Decode(raw, text[2:]); err != nil {
		return b, fmt.Errorf("bytea value: %w", err)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, raw)
	return append(b, '"'), nil
}
