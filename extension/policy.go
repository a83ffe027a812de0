package extension

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/anomaly"
	"github.com/lambdarasp/lambdarasp/internal/decision"
)

// Policy maps anomalies to actions. Every anomaly is alerted; a rule adds
// a decision the wrapper enforces. The file (JSON):
//
//	{
//	  "version": 1,
//	  "rules": [
//	    {"anomaly": "attack_wave", "action": "quarantine", "ttl": "5m"},
//	    {"anomaly": "attacker", "action": "block_ip", "ttl": "15m"},
//	    {"anomaly": "egress_new_destination", "action": "deny_destination", "ttl": "1h"},
//	    {"anomaly": "*", "min_severity": "high", "action": "alert"}
//	  ],
//	  "block_ip_after": 5,
//	  "quarantine_until": "2026-01-02T18:00:00Z"
//	}
//
// anomaly is a type (see internal/anomaly) or "*"; min_severity (low,
// medium, high; default low) narrows a rule; the first rule that matches
// decides; the self-check's alert types (code_changed, env_secret,
// vulnerable_module) may be named too. Actions: alert (nothing more),
// quarantine (every invocation refused for ttl), block_ip (the attacker's client IP, for ttl: attacker
// anomalies only), deny_destination (the destination, for ttl:
// egress_new_destination only; enforced by protect.Transport). ttl is a Go
// duration from 1s to 168h, required except for alert and for a rule
// that names a self-check type (default 168h: what it finds lasts as
// long as the environment). block_ip_after
// sets how many blocked requests make an attacker (default 5, within 10
// minutes). quarantine_until quarantines the function until that time
// whatever happens: a security team's switch. The default policy, with no
// file, has no rules: alert only. The same document can be served over
// HTTP(S) (Config.PolicyURL, see policySource).
type Policy struct {
	Version         int          `json:"version"`
	Rules           []PolicyRule `json:"rules"`
	BlockIPAfter    int          `json:"block_ip_after,omitempty"`
	QuarantineUntil time.Time    `json:"quarantine_until,omitzero"`
}

// PolicyRule is one line of a Policy.
type PolicyRule struct {
	Anomaly     string           `json:"anomaly"`
	MinSeverity anomaly.Severity `json:"min_severity,omitempty"`
	Action      string           `json:"action"`
	TTL         string           `json:"ttl,omitempty"`

	ttl time.Duration
}

// The policy actions.
const (
	actAlert      = "alert"
	actQuarantine = "quarantine"
	actBlockIP    = "block_ip"
	actDeny       = "deny_destination"
)

const maxTTL = 7 * 24 * time.Hour

// loadPolicy reads the policy file; one that does not exist is the
// default policy, and found is false.
func loadPolicy(path string) (p Policy, found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Policy{Version: 1}, false, nil
	}
	if err != nil {
		return Policy{}, false, fmt.Errorf("extension: policy %s: %w", path, err)
	}
	p, err = parsePolicy(b)
	if err != nil {
		return Policy{}, false, fmt.Errorf("extension: policy %s: %w", path, err)
	}
	return p, true, nil
}

// parsePolicy decodes and checks a policy. Unknown fields are errors: a
// misspelt key must not silently mean "alert only".
func parsePolicy(b []byte) (Policy, error) {
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, err
	}
	if p.Version != 1 {
		return Policy{}, fmt.Errorf("version %d: want 1", p.Version)
	}
	if p.BlockIPAfter < 0 {
		return Policy{}, fmt.Errorf("block_ip_after %d: want 1 or more", p.BlockIPAfter)
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		where := "rule " + strconv.Itoa(i+1)
		selfCheck := slices.Contains(selfCheckTypes, anomaly.Type(r.Anomaly))
		if r.Anomaly != "*" && !selfCheck && !slices.Contains(anomaly.Types, anomaly.Type(r.Anomaly)) {
			return Policy{}, fmt.Errorf("%s: anomaly %q: want * or one of %v %v", where, r.Anomaly, anomaly.Types, selfCheckTypes)
		}
		if r.MinSeverity != "" && r.MinSeverity.Rank() == 0 {
			return Policy{}, fmt.Errorf("%s: min_severity %q: want low, medium or high", where, r.MinSeverity)
		}
		switch r.Action {
		case actAlert:
		case actQuarantine:
		case actBlockIP:
			if r.Anomaly != string(anomaly.Attacker) {
				return Policy{}, fmt.Errorf("%s: block_ip needs anomaly %q, the one that names a client IP", where, anomaly.Attacker)
			}
		case actDeny:
			if r.Anomaly != string(anomaly.NewDestination) {
				return Policy{}, fmt.Errorf("%s: deny_destination needs anomaly %q, the one that names a destination", where, anomaly.NewDestination)
			}
		default:
			return Policy{}, fmt.Errorf("%s: action %q: want alert, quarantine, block_ip or deny_destination", where, r.Action)
		}
		if r.Action == actAlert {
			continue
		}
		if r.TTL == "" && selfCheck {
			// What the self-check finds lasts as long as the environment.
			r.ttl = maxTTL
			continue
		}
		d, err := time.ParseDuration(r.TTL)
		if err != nil || d < time.Second || d > maxTTL {
			return Policy{}, fmt.Errorf("%s: ttl %q: want a duration from 1s to 168h, such as 15m", where, r.TTL)
		}
		r.ttl = d
	}
	return p, nil
}

// rule returns the first rule that matches a, or nil.
func (p *Policy) rule(a anomaly.Anomaly) *PolicyRule {
	for i := range p.Rules {
		r := &p.Rules[i]
		if (r.Anomaly == "*" || r.Anomaly == string(a.Type)) && a.Severity.Rank() >= max(r.MinSeverity.Rank(), 1) {
			return r
		}
	}
	return nil
}

// decide applies the policy to a: it adds to d the decision the matching
// rule asks for and returns what it did ("" for alert only).
func (p *Policy) decide(a anomaly.Anomaly, d *decision.Decisions, now time.Time) string {
	r := p.rule(a)
	if r == nil || r.Action == actAlert {
		return ""
	}
	until := now.Add(r.ttl)
	reason := string(a.Type)
	switch r.Action {
	case actQuarantine:
		if d.Quarantine == nil || d.Quarantine.Until.Before(until) {
			d.Quarantine = &decision.Quarantine{Until: until, Reason: reason}
		}
		return "quarantine until " + stamp(d.Quarantine.Until)
	case actBlockIP:
		for i := range d.BlockedIPs {
			if x := &d.BlockedIPs[i]; x.IP == a.Subject {
				x.Until = later(x.Until, until)
				return "block_ip " + a.Subject + " until " + stamp(x.Until)
			}
		}
		if len(d.BlockedIPs) >= maxBlockedIPs {
			d.BlockedIPs = dropSoonest(d.BlockedIPs, func(x decision.BlockedIP) time.Time { return x.Until })
		}
		d.BlockedIPs = append(d.BlockedIPs, decision.BlockedIP{IP: a.Subject, Until: until, Reason: reason})
		return "block_ip " + a.Subject + " until " + stamp(until)
	case actDeny:
		host, port, err := net.SplitHostPort(a.Subject)
		if err != nil {
			return ""
		}
		n, _ := strconv.Atoi(port)
		for i := range d.DeniedDestinations {
			if x := &d.DeniedDestinations[i]; x.Host == host && x.Port == n {
				x.Until = later(x.Until, until)
				return "deny_destination " + a.Subject + " until " + stamp(x.Until)
			}
		}
		if len(d.DeniedDestinations) >= maxDenied {
			d.DeniedDestinations = dropSoonest(d.DeniedDestinations, func(x decision.Destination) time.Time { return x.Until })
		}
		d.DeniedDestinations = append(d.DeniedDestinations, decision.Destination{Host: host, Port: n, Until: until, Reason: reason})
		return "deny_destination " + a.Subject + " until " + stamp(until)
	}
	return ""
}

// dropSoonest makes room in a full list by dropping the decision that
// ends first: not the first added, which a repeat offender's extensions
// may have made the one that lasts longest.
func dropSoonest[T any](s []T, until func(T) time.Time) []T {
	k := 0
	for i := range s {
		if until(s[i]).Before(until(s[k])) {
			k = i
		}
	}
	return append(s[:k], s[k+1:]...)
}

// later is the later of two ends: a decision refreshed by a rule with a
// shorter ttl is never cut short (decisions only restrict).
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Bounds on the decisions file: the wrapper parses it on each change.
const (
	maxBlockedIPs = 1000
	maxDenied     = 256
)
