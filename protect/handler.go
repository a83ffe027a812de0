package protect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// BlockedErrorType is the errorType Lambda records when Handler fails an
// invocation because its event was blocked. Asynchronous triggers (SNS, S3,
// EventBridge) retry such invocations and then send the event to the
// on-failure destination or dead-letter queue, where it can be examined.
const BlockedErrorType = "lambdarasp.Blocked"

// IsBlocked reports whether err is the error Handler returns for a blocked
// event.
func IsBlocked(err error) bool {
	var e messages.InvokeResponse_Error
	return errors.As(err, &e) && e.Type == BlockedErrorType
}

// Handler wraps h, which may be any handler lambda.Start accepts (a function
// of one of the shapes lambda.NewHandler documents, or a lambda.Handler), so
// that every event is inspected before h decodes it:
//
//	lambda.Start(protect.Handler(myHandler))
//
// The raw payload is inspected once; a clean event reaches h byte for byte.
// A blocked event is refused the way its trigger understands (mode Block):
//   - API Gateway (REST, HTTP, WebSocket), ALB, function URL: a 403 response
//     in that source's shape, body {"message":"Forbidden","requestId":"…"};
//   - SQS, Kinesis, DynamoDB Streams with WithPartialBatch: the blocked
//     records are cut out of the event h receives and returned as
//     batchItemFailures, merged with h's own;
//   - Kinesis Data Firehose: the blocked records are cut out and returned
//     with result "ProcessingFailed", merged with h's records;
//   - everything else (and batches without partial-batch responses): the
//     invocation fails with an error of type lambdarasp.Blocked (see
//     BlockedErrorType), so the event is retried and then kept in the DLQ
//     or on-failure destination.
//
// With the lambdarasp extension in the function's layers, Handler also
// sends it a report after each invocation (LAMBDARASP_REPORT_ADDR, one UDP
// datagram to loopback, about 0.2 µs on the request path) and enforces its
// decisions before the rules run (LAMBDARASP_DECISIONS_FILE, about 1.5 µs
// when unchanged), in modes block and detect alike: a quarantined function
// refuses every event, a blocked client IP every HTTP request, with the
// trigger's blocked response (rules 100990 and 100991). Without a live
// extension, decisions fail open and the rules protect on their own.
//
// With an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT and the other
// standard OTEL_* variables), Handler records each sampled invocation as
// OpenTelemetry spans — a server span with the FaaS conventions, an
// inspection span with one event per finding, a client span per outbound
// call — continuing the trace of an incoming traceparent or the runtime's
// X-Ray header, and gives h a context carrying the server span. The spans
// go to the lambdarasp extension on loopback (LAMBDARASP_OTLP_ADDR) from a
// goroutine, off the response's path; without the extension, to the
// endpoint directly before the invocation returns (a round trip to the
// backend). Without an endpoint nothing is recorded. See the README's
// Observability section.
//
// Outbound calls made through Transport, Client or DialContext are checked
// against the egress rules and reported with the invocation that made
// them: the context h receives carries the invocation, so pass it (or one
// derived from it) to the requests h makes, in any goroutine. Handler
// installs its options' egress settings for those functions.
//
// The rules are compiled here, once, so call Handler during init (in main);
// the returned handler is safe for concurrent use. Handler panics if the
// options or LAMBDARASP_* variables are invalid: Lambda then reports an init
// error whose message names the setting. Panics in h are not recovered
// here; a failure of the inspection itself is logged and, unless
// WithFailClosed, h runs.
func Handler(h any, opts ...Option) lambda.Handler {
	next, ok := h.(lambda.Handler)
	if !ok {
		next = lambda.NewHandler(h)
	}
	cfg, err := newConfig(os.Getenv, opts)
	if err != nil {
		panic(err.Error())
	}
	if cfg.mode == Off {
		install(newOutboundConfig(cfg, nil))
		return next
	}
	in, err := newInspector(cfg)
	if err != nil {
		panic(err.Error())
	}
	l, err := newLink(cfg)
	if err != nil {
		panic(err.Error())
	}
	install(newOutboundConfig(cfg, l))
	return &handler{next: next, in: in, link: l, tracer: newTracer(cfg.otel, cfg.otlpAddr)}
}

type handler struct {
	next    lambda.Handler
	in      *Inspector
	link    *link   // the lambdarasp extension; nil: none
	tracer  *tracer // nil: no traces
	invoked atomic.Bool
}

var _ lambda.Handler = (*handler)(nil)

func (h *handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	requestID := ""
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		requestID = lc.AwsRequestID
	}
	start := time.Now()
	d := h.link.active(ctx)
	// The invocation's outbound calls (Transport, DialContext) find it in
	// the context the handler gets, or as the one in flight.
	inv := &invocation{requestID: requestID, decisions: d}
	o := outcome{calls: inv, start: start, cold: !h.invoked.Swap(true)}
	outbound.flight.begin(inv)
	if h.link != nil || h.tracer != nil {
		defer h.finish(ctx, requestID, &o)
	}
	defer outbound.flight.end(inv) // before the report: later calls are the next one's
	ctx = context.WithValue(ctx, invocationKey{}, inv)
	out, err := h.invoke(ctx, requestID, payload, d, &o)
	o.err, o.done = err, true
	return out, err
}

// finish sends the invocation's report and spans. It runs deferred, so
// that an invocation whose handler panicked is reported too.
func (h *handler) finish(ctx context.Context, requestID string, o *outcome) {
	if h.tracer == nil || o.trace == nil || !o.trace.sampled {
		h.link.send(requestID, o)
		return
	}
	var send func()
	if h.link != nil && h.link.sender != nil {
		r := h.link.report(requestID, o, make([]int, 0, report.MaxRules))
		o.action = r.Action // with its outbound findings
		send = func() { h.link.queue(&r) }
	}
	h.tracer.finish(ctx, requestID, o, h.in.cfg.mode, send, h.link.reachable())
}

// traced starts the invocation's trace, once its event is classified,
// and returns the context for the handler.
func (h *handler) traced(ctx context.Context, o *outcome, v *Verdict, payload []byte) context.Context {
	if h.tracer == nil || o.trace != nil {
		return ctx
	}
	ctx, o.trace = h.tracer.begin(ctx, &v.event, payload)
	o.calls.trace.Store(o.trace)
	return ctx
}

// invoke enforces the extension's decisions d, inspects the event, and
// runs h or refuses the event; o records what happened, for the report.
func (h *handler) invoke(ctx context.Context, requestID string, payload []byte, d *decision.Active, o *outcome) ([]byte, error) {
	now := time.Now()
	if q, ok := d.Quarantined(now); ok {
		v := refusal(h.in.classify(payload), ruleQuarantine, "Function quarantined by the lambdarasp extension")
		o.action, o.verdict = report.Quarantine, &v
		ctx = h.traced(ctx, o, &v, payload)
		return h.enforce(ctx, requestID, payload, v, "quarantine", q.Reason, q.Until)
	}
	o.inspectStart = time.Now()
	v, err := h.inspect(payload)
	o.inspectEnd = time.Now()
	o.verdict = &v
	ctx = h.traced(ctx, o, &v, payload)
	if v.event.Kind.HTTP() {
		o.clientIP = clientIP(v.event)
	}
	if b, ok := d.IPBlocked(o.clientIP, now); ok {
		v = refusal(v, ruleBlockedIP, "Client IP blocked by the lambdarasp extension")
		o.action = report.BlockedIP
		return h.enforce(ctx, requestID, payload, v, "blocked-ip", b.Reason, b.Until)
	}
	if err != nil {
		h.in.cfg.logger.LogAttrs(ctx, slog.LevelError, "lambdarasp inspection failed",
			slog.String("request_id", requestID), slog.String("error", err.Error()),
			slog.Bool("fail_closed", h.in.cfg.failClosed))
		if !h.in.cfg.failClosed {
			return h.next.Invoke(ctx, payload)
		}
		v = failedVerdict(v)
		o.action = report.Failed
	}
	if v.Action == Allow {
		return h.next.Invoke(ctx, payload)
	}
	h.log(ctx, requestID, v)
	if h.in.cfg.mode == Detect {
		o.action = report.Detect
		return h.next.Invoke(ctx, payload)
	}
	if o.action != report.Failed {
		o.action = report.Block
	}
	return h.refuse(ctx, requestID, payload, v)
}

// inspect runs the inspector and turns a panic inside it (a bug of ours, or
// of Coraza, on some input) into an error: the user's function must not
// crash because its guard did.
func (h *handler) inspect(payload []byte) (v Verdict, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("inspection panicked: %v", r)
		}
	}()
	return h.in.Inspect(payload), nil
}

// failedVerdict blocks the whole event when inspection failed and
// fail-closed is on.
func failedVerdict(v Verdict) Verdict {
	v.Action = Deny
	v.Findings = append(v.Findings, Finding{Rule: ruleFailure, Message: "Inspection failed (fail-closed)", Record: -1})
	v.BlockedRecords = nil
	for i := range v.blocked {
		v.blocked[i] = true
	}
	return v
}

func (h *handler) log(ctx context.Context, requestID string, v Verdict) {
	action := "block"
	if h.in.cfg.mode == Detect {
		action = "detect"
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestID),
		slog.String("source", v.Source),
		slog.String("action", action),
		slog.Int("score", v.Score),
		slog.Any("rules", v.Rules()),
		slog.Any("findings", v.Findings),
	}
	if v.BlockedRecords != nil {
		attrs = append(attrs, slog.Any("blocked_records", v.BlockedRecords))
	}
	h.in.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "lambdarasp finding", attrs...)
}

// blockedError is the invocation error for a blocked event. It names the
// source, rules and records, never the payload.
func blockedError(v Verdict) error {
	var b strings.Builder
	b.WriteString("lambdarasp: event blocked (source ")
	b.WriteString(v.Source)
	b.WriteString(", rules ")
	for i, id := range v.Rules() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(id))
	}
	if len(v.BlockedRecords) > 0 {
		b.WriteString(", records ")
		for i, r := range v.BlockedRecords {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(r))
		}
	}
	b.WriteByte(')')
	return messages.InvokeResponse_Error{Type: BlockedErrorType, Message: b.String()}
}
