package extension

import (
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
	requests int
	notMod   int
}

func newPolicyServer(t *testing.T, body string) *policyServer {
	p := &policyServer{body: body, etag: `"v1"`, status: 200}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	if n := strings.Count(stdout.String(), `"AnomalyType":"policy_source"`); n != 1 {
		t.Errorf("%d policy_source alerts, want 1:\n%s", n, stdout.String())
	}
	if quarantined() {
		t.Error("a broken policy changed the decisions")
	}
	if strings.Contains(stdout.String()+logs.String(), "secret-token") {
		t.Error("the policy URL's secret reached the logs")
	}
	f.shutdown(time.Now().Add(2 * time.Second))
	if err := wait(t, done, 3*time.Second); err != nil {
		t.Fatal(err)
	}
}
