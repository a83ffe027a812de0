package waf

import (
	"fmt"
	"math/bits"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/lambdarasp/lambdarasp/internal/source"
)

// The gate decides, for one event, which gate rules' first links can match
// (see plan). It evaluates them the way Coraza's rule evaluation does —
// the same variable selection, transformations and operator objects — but
// batched across rules, so that the work per value is one pass over its
// bytes and one multi-pattern scan rather than one operator call per rule:
//
//   - rules are grouped by each variable they read (ARGS, REQUEST_HEADERS:
//     User-Agent, … with their exceptions: a rule reading five variables
//     is in five groups, and each value is visited once per group, not
//     once per rule's list) and, within it, by transformation chain;
//   - a chain is applied only when the value has a byte, a byte pair or
//     an end its transformations react to (trans.go); clean text mostly
//     has none, so most chains are the identity;
//   - each distinct transformed value is scanned once (ASCII letters
//     lowercased as it is read), with
//     one Aho-Corasick automaton, for the atoms of every rule (atoms.go:
//     strings one of which every match of the operator contains);
//   - an operator runs only where one of its atoms occurs, or always when
//     it has none (libinjection, byte ranges, the few patterns without),
//     and an @rx only where the bytes one of its branches needs occur
//     (bytes.go).
type gateIndex struct {
	atoms *atomIndex
	// posting[mode][atom id] → the gate rules (indexes in plan.gate)
	// gated on the atom; mode 1 is atoms of values with evasionChars
	// deleted (see bestAtoms).
	posting [2][][]int
	// moded[m] is the gate rules with atoms of mode m: a string is
	// scanned in a mode only when one of them is to be evaluated on it.
	moded [2]bitset
	words int // length of a gate-rule bitset
	// selWords is the length of a selection bitset: a string's clean
	// selections (see gateEval.value) follow its hits, done and matched.
	selWords int
	// volatile are the gate rules whose operator argument has macros: its
	// answer depends on the transaction, not only on the string.
	volatile bitset
	sels     []gateSel
	chains   [][]int32 // chain id → its steps, indexes in steps
	// steps are the distinct transformations of every chain, with the
	// byte features without which each is the identity (trans.go).
	steps    []plugintypes.Transformation
	stepTrig []uint16
}

// gateSel is the gate rules of one phase that read the same variable.
type gateSel struct {
	id     int // index in gateIndex.sels
	phase  int
	v      ruleVar
	chains []gateChain
	// trigger is every byte feature a chain of the selection reacts to;
	// rules and always are the union of its chains': a value with none of
	// trigger is the same string to every chain.
	trigger       uint16
	rules, always bitset
	// volatile: some rule of the selection has a volatile argument, so
	// its answers are not the string's alone and it is never clean.
	volatile bool
	// keyAtoms, for a variable selected by a key regex, finds the atoms
	// one of which every key the regex matches contains (nil: none known).
	keyAtoms *atomFilter
}

type gateChain struct {
	id      int  // index in gateIndex.chains
	multi   bool // multiMatch: the operator sees the value after each step
	trigger uint16
	rules   bitset // rules of this selection with this chain
	always  bitset // of those, rules with no atoms
}

type bitset []uint64

func (b bitset) has(i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b bitset) set(i int)      { b[i>>6] |= 1 << (i & 63) }

// buildGate indexes the gate rules of p; their atoms are numbered in
// index, shared by both profiles.
func (p *plan) buildGate(index *atomIndex) {
	ix := &p.ix
	ix.atoms = index
	ix.words = (len(p.gate) + 63) / 64
	ix.volatile = make(bitset, ix.words)
	ix.moded = [2]bitset{make(bitset, ix.words), make(bitset, ix.words)}
	selOf := map[string]int{}
	chainOf := map[string]int{}
	stepOf := map[uintptr]int32{}
	for gi := range p.gate {
		gr := &p.gate[gi]
		r := gr.r
		if gr.unknown {
			continue // a candidate whatever the values
		}
		ck := fmt.Sprint(r.multiMatch, r.transIDs)
		cid, ok := chainOf[ck]
		if !ok {
			cid = len(ix.chains)
			chainOf[ck] = cid
			var chain []int32
			for ti, pc := range r.transIDs {
				id, ok := stepOf[pc]
				if !ok {
					id = int32(len(ix.steps))
					stepOf[pc] = id
					ix.steps = append(ix.steps, r.trans[ti])
					ix.stepTrig = append(ix.stepTrig, chainTrigger([]uintptr{pc}))
				}
				chain = append(chain, id)
			}
			ix.chains = append(ix.chains, chain)
		}
		ra := index.of(r)
		for vi := range r.vars {
			sk := selectionKey(r.phase, &r.vars[vi])
			si, ok := selOf[sk]
			if !ok {
				si = len(ix.sels)
				selOf[sk] = si
				sel := gateSel{id: si, phase: r.phase, v: r.vars[vi], rules: make(bitset, ix.words), always: make(bitset, ix.words)}
				if rx := sel.v.keyRx; rx != nil {
					if set, ok := atoms(rx.String()); ok {
						sel.keyAtoms = newAtomFilter(set, false)
					}
				}
				ix.sels = append(ix.sels, sel)
			}
			sel := &ix.sels[si]
			ci := -1
			for i := range sel.chains {
				if sel.chains[i].id == cid {
					ci = i
				}
			}
			if ci < 0 {
				ci = len(sel.chains)
				sel.chains = append(sel.chains, gateChain{id: cid, multi: r.multiMatch, trigger: chainTrigger(r.transIDs),
					rules: make(bitset, ix.words), always: make(bitset, ix.words)})
			}
			sel.chains[ci].rules.set(gi)
			sel.rules.set(gi)
			sel.trigger |= sel.chains[ci].trigger
			if !ra.ok {
				sel.chains[ci].always.set(gi)
				sel.always.set(gi)
			}
		}
		if strings.Contains(r.opData, "%{") {
			ix.volatile.set(gi)
			for vi := range r.vars {
				ix.sels[selOf[selectionKey(r.phase, &r.vars[vi])]].volatile = true
			}
		}
		if !ra.ok {
			continue
		}
		ix.moded[ra.mode].set(gi)
		posting := &ix.posting[ra.mode]
		for _, id := range ra.ids {
			for int(id) >= len(*posting) {
				*posting = append(*posting, nil)
			}
			(*posting)[id] = append((*posting)[id], gi)
		}
	}
	ix.selWords = (len(ix.sels) + 63) / 64
}

// bitsLen is the length of a string's bitsets in strCache.arena: hits,
// done and matched (words each), then clean (selWords).
func (ix *gateIndex) bitsLen() int { return 3*ix.words + ix.selWords }

// atomIndex numbers the atoms of the gate rules of both profiles, which
// share most rules; one automaton per mode (built by New once both are
// planned) finds them all.
type atomIndex struct {
	rules map[*compiledRule]ruleAtoms
	ids   [2]map[string]int32
	list  [2][]string
	ac    [2]*acMatcher
}

type ruleAtoms struct {
	ids  []int32
	ok   bool
	mode int // 1: atoms of the value with evasionChars deleted
}

func newAtomIndex() *atomIndex {
	return &atomIndex{rules: map[*compiledRule]ruleAtoms{}, ids: [2]map[string]int32{{}, {}}}
}

// of returns the rule's atoms (see opAtoms).
func (x *atomIndex) of(r *compiledRule) ruleAtoms {
	if a, ok := x.rules[r]; ok {
		return a
	}
	set, ok, deleted := opAtoms(r)
	a := ruleAtoms{ok: ok}
	if deleted {
		a.mode = 1
	}
	for _, s := range set {
		id, seen := x.ids[a.mode][s]
		if !seen {
			id = int32(len(x.list[a.mode]))
			x.ids[a.mode][s] = id
			x.list[a.mode] = append(x.list[a.mode], s)
		}
		a.ids = append(a.ids, id)
	}
	x.rules[r] = a
	return a
}

func (x *atomIndex) build() {
	for m := range x.ac {
		x.ac[m] = newACMatcher(x.list[m])
	}
}

// selectionKey identifies what a variable selects, phase included.
func selectionKey(phase int, v *ruleVar) string {
	rx := func(re *regexp.Regexp) string {
		if re == nil {
			return "-"
		}
		return re.String()
	}
	k := strconv.Itoa(phase) + "|" + strconv.Itoa(int(v.v)) + ":" + strconv.Quote(v.keyStr) + ":" + rx(v.keyRx) + ":" + strconv.FormatBool(v.count)
	for _, ex := range v.exceptions {
		k += "!" + strconv.Quote(ex.keyStr) + ":" + rx(ex.keyRx)
	}
	return k
}

// opAtoms returns the atoms a value must contain one of for the rule's
// first link to match, or ok=false when there are none to rely on.
func opAtoms(r *compiledRule) (set []string, ok, deleted bool) {
	if r.negated || strings.Contains(r.opData, "%{") {
		return nil, false, false
	}
	switch r.opName {
	case "rx":
		return patternAtoms(r.opData)
	case "contains", "beginsWith", "endsWith", "streq":
		// Byte-wise: the value contains the argument.
		if r.opData == "" {
			return nil, false, false
		}
		return []string{asciiLower(r.opData)}, true, false
	case "detectXSS":
		// libinjection's HTML5 tokenizer reports XSS only on a tag, doctype
		// or comment (all start at a '<') or on an attribute value after a
		// dangerous attribute name (a value after a name needs '='); the
		// value it starts inside is judged without a name. So every value
		// it flags has one of these (libinjection-go v0.3: xss.go, html5.go;
		// TestXSSNeedsLtOrEquals holds the library to it).
		return []string{"<", "="}, true, false
	case "pm", "pmFromFile", "pmf":
		// lowercased phrases, matched ASCII case-insensitively anywhere
		// in the value.
		if o, ok := r.op.(*lazyPM); ok {
			set, ok := phrases(o.dict)
			return set, ok, false
		}
	}
	return nil, false, false
}

func phrases(list []string) ([]string, bool) {
	seen := map[string]bool{}
	var set []string
	for _, s := range list {
		if s == "" {
			return nil, false // matches every value
		}
		if !seen[s] {
			seen[s] = true
			set = append(set, s)
		}
	}
	return set, len(set) > 0
}

// gateEval evaluates the gate over one populated, never-evaluated
// transaction, with a strCache that may outlive it.
type gateEval struct {
	*strCache
	p     *plan
	state plugintypes.TransactionState
	cand  bitset
	// derived are the long strings transformations made for the current
	// value, with their slot in nexts: forgotten once it is evaluated.
	derived [][2]int32
	// args are the body's arguments when the gate holds them (setArgs):
	// the transaction then has none.
	args []arg
	// headers are the request's headers when ownHeaders is set: the
	// transaction then has only the Cookie headers (for Coraza to parse
	// REQUEST_COOKIES), and REQUEST_HEADERS is read from these, as
	// AddRequestHeader would have added them.
	headers    []source.Header
	ownHeaders bool
}

// fieldValues is a collection query's result: each value's key, the key
// lowercased (as Coraza's case-insensitive collections match keys), and
// the value's index in the string cache.
type fieldValues struct {
	keys, lower []string
	ids         []int32
}

// strCache holds what the gate learns about strings, keyed by content,
// since events repeat values (array items, batch records): per distinct
// string, its byte features, the gate rules whose atoms it contains, the
// rules already evaluated on it and those that matched, and what each
// transformation step makes of it. An operator's answer depends
// only on the rule and the string — except for an argument with macros
// (plan.ix.volatile), which is evaluated again for each transaction — so
// a cache serves every record of one event.
type strCache struct {
	strs  map[string]int32 // → index in info
	info  []strInfo
	arena []uint64 // per string, bitsLen words: see gateIndex.bitsLen
	nexts []int32  // per string, step → 1 + index of the string it makes, 0 until known
	found []int32  // scan's scratch
	// fields caches the gate's collection queries of one phase; their
	// keys, lowered keys and ids are slices of keys, lower and ids.
	fields      map[fieldQuery]fieldValues
	keys, lower []string
	ids         []int32
	// groups, stepBuf, candBuf and argBuf are gateEval's scratch, kept
	// with the cache so that the next event reuses them.
	groups  []evalGroup
	stepBuf []int32
	candBuf bitset
	candAll bitset // value's
	argBuf  []arg
	// warm is what the plan knew of strings before this event, and learns
	// from it at release; nil keeps the cache to one event.
	warm *warmCache
}

// strCaches keeps the string caches of finished events: an event's cache
// grows to a few hundred strings and their bitsets, which the next event
// reuses instead of growing them again.
var strCaches = sync.Pool{New: func() any {
	return &strCache{strs: map[string]int32{}, fields: map[fieldQuery]fieldValues{}}
}}

// maxPooledStrings is the most strings a cache may hold to go back to the
// pool: a cache grown by a huge event is dropped, not kept. A 64 KB JSON
// body makes about 6,000 (its keys, values and their transformed forms);
// a cache of 16,384 holds a few MB, which the pool lets go when unused.
const maxPooledStrings = 16384

// newStrCache returns an empty cache that starts from, and teaches, warm.
func newStrCache(warm *warmCache) *strCache {
	c := strCaches.Get().(*strCache)
	c.warm = warm
	if warm != nil {
		warm.mu.RLock() // until release (see warmCache)
	}
	return c
}

// release gives what the event learnt to the warm cache and returns c to
// the pool, emptied; c must not be used afterwards.
func (c *strCache) release() {
	if c.warm != nil {
		c.warm.mu.RUnlock()
		c.warm.learn(c)
		c.warm = nil
	}
	if len(c.info) > maxPooledStrings {
		return
	}
	clear(c.strs)
	clear(c.info) // drop the references to the event's strings
	clear(c.keys)
	clear(c.lower)
	clear(c.fields)
	clear(c.argBuf[:cap(c.argBuf)]) // drop the references to the event's names
	c.info, c.arena, c.nexts, c.found, c.keys, c.lower, c.ids = c.info[:0], c.arena[:0], c.nexts[:0], c.found[:0], c.keys[:0], c.lower[:0], c.ids[:0]
	strCaches.Put(c)
}

type fieldQuery struct {
	v   variables.RuleVariable
	key string
	rx  *regexp.Regexp
}

type strInfo struct {
	s    string
	feat uint16
	bits int32 // offset in arena of its bitsets (gateIndex.bitsLen); -1 until needed
	// scanned has bit m set once hits has the rules of the atoms of mode m.
	scanned uint8
	next    int32 // offset in nexts of its step results (see step); -1 until needed
	warm    *warmStr
	// learnt: this event learnt something of it (bits or step results)
	// that the warm cache may not have.
	learnt bool
}

// newGateEval evaluates p's gate on tx, with the string cache c.
// Only one gateEval of a cache is used at a time: they share its scratch.
func newGateEval(p *plan, tx types.Transaction, c *strCache) *gateEval {
	if cap(c.candBuf) < p.ix.words {
		c.candBuf = make(bitset, p.ix.words)
	}
	c.candBuf = c.candBuf[:p.ix.words]
	clear(c.candBuf)
	if cap(c.candAll) < p.ix.words {
		c.candAll = make(bitset, p.ix.words)
	}
	return &gateEval{
		strCache: c,
		p:        p,
		state:    tx.(plugintypes.TransactionState),
		cand:     c.candBuf,
	}
}

// candidates appends to dst the index (in p.gate) of every gate rule of the
// phase whose first link may match: it matched a value, or it cannot be
// decided before Coraza runs.
func (g *gateEval) candidates(dst []int, phase int) []int {
	clear(g.fields) // the caller adds values between phases
	ix := &g.p.ix
	for i := range ix.sels {
		sel := &ix.sels[i]
		if sel.phase != phase {
			continue
		}
		if sel.keyAtoms != nil && !g.anyKeyShows(sel.v.v, sel.keyAtoms) {
			continue // the key regex matches no key
		}
		g.values(sel, &sel.v)
	}
	for gi, gr := range g.p.gate {
		if gr.r.phase == phase && (gr.unknown || g.cand.has(gi)) {
			dst = append(dst, gi)
		}
	}
	return dst
}

// anyKeyShows reports whether a key of the variable's collection shows one
// of the atoms, as a key regex sees it: Coraza matches the regex on the key
// as stored, which is the key or (in case-insensitive collections) its
// strings.ToLower; both are checked.
func (g *gateEval) anyKeyShows(v variables.RuleVariable, atoms *atomFilter) bool {
	fv := g.query(&ruleVar{v: v})
	for i, k := range fv.keys {
		if atoms.shows(k) || fv.lower[i] != k && atoms.shows(fv.lower[i]) {
			return true
		}
	}
	return false
}

// values evaluates the selection's rules on the values of one of its
// variables, as getField selects them.
func (g *gateEval) values(sel *gateSel, rv *ruleVar) {
	fv := g.query(rv)
	n := 0
	for i := range fv.keys {
		if len(rv.exceptions) > 0 && excepted(rv.exceptions, fv.lower[i]) {
			continue
		}
		n++
		if !rv.count {
			g.value(sel, fv.ids[i])
			g.forget()
		}
	}
	if rv.count {
		g.value(sel, g.str(strconv.Itoa(n)))
	}
}

// query is what query(state, rv) selects, once per phase, with each
// value's index in the string cache; the body's arguments, when the gate
// holds them (see args), are added to the collections that hold them in
// Coraza. A key or key regex selects from the collection's entries (see
// entries) as Coraza's collections select (see selects).
func (g *gateEval) query(rv *ruleVar) fieldValues {
	q := fieldQuery{rv.v, rv.keyStr, rv.keyRx}
	if fv, ok := g.fields[q]; ok {
		return fv
	}
	own := rv.v
	if g.args != nil {
		switch rv.v {
		case variables.Args:
			own = variables.ArgsGet
		case variables.ArgsNames:
			own = variables.ArgsGetNames
		case variables.ArgsPost, variables.ArgsPostNames:
			own = variables.Unknown
		}
	}
	whole := rv.keyStr == "" && rv.keyRx == nil
	if own == rv.v && whole {
		return g.entries(own)
	}
	var all fieldValues
	if own != variables.Unknown {
		all = g.entries(own) // before start: it may append
	}
	start := len(g.keys)
	if own != variables.Unknown {
		_, keyed := g.state.Collection(own).(collection.Keyed)
		for i := range all.keys {
			if whole || keyed && selects(rv, all.lower[i]) {
				g.keys, g.lower, g.ids = append(g.keys, all.keys[i]), append(g.lower, all.lower[i]), append(g.ids, all.ids[i])
			}
		}
	}
	if own != rv.v {
		names := rv.v == variables.ArgsNames || rv.v == variables.ArgsPostNames
		for _, a := range g.args {
			if !selects(rv, a.lower) {
				continue
			}
			g.keys, g.lower = append(g.keys, g.info[a.name].s), append(g.lower, a.lower)
			if names {
				g.ids = append(g.ids, a.name)
			} else {
				g.ids = append(g.ids, a.value)
			}
		}
	}
	return g.keep(q, start)
}

// entries is every entry of the collection, once per phase: Coraza
// allocates for each query, so the gate makes one and selects from it.
func (g *gateEval) entries(v variables.RuleVariable) fieldValues {
	q := fieldQuery{v: v}
	if fv, ok := g.fields[q]; ok {
		return fv
	}
	if base, ok := namesOf[v]; ok {
		// The names of a collection are its keys: no second query.
		all := g.entries(base)
		start := len(g.keys)
		for i, k := range all.keys {
			g.keys, g.lower, g.ids = append(g.keys, k), append(g.lower, all.lower[i]), append(g.ids, g.str(k))
		}
		return g.keep(q, start)
	}
	start := len(g.keys)
	if v == variables.RequestHeaders && g.ownHeaders {
		for _, h := range g.headers {
			if h.Name != "" { // AddRequestHeader ignores those
				g.keys, g.lower, g.ids = append(g.keys, h.Name), append(g.lower, strings.ToLower(h.Name)), append(g.ids, g.str(h.Value))
			}
		}
		return g.keep(q, start)
	}
	switch col := g.state.Collection(v).(type) {
	case nil:
	case collection.Single:
		g.keys, g.lower, g.ids = append(g.keys, ""), append(g.lower, ""), append(g.ids, g.str(col.Get()))
	default:
		for _, m := range col.FindAll() {
			k := m.Key()
			g.keys, g.lower, g.ids = append(g.keys, k), append(g.lower, strings.ToLower(k)), append(g.ids, g.str(m.Value()))
		}
	}
	return g.keep(q, start)
}

// namesOf maps a collection of names to the collection whose keys they
// are (Coraza v3.8.1: NamedCollection.Names).
var namesOf = map[variables.RuleVariable]variables.RuleVariable{
	variables.RequestHeadersNames:  variables.RequestHeaders,
	variables.RequestCookiesNames:  variables.RequestCookies,
	variables.ArgsGetNames:         variables.ArgsGet,
	variables.ArgsPostNames:        variables.ArgsPost,
	variables.ResponseHeadersNames: variables.ResponseHeaders,
	variables.MatchedVarsNames:     variables.MatchedVars,
}

// keep caches the query whose values were appended from start on.
func (g *gateEval) keep(q fieldQuery, start int) fieldValues {
	end := len(g.keys)
	fv := fieldValues{keys: g.keys[start:end:end], lower: g.lower[start:end:end], ids: g.ids[start:end:end]}
	g.fields[q] = fv
	return fv
}

// selects reports whether the variable's key selects an entry whose
// lowercased key is lower, as Coraza v3.8.1 selects: its collections
// keep their keys lowercased and lowercase the key looked up, except a
// collection of names, which looks it up as the rule wrote it (Coraza
// lowercases a rule's key, but not for the ARGS variables), so that
// ARGS_NAMES:Q selects nothing (and &ARGS_NAMES:Q is 0).
func selects(rv *ruleVar, lower string) bool {
	switch {
	case rv.keyRx != nil:
		return rv.keyRx.MatchString(lower)
	case rv.keyStr != "":
		if _, names := namesOf[rv.v]; names || rv.v == variables.ArgsNames {
			return rv.keyStr == lower
		}
		return rv.keyLower == lower
	}
	return true
}

// arg is an argument of the body held by the gate: its name and value,
// indexes in the string cache, and its name lowercased.
type arg struct {
	name, value int32
	lower       string
}

// setArgs has the gate hold the fields as the body's arguments (ARGS_POST),
// named as addFields names them, instead of reading them from the
// transaction: a field's name and value become strings of the cache once,
// and names repeated across events come from the warm cache, not a copy.
func (g *gateEval) setArgs(fields []source.Field) {
	var name []byte
	g.args = g.argBuf[:0]
	defer func() { g.argBuf = g.args[:0] }()
	for _, f := range fields {
		name = ArgName(name[:0], f.Name)
		ni := g.strBytes(name)
		g.args = append(g.args, arg{ni, g.str(f.Value), strings.ToLower(g.info[ni].s)})
	}
}

// value evaluates the selection's rules on one of its values, string vi.
//
// A value on which no rule of the selection matches is clean for the
// selection, and is not evaluated again, in this event or (through the
// warm cache) later ones: a rule's answer on a string is the string's
// alone, unless the selection is volatile. It is known when no rule of
// the selection is a candidate after the evaluation: none was before
// (candidates only grow), so each was evaluated, and none matched.
//
// When some rules of the selection are candidates already (an attack in
// an earlier value), the others alone cannot tell; a string the warm
// cache keeps (met in earlier events, likely in later ones) is then
// evaluated against every rule of the selection, most answers known from
// those events, so that it can be marked all the same.
func (g *gateEval) value(sel *gateSel, vi int32) {
	if g.info[vi].bits >= 0 && g.clean(vi).has(sel.id) {
		return
	}
	if sel.volatile {
		g.evaluateValue(sel, vi)
		return
	}
	if g.info[vi].warm == nil || !g.anyCand(sel.rules) {
		g.evaluateValue(sel, vi)
		if !g.anyCand(sel.rules) {
			g.markClean(vi, sel)
		}
		return
	}
	cand := g.cand
	g.cand = g.candAll[:len(cand)]
	clear(g.cand)
	g.evaluateValue(sel, vi)
	clean := !g.anyCand(sel.rules)
	for w := range cand {
		cand[w] |= g.cand[w]
	}
	g.cand = cand
	if clean {
		g.markClean(vi, sel)
	}
}

func (g *gateEval) evaluateValue(sel *gateSel, vi int32) {
	if g.info[vi].feat&sel.trigger == 0 {
		// No chain changes it (most values of clean events).
		g.evaluate(vi, sel.rules, sel.always)
		return
	}
	// Chains that leave the value as it is or make the same string of it
	// are evaluated together.
	g.groups = g.groups[:0]
	for ci := range sel.chains {
		ch := &sel.chains[ci]
		if !g.pending(ch.rules) {
			continue
		}
		switch {
		case g.info[vi].feat&ch.trigger == 0:
			g.group(vi, ch)
		case ch.multi:
			for _, ti := range g.steps(vi, int32(ch.id)) {
				g.group(ti, ch)
			}
		default:
			g.group(g.transform(vi, int32(ch.id)), ch)
		}
	}
	for i := range g.groups {
		gr := &g.groups[i]
		g.evaluate(gr.ti, gr.rules, gr.always)
	}
}

// evalGroup is the rules of a value's chains that see the same string.
type evalGroup struct {
	ti            int32
	rules, always bitset
}

// group adds the chain's rules to the group of string ti.
func (g *gateEval) group(ti int32, ch *gateChain) {
	var gr *evalGroup
	for i := range g.groups {
		if g.groups[i].ti == ti {
			gr = &g.groups[i]
			break
		}
	}
	if gr == nil {
		// Reuse the bitsets of an earlier value's group when there is one
		// (of this plan: the cache serves both).
		if n := len(g.groups); n < cap(g.groups) && len(g.groups[:n+1][n].rules) == len(ch.rules) {
			g.groups = g.groups[:n+1]
		} else {
			g.groups = append(g.groups, evalGroup{rules: make(bitset, len(ch.rules)), always: make(bitset, len(ch.rules))})
		}
		gr = &g.groups[len(g.groups)-1]
		gr.ti = ti
		clear(gr.rules)
		clear(gr.always)
	}
	for w := range ch.rules {
		gr.rules[w] |= ch.rules[w]
		gr.always[w] |= ch.always[w]
	}
}

// evaluate runs, on string ti, the operators of the rules that are not
// candidates yet, have an atom in it (or are in always) and have not run
// on it before.
func (g *gateEval) evaluate(ti int32, rules, always bitset) {
	hits, done, matched := g.scan(ti, rules)
	t := g.info[ti].s
	volatile := g.p.ix.volatile
	var have byteSet // t's bytes, once a rule needs them (got)
	got := false
	for w := range rules {
		want := (always[w] | hits[w]) & rules[w] &^ g.cand[w]
		known := done[w] &^ volatile[w]
		g.cand[w] |= want & known & matched[w] // answered for an earlier record
		todo := want &^ known
		for todo != 0 {
			gi := w<<6 | bits.TrailingZeros64(todo)
			todo &= todo - 1
			done.set(gi)
			g.info[ti].learnt = true
			if need := g.need(gi); need != nil {
				if !got {
					have, got = byteSetOf(t), true
				}
				if !need.admits(&have) {
					continue
				}
			}
			if g.run(&g.p.gate[gi], t) {
				matched.set(gi)
				g.cand.set(gi)
			}
		}
	}
}

// need is the bytes the matches of gate rule gi need (bytes.go), or nil.
func (g *gateEval) need(gi int) byteNeed {
	gr := &g.p.gate[gi]
	o, ok := gr.r.op.(lazyRX)
	if !ok || !o.filter || gr.r.negated {
		return nil
	}
	o.p.compile()
	return o.p.need
}

// run evaluates a gate rule's operator on t; an @rx is not asked to look
// for its atoms again (evaluate's callers know they occur, or that the
// rule has none), nor libinjection to ask the warm cache (the gate is
// what teaches it).
func (g *gateEval) run(gr *gateRule, t string) bool {
	switch o := gr.r.op.(type) {
	case lazyRX:
		if o.filter {
			return o.evaluate(g.state, t, false) != gr.r.negated
		}
	case *libOp:
		return o.run(g.state, t) != gr.r.negated
	}
	return gr.r.op.Evaluate(g.state, t) != gr.r.negated
}

// anyCand reports whether some of the rules are candidates.
func (g *gateEval) anyCand(rules bitset) bool {
	for w, r := range rules {
		if r&g.cand[w] != 0 {
			return true
		}
	}
	return false
}

// pending reports whether some of the rules are not candidates yet.
func (g *gateEval) pending(rules bitset) bool {
	for w, r := range rules {
		if r&^g.cand[w] != 0 {
			return true
		}
	}
	return false
}

// str returns the index of the distinct string s.
func (g *gateEval) str(s string) int32 {
	if i, ok := g.strs[s]; ok {
		return i
	}
	return g.add(s, g.warm.get(s))
}

// strBytes is str for a string in a scratch buffer: it is copied only
// when neither this event nor the warm cache has it.
func (g *gateEval) strBytes(b []byte) int32 {
	if i, ok := g.strs[string(b)]; ok {
		return i
	}
	if ws := g.warm.get(string(b)); ws != nil {
		return g.add(ws.s, ws)
	}
	return g.add(string(b), nil)
}

// add adds string s, which the cache does not have, with what the warm
// cache knows of it (ws, or nil).
func (g *gateEval) add(s string, ws *warmStr) int32 {
	i := int32(len(g.info))
	g.strs[s] = i
	g.info = append(g.info, strInfo{s: s, bits: -1, next: -1})
	if ws != nil {
		g.warm.load(g.strCache, i, ws)
	} else {
		g.info[i].feat = features(s)
	}
	return i
}

// scan returns the gate rules with an atom in string i, the rules already
// evaluated on it and those that matched. The string is scanned, once per
// mode, for the atoms of a mode when rules has one of that mode's rules
// that is not a candidate yet.
func (g *gateEval) scan(i int32, rules bitset) (hits, done, matched bitset) {
	n := int32(g.p.ix.words)
	off := g.bits(i)
	hits = g.arena[off : off+n]
	text, folded, first := g.info[i].s, "", true
	for m, ac := range g.p.ix.atoms.ac {
		if g.info[i].scanned&(1<<m) != 0 || !g.needs(rules, g.p.ix.moded[m]) {
			continue
		}
		g.info[i].scanned |= 1 << m
		g.info[i].learnt = true
		if first {
			folded, first = scanFolded(text), false
		}
		if m == 1 {
			text, folded = deleteChars(text, evasionChars), deleteChars(folded, evasionChars)
		}
		g.found = ac.scan(text, g.found[:0])
		if folded != "" {
			g.found = ac.scan(folded, g.found)
		}
		posting := g.p.ix.posting[m]
		for _, a := range g.found {
			if int(a) < len(posting) {
				for _, gi := range posting[a] {
					hits.set(gi)
				}
			}
		}
	}
	return hits, g.arena[off+n : off+2*n], g.arena[off+2*n : off+3*n]
}

// bits returns the offset of string i's bitsets in the arena, making
// them if it has none yet.
func (g *gateEval) bits(i int32) int32 {
	off := g.info[i].bits
	if off < 0 {
		off = int32(len(g.arena))
		g.arena = append(g.arena, make([]uint64, g.p.ix.bitsLen())...)
		g.info[i].bits = off
	}
	return off
}

func (g *gateEval) markClean(vi int32, sel *gateSel) {
	g.clean(vi).set(sel.id)
	g.info[vi].learnt = true
}

// clean returns the selections string i is clean for (see value).
func (g *gateEval) clean(i int32) bitset {
	ix := &g.p.ix
	off := g.bits(i) + int32(3*ix.words)
	return g.arena[off : off+int32(ix.selWords)]
}

// needs reports whether some of rules in mode are not candidates yet.
func (g *gateEval) needs(rules, mode bitset) bool {
	for w := range rules {
		if rules[w]&mode[w]&^g.cand[w] != 0 {
			return true
		}
	}
	return false
}

// steps returns the strings a multiMatch chain shows the operator: the
// value before the chain and after each transformation that changed it.
// The slice is scratch, valid until the next call.
func (g *gateEval) steps(i, chain int32) []int32 {
	out := append(g.stepBuf[:0], i)
	defer func() { g.stepBuf = out[:0] }()
	for _, st := range g.p.ix.chains[chain] {
		if j := g.step(i, st); j != i {
			i = j
			out = append(out, i)
		}
	}
	return out
}

// transform returns the index of string i after a chain.
func (g *gateEval) transform(i, chain int32) int32 {
	for _, st := range g.p.ix.chains[chain] {
		i = g.step(i, st)
	}
	return i
}

// step returns the index of string i after one transformation, applied as
// Coraza does (a failing one leaves the value as it was); chains share
// their steps through this cache, and a value without the step's trigger
// features is its own result.
func (g *gateEval) step(i, st int32) int32 {
	ix := &g.p.ix
	if g.info[i].feat&ix.stepTrig[st] == 0 {
		return i
	}
	off := g.info[i].next
	if off >= 0 && g.nexts[off+st] != 0 {
		return g.nexts[off+st] - 1
	}
	known := int32(len(g.info))
	out, ok := g.warmStep(i, st)
	if !ok {
		out = g.info[i].s
		if o, _, err := ix.steps[st](out); err == nil {
			out = o
		}
	}
	j := g.str(out)
	if off < 0 {
		off = int32(len(g.nexts))
		g.nexts = append(g.nexts, make([]int32, len(ix.steps))...)
		g.info[i].next = off
	}
	g.nexts[off+st] = j + 1
	g.info[i].learnt = true
	if j >= known && len(out) >= longValue { // a string this step made
		g.derived = append(g.derived, [2]int32{j, off + st})
	}
	return j
}

// warmStep returns what step st makes of string i, if the warm cache
// knows.
func (g *gateEval) warmStep(i, st int32) (string, bool) {
	ws := g.info[i].warm
	if ws == nil {
		return "", false
	}
	ok, same, out := g.warm.step(ws, st)
	if same {
		out = g.info[i].s
	}
	return out, ok
}

// forget drops the long strings made from the value just evaluated: a
// megabyte value has a dozen transformed forms, and an event of several
// would keep them all (an event of six 1 MB values peaked at 133 MB). A
// later selection that reads the value makes them again.
func (g *gateEval) forget() {
	for _, d := range g.derived {
		j, slot := d[0], d[1]
		if g.nexts[slot] == j+1 {
			g.nexts[slot] = 0
		}
		delete(g.strs, g.info[j].s)
		g.info[j].s = ""
	}
	g.derived = g.derived[:0]
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

// getField returns what Coraza's Transaction.GetField returns for the
// variable: the collection's values, selected by key, minus exceptions, or
// their count.
func getField(state plugintypes.TransactionState, rv *ruleVar) []types.MatchData {
	matches := query(state, rv)
	if len(rv.exceptions) > 0 {
		kept := make([]types.MatchData, 0, len(matches))
		for _, c := range matches {
			if !excepted(rv.exceptions, strings.ToLower(c.Key())) {
				kept = append(kept, c)
			}
		}
		matches = kept
	}
	if rv.count {
		return []types.MatchData{countData{rv, strconv.Itoa(len(matches))}}
	}
	return matches
}

// query is the collection's values selected by the variable's key, before
// exceptions.
func query(state plugintypes.TransactionState, rv *ruleVar) []types.MatchData {
	col := state.Collection(rv.v)
	if col == nil {
		return nil
	}
	switch {
	case rv.keyRx != nil:
		if m, ok := col.(collection.Keyed); ok {
			return m.FindRegex(rv.keyRx)
		}
		return nil
	case rv.keyStr != "":
		if m, ok := col.(collection.Keyed); ok {
			return m.FindString(rv.keyStr)
		}
		return nil
	}
	return col.FindAll()
}

// excepted reports whether an exception removes the entry whose key,
// lowercased, is lkey (Coraza's GetField).
func excepted(exs []ruleVarException, lkey string) bool {
	for _, ex := range exs {
		if (ex.keyRx != nil && ex.keyRx.MatchString(lkey)) || (ex.keyRx == nil && (ex.keyStr == "" || ex.keyLower == lkey)) {
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
