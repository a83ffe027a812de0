package extension

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/decision"
)

// policyServer serves a policy with an ETag, answers 304 to a matching
// If-None-Match, and counts requests.
type policyServer struct {
	*httptest.Server
	mu       sync.Mutex
	body     string
	etag     string
	status   int
	delay    time.Duration // before answering
	requests int
	notMod   int
}

func newPolicyServer(t *testing.T, body string) *policyServer {
	p := &policyServer{body: body, etag: `"v1"`, status: 200}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		delay := p.delay
		p.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.requests++
		if p.status != 200 {
			w.WriteHeader(p.status)
			return
		}
		if r.Header.Get("If-None-Match") == p.etag {
			p.notMod++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", p.etag)
		w.Write([]byte(p.body))
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *policyServer) set(body, etag string, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.body, p.etag, p.status = body, etag, status
}

// A fleet quarantine set and lifted from a policy server, without a
// redeploy; a broken source keeps the last good policy and alerts once.
func TestPolicySource(t *testing.T) {
	f := newFakeAPI(t)
	var stdout, logs syncBuffer
	cfg := testConfig(t, f, &stdout, &logs)
	var clock atomic.Int64
	start := time.Now()
	clock.Store(start.UnixNano())
	cfg.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	until := start.Add(time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	srv := newPolicyServer(t, `{"version":1,"rules":[],"quarantine_until":"`+until+`"}`)
	cfg.PolicyURL = srv.URL + "/applications/orders/environments/prod/configurations/lambdarasp?token=secret-token"
	cfg.PolicyPoll = time.Minute

	quarantined := func() bool {
		d, _ := decision.Read(cfg.DecisionsFile)
		return d.Quarantine != nil && d.Quarantine.Reason == reasonPolicy
	}
	done := run(t, cfg)
	eventually(t, "the fleet quarantine published at init", quarantined)

	// Not due yet: no request. Then due, unchanged: 304.
	f.invoke("r1")
	eventually(t, "r1 served", f.waiting(2))
	advance(time.Minute)
	f.invoke("r2")
	eventually(t, "r2 served", f.waiting(3))
	srv.mu.Lock()
	if srv.requests != 2 || srv.notMod != 1 {
		t.Errorf("%d requests, %d answered 304; want 2 and 1", srv.requests, srv.notMod)
	}
	srv.mu.Unlock()

	// The security team lifts it.
	srv.set(`{"version":1,"rules":[]}`, `"v2"`, 200)
	advance(time.Minute)
	f.invoke("r3")
	eventually(t, "the quarantine lifted", func() bool { return f.waiting(4)() && !quarantined() })

	// A broken policy, then an unreachable source: the last good policy
	// stays, one alert.
	srv.set(`{"version":1,"rules":[{"anomaly":"*","action":"quarantine"}]}`, `"v3"`, 200)
	advance(time.Minute)
	f.invoke("r4")
	eventually(t, "r4 served", f.waiting(5))
	srv.set("", `"v4"`, 503)
	advance(time.Minute)
	f.invoke("r5")
	eventually(t, "r5 served", f.waiting(6))
	if quarantined() {
		t.Error("a broken policy changed the decisions")
	}

	// The source works again and quarantines the fleet; then it answers
	// 500, garbage, a policy past 1 MiB, and not at all: each poll ends
	// within its second, the invocation is served, the last good policy
	// (the quarantine) stays, and the failure is said once more.
	srv.set(`{"version":1,"rules":[],"quarantine_until":"`+until+`"}`, `"v5"`, 200)
	advance(time.Minute)
	f.invoke("r6")
	eventually(t, "the quarantine set again", func() bool { return f.waiting(7)() && quarantined() })
	huge := `{"version":1,"rules":[` + strings.Repeat(`{"anomaly":"*","action":"alert"},`, maxPolicyBytes/32) + `{"anomaly":"*","action":"alert"}]}`
	for i, c := range []struct {
		body   string
		status int
		delay  time.Duration
	}{
		{"", 500, 0},
		{"\x00<html>not a policy", 200, 0},
		{huge, 200, 0},
		{`{"version":1,"rules":[]}`, 200, 10 * time.Second},
	} {
		srv.set(c.body, fmt.Sprintf(`"bad%d"`, i), c.status)
		srv.mu.Lock()
		srv.delay = c.delay
		srv.mu.Unlock()
		advance(time.Minute)
		start := time.Now()
		f.invoke(fmt.Sprintf("bad%d", i))
		eventually(t, "served with a bad policy source", f.waiting(8+i))
		if d := time.Since(start); d > pollTimeout+time.Second {
			t.Errorf("bad source %d: the invocation took %v; want the poll cut at %v", i, d, pollTimeout)
		}
	}
	// Alerts of one type within 5 minutes are counted, not re-sent.
	if n := strings.Count(stdout.String(), `"AnomalyType":"policy_source"`); n != 1 {
		t.Errorf("%d policy_source alerts, want 1:\n%s", n, stdout.String())
	}
	if n := strings.Count(logs.String(), "lambdarasp policy source unusable"); n != 2 {
		t.Errorf("%d 'policy source unusable' lines, want 2 (one per failure)", n)
	}
	if !quarantined() {
		t.Error("a failing source lifted the last good policy's quarantine")
	}
	if strings.Contains(stdout.String()+logs.String(), "secret-token") {
		t.Error("the policy URL's secret reached the logs")
	}
	f.shutdown(time.Now().Add(2 * time.Second))
	if err := wait(t, done, 3*time.Second); err != nil {
		t.Fatal(err)
	}
}
