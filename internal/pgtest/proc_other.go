//go:build !linux

package pgtest

import "syscall"

// sysProcAttr runs a child with cred (nil: the test process's own).
// Outside Linux there is no parent-death signal: a test process that
// dies without Stop leaves the server running.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
