package httpapi_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aegis-streaming/aegis/engine"
	"github.com/aegis-streaming/aegis/httpapi"
)

func TestSmoke(t *testing.T) {
	eng := engine.New(engine.Config{})
	defer eng.Close()
	srv, err := httpapi.New(eng, httpapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c, _ := httpapi.NewClient(ts.URL, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CreateChannel(ctx, httpapi.ChannelSpec{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := c.Publish(ctx, "orders", engine.NewEvent("order.created", "x", engine.IntData(5)), engine.NewEvent("order.paid", "x", engine.IntData(6)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		ev, err := sub.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID != ids[i] {
			t.Fatalf("event %d: %v, want %v", i, ev.ID, ids[i])
		}
	}
	h, err := c.History(ctx, "orders", nil)
	if err != nil || len(h) != 2 {
		t.Fatal(h, err)
	}
	sub.Close()
}
