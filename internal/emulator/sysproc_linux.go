package emulator

import "syscall"

// sysProcAttr puts a process in its own group, and has the kernel kill it if
// the emulator dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
