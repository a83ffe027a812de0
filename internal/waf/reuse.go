package waf

import (
	"sync"

	"github.com/corazawaf/libinjection-go"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// When Coraza runs a plan's candidates (the slow path), it evaluates each
// candidate's operator on every value of its variables, though the gate
// (and the warm cache, across events) often knows the answer already:
// an attack in one value makes 942100 a candidate, and Coraza then runs
// libinjection on all the others. libOp is Coraza's @detectSQLi and
// @detectXSS (v3.8.1: internal/operators), registered in their place
// (useLazyOperators); in the fast engine's WAF, during a slow run, it
// returns the warm cache's answer when that answer is "no match" and
// runs libinjection otherwise. A match always runs, so its capture is
// Coraza's. The libinjection operators take no argument, so their
// answer is the string's alone.
type libOp struct {
	xss  bool // @detectXSS, else @detectSQLi
	fast bool // built for the fast engine's WAF (fastFS)
}

func newDetectSQLi(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	_, fast := o.Root.(fastFS)
	return &libOp{fast: fast}, nil
}

func newDetectXSS(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	_, fast := o.Root.(fastFS)
	return &libOp{xss: true, fast: fast}, nil
}

func (o *libOp) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if o.fast && knownNoMatch(tx, o, value) {
		return false
	}
	return o.run(tx, value)
}

// run is Evaluate without the warm cache: what the gate calls.
func (o *libOp) run(tx plugintypes.TransactionState, value string) bool {
	if o.xss {
		return libinjection.IsXSS(value)
	}
	res, fingerprint := libinjection.IsSQLi(value)
	if !res {
		return false
	}
	tx.CaptureField(0, fingerprint)
	return true
}

// slowRuns maps the transaction of each slow run in progress to its plan.
var slowRuns sync.Map // plugintypes.TransactionState → *plan

// slowRun registers tx as a slow run of p, with p's warm cache read-locked
// until the returned func is called. A batch's string cache holds the
// same read lock meanwhile: read locks nest safely here because the
// cache is only ever written with TryLock, so no writer waits between.
func slowRun(tx plugintypes.TransactionState, p *plan) (end func()) {
	if p.warm == nil {
		return func() {}
	}
	p.warm.mu.RLock()
	slowRuns.Store(tx, p)
	return func() {
		slowRuns.Delete(tx)
		p.warm.mu.RUnlock()
	}
}

// knownNoMatch reports whether, in a slow run, the warm cache knows that
// the gate rule whose operator is op does not match value.
func knownNoMatch(tx plugintypes.TransactionState, op plugintypes.Operator, value string) bool {
	v, ok := slowRuns.Load(tx)
	if !ok {
		return false
	}
	p := v.(*plan)
	gi, ok := p.opGate[op]
	if !ok {
		return false
	}
	ws := p.warm.get(value)
	if ws == nil || ws.bits == nil {
		return false
	}
	w := p.ix.words
	done, matched := bitset(ws.bits[w:2*w]), bitset(ws.bits[2*w:3*w])
	// matched is the rule's answer, negation applied (gateEval.run).
	return done.has(gi) && matched.has(gi) == p.gate[gi].r.negated
}
