//go:build !linux

package jstest

import "os/exec"

// setParentDeathSignal does nothing outside Linux: a test process that
// dies without Stop leaves the nodes running.
func setParentDeathSignal(*exec.Cmd) {}
