package manifest_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/aegis-streaming/aegis/cmd/aegis-host/internal/manifest"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"1s", time.Second, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1.5s", 1500 * time.Millisecond, ""},
		{"10us", 10 * time.Microsecond, ""},
		{"0", 0, ""},
		{"0s", 0, ""},
		{"none", -1, ""},
		{"", 0, "empty duration"},
		{"5", 0, `duration "5" has no unit`},
		{"-1s", 0, `negative duration "-1s"`},
		{"+1s", 0, `invalid duration "+1s"`},
		{" 1s", 0, `invalid duration " 1s"`},
		{"1 s", 0, `invalid duration "1 s"`},
		{"1d", 0, `invalid duration "1d"`},
		{"None", 0, `invalid duration "None"`},
	} {
		d, err := manifest.ParseDuration(tc.in)
		switch {
		case tc.err == "" && (err != nil || d.D() != tc.want):
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, d.D(), err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseDuration(%q) = %v, %v; want an error with %q", tc.in, d, err, tc.err)
		}
	}
}

func TestDurationString(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + time.Second, "1h0m1s"},
		{time.Minute, "1m"},
		{61 * time.Second, "1m1s"},
		{1500 * time.Millisecond, "1.5s"},
		{50 * time.Millisecond, "50ms"},
		{0, "0s"},
		{-1, "none"},
	} {
		if got := manifest.Duration(tc.d).String(); got != tc.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tc.d, got, tc.want)
		}
		if tc.d >= 0 {
			back, err := manifest.ParseDuration(tc.want)
			if err != nil || back.D() != tc.d {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.want, back, err, tc.d)
			}
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"65536", 65536, ""},
		{"512KiB", 512 << 10, ""},
		{"64MiB", 64 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"10MB", 10_000_000, ""},
		{"3KB", 3000, ""},
		{"1GB", 1e9, ""},
		{"1TB", 1e12, ""},
		{"100B", 100, ""},
		{"64 MiB", 64 << 20, ""},
		{"", 0, "invalid size"},
		{"MiB", 0, "invalid size"},
		{"64mib", 0, "invalid size"},
		{"1.5MiB", 0, "invalid size"},
		{"-1", 0, "invalid size"},
		{" 1", 0, "invalid size"},
		{"99999999999999999999", 0, "too large"},
		{"9000000TiB", 0, "too large"},
	} {
		b, err := manifest.ParseByteSize(tc.in)
		switch {
		case tc.err == "" && (err != nil || b.Bytes() != tc.want):
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, b.Bytes(), err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseByteSize(%q) = %d, %v; want an error with %q", tc.in, b, err, tc.err)
		}
	}
	for _, tc := range []struct {
		b    manifest.ByteSize
		want string
	}{
		{64 * manifest.MiB, "64MiB"}, {1536, "1536"}, {manifest.KiB, "1KiB"}, {3 * manifest.TiB, "3TiB"}, {0, "0"}, {1000, "1000"},
	} {
		if got := tc.b.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", tc.b, got, tc.want)
		}
	}
}

func TestParseFuel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"1", 1, ""},
		{"1500", 1500, ""},
		{"500k", 500_000, ""},
		{"100M", 100_000_000, ""},
		{"2G", 2_000_000_000, ""},
		{"100_000_000", 100_000_000, ""},
		{"1_500k", 1_500_000, ""},
		{"007", 7, ""},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"none", -1, ""},
		{"", 0, "empty fuel; write a positive integer with an optional suffix k, M or G"},
		{"0", 0, `fuel must be positive, got "0"; write a budget such as 100M, or none for no budget`},
		{"0k", 0, `fuel must be positive, got "0k"`},
		{"-1", 0, `negative fuel "-1"; write a positive budget such as 100M, or none for no budget`},
		{"-5M", 0, `negative fuel "-5M"`},
		{"1.5M", 0, `fuel "1.5M" is not written as an integer; write 1500k`},
		{"1.1M", 0, `fuel "1.1M" is not written as an integer; write 1100k`},
		{".5G", 0, `fuel ".5G" is not written as an integer; write 500M`},
		{"1e8", 0, `fuel "1e8" is not written as an integer; write 100M`},
		{"1.5", 0, `fuel "1.5" is not a whole number; write a positive integer with an optional suffix k, M or G`},
		{"0.0001k", 0, `fuel "0.0001k" is not a whole number`},
		{"100K", 0, `fuel "100K" has an unknown suffix "K"; the suffixes are k (thousand), M (million) and G (billion), as in 500k, 100M or 2G (did you mean 100k?)`},
		{"100m", 0, `unknown suffix "m"; the suffixes are k (thousand), M (million) and G (billion), as in 500k, 100M or 2G (did you mean 100M?)`},
		{"2g", 0, `(did you mean 2G?)`},
		{"1T", 0, `fuel "1T" has an unknown suffix "T"; the suffixes are k (thousand), M (million) and G (billion), as in 500k, 100M or 2G`},
		{"64MiB", 0, `fuel "64MiB" has an unknown suffix "MiB"`},
		{"9223372036854775808", 0, `fuel "9223372036854775808" is too large; the most is 9223372036854775807, or write none for no budget`},
		{"9300000000G", 0, `fuel "9300000000G" is too large`},
		{"None", 0, `invalid fuel "None"; write none, in lower case, for no budget`},
		{"unlimited", 0, `invalid fuel "unlimited"; write a positive integer`},
		{"M", 0, `invalid fuel "M"`},
		{"+5", 0, `invalid fuel "+5"`},
		{" 5", 0, `invalid fuel " 5"`},
		{"5 M", 0, `invalid fuel "5 M"`},
		{"0x10", 0, `invalid fuel "0x10"`},
		{"_100", 0, `invalid fuel "_100"`},
		{"100_", 0, `invalid fuel "100_"`},
		{"1__000", 0, `invalid fuel "1__000"`},
		{"1_k", 0, `invalid fuel "1_k"`},
	} {
		f, err := manifest.ParseFuel(tc.in)
		switch {
		case tc.err == "" && (err != nil || f.Int64() != tc.want):
			t.Errorf("ParseFuel(%q) = %d, %v; want %d", tc.in, f.Int64(), err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseFuel(%q) = %d, %v; want an error with %q", tc.in, f.Int64(), err, tc.err)
		}
	}
}

func TestFuelString(t *testing.T) {
	for _, tc := range []struct {
		f    manifest.Fuel
		want string
	}{
		{100_000_000, "100M"}, {2_000_000_000, "2G"}, {500_000, "500k"}, {1_500_000, "1500k"},
		{1_000_000_000_000, "1000G"}, {1234, "1234"}, {1, "1"}, {1<<63 - 1, "9223372036854775807"},
		{manifest.NoFuel, "none"}, {manifest.DefaultFuel, "10M"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("Fuel(%d).String() = %q, want %q", tc.f, got, tc.want)
		}
		if back, err := manifest.ParseFuel(tc.want); err != nil || back != tc.f {
			t.Errorf("ParseFuel(%q) = %d, %v; want %d", tc.want, back, err, tc.f)
		}
	}
}

// FuzzParseFuel checks that what ParseFuel accepts is positive or none and
// reads back the same from its String.
func FuzzParseFuel(f *testing.F) {
	for _, s := range []string{"100M", "2G", "500k", "1_000", "none", "0", "-1", "1.5M", "1e8", "100K", "9223372036854775807", "9300000000G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		x, err := manifest.ParseFuel(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseFuel(%q): an empty error", s)
			}
			return
		}
		if x <= 0 && x != manifest.NoFuel {
			t.Fatalf("ParseFuel(%q) = %d", s, x)
		}
		if back, err := manifest.ParseFuel(x.String()); err != nil || back != x {
			t.Fatalf("ParseFuel(%q) = %d, String %q, reads back %d, %v", s, x, x, back, err)
		}
	})
}

type units struct {
	D manifest.Duration `yaml:"d" json:"d"`
	B manifest.ByteSize `yaml:"b" json:"b"`
	F manifest.Fuel     `yaml:"f,omitempty" json:"f,omitempty"`
}

func TestUnitsMarshalling(t *testing.T) {
	for _, tc := range []struct {
		v          units
		yaml, json string
	}{
		{units{manifest.Duration(time.Second), 64 * manifest.MiB, 0}, "d: 1s\nb: 64MiB\n", `{"d":"1s","b":"64MiB"}`},
		{units{manifest.NoDeadline, 1000, 0}, "d: none\nb: 1000\n", `{"d":"none","b":1000}`},
		{units{manifest.Duration(time.Second), 0, 100_000_000}, "d: 1s\nb: 0\nf: 100M\n", `{"d":"1s","b":0,"f":"100M"}`},
		{units{0, 0, manifest.NoFuel}, "d: 0s\nb: 0\nf: none\n", `{"d":"0s","b":0,"f":"none"}`},
		{units{0, 0, 1234}, "d: 0s\nb: 0\nf: 1234\n", `{"d":"0s","b":0,"f":1234}`},
		{units{0, 0, 1_500_000}, "d: 0s\nb: 0\nf: 1500k\n", `{"d":"0s","b":0,"f":"1500k"}`},
	} {
		y, err := yaml.Marshal(tc.v)
		if err != nil || string(y) != tc.yaml {
			t.Errorf("yaml.Marshal(%+v) = %q, %v; want %q", tc.v, y, err, tc.yaml)
		}
		j, err := json.Marshal(tc.v)
		if err != nil || string(j) != tc.json {
			t.Errorf("json.Marshal(%+v) = %s, %v; want %s", tc.v, j, err, tc.json)
		}
		var fromYAML, fromJSON units
		if err := yaml.Unmarshal(y, &fromYAML); err != nil || fromYAML != tc.v {
			t.Errorf("yaml.Unmarshal(%q) = %+v, %v", y, fromYAML, err)
		}
		if err := json.Unmarshal(j, &fromJSON); err != nil || fromJSON != tc.v {
			t.Errorf("json.Unmarshal(%s) = %+v, %v", j, fromJSON, err)
		}
	}
	var u units
	for _, in := range []string{`{"d":0,"b":0}`, `{"d":"0","b":"0"}`} {
		if err := json.Unmarshal([]byte(in), &u); err != nil || u != (units{}) {
			t.Errorf("json.Unmarshal(%s) = %+v, %v", in, u, err)
		}
	}
	for in, want := range map[string]manifest.Fuel{
		`{"f":1e8}`: 100_000_000, `{"f":"100_000_000"}`: 100_000_000, `{"f":"2G"}`: 2_000_000_000, `{"f":9223372036854775807}`: 1<<63 - 1,
		"f: 100_000_000\n": 100_000_000, "f: 500k\n": 500_000, "f: 7\n": 7,
	} {
		var u units
		unmarshal := json.Unmarshal
		if !strings.HasPrefix(in, "{") {
			unmarshal = yaml.Unmarshal
		}
		if err := unmarshal([]byte(in), &u); err != nil || u.F != want {
			t.Errorf("unmarshalling %q = %d, %v; want %d", in, u.F, err, want)
		}
	}
	for _, in := range []string{`{"d":5}`, `{"d":true}`, `{"d":"-1s"}`, `{"b":-1}`, `{"b":1.5}`, `{"b":"1.5GiB"}`, `{"b":[]}`,
		`{"f":0}`, `{"f":"0"}`, `{"f":-1}`, `{"f":1.5}`, `{"f":"1.5M"}`, `{"f":"100K"}`, `{"f":true}`, `{"f":[]}`, `{"f":1e30}`,
		`{"f":99999999999999999999}`, `{"f":9223372036854775808}`, `{"f":"None"}`} {
		if err := json.Unmarshal([]byte(in), &u); err == nil {
			t.Errorf("json.Unmarshal(%s) succeeds", in)
		}
	}
	for _, in := range []string{"d: 5\n", "d: [1s]\n", "b: lots\n", "b: -3\n",
		"f: 0\n", "f: -3\n", "f: 2.5\n", "f: lots\n", "f: 1.5M\n", "f: [1]\n", "f: true\n", "f: 18446744073709551615\n"} {
		if err := yaml.Unmarshal([]byte(in), &u); err == nil {
			t.Errorf("yaml.Unmarshal(%q) succeeds", in)
		}
	}
	// The messages say what to write.
	if err := json.Unmarshal([]byte(`{"f":0}`), &u); err == nil || !strings.Contains(err.Error(), "fuel must be positive, got 0; write a budget such as 100M, or none for no budget") {
		t.Errorf(`json.Unmarshal({"f":0}): %v`, err)
	}
	if err := yaml.Unmarshal([]byte("f: 100K\n"), &u); err == nil || !strings.Contains(err.Error(), "did you mean 100k?") {
		t.Errorf(`yaml.Unmarshal("f: 100K"): %v`, err)
	}
}
