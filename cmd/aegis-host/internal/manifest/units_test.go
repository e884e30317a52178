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

type units struct {
	D manifest.Duration `yaml:"d" json:"d"`
	B manifest.ByteSize `yaml:"b" json:"b"`
}

func TestUnitsMarshalling(t *testing.T) {
	for _, tc := range []struct {
		v          units
		yaml, json string
	}{
		{units{manifest.Duration(time.Second), 64 * manifest.MiB}, "d: 1s\nb: 64MiB\n", `{"d":"1s","b":"64MiB"}`},
		{units{manifest.NoDeadline, 1000}, "d: none\nb: 1000\n", `{"d":"none","b":1000}`},
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
	for _, in := range []string{`{"d":5}`, `{"d":true}`, `{"d":"-1s"}`, `{"b":-1}`, `{"b":1.5}`, `{"b":"1.5GiB"}`, `{"b":[]}`} {
		if err := json.Unmarshal([]byte(in), &u); err == nil {
			t.Errorf("json.Unmarshal(%s) succeeds", in)
		}
	}
	for _, in := range []string{"d: 5\n", "d: [1s]\n", "b: lots\n", "b: -3\n"} {
		if err := yaml.Unmarshal([]byte(in), &u); err == nil {
			t.Errorf("yaml.Unmarshal(%q) succeeds", in)
		}
	}
}
