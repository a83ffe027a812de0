//go:build !unix

package report

import "net"

// pendingError is not read here: the next write returns the error.
func pendingError(*net.UDPConn) error { return nil }
