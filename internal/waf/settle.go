package waf

import (
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"
)

// A few gate rules match nearly every event without ever changing its
// result: CRS 941010 (a ctl that narrows other rules' targets), 920539 (a
// skip over a rule that does not match anyway), 920420 and 920450 (their
// first link matches any Content-Type or header name; the chain then
// checks a policy list). When they are the only candidates, Coraza need
// not run: the event's result is the baseline. This file decides when.
//
//   - pure: a rule whose match has no effect on the result — no message,
//     score, capture, chain or disruptive action, a ctl only removing
//     targets from other rules (which, being no candidates, match
//     nothing anyway), a skip only over gate rules that are no candidates.
//   - probed: a chained rule whose first link has side effects only on
//     TX variables no other rule reads (and on TX.0, which every other
//     reader captures itself first). Whether its whole chain matches is
//     asked of a small probe WAF compiled from just these rules: Coraza
//     itself evaluates them, on a transaction populated like the real one.
const (
	settleNone = iota
	settlePure
	settleProbe
)

var pureActions = map[string]bool{"log": true, "nolog": true, "auditlog": true, "noauditlog": true,
	"pass": true, "t": true, "ctl": true, "skip": true}

var ctlRx = regexp.MustCompile(`(?i)ctl:([a-z]+)`)

func pure(r *compiledRule) bool {
	if r.hasMsg || r.capture || r.chain != nil {
		return false
	}
	for _, a := range r.actions {
		if !pureActions[a] {
			return false
		}
	}
	for _, m := range ctlRx.FindAllStringSubmatch(r.raw, -1) {
		if !strings.HasPrefix(strings.ToLower(m[1]), "ruleremovetargetby") {
			return false
		}
	}
	return true
}

// probeable reports whether rule i may be settled by the probe: a chain
// whose first link's only effects outside the chain are TX variables that
// no other reachable rule reads, and whose chain reads only its own
// variables, the input and static TX.
func probeable(i int, rules []*compiledRule, facts []ruleFacts, reachable []bool, dyn *txNames) bool {
	r := rules[i]
	if r.chain == nil || r.opName != "rx" || r.multiMatch {
		return false
	}
	for _, a := range r.actions {
		switch a {
		case "log", "nolog", "auditlog", "noauditlog", "pass", "t", "capture", "logdata", "setvar", "chain":
		default:
			return false
		}
	}
	// The capture writes TX.0 only when the pattern has no groups.
	if re, err := syntax.Parse(r.opData, syntax.Perl); err != nil || re.MaxCap() > 0 {
		return false
	}
	head, _, _ := strings.Cut(r.raw, "\nSecRule")
	var own []string
	for _, m := range setvars(head) {
		name := strings.ToLower(m)
		if j := strings.Index(name, "%{"); j >= 0 {
			name = name[:j] + "\x00" // a prefix: the rest is built per match
		}
		own = append(own, name)
	}
	for c := r.chain; c != nil; c = c.chain {
		for _, v := range c.vars {
			if v.v == variables.TX && !readsOwn(v, own) && readsAny(dyn, []string{strings.ToLower(v.keyStr)}) {
				return false
			}
		}
	}
	for j, o := range rules {
		if j == i || !reachable[j] {
			continue
		}
		for _, name := range own {
			if readsTX(o, &facts[j], name) {
				return false
			}
		}
		// TX.0: a reader that captures in its first link has overwritten
		// it before anything of it reads it.
		if readsTX(o, &facts[j], "0") && (!o.capture || readsTXHead(o, "0")) {
			return false
		}
	}
	return true
}

func readsOwn(v ruleVar, own []string) bool {
	for _, name := range own {
		if matchesName(v, name) {
			return true
		}
	}
	return false
}

// matchesName reports whether a TX variable selection reads name (a name
// ending in \x00 is a prefix).
func matchesName(v ruleVar, name string) bool {
	prefix, isPrefix := strings.CutSuffix(name, "\x00")
	switch {
	case v.keyRx != nil:
		return v.keyRx.MatchString(prefix) || isPrefix && v.keyRx.MatchString(prefix+"x")
	case v.keyStr == "":
		return true
	case isPrefix:
		return strings.HasPrefix(strings.ToLower(v.keyStr), prefix)
	}
	return strings.EqualFold(v.keyStr, name)
}

// readsTX reports whether rule r (with facts f) reads TX variable name in
// any link's variables or any macro.
func readsTX(r *compiledRule, f *ruleFacts, name string) bool {
	for c := r; c != nil; c = c.chain {
		if linkReadsTX(c, name) {
			return true
		}
	}
	prefix, isPrefix := strings.CutSuffix(name, "\x00")
	for _, ref := range f.txReads {
		if ref == name || isPrefix && strings.HasPrefix(ref, prefix) {
			return true
		}
	}
	return false
}

func readsTXHead(r *compiledRule, name string) bool {
	if linkReadsTX(r, name) {
		return true
	}
	for _, m := range macros(r.opData) {
		if strings.EqualFold(m, "tx."+name) {
			return true
		}
	}
	return false
}

func linkReadsTX(c *compiledRule, name string) bool {
	for _, v := range c.vars {
		if v.v == variables.TX && matchesName(v, name) {
			return true
		}
	}
	return false
}

// newProbe compiles the probed rules on their own. Their macros read
// static TX values, which the caller prefills.
func newProbe(rules []*compiledRule) (coraza.WAF, error) {
	var b strings.Builder
	b.WriteString("SecRuleEngine On\n")
	for _, r := range rules {
		b.WriteString(r.raw)
		b.WriteString("\n")
	}
	return coraza.NewWAF(coraza.NewWAFConfig().WithDirectives(b.String()))
}

// settled reports whether the candidates are all settled: pure, or probed
// and not matching in the probe transaction (nil when no probe ran).
func (p *plan) settled(cand []int, probe func() types.Transaction) bool {
	isCand := make(bitset, p.ix.words)
	needProbe := false
	for _, c := range cand {
		isCand.set(c)
		switch p.gate[c].settle {
		case settleNone:
			return false
		case settleProbe:
			needProbe = true
		}
	}
	// A skip must only pass over gate rules that match nothing.
	for _, c := range cand {
		for _, j := range p.skipped[p.gate[c].index] {
			if gi := p.gateOf[j]; gi < 0 || isCand.has(gi) {
				return false
			}
		}
	}
	if !needProbe {
		return true
	}
	if probe == nil {
		return false
	}
	tx := probe()
	defer tx.Close()
	matched := map[int]bool{}
	for _, mr := range tx.MatchedRules() {
		matched[mr.Rule().ID()] = true
	}
	for _, c := range cand {
		if g := &p.gate[c]; g.settle == settleProbe && matched[g.r.id] {
			return false
		}
	}
	return true
}
