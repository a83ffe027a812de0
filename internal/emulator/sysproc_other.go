//go:build !linux

package emulator

import "syscall"

// sysProcAttr puts a process in its own group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
