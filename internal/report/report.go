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
	// Outbound lists the destinations the invocation called, as
	// protect.Transport records them (empty until it does), at most
	// MaxOutbound.
	Outbound []Outbound
}

// Outbound is the calls one invocation made to one destination.
type Outbound struct {
	Host   string
	Port   int
	Calls  int
	Errors int
}

// Bounds of a report: Append cuts what exceeds them, Decode refuses it.
const (
	Version     = 1
	MaxSize     = 4096 // bytes in one datagram
	MaxString   = 256  // bytes in one string field
	MaxRules    = 32
	MaxOutbound = 64
)

var magic = [2]byte{'L', 'R'}

// Flags.
const (
	flagCold  = 1
	flagHello = 2 // a datagram of the header alone: Sender.Hello
)

// Append encodes r at the end of b and returns the extended slice. Strings
// longer than MaxString, rules beyond MaxRules and destinations beyond
// MaxOutbound are cut; the result is at most MaxSize bytes.
//
// Layout: "LR", version, flags (bit 0: cold start), then uvarints and
// length-prefixed strings: duration µs, action, request id, source, error
// type, client IP, records, blocked records, rule count and rules,
// destination count and per destination host, port, calls, errors.
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
	// Destinations go in while they fit: a report is one datagram.
	out := r.Outbound[:min(len(r.Outbound), MaxOutbound)]
	countAt := len(b)
	b = append(b, 0) // the count, a one-byte uvarint: MaxOutbound < 128
	n := 0
	for _, o := range out {
		mark := len(b)
		b = appendString(b, o.Host)
		b = binary.AppendUvarint(b, uint64(max(o.Port, 0)))
		b = binary.AppendUvarint(b, uint64(max(o.Calls, 0)))
		b = binary.AppendUvarint(b, uint64(max(o.Errors, 0)))
		if len(b)-start > MaxSize {
			b = b[:mark]
			break
		}
		n++
	}
	b[countAt] = byte(n)
	return b
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
	if d.err != nil {
		return Report{}, d.err
	}
	if r.Action >= actionCount {
		return Report{}, fmt.Errorf("%w: action %d", ErrMalformed, r.Action)
	}
	return r, nil
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
