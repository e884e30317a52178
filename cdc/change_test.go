package cdc_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/cdc"
	"github.com/aegis-streaming/aegis/engine"
)

func TestChangeType(t *testing.T) {
	tests := []struct {
		in   string
		want cdc.ChangeType
		err  bool
	}{
		{"insert", cdc.Insert, false}, {"c", cdc.Insert, false},
		{"update", cdc.Update, false}, {"u", cdc.Update, false},
		{"delete", cdc.Delete, false}, {"d", cdc.Delete, false},
		{"truncate", cdc.Truncate, false}, {"t", cdc.Truncate, false},
		{"read", cdc.Read, false}, {"r", cdc.Read, false},
		{"", 0, true}, {"INSERT", 0, true}, {"x", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := cdc.ParseChangeType(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("ParseChangeType(%q) = %v, %v", tt.in, got, err)
			}
			if err == nil {
				if back, _ := cdc.ParseChangeType(got.Op()); back != got {
					t.Errorf("op %q does not parse back", got.Op())
				}
				if got.EventType() != engine.EventType("cdc."+got.String()) {
					t.Errorf("event type %s", got.EventType())
				}
			}
		})
	}
	if s := cdc.ChangeType(9).String(); s != "ChangeType(9)" {
		t.Errorf("unknown type: %s", s)
	}
}

func TestPosition(t *testing.T) {
	tests := []struct {
		in   string
		want cdc.Position
		err  string
	}{
		{"0/16B3748:2", cdc.Position{LSN: 0x16B3748, Index: 2}, ""},
		{"A/0:0", cdc.Position{LSN: 0xA << 32}, ""},
		{"FFFFFFFF/FFFFFFFF:4294967295", cdc.Position{LSN: ^uint64(0), Index: ^uint32(0)}, ""},
		{"0/16B3748", cdc.Position{}, "want LSN:index"},
		{"016B3748:1", cdc.Position{}, "two hexadecimal halves"},
		{"0/G:1", cdc.Position{}, "two hexadecimal halves"},
		{"1FFFFFFFF/0:1", cdc.Position{}, "two hexadecimal halves"},
		{"0/1:-1", cdc.Position{}, "index"},
		{"0/1:4294967296", cdc.Position{}, "index"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := cdc.ParsePosition(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %v, %v; want %v", got, err, tt.want)
			}
			if !strings.EqualFold(got.String(), tt.in) {
				t.Errorf("String() = %s", got)
			}
		})
	}
	a, b := cdc.Position{LSN: 1, Index: 5}, cdc.Position{LSN: 2}
	if !a.Less(b) || b.Less(a) || a.Less(a) || !(cdc.Position{LSN: 1, Index: 4}).Less(a) {
		t.Error("Less")
	}
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"0/16B3748:2", "A/0:0", "/:", "0/:1", "ffffffff/ffffffff:4294967295"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := cdc.ParsePosition(s)
		if err != nil {
			return
		}
		q, err := cdc.ParsePosition(p.String())
		if err != nil || q != p {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, p, p.String(), q, err)
		}
	})
}

func TestRowJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{`null`, `null`},
		{`{}`, `{}`},
		{`{"b":1,"a":"x","c":null,"d":{"e":[1,2]}}`, `{"b":1,"a":"x","c":null,"d":{"e":[1,2]}}`},
		{` { "z" : 1 , "y" : true } `, `{"z":1,"y":true}`},
		{`{"quote\"d":"\u00e9"}`, `{"quote\"d":"\u00e9"}`},
	}
	for _, tt := range tests {
		var r cdc.Row
		if err := json.Unmarshal([]byte(tt.in), &r); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got := string(r.AppendJSON(nil)); got != tt.want {
			t.Errorf("%s -> %s, want %s", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{`[1]`, `1`, `{"a":}`, `{"a":1`} {
		var r cdc.Row
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	r := cdc.Row{{Name: "a", Value: json.RawMessage(`1`)}, {Name: "b"}}
	if v, ok := r.Get("b"); !ok || v != nil {
		t.Errorf("Get(b) = %s, %v", v, ok)
	}
	if got := string(r.AppendJSON(nil)); got != `{"a":1,"b":null}` {
		t.Errorf("a column without a value: %s", got)
	}
}

func FuzzRowJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":"x"}`, `null`, `{}`, `{"a":{"b":[1,{"c":2}]}}`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r cdc.Row
		if err := r.UnmarshalJSON(b); err != nil {
			return
		}
		out := r.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("%q -> invalid %q", b, out)
		}
		var again cdc.Row
		if err := again.UnmarshalJSON(out); err != nil || string(again.AppendJSON(nil)) != string(out) {
			t.Fatalf("%q does not round-trip: %v", out, err)
		}
	})
}

func TestEventRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 27, 20, 45, 46, 123456789, time.UTC)
	c := cdc.ChangeEvent{
		Type:       cdc.Update,
		Source:     cdc.SourceInfo{Connector: "postgresql", Name: "shop", Database: "app", Schema: "sales", Table: "orders"},
		Key:        cdc.Row{{Name: "id", Value: json.RawMessage(`7`)}},
		Before:     cdc.Row{{Name: "id", Value: json.RawMessage(`7`)}, {Name: "status", Value: json.RawMessage(`"open"`)}},
		After:      cdc.Row{{Name: "id", Value: json.RawMessage(`7`)}, {Name: "status", Value: json.RawMessage(`"paid"`)}},
		CommitTime: at, TxID: 757, Position: cdc.Position{LSN: 0x16B3748, Index: 3},
		Metadata: map[string]string{"tenant": "a"},
	}
	id := engine.NewEventID()
	e := c.Event(id)
	if e.ID != id || e.Type != "cdc.update" || e.Source != "app.sales.orders" || e.Time != at.UnixNano() {
		t.Errorf("event %s %s %s %d", e.ID, e.Type, e.Source, e.Time)
	}
	for k, want := range map[string]string{"cdc.op": "u", "cdc.database": "app", "cdc.schema": "sales", "cdc.table": "orders",
		"cdc.position": "0/16B3748:3", "cdc.tx_id": "757", "tenant": "a"} {
		if got, _ := e.Meta(k); got != want {
			t.Errorf("metadata %s = %q, want %q", k, got, want)
		}
	}
	raw, _ := e.Data.AsJSON()
	want := `{"op":"u","ts_ms":1795812346123,"source":{"connector":"postgresql","name":"shop","db":"app","schema":"sales","table":"orders","snapshot":false,"txId":757,"lsn":"0/16B3748","ts_ms":1795812346123},"position":"0/16B3748:3","key":{"id":7},"before":{"id":7,"status":"open"},"after":{"id":7,"status":"paid"}}`
	if string(raw) != want {
		t.Errorf("data\n%s\nwant\n%s", raw, want)
	}
	back, err := cdc.FromEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.AppendJSON(nil)) != string(c.AppendJSON(nil)) || !back.CommitTime.Equal(at) || back.Metadata["tenant"] != "a" || len(back.Metadata) != 1 {
		t.Errorf("round trip: %+v", back)
	}
	// The event survives the engine's own encodings.
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var e2 engine.Event
	if err := json.Unmarshal(b, &e2); err != nil {
		t.Fatal(err)
	}
	if back2, err := cdc.FromEvent(e2); err != nil || string(back2.AppendJSON(nil)) != string(c.AppendJSON(nil)) {
		t.Errorf("after JSON: %v", err)
	}
	if _, err := cdc.FromEvent(engine.Event{Data: engine.StringData("x")}); err == nil {
		t.Error("a string event read as a change")
	}
	if _, err := cdc.FromEvent(engine.Event{Data: engine.MustJSONData(`{"op":"x"}`)}); err == nil {
		t.Error("an unknown op read as a change")
	}
}

func TestDefaultSlot(t *testing.T) {
	for in, want := range map[string]string{
		"shop":                  "aegis_shop",
		"Shop-DB.eu":            "aegis_shop_db_eu",
		strings.Repeat("x", 80): "aegis_" + strings.Repeat("x", 57),
	} {
		if got := cdc.DefaultSlot(in); got != want {
			t.Errorf("DefaultSlot(%q) = %q, want %q", in, got, want)
		}
	}
}
