package jstest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the node killed when the test process dies.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
