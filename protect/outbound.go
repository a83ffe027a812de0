package protect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/egress"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// Rule ids of outbound findings, beside the decisions' 100990 and 100991.
const (
	ruleEgressGuard    = 100992 // metadata, the Runtime API or an internal address
	ruleEgressList     = 100993 // in the deny-list, or outside the allow-list
	ruleEgressDecision = 100994 // a destination the extension denied
)

// DeniedError is the error of an outbound call whose destination Transport,
// Client or DialContext refused; the call was not made. Its message
// explains the rule:
//
//	protect: outbound to 169.254.169.254:80 denied: instance metadata
//	protect: outbound to db.internal:5432 (10.0.3.7) denied: private network; LAMBDARASP_EGRESS_INTERNAL opens it
//
// Behind http.Client it is wrapped in a *url.Error; errors.As finds it.
type DeniedError struct {
	Host string     // the destination as the caller named it, lower case
	Port int        // its port
	Addr netip.Addr // the address refused; invalid when the name was
	// Rule is the finding's rule id: 100992 (metadata, the Runtime API or
	// an internal address), 100993 (the egress allow-list or deny-list),
	// 100994 (a deny_destination decision of the lambdarasp extension).
	Rule   int
	Reason string // "instance metadata", "private network", …

	kind egress.Kind // 0 for a decision
}

func (e *DeniedError) Error() string {
	b := make([]byte, 0, 96)
	b = append(b, "protect: outbound to "...)
	name := e.Host
	if e.Addr.IsValid() {
		if a, ok := egress.Literal(e.Host); !ok || a != egress.Canonical(e.Addr) {
			b = append(b, e.Host...)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(e.Port), 10)
			b = append(b, " ("...)
			b = e.Addr.AppendTo(b)
			b = append(b, ')')
			name = ""
		} else {
			b = netip.AddrPortFrom(e.Addr, uint16(e.Port)).AppendTo(b)
			name = ""
		}
	}
	if name != "" {
		b = append(b, net.JoinHostPort(name, strconv.Itoa(e.Port))...)
	}
	b = append(b, " denied: "...)
	b = append(b, e.Reason...)
	if e.kind == egress.Internal {
		b = append(b, "; "+envEgressInternal+" opens it"...)
	}
	return string(b)
}

// IsDenied reports whether err is, or wraps, the error of an outbound call
// whose destination was refused.
func IsDenied(err error) bool {
	var e *DeniedError
	return errors.As(err, &e)
}

// lookupFunc resolves a host name to its addresses; network is "ip",
// "ip4" or "ip6".
type lookupFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

// outboundConfig is what Transport, Client and DialContext work with.
// It is immutable once installed.
type outboundConfig struct {
	policy *egress.Policy
	mode   Mode // Block, Detect or Off
	logger *slog.Logger
	lookup lookupFunc
	link   *link // the extension's decisions outside an invocation; nil: none
}

// outbound is the process's outbound-call state. Transport, Client and
// DialContext are plain functions that a caller may use before Handler
// is built, from anywhere in the program, so what they need cannot hang
// on a handler: Handler installs its settings here (the last one built
// wins; a function builds one), invocations register while in flight, and
// calls that belong to no invocation wait here for the next report.
var outbound struct {
	cfg     atomic.Pointer[outboundConfig]
	envOnce sync.Once
	flight  flight
	carry   invocation // calls of no invocation: init, or unattributable
}

// settings returns the installed settings, or before Handler has
// installed any, those of the LAMBDARASP_* variables alone.
func settings() *outboundConfig {
	if c := outbound.cfg.Load(); c != nil {
		return c
	}
	outbound.envOnce.Do(func() {
		cfg, err := newConfig(os.Getenv, nil)
		if err != nil {
			// Handler will refuse to start with the same error; until then
			// the defaults guard.
			cfg, _ = newConfig(func(string) string { return "" }, nil)
			cfg.logger.LogAttrs(context.Background(), slog.LevelError, "lambdarasp outbound settings invalid: using the defaults until protect.Handler starts",
				slog.String("error", err.Error()))
		}
		outbound.cfg.CompareAndSwap(nil, newOutboundConfig(cfg, nil))
	})
	return outbound.cfg.Load()
}

func newOutboundConfig(cfg config, l *link) *outboundConfig {
	c := &outboundConfig{policy: cfg.egress, mode: cfg.egressMode, logger: cfg.logger, lookup: cfg.lookup, link: l}
	if c.lookup == nil {
		c.lookup = net.DefaultResolver.LookupNetIP
	}
	return c
}

// install makes c the settings of Transport, Client and DialContext.
func install(c *outboundConfig) { outbound.cfg.Store(c) }

// refuses reports whether a finding fails the call: in mode block, and in
// every mode for metadata, the Runtime API and the extension's decisions.
func (c *outboundConfig) refuses(e *DeniedError) bool {
	return c.mode == Block || e.kind == egress.Forbidden || e.Rule == ruleEgressDecision
}

// precheck checks a destination before anything is sent or resolved: the
// extension's decisions, the lists' names and, when host is an address,
// the address. It does not allocate when the destination passes.
func (c *outboundConfig) precheck(ctx context.Context, inv *invocation, host string, port int, now time.Time) *DeniedError {
	var active *decision.Active
	if inv != nil {
		active = inv.decisions
	} else {
		active = c.link.active(ctx) // outside an invocation: rare, a stat
	}
	if x, ok := active.DeniedDestination(host, port, now); ok {
		return &DeniedError{Host: host, Port: port, Rule: ruleEgressDecision,
			Reason: "decision of the lambdarasp extension (" + x.Reason + ", until " + x.Until.UTC().Format(time.RFC3339) + ")"}
	}
	if a, ok := egress.Literal(host); ok {
		if d, denied := c.policy.CheckAddr(host, a, port); denied {
			return denial(host, port, a, d)
		}
		return nil
	}
	if d, denied := c.policy.CheckName(host); denied {
		return denial(host, port, netip.Addr{}, d)
	}
	return nil
}

func denial(host string, port int, a netip.Addr, d egress.Denial) *DeniedError {
	rule := ruleEgressGuard
	if d.Kind == egress.Listed {
		rule = ruleEgressList
	}
	return &DeniedError{Host: host, Port: port, Addr: a, Rule: rule, Reason: d.Reason, kind: d.Kind}
}

// dialFunc dials one address, as net.Dialer.DialContext.
type dialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// dialed is what dial found.
type dialed struct {
	addr   netip.Addr // the address dialed, or refused
	denied *DeniedError
	flag   *DeniedError // detect mode: what block mode would have refused
}

// splitAddr splits a dialer's address into its host, as egress.Host
// gives it, and its port; a port name ("postgresql") is resolved as
// net.Dialer does.
func splitAddr(ctx context.Context, network, address string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, err
	}
	if port, err = strconv.Atoi(p); err != nil {
		if port, err = net.DefaultResolver.LookupPort(ctx, network, p); err != nil {
			return "", 0, fmt.Errorf("protect: port %q: %w", p, err)
		}
	}
	return egress.Host(h), port, nil
}

// dial resolves host (as egress.Host gives it) unless it is an address,
// checks every address it resolved to, and dials them in turn through
// inner, by address: what was checked is what is dialed, so a name that
// resolves differently the next time (DNS rebinding) changes nothing.
// When one address is refused the whole call is (block mode; metadata and the
// Runtime API in every mode): a name that resolves to a forbidden address
// among others is not one to trust; err is then d.denied. In detect mode
// the first refusal is d.flag and the call goes on. A nil inner checks
// without dialing. Addresses are dialed as resolved (a NAT64 address
// stays one) and checked canonical.
func (c *outboundConfig) dial(ctx context.Context, network, host string, port int, inner dialFunc) (conn net.Conn, d dialed, err error) {
	var one [1]netip.Addr
	addrs := one[:0]
	if a, ok := egress.Literal(host); ok {
		addrs = append(addrs, a)
	} else {
		ipNet := "ip"
		switch network {
		case "tcp4", "udp4":
			ipNet = "ip4"
		case "tcp6", "udp6":
			ipNet = "ip6"
		}
		if addrs, err = c.lookup(ctx, ipNet, host); err != nil {
			return nil, d, err
		}
		if len(addrs) == 0 {
			return nil, d, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
	}
	for _, a := range addrs {
		if den, denied := c.policy.CheckAddr(host, a, port); denied {
			e := denial(host, port, egress.Canonical(a), den)
			if c.refuses(e) {
				d.addr, d.denied = a, e
				return nil, d, e
			}
			if d.flag == nil {
				d.flag = e
			}
		}
	}
	if inner == nil {
		return nil, d, nil
	}
	for _, a := range addrs {
		d.addr = a
		conn, err = inner(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	return conn, d, err
}

// judge logs and reports the finding e of a call before it is made, and
// says whether it fails the call; a failed call is recorded, as denied.
func (c *outboundConfig) judge(ctx context.Context, inv *invocation, phase report.Phase, e *DeniedError, r *callRecord, start time.Time) (refused bool) {
	refused = c.refuses(e)
	c.finding(ctx, inv, phase, e, r.scheme, refused)
	if refused {
		r.addr, r.call.Error = e.Addr, "denied"
		r.call.DurationMicros = time.Since(start).Microseconds()
		record(inv, phase, r)
	}
	return refused
}

// finding logs e and adds it to the invocation's report; refused says
// whether the call was failed (action block) or let through (detect).
func (c *outboundConfig) finding(ctx context.Context, inv *invocation, phase report.Phase, e *DeniedError, scheme string, refused bool) {
	action := "detect"
	if refused {
		action = "block"
	}
	requestID := ""
	if inv != nil {
		requestID = inv.requestID
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestID),
		slog.String("phase", phase.String()),
		slog.String("action", action),
		slog.Int("rule", e.Rule),
		slog.String("reason", e.Reason),
		slog.String("host", e.Host),
		slog.Int("port", e.Port),
	}
	if e.Addr.IsValid() {
		attrs = append(attrs, slog.String("address", e.Addr.String()))
	}
	c.logger.LogAttrs(ctx, slog.LevelWarn, "lambdarasp outbound finding", attrs...)
	target(inv, phase).flag(e, scheme, refused)
}

// invocationKey carries the *invocation in the context Handler gives the
// user's handler.
type invocationKey struct{}

// attribute finds the invocation a call belongs to: the one in ctx (the
// handler's context, or one derived from it: goroutines the handler
// started included), else the one in flight if there is exactly one. nil
// when none: during init, between invocations, or with several in
// flight and a context that does not say.
func attribute(ctx context.Context) (*invocation, report.Phase) {
	if inv, ok := ctx.Value(invocationKey{}).(*invocation); ok {
		return inv, report.Invoked
	}
	if inv := outbound.flight.only.Load(); inv != nil {
		return inv, report.Invoked
	}
	if !outbound.flight.started.Load() {
		return nil, report.Init
	}
	return nil, report.Unattributed
}

// target is where a call's record goes: its invocation, or the carry for
// the next report.
func target(inv *invocation, phase report.Phase) *invocation {
	if inv == nil {
		return &outbound.carry
	}
	return inv
}

// flight knows the invocations in flight.
type flight struct {
	mu      sync.Mutex
	active  []*invocation
	only    atomic.Pointer[invocation] // set while exactly one is in flight
	started atomic.Bool                // an invocation has begun: init is over
}

func (f *flight) begin(inv *invocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active = append(f.active, inv)
	f.started.Store(true)
	f.update()
}

func (f *flight) end(inv *invocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.active {
		if x == inv {
			f.active = append(f.active[:i], f.active[i+1:]...)
			break
		}
	}
	f.update()
}

func (f *flight) update() {
	if len(f.active) == 1 {
		f.only.Store(f.active[0])
	} else {
		f.only.Store(nil)
	}
}

// invocation is one invocation's outbound calls, until its report is
// sent; outbound.carry is the calls waiting for the next report. Safe for
// concurrent use: a handler's goroutines call out in parallel.
type invocation struct {
	requestID string
	decisions *decision.Active         // in force when it began
	trace     atomic.Pointer[invTrace] // nil: not traced

	mu       sync.Mutex
	reported bool  // the report is sent: later calls go to the carry
	gen      int64 // for the carry: bumped each time a report takes it
	t        tally
}

// callRecord is one call as it ended.
type callRecord struct {
	host   string
	port   int
	scheme string
	addr   netip.Addr // the address dialed, if known
	call   report.Call
	spanID [8]byte // the client span's id, when a traceparent went out with it
	// parent is the span in the call's context: the invocation's server
	// span, or one the handler's own OpenTelemetry SDK made under it.
	parent trace.SpanContext
}

// record adds a finished call to its invocation's report, or to the carry
// when it has none or its report is gone. It returns where it went, for
// the bytes of a response body read later.
func record(inv *invocation, phase report.Phase, r *callRecord) (t *invocation, gen int64, dest, call int) {
	r.call.Phase = phase
	if inv != nil {
		inv.trace.Load().call(r)
		inv.mu.Lock()
		if !inv.reported {
			dest, call = inv.t.add(r)
			inv.mu.Unlock()
			return inv, 0, dest, call
		}
		inv.mu.Unlock()
		r.call.Phase = report.Unattributed
	}
	c := &outbound.carry
	c.mu.Lock()
	defer c.mu.Unlock()
	dest, call = c.t.add(r)
	return c, c.gen, dest, call
}

// received adds n body bytes read after the call was recorded.
func (inv *invocation) received(gen int64, dest, call int, n int64) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.reported || inv.gen != gen || dest < 0 || dest >= len(inv.t.dests) {
		return
	}
	inv.t.dests[dest].BytesReceived += n
	if call >= 0 && call < len(inv.t.calls) {
		inv.t.calls[call].BytesReceived += n
	}
}

// flag adds a finding to inv's report, or to the carry's when inv's is
// gone.
func (inv *invocation) flag(e *DeniedError, scheme string, refused bool) {
	inv.mu.Lock()
	if !inv.reported {
		inv.t.flag(e, scheme, refused)
		inv.mu.Unlock()
		return
	}
	inv.mu.Unlock()
	c := &outbound.carry
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.flag(e, scheme, refused)
}

// take ends inv's part in reports: it returns inv's tally and sends later
// calls to the carry.
func (inv *invocation) take() tally {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.reported = true
	return inv.t
}

// takeCarry empties the carry for one report.
func takeCarry() tally {
	c := &outbound.carry
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = tally{}
	c.gen++
	return t
}

// tally is the outbound part of one report.
type tally struct {
	dests    []report.Outbound
	addrs    []netip.Addr // each destination's Addr, to format it once
	calls    []report.Call
	rules    [3]bool // ruleEgressGuard, ruleEgressList, ruleEgressDecision
	refused  bool    // a call was refused
	detected bool    // a call would have been, in detect mode
}

// dest finds or adds the destination host:port; -1 when the report has
// no room for another.
func (t *tally) dest(host string, port int, scheme string) int {
	for i := range t.dests {
		if d := &t.dests[i]; d.Port == port && d.Host == host {
			if d.Scheme == "" {
				d.Scheme = scheme
			}
			return i
		}
	}
	if len(t.dests) == report.MaxOutbound {
		return -1
	}
	t.dests = append(t.dests, report.Outbound{Host: host, Port: port, Scheme: scheme})
	t.addrs = append(t.addrs, netip.Addr{})
	return len(t.dests) - 1
}

// setAddr notes the address dialed for destination i.
func (t *tally) setAddr(i int, a netip.Addr) {
	if a.IsValid() && a != t.addrs[i] {
		t.addrs[i] = a
		t.dests[i].Addr = a.String()
	}
}

func (t *tally) add(r *callRecord) (dest, call int) {
	dest = t.dest(r.host, r.port, r.scheme)
	if dest < 0 {
		return -1, -1
	}
	d := &t.dests[dest]
	d.Calls++
	if r.call.Error != "" {
		d.Errors++
	}
	t.setAddr(dest, r.addr)
	d.BytesSent += r.call.BytesSent
	d.BytesReceived += r.call.BytesReceived
	d.DurationMicros += r.call.DurationMicros
	if len(t.calls) == report.MaxCalls {
		return dest, -1
	}
	c := r.call
	c.Dest = dest
	t.calls = append(t.calls, c)
	return dest, len(t.calls) - 1
}

func (t *tally) flag(e *DeniedError, scheme string, refused bool) {
	if dest := t.dest(e.Host, e.Port, scheme); dest >= 0 {
		t.dests[dest].Denied++
		t.setAddr(dest, e.Addr)
	}
	t.rules[e.Rule-ruleEgressGuard] = true
	if refused {
		t.refused = true
	} else {
		t.detected = true
	}
}

// merge adds o's destinations and calls to t's.
func (t *tally) merge(o *tally) {
	var index [report.MaxOutbound]int
	for i := range o.dests {
		od := &o.dests[i]
		index[i] = t.dest(od.Host, od.Port, od.Scheme)
		if index[i] < 0 {
			continue
		}
		d := &t.dests[index[i]]
		d.Calls += od.Calls
		d.Errors += od.Errors
		d.Denied += od.Denied
		d.BytesSent += od.BytesSent
		d.BytesReceived += od.BytesReceived
		d.DurationMicros += od.DurationMicros
		t.setAddr(index[i], o.addrs[i])
	}
	for _, c := range o.calls {
		if index[c.Dest] < 0 || len(t.calls) == report.MaxCalls {
			continue
		}
		c.Dest = index[c.Dest]
		t.calls = append(t.calls, c)
	}
	for i, hit := range o.rules {
		t.rules[i] = t.rules[i] || hit
	}
	t.refused = t.refused || o.refused
	t.detected = t.detected || o.detected
}
