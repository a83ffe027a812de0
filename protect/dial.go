package protect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/lambdarasp/lambdarasp/internal/egress"
)

// plainDialer dials for DialContext, with http.DefaultTransport's
// settings.
var plainDialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}

// DialContext connects to address on network as net.Dialer.DialContext
// does, under the egress rules Transport applies, and records the
// connection as one call (scheme: the network; no method, status or
// bytes) for the invocation's report. It is for clients that take a
// dialer rather than an http.Client: database drivers, gRPC
// (grpc.WithContextDialer), Redis. The name is resolved here and every
// address checked before one is dialed, by address; a refused connection
// returns a *DeniedError. Networks other than tcp and udp (unix sockets)
// are dialed unchecked and unrecorded. A connection is attributed like a
// Transport call: pass the handler's context where the client lets you.
// Safe for concurrent use.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c := settings()
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return plainDialer.DialContext(ctx, network, address)
	}
	if c.mode == Off {
		return plainDialer.DialContext(ctx, network, address)
	}
	start := time.Now()
	host, port, err := splitAddr(ctx, network, address)
	if err != nil {
		return plainDialer.DialContext(ctx, network, address) // no destination: the dialer refuses it
	}
	inv, phase := attribute(ctx)
	r := callRecord{host: host, port: port, scheme: network, parent: trace.SpanContextFromContext(ctx)}
	flagged := false
	if e := c.precheck(ctx, inv, host, port, start); e != nil {
		flagged = true
		if c.judge(ctx, inv, phase, e, &r, start) {
			return nil, e
		}
	}
	conn, d, err := c.dial(ctx, network, host, port, plainDialer.DialContext)
	r.addr = d.addr
	r.call.DurationMicros = time.Since(start).Microseconds()
	switch _, literal := egress.Literal(host); {
	case d.denied != nil && !flagged:
		c.finding(ctx, inv, phase, d.denied, network, true)
	case d.flag != nil && !flagged && !literal:
		c.finding(ctx, inv, phase, d.flag, network, false)
	}
	if err != nil {
		r.call.Error = errorClass(err)
	}
	record(inv, phase, &r)
	return conn, err
}

// errorClass names what failed, for a call's record, without the error's
// text (it may carry a URL with its query).
func errorClass(err error) string {
	var (
		de      *DeniedError
		dns     *net.DNSError
		netErr  net.Error
		verify  *tls.CertificateVerificationError
		header  tls.RecordHeaderError
		alert   tls.AlertError
		unknown x509.UnknownAuthorityError
		badHost x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &de):
		return "denied"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &dns):
		return "dns"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	case errors.As(err, &verify), errors.As(err, &header), errors.As(err, &alert),
		errors.As(err, &unknown), errors.As(err, &badHost), errors.As(err, &invalid):
		return "tls"
	}
	return "error"
}
