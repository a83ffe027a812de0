package protect

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/lambdarasp/lambdarasp/internal/egress"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// Transport returns an http.RoundTripper that makes base's requests
// (http.DefaultTransport's when base is nil) under the egress rules, and
// records each one for the report protect.Handler sends the lambdarasp
// extension: scheme, host, port, the address dialed, method, status or
// error class, duration to the response headers, body bytes sent and
// received. Never the path, the query or a header.
//
// A call belongs to the invocation whose context it carries (the context
// Handler gives the handler, or one derived from it, in any goroutine);
// without one, to the invocation in flight; during init, or when that is
// ambiguous, it is reported with the next invocation and marked so.
//
// Before a request is sent, its host is checked against the extension's
// deny_destination decisions and the lists' names, and a host written as
// an address (in any spelling: 0x7f000001, [::ffff:169.254.169.254]) is
// checked as one. When base is an *http.Transport (it is cloned; later
// changes to base are not seen), names are resolved at dial time by
// Transport itself and every address is checked before one is dialed, by
// address: DNS rebinding and redirects get no further than the first
// request. See WithEgressInternal, WithEgressAllow, WithEgressDeny and
// WithEgressMode for the rules; a refused call returns a *DeniedError,
// logs a finding and reports it. Other RoundTrippers are checked before
// the request by resolving the name (their own resolution may differ),
// and so is https when base has its own DialTLSContext. Behind a proxy
// (HTTPS_PROXY), what is dialed is the proxy: a name is then checked as
// a name, not by the addresses the proxy resolves it to.
//
// The recording costs 0.3–0.5 µs per call (bench/transport_test.go); the
// checks at dial time, once per connection, add the lookup. The returned
// RoundTripper is safe for concurrent use; Transport of a RoundTripper it
// returned returns it unchanged.
//
// With tracing on (see Handler), each call of a sampled invocation is a
// client span, and a request without a traceparent header gets one (on a
// copy: the caller's request is not changed), so the callee continues the
// invocation's trace.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if t, ok := base.(*transport); ok {
		return t
	}
	t := &transport{base: base, dials: map[dialKey]dialNote{}}
	if ht, ok := base.(*http.Transport); ok {
		c := ht.Clone()
		inner := c.DialContext
		if inner == nil && c.Dial != nil {
			dial := c.Dial
			inner = func(_ context.Context, network, addr string) (net.Conn, error) { return dial(network, addr) }
		}
		if inner == nil {
			var d net.Dialer
			inner = d.DialContext
		}
		c.Dial = nil
		c.DialContext = t.dialer(inner)
		t.base, t.guarded = c, true
		t.tlsOwn = c.DialTLSContext != nil || c.DialTLS != nil //nolint:staticcheck // DialTLS is still honoured
	}
	return t
}

var sharedTransport = sync.OnceValue(func() http.RoundTripper { return Transport(nil) })

// Client returns an *http.Client whose requests go through Transport: one
// shared transport and connection pool, http.DefaultTransport's settings,
// no timeout of its own (pass the handler's context: it ends at the
// invocation's deadline).
func Client() *http.Client {
	return &http.Client{Transport: sharedTransport()}
}

type transport struct {
	base    http.RoundTripper
	guarded bool // base is an *http.Transport that dials through the guard
	tlsOwn  bool // base dials TLS itself: https is checked before the request

	mu    sync.RWMutex
	dials map[dialKey]dialNote // what the last dial of each destination found
}

type dialKey struct {
	host string
	port int
}

type dialNote struct {
	addr netip.Addr
	flag *DeniedError // detect mode: what block mode would have refused
	cfg  *outboundConfig
}

// dialer wraps inner in the guard, and notes what each dial found for
// the requests that use the connection.
func (t *transport) dialer(inner dialFunc) dialFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		c := settings()
		if c.mode == Off {
			return inner(ctx, network, address)
		}
		host, port, err := splitAddr(ctx, network, address)
		if err != nil {
			return nil, err
		}
		conn, d, err := c.dial(ctx, network, host, port, inner)
		if d.addr.IsValid() {
			t.mu.Lock()
			if len(t.dials) >= maxDialNotes {
				clear(t.dials)
			}
			t.dials[dialKey{host, port}] = dialNote{addr: d.addr, flag: d.flag, cfg: c}
			t.mu.Unlock()
		}
		return conn, err
	}
}

// maxDialNotes bounds the notes a transport keeps; past it they start
// over (a note only names the address of a destination in reports).
const maxDialNotes = 1024

func (t *transport) note(host string, port int, c *outboundConfig) (dialNote, bool) {
	t.mu.RLock()
	n, ok := t.dials[dialKey{host, port}]
	t.mu.RUnlock()
	return n, ok && n.cfg == c
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := settings()
	if c.mode == Off || req.URL == nil {
		return t.base.RoundTrip(req)
	}
	start := time.Now()
	ctx := req.Context()
	inv, phase := attribute(ctx)
	host := egress.Host(req.URL.Hostname())
	if host == "" {
		return t.base.RoundTrip(req) // no destination: the base refuses it
	}
	port := urlPort(req.URL)
	lit, literal := egress.Literal(host)
	r := callRecord{host: host, port: port, scheme: req.URL.Scheme, call: report.Call{Method: req.Method}, parent: trace.SpanContextFromContext(ctx)}
	if r.call.Method == "" {
		r.call.Method = http.MethodGet
	}

	flagged := false
	e := c.precheck(ctx, inv, host, port, start)
	if e == nil && !literal && (!t.guarded || t.tlsOwn && req.URL.Scheme == "https") {
		// The dial will not be ours: resolve and check now.
		var d dialed
		if _, d, _ = c.dial(ctx, "tcp", host, port, nil); d.denied != nil {
			e = d.denied
		} else {
			e = d.flag
		}
	}
	if e != nil {
		flagged = true
		if c.judge(ctx, inv, phase, e, &r, start) {
			return nil, e
		}
	}

	if it := inv.traced(); it != nil && req.Header.Get("traceparent") == "" {
		// The callee continues the trace, under the call's client span.
		r.spanID = newSpanID()
		copied := *req
		copied.Header = req.Header.Clone()
		if copied.Header == nil {
			copied.Header = http.Header{}
		}
		copied.Header.Set("traceparent", it.traceparent(r.spanID))
		if it.state != "" {
			copied.Header.Set("tracestate", it.state)
		}
		req = &copied
	}
	var sent *countingReader
	if req.Body != nil && req.Body != http.NoBody {
		if req.ContentLength > 0 {
			r.call.BytesSent = req.ContentLength
		} else {
			// Unknown length: count what the transport reads, on a shallow
			// copy (a RoundTripper must not change the caller's request).
			sent = &countingReader{ReadCloser: req.Body}
			copied := *req
			copied.Body = sent
			req = &copied
		}
	}
	resp, err := t.base.RoundTrip(req)
	r.call.DurationMicros = time.Since(start).Microseconds()
	if sent != nil {
		r.call.BytesSent = sent.n.Load()
	}
	if t.guarded {
		if n, ok := t.note(host, port, c); ok {
			r.addr = n.addr
			if n.flag != nil && !flagged && !literal {
				c.finding(ctx, inv, phase, n.flag, r.scheme, false)
				flagged = true
			}
		}
	} else if literal {
		r.addr = lit
	}
	if err != nil {
		var de *DeniedError
		if errors.As(err, &de) {
			r.addr = de.Addr
			if !flagged {
				c.finding(ctx, inv, phase, de, r.scheme, true)
			}
		}
		r.call.Error = errorClass(err)
		record(inv, phase, &r)
		return resp, err
	}
	r.call.Status = resp.StatusCode
	to, gen, dest, call := record(inv, phase, &r)
	if dest >= 0 && resp.Body != nil && resp.Body != http.NoBody {
		// A 101's body is the connection itself (io.ReadWriteCloser): leave it.
		if _, conn := resp.Body.(io.Writer); !conn {
			resp.Body = &countedBody{ReadCloser: resp.Body, to: to, gen: gen, dest: dest, call: call}
		}
	}
	return resp, nil
}

// urlPort is u's port, or its scheme's default.
func urlPort(u *url.URL) int {
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		return n
	}
	switch u.Scheme {
	case "https", "wss":
		return 443
	}
	return 80
}

// countingReader counts the bytes of a request body the transport reads,
// on its own goroutine.
type countingReader struct {
	io.ReadCloser
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countedBody counts a response body's bytes as the caller reads them,
// and adds them to the call's record at the end of the body or at Close.
type countedBody struct {
	io.ReadCloser
	n          atomic.Int64
	ended      atomic.Bool
	to         *invocation
	gen        int64
	dest, call int
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	if err == io.EOF {
		b.end()
	}
	return n, err
}

func (b *countedBody) Close() error {
	b.end()
	return b.ReadCloser.Close()
}

func (b *countedBody) end() {
	if b.ended.CompareAndSwap(false, true) {
		b.to.received(b.gen, b.dest, b.call, b.n.Load())
	}
}
