package jetstream_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aegis-streaming/aegis/engine/internal/jetstream"
)

func TestNames(t *testing.T) {
	tests := []struct {
		name, channel, stream string
	}{
		{name: "plain", channel: "orders", stream: "AEGIS_orders"},
		{name: "dots", channel: "orders.eu", stream: "AEGIS_orders_2Eeu"},
		{name: "underscore", channel: "a_b", stream: "AEGIS_a__b"},
		{name: "case and dash", channel: "Orders-EU", stream: "AEGIS_Orders-EU"},
		{name: "wildcards", channel: "a.*.>", stream: "AEGIS_a_2E_2A_2E_3E"},
		{name: "slash", channel: "x/y", stream: "AEGIS_x_2Fy"},
		{name: "utf8", channel: "é", stream: "AEGIS__C3_A9"},
		{name: "escape-like", channel: "_2E", stream: "AEGIS___2E"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jetstream.StreamName(tt.channel); got != tt.stream {
				t.Errorf("StreamName(%q) = %q, want %q", tt.channel, got, tt.stream)
			}
			back, err := jetstream.ChannelName(tt.stream)
			if err != nil || back != tt.channel {
				t.Errorf("ChannelName(%q) = %q, %v; want %q", tt.stream, back, err, tt.channel)
			}
			checkValid(t, tt.channel)
		})
	}
}

func TestNamesLong(t *testing.T) {
	tests := []struct{ name, channel string }{
		{"255 letters", strings.Repeat("a", 255)},
		{"255 dots", strings.Repeat(".", 255)},
		{"mixed", strings.Repeat("a.", 127) + "b"},
		{"escapes at the cut", strings.Repeat("ab_", 85)},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValid(t, tt.channel)
			s := jetstream.StreamName(tt.channel)
			if _, err := jetstream.ChannelName(s); err == nil {
				t.Errorf("shortened stream name %q decoded", s)
			}
			if other, ok := seen[s]; ok {
				t.Errorf("%q and %q share stream %q", tt.channel, other, s)
			}
			seen[s] = tt.channel
		})
	}
	// Two long names with the same prefix differ by their hash.
	a, b := strings.Repeat("x", 250)+"1", strings.Repeat("x", 250)+"2"
	if jetstream.StreamName(a) == jetstream.StreamName(b) {
		t.Error("long names with a common prefix collide")
	}
}

// checkValid checks what JetStream requires of stream names and subjects.
func checkValid(t *testing.T, channel string) {
	t.Helper()
	s := jetstream.StreamName(channel)
	if len(s) > 255 || strings.ContainsAny(s, " \t\r\n\f.*>/\\") {
		t.Errorf("stream name %q (for %q) is not valid", s, channel)
	}
	subj := jetstream.Subject(channel)
	tok := strings.TrimPrefix(subj, jetstream.SubjectPrefix)
	if strings.ContainsAny(tok, ". \t\r\n*>") || tok == "" {
		t.Errorf("subject %q (for %q) is not a single literal token", subj, channel)
	}
	if c := jetstream.ConsumerName(channel); len(c) > 255 || strings.ContainsAny(c, " .*>/\\") {
		t.Errorf("consumer name %q is not valid", c)
	}
}

func FuzzNames(f *testing.F) {
	for _, s := range []string{"orders", "a.b", "_", "__2E", "é", strings.Repeat("z.", 130)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, channel string) {
		if channel == "" || len(channel) > 255 || !utf8.ValidString(channel) {
			return
		}
		checkValid(t, channel)
		s := jetstream.StreamName(channel)
		back, err := jetstream.ChannelName(s)
		if err == nil && back != channel {
			t.Fatalf("round trip %q -> %q -> %q", channel, s, back)
		}
		if err != nil && len(s) < 255-18 {
			t.Fatalf("short stream name %q did not decode: %v", s, err)
		}
	})
}
