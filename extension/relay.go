package extension

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/lambdarasp/lambdarasp/internal/otlp"
)

// Relay bounds.
const (
	maxOTLPBody   = 4 << 20 // one request to the receiver, decompressed
	maxBatchBytes = 1 << 20 // one request to the backend: requests are concatenated up to it
	minBackoff    = 100 * time.Millisecond
	maxBackoff    = 30 * time.Second
	// settleWait bounds how long an invocation's end waits for what it
	// produced to reach a healthy backend before the extension calls next.
	settleWait = 200 * time.Millisecond
)

// signals in queue order.
var signals = [...]otlp.Signal{otlp.Traces, otlp.Metrics, otlp.Logs}

// relay takes OTLP/HTTP protobuf on loopback — the wrapper's spans, and
// anything else in the function that exports there — and forwards it to
// the backend the OTEL_EXPORTER_OTLP_* variables name, from a goroutine of
// its own: requests of one signal are concatenated into one (protobuf
// concatenation merges their repeated resource lists), failures are
// retried with exponential backoff (100 ms to 30 s, or the server's
// Retry-After), and the queue is bounded in bytes: past it the oldest
// requests are dropped and counted (lambdarasp.otlp.dropped).
type relay struct {
	settings otlp.Settings
	client   *http.Client
	log      *slog.Logger
	limit    int // queue bound in bytes

	srv *http.Server

	mu       sync.Mutex
	queue    [len(signals)][][]byte
	bytes    int
	inflight bool
	since    time.Time // when the attempt in flight began
	failing  bool      // the last attempt failed: wait for retryAt
	backoff  time.Duration
	retryAt  time.Time
	changed  chan struct{} // closed at each change, for settle
	lastErr  string

	dropped [len(signals)]atomic.Int64
	sent    atomic.Int64 // requests the backend took
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
}

func newRelay(s otlp.Settings, client *http.Client, log *slog.Logger, limit int) *relay {
	r := &relay{settings: s, client: client, log: log, limit: limit, changed: make(chan struct{}),
		wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	go r.run()
	return r
}

// listen starts the receiver on addr (loopback).
func (r *relay) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	for _, sig := range signals {
		mux.HandleFunc("POST /v1/"+string(sig), func(w http.ResponseWriter, req *http.Request) { r.serve(w, req, sig) })
	}
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return nil
}

func (r *relay) close() {
	if r.srv != nil {
		_ = r.srv.Close()
	}
	close(r.done)
	<-r.stopped
}

func (r *relay) serve(w http.ResponseWriter, req *http.Request, sig otlp.Signal) {
	defer req.Body.Close()
	if !localPeer(req) {
		http.Error(w, "OTLP is taken from loopback only", http.StatusForbidden)
		return
	}
	if req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "lambdarasp relays OTLP/HTTP as application/x-protobuf only", http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, "bad gzip body", http.StatusBadRequest)
			return
		}
		body = z
	}
	b, err := io.ReadAll(io.LimitReader(body, maxOTLPBody+1))
	switch {
	case err != nil:
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	case len(b) > maxOTLPBody:
		http.Error(w, "request larger than 4 MiB", http.StatusRequestEntityTooLarge)
		return
	case !wellFormed(b):
		http.Error(w, "not an OTLP export request", http.StatusBadRequest)
		return
	}
	r.add(sig, b)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK) // an empty Export*ServiceResponse
}

// wellFormed reports whether b reads as an Export*ServiceRequest at its
// top level: field 1 (resource_spans, _metrics or _logs), length-delimited,
// as often as it comes, and nothing else. Requests are concatenated into
// one batch: a malformed one would make the backend refuse the others with
// it.
func wellFormed(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return false
		}
		b = b[n+m:]
	}
	return true
}

func index(sig otlp.Signal) int {
	for i, s := range signals {
		if s == sig {
			return i
		}
	}
	return 0
}

// add queues one request of sig; a signal without a target is dropped
// silently (its exporter is none).
func (r *relay) add(sig otlp.Signal, b []byte) {
	i := index(sig)
	if r.settings.Target(sig).URL == "" || len(b) == 0 {
		return
	}
	r.mu.Lock()
	for r.bytes+len(b) > r.limit && r.bytes > 0 {
		r.dropOldest()
	}
	if len(b) > r.limit {
		r.dropped[i].Add(1)
	} else {
		r.queue[i] = append(r.queue[i], b)
		r.bytes += len(b)
	}
	r.notify()
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// dropOldest drops the oldest request of the signal with the most bytes
// queued. Called with mu held.
func (r *relay) dropOldest() {
	most, size := -1, 0
	for i, q := range r.queue {
		n := 0
		for _, b := range q {
			n += len(b)
		}
		if n > size {
			most, size = i, n
		}
	}
	if most < 0 {
		return
	}
	b := r.queue[most][0]
	r.queue[most] = r.queue[most][1:]
	r.bytes -= len(b)
	r.dropped[most].Add(1)
}

// notify wakes the waiters of settle. Called with mu held.
func (r *relay) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *relay) run() {
	defer close(r.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-r.wake:
		case <-timer.C:
		case <-r.done:
			return
		}
		if wait := r.send(); wait > 0 {
			timer.Reset(wait)
		}
	}
}

// send posts what is queued, one batch per signal at a time, until the
// queue is empty or an attempt fails; it returns how long to wait before
// the next attempt (0: none pending).
func (r *relay) send() time.Duration {
	for {
		r.mu.Lock()
		if wait := time.Until(r.retryAt); r.failing && wait > 0 {
			r.mu.Unlock()
			return wait
		}
		i, body, n := r.batch()
		if n == 0 {
			r.mu.Unlock()
			return 0
		}
		r.inflight, r.since = true, time.Now()
		r.mu.Unlock()

		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-r.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := otlp.Post(ctx, r.client, r.settings.Target(signals[i]), body)
		cancel()

		r.mu.Lock()
		r.inflight = false
		var oe *otlp.Error
		switch {
		case err == nil:
			r.sent.Add(int64(n))
			r.failing, r.backoff = false, 0
			r.take(i, n)
		case errors.As(err, &oe) && !oe.Retry:
			// The backend refuses these requests: trying again changes nothing.
			r.take(i, n)
			r.dropped[i].Add(int64(n))
			r.failed(err)
		default:
			r.backoff = min(max(2*r.backoff, minBackoff), maxBackoff)
			wait := r.backoff
			if oe != nil && oe.After > 0 {
				wait = min(oe.After, maxBackoff)
			}
			r.failing, r.retryAt = true, time.Now().Add(wait)
			r.failed(err)
		}
		r.notify()
		r.mu.Unlock()
		select {
		case <-r.done:
			return 0
		default:
		}
	}
}

// failed logs an export failure when it differs from the last one.
// Called with mu held.
func (r *relay) failed(err error) {
	if msg := err.Error(); msg != r.lastErr {
		r.lastErr = msg
		r.log.Warn("lambdarasp OTLP export failed: kept and retried with backoff", "error", msg)
	}
}

// batch concatenates the oldest signal's first requests, up to
// maxBatchBytes (at least one). Called with mu held.
func (r *relay) batch() (i int, body []byte, n int) {
	for i, q := range r.queue {
		if len(q) == 0 {
			continue
		}
		size := 0
		for _, b := range q {
			if n > 0 && size+len(b) > maxBatchBytes {
				break
			}
			size += len(b)
			n++
		}
		if n == 1 {
			return i, q[0], 1
		}
		body = make([]byte, 0, size)
		for _, b := range q[:n] {
			body = append(body, b...)
		}
		return i, body, n
	}
	return 0, nil, 0
}

// take removes the first n requests of signal i. Called with mu held.
func (r *relay) take(i, n int) {
	for _, b := range r.queue[i][:n] {
		r.bytes -= len(b)
	}
	r.queue[i] = r.queue[i][n:]
	if len(r.queue[i]) == 0 {
		r.queue[i] = nil
	}
}

// pending counts the requests queued.
func (r *relay) pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.queue {
		n += len(q)
	}
	return n
}

// settle waits, at the end of an invocation, until what is queued has
// reached the backend — at most limit, and not at all while the backend
// is failing or an attempt has been slower than limit: a backend that is
// down or slow costs an invocation nothing. What is left is sent in the
// background, kept while the environment is frozen, and retried.
func (r *relay) settle(ctx context.Context, limit time.Duration) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		empty := r.bytes == 0 && !r.inflight
		give := r.failing || (r.inflight && time.Since(r.since) > limit)
		ch := r.changed
		r.mu.Unlock()
		if empty || give {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// drain is the shutdown: every request queued is tried now, ignoring the
// backoff, and retried every 100 ms until all are sent or ctx ends.
func (r *relay) drain(ctx context.Context) {
	for {
		r.mu.Lock()
		empty := r.bytes == 0 && !r.inflight
		if r.failing && !r.inflight {
			r.retryAt = time.Now()
		}
		ch := r.changed
		r.mu.Unlock()
		if empty {
			return
		}
		select {
		case r.wake <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-time.After(minBackoff):
		case <-ctx.Done():
			return
		}
	}
}

// droppedCount is the requests dropped so far, per signal.
func (r *relay) droppedCount() [len(signals)]int64 {
	var out [len(signals)]int64
	for i := range r.dropped {
		out[i] = r.dropped[i].Load()
	}
	return out
}
