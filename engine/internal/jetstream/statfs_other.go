//go:build !(linux || darwin || freebsd)

package jetstream

import "errors"

// freeBytes is not implemented here; the server then applies its own default.
func freeBytes(string) (uint64, error) {
	return 0, errors.New("free space unknown on this platform")
}
