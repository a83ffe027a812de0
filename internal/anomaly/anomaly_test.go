package anomaly

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/report"
)

// invocation is what the extension observes of one invocation.
type invocation struct {
	gap        time.Duration // since the previous one started
	durationMs float64
	failed     bool
	status     string // runtimeDone status; "" means success, or error when failed
	memoryMB   int
	blocked    bool
	clientIP   string
	outbound   []report.Outbound
}

// env plays one execution environment: a fake clock and the order in
// which the extension sees an invocation (INVOKE, the wrapper's report,
// then telemetry).
type env struct {
	d       *Detector
	now     time.Time
	n       int
	wrapper bool
	memSize int
}

func newEnv(wrapper bool) *env {
	return &env{d: New(Config{}), now: time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC), wrapper: wrapper, memSize: 512}
}

func (e *env) run(inv invocation) []Anomaly {
	e.n++
	e.now = e.now.Add(inv.gap)
	id := fmt.Sprintf("req-%d", e.n)
	out := e.d.Invoked(e.now, id)
	end := e.now.Add(time.Duration(inv.durationMs * float64(time.Millisecond)))
	status := inv.status
	if status == "" {
		status = "success"
		if inv.failed || inv.blocked {
			status = "error"
		}
	}
	if e.wrapper && status != "timeout" {
		r := report.Report{RequestID: id, Source: "apigw-http", Records: 1, DurationMicros: int64(inv.durationMs * 1000),
			ColdStart: e.n == 1, ClientIP: inv.clientIP, Outbound: inv.outbound}
		if inv.failed {
			r.ErrorType = "errorString"
		}
		if inv.blocked {
			r.Action, r.BlockedRecords, r.Rules, r.ErrorType = report.Block, 1, []int{942100}, ""
		}
		out = append(out, e.d.Reported(end, r)...)
	}
	out = append(out, e.d.RuntimeDone(end, id, status, inv.durationMs+0.3)...)
	return append(out, e.d.PlatformReport(end, id, inv.memoryMB, e.memSize)...)
}

// benign is steady traffic with the jitter real functions show: arrivals
// about a second apart (±40%), durations log-normal around 40 ms with a 1%
// chance of a 3x straggler, 1% errors, memory 60 MB ± 3, one or two
// calls to known destinations, and now and then a blocked scanner.
func benign(rng *rand.Rand) invocation {
	inv := invocation{
		gap:        time.Duration((0.6 + 0.8*rng.Float64()) * float64(time.Second)),
		durationMs: 40 * math.Exp(0.15*rng.NormFloat64()),
		failed:     rng.Float64() < 0.01,
		memoryMB:   57 + rng.IntN(7),
		clientIP:   fmt.Sprintf("198.51.100.%d", rng.IntN(250)),
		outbound:   []report.Outbound{{Host: "dynamodb.eu-west-1.amazonaws.com", Port: 443, Calls: 1 + rng.IntN(2)}},
	}
	if rng.Float64() < 0.01 {
		inv.durationMs *= 3
	}
	if rng.Float64() < 0.3 {
		inv.outbound = append(inv.outbound, report.Outbound{Host: "api.stripe.com", Port: 443, Calls: 1})
	}
	if rng.Float64() < 0.005 {
		inv.blocked = true
	}
	return inv
}

func TestSteadyTrafficRaisesNothing(t *testing.T) {
	for _, wrapper := range []bool{true, false} {
		for seed := range uint64(5) {
			rng := rand.New(rand.NewPCG(seed, 1))
			e := newEnv(wrapper)
			for i := range 1000 {
				if got := e.run(benign(rng)); len(got) > 0 {
					t.Errorf("wrapper %v, seed %d, invocation %d: %d anomalies, first %s: %s %v",
						wrapper, seed, i+1, len(got), got[0].Type, got[0].Message, got[0].Values)
					break
				}
			}
		}
	}
}

// Each detector catches its anomaly within 20 invocations of its start,
// after 100 invocations of steady traffic.
func TestEachAnomalyCaught(t *testing.T) {
	cases := []struct {
		want     Type
		severity Severity
		wrapper  bool
		inject   func(i int, inv *invocation)
	}{
		{Duration, Medium, true, func(_ int, inv *invocation) { inv.durationMs *= 5 }},
		{Duration, Medium, false, func(_ int, inv *invocation) { inv.durationMs *= 5 }},
		{Timeout, High, true, func(i int, inv *invocation) {
			if i == 3 {
				inv.status, inv.durationMs = "timeout", 3000
			}
		}},
		{ErrorRate, Medium, true, func(_ int, inv *invocation) { inv.failed = true }},
		{ErrorRate, Medium, false, func(_ int, inv *invocation) { inv.failed = true }},
		{ErrorRate, Medium, true, func(_ int, inv *invocation) { inv.status = "failure" }}, // crashes: no report
		{Memory, Medium, true, func(i int, inv *invocation) { inv.memoryMB = 60 + 4*(i+1) }},
		{Memory, High, true, func(i int, inv *invocation) {
			if i == 5 {
				inv.memoryMB = 470
			}
		}},
		{InvocationRate, Medium, true, func(_ int, inv *invocation) { inv.gap /= 20 }},
		{AttackWave, High, true, func(i int, inv *invocation) { inv.blocked = true; inv.clientIP = fmt.Sprintf("203.0.113.%d", i) }},
		{Attacker, High, true, func(i int, inv *invocation) {
			if i%2 == 0 {
				inv.blocked, inv.clientIP = true, "203.0.113.66"
			}
		}},
		{NewDestination, High, true, func(i int, inv *invocation) {
			if i == 7 {
				inv.outbound = append(inv.outbound, report.Outbound{Host: "exfil.example", Port: 8443, Calls: 1})
			}
		}},
		{CallJump, Medium, true, func(i int, inv *invocation) {
			if i == 2 {
				inv.outbound[0].Calls = 40
			}
		}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/wrapper=%v", c.want, c.wrapper), func(t *testing.T) {
			for seed := range uint64(3) {
				rng := rand.New(rand.NewPCG(seed, 2))
				e := newEnv(c.wrapper)
				for i := range 100 {
					if got := e.run(benign(rng)); len(got) > 0 {
						t.Fatalf("seed %d: steady invocation %d raised %s", seed, i+1, got[0].Type)
					}
				}
				caught := -1
				var a Anomaly
				for i := 0; i < 20 && caught < 0; i++ {
					inv := benign(rng)
					c.inject(i, &inv)
					for _, got := range e.run(inv) {
						if got.Type == c.want {
							caught, a = i+1, got
						}
					}
				}
				if caught < 0 {
					t.Fatalf("seed %d: %s not caught within 20 invocations", seed, c.want)
				}
				if a.RequestID == "" || len(a.Values) == 0 || a.Message == "" || a.At.IsZero() {
					t.Errorf("seed %d: incomplete anomaly %+v", seed, a)
				}
				if a.Severity != c.severity {
					t.Errorf("seed %d: severity %s, want %s", seed, a.Severity, c.severity)
				}
				t.Logf("seed %d: caught at injected invocation %d: %s", seed, caught, a.Message)
			}
		})
	}
}

// A call to a new destination that the wrapper refused says so.
func TestNewDestinationRefused(t *testing.T) {
	d := New(Config{EgressLearning: 1})
	t0 := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	d.Reported(t0, report.Report{RequestID: "r1"})
	got := d.Reported(t0, report.Report{RequestID: "r2", Outbound: []report.Outbound{{Host: "169.254.169.254", Port: 80, Calls: 1, Errors: 1, Denied: 1}}})
	if len(got) != 1 || got[0].Values["denied"] != 1 || !strings.HasSuffix(got[0].Message, "refused by the wrapper") {
		t.Errorf("anomalies %+v", got)
	}
}

// A lasting change raises one anomaly, not one per invocation.
func TestLastingChangeRaisesOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	e := newEnv(true)
	for range 100 {
		e.run(benign(rng))
	}
	counts := map[Type]int{}
	for range 200 {
		inv := benign(rng)
		inv.durationMs *= 5
		inv.failed = true
		for _, a := range e.run(inv) {
			counts[a.Type]++
		}
	}
	if counts[Duration] != 1 || counts[ErrorRate] != 1 {
		t.Errorf("200 slow, failing invocations raised %v; want one duration and one error_rate", counts)
	}
}

func TestAttackerTableIsBounded(t *testing.T) {
	e := newEnv(true)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 5 * maxIPs {
		inv := benign(rng)
		inv.blocked, inv.clientIP = true, fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		inv.gap = 20 * time.Second // no wave
		e.run(inv)
	}
	if n := len(e.d.attacker.ips); n > maxIPs {
		t.Errorf("%d client IPs tracked, more than %d", n, maxIPs)
	}
}

// The detectors' windows, latches and floors, one scripted sequence of
// observations each, counted by type.
func TestDetectorLimits(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	blocked := func(ip string) report.Report {
		return report.Report{RequestID: "r", Source: "apigw-http", Action: report.Block, Records: 1, BlockedRecords: 1, ClientIP: ip}
	}
	// invocations starts n invocations gap apart from *at.
	invocations := func(d *Detector, at *time.Time, n int, gap time.Duration) (out []Anomaly) {
		for range n {
			*at = at.Add(gap)
			out = append(out, d.Invoked(*at, "r")...)
		}
		return out
	}
	// memory reports 20 invocations using 60 MB of 512, then 5 using mb.
	memory := func(d *Detector, mb int) (out []Anomaly) {
		for i := range 25 {
			used := 60
			if i >= 20 {
				used = mb
			}
			out = append(out, d.PlatformReport(t0, "r", used, 512)...)
		}
		return out
	}
	for _, c := range []struct {
		name     string
		want     Type
		n        int
		severity Severity // of the last one, when n > 0
		run      func(d *Detector) []Anomaly
	}{
		{"a wave needs its window", AttackWave, 0, "", func(d *Detector) (out []Anomaly) {
			for i := range 20 { // 10 span 63 s
				out = append(out, d.Reported(t0.Add(time.Duration(i)*7*time.Second), blocked(""))...)
			}
			return out
		}},
		{"the next wave needs as many again", AttackWave, 2, High, func(d *Detector) (out []Anomaly) {
			for i := range 20 {
				out = append(out, d.Reported(t0.Add(time.Duration(i)*time.Second), blocked(""))...)
			}
			return out
		}},
		{"an attacker's count restarts after its window", Attacker, 0, "", func(d *Detector) (out []Anomaly) {
			for i := range 8 { // 4, then 4 more 14 minutes on
				at := t0.Add(time.Duration(i%4)*time.Minute + time.Duration(i/4)*14*time.Minute)
				out = append(out, d.Reported(at, blocked("203.0.113.66"))...)
			}
			return out
		}},
		{"an attacker's count restarts once alerted", Attacker, 1, High, func(d *Detector) (out []Anomaly) {
			for i := range 9 {
				out = append(out, d.Reported(t0.Add(time.Duration(i)*time.Minute), blocked("203.0.113.66"))...)
			}
			return out
		}},
		{"near the memory size: once", Memory, 1, High, func(d *Detector) []Anomaly { return memory(d, 470) }},
		{"grown memory becomes the baseline", Memory, 1, Medium, func(d *Detector) []Anomaly { return memory(d, 100) }},
		{"faster, but under the rate floor", InvocationRate, 0, "", func(d *Detector) []Anomaly {
			at := t0
			return append(invocations(d, &at, 30, time.Minute), invocations(d, &at, 20, 5*time.Second)...)
		}},
		{"a rate that came back fires again", InvocationRate, 2, Medium, func(d *Detector) (out []Anomaly) {
			at := t0
			for _, gap := range []time.Duration{2 * time.Second, 100 * time.Millisecond, 2 * time.Second, 100 * time.Millisecond} {
				out = append(out, invocations(d, &at, 20, gap)...)
			}
			return out
		}},
		// 20% errors learned: an outage fires at three times that, not at
		// the absolute floor.
		{"errors against the learned rate", ErrorRate, 1, High, func(d *Detector) (out []Anomaly) {
			for i := range 300 {
				failed := i%5 == 0 || i >= 280
				out = append(out, d.RuntimeDone(t0, "r", map[bool]string{false: "success", true: "error"}[failed], 40)...)
			}
			return out
		}},
	} {
		var got []Anomaly
		for _, a := range c.run(New(Config{})) {
			if a.Type == c.want {
				got = append(got, a)
			}
		}
		if len(got) != c.n {
			t.Errorf("%s: %d %s anomalies, want %d", c.name, len(got), c.want, c.n)
		} else if c.n > 0 && got[c.n-1].Severity != c.severity {
			t.Errorf("%s: severity %s, want %s", c.name, got[c.n-1].Severity, c.severity)
		}
	}
}
