package extension

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/anomaly"
	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/otlp"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// Run is the extension: it registers with the Extensions API at
// cfg.RuntimeAPI, then serves events until SHUTDOWN, when it flushes its
// alerts within Lambda's deadline and returns nil. When ctx ends first
// (a signal, outside Lambda) it flushes for at most a second and returns
// ctx.Err(). Settings or a policy that are invalid are reported to
// /extension/init/error and returned; so is a failure to register.
func Run(ctx context.Context, cfg Config) error {
	if cfg.RuntimeAPI == "" {
		return fmt.Errorf("extension: %s is not set: run inside Lambda or under lambdarasp local", envRuntimeAPI)
	}
	x := &ext{api: newAPI(cfg.RuntimeAPI)}
	defer x.close()
	cfg = cfg.withDefaults()
	x.cfg, x.log = cfg, cfg.Logger

	// Reports first: the function starts once every extension has
	// registered, and its first report must find the listener. Invalid
	// settings listen for nothing: init reports them.
	valid := cfg.check() == nil
	if valid {
		if rl, err := listenReports(cfg.ReportAddr); err != nil {
			x.log.Warn("lambdarasp reports unavailable: working from telemetry alone", "addr", cfg.ReportAddr, "error", err.Error())
		} else {
			x.reports = rl
		}
	}
	if valid && cfg.OTel.Export() {
		x.relay = newRelay(cfg.OTel, cfg.HTTPClient, x.log, cfg.OTLPQueueBytes)
		if cfg.OTLPAddr != "off" {
			if err := x.relay.listen(cfg.OTLPAddr); err != nil {
				x.log.Warn("lambdarasp OTLP receiver unavailable: the wrapper's spans are lost", "addr", cfg.OTLPAddr, "error", err.Error())
			}
		}
	}
	if err := x.api.register(ctx, cfg.Name); err != nil {
		return err
	}
	if err := x.init(ctx); err != nil {
		if e := x.api.fail(ctx, true, "Extension.ConfigError", err); e != nil {
			x.log.Error("lambdarasp init error not reported", "error", e.Error())
		}
		return err
	}
	return x.loop(ctx)
}

// ext is the extension's state, owned by the event loop's goroutine.
type ext struct {
	cfg        Config
	api        *api
	log        *slog.Logger
	reports    *reportListener    // nil: no reports
	telemetry  *telemetryListener // nil: no telemetry
	policy     Policy
	detector   *anomaly.Detector
	alerts     *alerter
	hook       *webhook      // nil: no webhook
	source     *policySource // nil: the policy file alone
	relay      *relay        // nil: no OTLP export
	resource   []byte        // the OTLP resource, encoded once
	meters     *meters
	policyFrom string         // where the policy came from, for the ready line
	checked    chan selfCheck // the self-check's result, nil once handled
	codeGate   chan bool      // true once the first invocation's runtime is done: the digest may start; false: never

	decisions decision.Decisions
	recent    [8]string // request ids of the last reports, newest at recentAt-1
	recentAt  int
	doneID    string // request id of the last platform.runtimeDone
	missed    int    // invocations in a row without any report
	invokes   int
	received  int // reports
	calls     int // outbound calls in them
}

func (x *ext) init(ctx context.Context) error {
	if err := x.cfg.check(); err != nil {
		return err
	}
	var db vulnDB
	if x.cfg.VulnFile != "" {
		var err error
		if db, err = loadVulns(x.cfg.VulnFile); err != nil {
			return err
		}
	}
	// The self-check reads the function's binary and environment while the
	// function initialises (a fraction of a millisecond), and hashes the
	// code once the first invocation's runtime is done (tens of
	// milliseconds: it would slow the function's init on Lambda's smaller
	// CPU shares). The event loop handles its result.
	checked, gate := make(chan selfCheck, 1), make(chan bool, 1)
	x.checked, x.codeGate = checked, gate
	go func(cfg Config) { checked <- checkSelf(cfg, db, gate) }(x.cfg)

	p, found, err := loadPolicy(x.cfg.PolicyFile)
	if err != nil {
		return err
	}
	x.policy, x.policyFrom = p, x.cfg.PolicyFile
	if !found {
		x.policyFrom = "none at " + x.cfg.PolicyFile + ": alert only"
	}
	x.detector = anomaly.New(anomaly.Config{AttackerBlocked: p.BlockIPAfter})
	if x.cfg.WebhookURL != "" {
		x.hook = newWebhook(x.cfg.WebhookURL, x.cfg.WebhookFormat, x.cfg.HTTPClient, x.log)
	}
	x.alerts = newAlerter(x.cfg.FunctionName, x.cfg.Stdout, x.log, x.hook)
	x.meters = newMeters(x.cfg.Now())
	if r := x.relay; r != nil {
		x.resource = otlp.Resource(x.cfg.OTel.Resource)
		x.alerts.sink = func(a Alert) { r.add(otlp.Logs, alertLog(x.resource, a, x.cfg.Now())) }
	}
	if x.cfg.PolicyURL != "" {
		x.source = newPolicySource(x.cfg.PolicyURL, x.cfg.PolicyPoll, x.cfg.HTTPClient)
		x.pollPolicy(ctx, initPollTimeout)
	}

	if tl, err := listenTelemetry(x.cfg.HostsFile, x.cfg.TelemetryPort); err != nil {
		x.log.Warn("lambdarasp telemetry unavailable: working from the wrapper's reports alone", "error", err.Error())
	} else if err := x.api.subscribe(ctx, tl.uri()); err != nil {
		tl.close()
		x.log.Warn("lambdarasp telemetry subscription refused: working from the wrapper's reports alone", "error", err.Error())
	} else {
		x.telemetry = tl
	}
	x.restore()
	x.log.Info("lambdarasp extension ready", "reports", x.reports != nil, "telemetry", x.telemetry != nil,
		"policy", x.policyFrom, "policy_rules", len(x.policy.Rules), "policy_source", x.source != nil, "webhook", x.hook != nil, "decisions_file", x.cfg.DecisionsFile,
		"otlp", x.relay != nil)
	return nil
}

// restore keeps the decisions a previous extension of this environment
// published that still hold (an extension that crashed and was restarted
// must not lift a quarantine), adds the policy's standing quarantine, and
// publishes the result.
func (x *ext) restore() {
	now := x.cfg.Now()
	d, err := decision.Read(x.cfg.DecisionsFile)
	if err != nil {
		x.log.Warn("lambdarasp previous decisions unreadable: starting without them", "error", err.Error())
		d = decision.Decisions{}
	}
	d.Expire(now)
	x.decisions = d
	x.standing(now)
	x.publish(now)
}

// standing applies the policy's quarantine_until: it sets the quarantine,
// extends it, or — when a new policy moved or dropped it — moves or lifts
// the one an earlier policy set. It reports whether anything changed.
func (x *ext) standing(now time.Time) bool {
	d, until := &x.decisions, x.policy.QuarantineUntil
	switch {
	case d.Quarantine != nil && d.Quarantine.Reason == reasonPolicy:
		if !until.After(now) {
			d.Quarantine = nil
			return true
		}
		if !until.Equal(d.Quarantine.Until) {
			d.Quarantine.Until = until
			return true
		}
	case until.After(now) && (d.Quarantine == nil || d.Quarantine.Until.Before(until)):
		d.Quarantine = &decision.Quarantine{Until: until, Reason: reasonPolicy}
		return true
	}
	return false
}

// reasonPolicy is the reason of a quarantine the policy itself asks for.
const reasonPolicy = "policy"

// policySourceAlert is the alert type of a policy source that cannot be
// used. It is not an anomaly: no policy rule applies to it.
const policySourceAlert anomaly.Type = "policy_source"

// pollPolicy fetches the policy from its source and applies it. A source
// that fails keeps the last good policy, and raises one alert until it
// works again.
func (x *ext) pollPolicy(ctx context.Context, timeout time.Duration) {
	now := x.cfg.Now()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	p, err := x.source.fetch(pctx, now)
	cancel()
	if err != nil {
		if !x.source.failing {
			x.source.failing = true
			x.log.Warn("lambdarasp policy source unusable: keeping the last good policy", "host", x.source.host, "error", err.Error())
			x.alerts.raise(anomaly.Anomaly{Type: policySourceAlert, Severity: anomaly.Medium, At: now,
				Message: "policy source unusable, the last good policy stays: " + err.Error()}, "", now)
		}
		return
	}
	if x.source.failing {
		x.source.failing = false
		x.log.Info("lambdarasp policy source usable again", "host", x.source.host)
	}
	if p == nil {
		return
	}
	x.policy = *p
	x.detector.SetAttackerBlocked(p.BlockIPAfter)
	x.policyFrom = "source " + x.source.host
	x.log.Info("lambdarasp policy updated", "host", x.source.host, "rules", len(p.Rules))
	if x.standing(now) {
		x.publish(now)
	}
}

func (x *ext) publish(now time.Time) {
	x.decisions.Written = now.UTC()
	if err := decision.Write(x.cfg.DecisionsFile, x.decisions); err != nil {
		x.log.Error("lambdarasp decisions not published", "error", err.Error())
	}
}

func (x *ext) close() {
	x.openCodeGate(false)
	if x.relay != nil {
		x.relay.close()
	}
	if x.reports != nil {
		x.reports.close()
	}
	if x.telemetry != nil {
		x.telemetry.close()
	}
}

// loop serves events until SHUTDOWN or until ctx ends.
func (x *ext) loop(ctx context.Context) error {
	for {
		ev, err := x.api.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				x.finish(fctx)
				cancel()
				return ctx.Err()
			}
			return err
		}
		switch ev.EventType {
		case "INVOKE":
			x.invoke(ctx, ev)
		case "SHUTDOWN":
			sctx, cancel := context.WithDeadline(ctx, ev.deadline().Add(-150*time.Millisecond))
			x.finish(sctx)
			cancel()
			x.log.Info("lambdarasp extension shut down", "reason", ev.ShutdownReason, "invocations", x.invokes, "reports", x.received, "outbound_calls", x.calls,
				"otlp_sent", x.otlpSent())
			return nil
		default:
			return fmt.Errorf("extension: next: unknown event type %q", ev.EventType)
		}
	}
}

// invoke observes one invocation: what came in while the environment was
// frozen, the INVOKE itself, the wrapper's report (waited for up to
// ReportWait), and then delivers what alerts are pending before next.
func (x *ext) invoke(ctx context.Context, ev event) {
	x.invokes++
	x.drain()
	now := x.cfg.Now()
	x.handle(x.detector.Invoked(now, ev.RequestID), now)
	x.await(ctx, ev)
	if x.checked != nil {
		// Once per start, after the response: billed duration, never the
		// caller's latency.
		x.openCodeGate(true)
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if ev.DeadlineMs > 0 {
			cctx, cancel = context.WithDeadline(ctx, ev.deadline().Add(-100*time.Millisecond))
		}
		x.awaitCheck(cctx)
		cancel()
	}
	if x.source != nil && x.source.due(x.cfg.Now()) {
		x.pollPolicy(ctx, pollTimeout)
	}
	if now := x.cfg.Now(); x.decisions.Expire(now) {
		x.publish(now)
	}
	if x.hook != nil && len(x.hook.queue) > 0 {
		dl := time.Now().Add(invokeBudget)
		if end := ev.deadline().Add(-100 * time.Millisecond); ev.DeadlineMs > 0 && end.Before(dl) {
			dl = end
		}
		fctx, cancel := context.WithDeadline(ctx, dl)
		x.hook.flush(fctx)
		cancel()
	}
	if x.relay != nil {
		now := x.cfg.Now()
		if now.Sub(x.meters.last) >= x.cfg.OTel.MetricInterval {
			x.exportMetrics(now)
		}
		wait := settleWait
		if ev.DeadlineMs > 0 {
			wait = min(wait, time.Until(ev.deadline().Add(-50*time.Millisecond)))
		}
		x.relay.settle(ctx, wait)
	}
}

// exportMetrics queues the metrics as they stand at now.
func (x *ext) exportMetrics(now time.Time) {
	x.relay.add(otlp.Metrics, x.meters.encode(x.resource, now, &x.decisions, x.relay.droppedCount()))
}

func (x *ext) otlpSent() int64 {
	if x.relay == nil {
		return 0
	}
	return x.relay.sent.Load()
}

// await waits for the report of request id, handling whatever else
// arrives meanwhile. A wrapper sends its report just before the runtime
// posts the response, so waiting while the runtime works costs nothing;
// what must be bounded is the wait after it is done. With telemetry and a
// wrapper that has said hello, await waits until the report comes, or
// until ReportWait after platform.runtimeDone of this invocation (a crash,
// a timeout: no report will come), and never past the deadline. Without
// telemetry it waits ReportWait from INVOKE. After 3 invocations in a row
// without any report it stops waiting, until a report comes.
func (x *ext) await(ctx context.Context, ev event) {
	id := ev.RequestID
	if x.reported(id) {
		x.missed = 0
		return
	}
	if x.reports == nil || x.cfg.ReportWait < 0 || x.missed >= 3 {
		x.missed++
		return
	}
	limit := x.cfg.ReportWait
	if x.telemetry != nil && (x.received > 0 || x.reports.greeted.Load()) && ev.DeadlineMs > 0 {
		limit = max(time.Until(ev.deadline().Add(-50*time.Millisecond)), limit)
	}
	if x.doneID == id {
		limit = x.cfg.ReportWait
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case r := <-x.reportChan():
			x.report(r)
			if r.RequestID == id {
				return
			}
		case e := <-x.telemetryEvents():
			x.platform(e)
			if x.doneID == id && limit > x.cfg.ReportWait {
				limit = x.cfg.ReportWait
				timer.Reset(limit)
			}
		case c := <-x.checked:
			x.selfChecked(c)
		case <-timer.C:
			x.missed++
			return
		case <-ctx.Done():
			return
		}
	}
}

// awaitCheck waits for the self-check's result until ctx ends, handling
// whatever else arrives meanwhile.
func (x *ext) awaitCheck(ctx context.Context) {
	for x.checked != nil {
		select {
		case c := <-x.checked:
			x.selfChecked(c)
		case r := <-x.reportChan():
			x.report(r)
		case e := <-x.telemetryEvents():
			x.platform(e)
		case <-ctx.Done():
			return
		}
	}
}

func (x *ext) openCodeGate(open bool) {
	if x.codeGate != nil {
		x.codeGate <- open
		x.codeGate = nil
	}
}

// selfChecked logs the self-check's line and raises its alerts, through
// the policy.
func (x *ext) selfChecked(c selfCheck) {
	x.checked = nil
	c.log(x)
	now := x.cfg.Now()
	x.handle(c.anomalies(now), now)
}

// reported reports whether the report of id is among the last few: a
// report handled while waiting for an earlier invocation's (they can
// arrive out of order when INVOKEs queue up) counts as come.
func (x *ext) reported(id string) bool {
	return id != "" && slices.Contains(x.recent[:], id)
}

func (x *ext) telemetryEvents() <-chan platformEvent {
	if x.telemetry == nil {
		return nil
	}
	return x.telemetry.events
}

func (x *ext) reportChan() <-chan report.Report {
	if x.reports == nil {
		return nil
	}
	return x.reports.reports
}

// drain handles everything that has arrived, without waiting.
func (x *ext) drain() {
	for {
		select {
		case r := <-x.reportChan():
			x.report(r)
		case e := <-x.telemetryEvents():
			x.platform(e)
		case c := <-x.checked:
			x.selfChecked(c)
		default:
			return
		}
	}
}

func (x *ext) report(r report.Report) {
	x.received++
	for _, o := range r.Outbound {
		x.calls += o.Calls
	}
	x.recent[x.recentAt%len(x.recent)] = r.RequestID
	x.recentAt++
	x.missed = 0
	x.meters.report(&r)
	now := x.cfg.Now()
	x.handle(x.detector.Reported(now, r), now)
}

func (x *ext) platform(e platformEvent) {
	now := x.cfg.Now()
	switch e.Type {
	case "platform.runtimeDone":
		x.doneID = e.Record.RequestID
		x.handle(x.detector.RuntimeDone(now, e.Record.RequestID, e.Record.Status, e.Record.Metrics.DurationMs), now)
	case "platform.report":
		x.handle(x.detector.PlatformReport(now, e.Record.RequestID, e.Record.Metrics.MaxMemoryUsedMB, e.Record.Metrics.MemorySizeMB), now)
	}
}

// handle applies the policy to each anomaly, alerts it, and publishes the
// decisions if they changed.
func (x *ext) handle(as []anomaly.Anomaly, now time.Time) {
	changed := false
	for _, a := range as {
		x.meters.anomaly(a)
		action := x.policy.decide(a, &x.decisions, now)
		changed = changed || action != ""
		x.alerts.raise(a, action, now)
	}
	if changed {
		x.publish(now)
	}
}

// finish is the end of the environment: the reports and telemetry still
// arriving are handled (until 20 ms pass without any, at most 200 ms),
// then the held-back counts are written and the webhook flushed, all
// within ctx.
func (x *ext) finish(ctx context.Context) {
	settle := time.NewTimer(200 * time.Millisecond)
	defer settle.Stop()
	quiet := time.NewTimer(20 * time.Millisecond)
	defer quiet.Stop()
wait:
	for {
		select {
		case r := <-x.reportChan():
			x.report(r)
		case e := <-x.telemetryEvents():
			x.platform(e)
		case <-quiet.C:
			break wait
		case <-settle.C:
			break wait
		case <-ctx.Done():
			break wait
		}
		quiet.Reset(20 * time.Millisecond)
	}
	x.openCodeGate(false) // the environment ends: no invocation left for a code check to protect
	x.awaitCheck(ctx)
	x.alerts.flushCounts(x.cfg.Now())
	if x.hook != nil {
		x.hook.flush(ctx)
		if n := len(x.hook.queue) + x.hook.dropped; n > 0 {
			x.log.Warn("lambdarasp alerts not delivered to the webhook", "host", x.hook.host, "count", n)
		}
	}
	if x.reports != nil {
		if n, m := x.reports.dropped.Load(), x.reports.malformed.Load(); n+m > 0 {
			x.log.Warn("lambdarasp reports lost", "dropped", n, "malformed", m)
		}
	}
	if x.relay != nil {
		x.exportMetrics(x.cfg.Now())
		x.relay.drain(ctx)
		if n, d := x.relay.pending(), x.relay.droppedCount(); n > 0 || d != [len(signals)]int64{} {
			x.log.Warn("lambdarasp OTLP requests not delivered", "pending", n, "dropped_traces", d[0], "dropped_metrics", d[1], "dropped_logs", d[2])
		}
	}
	if t := x.telemetry; t != nil && t.dropped.Load()+t.refused.Load() > 0 {
		x.log.Warn("lambdarasp telemetry records lost", "dropped", t.dropped.Load(), "refused_batches", t.refused.Load())
	}
}
