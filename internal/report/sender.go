package report

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// DefaultAddr is where the extension listens for reports unless
// LAMBDARASP_REPORT_ADDR says otherwise. The port avoids those other common
// extensions take (2772, 2773, 4317, 4318, 8124, 9001).
const DefaultAddr = "127.0.0.1:7431"

// Loopback reports whether addr is a loopback IP (IPv4-mapped included)
// and a port other than 0: what the wrapper and the extension accept for
// the addresses they talk over, which never leave the execution
// environment.
func Loopback(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().Unmap().IsLoopback() && ap.Port() != 0
}

// queueLen is how many reports may wait for the sender goroutine; more are
// dropped. One invocation at a time sends one report, so the queue only
// fills if the goroutine is starved.
const queueLen = 64

// Sender sends reports to one loopback UDP address. Send never waits for
// the network; the datagram is written by a goroutine of the Sender's own.
// A Sender is safe for concurrent use.
type Sender struct {
	conn     *net.UDPConn
	queue    chan *[]byte
	buffers  sync.Pool
	onChange func(reachable bool, err error)

	reachable atomic.Bool
	mu        sync.Mutex // write's state, below
	clean     int        // writes in a row that found a listener
	dropped   atomic.Int64
	done      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the goroutine has returned
	closeOnce sync.Once
}

// Dial returns a Sender for addr, which must be a loopback address
// ("127.0.0.1:7431"): reports never leave the execution environment.
// onChange, if not nil, is called from the Sender's goroutine each time
// the listener is found gone (reachable false, with the error) or back.
// Nobody needs to listen yet: a Sender starts out reachable.
func Dial(addr string, onChange func(reachable bool, err error)) (*Sender, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("report: address %q: %w", addr, err)
	}
	if !ua.IP.IsLoopback() {
		return nil, fmt.Errorf("report: address %q: want a loopback address such as %s", addr, DefaultAddr)
	}
	conn, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, fmt.Errorf("report: dial %s: %w", addr, err)
	}
	s := &Sender{
		conn:     conn,
		queue:    make(chan *[]byte, queueLen),
		onChange: onChange,
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	s.buffers.New = func() any { b := make([]byte, 0, 512); return &b }
	s.reachable.Store(true)
	go s.run()
	return s, nil
}

// Send encodes r and queues it for the sender goroutine. It returns false
// when the queue is full and the report was dropped. It does not keep r.
func (s *Sender) Send(r *Report) bool {
	bp := s.buffers.Get().(*[]byte)
	*bp = Append((*bp)[:0], r)
	select {
	case s.queue <- bp:
		return true
	default:
		s.buffers.Put(bp)
		s.dropped.Add(1)
		return false
	}
}

// Hello sends a greeting, a datagram the listener ignores, at once and on
// the caller's goroutine, and returns whether a listener took it. Call it
// at init: the wrapper then knows from its first invocation whether the
// extension is there. A refusal is reported to onChange.
func (s *Sender) Hello() bool {
	s.write(hello[:])
	return s.reachable.Load()
}

var hello = [4]byte{magic[0], magic[1], Version, flagHello}

// Reachable reports whether the last report written found a listener.
func (s *Sender) Reachable() bool { return s.reachable.Load() }

// Dropped is how many reports Send dropped because the queue was full.
func (s *Sender) Dropped() int64 { return s.dropped.Load() }

// Close stops the sender goroutine and closes the socket, and returns
// once the goroutine is gone; reports still queued are dropped.
func (s *Sender) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		err = s.conn.Close()
		<-s.stopped
	})
	return err
}

func (s *Sender) run() {
	defer close(s.stopped)
	for {
		select {
		case bp := <-s.queue:
			s.write(*bp)
			s.buffers.Put(bp)
		case <-s.done:
			return
		}
	}
}

// write sends one datagram and updates reachability. On loopback the
// kernel answers a datagram nobody listens for at once, by setting the
// socket's pending error, so reading it right after the write tells
// whether this report found the extension. Where that answer comes later
// (a busy kernel), the next write returns it instead, and the writes in
// between look clean: so a listener counts as back only after two clean
// writes in a row, and a dead one does not flap.
func (s *Sender) write(b []byte) {
	_, err := s.conn.Write(b)
	if err == nil {
		err = pendingError(s.conn)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.clean++
		if s.clean >= 2 && !s.reachable.Load() {
			s.reachable.Store(true)
			if s.onChange != nil {
				s.onChange(true, nil)
			}
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		s.clean = 0
		if s.reachable.Swap(false) && s.onChange != nil {
			s.onChange(false, err)
		}
	}
}
