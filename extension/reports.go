package extension

import (
	"errors"
	"net"
	"sync/atomic"

	"github.com/lambdarasp/lambdarasp/internal/report"
)

// reportListener receives the wrapper's reports and passes them to the
// event loop.
type reportListener struct {
	conn      *net.UDPConn
	reports   chan report.Report
	dropped   atomic.Int64 // the event loop fell behind
	malformed atomic.Int64 // datagrams that are not reports, or not from loopback
	greeted   atomic.Bool  // a wrapper said hello: it will report
}

func listenReports(addr string) (*reportListener, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	// Reports wait in the socket while the environment is frozen.
	_ = conn.SetReadBuffer(1 << 20)
	l := &reportListener{conn: conn, reports: make(chan report.Report, 1024)}
	go l.run()
	return l, nil
}

func (l *reportListener) run() {
	buf := make([]byte, report.MaxSize+1)
	for {
		n, peer, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		if !peer.Addr().Unmap().IsLoopback() {
			l.malformed.Add(1)
			continue
		}
		r, err := report.Decode(buf[:n])
		if errors.Is(err, report.ErrHello) {
			l.greeted.Store(true)
			continue
		}
		if err != nil {
			l.malformed.Add(1)
			continue
		}
		select {
		case l.reports <- r:
		default:
			l.dropped.Add(1)
		}
	}
}

func (l *reportListener) close() { _ = l.conn.Close() }
