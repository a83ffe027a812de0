package protect

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/trace"

	"github.com/lambdarasp/lambdarasp/internal/otlp"
	"github.com/lambdarasp/lambdarasp/internal/source"
)

// Bounds of one invocation's trace: what exceeds them is counted in the
// OTLP dropped_* fields, not sent.
const (
	maxLinks       = 128 // span links of a batch's records (the SDK's default limit)
	maxEvents      = 128 // finding events on the inspection span
	maxClientSpans = 128 // outbound calls recorded as client spans
	maxTraceState  = 512 // bytes of a tracestate kept
)

// span is one span as lambdarasp records it: a handful of kinds, with
// attributes of four types.
type span struct {
	id, parent   [8]byte
	name         string
	kind         uint8 // OTLP SpanKind: 1 internal, 2 server, 3 client
	start, end   time.Time
	attrs        []attr
	events       []spanEvent
	droppedEvts  int
	links        []spanLink
	droppedLinks int
	failed       bool   // status ERROR
	message      string // the status's message
}

type attr struct {
	key  string
	str  string
	num  int64
	ints []int
	typ  uint8 // attrString, attrInt, attrBool (num 1 or 0), attrInts
}

const (
	attrString = iota
	attrInt
	attrBool
	attrInts
)

func strAttr(k, v string) attr       { return attr{key: k, str: v} }
func intAttr(k string, v int64) attr { return attr{key: k, num: v, typ: attrInt} }
func boolAttr(k string, v bool) attr {
	a := attr{key: k, typ: attrBool}
	if v {
		a.num = 1
	}
	return a
}

type spanEvent struct {
	at    time.Time
	name  string
	attrs []attr
}

type spanLink struct {
	trace   trace.TraceID
	span    trace.SpanID
	state   string
	sampled bool
}

// tracer records the spans of invocations and hands them to the
// extension (or, without one, to the backend directly). A nil *tracer
// records nothing: no OTLP endpoint, OTEL_SDK_DISABLED, or traces off.
type tracer struct {
	sampler  otlp.Sampler
	resource []byte // encoded once, by otlp.Resource
	local    otlp.Target
	direct   otlp.Target
	client   *http.Client
	queue    chan traceJob
	name     string // the server span's: the function's name
	attrs    []attr // the server span's attributes every invocation shares
}

// traceJob is one invocation's spans on their way to the extension; after
// them, the invocation's report, so that the extension, which waits for
// the report, has the spans when it sees it.
type traceJob struct {
	body   []byte
	report func()
}

// invTrace is one invocation's trace context, and the client spans of
// its outbound calls. Safe for concurrent use: a handler's goroutines
// call out in parallel.
type invTrace struct {
	traceID      trace.TraceID
	server       trace.SpanID // the invocation's server span
	parent       trace.SpanID // invalid: the server span is a root
	state        string
	remote       bool // the parent came from outside (traceparent, X-Ray)
	sampled      bool
	kind         source.Kind
	links        []spanLink // the batch's records' contexts
	droppedLinks int

	mu      sync.Mutex
	clients []span
	dropped int
	sealed  bool // encoded: later calls are not traced
}

// newTracer returns the tracer of s, or nil when no traces are exported.
func newTracer(s otlp.Settings, localAddr string) *tracer {
	if s.Disabled || s.Traces.URL == "" {
		return nil
	}
	t := &tracer{sampler: s.Sampler, direct: s.Traces}
	t.resource = otlp.Resource(s.Resource)
	t.name = "lambdarasp.invoke"
	t.attrs = []attr{strAttr("cloud.provider", "aws")}
	for _, kv := range s.Resource {
		switch kv[0] {
		case "faas.name", "faas.version", "cloud.region":
			if kv[1] == "" {
				continue
			}
			t.attrs = append(t.attrs, strAttr(kv[0], kv[1]))
			if kv[0] == "faas.name" {
				t.name = kv[1]
			}
		}
	}
	if localAddr != off {
		t.local = otlp.Target{URL: "http://" + localAddr + "/v1/traces", Timeout: localTimeout}
	}
	// Our own client: the spans must not be recorded as outbound calls.
	t.client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConns: 2, IdleConnTimeout: 90 * time.Second}}
	t.queue = make(chan traceJob, traceQueue)
	go t.run()
	return t
}

// localTimeout bounds a POST to the extension, on loopback; traceQueue
// is how many invocations' spans may wait for it (more are dropped).
const (
	localTimeout = 100 * time.Millisecond
	traceQueue   = 64
)

// begin decides the invocation's trace: its parent (an incoming W3C
// traceparent in the HTTP headers, or in the message attributes of an
// SQS or SNS event's only record, else the X-Ray trace the runtime
// passed), its ids and whether it is sampled. It returns ctx carrying the
// server span's context, so that spans the handler makes with an
// OpenTelemetry SDK are its children.
func (t *tracer) begin(ctx context.Context, ev *source.Event, payload []byte) (context.Context, *invTrace) {
	it := &invTrace{kind: ev.Kind}
	parentSampled, found := false, false
	if ev.Request != nil {
		var tp, ts string
		for _, h := range ev.Request.Headers {
			switch {
			case strings.EqualFold(h.Name, "traceparent"):
				tp = h.Value
			case strings.EqualFold(h.Name, "tracestate"):
				ts = h.Value
			}
		}
		if id, sp, sampled, ok := parseTraceparent(tp); ok {
			it.traceID, it.parent, it.remote, parentSampled, found = id, sp, true, sampled, true
			if len(ts) <= maxTraceState {
				it.state = ts
			}
		}
	}
	// A batch's records are linked; a lone record's context is also the
	// parent, as an HTTP request's is.
	links, droppedLinks := links(ev.Kind, payload)
	if !found && len(links) == 1 && len(ev.Records) == 1 {
		it.traceID, it.parent, it.remote, parentSampled, found = links[0].trace, links[0].span, true, links[0].sampled, true
	}
	if !found {
		xray, _ := ctx.Value("x-amzn-trace-id").(string) //nolint:staticcheck // aws-lambda-go's key
		if id, sp, sampled, ok := parseXRay(xray); ok {
			// Lambda passes Sampled=0 whenever active tracing is off: not
			// a decision anyone made. Keep its trace id (logs and X-Ray
			// correlate) but let our sampler decide, as a root.
			it.traceID = id
			if sampled {
				it.parent, it.remote, parentSampled, found = sp, true, true, true
			}
		}
	}
	if !it.traceID.IsValid() {
		binary.BigEndian.PutUint64(it.traceID[:8], rand.Uint64())
		binary.BigEndian.PutUint64(it.traceID[8:], rand.Uint64()|1)
	}
	it.server = newSpanID()
	if found && t.sampler.ParentBased {
		it.sampled = parentSampled
	} else {
		r := t.sampler.Ratio
		it.sampled = r >= 1 || binary.BigEndian.Uint64(it.traceID[8:16])>>1 < uint64(r*(1<<63))
	}
	cfg := trace.SpanContextConfig{TraceID: it.traceID, SpanID: it.server}
	if it.sampled {
		cfg.TraceFlags = trace.FlagsSampled
	}
	if it.state != "" {
		if st, err := trace.ParseTraceState(it.state); err == nil {
			cfg.TraceState = st
		}
	}
	if it.sampled {
		it.links, it.droppedLinks = links, droppedLinks
	}
	return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg)), it
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	binary.BigEndian.PutUint64(id[:], rand.Uint64()|1)
	return id
}

// parseTraceparent reads a W3C traceparent: version 00 (and, as the
// specification asks, later versions' first four fields).
func parseTraceparent(s string) (id trace.TraceID, sp trace.SpanID, sampled, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] == "ff" || (s[:2] == "00" && len(s) != 55) {
		return id, sp, false, false
	}
	var flags [1]byte
	if _, err := hex.Decode(id[:], []byte(s[3:35])); err != nil {
		return id, sp, false, false
	}
	if _, err := hex.Decode(sp[:], []byte(s[36:52])); err != nil {
		return id, sp, false, false
	}
	if _, err := hex.Decode(flags[:], []byte(s[53:55])); err != nil {
		return id, sp, false, false
	}
	return id, sp, flags[0]&1 == 1, id.IsValid() && sp.IsValid()
}

// parseXRay reads an X-Ray trace header,
// "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".
func parseXRay(s string) (id trace.TraceID, sp trace.SpanID, sampled, ok bool) {
	for part := range strings.SplitSeq(s, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Root":
			if len(v) != 35 || v[:2] != "1-" || v[10] != '-' {
				return id, sp, false, false
			}
			if _, err := hex.Decode(id[:], []byte(v[2:10]+v[11:])); err != nil {
				return id, sp, false, false
			}
		case "Parent":
			if len(v) == 16 {
				if _, err := hex.Decode(sp[:], []byte(v)); err != nil {
					sp = trace.SpanID{}
				}
			}
		case "Sampled":
			sampled = v == "1"
		}
	}
	return id, sp, sampled && sp.IsValid(), id.IsValid()
}

// links reads the trace context each record of a batch carries: a W3C
// traceparent message attribute (SQS, SNS, or an SNS notification in an
// SQS body), else SQS's AWSTraceHeader.
func links(kind source.Kind, payload []byte) (out []spanLink, dropped int) {
	var tp, xray string
	switch kind {
	case source.SQS:
		tp, xray = "messageAttributes.traceparent.stringValue", "attributes.AWSTraceHeader"
	case source.SNS:
		tp = "Sns.MessageAttributes.traceparent.Value"
	default:
		return nil, 0
	}
	gjson.GetBytes(payload, "Records").ForEach(func(_, rec gjson.Result) bool {
		l := spanLink{}
		if id, sp, sampled, ok := parseTraceparent(rec.Get(tp).String()); ok {
			l = spanLink{trace: id, span: sp, sampled: sampled}
		} else if id, sp, sampled, ok := parseTraceparent(snsTraceparent(kind, rec)); ok {
			l = spanLink{trace: id, span: sp, sampled: sampled}
		} else if xray != "" {
			if id, sp, sampled, ok := parseXRay(rec.Get(xray).String()); ok && sp.IsValid() {
				l = spanLink{trace: id, span: sp, sampled: sampled}
			}
		}
		if !l.trace.IsValid() {
			return true
		}
		if len(out) == maxLinks {
			dropped++
			return true
		}
		out = append(out, l)
		return true
	})
	return out, dropped
}

// snsTraceparent is the traceparent message attribute of an SNS notification
// delivered in an SQS record's body (raw message delivery off), or "".
func snsTraceparent(kind source.Kind, rec gjson.Result) string {
	if kind != source.SQS {
		return ""
	}
	body := rec.Get("body").String()
	if !strings.Contains(body, `"traceparent"`) {
		return ""
	}
	return gjson.Get(body, "MessageAttributes.traceparent.Value").String()
}

// trigger is faas.trigger for a source.
func trigger(k source.Kind) string {
	switch {
	case k.HTTP():
		return "http"
	case k == source.S3 || k == source.DynamoDB:
		return "datasource"
	case k == source.SQS || k == source.SNS || k == source.Kinesis || k == source.Kafka || k == source.EventBridge || k == source.Firehose:
		return "pubsub"
	}
	return "other"
}

// call records an outbound call as a client span of the invocation.
func (it *invTrace) call(r *callRecord) {
	if it == nil || !it.sampled {
		return
	}
	end := time.Now()
	id := trace.SpanID(r.spanID)
	if !id.IsValid() {
		id = newSpanID()
	}
	parent := it.server
	if p := r.parent; p.TraceID() == it.traceID && p.SpanID().IsValid() {
		parent = p.SpanID() // a span of the handler's own, inside the invocation
	}
	s := span{id: id, parent: parent, kind: spanKindClient, start: end.Add(-time.Duration(r.call.DurationMicros) * time.Microsecond), end: end}
	s.name = r.call.Method
	if s.name == "" {
		s.name = "connect"
	}
	s.attrs = make([]attr, 0, 8)
	if r.call.Method != "" {
		s.attrs = append(s.attrs, strAttr("http.request.method", r.call.Method))
	}
	s.attrs = append(s.attrs, strAttr("server.address", r.host), intAttr("server.port", int64(r.port)))
	if r.scheme == "http" || r.scheme == "https" {
		s.attrs = append(s.attrs, strAttr("url.scheme", r.scheme))
	} else {
		s.attrs = append(s.attrs, strAttr("network.transport", r.scheme))
	}
	if r.addr.IsValid() {
		s.attrs = append(s.attrs, strAttr("network.peer.address", r.addr.String()))
	}
	if r.call.Status != 0 {
		s.attrs = append(s.attrs, intAttr("http.response.status_code", int64(r.call.Status)))
		s.failed = r.call.Status >= 400
	}
	if r.call.Error != "" {
		s.attrs = append(s.attrs, strAttr("error.type", r.call.Error))
		s.failed = true
		if r.call.Error == "denied" {
			s.message = "refused by lambdarasp's egress rules"
		}
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.sealed || len(it.clients) >= maxClientSpans {
		it.dropped++
		return
	}
	it.clients = append(it.clients, s)
}

// finish records the invocation's spans — the server span, the
// inspection span when the event was inspected, the outbound calls'
// client spans — and exports them; send, if not nil, sends the
// invocation's report after them.
func (t *tracer) finish(ctx context.Context, requestID string, o *outcome, mode Mode, send func(), viaExtension bool) {
	it := o.trace
	end := time.Now()
	it.mu.Lock()
	it.sealed = true
	clients := it.clients
	droppedCalls := it.dropped
	it.mu.Unlock()

	spans := make([]span, 0, 2+len(clients))
	srv := span{id: it.server, parent: it.parent, kind: spanKindServer, start: o.start, end: end,
		links: it.links, droppedLinks: it.droppedLinks, name: t.name}
	srv.attrs = make([]attr, 0, 16)
	srv.attrs = append(srv.attrs,
		strAttr("faas.trigger", trigger(it.kind)),
		strAttr("faas.invocation_id", requestID),
		boolAttr("faas.coldstart", o.cold))
	srv.attrs = append(srv.attrs, t.attrs...)
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.InvokedFunctionArn != "" {
		srv.attrs = append(srv.attrs, strAttr("cloud.resource_id", lc.InvokedFunctionArn))
		// arn:aws:lambda:REGION:ACCOUNT:function:NAME
		if parts := strings.SplitN(lc.InvokedFunctionArn, ":", 6); len(parts) == 6 && parts[4] != "" {
			srv.attrs = append(srv.attrs, strAttr("cloud.account.id", parts[4]))
		}
	}
	srv.attrs = append(srv.attrs, strAttr("lambdarasp.action", o.action.String()))
	if o.clientIP != "" {
		srv.attrs = append(srv.attrs, strAttr("client.address", o.clientIP))
	}
	if droppedCalls > 0 {
		srv.attrs = append(srv.attrs, intAttr("lambdarasp.calls_not_traced", int64(droppedCalls)))
	}
	switch {
	case !o.done:
		srv.failed, srv.message = true, "handler panicked"
		srv.attrs = append(srv.attrs, strAttr("error.type", "panic"))
	case o.err != nil:
		srv.failed = true
		srv.attrs = append(srv.attrs, strAttr("error.type", errorType(o.err)))
	}
	if v := o.verdict; v != nil {
		srv.attrs = append(srv.attrs, strAttr("lambdarasp.source", v.Source))
	}
	spans = append(spans, srv)

	if v := o.verdict; v != nil && !o.inspectStart.IsZero() {
		action := "allow"
		if v.Action == Deny {
			action = "block"
			if mode == Detect {
				action = "detect"
			}
		}
		in := span{id: newSpanID(), parent: it.server, kind: spanKindInternal, name: "lambdarasp.inspect",
			start: o.inspectStart, end: o.inspectEnd}
		in.attrs = []attr{strAttr("lambdarasp.action", action), strAttr("lambdarasp.source", v.Source),
			intAttr("lambdarasp.score", int64(v.Score))}
		if len(v.Findings) > 0 {
			in.attrs = append(in.attrs, attr{key: "lambdarasp.rules", ints: v.Rules(), typ: attrInts})
		}
		if len(v.event.Records) > 0 {
			in.attrs = append(in.attrs, intAttr("lambdarasp.records", int64(len(v.event.Records))))
		}
		if len(v.BlockedRecords) > 0 {
			in.attrs = append(in.attrs, attr{key: "lambdarasp.blocked_records", ints: v.BlockedRecords, typ: attrInts})
		}
		for i, f := range v.Findings {
			if i == maxEvents {
				in.droppedEvts = len(v.Findings) - maxEvents
				break
			}
			e := spanEvent{at: o.inspectEnd, name: "lambdarasp.finding",
				attrs: []attr{intAttr("lambdarasp.rule", int64(f.Rule)), strAttr("lambdarasp.path", f.Path), strAttr("lambdarasp.message", f.Message)}}
			if f.Record >= 0 {
				e.attrs = append(e.attrs, intAttr("lambdarasp.record", int64(f.Record)))
			}
			in.events = append(in.events, e)
		}
		spans = append(spans, in)
	}
	spans = append(spans, clients...)
	t.export(ctx, t.encode(make([]byte, 0, exportRequestGrowth), it, spans), viaExtension, send)
}

// traced returns the invocation's trace when it is sampled, else nil.
func (inv *invocation) traced() *invTrace {
	if inv == nil {
		return nil
	}
	if it := inv.trace.Load(); it != nil && it.sampled {
		return it
	}
	return nil
}

// traceparent is the W3C header of a call from the invocation, under the
// client span id.
func (it *invTrace) traceparent(id trace.SpanID) string {
	var b [55]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], it.traceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], id[:])
	copy(b[52:], "-01")
	return string(b[:])
}
