package protect

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// Rule ids of the refusals the extension's decisions cause.
const (
	ruleQuarantine = 100990 // the function is quarantined
	ruleBlockedIP  = 100991 // the client IP is blocked
)

// link is the wrapper's side of the lambdarasp extension: before each
// invocation it looks at the extension's decisions (quarantine, blocked
// client IPs), after it sends the extension one report. Both cost a few
// microseconds at most and never wait for the extension.
//
// Without a live extension the wrapper fails open on decisions: when a
// report finds nobody listening, decisions are not enforced (the rules
// still are) until a report finds the extension again; each change is
// logged once. A nil *link does nothing.
type link struct {
	sender  *report.Sender    // nil: reports off
	watcher *decision.Watcher // nil: decisions off
	logger  *slog.Logger
	seen    atomic.Bool  // the extension has been reachable
	broken  atomic.Bool  // the decisions file is unreadable, and that was logged
	full    atomic.Bool  // the report queue was full, and that was logged
	calm    atomic.Int32 // reports queued in a row since it was
}

func newLink(cfg config) (*link, error) {
	l := &link{logger: cfg.logger}
	if cfg.decisions != off {
		l.watcher = decision.NewWatcher(cfg.decisions)
	}
	if cfg.reportAddr != off {
		s, err := report.Dial(cfg.reportAddr, l.reachability)
		if err != nil {
			return nil, err
		}
		l.sender = s
		// Extensions start, and bind, before the function: whether one
		// listens is known now, before the first invocation.
		if s.Hello() {
			l.seen.Store(true)
		}
	}
	if l.sender == nil && l.watcher == nil {
		return nil, nil
	}
	return l, nil
}

// reachability logs the extension going away or coming back; the Sender
// calls it once per change.
func (l *link) reachability(reachable bool, err error) {
	if reachable {
		l.seen.Store(true)
		l.logger.LogAttrs(context.Background(), slog.LevelInfo, "lambdarasp extension reachable: decisions enforced")
		return
	}
	if !l.seen.Load() {
		l.logger.LogAttrs(context.Background(), slog.LevelInfo, "lambdarasp extension not running: no reports, decisions not enforced; the rules protect on their own")
		return
	}
	l.logger.LogAttrs(context.Background(), slog.LevelWarn, "lambdarasp extension not reachable: reports dropped, decisions not enforced (fail-open); the rules still are",
		slog.String("error", err.Error()))
}

// active returns the decisions in force, or nil: no link, decisions off,
// no extension listening, or no decisions file. A file that cannot be read
// leaves the last good decisions in force (none: the rules alone); that
// is logged once, and once more when the file is good again.
func (l *link) active(ctx context.Context) *decision.Active {
	if l == nil || l.watcher == nil || (l.sender != nil && !l.sender.Reachable()) {
		return nil
	}
	a, err := l.watcher.Load()
	switch {
	case err != nil:
		if !l.broken.Swap(true) {
			l.logger.LogAttrs(ctx, slog.LevelError, "lambdarasp decisions unreadable: keeping the last good ones",
				slog.String("file", l.watcher.Path()), slog.String("error", err.Error()))
		}
	case l.broken.Load() && l.broken.Swap(false):
		l.logger.LogAttrs(ctx, slog.LevelInfo, "lambdarasp decisions readable again", slog.String("file", l.watcher.Path()))
	}
	return a
}

// outcome is what one invocation came to, for its report.
type outcome struct {
	start        time.Time
	cold         bool
	inspectStart time.Time // zero: the event was not inspected
	inspectEnd   time.Time
	trace        *invTrace // nil: not traced
	action       report.Action
	verdict      *Verdict // nil when the invocation was refused before inspection
	clientIP     string
	err          error
	done         bool        // false: the handler panicked
	calls        *invocation // its outbound calls
}

// reachable reports whether the extension took the last report.
func (l *link) reachable() bool {
	return l != nil && l.sender != nil && l.sender.Reachable()
}

// send reports the invocation o.
func (l *link) send(requestID string, o *outcome) {
	if l == nil || l.sender == nil {
		return
	}
	var rules [report.MaxRules]int
	r := l.report(requestID, o, rules[:0])
	l.queue(&r)
}

// queue hands r to the sender. A full queue (its goroutine starved: the
// report is dropped) is logged once, and once more when reportsCalm
// reports in a row were queued again, with how many were dropped in all.
func (l *link) queue(r *report.Report) {
	if !l.sender.Send(r) {
		l.calm.Store(0)
		if l.full.CompareAndSwap(false, true) {
			l.logger.LogAttrs(context.Background(), slog.LevelWarn, "lambdarasp report queue full: reports dropped until it drains (the extension misses them; telemetry still counts the invocations)",
				slog.Int64("dropped", l.sender.Dropped()))
		}
		return
	}
	if l.full.Load() && l.calm.Add(1) >= reportsCalm && l.full.CompareAndSwap(true, false) {
		l.logger.LogAttrs(context.Background(), slog.LevelInfo, "lambdarasp reports queued again",
			slog.Int64("dropped", l.sender.Dropped()))
	}
}

// reportsCalm is how many reports in a row must be queued for a full
// queue to count as drained: a queue at its limit would otherwise log
// every other report.
const reportsCalm = 64

// report is the report of the invocation o, its rule ids in rules (with
// room for report.MaxRules). It takes o's outbound calls: call it once.
func (l *link) report(requestID string, o *outcome, rules []int) report.Report {
	r := report.Report{
		RequestID:      requestID,
		Action:         o.action,
		DurationMicros: time.Since(o.start).Microseconds(),
		ClientIP:       o.clientIP,
		ColdStart:      o.cold,
		Records:        1,
		Rules:          rules,
	}
	if !o.inspectStart.IsZero() {
		r.InspectMicros = max(o.inspectEnd.Sub(o.inspectStart).Microseconds(), 1)
	}
	if v := o.verdict; v != nil {
		r.Source = v.Source
		r.Rules = ruleIDs(rules, v.Findings)
		if n := len(v.event.Records); n > 0 {
			r.Records = n
		}
		switch {
		case len(v.BlockedRecords) > 0:
			r.BlockedRecords = len(v.BlockedRecords)
		case v.Action == Deny:
			r.BlockedRecords = r.Records
		}
	}
	switch {
	case !o.done:
		r.ErrorType = "panic"
	case o.err != nil:
		r.ErrorType = errorType(o.err)
	}
	if o.calls != nil {
		t := o.calls.take()
		if carried := takeCarry(); len(carried.dests) > 0 || carried.refused || carried.detected {
			t.merge(&carried)
		}
		r.Outbound, r.Calls = t.dests, t.calls
		// An outbound finding is reported as an inbound one is: its rule,
		// and the action block (or detect) for an invocation that had none.
		for i, hit := range t.rules {
			if hit && len(r.Rules) < cap(rules) {
				r.Rules = append(r.Rules, ruleEgressGuard+i)
			}
		}
		switch {
		case t.refused && (r.Action == report.Allow || r.Action == report.Detect):
			r.Action = report.Block
		case t.detected && r.Action == report.Allow:
			r.Action = report.Detect
		}
	}
	return r
}

// ruleIDs appends the distinct rule ids of findings to dst, in order, as
// many as dst can hold, without allocating.
func ruleIDs(dst []int, findings []Finding) []int {
next:
	for _, f := range findings {
		for _, id := range dst {
			if id == f.Rule {
				continue next
			}
		}
		if len(dst) == cap(dst) {
			break
		}
		dst = append(dst, f.Rule)
	}
	return dst
}

// errorType names err the way the Lambda runtime does in errorType: the
// type of an InvokeResponse_Error as written, otherwise the name of err's
// type. Messages are never reported: they may carry data.
func errorType(err error) string {
	var ire messages.InvokeResponse_Error
	if errors.As(err, &ire) && ire.Type != "" {
		return ire.Type
	}
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Name() == "" {
		return "error"
	}
	return t.Name()
}
