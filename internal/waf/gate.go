package waf

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"
)

// gateEval evaluates the first links of gate rules over one populated,
// never-evaluated transaction. It caches transformed and lowercased values
// for the transaction: many rules share a transformation chain and most
// transformations leave a clean value as it is.
type gateEval struct {
	p     *plan
	state plugintypes.TransactionState
	trans map[transKey]string
	lower map[strKey]string
}

type strKey struct {
	p *byte
	n int
}

type transKey struct {
	s     strKey
	chain int
}

func key(s string) strKey { return strKey{unsafe.StringData(s), len(s)} }

func newGateEval(p *plan, tx types.Transaction) *gateEval {
	return &gateEval{
		p:     p,
		state: tx.(plugintypes.TransactionState),
		trans: map[transKey]string{},
		lower: map[strKey]string{},
	}
}

// candidates appends to dst the index (in p.gate) of every gate rule of the
// phase whose first link may match: it matched a value, or it cannot be
// decided before Coraza runs.
func (g *gateEval) candidates(dst []int, phase int) []int {
	for i := range g.p.gate {
		gr := &g.p.gate[i]
		if gr.r.phase != phase {
			continue
		}
		if gr.unknown || g.matches(gr) {
			dst = append(dst, i)
		}
	}
	return dst
}

// allOf appends every gate rule of the phase: used when Coraza itself must
// parse the body, so the values are not known before it runs.
func (p *plan) allOf(dst []int, phase int) []int {
	for i := range p.gate {
		if p.gate[i].r.phase == phase {
			dst = append(dst, i)
		}
	}
	return dst
}

func (g *gateEval) matches(gr *gateRule) bool {
	r := gr.r
	for vi := range r.vars {
		for _, md := range getField(g.state, &r.vars[vi]) {
			if r.multiMatch {
				for _, t := range multiTransform(md.Value(), r.trans) {
					if g.evaluate(gr, t) {
						return true
					}
				}
				continue
			}
			if g.evaluate(gr, g.transform(gr, md.Value())) {
				return true
			}
		}
	}
	return false
}

func (g *gateEval) evaluate(gr *gateRule, t string) bool {
	if gr.atoms != nil {
		k := key(t)
		low, ok := g.lower[k]
		if !ok {
			low = asciiLower(t)
			g.lower[k] = low
		}
		if !containsAny(low, gr.atoms) {
			return false
		}
	}
	return gr.r.op.Evaluate(g.state, t) != gr.r.negated
}

// transform applies the rule's transformations as Coraza does: a failing
// transformation leaves the value as it was.
func (g *gateEval) transform(gr *gateRule, v string) string {
	if len(gr.r.trans) == 0 {
		return v
	}
	k := transKey{key(v), gr.chain}
	if t, ok := g.trans[k]; ok {
		return t
	}
	t := v
	for _, fn := range gr.r.trans {
		if out, _, err := fn(t); err == nil {
			t = out
		}
	}
	g.trans[k] = t
	return t
}

// multiTransform is Coraza's multiMatch: the value before the chain and
// after each transformation that changed it.
func multiTransform(v string, fns []plugintypes.Transformation) []string {
	out := []string{v}
	for _, fn := range fns {
		t, changed, err := fn(v)
		if err != nil || !changed {
			continue
		}
		v = t
		out = append(out, v)
	}
	return out
}

// getField returns what Coraza's Transaction.GetField returns for the
// variable: the collection's values, selected by key, minus exceptions, or
// their count.
func getField(state plugintypes.TransactionState, rv *ruleVar) []types.MatchData {
	col := state.Collection(rv.v)
	if col == nil {
		return nil
	}
	var matches []types.MatchData
	switch {
	case rv.keyRx != nil:
		if m, ok := col.(collection.Keyed); ok {
			matches = m.FindRegex(rv.keyRx)
		}
	case rv.keyStr != "":
		if m, ok := col.(collection.Keyed); ok {
			matches = m.FindString(rv.keyStr)
		}
	default:
		matches = col.FindAll()
	}
	if len(rv.exceptions) > 0 {
		n := 0
		for _, c := range matches {
			if !excepted(rv.exceptions, strings.ToLower(c.Key())) {
				matches[n] = c
				n++
			}
		}
		matches = matches[:n]
	}
	if rv.count {
		return []types.MatchData{countData{rv, strconv.Itoa(len(matches))}}
	}
	return matches
}

func excepted(exs []ruleVarException, lkey string) bool {
	for _, ex := range exs {
		if (ex.keyRx != nil && ex.keyRx.MatchString(lkey)) || (ex.keyRx == nil && (ex.keyStr == "" || strings.ToLower(ex.keyStr) == lkey)) {
			return true
		}
	}
	return false
}

// countData is the single value of a counted variable (&ARGS).
type countData struct {
	rv    *ruleVar
	value string
}

var _ types.MatchData = countData{}

func (c countData) Variable() variables.RuleVariable { return c.rv.v }
func (c countData) Key() string                      { return c.rv.keyStr }
func (c countData) Value() string                    { return c.value }
func (c countData) Message() string                  { return "" }
func (c countData) Data() string                     { return "" }
func (c countData) ChainLevel() int                  { return 0 }
