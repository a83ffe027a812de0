package waf

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/lambdarasp/lambdarasp/internal/source"
)

// A plan is what the fast path knows about the rule set under one profile
// (HTTP requests or event records), worked out once at New.
//
// Every rule falls in one of three classes:
//
//   - static: reads no input, only TX variables that no input-reading rule
//     writes (paranoia level, thresholds, allowed content types: CRS
//     initialisation and paranoia-level skips). It does the same thing in
//     every transaction.
//   - gate: its first link reads the input (ARGS, headers, URI, …). It can
//     only have an effect if that first link matches some value.
//   - derived: reads TX variables that gate rules write (the anomaly score
//     evaluation). With no gate rule matching, it sees what it saw in the
//     baseline.
//
// The baseline is a transaction with every gate rule removed. Hence the
// fast path: when no gate rule's first link matches any value of an event
// (decided by evaluating exactly that link, with Coraza's own operator and
// transformation objects), the event's result is the baseline's, and
// Coraza need not run. When some do, Coraza runs with every gate rule that
// cannot match removed and the static rules replaced by the TX values they
// set: the same evaluation, minus rules that would not have matched.
type plan struct {
	rules  []*compiledRule
	gate   []gateRule
	keep   []bool    // rule index → never removed (derived, flow)
	static []txValue // TX variables static rules set, and their values
	// gateStatic are those of static the gate reads: in its operators'
	// macros and its TX selections.
	gateStatic []txValue
	remove     []int // static and unreachable rule ids, removed on every slow run
	// byID is the rules' indexes in id order; gone[i] is true for a rule
	// every slow run removes (see pruneFacts).
	byID []int
	gone []bool
	// base is the result when no gate rule matches.
	base Result
	// skipped[i] are the rules a skip:N of the rule at index i passes
	// over: the next N of its phase; skippers[i] the rules whose skipped
	// has i.
	skipped, skippers [][]int
	ix                gateIndex
	// gateOf[i] is the index in gate of the rule at index i, or -1.
	gateOf []int
	// probe evaluates the rules settled by probing (settle.go), whose
	// indexes in gate are probed; nil when there are none. probeStatic
	// are the static TX values they read.
	probe       coraza.WAF
	probed      []int
	probeStatic []txValue
	memo        *probeMemo
	warm        *warmCache // what the gate learnt of strings in earlier events
	// argsFree is true when no gate rule's operator has a macro reading
	// arguments: the gate may then hold a body's arguments itself.
	argsFree bool
	// opGate maps the operator of each gate rule whose answers a slow run
	// reuses (reuse.go) to the rule's index in gate.
	opGate map[plugintypes.Operator]int
}

type gateRule struct {
	index   int // in plan.rules
	r       *compiledRule
	unknown bool  // no operator the gate can run: always a candidate
	settle  int   // settleNone, settlePure or settleProbe
	targets []int // pure: the rules its ctl may remove targets from (ctlTargets)
}

var (
	skipRx     = regexp.MustCompile(`(?i)[,"]skip:'?(\d+)`)
	removeSafe = map[string]bool{"setvar": true, "pass": true, "nolog": true, "log": true, "auditlog": true, "noauditlog": true, "t": true}
)

// txNames is a set of TX variable names, with prefixes for names built by
// macros (setvar:tx.paramcounter_%{MATCHED_VAR_NAME}).
type txNames struct {
	names    map[string]bool
	prefixes []string
}

func (n *txNames) has(name string) bool {
	if n.names[name] {
		return true
	}
	for _, p := range n.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func (n *txNames) add(name string) bool {
	if i := strings.Index(name, "%{"); i >= 0 {
		p := name[:i]
		for _, q := range n.prefixes {
			if q == p {
				return false
			}
		}
		n.prefixes = append(n.prefixes, p)
		return true
	}
	if n.names[name] {
		return false
	}
	n.names[name] = true
	return true
}

// ruleFacts is what one rule (with its chain) reads and writes.
type ruleFacts struct {
	readsInput  bool     // any link reads a non-TX variable or macro
	headInput   bool     // the first link reads a non-TX variable
	txReads     []string // TX names read ("*" for a regex key)
	writes      []string
	headTXReads []string
	headMacros  []string // TX names in the first link's operator argument
	headOther   bool     // the first link's operator argument has a non-TX macro
}

func factsOf(r *compiledRule) ruleFacts {
	var f ruleFacts
	for c, head := r, true; c != nil; c, head = c.chain, false {
		if c.capture {
			f.writes = append(f.writes, "0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
		}
		for _, v := range c.vars {
			if v.v != variables.TX {
				f.readsInput = true
				if head {
					f.headInput = true
				}
				continue
			}
			name := strings.ToLower(v.keyStr)
			if v.keyRx != nil || name == "" {
				name = "*"
			}
			f.txReads = append(f.txReads, name)
			if head {
				f.headTXReads = append(f.headTXReads, name)
			}
		}
		for _, m := range macros(c.raw) {
			ref := strings.ToLower(m)
			name, ok := strings.CutPrefix(ref, "tx.")
			switch {
			case ok:
				f.txReads = append(f.txReads, name)
			case strings.HasPrefix(ref, "rule."):
			default:
				f.readsInput = true
			}
		}
		if head {
			for _, m := range macros(c.opData) {
				ref := strings.ToLower(m)
				if name, ok := strings.CutPrefix(ref, "tx."); ok {
					f.headMacros = append(f.headMacros, name)
				} else {
					f.headOther = true
				}
			}
		}
		for _, m := range setvars(c.raw) {
			f.writes = append(f.writes, strings.ToLower(m))
		}
	}
	return f
}

// setvars returns the TX names in the setvar actions of SecLang text s
// (setvar:tx.NAME=…, setvar:'!tx.NAME', any case), as written.
func setvars(s string) []string {
	var names []string
	for i := 6; i < len(s); i++ {
		if s[i] != ':' || !strings.EqualFold(s[i-6:i], "setvar") {
			continue
		}
		j := i + 1
		if j < len(s) && s[j] == '\'' {
			j++
		}
		if j < len(s) && s[j] == '!' {
			j++
		}
		if j+3 > len(s) || !strings.EqualFold(s[j:j+3], "tx.") {
			continue
		}
		j += 3
		k := j
		for k < len(s) && strings.IndexByte("=',\"", s[k]) < 0 {
			k++
		}
		names = append(names, s[j:k])
	}
	return names
}

// macros returns the references in the %{…} macros of s.
func macros(s string) []string {
	var refs []string
	for {
		i := strings.Index(s, "%{")
		if i < 0 {
			return refs
		}
		s = s[i+2:]
		j := strings.IndexByte(s, '}')
		if j < 0 {
			return refs
		}
		refs = append(refs, s[:j])
		s = s[j+1:]
	}
}

// newPlan classifies rules for one profile: removed are the rule id ranges
// the profile removes in every transaction.
func newPlan(w coraza.WAF, atoms *atomIndex, rules []*compiledRule, facts []ruleFacts, removed [][2]int) *plan {
	p := &plan{rules: rules, keep: make([]bool, len(rules)), skipped: make([][]int, len(rules)), gateOf: make([]int, len(rules))}
	inProfile := func(r *compiledRule) bool {
		for _, rg := range removed {
			if r.id >= rg[0] && r.id <= rg[1] {
				return false
			}
		}
		return true
	}
	// Dynamic TX names: written by a rule that is not static. Static
	// depends on dynamic, so iterate to a fixed point.
	dyn := txNames{names: map[string]bool{"*": true}}
	static := make([]bool, len(rules))
	for changed := true; changed; {
		changed = false
		for i, r := range rules {
			f := &facts[i]
			static[i] = inProfile(r) && !f.readsInput && !readsAny(&dyn, f.txReads)
			if static[i] {
				continue
			}
			for _, name := range f.writes {
				if dyn.add(name) {
					changed = true
				}
			}
		}
		// A static name written after a rule that is not static reads it
		// would be read before it is set: make it dynamic.
		firstReader := map[string]int{}
		for j := range rules {
			if static[j] || !inProfile(rules[j]) {
				continue
			}
			for _, name := range facts[j].txReads {
				if _, ok := firstReader[name]; !ok {
					firstReader[name] = j
				}
			}
		}
		for i := range rules {
			if !static[i] {
				continue
			}
			for _, name := range facts[i].writes {
				if j, ok := firstReader[name]; ok && j < i && dyn.add(name) {
					changed = true
				}
			}
		}
	}

	// The baseline: every gate rule removed.
	var gateIDs []int
	for i, r := range rules {
		if inProfile(r) && !static[i] && facts[i].headInput {
			gateIDs = append(gateIDs, r.id)
		}
	}
	tx := w.NewTransaction()
	rm := tx.(ruleRemover)
	for _, rg := range removed {
		rm.RemoveRuleByIDRange(rg[0], rg[1])
	}
	for _, id := range gateIDs {
		tx.(ruleRemover).RemoveRuleByID(id)
	}
	tx.ProcessRequestHeaders()
	_, _ = tx.ProcessRequestBody()
	p.base = result(tx, nil, variablePath)
	matched := map[int]bool{}
	for _, mr := range tx.MatchedRules() {
		matched[mr.Rule().ID()] = true
	}
	for _, md := range tx.(plugintypes.TransactionState).Variables().TX().FindAll() {
		if name := strings.ToLower(md.Key()); !dyn.has(name) {
			p.static = append(p.static, txValue{name, md.Value()})
		}
	}
	// A rule whose first link reads only static TX but whose chain reads
	// the input (CRS 920650) runs its chain on every event where that
	// first link matches: such a rule is a gate rule that is always a
	// candidate.
	deep := make([]bool, len(rules))
	state := tx.(plugintypes.TransactionState)
	for i, r := range rules {
		if f := &facts[i]; inProfile(r) && !static[i] && !f.headInput && f.readsInput {
			deep[i] = headMatches(state, r)
		}
	}
	tx.Close()

	// Reachability: paranoia-level skips are static, so the baseline's
	// matches say which sections no transaction reaches.
	reachable := make([]bool, len(rules))
	mark := ""
	for i, r := range rules {
		if mark != "" {
			if r.secMark == mark {
				mark = ""
			}
			continue
		}
		reachable[i] = r.id != 0 && inProfile(r)
		if static[i] && matched[r.id] {
			if m := skipAfterOf(r); m != "" {
				mark = m
			}
		}
	}

	for i, r := range rules {
		f := &facts[i]
		p.gateOf[i] = -1
		for j := i + 1; j < len(rules) && len(p.skipped[i]) < skipOf(r); j++ {
			if rules[j].phase == r.phase {
				p.skipped[i] = append(p.skipped[i], j)
			}
		}
		switch {
		case !inProfile(r) || r.id == 0:
		case static[i]:
			// A static rule that initialises a variable other rules
			// change (tx.inbound_anomaly_score_pl1=0) must run: only
			// static variables are prefilled.
			if !matched[r.id] || (removableStatic(r) && !readsAny(&dyn, f.writes)) {
				p.remove = append(p.remove, r.id)
			} else {
				p.keep[i] = true
			}
		case deep[i] && reachable[i]:
			p.keep[i] = true
			p.gateOf[i] = len(p.gate)
			p.gate = append(p.gate, gateRule{index: i, r: r, unknown: true})
		case !f.headInput:
			p.keep[i] = true
		case reachable[i]:
			g := gateRule{index: i, r: r}
			g.unknown = r.op == nil || r.phase < 1 || r.phase > 2 || f.headOther ||
				readsAny(&dyn, f.headTXReads) || readsAny(&dyn, f.headMacros)
			switch {
			case g.unknown:
			case pure(r):
				g.settle = settlePure
			case probeable(i, rules, facts, reachable, &dyn) && staticMacros(r, &dyn):
				g.settle = settleProbe
			}
			p.gateOf[i] = len(p.gate)
			p.gate = append(p.gate, g)
		default:
			// Unreachable at this paranoia level: skipped by a kept
			// static rule, or removed with the other gate rules.
			p.remove = append(p.remove, r.id)
		}
	}
	p.settleFacts()
	p.pruneFacts()
	p.buildGate(atoms)
	p.warm = newWarmCache(p.ix.bitsLen(), len(p.ix.steps))
	p.opGate = map[plugintypes.Operator]int{}
	for gi, g := range p.gate {
		if _, ok := g.r.op.(*libOp); ok && !g.unknown {
			p.opGate[g.r.op] = gi
		}
	}
	p.argsFree = true
	for _, g := range p.gate {
		for _, m := range macros(g.r.opData) {
			if strings.HasPrefix(strings.ToLower(m), "args") {
				p.argsFree = false
			}
		}
	}
	heads := make([]*compiledRule, len(p.gate))
	for gi, g := range p.gate {
		heads[gi] = g.r
	}
	p.gateStatic = p.staticReads(heads, false)
	var probed []*compiledRule
	for gi, g := range p.gate {
		if g.settle == settleProbe {
			probed = append(probed, g.r)
			p.probed = append(p.probed, gi)
		}
	}
	if len(probed) > 0 {
		if probe, err := newProbe(probed); err == nil {
			p.probe = probe
			p.probeStatic = p.staticReads(probed, true)
			p.memo = newProbeMemo(probed)
		} else {
			for _, gi := range p.probed {
				p.gate[gi].settle = settleNone
			}
			p.probed = nil
		}
	}
	return p
}

// staticReads returns the static TX values the rules read: the names in
// their operators' macros (%{tx.name}) and TX selections, of their first
// links only or, with chains, of every link (and every macro of the rule's
// text, actions included).
func (p *plan) staticReads(rules []*compiledRule, chains bool) []txValue {
	names := map[string]bool{}
	for _, r := range rules {
		refs := macros(r.opData)
		if chains {
			refs = macros(r.raw)
		}
		for _, ref := range refs {
			if name, ok := strings.CutPrefix(strings.ToLower(ref), "tx."); ok {
				names[name] = true
			}
		}
		for c := r; c != nil; c = c.chain {
			for _, v := range c.vars {
				if v.v != variables.TX {
					continue
				}
				if v.keyStr == "" {
					return p.static // a regex or the whole collection
				}
				names[strings.ToLower(v.keyStr)] = true
			}
			if !chains {
				break
			}
		}
	}
	var out []txValue
	for _, v := range p.static {
		if names[v.name] {
			out = append(out, v)
		}
	}
	return out
}

// headersOnly reports whether r is a phase 1 rule whose every link reads
// only request headers and TX.
func headersOnly(r *compiledRule) bool {
	if r.phase != 1 {
		return false
	}
	for c := r; c != nil; c = c.chain {
		for _, v := range c.vars {
			switch v.v {
			case variables.RequestHeaders, variables.RequestHeadersNames, variables.TX:
			default:
				return false
			}
		}
	}
	return true
}

// headMatches evaluates the first link of r on a transaction, as Coraza
// would (nil operator: it matches).
func headMatches(state plugintypes.TransactionState, r *compiledRule) bool {
	if r.op == nil {
		return true
	}
	for vi := range r.vars {
		for _, md := range getField(state, &r.vars[vi]) {
			values := []string{applyChain(md.Value(), r.trans)}
			if r.multiMatch {
				values = multiTransform(md.Value(), r.trans)
			}
			for _, v := range values {
				if r.op.Evaluate(state, v) != r.negated {
					return true
				}
			}
		}
	}
	return false
}

// staticMacros reports whether every TX macro in the rule reads a static
// variable or one the rule itself captures or sets.
func staticMacros(r *compiledRule, dyn *txNames) bool {
	head, _, _ := strings.Cut(r.raw, "\nSecRule")
	own := map[string]bool{"0": true}
	for _, m := range setvars(head) {
		own[strings.ToLower(m)] = true
	}
	for _, m := range macros(r.raw) {
		name, ok := strings.CutPrefix(strings.ToLower(m), "tx.")
		if ok && !own[name] && dyn.has(name) {
			return false
		}
	}
	return true
}

func removableStatic(r *compiledRule) bool {
	if r.hasMsg || r.chain != nil {
		return false
	}
	for _, a := range r.actions {
		if !removeSafe[a] {
			return false
		}
	}
	return true
}

func skipAfterOf(r *compiledRule) string {
	for _, a := range r.actions {
		if a == "skipafter" {
			i := strings.Index(strings.ToLower(r.raw), "skipafter:")
			rest := r.raw[i+len("skipafter:"):]
			rest = strings.TrimPrefix(rest, "'")
			end := strings.IndexAny(rest, "',\"")
			if end < 0 {
				end = len(rest)
			}
			return rest[:end]
		}
	}
	return ""
}

func skipOf(r *compiledRule) int {
	if !slices.Contains(r.actions, "skip") {
		return 0
	}
	if m := skipRx.FindStringSubmatch(r.raw); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func readsAny(n *txNames, names []string) bool {
	for _, name := range names {
		if n.has(name) {
			return true
		}
	}
	return false
}

// prune removes from tx every rule the plan proved irrelevant: static
// rules (their TX values are prefilled instead), unreachable rules, and
// gate rules not in cand (the candidates a run must have, see run). A rule
// that a possibly running skip:N would skip stays, so the skip counts the
// same rules.
//
// The rules go as ranges of ids (pruneFacts), a few dozen, rather than
// one by one: Coraza keeps ids removed one by one in a map it builds per
// transaction, which for some 250 ids cost more than the ranges it then
// checks rule by rule.
func (p *plan) prune(tx types.Transaction, cand []int) {
	prefill(tx, p.static)
	n := len(p.rules)
	isCand := make([]bool, n)
	for _, c := range cand {
		isCand[p.gate[c].index] = true
	}
	protect := make([]bool, n)
	for i, skipped := range p.skipped {
		if p.keep[i] || isCand[i] {
			for _, j := range skipped {
				protect[j] = true
			}
		}
	}
	gone := slices.Clone(p.gone)
	for _, g := range p.gate {
		if !isCand[g.index] && !protect[g.index] {
			gone[g.index] = true
		}
	}
	first, last := -1, 0
	for _, i := range p.byID {
		switch id := p.rules[i].id; {
		case gone[i] && first < 0:
			first, last = id, id
		case gone[i]:
			last = id
		case first >= 0:
			tx.(ruleRemover).RemoveRuleByIDRange(first, last)
			first = -1
		}
	}
	if first >= 0 {
		tx.(ruleRemover).RemoveRuleByIDRange(first, last)
	}
}

// pruneFacts records what prune needs: the rules' indexes in id order,
// and which rules every slow run removes (p.remove, and the rules outside
// the profile, which profileTx removes: prune may take them in its ranges
// or not).
func (p *plan) pruneFacts() {
	p.byID = make([]int, len(p.rules))
	for i := range p.byID {
		p.byID[i] = i
	}
	slices.SortStableFunc(p.byID, func(a, b int) int { return cmp.Compare(p.rules[a].id, p.rules[b].id) })
	p.gone = make([]bool, len(p.rules))
	for i, r := range p.rules {
		p.gone[i] = slices.Contains(p.remove, r.id) || p.gateOf[i] < 0 && !p.keep[i] && r.id != 0
	}
}

// baseline is the result of an event no gate rule matches.
func (p *plan) baseline(violations []source.Violation) Result {
	res := p.base
	res.Matches = append([]Match(nil), p.base.Matches...)
	addViolations(&res, violations)
	return res
}

type txValue struct{ name, value string }

func prefill(tx types.Transaction, static []txValue) {
	col := tx.(plugintypes.TransactionState).Variables().TX()
	for _, v := range static {
		// A fresh slice each time: Coraza changes values in place.
		col.Set(v.name, []string{v.value})
	}
}
