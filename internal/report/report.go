package report

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Action is what the wrapper did with an invocation.
type Action uint8

// The actions, as they travel on the wire.
const (
	Allow      Action = iota // the handler ran; no rule matched, or none blocked
	Block                    // the rules blocked the event or some of its records
	Detect                   // the rules would have blocked; mode detect ran the handler
	Quarantine               // refused: the function is quarantined by a decision
	BlockedIP                // refused: the client IP is blocked by a decision
	Failed                   // inspection failed and fail-closed blocked the event
	actionCount
)

var actionNames = [actionCount]string{"allow", "block", "detect", "quarantine", "blocked-ip", "failed"}

// String is the action's stable name, as it appears in logs and alerts.
func (a Action) String() string {
	if a < actionCount {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Blocked reports whether the event, or part of it, was kept from the
// handler (or would have been, in detect mode) because of an attack.
func (a Action) Blocked() bool { return a == Block || a == Detect || a == Failed }

// Report is what the wrapper tells the extension about one invocation.
type Report struct {
	RequestID string
	Source    string // the trigger, as protect.Verdict.Source names it ("sqs", "apigw-http", …)
	Action    Action
	Rules     []int // rule ids of the findings, at most MaxRules
	// Records and BlockedRecords count the event's records (1 for HTTP and
	// single-record events) and how many of them were blocked.
	Records, BlockedRecords int
	// DurationMicros is the time spent in protect.Handler's Invoke,
	// inspection and handler together, in microseconds.
	DurationMicros int64
	// ErrorType names the handler's error, as the runtime would report it
	// ("" when it returned none). Never the message: it may carry data.
	ErrorType string
	// ClientIP is the caller's address for HTTP sources, "" otherwise.
	ClientIP  string
	ColdStart bool
	// InspectMicros is the time the rules took on the event, in
	// microseconds (0: not inspected).
	InspectMicros int64
	// Outbound lists the destinations the invocation called, as
	// protect.Transport and protect.DialContext record them, at most
	// MaxOutbound.
	Outbound []Outbound
	// Calls are the outbound calls one by one, in the order they ended,
	// at most MaxCalls: the destinations count every call, the list keeps
	// the first ones.
	Calls []Call
}

// Outbound is the calls one invocation made to one destination, a host
// and port as the caller named them.
type Outbound struct {
	Host string // lower case: "api.example.com", "10.0.0.7"
	Port int
	// Calls counts the calls; Errors those that got no response (refused,
	// unreachable, timed out, denied); Denied those the egress guard or
	// policy refused, or in detect mode would have.
	Calls, Errors, Denied int
	// Scheme is "http" or "https", or the network of a connection made
	// through protect.DialContext ("tcp").
	Scheme string
	// Addr is the address last dialed (or refused) for this destination,
	// "" when the calls used connections dialed before.
	Addr string
	// Body bytes sent and received, and the calls' durations, summed.
	BytesSent, BytesReceived, DurationMicros int64
}

// Call is one outbound call.
type Call struct {
	Dest   int // index of its destination in Report.Outbound
	Phase  Phase
	Method string // the HTTP method; "" for a connection
	Status int    // the HTTP status; 0 when there was no response
	// Error says why there was no response, as a class: "denied", "dns",
	// "refused", "timeout", "canceled", "reset", "tls" or "error"; "" when
	// there was one. Never an error's text: it may carry data.
	Error string
	// DurationMicros runs until the response's headers (for a connection,
	// until it was established); the bytes are body bytes (0 for a
	// connection).
	DurationMicros, BytesSent, BytesReceived int64
}

// Phase says when a call was made, relative to the invocation whose
// report carries it.
type Phase uint8

// The phases.
const (
	// Invoked: by this invocation, through its context or while it was
	// the only one in flight.
	Invoked Phase = iota
	// Init: during the init phase, before the first invocation; the first
	// report carries these calls.
	Init
	// Unattributed: between invocations, after the invocation it belonged
	// to had reported, or while several were in flight; the next report
	// carries it.
	Unattributed
	phaseCount
)

var phaseNames = [phaseCount]string{"invocation", "init", "unattributed"}

// String is the phase's stable name, as it appears in logs.
func (p Phase) String() string {
	if p < phaseCount {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Bounds of a report: Append cuts what exceeds them, Decode refuses it.
const (
	Version     = 1
	MaxSize     = 4096 // bytes in one datagram
	MaxString   = 256  // bytes in one string field
	MaxRules    = 32
	MaxOutbound = 64
	MaxCalls    = 64
)

var magic = [2]byte{'L', 'R'}

// Flags.
const (
	flagCold  = 1
	flagHello = 2 // a datagram of the header alone: Sender.Hello
)

// Append encodes r at the end of b and returns the extended slice. Strings
// longer than MaxString, rules beyond MaxRules, destinations beyond
// MaxOutbound and calls beyond MaxCalls are cut, and then destinations and
// calls that do not fit: the result is at most MaxSize bytes.
//
// Layout: "LR", version, flags (bit 0: cold start), then uvarints and
// length-prefixed strings: duration µs, action, request id, source, error
// type, client IP, records, blocked records, rule count and rules,
// destination count and per destination host, port, calls, errors. Then,
// added to version 1 (a decoder that predates them ignores them), only
// when a destination or call has something to say: per destination
// scheme, address, denied, bytes sent, bytes received, duration µs; call
// count and per call destination, phase, method, status, error, duration
// µs, bytes sent, bytes received. Fields added later come after the
// calls, which are then always written: the inspection's duration µs.
func Append(b []byte, r *Report) []byte {
	start := len(b)
	flags := byte(0)
	if r.ColdStart {
		flags |= flagCold
	}
	b = append(b, magic[0], magic[1], Version, flags)
	b = binary.AppendUvarint(b, uint64(max(r.DurationMicros, 0)))
	b = append(b, byte(r.Action))
	b = appendString(b, r.RequestID)
	b = appendString(b, r.Source)
	b = appendString(b, r.ErrorType)
	b = appendString(b, r.ClientIP)
	b = binary.AppendUvarint(b, uint64(max(r.Records, 0)))
	b = binary.AppendUvarint(b, uint64(max(r.BlockedRecords, 0)))
	rules := r.Rules[:min(len(r.Rules), MaxRules)]
	b = binary.AppendUvarint(b, uint64(len(rules)))
	for _, id := range rules {
		b = binary.AppendUvarint(b, uint64(max(id, 0)))
	}

	// Destinations go in while they fit, with their details: a report is
	// one datagram. Then the calls to those destinations, while they fit.
	out := r.Outbound[:min(len(r.Outbound), MaxOutbound)]
	calls := r.Calls[:min(len(r.Calls), MaxCalls)]
	details := len(calls) > 0 || r.InspectMicros > 0
	for i := range out {
		details = details || out[i].hasDetails()
	}
	room := MaxSize - (len(b) - start) - 1 // the destination count
	if details {
		room -= 1 + uvarintSize(max(r.InspectMicros, 0)) // the call count, the later fields
	}
	n := 0
	for i := range out {
		size := out[i].baseSize()
		if details {
			size += out[i].detailSize()
		}
		if size > room {
			break
		}
		room -= size
		n++
	}
	b = append(b, byte(n)) // a one-byte uvarint: MaxOutbound < 128
	for i := range out[:n] {
		b = out[i].appendBase(b)
	}
	if !details {
		return b
	}
	for i := range out[:n] {
		b = out[i].appendDetails(b)
	}
	countAt := len(b)
	b = append(b, 0) // a one-byte uvarint: MaxCalls < 128
	k := 0
	for i := range calls {
		c := &calls[i]
		if c.Dest < 0 || c.Dest >= n {
			continue // its destination did not fit
		}
		size := c.size()
		if size > room {
			break
		}
		room -= size
		b = c.append(b)
		k++
	}
	b[countAt] = byte(k)
	return binary.AppendUvarint(b, uint64(max(r.InspectMicros, 0)))
}

func (o *Outbound) hasDetails() bool {
	return o.Scheme != "" || o.Addr != "" || o.Denied > 0 || o.BytesSent > 0 || o.BytesReceived > 0 || o.DurationMicros > 0
}

func (o *Outbound) appendBase(b []byte) []byte {
	b = appendString(b, o.Host)
	b = binary.AppendUvarint(b, uint64(max(o.Port, 0)))
	b = binary.AppendUvarint(b, uint64(max(o.Calls, 0)))
	return binary.AppendUvarint(b, uint64(max(o.Errors, 0)))
}

func (o *Outbound) baseSize() int {
	return stringSize(o.Host) + uvarintSize(o.Port) + uvarintSize(o.Calls) + uvarintSize(o.Errors)
}

func (o *Outbound) appendDetails(b []byte) []byte {
	b = appendString(b, o.Scheme)
	b = appendString(b, o.Addr)
	b = binary.AppendUvarint(b, uint64(max(o.Denied, 0)))
	b = binary.AppendUvarint(b, uint64(max(o.BytesSent, 0)))
	b = binary.AppendUvarint(b, uint64(max(o.BytesReceived, 0)))
	return binary.AppendUvarint(b, uint64(max(o.DurationMicros, 0)))
}

func (o *Outbound) detailSize() int {
	return stringSize(o.Scheme) + stringSize(o.Addr) + uvarintSize(o.Denied) +
		uvarintSize(o.BytesSent) + uvarintSize(o.BytesReceived) + uvarintSize(o.DurationMicros)
}

func (c *Call) append(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(c.Dest))
	b = append(b, byte(min(c.Phase, phaseCount-1)))
	b = appendString(b, c.Method)
	b = binary.AppendUvarint(b, uint64(min(max(c.Status, 0), maxStatus)))
	b = appendString(b, c.Error)
	b = binary.AppendUvarint(b, uint64(max(c.DurationMicros, 0)))
	b = binary.AppendUvarint(b, uint64(max(c.BytesSent, 0)))
	return binary.AppendUvarint(b, uint64(max(c.BytesReceived, 0)))
}

func (c *Call) size() int {
	return uvarintSize(c.Dest) + 1 + stringSize(c.Method) + uvarintSize(min(max(c.Status, 0), maxStatus)) +
		stringSize(c.Error) + uvarintSize(c.DurationMicros) + uvarintSize(c.BytesSent) + uvarintSize(c.BytesReceived)
}

// maxStatus bounds an HTTP status on the wire.
const maxStatus = 999

func uvarintSize[T int | int64](v T) int {
	n := 1
	for u := uint64(max(v, 0)); u >= 0x80; u >>= 7 {
		n++
	}
	return n
}

func stringSize(s string) int {
	n := min(len(s), MaxString)
	return uvarintSize(n) + n
}

func appendString(b []byte, s string) []byte {
	if len(s) > MaxString {
		s = s[:MaxString]
	}
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Errors of Decode.
var (
	ErrNotReport = errors.New("report: not a lambdarasp report")
	ErrVersion   = errors.New("report: unknown version")
	ErrMalformed = errors.New("report: malformed")
	// ErrHello is a Sender's greeting at init, not a report: ignore it.
	ErrHello = errors.New("report: hello")
)

// Decode parses one datagram. It accepts any input without panicking and
// refuses what Append could not have produced: a wrong magic, an unknown
// version, a length or count beyond the bounds, a truncated field.
func Decode(b []byte) (Report, error) {
	var r Report
	if len(b) > MaxSize {
		return r, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(b), MaxSize)
	}
	if len(b) < 4 || b[0] != magic[0] || b[1] != magic[1] {
		return r, ErrNotReport
	}
	if b[2] != Version {
		return r, fmt.Errorf("%w %d", ErrVersion, b[2])
	}
	if b[3]&flagHello != 0 {
		return r, ErrHello
	}
	r.ColdStart = b[3]&flagCold != 0
	d := decoder{b: b[4:]}
	r.DurationMicros = int64(d.uint(1 << 62))
	r.Action = Action(d.byte())
	r.RequestID = d.string()
	r.Source = d.string()
	r.ErrorType = d.string()
	r.ClientIP = d.string()
	r.Records = int(d.uint(1 << 31))
	r.BlockedRecords = int(d.uint(1 << 31))
	if n := int(d.uint(MaxRules)); n > 0 && d.err == nil {
		r.Rules = make([]int, 0, n)
		for range n {
			r.Rules = append(r.Rules, int(d.uint(1<<31)))
		}
	}
	if n := int(d.uint(MaxOutbound)); n > 0 && d.err == nil {
		r.Outbound = make([]Outbound, 0, n)
		for range n {
			r.Outbound = append(r.Outbound, Outbound{
				Host:   d.string(),
				Port:   int(d.uint(65535)),
				Calls:  int(d.uint(1 << 31)),
				Errors: int(d.uint(1 << 31)),
			})
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.details(&r)
	}
	if d.err != nil {
		return Report{}, d.err
	}
	if r.Action >= actionCount {
		return Report{}, fmt.Errorf("%w: action %d", ErrMalformed, r.Action)
	}
	return r, nil
}

// details reads what Append writes after the destinations when they or
// the calls have more to say.
func (d *decoder) details(r *Report) {
	for i := range r.Outbound {
		o := &r.Outbound[i]
		o.Scheme = d.string()
		o.Addr = d.string()
		o.Denied = int(d.uint(1 << 31))
		o.BytesSent = int64(d.uint(1 << 62))
		o.BytesReceived = int64(d.uint(1 << 62))
		o.DurationMicros = int64(d.uint(1 << 62))
	}
	n := int(d.uint(MaxCalls))
	if d.err != nil {
		return
	}
	defer func() {
		if d.err == nil && len(d.b) > 0 {
			r.InspectMicros = int64(d.uint(1 << 62))
		}
	}()
	if n == 0 {
		return
	}
	r.Calls = make([]Call, 0, n)
	for range n {
		c := Call{Dest: int(d.uint(uint64(max(len(r.Outbound)-1, 0))))}
		if len(r.Outbound) == 0 {
			d.fail("call without a destination")
		}
		if c.Phase = Phase(d.byte()); c.Phase >= phaseCount {
			d.fail(fmt.Sprintf("phase %d", c.Phase))
		}
		c.Method = d.string()
		c.Status = int(d.uint(maxStatus))
		c.Error = d.string()
		c.DurationMicros = int64(d.uint(1 << 62))
		c.BytesSent = int64(d.uint(1 << 62))
		c.BytesReceived = int64(d.uint(1 << 62))
		r.Calls = append(r.Calls, c)
	}
}

// decoder reads fields until the first error, which sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (d *decoder) uint(limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated number")
		return 0
	}
	if v > limit {
		d.fail(fmt.Sprintf("number %d above its bound %d", v, limit))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) string() string {
	n := int(d.uint(MaxString))
	if d.err != nil {
		return ""
	}
	if len(d.b) < n {
		d.fail("truncated string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
