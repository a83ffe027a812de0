package waf

import (
	"encoding/binary"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/lambdarasp/lambdarasp/internal/source"
)

// A few gate rules match nearly every event without ever changing its
// result: CRS 941010 (a ctl that narrows other rules' targets), 920539 (a
// skip over a rule that does not match anyway), 920420 and 920450 (their
// first link matches any Content-Type or header name; the chain then
// checks a policy list). Such a candidate is settled for a run of Coraza
// when its match cannot change that run's result: it is then left out of
// the run (plan.run), and when every candidate is, Coraza need not run at
// all: the event's result is the baseline. This file decides when.
//
//   - pure: a rule whose match has no effect on the result — no message,
//     score, capture, chain or disruptive action, a ctl only removing
//     targets from other rules, a skip only over the next rules of its
//     phase. It is settled when the rules it reaches are not in the run:
//     gate rules that are no candidates (they match nothing anyway) or
//     probed candidates the probe settled — and when no rule of the run
//     skips over it (prune would keep it where the skip counts it).
//   - probed: a chained rule whose first link has side effects only on
//     TX variables no other rule reads (and on TX.0, which every other
//     reader captures itself first). Whether its whole chain matches is
//     asked of a small probe WAF compiled from just these rules: Coraza
//     itself evaluates them, on a transaction populated like the real one.
//     It is settled when the probe says it does not match (and prune may
//     still keep it where a skip counts it: it runs and does not match).
const (
	settleNone = iota
	settlePure
	settleProbe
)

var pureActions = map[string]bool{"log": true, "nolog": true, "auditlog": true, "noauditlog": true,
	"pass": true, "t": true, "ctl": true, "skip": true}

// ctlRx finds the ctl actions of a rule's text, with what follows the
// "=": the value up to a ";" (which the ";" itself follows: group 3).
var ctlRx = regexp.MustCompile(`(?i)ctl:'?([a-z]+)(?:=([^;,'"]*)(;?))?`)

func pure(r *compiledRule) bool {
	if r.hasMsg || r.capture || r.chain != nil {
		return false
	}
	ctls := 0
	for _, a := range r.actions {
		if !pureActions[a] {
			return false
		}
		if a == "ctl" {
			ctls++
		}
	}
	// Every ctl action must be one the text shows: one written some other
	// way could be anything.
	found := ctlRx.FindAllStringSubmatch(r.raw, -1)
	if len(found) != ctls {
		return false
	}
	for _, m := range found {
		if !strings.HasPrefix(strings.ToLower(m[1]), "ruleremovetargetby") {
			return false
		}
	}
	return true
}

// ctlTargets returns the rules (indexes in rules) from which the ctl
// actions of pure rule r may remove targets: the rules of a
// ruleRemoveTargetById's id or range, those of a ruleRemoveTargetByTag's
// tag (compared as Coraza does, though ignoring case and surrounding
// space: a superset), and every rule for a ctl whose value it cannot read
// (ruleRemoveTargetByMsg, a value not followed by ";").
func ctlTargets(r *compiledRule, rules []*compiledRule) []int {
	var out []int
	for _, m := range ctlRx.FindAllStringSubmatch(r.raw, -1) {
		value := strings.TrimSpace(m[2])
		target := func(*compiledRule) bool { return true }
		switch kind := strings.ToLower(m[1]); {
		case m[3] != ";":
		case kind == "ruleremovetargetbyid":
			if lo, hi, ok := idRange(value); ok {
				target = func(o *compiledRule) bool { return o.id >= lo && o.id <= hi }
			}
		case kind == "ruleremovetargetbytag":
			target = func(o *compiledRule) bool {
				return slices.ContainsFunc(o.tags, func(t string) bool { return strings.EqualFold(strings.TrimSpace(t), value) })
			}
		}
		for j, o := range rules {
			if target(o) {
				out = append(out, j)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// idRange parses a ctl's rule id or id range ("942100", "942100-942199").
func idRange(s string) (lo, hi int, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil {
		return 0, 0, false
	}
	if !isRange {
		return lo, lo, true
	}
	hi, err = strconv.Atoi(strings.TrimSpace(b))
	return lo, hi, err == nil
}

// settleFacts records, once the plan's rules are classified, what run
// needs: the rules each pure gate rule's ctl reaches, and the rules whose
// skip passes over each rule.
func (p *plan) settleFacts() {
	p.skippers = make([][]int, len(p.rules))
	for i, skipped := range p.skipped {
		for _, j := range skipped {
			p.skippers[j] = append(p.skippers[j], i)
		}
	}
	for gi := range p.gate {
		if g := &p.gate[gi]; g.settle == settlePure {
			g.targets = ctlTargets(g.r, p.rules)
		}
	}
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

// probeFunc answers whether probed gate rule gi matches the event; known
// is false when it cannot tell. With cheap set it runs no probe
// transaction whose cost would recur (see Engine.prober).
type probeFunc func(gi int, cheap bool) (matched, known bool)

// run returns the candidates a run of Coraza must have: cand without those
// settled for this run, or nil when none remains (the result is then the
// baseline). A candidate is left out when
//   - it is probed, and probe says it does not match; or
//   - it is pure, its skip passes only over gate rules that stay out of
//     the run, its ctl reaches no rule in it (p.keep's rules nor the
//     candidates that stay), and no rule that may run (p.keep's, a
//     candidate) skips over it: prune would keep it in the transaction,
//     so that the skip counts the same rules, and there it would skip
//     over other rules than its own, which prune removed.
//
// What stays is decided against a superset of the final run (every
// candidate but the probed ones left out), so that each condition also
// holds against the run itself. A nil probe settles no probed rule; when
// some candidate runs in any case (it is neither pure nor probed), probe
// is asked to be cheap: a probe transaction for this event alone would
// cost more than the rule it might leave out.
func (p *plan) run(cand []int, probe probeFunc) []int {
	isCand := make(bitset, p.ix.words)
	anyway := false
	for _, c := range cand {
		isCand.set(c)
		anyway = anyway || p.gate[c].settle == settleNone
	}
	stays := make(bitset, p.ix.words) // the superset
	for _, c := range cand {
		g := &p.gate[c]
		if g.settle == settleProbe && probe != nil {
			if matched, known := probe(c, anyway); known && !matched {
				continue
			}
		}
		stays.set(c)
	}
	var out []int
	for _, c := range cand {
		if stays.has(c) && !(p.gate[c].settle == settlePure && p.pureSettled(c, stays, isCand)) {
			out = append(out, c)
		}
	}
	return out
}

// skippedInRun reports whether a skip of a rule that may run (a kept rule
// or a candidate) passes over rule i.
func (p *plan) skippedInRun(i int, isCand bitset) bool {
	for _, s := range p.skippers[i] {
		if gi := p.gateOf[s]; p.keep[s] || gi >= 0 && isCand.has(gi) {
			return true
		}
	}
	return false
}

// pureSettled reports whether pure candidate c may stay out of a run of
// the candidates in stays.
func (p *plan) pureSettled(c int, stays, isCand bitset) bool {
	g := &p.gate[c]
	if p.skippedInRun(g.index, isCand) {
		return false
	}
	for _, j := range p.skipped[g.index] {
		if gj := p.gateOf[j]; gj < 0 || stays.has(gj) {
			return false
		}
	}
	for _, j := range g.targets {
		if gj := p.gateOf[j]; p.keep[j] || gj >= 0 && stays.has(gj) {
			return false
		}
	}
	return true
}

// A probed rule's answer depends only on the values its links read besides
// TX (which they read only as their own captures or static values, see
// probeable and staticMacros), and when those are request headers, the same few recur invocation after
// invocation: one Content-Type, one set of header names per client. The
// answers are remembered per rule, keyed by those values, so the probe
// transaction runs only for combinations not seen before.
type probeMemo struct {
	mu sync.Mutex
	// answers[k] is the answers of the rule at p.probed[k]; nil when a
	// link reads something other than request headers and TX.
	answers []map[string]bool
}

// maxProbeAnswers bounds each probed rule's memo: a full one is emptied,
// so a client that varies its header names each time costs a probe run
// per invocation and no memory.
const maxProbeAnswers = 256

func newProbeMemo(rules []*compiledRule) *probeMemo {
	m := &probeMemo{answers: make([]map[string]bool, len(rules))}
	for k, r := range rules {
		if headerKeyed(r) {
			m.answers[k] = map[string]bool{}
		}
	}
	return m
}

// headerKeyed reports whether the links of r read only TX and request
// headers, selected by a plain name or not at all, or their names.
func headerKeyed(r *compiledRule) bool {
	for c := r; c != nil; c = c.chain {
		for _, v := range c.vars {
			ok := v.v == variables.TX || len(v.exceptions) == 0 && v.keyRx == nil && !v.count &&
				(v.v == variables.RequestHeaders || v.v == variables.RequestHeadersNames && v.keyStr == "")
			if !ok {
				return false
			}
		}
	}
	return true
}

// probeKey appends to dst what the links of r read from the headers, in
// order and unambiguously: per variable, each string it reads as 1, its
// length and its bytes, then 0.
func probeKey(dst []byte, r *compiledRule, headers []source.Header) []byte {
	for c := r; c != nil; c = c.chain {
		dst = appendHeaders(dst, c.vars, headers)
	}
	return dst
}

func appendHeaders(dst []byte, vars []ruleVar, headers []source.Header) []byte {
	for _, v := range vars {
		if v.v == variables.TX {
			continue
		}
		for _, h := range headers {
			switch {
			case v.v == variables.RequestHeadersNames:
				dst = appendString(dst, h.Name)
			case v.keyStr == "":
				dst = appendString(appendString(dst, h.Name), h.Value)
			case strings.EqualFold(h.Name, v.keyStr):
				dst = appendString(dst, h.Value)
			}
		}
		dst = append(dst, 0)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(append(dst, 1), uint64(len(s))), s...)
}

// answer returns the remembered answer of probed rule k for key.
func (m *probeMemo) answer(k int, key []byte) (matched, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	matched, ok = m.answers[k][string(key)]
	return matched, ok
}

func (m *probeMemo) remember(k int, key []byte, matched bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.answers[k]
	if len(a) >= maxProbeAnswers {
		clear(a)
	}
	a[string(key)] = matched
}
