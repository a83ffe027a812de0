package protect

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/lambdarasp/lambdarasp/internal/otlp"
)

// scopeName is the instrumentation scope of lambdarasp's spans.
const scopeName = "github.com/lambdarasp/lambdarasp/protect"

// OTLP field numbers (opentelemetry/proto/trace/v1/trace.proto).
const (
	fSpans          = 2 // ScopeSpans (otlp.Envelope writes the rest)
	fTraceID        = 1 // Span
	fSpanID         = 2
	fTraceState     = 3
	fParentSpanID   = 4
	fName           = 5
	fKind           = 6
	fStart          = 7
	fEnd            = 8
	fAttributes     = 9
	fEvents         = 11
	fDroppedEvents  = 12
	fLinks          = 13
	fDroppedLinks   = 14
	fStatus         = 15
	fFlags          = 16
	fEventTime      = 1 // Span.Event
	fEventName      = 2
	fEventAttrs     = 3
	fLinkTraceID    = 1 // Span.Link
	fLinkSpanID     = 2
	fLinkTraceState = 3
	fLinkFlags      = 6
	fStatusMessage  = 2 // Status
	fStatusCode     = 3
)

// Span flags: the W3C trace flags in the low byte, then whether the
// parent (or a link's span) is remote.
const (
	flagSampled        = 0x01
	flagHasIsRemote    = 0x100
	flagParentIsRemote = 0x200
)

// Span kinds and the error status code, as OTLP numbers them.
const (
	spanKindInternal = 1
	spanKindServer   = 2
	spanKindClient   = 3
	statusError      = 2
)

// exportRequestGrowth is the first size of an invocation's export buffer.
const exportRequestGrowth = 1024

// encode writes one ExportTraceServiceRequest with spans, all of trace it.
func (t *tracer) encode(b []byte, it *invTrace, spans []span) []byte {
	w := otlp.Buf{B: b}
	m := w.Envelope(t.resource, scopeName)
	for i := range spans {
		t.encodeSpan(&w, it, &spans[i])
	}
	w.EndEnvelope(m)
	return w.B
}

func (t *tracer) encodeSpan(w *otlp.Buf, it *invTrace, s *span) {
	m := w.Begin(fSpans)
	w.Bytes(fTraceID, it.traceID[:])
	w.Bytes(fSpanID, s.id[:])
	w.String(fTraceState, it.state)
	flags := uint32(flagSampled | flagHasIsRemote)
	if trace.SpanID(s.parent).IsValid() {
		w.Bytes(fParentSpanID, s.parent[:])
		if s.parent == it.parent && it.remote {
			flags |= flagParentIsRemote
		}
	}
	w.String(fName, s.name)
	w.Varint(fKind, uint64(s.kind))
	w.Fixed64(fStart, uint64(s.start.UnixNano()))
	w.Fixed64(fEnd, uint64(s.end.UnixNano()))
	writeAttrs(w, fAttributes, s.attrs)
	for i := range s.events {
		e := &s.events[i]
		em := w.Begin(fEvents)
		w.Fixed64(fEventTime, uint64(e.at.UnixNano()))
		w.String(fEventName, e.name)
		writeAttrs(w, fEventAttrs, e.attrs)
		w.End(em)
	}
	w.Varint(fDroppedEvents, uint64(s.droppedEvts))
	for i := range s.links {
		l := &s.links[i]
		lm := w.Begin(fLinks)
		w.Bytes(fLinkTraceID, l.trace[:])
		w.Bytes(fLinkSpanID, l.span[:])
		w.String(fLinkTraceState, l.state)
		lf := uint32(flagHasIsRemote | flagParentIsRemote)
		if l.sampled {
			lf |= flagSampled
		}
		w.Fixed32(fLinkFlags, lf)
		w.End(lm)
	}
	w.Varint(fDroppedLinks, uint64(s.droppedLinks))
	if s.failed {
		st := w.Begin(fStatus)
		w.String(fStatusMessage, s.message)
		w.Varint(fStatusCode, statusError)
		w.End(st)
	}
	w.Fixed32(fFlags, flags)
	w.End(m)
}

func writeAttrs(w *otlp.Buf, field int, attrs []attr) {
	f := protowire.Number(field)
	for _, a := range attrs {
		switch a.typ {
		case attrString:
			w.Str(f, a.key, a.str)
		case attrInt:
			w.Int(f, a.key, a.num)
		case attrBool:
			w.Bool(f, a.key, a.num == 1)
		case attrInts:
			w.Ints(f, a.key, a.ints)
		}
	}
}

// export sends one invocation's spans: to the extension when it runs,
// from the tracer's goroutine and followed by the invocation's report
// (send, may be nil), so nothing waits on the response's path; without
// an extension, to the backend directly, before the invocation returns —
// the environment may freeze as soon as it has — within the export
// timeout and the invocation's deadline.
func (t *tracer) export(ctx context.Context, body []byte, viaExtension bool, send func()) {
	if viaExtension && t.local.URL != "" {
		select {
		case t.queue <- traceJob{body: body, report: send}:
		default:
			if send != nil {
				send() // the spans are dropped, never the report
			}
		}
		return
	}
	if send != nil {
		send()
	}
	pctx := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		pctx, cancel = context.WithDeadline(pctx, dl.Add(-directMargin))
		defer cancel()
	}
	_ = otlp.Post(pctx, t.client, t.direct, body)
}

// directMargin is kept between a direct export and the invocation's
// deadline, for the response.
const directMargin = 50 * time.Millisecond

func (t *tracer) run() {
	for j := range t.queue {
		_ = otlp.Post(context.Background(), t.client, t.local, j.body)
		if j.report != nil {
			j.report()
		}
	}
}
