package extension

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/anomaly"
	"github.com/lambdarasp/lambdarasp/internal/decision"
)

// FuzzParsePolicy holds a policy parsePolicy accepts to what it promises
// (version 1, a known action per rule, block_ip only for attackers,
// deny_destination only for new destinations, a TTL from 1s to 168h
// except for alerts) and to a round trip through encoding/json, and runs
// every anomaly type through the accepted policy: decide never panics and
// only ever adds decisions.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"rules":[]}`,
		`{"version":1,"rules":[{"anomaly":"*","min_severity":"high","action":"quarantine","ttl":"90s"},{"anomaly":"attacker","action":"block_ip","ttl":"15m"},{"anomaly":"egress_new_destination","action":"deny_destination","ttl":"1h"},{"anomaly":"duration","action":"alert"}],"block_ip_after":3}`,
		`{"version":1,"rules":[],"quarantine_until":"2026-12-01T18:00:00+01:00"}`,
		`{"version":1,"rules":[{"anomaly":"*","action":"quarantine","ttl":"400h"}]}`,
		`{"version":1,"rules":[{"anomaly":"*","action":"kill"}]}`,
		`{"version":1,"rules":[{"anomaly":"code_changed","action":"quarantine"},{"anomaly":"env_secret","action":"alert"}]}`,
	} {
		f.Add([]byte(s), "203.0.113.9")
	}
	if b, err := os.ReadFile("../examples/demo/policy.json"); err == nil {
		f.Add(b, "exfil.example:8443")
	}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	allTypes := slices.Concat(anomaly.Types, selfCheckTypes)
	f.Fuzz(func(t *testing.T, b []byte, subject string) {
		p, err := parsePolicy(b)
		if err != nil {
			return
		}
		if p.Version != 1 || p.BlockIPAfter < 0 {
			t.Fatalf("accepted version %d, block_ip_after %d", p.Version, p.BlockIPAfter)
		}
		for _, r := range p.Rules {
			if r.Anomaly != "*" && !slices.Contains(allTypes, anomaly.Type(r.Anomaly)) {
				t.Fatalf("accepted anomaly %q", r.Anomaly)
			}
			switch {
			case r.Action == actAlert:
			case r.Action != actQuarantine && r.Action != actBlockIP && r.Action != actDeny:
				t.Fatalf("accepted action %q", r.Action)
			case r.ttl < time.Second || r.ttl > maxTTL:
				t.Fatalf("accepted ttl %q (%v)", r.TTL, r.ttl)
			case r.Action == actBlockIP && r.Anomaly != string(anomaly.Attacker),
				r.Action == actDeny && r.Anomaly != string(anomaly.NewDestination):
				t.Fatalf("accepted %s for %s", r.Action, r.Anomaly)
			}
		}
		enc, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		q, err := parsePolicy(enc)
		if err != nil {
			t.Fatalf("%s does not parse again: %v", enc, err)
		}
		if !p.QuarantineUntil.Equal(q.QuarantineUntil) {
			t.Fatalf("quarantine_until %v, again %v", p.QuarantineUntil, q.QuarantineUntil)
		}
		p.QuarantineUntil, q.QuarantineUntil = time.Time{}, time.Time{}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip\n%+v\n%+v", p, q)
		}
		var d decision.Decisions
		for _, typ := range allTypes {
			for _, sev := range []anomaly.Severity{anomaly.Low, anomaly.Medium, anomaly.High} {
				before := len(d.BlockedIPs) + len(d.DeniedDestinations)
				q := d.Quarantine
				p.decide(anomaly.Anomaly{Type: typ, Severity: sev, Subject: subject}, &d, now)
				if len(d.BlockedIPs)+len(d.DeniedDestinations) < before || (q != nil && d.Quarantine == nil) {
					t.Fatalf("%s/%s lifted a decision", typ, sev)
				}
			}
		}
	})
}
