package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/emulator"
)

// memory is a process's resident set, in KiB, from /proc/PID/status.
type memory struct {
	rss, hwm int // VmRSS now, VmHWM (the peak since it started)
}

func (m memory) String() string {
	return fmt.Sprintf("%.1f MB (peak %.1f MB)", float64(m.rss)/1024, float64(m.hwm)/1024)
}

// idleInvocations is how many clean invocations idleMemory sends before it
// reads the extension's memory: init and a few quiet invocations are the
// steady state of an environment nobody attacks.
const idleInvocations = 3

// idleMemory runs the extension (a binary for this machine) beside
// function under the emulator, sends it idleInvocations events, and reads
// the extension process's resident memory while the environment is
// frozen between invocations.
func idleMemory(ctx context.Context, extension, function string) (memory, error) {
	dir, err := os.MkdirTemp("", "lambdarasp-idle-")
	if err != nil {
		return memory{}, err
	}
	defer os.RemoveAll(dir)
	extDir := filepath.Join(dir, "extensions")
	if err := os.Mkdir(extDir, 0o755); err != nil {
		return memory{}, err
	}
	ext := filepath.Join(extDir, "lambdarasp")
	if err := os.Symlink(extension, ext); err != nil {
		return memory{}, err
	}
	env, err := extensionEnv(dir)
	if err != nil {
		return memory{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	em, err := emulator.Start(ctx, emulator.Config{Function: function, ExtensionsDir: extDir, Env: env})
	if err != nil {
		return memory{}, fmt.Errorf("idle memory: start the environment: %w", err)
	}
	defer em.Close()
	for range idleInvocations {
		if _, err := em.Invoke(ctx, []byte(`{"ping":"idle"}`)); err != nil {
			return memory{}, fmt.Errorf("idle memory: invoke: %w", err)
		}
	}
	if err := em.Wait(ctx); err != nil { // the extension back in next
		return memory{}, fmt.Errorf("idle memory: %w", err)
	}
	pid, err := childRunning(extension)
	if err != nil {
		return memory{}, err
	}
	return readMemory(pid)
}

// extensionEnv is this process's environment with the extension's own
// ports and files, its decisions and (absent) policy in dir, so that
// extensions running at once do not meet. The report address is a loopback
// UDP port nothing listened on a moment ago: it may not be port 0.
func extensionEnv(dir string) ([]string, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	report := c.LocalAddr().String()
	c.Close()
	return append(os.Environ(),
		"LAMBDARASP_TELEMETRY_PORT=0",
		"LAMBDARASP_REPORT_ADDR="+report,
		"LAMBDARASP_DECISIONS_FILE="+filepath.Join(dir, "decisions.json"),
		"LAMBDARASP_POLICY_FILE="+filepath.Join(dir, "no-policy.json"),
	), nil
}

// childRunning finds the pid of this process's child running the
// executable bin.
func childRunning(bin string) (int, error) {
	want, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return 0, err
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		var state byte
		var ppid int
		if _, err := fmt.Sscanf(string(stat[i+1:]), " %c %d", &state, &ppid); err != nil || ppid != self {
			continue
		}
		if exe, err := os.Readlink("/proc/" + d.Name() + "/exe"); err == nil && exe == want {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("idle memory: no child process runs %s", want)
}

// readMemory reads VmRSS and VmHWM from /proc/PID/status.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return memory{}, err
	}
	var m memory
	for line := range bytes.Lines(b) {
		for _, f := range []struct {
			prefix string
			into   *int
		}{{"VmRSS:", &m.rss}, {"VmHWM:", &m.hwm}} {
			if rest, ok := bytes.CutPrefix(line, []byte(f.prefix)); ok {
				kb, err := strconv.Atoi(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))))
				if err != nil {
					return memory{}, fmt.Errorf("idle memory: /proc/%d/status: %q", pid, line)
				}
				*f.into = kb
			}
		}
	}
	if m.rss == 0 || m.hwm == 0 {
		return memory{}, fmt.Errorf("idle memory: /proc/%d/status has no VmRSS or VmHWM", pid)
	}
	return m, nil
}
