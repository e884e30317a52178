package plugins

import (
	"os/exec"
	"syscall"
)

// dieWithHost makes the kernel kill the connector when the host process
// ends, however it ends (kill -9 included). The SDK's watchdog does the
// same on other systems, and for connectors that do not use the SDK the
// host kills what it started when it stops.
func dieWithHost(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
