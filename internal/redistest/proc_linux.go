//go:build linux

package redistest

import "syscall"

// sysProcAttr makes the kernel kill redis-server if the test binary dies before its
// cleanup runs (a panic or a -timeout), so that no server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
