//go:build !linux

package emulator

// peakMemoryMB is unknown outside Linux: platform.report says 0.
func peakMemoryMB(pid int) (mb int, ok bool) { return 0, false }
