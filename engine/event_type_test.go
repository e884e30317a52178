package engine_test

import (
	"strings"
	"testing"

	"github.com/aegis-streaming/aegis/engine"
)

func TestEventTypeWellKnown(t *testing.T) {
	tests := []struct {
		name string
		typ  engine.EventType
		want string
	}{
		{name: "created", typ: engine.Created, want: "created"},
		{name: "updated", typ: engine.Updated, want: "updated"},
		{name: "deleted", typ: engine.Deleted, want: "deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.typ.String(); got != tt.want {
				t.Errorf("String() = %q, want %q (the string form is stable)", got, tt.want)
			}
			if string(tt.typ) != tt.want {
				t.Errorf("string(%v) = %q, want %q", tt.typ, string(tt.typ), tt.want)
			}
			if tt.typ.IsCustom() {
				t.Errorf("%s.IsCustom() = true, want false", tt.typ)
			}
			if err := tt.typ.Validate(); err != nil {
				t.Errorf("%s.Validate(): %v", tt.typ, err)
			}
			got, err := engine.CustomType(tt.want)
			if err != nil {
				t.Fatalf("CustomType(%q): %v", tt.want, err)
			}
			if got != tt.typ {
				t.Errorf("CustomType(%q) = %q, want the well-known %q", tt.want, got, tt.typ)
			}
			if got.IsCustom() {
				t.Errorf("CustomType(%q).IsCustom() = true, want false", tt.want)
			}
		})
	}
}

func TestCustomType(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // a part of the error message; "" for no error
	}{
		{name: "dotted", in: "order.created"},
		{name: "single character", in: "x"},
		{name: "unicode", in: "commande.créée"},
		{name: "punctuation", in: "urn:event/v1#x-y_z"},
		{name: "upper case well-known name is custom", in: "Created"},
		{name: "exactly the limit", in: strings.Repeat("a", engine.MaxEventTypeLen)},
		{name: "limit in multi-byte runes", in: strings.Repeat("é", engine.MaxEventTypeLen/2)},

		{name: "empty", in: "", wantErr: "empty"},
		{name: "one over the limit", in: strings.Repeat("a", engine.MaxEventTypeLen+1), wantErr: "256 bytes"},
		{name: "over the limit in bytes not runes", in: strings.Repeat("é", engine.MaxEventTypeLen/2+1), wantErr: "256 bytes"},
		{name: "space", in: "order created", wantErr: "white space"},
		{name: "leading space", in: " order", wantErr: "white space"},
		{name: "trailing newline", in: "order\n", wantErr: "white space"},
		{name: "tab", in: "a\tb", wantErr: "white space"},
		{name: "no-break space", in: "a\u00a0b", wantErr: "white space"},
		{name: "ideographic space", in: "a\u3000b", wantErr: "white space"},
		{name: "NUL", in: "a\x00b", wantErr: "control"},
		{name: "control after a non-ASCII rune", in: "é\x01", wantErr: "control"},
		{name: "space after a non-ASCII rune", in: "é x", wantErr: "white space"},
		{name: "escape", in: "a\x1bb", wantErr: "control"},
		{name: "DEL", in: "a\x7fb", wantErr: "control"},
		{name: "C1 control", in: "a\u0080b", wantErr: "control"},
		{name: "invalid UTF-8 byte", in: "a\xffb", wantErr: "UTF-8"},
		{name: "truncated UTF-8", in: "caf\xc3", wantErr: "UTF-8"},
		{name: "surrogate half encoded", in: "a\xed\xa0\x80", wantErr: "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := engine.CustomType(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("CustomType(%q) = %q, want an error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("CustomType(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if got != "" {
					t.Errorf("CustomType(%q) returned %q with its error, want \"\"", tt.in, got)
				}
				if verr := engine.EventType(tt.in).Validate(); verr == nil {
					t.Errorf("EventType(%q).Validate() = nil, want an error", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("CustomType(%q): %v", tt.in, err)
			}
			if string(got) != tt.in || got.String() != tt.in {
				t.Errorf("CustomType(%q) = %q, want the name unchanged", tt.in, got)
			}
			if !got.IsCustom() {
				t.Errorf("CustomType(%q).IsCustom() = false, want true", tt.in)
			}
		})
	}
}
