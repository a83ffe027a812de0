// Package waf runs Coraza with the lambdarasp rule set over the requests and
// records that package source extracts from Lambda events.
//
// An Engine is built once (it parses the rules: the expensive part of a
// cold start; their operators compile on first use, operators.go) and is
// safe for concurrent use. Each Engine.Request, and each Batch.Record for
// the records of one event, first asks the fast path (plan.go, gate.go)
// which rules could match; Coraza then runs with only those of them whose
// match could change the result (settle.go), or not at all when none
// could. What the fast path learns of short strings is kept across
// events, bounded (warm.go).
package waf

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/lambdarasp/lambdarasp/internal/source"
	"github.com/lambdarasp/lambdarasp/rules"
)

// Engine-made findings: a bound was exceeded, so part of the input was not
// inspected and it is blocked rather than passed on unseen.
const (
	RuleDepth  = 100901 // JSON nested deeper than the depth limit
	RuleFields = 100902 // more values in one record than the field limit
	RuleValue  = 100903 // one value longer than the value limit
)

var boundRules = map[source.Bound]struct {
	id  int
	msg string
}{
	source.BoundDepth:  {RuleDepth, "JSON nesting exceeds the depth limit"},
	source.BoundFields: {RuleFields, "More values than the field limit"},
	source.BoundValue:  {RuleValue, "Value exceeds the value size limit"},
}

// Engine inspects HTTP requests and event records. The zero value is not
// usable; build one with New.
type Engine struct {
	waf coraza.WAF
	// http and record are the fast-path plans; nil runs every rule on
	// every event (the reference).
	http, record *plan
	// argLimit is SecArgumentsLimit: Coraza keeps no more arguments of a
	// kind, and the gate holds a body's arguments itself only up to it.
	argLimit int
}

// Coraza's transaction implements these; New checks that it still does.
type (
	// ruleRemover lets the event profile drop HTTP-only rules per
	// transaction, without a second WAF and a second rule compilation.
	ruleRemover interface {
		RemoveRuleByIDRange(start, end int)
		RemoveRuleByID(id int)
	}
	// setter lets a JSON body bypass Coraza's JSON parser.
	setter interface{ Set(string) }
)

// New compiles the rule set s describes, once, at init: Coraza parses the
// rules (their @rx, @pm and @pmFromFile operators compile on first use,
// see lazyRX), and the fast path is planned (the atoms of the embedded
// rules come precomputed from atoms.bin). About 30 ms of CPU for the CRS
// at paranoia level 1; see bench/RESULTS.md.
//
// With reference set, every event runs through every rule (the evaluation
// the fast path is tested against); otherwise New also reads the compiled
// rules and plans the fast path (see plan).
func New(s rules.Settings, reference bool) (*Engine, error) {
	if reference {
		s.All = true // every rule, as raw Coraza would load them
	}
	d, root, err := rules.Directives(s)
	if err != nil {
		return nil, err
	}
	if !reference {
		root = fastFS{root}
	}
	useLazyOperators()
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(root).WithDirectives(d))
	if err != nil {
		return nil, fmt.Errorf("compile rules: %w", err)
	}
	tx := w.NewTransaction()
	defer tx.Close()
	if _, ok := tx.(ruleRemover); !ok {
		return nil, errors.New("coraza transaction cannot remove rules by id range: unsupported Coraza version")
	}
	state, ok := tx.(plugintypes.TransactionState)
	if !ok {
		return nil, errors.New("coraza transaction does not expose its variables: unsupported Coraza version")
	}
	if _, ok := state.Variables().RequestBodyProcessor().(setter); !ok {
		return nil, errors.New("coraza request body processor cannot be set: unsupported Coraza version")
	}
	e := &Engine{waf: w, argLimit: s.MaxArgs}
	if reference {
		return e, nil
	}
	compiled, err := readRules(w)
	if err != nil {
		return nil, fmt.Errorf("read compiled rules for the fast path (%w); use the reference engine with this Coraza version", err)
	}
	facts := make([]ruleFacts, len(compiled))
	for i, r := range compiled {
		facts[i] = factsOf(r)
	}
	atoms := newAtomIndex()
	e.http = newPlan(w, atoms, compiled, facts, httpProfile)
	e.record = newPlan(w, atoms, compiled, facts, recordProfile)
	atoms.build()
	return e, nil
}

// Match is one rule that matched, with where it matched.
type Match struct {
	Rule    int
	Message string
	// Path names the matched value: the source.Field name ("body.user.name")
	// for fields, "query.id", "headers.user-agent", "cookies.s", "uri" for
	// the rest of a request.
	Path string
	// Data is the matched value as Coraza saw it (after transformations),
	// or "". It is attacker-controlled: callers redact it before logging.
	Data string
}

// Result is the outcome of one inspection.
type Result struct {
	// Blocked is true when the rule set interrupted the transaction
	// (anomaly score at or over the threshold, or a deny rule) or a bound
	// was exceeded.
	Blocked bool
	// Score is the CRS blocking inbound anomaly score.
	Score int
	// Matches lists the attack and bound rules that matched, in rule order;
	// CRS bookkeeping rules are left out.
	Matches []Match
}

// Request inspects one HTTP request as a web server in front of the function
// would have handed it to Coraza, with one difference: a JSON body (r.JSON)
// reaches the rules as the fields package source walked, named like record
// fields (see ArgName), instead of through Coraza's JSON parser.
func (e *Engine) Request(r *source.Request) Result {
	p := e.http
	if p == nil {
		return e.request(r, nil, nil)
	}
	cand := e.requestGate(r)
	if run := p.run(cand, e.prober(r, cand)); len(run) > 0 {
		return e.request(r, p, run)
	}
	return p.baseline(r.Violations)
}

// prober answers, for r, whether a probed gate rule among the candidates
// matches: from the memo when its headers were seen before, otherwise
// from one probe transaction run for all the probed candidates — with
// cheap set, only when the answer goes to the memo, so that those headers
// cost one probe transaction however often they recur.
func (e *Engine) prober(r *source.Request, cand []int) probeFunc {
	p := e.http
	var matched map[int]bool // rule id → matched; nil until the probe ran
	var key []byte
	return func(gi int, cheap bool) (bool, bool) {
		if !probes(r, p.gate[gi].r) {
			return false, false
		}
		k := slices.Index(p.probed, gi)
		memo := p.memo.answers[k] != nil
		if memo {
			key = probeKey(key[:0], p.gate[gi].r, r.Headers)
			if m, ok := p.memo.answer(k, key); ok {
				return m, true
			}
		}
		if matched == nil {
			if cheap && !memo {
				return false, false
			}
			matched = map[int]bool{}
			tx := e.probeRequest(r, cand)
			for _, mr := range tx.MatchedRules() {
				matched[mr.Rule().ID()] = true
			}
			tx.Close()
		}
		m := matched[p.gate[gi].r.id]
		if memo {
			p.memo.remember(k, key, m)
		}
		return m, true
	}
}

// probes reports whether the probe transaction sees what probed rule pr
// would see in Coraza's run over r: it gets a JSON body's fields, as
// request does, but never has Coraza parse a body itself, so it answers
// for another body only the rules that read nothing but the headers.
func probes(r *source.Request, pr *compiledRule) bool {
	return r.JSON || len(r.Body) == 0 || headersOnly(pr)
}

// probeRequest runs the probe WAF (settle.go) over r, with only the
// probed rules among the candidates that it answers for (probes). When
// they are phase 1 rules reading only request headers and TX, the
// transaction gets the headers and nothing else.
func (e *Engine) probeRequest(r *source.Request, cand []int) types.Transaction {
	p := e.http
	tx := p.probe.NewTransaction()
	headers := true
	for _, gi := range p.probed {
		switch pr := p.gate[gi].r; {
		case !slices.Contains(cand, gi) || !probes(r, pr):
			tx.(ruleRemover).RemoveRuleByID(pr.id)
		case !headersOnly(pr):
			headers = false
		}
	}
	prefill(tx, p.probeStatic)
	if headers {
		for _, h := range r.Headers {
			tx.AddRequestHeader(h.Name, h.Value)
		}
		tx.ProcessRequestHeaders()
		return tx
	}
	requestHeaders(tx, r, false)
	if tx.ProcessRequestHeaders() == nil {
		requestJSON(tx, r)
		_, _ = tx.ProcessRequestBody()
	}
	return tx
}

// requestGate returns the gate rules (indexes in e.http.gate) that could
// match r.
func (e *Engine) requestGate(r *source.Request) []int {
	p := e.http
	tx := e.waf.NewTransaction()
	defer tx.Close()
	prefill(tx, p.gateStatic)
	requestHeaders(tx, r, true)
	c := newStrCache(p.warm)
	defer c.release()
	g := newGateEval(p, tx, c)
	g.headers, g.ownHeaders = r.Headers, true
	cand := g.candidates(nil, 1)
	if r.JSON || len(r.Body) == 0 {
		if e.holdsArgs(p, r.Fields) {
			requestLength(tx, r)
			g.setArgs(r.Fields)
		} else {
			requestJSON(tx, r)
		}
		return g.candidates(cand, 2)
	}
	// Coraza parses this body itself: its values are known only once
	// phase 2 runs.
	return p.allOf(cand, 2)
}

// request runs Coraza over r: every rule, or with a plan only the gate
// rules in cand besides the rules the plan keeps.
func (e *Engine) request(r *source.Request, p *plan, cand []int) Result {
	tx := e.profileTx(p, cand, httpProfile)
	defer tx.Close()
	if p != nil {
		defer slowRun(tx.(plugintypes.TransactionState), p)()
	}
	requestHeaders(tx, r, false)
	if tx.ProcessRequestHeaders() == nil {
		if r.JSON || len(r.Body) == 0 {
			requestJSON(tx, r)
		} else if it, _, err := tx.WriteRequestBody(r.Body); err != nil || it != nil {
			return finish(tx, r.Fields, httpPath, r.Violations)
		}
		_, _ = tx.ProcessRequestBody()
	}
	return finish(tx, r.Fields, httpPath, r.Violations)
}

// profileTx is a transaction without the rules the profile removes and,
// with a plan, only the gate rules in cand.
func (e *Engine) profileTx(p *plan, cand []int, removed [][2]int) types.Transaction {
	tx := e.waf.NewTransaction()
	if p != nil {
		p.prune(tx, cand)
	}
	for _, rg := range removed {
		tx.(ruleRemover).RemoveRuleByIDRange(rg[0], rg[1])
	}
	return tx
}

// requestHeaders gives tx the connection, the request line, the headers
// and the body processor; with cookiesOnly, only the Cookie headers (the
// gate reads the others from r, see gateEval.headers).
func requestHeaders(tx types.Transaction, r *source.Request, cookiesOnly bool) {
	tx.ProcessConnection(r.RemoteAddr, 0, "", 443)
	tx.ProcessURI(r.URI, r.Method, r.Protocol)
	for _, h := range r.Headers {
		if !cookiesOnly || strings.EqualFold(h.Name, "cookie") {
			tx.AddRequestHeader(h.Name, h.Value)
		}
	}
	setVar(tx, variables.ReqbodyProcessor, bodyProcessor(r))
}

// bodyProcessor chooses how Coraza reads the body, as the recommended
// configuration's ctl rules would from the Content-Type, with two
// differences: a body that is valid JSON is ours whatever its content type
// says (see package source), and a body no parser claims is parsed as a
// form, so values cannot hide behind a missing header: the handler may
// well parse them.
func bodyProcessor(r *source.Request) string {
	if r.JSON {
		return "JSON"
	}
	var ct string
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, "content-type") {
			ct = strings.ToLower(strings.TrimSpace(h.Value))
		}
	}
	switch {
	case xmlType.MatchString(ct):
		return "XML"
	case strings.HasPrefix(ct, "application/json"), jsonType.MatchString(ct):
		return "JSON"
	case strings.HasPrefix(ct, "multipart/form-data"):
		return "MULTIPART"
	}
	return "URLENCODED"
}

var (
	xmlType  = regexp.MustCompile(`^(?:application(?:/soap\+|/)|text/)xml`)
	jsonType = regexp.MustCompile(`^application/[a-z0-9.-]+[+]json`)
)

// requestJSON hands a JSON body to the rules: the body is not written, so
// Coraza parses nothing, but the variables say JSON as they would behind
// its parser (CRS 920539 relies on REQBODY_PROCESSOR, 920640 on the
// length).
func requestJSON(tx types.Transaction, r *source.Request) {
	requestLength(tx, r)
	addFields(tx, r.Fields)
}

func requestLength(tx types.Transaction, r *source.Request) {
	if len(r.Body) > 0 {
		setVar(tx, variables.RequestBodyLength, strconv.Itoa(len(r.Body)))
	}
}

// holdsArgs reports whether the gate holds the fields itself (setArgs)
// rather than in its transaction: when Coraza would keep them all, and no
// gate rule's operator reads arguments through a macro.
func (e *Engine) holdsArgs(p *plan, fields []source.Field) bool {
	return p.argsFree && len(fields) <= e.argLimit
}

func setVar(tx types.Transaction, v variables.RuleVariable, value string) {
	if s, ok := tx.(plugintypes.TransactionState).Collection(v).(setter); ok {
		s.Set(value)
	}
}

// httpProfile removes the CRS rules about HTTP framing that AWS's front door
// owns: API Gateway, the ALB and function URLs terminate HTTP, route by
// Host, and hand the function an event that often lacks Host,
// Content-Length or Content-Type. Blocking on their absence would block
// clean events; none of them inspects a value an injection could hide in.
var httpProfile = [][2]int{
	{920170, 920170}, // GET or HEAD request with a body
	{920180, 920180}, // POST without Content-Length or Transfer-Encoding
	{920280, 920280}, // missing Host
	{920290, 920290}, // empty Host
	{920340, 920340}, // body without Content-Type (notice)
	{920640, 920640}, // body without Content-Type (critical)
}

// recordProfile removes the HTTP protocol rules from event records (911
// method, 913 scanners, 920 protocol enforcement): a queue message has no
// request line or Host header to check.
var recordProfile = [][2]int{{911000, 911999}, {913000, 913999}, {920000, 920999}}

// Batch inspects the records of one event: what the fast path learns about
// a string in one record serves the others (batches repeat values). Not
// safe for concurrent use; the Engine is.
type Batch struct {
	e     *Engine
	cache *strCache
	// tx is the gate's transaction for records whose fields the gate
	// holds (holdsArgs): it then has only what every record has (static
	// TX values, the JSON body processor), so one serves the batch, and
	// its phase 1 candidates, cand1, are the same for every record.
	tx    types.Transaction
	cand1 []int
}

// NewBatch starts the inspection of one event's records; Close ends it.
func (e *Engine) NewBatch() *Batch {
	var warm *warmCache
	if e.record != nil {
		warm = e.record.warm
	}
	return &Batch{e: e, cache: newStrCache(warm)}
}

// Close ends the batch: its memory serves the next one. The Batch must not
// be used afterwards.
func (b *Batch) Close() {
	b.cache.release()
	b.cache = nil
	if b.tx != nil {
		b.tx.Close()
		b.tx = nil
	}
}

// Record inspects one event record with the event profile.
func (b *Batch) Record(rec *source.Record) Result {
	e, p := b.e, b.e.record
	if p == nil {
		return e.recordRun(rec, nil, nil)
	}
	if run := p.run(b.gate(rec), nil); len(run) > 0 {
		return e.recordRun(rec, p, run)
	}
	return p.baseline(rec.Violations)
}

// gate returns the gate rules (indexes in e.record.gate) that could match
// rec.
func (b *Batch) gate(rec *source.Record) []int {
	e, p := b.e, b.e.record
	if !e.holdsArgs(p, rec.Fields) {
		tx := recordTx(e, p)
		defer tx.Close()
		g := newGateEval(p, tx, b.cache)
		cand := g.candidates(nil, 1)
		addFields(tx, rec.Fields)
		return g.candidates(cand, 2)
	}
	if b.tx == nil {
		b.tx = recordTx(e, p)
		b.cand1 = newGateEval(p, b.tx, b.cache).candidates(nil, 1)
	}
	g := newGateEval(p, b.tx, b.cache)
	g.setArgs(rec.Fields)
	return g.candidates(b.cand1[:len(b.cand1):len(b.cand1)], 2)
}

// recordTx is a gate transaction with what every record has.
func recordTx(e *Engine, p *plan) types.Transaction {
	tx := e.waf.NewTransaction()
	prefill(tx, p.gateStatic)
	setVar(tx, variables.ReqbodyProcessor, "JSON")
	return tx
}

func (e *Engine) recordRun(rec *source.Record, p *plan, cand []int) Result {
	tx := e.profileTx(p, cand, recordProfile)
	defer tx.Close()
	if p != nil {
		defer slowRun(tx.(plugintypes.TransactionState), p)()
	}
	setVar(tx, variables.ReqbodyProcessor, "JSON")
	if tx.ProcessRequestHeaders() == nil {
		addFields(tx, rec.Fields)
		_, _ = tx.ProcessRequestBody()
	}
	return finish(tx, rec.Fields, variablePath, rec.Violations)
}

func finish(tx types.Transaction, fields []source.Field, other pather, violations []source.Violation) Result {
	res := result(tx, fields, other)
	addViolations(&res, violations)
	return res
}

func addFields(tx types.Transaction, fields []source.Field) {
	var name []byte
	for _, f := range fields {
		name = ArgName(name[:0], f.Name)
		tx.AddPostRequestArgument(string(name), f.Value)
	}
}

func addViolations(res *Result, violations []source.Violation) {
	for _, v := range violations {
		b := boundRules[v.Bound]
		res.Blocked = true
		res.Matches = append(res.Matches, Match{Rule: b.id, Message: b.msg, Path: v.Path})
	}
}

// ArgName appends to dst the name under which a field is handed to Coraza:
// its path with "/" between segments (body/items/0/name), not the dotted
// form findings show (body.items[0].name). CRS matches phrases such as
// ".profile", ".history" or ".credentials" anywhere in ARGS_NAMES
// (930120; @pm is a substring match), so dot-joined JSON keys make clean
// events look like file access — Coraza's own JSON body parser has exactly
// this false positive. "/" joins no such phrase and is not one of the
// characters CRS counts in 942430-942432.
//
// Only the separators package source inserted become "/": a '.', '[' or ']'
// inside a key arrives escaped (java\.lang\.Runtime) and is handed on as
// itself, so {"java.lang.Runtime":1} still reads as the class name it is.
func ArgName(dst []byte, path string) []byte {
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case '\\':
			if i+1 < len(path) {
				i++
				dst = append(dst, path[i])
			}
		case '.', '[':
			dst = append(dst, '/')
		case ']':
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// pather names a match on something other than a field.
type pather func(vars plugintypes.TransactionVariables, v variables.RuleVariable, key string) string

func result(tx types.Transaction, fields []source.Field, other pather) Result {
	tx.ProcessLogging()
	res := Result{Blocked: tx.Interruption() != nil}
	vars := tx.(plugintypes.TransactionState).Variables()
	res.Score, _ = strconv.Atoi(firstValue(vars.TX().Get("blocking_inbound_anomaly_score")))
	for _, mr := range tx.MatchedRules() {
		r := mr.Rule()
		if !reportable(r.ID(), mr.Message()) {
			continue
		}
		// One match per value the rule matched (a chained rule's later
		// links and TX captures are not values of the event).
		first := len(res.Matches)
		for _, md := range mr.MatchedDatas() {
			if md.Variable() == variables.TX || md.ChainLevel() > 0 {
				continue
			}
			path := fieldName(fields, md.Variable(), md.Key())
			if path == "" {
				path = other(vars, md.Variable(), md.Key())
			}
			if !seen(res.Matches[first:], path) {
				res.Matches = append(res.Matches, Match{Rule: r.ID(), Message: mr.Message(), Path: path, Data: md.Value()})
			}
		}
		if len(res.Matches) == first {
			res.Matches = append(res.Matches, Match{Rule: r.ID(), Message: mr.Message()})
		}
	}
	return res
}

func seen(ms []Match, path string) bool {
	for _, m := range ms {
		if m.Path == path {
			return true
		}
	}
	return false
}

// reportable keeps attack findings and drops CRS bookkeeping: initialisation,
// paranoia-level skips and the anomaly evaluation (949xxx), whose message is
// only the total score.
func reportable(id int, msg string) bool {
	if msg == "" {
		return false
	}
	return id < 900000 || (id >= 910000 && id < 949000) || id >= 950000
}

func firstValue(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// fieldName returns the name of the field whose argument name is key, or
// "". It runs only for matches, so the scan costs nothing on clean events.
func fieldName(fields []source.Field, v variables.RuleVariable, key string) string {
	switch v {
	case variables.Args, variables.ArgsPost, variables.ArgsNames, variables.ArgsPostNames:
	default:
		return ""
	}
	var name []byte
	for _, f := range fields {
		if name = ArgName(name[:0], f.Name); strings.EqualFold(string(name), key) {
			return f.Name
		}
	}
	return ""
}

// variablePath names a match by its variable and key.
func variablePath(_ plugintypes.TransactionVariables, v variables.RuleVariable, key string) string {
	if key == "" {
		return strings.ToLower(v.Name())
	}
	return key
}

// httpPath names a match in an HTTP request the way a user reads the event:
// query.id, headers.user-agent, cookies.session, body.comment (form
// arguments; JSON body fields are named by fieldName).
func httpPath(vars plugintypes.TransactionVariables, v variables.RuleVariable, key string) string {
	switch v {
	case variables.ArgsGet, variables.ArgsGetNames:
		return "query." + key
	case variables.ArgsPost, variables.ArgsPostNames:
		return "body." + key
	case variables.Args, variables.ArgsNames:
		if len(vars.ArgsGet().Get(key)) > 0 {
			return "query." + key
		}
		return "body." + key
	case variables.RequestHeaders, variables.RequestHeadersNames:
		return "headers." + strings.ToLower(key)
	case variables.RequestCookies, variables.RequestCookiesNames:
		return "cookies." + key
	case variables.RequestFilename, variables.RequestBasename, variables.RequestURI,
		variables.RequestURIRaw, variables.RequestLine, variables.QueryString:
		return "uri"
	case variables.RequestBody, variables.XML, variables.RequestXML, variables.Files, variables.FilesNames:
		return "body"
	}
	return strings.ToLower(v.Name())
}
