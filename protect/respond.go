package protect

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/tidwall/gjson"

	"github.com/lambdarasp/lambdarasp/internal/source"
)

// refuse answers a blocked event in Block mode; see Handler for the shapes.
func (h *handler) refuse(ctx context.Context, requestID string, payload []byte, v Verdict) ([]byte, error) {
	kind := v.event.Kind
	switch {
	case kind.HTTP():
		return forbidden(kind, payload, requestID), nil
	case kind == source.Firehose && cuttable(v):
		return h.firehose(ctx, payload, v)
	case kind.Batch() && h.in.cfg.partialBatch && cuttable(v):
		return h.partialBatch(ctx, payload, v)
	}
	return nil, blockedError(v)
}

type httpResponse struct {
	StatusCode        int                 `json:"statusCode"`
	StatusDescription string              `json:"statusDescription,omitempty"`
	Headers           map[string]string   `json:"headers,omitempty"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders,omitempty"`
	Body              string              `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
}

// forbidden is the 403 each HTTP source expects. The body names the Lambda
// request id (also in the finding log line) and never echoes the payload.
// An ALB target group with multi-value headers on requires multiValueHeaders
// in the response; the event tells which by carrying them.
func forbidden(kind source.Kind, payload []byte, requestID string) []byte {
	body, _ := json.Marshal(struct {
		Message   string `json:"message"`
		RequestID string `json:"requestId"`
	}{"Forbidden", requestID})
	r := httpResponse{StatusCode: 403, Body: string(body)}
	ctype := "application/json"
	switch {
	case kind == source.ALB && gjson.GetBytes(payload, "multiValueHeaders").Exists():
		r.StatusDescription = "403 Forbidden"
		r.MultiValueHeaders = map[string][]string{"Content-Type": {ctype}}
	case kind == source.ALB:
		r.StatusDescription = "403 Forbidden"
		r.Headers = map[string]string{"Content-Type": ctype}
	default:
		r.Headers = map[string]string{"Content-Type": ctype}
	}
	out, _ := json.Marshal(r)
	return out
}

// cuttable reports whether every blocked record can be cut out of the
// payload and named to the trigger. If not, the whole invocation fails:
// a record is never dropped.
func cuttable(v Verdict) bool {
	prev := -1
	for i, rec := range v.event.Records {
		if rec.Start <= prev || rec.End <= rec.Start {
			return false
		}
		prev = rec.End - 1
		if v.blocked[i] && rec.ID == "" {
			return false
		}
	}
	return len(v.event.Records) > 0
}

// withoutBlocked returns payload with the blocked records cut out of their
// array; the kept records' bytes are untouched. It reports how many records
// were kept.
func withoutBlocked(payload []byte, v Verdict) ([]byte, int) {
	recs := v.event.Records
	first, last := recs[0].Start, recs[len(recs)-1].End
	var b bytes.Buffer
	b.Grow(len(payload))
	b.Write(payload[:first])
	kept := 0
	for i, rec := range recs {
		if v.blocked[i] {
			continue
		}
		if kept > 0 {
			b.WriteByte(',')
		}
		b.Write(payload[rec.Start:rec.End])
		kept++
	}
	b.Write(payload[last:])
	return b.Bytes(), kept
}

// partialBatch runs the handler on the clean records and adds the blocked
// ones to its batchItemFailures.
func (h *handler) partialBatch(ctx context.Context, payload []byte, v Verdict) ([]byte, error) {
	return h.merge(ctx, payload, v, "batchItemFailures", func(b *bytes.Buffer, rec source.Record) {
		b.WriteString(`{"itemIdentifier":`)
		writeJSONString(b, rec.ID)
		b.WriteByte('}')
	})
}

// firehose runs the handler on the clean records and adds the blocked ones
// to its records with result ProcessingFailed and their original data, so
// Firehose delivers them to the processing-failed prefix.
func (h *handler) firehose(ctx context.Context, payload []byte, v Verdict) ([]byte, error) {
	return h.merge(ctx, payload, v, "records", func(b *bytes.Buffer, rec source.Record) {
		b.WriteString(`{"recordId":`)
		writeJSONString(b, rec.ID)
		b.WriteString(`,"result":"ProcessingFailed","data":`)
		if data := gjson.GetBytes(payload[rec.Start:rec.End], "data"); data.Type == gjson.String {
			b.WriteString(data.Raw)
		} else {
			b.WriteString(`""`)
		}
		b.WriteByte('}')
	})
}

// merge runs the handler on the payload without the blocked records (not at
// all if none is left) and answers {"<member>":[…]}: the items of the
// handler's own response under member, kept byte for byte, then one item per
// blocked record, written by item. A handler error is returned as it is: the
// trigger then retries the whole batch, blocked records included.
func (h *handler) merge(ctx context.Context, payload []byte, v Verdict, member string, item func(*bytes.Buffer, source.Record)) ([]byte, error) {
	clean, kept := withoutBlocked(payload, v)
	var out []byte
	if kept > 0 {
		var err error
		if out, err = h.next.Invoke(ctx, clean); err != nil {
			return out, err
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"` + member + `":[`)
	n := 0
	sep := func() {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
	}
	// Only an array's items: gjson calls ForEach's function once with any
	// other value, and a null or an object among the items makes AWS fail
	// the whole batch (events.SQSEventResponse{} encodes its nil slice as
	// null).
	if items := gjson.GetBytes(out, member); items.IsArray() {
		items.ForEach(func(_, it gjson.Result) bool {
			sep()
			b.WriteString(it.Raw)
			return true
		})
	}
	for i, rec := range v.event.Records {
		if v.blocked[i] {
			sep()
			item(&b, rec)
		}
	}
	b.WriteString("]}")
	return b.Bytes(), nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}
