package extension

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The Telemetry listener flooded — many senders at once, large batches
// of records nobody uses, batches with more records than the event loop
// holds, malformed ones: the heap stays bounded, the extension keeps
// calling next on time, and what it refused or dropped is counted and said
// once, at shutdown.
func TestTelemetryFlood(t *testing.T) {
	f := newFakeAPI(t)
	var stdout, logs syncBuffer
	cfg := testConfig(t, f, &stdout, &logs)
	done := run(t, cfg)
	eventually(t, "the extension is ready", f.waiting(1))
	f.mu.Lock()
	if len(f.subscribed) != 1 {
		f.mu.Unlock()
		t.Fatalf("subscriptions %v", f.subscribed)
	}
	url := strings.Replace(f.subscribed[0], "sandbox.localdomain", "127.0.0.1", 1)
	f.mu.Unlock()

	// 6 MiB of empty records: decoded into a slice whole, 150 MB.
	useless := []byte("[" + strings.Repeat("{},", 2<<20-1) + "{}]")
	// A batch of more records than the event loop holds.
	var many strings.Builder
	many.WriteString("[")
	for i := range 2 * maxTelemetryRecords {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `{"time":"2026-01-02T15:00:00Z","type":"platform.runtimeDone","record":{"requestId":"flood-%d","status":"success","metrics":{"durationMs":1}}}`, i)
	}
	many.WriteString("]")
	bodies := [][]byte{useless, []byte(`[{"type":"platform.report","record":`), []byte(many.String())}

	runtime.GC()
	base := heapBytes()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the heap, sampled
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if h := heapBytes(); h > peak.Load() {
				peak.Store(h)
			}
		}
	}()
	var sent, busy atomic.Int64
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post(url, "application/json", bytes.NewReader(bodies[i%len(bodies)]))
				if err == nil {
					resp.Body.Close()
					sent.Add(1)
					if resp.StatusCode == http.StatusServiceUnavailable {
						busy.Add(1)
					}
				}
			}
		}()
	}

	// Invocations go on meanwhile: each next comes within its bound.
	for i := range 10 {
		start := time.Now()
		f.invoke(fmt.Sprintf("r%d", i))
		eventually(t, "next during the flood", f.waiting(i+2))
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("invocation %d: next after %v during the flood", i, d)
		}
	}
	for sent.Load() < 30 {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("the heap grew by %d MiB at most; %d of %d batches refused as one too many at once", (int64(peak.Load())-int64(base))>>20, busy.Load(), sent.Load())
	if busy.Load() == 0 {
		t.Errorf("%d batches from 6 senders at once, none refused: want at most %d read at once", sent.Load(), maxTelemetryInflight)
	}
	if grown := int64(peak.Load()) - int64(base); grown > 64<<20 {
		t.Errorf("the heap grew by %d MiB during the flood, want at most 64", grown>>20)
	}

	// Alone, it is taken: the records past the queue are dropped, and
	// counted.
	resp, err := http.Post(url, "application/json", strings.NewReader(many.String()))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a batch of %d records: %v %v", 2*maxTelemetryRecords, resp, err)
	}
	resp.Body.Close()

	f.shutdown(time.Now().Add(2 * time.Second))
	if err := wait(t, done, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"lambdarasp telemetry records lost"`) {
			lost++
			if strings.Contains(line, `"dropped":0,`) || strings.Contains(line, `"refused_batches":0`) {
				t.Errorf("want records dropped and batches refused: %s", line)
			}
		}
	}
	if lost != 1 {
		t.Errorf("%d 'telemetry records lost' lines, want 1:\n%s", lost, logs.String())
	}
}

// heapBytes is the memory the heap's objects take, live or not yet
// collected.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Telemetry is taken from this host only: from loopback, or from the
// sandbox address it was posted to; any other peer is refused, and
// counted.
func TestTelemetryPeers(t *testing.T) {
	for _, c := range []struct {
		peer, local string
		want        int
	}{
		{"127.0.0.1:40000", "127.0.0.1:7432", http.StatusOK},
		{"[::1]:40000", "[::1]:7432", http.StatusOK},
		{"169.254.100.1:40000", "169.254.100.1:7432", http.StatusOK}, // sandbox.localdomain, not loopback
		{"169.254.100.2:40000", "169.254.100.1:7432", http.StatusForbidden},
		{"203.0.113.9:40000", "", http.StatusForbidden},
		{"not an address", "", http.StatusForbidden},
	} {
		l := &telemetryListener{events: make(chan platformEvent, 4)}
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`[{"type":"platform.runtimeDone","record":{"requestId":"r1","status":"timeout"}}]`))
		req.RemoteAddr = c.peer
		if c.local != "" {
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(c.local))))
		}
		w := httptest.NewRecorder()
		l.serve(w, req)
		if w.Code != c.want || (c.want != http.StatusOK && (len(l.events) != 0 || l.refused.Load() != 1)) {
			t.Errorf("from %s to %q: status %d, %d records passed on, %d refused; want %d", c.peer, c.local, w.Code, len(l.events), l.refused.Load(), c.want)
		}
	}
}
