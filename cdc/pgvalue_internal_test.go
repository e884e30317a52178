package cdc

import (
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestEncoders(t *testing.T) {
	m := pgtype.NewMap()
	tests := []struct {
		name string
		oid  uint32
		in   string
		want string // "" for an error
	}{
		{"bool true", oidBool, "t", "true"},
		{"bool false", oidBool, "f", "false"},
		{"bool junk", oidBool, "yes", ""},
		{"int", oidInt4, "-42", "-42"},
		{"int8 max", oidInt8, "9223372036854775807", "9223372036854775807"},
		{"int junk", oidInt2, "4x", ""},
		{"int minus", oidInt2, "-", ""},
		{"int empty", oidInt2, "", ""},
		{"float", oidFloat8, "1.5e-07", "1.5e-07"},
		{"float nan", oidFloat4, "NaN", `"NaN"`},
		{"float inf", oidFloat8, "-Infinity", `"-Infinity"`},
		{"numeric", oidNumeric, "12345678901234567890.000001", "12345678901234567890.000001"},
		{"numeric junk", oidNumeric, "1..2", ""},
		{"json", oidJSON, `{"a": [1]}`, `{"a": [1]}`},
		{"json junk", oidJSONB, `{"a":`, ""},
		{"text", oidText, "a\"b\\c\n\u2028", `"a\"b\\c\n\u2028"`},
		{"text invalid utf8", oidVarchar, "a\xffb", `"a\ufffdb"`},
		{"uuid", oidUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"timestamptz", oidTimestampTZ, "2026-11-27 20:45:46.5+00", `"2026-11-27T20:45:46.5Z"`},
		{"timestamptz offset", oidTimestampTZ, "2026-11-27 20:45:46+05:30", `"2026-11-27T15:15:46Z"`},
		{"timestamptz seconds offset", oidTimestampTZ, "1900-01-01 00:00:00+00:09:21", `"1899-12-31T23:50:39Z"`},
		{"timestamptz infinity", oidTimestampTZ, "infinity", `"infinity"`},
		{"timestamptz BC", oidTimestampTZ, "0044-03-15 12:00:00+00 BC", `"0044-03-15 12:00:00+00 BC"`},
		{"timestamptz junk", oidTimestampTZ, "yesterday", ""},
		{"timestamp", oidTimestamp, "2026-11-27 20:45:46.123456", `"2026-11-27T20:45:46.123456Z"`},
		{"timestamp far", oidTimestamp, "12026-11-27 20:45:46", `"12026-11-27 20:45:46"`},
		{"date", oidDate, "2026-11-27", `"2026-11-27"`},
		{"bytea", oidBytea, `\x00ff`, `"AP8="`},
		{"bytea empty", oidBytea, `\x`, `""`},
		{"bytea escape form", oidBytea, `abc`, ""},
		{"bytea odd", oidBytea, `\x0`, ""},
		{"int array", 1007, "{1,2,NULL}", `[1,2,null]`},
		{"text array", 1009, `{a,"b c"}`, `["a","b c"]`},
		{"unknown type", 99999, "happy", `"happy"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encoderFor(m, tt.oid)([]byte("x"), []byte(tt.in))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("%q: no error, got %s", tt.in, got)
				}
				return
			}
			if err != nil || string(got) != "x"+tt.want {
				t.Fatalf("%q = %s, %v; want %s", tt.in, got, err, tt.want)
			}
			if !json.Valid(got[1:]) {
				t.Fatalf("%s is not JSON", got[1:])
			}
		})
	}
}

// FuzzEncoders: whatever the text, an encoder gives valid JSON or an error.
func FuzzEncoders(f *testing.F) {
	oids := []uint32{oidBool, oidInt4, oidNumeric, oidFloat8, oidJSON, oidText, oidTimestampTZ, oidTimestamp, oidBytea, 1007, 1186, 869}
	for i, s := range []string{"t", "-1", "1.5", "NaN", `{"a":1}`, "héllo", "2026-11-27 20:45:46+00", "2026-11-27 20:45:46", `\x00`, "{1,2}", "1 day", "10.0.0.1"} {
		f.Add(uint8(i), []byte(s))
	}
	m := pgtype.NewMap()
	f.Fuzz(func(t *testing.T, k uint8, text []byte) {
		out, err := encoderFor(m, oids[int(k)%len(oids)])(nil, text)
		if err == nil && !json.Valid(out) {
			t.Fatalf("oid %d: %q -> invalid JSON %q", oids[int(k)%len(oids)], text, out)
		}
	})
}
