package bench

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// What protect.Handler adds to each invocation to talk to the extension:
// sending the report (budget 5 µs) and checking the decisions file when it
// has not changed (budget 5 µs). Run them alone with
//
//	go test -run '^$' -bench 'ReportSend|DecisionCheck' -benchmem ./bench/
//
// They are not case=…/impl=… benchmarks: make bench's table leaves them out.

// BenchmarkReportSend times report.Sender.Send, what the wrapper pays on
// the request path, as the custom metric ns/send. Each iteration then
// waits until a listener has received the datagram, as the extension
// would between invocations, so the sender goroutine has to be woken every
// time; ns/op is that whole round trip.
func BenchmarkReportSend(b *testing.B) {
	addr, got := reportListener(b)
	s, err := report.Dial(addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := &report.Report{RequestID: "c6af9ac6-7b61-11e6-9a41-93e812345678", Source: "apigw-http", Action: report.Block,
		Rules: []int{942100, 942190}, Records: 1, BlockedRecords: 1, DurationMicros: 2100, ClientIP: "203.0.113.9"}
	var spent time.Duration
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		s.Send(r)
		spent += time.Since(start)
		<-got
	}
	b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N), "ns/send")
}

// reportListener stands in for the extension's report listener: got
// receives each report that arrives (greetings left out).
func reportListener(b *testing.B) (addr string, got <-chan struct{}) {
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	ch := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, report.MaxSize)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				return
			}
			if _, err := report.Decode(buf[:n]); err == nil {
				ch <- struct{}{}
			}
		}
	}()
	return ln.LocalAddr().String(), ch
}

// BenchmarkDecisionCheck is the wrapper's per-invocation look at the
// decisions file when it has not changed: a stat, then the quarantine and
// client-IP checks against the parsed decisions.
func BenchmarkDecisionCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "decisions.json")
	now := time.Now()
	if err := decision.Write(path, decision.Decisions{
		BlockedIPs: []decision.BlockedIP{{IP: "198.51.100.7", Until: now.Add(time.Hour)}},
	}); err != nil {
		b.Fatal(err)
	}
	w := decision.NewWatcher(path)
	b.ReportAllocs()
	for b.Loop() {
		a, err := w.Load()
		if err != nil {
			b.Fatal(err)
		}
		t := time.Now()
		_, q := a.Quarantined(t)
		if _, blocked := a.IPBlocked("203.0.113.9", t); q || blocked {
			b.Fatal("clean invocation refused")
		}
	}
}
