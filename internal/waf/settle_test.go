package waf

import (
	"fmt"
	"slices"
	"testing"

	"github.com/lambdarasp/lambdarasp/internal/source"
	"github.com/lambdarasp/lambdarasp/rules"
)

// A settled candidate leaves the slow run only when its match cannot
// change that run's result. Each case is an attack (so Coraza runs) next
// to something that makes a pure or probed candidate matter, or not; it
// names the candidates the run must keep and those it must leave out, so
// that it tests what it says, and the result must be the reference
// engine's. Each runs twice: first with an empty probe memo, then with
// the probed rules' answers in it.
func TestRunLeavesOutSettled(t *testing.T) {
	fast, ref := testEngine(t), refEngine(t)
	const sqli = "?id=1%27%20UNION%20SELECT%20password%20FROM%20users--"
	post := func(uri string, h []source.Header, fields ...source.Field) source.Request {
		return source.Request{Method: "POST", URI: uri, Protocol: "HTTP/1.1",
			Headers: append(hdrs("Host", "a", "User-Agent", "curl/8.0", "Accept", "*/*"), h...),
			Body:    []byte(`{}`), JSON: true, Fields: fields}
	}
	jsonType := hdrs("Content-Type", "application/json")
	cases := []struct {
		name    string
		req     source.Request
		in, out []int
	}{
		// 920420 and 920450 match at their first link, 941010 and 920539
		// at theirs: none of it counts.
		{"nothing else", post("/orders"+sqli, jsonType, source.Field{Name: "body.qty", Value: "2"}),
			[]int{942100}, []int{920420, 920450, 941010, 920539}},
		{"content type outside the policy", post("/orders"+sqli, hdrs("Content-Type", "text/plain")),
			[]int{942100, 920420}, []int{920450}},
		{"restricted header", post("/orders"+sqli, hdrs("Content-Type", "application/json", "Content-Encoding", "gzip")),
			[]int{942100, 920450}, []int{920420}},
		// 941010 matches a path of plain characters and removes
		// REQUEST_FILENAME from the XSS rules, one of which would match
		// this one.
		{"xss phrase in the path", post("/document.cookie"+sqli, jsonType),
			[]int{942100, 941010, 941180}, nil},
		// Coraza parses this body itself: the probe, which never does,
		// must not answer for 944120, which reads it.
		{"form body", source.Request{Method: "POST", URI: "/orders" + sqli, Protocol: "HTTP/1.1",
			Headers: hdrs("Host", "a", "User-Agent", "curl/8.0", "Accept", "*/*", "Content-Type", "application/x-www-form-urlencoded"),
			Body:    []byte("payload=processbuilder+clonetransformer")},
			[]int{942100, 944120}, nil},
		// 920539 skips 920540, which would match the escape.
		{"unicode escape in the body", post("/orders"+sqli, jsonType, source.Field{Name: "body.q", Value: `\u0041`}),
			[]int{942100, 920539, 920540}, nil},
	}
	p := fast.http
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The first time with nothing in the memo: the probe runs.
			for _, a := range p.memo.answers {
				clear(a)
			}
			for range 2 {
				want, got := ref.Request(&c.req), fast.Request(&c.req)
				if w, g := outcome(want), outcome(got); w != g {
					t.Fatalf("fast path\n%s\nreference\n%s", g, w)
				}
				cand := fast.requestGate(&c.req)
				run := ids(p, p.run(cand, fast.prober(&c.req, cand)))
				for _, id := range c.in {
					if !slices.Contains(run, id) {
						t.Errorf("run %v lacks %d", run, id)
					}
				}
				for _, id := range c.out {
					if slices.Contains(run, id) || !slices.ContainsFunc(cand, func(gi int) bool { return p.gate[gi].r.id == id }) {
						t.Errorf("candidates %v, run %v: want %d among the first, not in the second", ids(p, cand), run, id)
					}
				}
			}
		})
	}
}

// ids returns the rule ids of gate rules gis.
func ids(p *plan, gis []int) []int {
	var out []int
	for _, gi := range gis {
		out = append(out, p.gate[gi].r.id)
	}
	return out
}

// outcome is a result with its matches in a fixed order (Coraza's header
// collections are maps: the order of matches in them varies).
func outcome(r Result) string {
	var ms []string
	for _, m := range r.Matches {
		ms = append(ms, fmt.Sprintf("%d %s %q", m.Rule, m.Path, m.Data))
	}
	slices.Sort(ms)
	return fmt.Sprintf("blocked %v, score %d, matches %q", r.Blocked, r.Score, ms)
}

// A pure rule that a rule of the run skips over stays in the run: prune
// keeps it in the transaction (the skip must count the same rules), where
// its own skip would otherwise pass over rules other than its own, which
// prune removed. The CRS has no such rule; these user rules do: 1001 is a
// candidate (its first link matches) that does not match (its chain does
// not), 1002 is pure and skips 1003, which does not match, and 1004 adds
// the score.
func TestRunKeepsSkippedPure(t *testing.T) {
	s := rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 10000, Extra: []string{
		`SecRule ARGS:a "@streq x" "id:1001,phase:2,pass,log,msg:'skipper',skip:1,chain"
			SecRule ARGS:z "@streq never" ""`,
		`SecRule ARGS:b "@streq on" "id:1002,phase:2,pass,nolog,skip:1"`,
		`SecRule ARGS:d "@streq y" "id:1003,phase:2,pass,log,msg:'skipped'"`,
		`SecRule ARGS:c "@streq hit" "id:1004,phase:2,block,msg:'hit',setvar:'tx.inbound_anomaly_score_pl1=+5'"`,
	}}
	fast, ref := newEngines(t, s)
	req := source.Request{Method: "GET", URI: "/p?a=x&b=on&c=hit", Protocol: "HTTP/1.1", Headers: hdrs("Host", "a", "User-Agent", "curl/8.0", "Accept", "*/*")}
	p := fast.http
	cand := fast.requestGate(&req)
	if run := ids(p, p.run(cand, fast.prober(&req, cand))); !slices.Contains(run, 1001) || !slices.Contains(run, 1002) {
		t.Errorf("run %v, want 1001 and 1002 in it", run)
	}
	want, got := ref.Request(&req), fast.Request(&req)
	if w, g := outcome(want), outcome(got); w != g || !got.Blocked {
		t.Fatalf("fast path\n%s\nreference\n%s", g, w)
	}
}

// prune removes, as ranges of ids, exactly the rules a run does without:
// those every slow run removes, and the gate rules that are not in the run
// and that no rule of the run skips over.
func TestPruneRemovesExactly(t *testing.T) {
	e := testEngine(t)
	for _, c := range requestCases {
		p := e.http
		cand := e.requestGate(&c.req)
		run := p.run(cand, e.prober(&c.req, cand))
		tx := e.waf.NewTransaction()
		p.prune(tx, run)
		ranges := tx.(interface{ GetRuleRemoveByIDRanges() [][2]int }).GetRuleRemoveByIDRanges()
		tx.Close()
		inRun := map[int]bool{}
		for _, gi := range run {
			inRun[p.gate[gi].index] = true
		}
		skipped := map[int]bool{}
		for i, s := range p.skipped {
			if p.keep[i] || inRun[i] {
				for _, j := range s {
					skipped[j] = true
				}
			}
		}
		for i, r := range p.rules {
			var want bool
			switch {
			case p.keep[i] || inRun[i] || skipped[i] || r.id == 0:
			case slices.Contains(p.remove, r.id) || p.gateOf[i] >= 0:
				want = true
			default:
				continue // outside the profile: profileTx removes it
			}
			removed := slices.ContainsFunc(ranges, func(rg [2]int) bool { return r.id >= rg[0] && r.id <= rg[1] })
			if removed != want {
				t.Errorf("%s: rule %d removed %v, want %v", c.name, r.id, removed, want)
			}
		}
	}
}

// Coraza looks a key up in a collection of names as the rule holds it,
// among the lowercased keys, and lowercases a rule's key except for the
// ARGS variables: &REQUEST_HEADERS_NAMES:X-Foo counts the header (1001
// does not match), &ARGS_NAMES:Q is 0 though the request has Q (1002
// matches, in the query and in a JSON body the gate holds).
func TestNamesKeyAsWritten(t *testing.T) {
	s := rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 10000, Extra: []string{
		`SecRule &REQUEST_HEADERS_NAMES:X-Foo "@eq 0" "id:1001,phase:1,block,msg:'header',setvar:'tx.inbound_anomaly_score_pl1=+5'"`,
		`SecRule &ARGS_NAMES:Q "@eq 0" "id:1002,phase:2,block,msg:'argument',setvar:'tx.inbound_anomaly_score_pl1=+5'"`,
	}}
	fast, ref := newEngines(t, s)
	for _, req := range []source.Request{
		{Method: "GET", URI: "/p?Q=1", Protocol: "HTTP/1.1", Headers: hdrs("Host", "a", "User-Agent", "curl/8.0", "Accept", "*/*", "X-Foo", "1")},
		{Method: "POST", URI: "/p", Protocol: "HTTP/1.1", Headers: hdrs("Host", "a", "User-Agent", "curl/8.0", "Accept", "*/*", "X-Foo", "1", "Content-Type", "application/json"),
			Body: []byte(`{"Q":1}`), JSON: true, Fields: []source.Field{{Name: "Q", Value: "1"}}},
	} {
		want, got := ref.Request(&req), fast.Request(&req)
		if w, g := outcome(want), outcome(got); w != g || !got.Blocked {
			t.Errorf("%s %s: fast path\n%s\nreference\n%s", req.Method, req.URI, g, w)
		}
	}
}
