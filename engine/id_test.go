package engine_test

import (
	"crypto/rand"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

// TestNewEventIDConcurrent makes 100k identifiers from 8 goroutines at once
// and checks that each goroutine saw strictly increasing identifiers, that
// all of them are distinct, and that the byte order (Compare) is the order
// of the canonical string form.
func TestNewEventIDConcurrent(t *testing.T) {
	const (
		workers = 8
		total   = 100_000
		each    = total / workers
	)
	perWorker := make([][]engine.EventID, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]engine.EventID, each)
			for i := range ids {
				ids[i] = engine.NewEventID()
			}
			perWorker[w] = ids
		}()
	}
	wg.Wait()

	all := make([]engine.EventID, 0, total)
	for w, ids := range perWorker {
		for i := 1; i < len(ids); i++ {
			if ids[i-1].Compare(ids[i]) >= 0 {
				t.Fatalf("goroutine %d: id %d (%s) is not after id %d (%s)", w, i, ids[i], i-1, ids[i-1])
			}
		}
		all = append(all, ids...)
	}
	if len(all) != total {
		t.Fatalf("made %d ids, want %d", len(all), total)
	}

	seen := make(map[engine.EventID]struct{}, total)
	for _, id := range all {
		if _, dup := seen[id]; dup {
			t.Fatalf("id %s was made twice", id)
		}
		seen[id] = struct{}{}
	}

	slices.SortFunc(all, engine.EventID.Compare)
	for i := 1; i < len(all); i++ {
		a, b := all[i-1].String(), all[i].String()
		if a >= b {
			t.Fatalf("ids sorted by Compare are not sorted by String: %q then %q", a, b)
		}
	}
}

func TestEventIDCompareMatchesStringOrder(t *testing.T) {
	// Arbitrary UUIDs from outside, not only the ones made here.
	ids := make([]engine.EventID, 200)
	for i := range ids {
		if _, err := rand.Read(ids[i][:]); err != nil {
			t.Fatal(err)
		}
	}
	ids = append(ids, engine.EventID{}, engine.EventID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	for _, a := range ids {
		for _, b := range ids {
			got := a.Compare(b)
			want := strings.Compare(a.String(), b.String())
			if got != want {
				t.Fatalf("%s.Compare(%s) = %d, want %d (the order of the strings)", a, b, got, want)
			}
		}
	}
}

func TestEventIDCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b engine.EventID
		want int
	}{
		{name: "equal zero", want: 0},
		{name: "equal", a: engine.EventID{1, 2, 3}, b: engine.EventID{1, 2, 3}, want: 0},
		{name: "first byte less", a: engine.EventID{1}, b: engine.EventID{2}, want: -1},
		{name: "first byte greater", a: engine.EventID{2}, b: engine.EventID{1}, want: 1},
		{name: "last byte decides", a: engine.EventID{15: 1}, b: engine.EventID{15: 0}, want: 1},
		{name: "unsigned bytes", a: engine.EventID{0x7f}, b: engine.EventID{0x80}, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Errorf("%s.Compare(%s) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestNewEventIDVersionAndTime(t *testing.T) {
	id := engine.NewEventID()
	if v := id.Version(); v != 7 {
		t.Errorf("Version() = %d, want 7 (id %s)", v, id)
	}
	// RFC 9562 variant: the two top bits of byte 8 are 10.
	if id[8]>>6 != 0b10 {
		t.Errorf("variant bits of %s are %02b, want 10", id, id[8]>>6)
	}
	ts, ok := id.Time()
	if !ok {
		t.Fatalf("Time() of version 7 id %s: ok = false", id)
	}
	if d := time.Since(ts); math.Abs(float64(d)) > float64(time.Second) {
		t.Errorf("Time() = %s, which is %s away from now; want within a second", ts, d)
	}
	if ts.Location() != time.UTC {
		t.Errorf("Time() location = %s, want UTC", ts.Location())
	}
	if ts.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("Time() = %s, want millisecond precision", ts)
	}
}

func TestEventIDTime(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		want   time.Time
		wantOK bool
	}{
		{
			name:   "version 7 from RFC 9562 appendix",
			id:     "017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
			want:   time.UnixMilli(0x017f22e279b0).UTC(),
			wantOK: true,
		},
		{name: "version 7 at epoch", id: "00000000-0000-7000-8000-000000000000", want: time.UnixMilli(0).UTC(), wantOK: true},
		{name: "version 4", id: "919108f7-52d1-4320-9bac-f847db4148a8"},
		{name: "version 1", id: "c232ab00-9414-11ec-b3c8-9f6bdeced846"},
		{name: "zero", id: "00000000-0000-0000-0000-000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := engine.ParseEventID(tt.id)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := id.Time()
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("Time() = %s, %t; want %s, %t", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParseEventID(t *testing.T) {
	const canonical = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"
	want := engine.EventID{0x01, 0x90, 0xa1, 0xb2, 0xc3, 0xd4, 0x7e, 0x5f, 0x8a, 0x6b, 0x7c, 0x8d, 0x9e, 0x0f, 0x1a, 0x2b}
	tests := []struct {
		name    string
		in      string
		want    engine.EventID
		wantErr bool
	}{
		{name: "lower case", in: canonical, want: want},
		{name: "upper case", in: strings.ToUpper(canonical), want: want},
		{name: "mixed case", in: "0190A1b2-C3d4-7E5f-8A6b-7c8D9e0F1a2B", want: want},
		{name: "zero", in: "00000000-0000-0000-0000-000000000000"},
		{name: "all ones", in: "ffffffff-ffff-ffff-ffff-ffffffffffff", want: engine.EventID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},

		{name: "empty", in: "", wantErr: true},
		{name: "one short", in: canonical[:35], wantErr: true},
		{name: "one long", in: canonical + "0", wantErr: true},
		{name: "no dashes", in: strings.ReplaceAll(canonical, "-", ""), wantErr: true},
		{name: "braces", in: "{" + canonical + "}", wantErr: true},
		{name: "urn prefix", in: "urn:uuid:" + canonical, wantErr: true},
		{name: "dash moved left", in: "0190a1b-2c3d4-7e5f-8a6b-7c8d9e0f1a2b", wantErr: true},
		{name: "dash moved right", in: "0190a1b2c-3d4-7e5f-8a6b-7c8d9e0f1a2b", wantErr: true},
		{name: "first dash replaced by hex", in: canonical[:8] + "0" + canonical[9:], wantErr: true},
		{name: "second dash replaced by hex", in: canonical[:13] + "0" + canonical[14:], wantErr: true},
		{name: "third dash replaced by hex", in: canonical[:18] + "0" + canonical[19:], wantErr: true},
		{name: "fourth dash replaced by hex", in: canonical[:23] + "0" + canonical[24:], wantErr: true},
		{name: "dash in hex position", in: "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a-b", wantErr: true},
		{name: "underscores", in: "0190a1b2_c3d4_7e5f_8a6b_7c8d9e0f1a2b", wantErr: true},
		{name: "non-hex letter", in: "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2g", wantErr: true},
		{name: "non-hex first", in: "x190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", wantErr: true},
		{name: "space", in: "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2 ", wantErr: true},
		{name: "plus sign", in: "+190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", wantErr: true},
		{name: "non-ASCII of right byte length", in: "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1aé", wantErr: true},
		{name: "NUL byte", in: "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2\x00", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := engine.ParseEventID(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseEventID(%q) = %s, want an error", tt.in, got)
				}
				if !got.IsZero() {
					t.Errorf("ParseEventID(%q) returned %s with its error, want the zero id", tt.in, got)
				}
				if !strings.Contains(err.Error(), "event id") {
					t.Errorf("error %q does not say what failed to parse", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEventID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseEventID(%q) = %x, want %x", tt.in, got[:], tt.want[:])
			}
			if s := got.String(); s != strings.ToLower(tt.in) {
				t.Errorf("String() = %q, want %q", s, strings.ToLower(tt.in))
			}
		})
	}
}

func TestEventIDStringRoundTrip(t *testing.T) {
	for range 100 {
		id := engine.NewEventID()
		s := id.String()
		if len(s) != 36 || s != strings.ToLower(s) {
			t.Fatalf("String() = %q, want 36 lowercase characters", s)
		}
		back, err := engine.ParseEventID(s)
		if err != nil {
			t.Fatalf("ParseEventID(%q): %v", s, err)
		}
		if back != id {
			t.Fatalf("ParseEventID(%q) = %s, want %s", s, back, id)
		}
	}
}

func TestEventIDText(t *testing.T) {
	id := engine.NewEventID()
	text, err := id.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText: %v", err)
	}
	if string(text) != id.String() {
		t.Errorf("MarshalText = %q, want %q", text, id.String())
	}
	var back engine.EventID
	if err := back.UnmarshalText(text); err != nil {
		t.Fatalf("UnmarshalText(%q): %v", text, err)
	}
	if back != id {
		t.Errorf("UnmarshalText(%q) = %s, want %s", text, back, id)
	}
	if err := back.UnmarshalText([]byte(strings.ToUpper(string(text)))); err != nil || back != id {
		t.Errorf("UnmarshalText(upper case) = %s, %v; want %s, nil", back, err, id)
	}

	// A failed UnmarshalText leaves the identifier alone.
	before := back
	if err := back.UnmarshalText([]byte("not-an-id")); err == nil {
		t.Error("UnmarshalText(not-an-id): want an error")
	}
	if back != before {
		t.Errorf("failed UnmarshalText changed the id to %s", back)
	}

	// As a TextMarshaler the id is a JSON string, also as a map key.
	b, err := json.Marshal(map[engine.EventID]engine.EventID{id: id})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"` + id.String() + `":"` + id.String() + `"}`
	if string(b) != want {
		t.Errorf("json.Marshal = %s, want %s", b, want)
	}
	var m map[engine.EventID]engine.EventID
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m[id] != id {
		t.Errorf("json round trip lost the id: %v", m)
	}
}

func TestEventIDIsZero(t *testing.T) {
	tests := []struct {
		name string
		id   engine.EventID
		want bool
	}{
		{name: "zero value", id: engine.EventID{}, want: true},
		{name: "first byte set", id: engine.EventID{0: 1}},
		{name: "last byte set", id: engine.EventID{15: 1}},
		{name: "new", id: engine.NewEventID()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id.IsZero(); got != tt.want {
				t.Errorf("%s.IsZero() = %t, want %t", tt.id, got, tt.want)
			}
		})
	}
}

func FuzzParseEventID(f *testing.F) {
	for _, s := range []string{
		"0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b",
		"0190A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B",
		"00000000-0000-0000-0000-000000000000",
		"ffffffff-ffff-ffff-ffff-ffffffffffff",
		"0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2",
		"0190a1b2c3d47e5f8a6b7c8d9e0f1a2b",
		"{0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b}",
		"0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1aé",
		"--------------------------------------",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := engine.ParseEventID(s)
		if err != nil {
			if !id.IsZero() {
				t.Fatalf("ParseEventID(%q) failed but returned %s", s, id)
			}
			return
		}
		if got, want := id.String(), strings.ToLower(s); got != want {
			t.Fatalf("ParseEventID(%q).String() = %q, want %q", s, got, want)
		}
		back, err := engine.ParseEventID(id.String())
		if err != nil || back != id {
			t.Fatalf("re-parsing %q = %s, %v; want %s", id.String(), back, err, id)
		}
	})
}

func mustParseEventID(t testing.TB, s string) engine.EventID {
	t.Helper()
	id, err := engine.ParseEventID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
