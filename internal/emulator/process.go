package emulator

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// maxLogLine is where Lambda splits a log line.
const maxLogLine = 256 << 10

// process is the function or an external extension, running in its own
// process group so that a signal reaches whatever it started too.
type process struct {
	name   string // file name: the extension's registration name
	kind   string // recordFunction or recordExtension: the type of its log records
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, set before exited is closed
	output *logPipe
	logs   chan struct{} // closed when its output has been read to the end
}

// start runs path as a process of kind in env; its stdout and stderr, one
// pipe as in Lambda, become log records.
func (env *env) start(path, kind string) (*process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path)
	cmd.Env = env.environ(kind)
	cmd.Dir = filepath.Dir(path)
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close()
	p := &process{
		name:   filepath.Base(path),
		kind:   kind,
		cmd:    cmd,
		exited: make(chan struct{}),
		output: &logPipe{f: r, wake: make(chan struct{})},
		logs:   make(chan struct{}),
	}
	env.procs = append(env.procs, p)
	go func() {
		defer close(p.logs)
		readLines(p.output, func(line []byte) { env.e.emit(env, kind, string(line)) })
		r.Close()
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
		env.signal(signal{kind: sigExit, proc: p})
	}()
	return p, nil
}

// readLines calls emit for every non-empty line of r, without its line
// ending; lines longer than maxLogLine are split, as Lambda splits them.
func readLines(r io.Reader, emit func([]byte)) {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		line = bytes.TrimRight(line, "\r\n")
		if len(line) > 0 {
			emit(line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// send delivers sig to the process's group.
func (p *process) send(sig syscall.Signal) {
	if p.running() {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	p.send(syscall.SIGCONT)
	p.send(syscall.SIGKILL)
	<-p.exited
}

// exitReason says how the process ended, for error messages.
func (p *process) exitReason() string {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return "signal: " + st.Signal().String()
		}
		return ee.Error()
	}
	if p.err != nil {
		return p.err.Error()
	}
	return "exit status 0"
}

// waitLogs waits up to d for the process's output to be read to the end: a
// child it left behind may hold the pipe open.
func (p *process) waitLogs(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.logs:
	case <-t.C:
	}
}

// logPipe reads a process's output and keeps count, so that the lifecycle
// loop can wait until every line written before a Runtime API call has
// become a record: a line the function printed before posting its response
// then comes before platform.runtimeDone, as in Lambda's stream.
type logPipe struct {
	f       *os.File
	mu      sync.Mutex
	read    int64 // bytes f.Read has returned
	handled int64 // bytes read and turned into records: all of them whenever the reader asks for more
	wake    chan struct{}
}

func (l *logPipe) Read(b []byte) (int, error) {
	// bufio asks for more only when no complete line is left in its
	// buffer: everything read so far is handled.
	l.mu.Lock()
	l.handled = l.read
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
	n, err := l.f.Read(b)
	l.mu.Lock()
	l.read += int64(n)
	l.mu.Unlock()
	return n, err
}

// syncLogs waits, at most d, until the lines p wrote so far are records.
func (p *process) syncLogs(d time.Duration) {
	l := p.output
	var target int64
	for i := 0; ; i++ {
		l.mu.Lock()
		before := l.read
		l.mu.Unlock()
		pending, ok := pendingBytes(l.f)
		if !ok || i == 8 {
			return
		}
		l.mu.Lock()
		after := l.read
		l.mu.Unlock()
		if before == after { // no read in between: before+pending is all that was written
			target = before + int64(pending)
			break
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		l.mu.Lock()
		done, wake := l.handled >= target, l.wake
		l.mu.Unlock()
		if done {
			return
		}
		select {
		case <-wake:
		case <-p.logs:
			return
		case <-t.C:
			return
		}
	}
}
