//go:build !wasip1

package sdk

import (
	"reflect"
	"testing"
)

// TestLog checks that the log functions reach the host with their levels;
// outside a wasm module the host is logHook.
func TestLog(t *testing.T) {
	type line struct {
		level int32
		msg   string
	}
	var got []line
	saved := logHook
	t.Cleanup(func() { logHook = saved })
	logHook = func(level int32, msg string) { got = append(got, line{level, msg}) }
	Debug("d")
	Info("i")
	Warn("w")
	Error("e")
	Log(2, "two")
	Logf(LevelInfo, "%d-%s", 7, "x")
	want := []line{{-4, "d"}, {0, "i"}, {4, "w"}, {8, "e"}, {2, "two"}, {0, "7-x"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("logged %v, want %v", got, want)
	}
	logHook = nil
	Info("dropped") // no hook: nothing happens
}
