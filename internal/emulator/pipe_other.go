//go:build !linux

package emulator

import "os"

// pendingBytes is unknown outside Linux: log lines are not synchronised with
// the platform events.
func pendingBytes(f *os.File) (int, bool) { return 0, false }
