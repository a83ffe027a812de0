//go:build unix

package report

import (
	"net"
	"syscall"
)

// pendingError reads and clears the socket's pending error (SO_ERROR).
func pendingError(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var soErr error
	_ = rc.Control(func(fd uintptr) {
		v, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
		if err == nil && v != 0 {
			soErr = syscall.Errno(v)
		}
	})
	return soErr
}
