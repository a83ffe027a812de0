package extension

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/anomaly"
	"github.com/lambdarasp/lambdarasp/internal/decision"
)

func TestParsePolicy(t *testing.T) {
	for _, c := range []struct {
		policy, err string
	}{
		{`{"version":1,"rules":[]}`, ""},
		{`{"version":1,"rules":[{"anomaly":"*","min_severity":"high","action":"quarantine","ttl":"90s"},{"anomaly":"attacker","action":"block_ip","ttl":"15m"},{"anomaly":"egress_new_destination","action":"deny_destination","ttl":"1h"},{"anomaly":"duration","action":"alert"}],"block_ip_after":3}`, ""},
		{`{"version":2,"rules":[]}`, "version"},
		{`{"version":1,"rules":[],"quarantine":"now"}`, "unknown field"},
		{`{"version":1,"rules":[{"anomaly":"slow","action":"alert"}]}`, `anomaly "slow"`},
		{`{"version":1,"rules":[{"anomaly":"*","action":"kill"}]}`, `action "kill"`},
		{`{"version":1,"rules":[{"anomaly":"attack_wave","action":"block_ip","ttl":"1m"}]}`, "block_ip needs"},
		{`{"version":1,"rules":[{"anomaly":"*","action":"deny_destination","ttl":"1m"}]}`, "deny_destination needs"},
		{`{"version":1,"rules":[{"anomaly":"*","action":"quarantine"}]}`, "ttl"},
		{`{"version":1,"rules":[{"anomaly":"*","action":"quarantine","ttl":"400h"}]}`, "ttl"},
		{`{"version":1,"rules":[{"anomaly":"*","min_severity":"urgent","action":"alert"}]}`, "min_severity"},
		{`{"version":1,"rules":[],"block_ip_after":-1}`, "block_ip_after"},
	} {
		_, err := parsePolicy([]byte(c.policy))
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.policy, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one about %q", c.policy, err, c.err)
		}
	}
}

func TestDecide(t *testing.T) {
	p, err := parsePolicy([]byte(`{"version":1,"rules":[
		{"anomaly":"duration","action":"alert"},
		{"anomaly":"*","min_severity":"high","action":"quarantine","ttl":"5m"},
		{"anomaly":"attacker","action":"block_ip","ttl":"15m"},
		{"anomaly":"egress_new_destination","action":"deny_destination","ttl":"1h"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	var d decision.Decisions
	if got := p.decide(anomaly.Anomaly{Type: anomaly.Duration, Severity: anomaly.High}, &d, now); got != "" || d.Quarantine != nil {
		t.Errorf("duration: %q; the first matching rule (alert) decides", got)
	}
	if got := p.decide(anomaly.Anomaly{Type: anomaly.Memory, Severity: anomaly.Medium}, &d, now); got != "" {
		t.Errorf("medium memory: %q; want alert only", got)
	}
	if got := p.decide(anomaly.Anomaly{Type: anomaly.AttackWave, Severity: anomaly.High}, &d, now); !strings.HasPrefix(got, "quarantine until 2026-01-02T15:05:00Z") || d.Quarantine.Reason != "attack_wave" {
		t.Errorf("attack wave: %q, %+v", got, d.Quarantine)
	}
	// attacker is high severity: the catch-all quarantine comes first.
	p.Rules[1], p.Rules[2] = p.Rules[2], p.Rules[1]
	p.decide(anomaly.Anomaly{Type: anomaly.Attacker, Severity: anomaly.High, Subject: "203.0.113.66"}, &d, now)
	p.decide(anomaly.Anomaly{Type: anomaly.Attacker, Severity: anomaly.High, Subject: "203.0.113.66"}, &d, now.Add(time.Minute))
	if len(d.BlockedIPs) != 1 || !d.BlockedIPs[0].Until.Equal(now.Add(16*time.Minute)) {
		t.Errorf("attacker twice: %+v; want one entry, extended", d.BlockedIPs)
	}
	p.Rules = append(p.Rules[:2], p.Rules[3:]...) // drop the catch-all
	p.decide(anomaly.Anomaly{Type: anomaly.NewDestination, Severity: anomaly.High, Subject: "exfil.example:8443"}, &d, now)
	if len(d.DeniedDestinations) != 1 || d.DeniedDestinations[0].Host != "exfil.example" || d.DeniedDestinations[0].Port != 8443 {
		t.Errorf("destination: %+v", d.DeniedDestinations)
	}
	// A rule with a shorter ttl refreshes a decision without cutting it
	// short, and says the end that stays in force.
	p.Rules[1].ttl, p.Rules[2].ttl = time.Minute, time.Minute
	block := p.decide(anomaly.Anomaly{Type: anomaly.Attacker, Severity: anomaly.High, Subject: "203.0.113.66"}, &d, now.Add(2*time.Minute))
	deny := p.decide(anomaly.Anomaly{Type: anomaly.NewDestination, Severity: anomaly.High, Subject: "exfil.example:8443"}, &d, now.Add(2*time.Minute))
	if !d.BlockedIPs[0].Until.Equal(now.Add(16*time.Minute)) || !strings.HasSuffix(block, "until 2026-01-02T15:16:00Z") {
		t.Errorf("shorter block_ip: %q, %+v; want the 15:16 end kept", block, d.BlockedIPs)
	}
	if !d.DeniedDestinations[0].Until.Equal(now.Add(time.Hour)) || !strings.HasSuffix(deny, "until 2026-01-02T16:00:00Z") {
		t.Errorf("shorter deny_destination: %q, %+v; want the 16:00 end kept", deny, d.DeniedDestinations)
	}
	q, err := parsePolicy([]byte(`{"version":1,"rules":[{"anomaly":"attack_wave","action":"quarantine","ttl":"1m"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	d.Quarantine.Until = now.Add(time.Hour)
	if got := q.decide(anomaly.Anomaly{Type: anomaly.AttackWave, Severity: anomaly.High}, &d, now); got != "quarantine until 2026-01-02T16:00:00Z" {
		t.Errorf("shorter quarantine: %q; want the 16:00 end kept", got)
	}
}

// A full list makes room by dropping the decision that ends first: an
// attacker whose block was extended outlives the ones that came after it.
func TestDecideFullListDropsSoonest(t *testing.T) {
	p, err := parsePolicy([]byte(`{"version":1,"rules":[
		{"anomaly":"attacker","action":"block_ip","ttl":"15m"},
		{"anomaly":"egress_new_destination","action":"deny_destination","ttl":"1h"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	var d decision.Decisions
	attacker := func(ip string, at time.Time) {
		p.decide(anomaly.Anomaly{Type: anomaly.Attacker, Severity: anomaly.High, Subject: ip}, &d, at)
	}
	deny := func(dest string, at time.Time) {
		p.decide(anomaly.Anomaly{Type: anomaly.NewDestination, Severity: anomaly.High, Subject: dest}, &d, at)
	}
	for i := range maxBlockedIPs {
		attacker(fmt.Sprintf("10.%d.%d.1", i/256, i%256), now.Add(time.Duration(i)*time.Second))
	}
	for i := range maxDenied {
		deny(fmt.Sprintf("h%d.example:443", i), now.Add(time.Duration(i)*time.Second))
	}
	later := now.Add(time.Duration(maxBlockedIPs) * time.Second)
	attacker("10.0.0.1", later) // the first one comes back: extended
	deny("h0.example:443", later)
	attacker("203.0.113.66", later.Add(time.Second))
	deny("new.example:443", later.Add(time.Second))

	ips := map[string]bool{}
	for _, b := range d.BlockedIPs {
		ips[b.IP] = true
	}
	if len(d.BlockedIPs) != maxBlockedIPs || !ips["10.0.0.1"] || !ips["203.0.113.66"] || ips["10.0.1.1"] {
		t.Errorf("%d blocked IPs; 10.0.0.1 (extended) kept: %v, the new one: %v, 10.0.1.1 (ends first) dropped: %v",
			len(d.BlockedIPs), ips["10.0.0.1"], ips["203.0.113.66"], !ips["10.0.1.1"])
	}
	hosts := map[string]bool{}
	for _, x := range d.DeniedDestinations {
		hosts[x.Host] = true
	}
	if len(d.DeniedDestinations) != maxDenied || !hosts["h0.example"] || !hosts["new.example"] || hosts["h1.example"] {
		t.Errorf("%d denied destinations; h0 (extended) kept: %v, the new one: %v, h1 (ends first) dropped: %v",
			len(d.DeniedDestinations), hosts["h0.example"], hosts["new.example"], !hosts["h1.example"])
	}
}
