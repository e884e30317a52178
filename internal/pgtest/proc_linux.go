package pgtest

import "syscall"

// sysProcAttr runs a child with cred (nil: the test process's own) and
// has it killed when the test process dies. The signal is set after the
// credentials change, which would clear it, so it holds for the
// postmaster; its backends exit when they see the postmaster gone.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
