//go:build !wasip1

package sdk

// Outside a wasm module (the SDK's own tests), log lines go to logHook.
var logHook func(level int32, msg string)

func hostLog(level int32, msg string) {
	if logHook != nil {
		logHook(level, msg)
	}
}
