package extension

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/otlp"
	"github.com/lambdarasp/lambdarasp/internal/otlp/otlptest"
)

// traceRequest is a valid ExportTraceServiceRequest of one span named
// name.
func traceRequest(name string) []byte {
	var w otlp.Buf
	env := w.Envelope(otlp.Resource(nil), "test")
	sp := w.Begin(2)
	w.Bytes(1, []byte("0123456789abcdef"))
	w.Bytes(2, []byte("01234567"))
	w.String(5, name)
	w.End(sp)
	w.EndEnvelope(env)
	return w.B
}

func testRelay(t *testing.T, limit int) (*relay, *otlptest.Receiver) {
	t.Helper()
	rcv, err := otlptest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	s, err := otlp.FromEnv(func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL, "OTEL_EXPORTER_OTLP_TIMEOUT": "2000"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	r := newRelay(s, &http.Client{}, slog.New(slog.DiscardHandler), limit)
	t.Cleanup(r.close)
	return r, rcv
}

// Requests queued together leave as one, concatenated, and decode as the
// union of their spans.
func TestRelayBatches(t *testing.T) {
	r, rcv := testRelay(t, 1<<20)
	rcv.SetDelay(50 * time.Millisecond) // the first request is in flight while the rest queue
	for _, n := range []string{"a", "b", "c", "d"} {
		r.add(otlp.Traces, traceRequest(n))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.drain(ctx)
	if got := len(rcv.Spans()); got != 4 {
		t.Fatalf("%d spans delivered, want 4", got)
	}
	if n := rcv.Requests(); n > 2 {
		t.Errorf("%d requests to the backend, want at most 2 (the first, then the rest queued meanwhile, as one)", n)
	}
	if errs := rcv.Errors(); len(errs) > 0 {
		t.Errorf("undecodable: %v", errs)
	}
}

// Past its bound the queue drops its oldest requests and counts them;
// what stays is delivered when the backend comes back.
func TestRelayBounded(t *testing.T) {
	const limit = 64 << 10
	r, rcv := testRelay(t, limit)
	rcv.SetFail(http.StatusServiceUnavailable)
	name := string(make([]byte, 1000))
	for range 200 { // 200 KB into a 64 KB queue
		r.add(otlp.Traces, traceRequest(name))
		r.mu.Lock()
		n := r.bytes
		r.mu.Unlock()
		if n > limit {
			t.Fatalf("queue holds %d bytes, more than its %d", n, limit)
		}
	}
	dropped := r.droppedCount()[0]
	if dropped == 0 {
		t.Fatal("nothing dropped")
	}
	// settle does not wait for a failing backend.
	start := time.Now()
	r.settle(context.Background(), time.Second)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("settle waited %v for a failing backend", d)
	}
	rcv.SetFail(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.drain(ctx)
	if got := int64(len(rcv.Spans())); got+dropped != 200 || r.pending() != 0 {
		t.Errorf("%d delivered + %d dropped, %d pending: want 200 in all, none pending", got, dropped, r.pending())
	}
}
