package protect

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/lambdarasp/lambdarasp/internal/source"
	"github.com/lambdarasp/lambdarasp/internal/waf"
	"github.com/lambdarasp/lambdarasp/rules"
)

// Rule ids of findings the inspector makes itself.
const (
	ruleRecords  = 100904 // batch larger than Limits.MaxRecords
	ruleRepeated = 100905 // a member read selectively is repeated (in any letter case)
	ruleTrailing = 100906 // data after the JSON value
	ruleFailure  = 100999 // inspection failed and fail-closed is on
)

// ambiguityRules are the findings of the ambiguities package source
// reports: what was inspected may not be what the handler decodes, so the
// event or record is blocked.
var ambiguityRules = map[source.AmbiguityKind]struct {
	id  int
	msg string
}{
	source.Repeated: {ruleRepeated, "Ambiguous JSON: a member is repeated (in some letter case)"},
	source.Trailing: {ruleTrailing, "Ambiguous JSON: data after the JSON value"},
}

// Action is the rules' decision on an event.
type Action string

// The actions a Verdict can carry.
const (
	Allow Action = "allow"
	Deny  Action = "block"
)

// Verdict is the outcome of inspecting one event.
type Verdict struct {
	// Source is the trigger that produced the event ("sqs", "apigw-http",
	// "direct", …).
	Source string
	// Action is Deny when the rules would block the event or some of its
	// records; in Detect mode the handler runs anyway.
	Action Action
	// Score is the highest CRS anomaly score over the request or records.
	Score int
	// Findings lists every rule that matched, with where.
	Findings []Finding
	// BlockedRecords are the indices of the blocked records in the batch
	// (the Records, records or Kafka records array, in payload order); nil
	// for HTTP and single-record events.
	BlockedRecords []int

	event   source.Event
	blocked []bool // per event.Records index
}

// Finding is one rule that matched one value.
type Finding struct {
	Rule    int    `json:"rule"`
	Message string `json:"msg"`
	// Path locates the value in the event: "Records[1].body.user.name",
	// "query.id", "headers.user-agent".
	Path string `json:"path,omitempty"`
	// Record is the batch index of the record, or -1.
	Record int `json:"record"`
	// Snippet is a short, sanitised prefix of the matched value, only with
	// WithLogSnippets.
	Snippet string `json:"snippet,omitempty"`
}

// Inspector classifies and inspects Lambda events. It is safe for concurrent
// use; build it once, at init.
type Inspector struct {
	cfg    config
	engine *waf.Engine
}

// NewInspector builds the rule engine (the bulk of a cold start: about
// 30 ms from exec to handler ready, against 3 ms for a bare handler, see
// bench/RESULTS.md) and returns an Inspector. Errors name the setting at
// fault.
func NewInspector(opts ...Option) (*Inspector, error) {
	cfg, err := newConfig(os.Getenv, opts)
	if err != nil {
		return nil, err
	}
	return newInspector(cfg)
}

func newInspector(cfg config) (*Inspector, error) {
	settings := rules.Settings{
		Paranoia:   cfg.paranoia,
		Threshold:  cfg.threshold,
		MaxDepth:   cfg.limits.MaxDepth,
		MaxArgs:    cfg.limits.MaxFields,
		RuntimeAPI: cfg.runtimeAPI,
	}
	for _, f := range cfg.ruleFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("protect: read rules %q (WithRuleFiles, %s): %w", f, envRules, err)
		}
		settings.Extra = append(settings.Extra, string(b))
	}
	for _, e := range cfg.exclusions {
		settings.Exclusions = append(settings.Exclusions, exclusionDirective(e))
	}
	engine, err := waf.New(settings, cfg.reference)
	if err != nil {
		return nil, fmt.Errorf("protect: load rules: %w", err)
	}
	return &Inspector{cfg: cfg, engine: engine}, nil
}

var recordPrefix = regexp.MustCompile(`^(?:Records|records)(?:\.[^.\[]+)?\[\d+\]\.`)

// exclusionDirective turns an exclusion into SecLang. A path is excluded in
// every form the same value can take: a record field or JSON body field
// (argument body/a/0, see waf.ArgName), a query or form argument, a header,
// a cookie.
func exclusionDirective(e exclusion) string {
	if e.path == "" {
		return fmt.Sprintf("SecRuleRemoveById %d", e.rule)
	}
	p := recordPrefix.ReplaceAllString(e.path, "")
	// SecLang reads a "/" in a target key as the start of a regex, so the
	// field's argument name is matched by an anchored, escaped regex.
	arg := "/^" + strings.ReplaceAll(regexp.QuoteMeta(string(waf.ArgName(nil, p))), "/", `\/`) + "$/"
	targets := []string{"ARGS:" + arg, "ARGS_NAMES:" + arg}
	if kind, rest, ok := strings.Cut(p, "."); ok {
		switch kind {
		case "query", "body": // query and form arguments keep their own names
			targets = append(targets, "ARGS:"+rest, "ARGS_NAMES:"+rest)
		case "headers":
			targets = append(targets, "REQUEST_HEADERS:"+rest)
		case "cookies":
			targets = append(targets, "REQUEST_COOKIES:"+rest, "REQUEST_COOKIES_NAMES:"+rest)
		}
	}
	for i, t := range targets {
		targets[i] = "!" + t
	}
	return fmt.Sprintf("SecRuleUpdateTargetById %d \"%s\"", e.rule, strings.Join(targets, "|"))
}

// parse is the verdict on payload before any rule ran: its source, Allow,
// and the event parsed within the configured limits.
func (in *Inspector) parse(payload []byte) Verdict {
	lim := in.cfg.limits
	ev := source.Parse(payload, source.Limits{MaxDepth: lim.MaxDepth, MaxFields: lim.MaxFields, MaxValueBytes: lim.MaxValueBytes})
	return Verdict{Source: string(ev.Kind), Action: Allow, event: ev}
}

// Inspect classifies payload and runs the rules over its untrusted fields.
// It never modifies payload. Mode does not change the Verdict: it is what
// the rules decide.
func (in *Inspector) Inspect(payload []byte) Verdict {
	v := in.parse(payload)
	ev := v.event
	if ev.Kind.HTTP() {
		if ev.Request != nil {
			res := in.engine.Request(ev.Request)
			v.add(res, "", -1, in.cfg.snippets)
			if as := ev.Request.Ambiguities; len(as) > 0 {
				v.Action = Deny
				v.Findings = appendAmbiguities(v.Findings, as, "", -1)
			}
		}
		return v
	}
	v.blocked = make([]bool, len(ev.Records))
	batch := in.engine.NewBatch()
	defer batch.Close()
	for i := range ev.Records {
		rec := &ev.Records[i]
		if i >= in.cfg.limits.MaxRecords {
			v.blockRecord(i, Finding{Rule: ruleRecords, Message: "Batch exceeds the record limit", Path: rec.Path, Record: rec.Index})
			continue
		}
		res := batch.Record(rec)
		v.add(res, rec.Path, rec.Index, in.cfg.snippets)
		if res.Blocked || len(rec.Ambiguities) > 0 {
			v.blockRecord(i, appendAmbiguities(nil, rec.Ambiguities, rec.Path, rec.Index)...)
		}
	}
	return v
}

// appendAmbiguities appends a finding for each ambiguity, found in the
// record at prefix.
func appendAmbiguities(fs []Finding, as []source.Ambiguity, prefix string, record int) []Finding {
	for _, a := range as {
		r := ambiguityRules[a.Kind]
		fs = append(fs, Finding{Rule: r.id, Message: r.msg, Path: joinPath(prefix, a.Path), Record: record})
	}
	return fs
}

func (v *Verdict) add(res waf.Result, prefix string, record int, snippets bool) {
	if res.Blocked {
		v.Action = Deny
	}
	v.Score = max(v.Score, res.Score)
	for _, m := range res.Matches {
		f := Finding{Rule: m.Rule, Message: m.Message, Path: joinPath(prefix, m.Path), Record: record}
		if snippets {
			f.Snippet = snippet(m.Data)
		}
		v.Findings = append(v.Findings, f)
	}
}

// blockRecord marks record i blocked. Records that sit in an array (Path
// set) are reported by index; single-record events are not.
func (v *Verdict) blockRecord(i int, extra ...Finding) {
	v.Action = Deny
	v.blocked[i] = true
	v.Findings = append(v.Findings, extra...)
	if rec := v.event.Records[i]; rec.Path != "" {
		v.BlockedRecords = append(v.BlockedRecords, rec.Index)
	}
}

func joinPath(prefix, p string) string {
	switch {
	case prefix == "":
		return p
	case p == "":
		return prefix
	}
	return prefix + "." + p
}

// snippet keeps at most 32 bytes of a matched value and replaces anything
// that is not printable ASCII, so a log line can carry neither a whole
// payload nor terminal escapes.
func snippet(s string) string {
	const max = 32
	var b strings.Builder
	for i := 0; i < len(s) && i < max; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b.WriteByte(c)
	}
	if len(s) > max {
		b.WriteString("…")
	}
	return b.String()
}

// Rules returns the rule ids of the findings, in order, without repeats.
func (v Verdict) Rules() []int {
	var ids []int
	seen := map[int]bool{}
	for _, f := range v.Findings {
		if !seen[f.Rule] {
			seen[f.Rule] = true
			ids = append(ids, f.Rule)
		}
	}
	return ids
}
