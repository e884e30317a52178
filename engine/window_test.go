package engine_test

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
)

func TestWindowKindNames(t *testing.T) {
	tests := []struct {
		name string
		kind engine.WindowKind
	}{
		{name: "tumbling", kind: engine.Tumbling},
		{name: "sliding", kind: engine.Sliding},
		{name: "session", kind: engine.Session},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.kind.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			got, err := engine.ParseWindowKind(tt.name)
			if err != nil || got != tt.kind {
				t.Errorf("ParseWindowKind(%q) = %v, %v; want %v", tt.name, got, err, tt.kind)
			}
		})
	}
	if _, err := engine.ParseWindowKind("hopping"); err == nil || !strings.Contains(err.Error(), "tumbling") {
		t.Errorf("ParseWindowKind(hopping) = %v, want an error listing the kinds", err)
	}
	if got := engine.WindowKind(9).String(); got != "window kind(9)" {
		t.Errorf("String() of an unknown kind = %q", got)
	}
}

func TestWindowSpecValidate(t *testing.T) {
	tests := []struct {
		name    string
		spec    engine.WindowSpec
		wantErr string // "" for valid
	}{
		{name: "tumbling", spec: engine.WindowSpec{Kind: engine.Tumbling, Size: time.Second}},
		{name: "tumbling without size", spec: engine.WindowSpec{Kind: engine.Tumbling}, wantErr: "size must be positive"},
		{name: "tumbling negative size", spec: engine.WindowSpec{Kind: engine.Tumbling, Size: -time.Second}, wantErr: "size must be positive"},
		{name: "tumbling with every", spec: engine.WindowSpec{Kind: engine.Tumbling, Size: time.Second, Every: time.Second}, wantErr: "every is for sliding"},
		{name: "tumbling with gap", spec: engine.WindowSpec{Kind: engine.Tumbling, Size: time.Second, Gap: time.Second}, wantErr: "gap is for session"},
		{name: "sliding", spec: engine.WindowSpec{Kind: engine.Sliding, Size: time.Minute, Every: 10 * time.Second}},
		{name: "sliding every equals size", spec: engine.WindowSpec{Kind: engine.Sliding, Size: time.Minute, Every: time.Minute}},
		{name: "sliding without every", spec: engine.WindowSpec{Kind: engine.Sliding, Size: time.Minute}, wantErr: "every must be positive"},
		{name: "sliding every longer than size", spec: engine.WindowSpec{Kind: engine.Sliding, Size: time.Second, Every: time.Minute}, wantErr: "longer than size"},
		{name: "sliding size not a multiple", spec: engine.WindowSpec{Kind: engine.Sliding, Size: time.Minute, Every: 7 * time.Second}, wantErr: "whole multiple"},
		{name: "sliding with gap", spec: engine.WindowSpec{Kind: engine.Sliding, Size: time.Minute, Every: time.Second, Gap: 1}, wantErr: "gap is for session"},
		{name: "sliding without size", spec: engine.WindowSpec{Kind: engine.Sliding, Every: time.Second}, wantErr: "size must be positive"},
		{name: "session", spec: engine.WindowSpec{Kind: engine.Session, Gap: time.Minute}},
		{name: "session without gap", spec: engine.WindowSpec{Kind: engine.Session}, wantErr: "gap must be positive"},
		{name: "session with size", spec: engine.WindowSpec{Kind: engine.Session, Gap: time.Minute, Size: time.Minute}, wantErr: "size is for tumbling"},
		{name: "session with every", spec: engine.WindowSpec{Kind: engine.Session, Gap: time.Minute, Every: time.Minute}, wantErr: "every is for sliding"},
		{name: "unknown kind", spec: engine.WindowSpec{Kind: 7, Size: time.Second}, wantErr: "unknown window kind(7)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "window") {
				t.Errorf("error %q does not start with what failed", err)
			}
		})
	}
}

func TestWindowSpecWindows(t *testing.T) {
	tumbling := engine.WindowSpec{Kind: engine.Tumbling, Size: 10}
	sliding := engine.WindowSpec{Kind: engine.Sliding, Size: 10, Every: 5}
	sliding3 := engine.WindowSpec{Kind: engine.Sliding, Size: 9, Every: 3}
	session := engine.WindowSpec{Kind: engine.Session, Gap: 10}
	w := func(s, e int64) engine.Window { return engine.Window{Start: s, End: e} }
	tests := []struct {
		name    string
		spec    engine.WindowSpec
		t       int64
		want    []engine.Window
		wantErr bool
	}{
		{name: "tumbling at zero", spec: tumbling, t: 0, want: []engine.Window{w(0, 10)}},
		{name: "tumbling inside", spec: tumbling, t: 7, want: []engine.Window{w(0, 10)}},
		{name: "tumbling last nanosecond", spec: tumbling, t: 9, want: []engine.Window{w(0, 10)}},
		{name: "tumbling end is the next start", spec: tumbling, t: 10, want: []engine.Window{w(10, 20)}},
		{name: "tumbling negative", spec: tumbling, t: -1, want: []engine.Window{w(-10, 0)}},
		{name: "tumbling negative boundary", spec: tumbling, t: -10, want: []engine.Window{w(-10, 0)}},
		{name: "tumbling negative past boundary", spec: tumbling, t: -11, want: []engine.Window{w(-20, -10)}},
		{name: "sliding boundary", spec: sliding, t: 5, want: []engine.Window{w(0, 10), w(5, 15)}},
		{name: "sliding inside", spec: sliding, t: 7, want: []engine.Window{w(0, 10), w(5, 15)}},
		{name: "sliding at zero", spec: sliding, t: 0, want: []engine.Window{w(-5, 5), w(0, 10)}},
		{name: "sliding negative", spec: sliding, t: -1, want: []engine.Window{w(-10, 0), w(-5, 5)}},
		{name: "sliding three windows", spec: sliding3, t: 4, want: []engine.Window{w(-3, 6), w(0, 9), w(3, 12)}},
		{name: "sliding three windows negative", spec: sliding3, t: -4, want: []engine.Window{w(-12, -3), w(-9, 0), w(-6, 3)}},
		{name: "session", spec: session, t: 7, want: []engine.Window{w(7, 17)}},
		{name: "session negative", spec: session, t: -7, want: []engine.Window{w(-7, 3)}},
		{name: "tumbling near the largest time", spec: tumbling, t: math.MaxInt64 - 3, wantErr: true},
		{name: "tumbling at the smallest time", spec: tumbling, t: math.MinInt64, wantErr: true},
		{name: "tumbling at the smallest aligned time", spec: tumbling, t: math.MinInt64 + 8, want: []engine.Window{w(math.MinInt64+8, math.MinInt64+18)}},
		{name: "tumbling at the largest window", spec: tumbling, t: math.MaxInt64 - 17, want: []engine.Window{w(math.MaxInt64-17, math.MaxInt64-7)}},
		{name: "sliding near the smallest time", spec: sliding, t: math.MinInt64 + 1, wantErr: true},
		{name: "session near the largest time", spec: session, t: math.MaxInt64 - 3, wantErr: true},
		{name: "invalid spec", spec: engine.WindowSpec{Kind: engine.Tumbling}, t: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.spec.Windows(tt.t, nil)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Windows(%d) = %v, want an error", tt.t, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Windows(%d): %v", tt.t, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Windows(%d) = %v, want %v", tt.t, got, tt.want)
			}
			for _, win := range got {
				if tt.t < win.Start || tt.t >= win.End {
					t.Errorf("window %v does not hold %d", win, tt.t)
				}
			}
		})
	}
}

// TestWindowSpecWindowsCount checks, over a range of times, that each event
// belongs to Size/Every windows that hold it and are aligned to the epoch.
func TestWindowSpecWindowsCount(t *testing.T) {
	specs := []struct {
		name string
		spec engine.WindowSpec
	}{
		{name: "tumbling", spec: engine.WindowSpec{Kind: engine.Tumbling, Size: 7}},
		{name: "sliding 12 every 4", spec: engine.WindowSpec{Kind: engine.Sliding, Size: 12, Every: 4}},
		{name: "sliding 5 every 5", spec: engine.WindowSpec{Kind: engine.Sliding, Size: 5, Every: 5}},
	}
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			every := int64(s.spec.Every)
			if every == 0 {
				every = int64(s.spec.Size)
			}
			want := int(int64(s.spec.Size) / every)
			var buf []engine.Window
			for ts := int64(-50); ts <= 50; ts++ {
				var err error
				buf, err = s.spec.Windows(ts, buf[:0])
				if err != nil {
					t.Fatal(err)
				}
				if len(buf) != want {
					t.Fatalf("t=%d: %d windows, want %d", ts, len(buf), want)
				}
				for _, w := range buf {
					if w.Start%every != 0 || w.End-w.Start != int64(s.spec.Size) || ts < w.Start || ts >= w.End {
						t.Fatalf("t=%d: bad window %v", ts, w)
					}
				}
			}
		})
	}
}
