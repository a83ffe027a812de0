package extension

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// hookServer is a test webhook on 127.0.0.1 that fails its first fail
// requests with 503, then records the bodies.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	fail     int
	attempts int
	bodies   []string
}

func newHook(t *testing.T, fail int) *hookServer {
	h := &hookServer{fail: fail}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.attempts++
		if h.attempts <= h.fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.bodies = append(h.bodies, string(b))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// dialReports is the wrapper's side of cfg's report address, once the
// extension listens there.
func dialReports(t *testing.T, cfg Config) *report.Sender {
	t.Helper()
	s, err := report.Dial(cfg.ReportAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	eventually(t, "the extension listens", s.Hello)
	return s
}

// blocked is a report of an SQL injection blocked by the wrapper.
// blockedInvoker invokes the function once per call, with a report of a
// blocked request from ip, and waits until the extension is done with it:
// one at a time, as Lambda sends them. Reports that run more than a few
// invocations ahead are not matched (ext.recent), and the INVOKE would
// wait for its report until its deadline (about 3 s).
func blockedInvoker(t *testing.T, f *fakeAPI, s *report.Sender) func(id, ip string) {
	invokes := 0
	return func(id, ip string) {
		t.Helper()
		f.invoke(id)
		s.Send(blocked(id, ip))
		invokes++
		eventually(t, "the extension is done with "+id, f.waiting(invokes+1))
	}
}

func blocked(id, ip string) *report.Report {
	return &report.Report{RequestID: id, Source: "apigw-http", Action: report.Block, Rules: []int{942100},
		Records: 1, BlockedRecords: 1, DurationMicros: 900, ClientIP: ip}
}

// An alert raised just before SHUTDOWN — from reports that arrive while
// the extension waits in next — still reaches the webhook, through a
// failed first attempt, before the deadline.
func TestAlertBeforeShutdownReachesWebhook(t *testing.T) {
	f := newFakeAPI(t)
	hook := newHook(t, 1)
	var stdout, logs syncBuffer
	cfg := testConfig(t, f, &stdout, &logs)
	cfg.WebhookURL = hook.URL + "/secret-token"
	done := run(t, cfg)
	s := dialReports(t, cfg)
	f.invoke("r0")
	s.Send(&report.Report{RequestID: "r0", Source: "apigw-http", Records: 1, DurationMicros: 800})
	eventually(t, "the extension is done with r0", f.waiting(2))
	for i := range 10 {
		s.Send(blocked(fmt.Sprintf("r%d", i+1), fmt.Sprintf("198.51.100.%d", i)))
	}
	time.Sleep(20 * time.Millisecond) // the datagrams land; the extension sits in next
	deadline := time.Now().Add(2 * time.Second)
	f.shutdown(deadline)
	if err := wait(t, done, 3*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if time.Now().After(deadline) {
		t.Errorf("Run returned after the SHUTDOWN deadline")
	}
	got := hook.received()
	if len(got) != 1 || !strings.Contains(got[0], `"type":"attack_wave"`) || !strings.Contains(got[0], `"source":"lambdarasp"`) {
		t.Fatalf("webhook received %q; want the attack_wave alert", got)
	}
	if hook.attempts != 2 {
		t.Errorf("%d webhook attempts, want 2 (one 503, one success)", hook.attempts)
	}
	if !strings.Contains(stdout.String(), `"AnomalyType":"attack_wave"`) {
		t.Errorf("no alert line on stdout:\n%s", stdout.String())
	}
	if strings.Contains(logs.String(), "secret-token") || strings.Contains(stdout.String(), "secret-token") {
		t.Error("the webhook URL's secret reached the logs")
	}
}

// The policy turns anomalies into decisions the wrapper can read at once.
func TestPolicyPublishesDecisions(t *testing.T) {
	f := newFakeAPI(t)
	var stdout, logs syncBuffer
	cfg := testConfig(t, f, &stdout, &logs)
	policy := `{"version":1,"rules":[{"anomaly":"attack_wave","action":"quarantine","ttl":"1m"},{"anomaly":"attacker","action":"block_ip","ttl":"15m"}],"block_ip_after":3}`
	if err := os.WriteFile(cfg.PolicyFile, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	done := run(t, cfg)
	s := dialReports(t, cfg)

	// Each INVOKE waits for its report: the decision is out before next.
	invoke := blockedInvoker(t, f, s)
	for i := range 3 {
		invoke(fmt.Sprintf("a%d", i), "203.0.113.66")
	}
	eventually(t, "attacker blocked", func() bool {
		d, _ := decision.Read(cfg.DecisionsFile)
		return len(d.BlockedIPs) == 1 && d.BlockedIPs[0].IP == "203.0.113.66" && d.Quarantine == nil
	})
	for i := range 10 {
		invoke(fmt.Sprintf("w%d", i), fmt.Sprintf("198.51.100.%d", i))
	}
	eventually(t, "quarantine", func() bool {
		d, _ := decision.Read(cfg.DecisionsFile)
		return d.Quarantine != nil && d.Quarantine.Reason == "attack_wave" && d.Quarantine.Until.After(time.Now().Add(50*time.Second))
	})
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if strings.Contains(l, `"attack_wave"`) {
			json.Unmarshal([]byte(l), &line)
		}
	}
	if a, _ := line["action"].(string); !strings.HasPrefix(a, "quarantine until ") {
		t.Errorf("alert line does not say what was done: %v", line)
	}
	f.shutdown(time.Now().Add(2 * time.Second))
	if err := wait(t, done, 3*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidPolicyIsAnInitError(t *testing.T) {
	f := newFakeAPI(t)
	var stdout, logs syncBuffer
	cfg := testConfig(t, f, &stdout, &logs)
	os.WriteFile(cfg.PolicyFile, []byte(`{"version":1,"rules":[{"anomaly":"atack_wave","action":"quarantine","ttl":"1m"}]}`), 0o644)
	err := wait(t, run(t, cfg), 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), "atack_wave") {
		t.Fatalf("Run: %v; want the policy error", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errors) != 1 || f.errors[0] != "Extension.ConfigError" {
		t.Errorf("errors posted: %v; want one Extension.ConfigError init error", f.errors)
	}
}

func TestInvalidVariableIsAnInitError(t *testing.T) {
	f := newFakeAPI(t)
	env := map[string]string{envRuntimeAPI: f.addr(), envReportWait: "1s", envWebhook: "ftp://user:pw@host/"}
	cfg := FromEnv(func(k string) string { return env[k] })
	err := wait(t, run(t, cfg), 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), envReportWait) {
		t.Fatalf("Run: %v; want the variable named", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errors) != 1 {
		t.Errorf("errors posted: %v; want one init error", f.errors)
	}
}

// A refused telemetry subscription is said once, and the extension goes
// on from the wrapper's reports.
func TestTelemetryRefused(t *testing.T) {
	f := newFakeAPI(t)
	f.refuse = true
	var stdout, logs syncBuffer
	cfg := testConfig(t, f, &stdout, &logs)
	done := run(t, cfg)
	invoke := blockedInvoker(t, f, dialReports(t, cfg))
	for i := range 10 {
		invoke(fmt.Sprintf("w%d", i), fmt.Sprintf("198.51.100.%d", i))
	}
	f.shutdown(time.Now().Add(2 * time.Second))
	if err := wait(t, done, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "telemetry subscription refused"); n != 1 {
		t.Errorf("%d 'refused' lines, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(stdout.String(), `"AnomalyType":"attack_wave"`) {
		t.Error("no anomaly from the reports without telemetry")
	}
}

// Telemetry delivered to the listener reaches the detectors: a timeout
// is an anomaly.
func TestTelemetryTimeout(t *testing.T) {
	f := newFakeAPI(t)
	var stdout, logs syncBuffer
	cfg := testConfig(t, f, &stdout, &logs)
	done := run(t, cfg)
	eventually(t, "subscribed", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.subscribed) == 1 })
	f.mu.Lock()
	uri := strings.Replace(f.subscribed[0], "sandbox.localdomain", "127.0.0.1", 1)
	f.mu.Unlock()
	if !strings.HasPrefix(f.subscribed[0], "http://sandbox.localdomain:") {
		t.Errorf("subscribed %s; Lambda wants http://sandbox.localdomain:PORT", f.subscribed[0])
	}
	batch := `[{"time":"2026-01-02T15:00:00.000Z","type":"platform.start","record":{"requestId":"t1"}},
	  {"time":"2026-01-02T15:00:03.000Z","type":"platform.runtimeDone","record":{"requestId":"t1","status":"timeout","metrics":{"durationMs":3000}}},
	  {"time":"2026-01-02T15:00:03.001Z","type":"platform.report","record":{"requestId":"t1","status":"timeout","metrics":{"durationMs":3000.5,"billedDurationMs":3001,"memorySizeMB":128,"maxMemoryUsedMB":40}}}]`
	resp, err := http.Post(uri, "application/json", strings.NewReader(batch))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("listener answered %d", resp.StatusCode)
	}
	f.shutdown(time.Now().Add(2 * time.Second))
	if err := wait(t, done, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), `"AnomalyType":"timeout"`) || !strings.Contains(stdout.String(), `"request_id":"t1"`) {
		t.Errorf("no timeout alert:\n%s", stdout.String())
	}
}

// Decisions that still hold survive a restart of the extension; the
// policy's standing quarantine is published from init.
func TestRestoreDecisions(t *testing.T) {
	f := newFakeAPI(t)
	var stdout, logs syncBuffer
	cfg := testConfig(t, f, &stdout, &logs)
	now := time.Now()
	decision.Write(cfg.DecisionsFile, decision.Decisions{
		BlockedIPs: []decision.BlockedIP{{IP: "203.0.113.66", Until: now.Add(time.Hour)}, {IP: "203.0.113.67", Until: now.Add(-time.Minute)}},
	})
	until := now.Add(2 * time.Hour).UTC().Truncate(time.Second)
	os.WriteFile(cfg.PolicyFile, []byte(`{"version":1,"rules":[],"quarantine_until":"`+until.Format(time.RFC3339)+`"}`), 0o644)
	done := run(t, cfg)
	eventually(t, "decisions published", func() bool {
		d, _ := decision.Read(cfg.DecisionsFile)
		return d.Quarantine != nil
	})
	d, _ := decision.Read(cfg.DecisionsFile)
	if !d.Quarantine.Until.Equal(until) || d.Quarantine.Reason != "policy" || len(d.BlockedIPs) != 1 || d.BlockedIPs[0].IP != "203.0.113.66" {
		t.Errorf("published %+v", d)
	}
	f.shutdown(time.Now().Add(2 * time.Second))
	wait(t, done, 3*time.Second)
}

// A handler slower than ReportWait still has its report judged before
// next: the extension waits while the runtime works. When the runtime
// ends without a report (a crash), it waits ReportWait more, not longer.
func TestWaitsForSlowReport(t *testing.T) {
	f := newFakeAPI(t)
	var stdout, logs syncBuffer
	cfg := testConfig(t, f, &stdout, &logs)
	done := run(t, cfg)
	s := dialReports(t, cfg)
	eventually(t, "subscribed", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.subscribed) == 1 })
	f.mu.Lock()
	uri := strings.Replace(f.subscribed[0], "sandbox.localdomain", "127.0.0.1", 1)
	f.mu.Unlock()

	// A first invocation shows the extension that a wrapper reports.
	f.invoke("first")
	s.Send(&report.Report{RequestID: "first", Source: "apigw-http", Records: 1, DurationMicros: 1000})
	eventually(t, "next after the first report", f.waiting(2))

	f.invoke("slow")
	time.Sleep(100 * time.Millisecond) // the handler works
	if f.waiting(3)() {
		t.Fatal("the extension called next before the slow invocation's report")
	}
	s.Send(&report.Report{RequestID: "slow", Source: "apigw-http", Records: 1, DurationMicros: 100000})
	eventually(t, "next after the report", f.waiting(3))

	f.invoke("crash")
	start := time.Now()
	batch := `[{"time":"2026-01-02T15:00:03.000Z","type":"platform.runtimeDone","record":{"requestId":"crash","status":"failure","metrics":{"durationMs":3}}}]`
	resp, err := http.Post(uri, "application/json", strings.NewReader(batch))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	eventually(t, "next after the crash", f.waiting(4))
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("next %v after a crash without report; want about ReportWait", d)
	}
	f.shutdown(time.Now().Add(2 * time.Second))
	if err := wait(t, done, 3*time.Second); err != nil {
		t.Fatal(err)
	}
}
