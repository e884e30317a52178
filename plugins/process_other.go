//go:build !linux

package plugins

import "os/exec"

// dieWithHost: only Linux has a parent-death signal; the SDK's watchdog
// ends connectors whose host is gone.
func dieWithHost(*exec.Cmd) {}
