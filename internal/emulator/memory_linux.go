package emulator

import (
	"bytes"
	"os"
	"strconv"
)

// peakMemoryMB returns the peak resident set size of process pid in MB,
// rounded up: VmHWM in /proc/PID/status, the high-water mark since the
// process started, which is what platform.report's maxMemoryUsedMB reports
// for an environment. ok is false when the process is gone.
func peakMemoryMB(pid int) (mb int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range bytes.Lines(b) {
		rest, found := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !found {
			continue
		}
		kb, err := strconv.Atoi(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))))
		if err != nil {
			return 0, false
		}
		return (kb + 1023) / 1024, true
	}
	return 0, false
}
