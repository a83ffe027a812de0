package protect

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/source"
)

// The extension's decisions are enforced in modes block and detect alike:
// they are what an operator's policy asked for, not what the rules
// guessed. Mode off has no wrapper to enforce them.

// classify parses payload for its source and records without running the
// rules: a quarantined function refuses every event, so it need not be
// inspected. A parser panic (a bug) leaves the event unclassified, which
// is still refused: with the blocked error.
func (in *Inspector) classify(payload []byte) (v Verdict) {
	defer func() {
		if recover() != nil {
			v = Verdict{Source: string(source.Direct), Action: Allow}
		}
	}()
	return in.parse(payload)
}

// refusal turns v into a verdict that blocks the whole event, every
// record, with one finding naming the decision.
func refusal(v Verdict, rule int, msg string) Verdict {
	v.Action = Deny
	v.Findings = append(v.Findings, Finding{Rule: rule, Message: msg, Record: -1})
	v.BlockedRecords = nil
	if len(v.blocked) != len(v.event.Records) {
		v.blocked = make([]bool, len(v.event.Records))
	}
	for i, rec := range v.event.Records {
		v.blocked[i] = true
		if rec.Path != "" {
			v.BlockedRecords = append(v.BlockedRecords, rec.Index)
		}
	}
	return v
}

// enforce refuses the event the way its trigger understands a block and
// logs the decision that made it (never the payload).
func (h *handler) enforce(ctx context.Context, requestID string, payload []byte, v Verdict, decision, reason string, until time.Time) ([]byte, error) {
	h.in.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "lambdarasp decision enforced",
		slog.String("request_id", requestID),
		slog.String("source", v.Source),
		slog.String("decision", decision),
		slog.String("reason", reason),
		slog.Time("until", until),
	)
	return h.refuse(ctx, requestID, payload, v)
}

// clientIP is the caller's address of an HTTP event: the source IP API
// Gateway and function URLs report, or for an ALB the last address of
// X-Forwarded-For, the one the load balancer itself appended (the ones
// before it are whatever the client claimed).
func clientIP(ev source.Event) string {
	r := ev.Request
	if r == nil {
		return ""
	}
	if r.RemoteAddr != "" {
		return r.RemoteAddr
	}
	if ev.Kind != source.ALB {
		return ""
	}
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if strings.EqualFold(r.Headers[i].Name, "X-Forwarded-For") {
			v := r.Headers[i].Value
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				v = v[j+1:]
			}
			return strings.TrimSpace(v)
		}
	}
	return ""
}
