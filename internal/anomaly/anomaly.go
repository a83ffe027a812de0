package anomaly

import (
	"fmt"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/report"
)

// Type names an anomaly. The values are stable: they appear in alerts,
// metrics and policies.
type Type string

// The anomaly types, one per detector.
const (
	Duration       Type = "duration"
	Timeout        Type = "timeout"
	ErrorRate      Type = "error_rate"
	Memory         Type = "memory"
	InvocationRate Type = "invocation_rate"
	AttackWave     Type = "attack_wave"
	Attacker       Type = "attacker"
	NewDestination Type = "egress_new_destination"
	CallJump       Type = "egress_call_jump"
)

// Types lists every anomaly type, in the order of the package comment.
var Types = []Type{Duration, Timeout, ErrorRate, Memory, InvocationRate, AttackWave, Attacker, NewDestination, CallJump}

// Severity grades an anomaly.
type Severity string

// The severities, least to most severe.
const (
	Low    Severity = "low"
	Medium Severity = "medium"
	High   Severity = "high"
)

// Rank orders severities: 1 (low) to 3 (high), 0 for anything else.
func (s Severity) Rank() int {
	switch s {
	case Low:
		return 1
	case Medium:
		return 2
	case High:
		return 3
	}
	return 0
}

// Anomaly is one departure from the learned behaviour.
type Anomaly struct {
	Type     Type
	Severity Severity
	At       time.Time
	// RequestID is the invocation that completed the evidence.
	RequestID string
	// Subject is what the anomaly is about when it is not the function as
	// a whole: a client IP (attacker), a destination "host:port" (egress).
	Subject string
	// Values are the numbers that triggered it, by name: "duration_ms",
	// "baseline_ms", "threshold_ms", …
	Values map[string]float64
	// Message says it in one sentence, without payload data.
	Message string
}

// Key identifies anomalies that are the same thing happening again: the
// type, and the subject if any.
func (a Anomaly) Key() string {
	if a.Subject == "" {
		return string(a.Type)
	}
	return string(a.Type) + " " + a.Subject
}

// Config holds the detectors' thresholds. A zero field takes the default
// written beside it.
type Config struct {
	Warmup int // 20: invocations (or samples) learned before duration, memory and rate detectors judge

	DurationSlowOf     int           // 4: slow invocations among the last DurationWindow that fire
	DurationWindow     int           // 6
	DurationMADs       float64       // 6: robust z-score above the median
	DurationFactor     float64       // 2: and at least this many times the median
	DurationFloorMs    float64       // 5: and at least this many ms above the median
	ErrorWindow        int           // 20: invocations in the error-rate window
	ErrorFloor         int           // 6: errors in the window, at the least, that fire
	ErrorFactor        float64       // 3: times the learned error rate
	MemoryGrowthMB     int           // 16: MB above the learned level, at the least
	MemoryGrowthFactor float64       // 1.25: and this many times the learned level
	MemoryLimitShare   float64       // 0.9: of the memory size, always an anomaly
	RateFactor         float64       // 5: times the learned rate
	RateFloor          float64       // 1: invocations a second, at the least
	WaveBlocked        int           // 10: blocked events …
	WaveWindow         time.Duration // 60s: … within this window
	AttackerBlocked    int           // 5: blocked events from one client IP …
	AttackerWindow     time.Duration // 10m: … within this window
	EgressLearning     int           // 50: reports during which destinations are learned
	EgressCallFactor   float64       // 3: times the median outbound calls per invocation
	EgressCallFloor    int           // 5: and at least this many calls above it
}

func (c *Config) defaults() {
	setInt(&c.Warmup, 20)
	setInt(&c.DurationSlowOf, 4)
	setInt(&c.DurationWindow, 6)
	setFloat(&c.DurationMADs, 6)
	setFloat(&c.DurationFactor, 2)
	setFloat(&c.DurationFloorMs, 5)
	setInt(&c.ErrorWindow, 20)
	setInt(&c.ErrorFloor, 6)
	setFloat(&c.ErrorFactor, 3)
	setInt(&c.MemoryGrowthMB, 16)
	setFloat(&c.MemoryGrowthFactor, 1.25)
	setFloat(&c.MemoryLimitShare, 0.9)
	setFloat(&c.RateFactor, 5)
	setFloat(&c.RateFloor, 1)
	setInt(&c.WaveBlocked, 10)
	setDuration(&c.WaveWindow, time.Minute)
	setInt(&c.AttackerBlocked, defaultAttackerBlocked)
	setDuration(&c.AttackerWindow, 10*time.Minute)
	setInt(&c.EgressLearning, 50)
	setFloat(&c.EgressCallFactor, 3)
	setInt(&c.EgressCallFloor, 5)
	c.DurationWindow = min(c.DurationWindow, maxRecent)
	c.DurationSlowOf = min(c.DurationSlowOf, c.DurationWindow)
	c.ErrorWindow = min(c.ErrorWindow, maxErrorWindow)
	c.ErrorFloor = min(c.ErrorFloor, c.ErrorWindow)
	c.WaveBlocked = min(c.WaveBlocked, maxWave)
}

func setInt(p *int, v int) {
	if *p <= 0 {
		*p = v
	}
}

func setFloat(p *float64, v float64) {
	if *p <= 0 {
		*p = v
	}
}

func setDuration(p *time.Duration, v time.Duration) {
	if *p <= 0 {
		*p = v
	}
}

// Detector runs every detector over one execution environment's
// observations. It is not safe for concurrent use: the extension feeds it
// from one goroutine.
type Detector struct {
	cfg Config

	wrapper  bool // a report has arrived: durations and errors come from reports
	runtimes int  // runtimeDone records seen

	duration durationDetector
	errors   errorDetector
	memory   memoryDetector
	rate     rateDetector
	wave     waveDetector
	attacker attackerDetector
	egress   egressDetector
}

// New returns a Detector with cfg's thresholds.
func New(cfg Config) *Detector {
	cfg.defaults()
	d := &Detector{cfg: cfg}
	d.attacker.ips = map[string]*ipRecord{}
	d.egress.known = map[string]bool{}
	return d
}

// SetAttackerBlocked changes how many blocked events from one client IP
// make an attacker (n ≤ 0: the default), keeping everything learned.
func (d *Detector) SetAttackerBlocked(n int) {
	d.cfg.AttackerBlocked = n
	setInt(&d.cfg.AttackerBlocked, defaultAttackerBlocked)
}

const defaultAttackerBlocked = 5

// Invoked observes the start of an invocation (the INVOKE event).
func (d *Detector) Invoked(now time.Time, requestID string) []Anomaly {
	return appendIf(nil, d.rate.observe(&d.cfg, now, requestID))
}

// Reported observes protect.Handler's report of an invocation.
func (d *Detector) Reported(now time.Time, r report.Report) []Anomaly {
	d.wrapper = true
	var out []Anomaly
	if !r.ColdStart && r.Action != report.Quarantine && r.Action != report.BlockedIP {
		out = appendIf(out, d.duration.observe(&d.cfg, now, r.RequestID, float64(r.DurationMicros)/1000))
	}
	failed := r.ErrorType != "" && r.ErrorType != blockedErrorType
	out = appendIf(out, d.errors.observe(&d.cfg, now, r.RequestID, failed))
	if r.Action.Blocked() {
		out = appendIf(out, d.wave.observe(&d.cfg, now, r.RequestID))
		if r.ClientIP != "" {
			out = appendIf(out, d.attacker.observe(&d.cfg, now, r.RequestID, r.ClientIP))
		}
	}
	return append(out, d.egress.observe(&d.cfg, now, r)...)
}

// blockedErrorType is protect.BlockedErrorType: a refusal, not an error.
const blockedErrorType = "lambdarasp.Blocked"

// RuntimeDone observes platform.runtimeDone: how the runtime ended the
// invocation ("success", "error", "failure", "timeout") and how long it
// took.
func (d *Detector) RuntimeDone(now time.Time, requestID, status string, durationMs float64) []Anomaly {
	d.runtimes++
	var out []Anomaly
	if status == "timeout" {
		out = append(out, Anomaly{Type: Timeout, Severity: High, At: now, RequestID: requestID,
			Values:  map[string]float64{"duration_ms": durationMs},
			Message: fmt.Sprintf("invocation timed out after %.0f ms", durationMs)})
	}
	if d.wrapper {
		// Reports carry the durations and the handler's errors; only what
		// the wrapper cannot report (a crash, a timeout) counts here.
		if status == "timeout" || status == "failure" {
			out = appendIf(out, d.errors.observe(&d.cfg, now, requestID, true))
		}
		return out
	}
	if d.runtimes > 1 && status == "success" {
		out = appendIf(out, d.duration.observe(&d.cfg, now, requestID, durationMs))
	}
	return appendIf(out, d.errors.observe(&d.cfg, now, requestID, status != "success"))
}

// PlatformReport observes platform.report: the invocation's peak memory
// and the function's memory size.
func (d *Detector) PlatformReport(now time.Time, requestID string, maxMemoryUsedMB, memorySizeMB int) []Anomaly {
	return appendIf(nil, d.memory.observe(&d.cfg, now, requestID, maxMemoryUsedMB, memorySizeMB))
}

func appendIf(out []Anomaly, a *Anomaly) []Anomaly {
	if a != nil {
		out = append(out, *a)
	}
	return out
}
