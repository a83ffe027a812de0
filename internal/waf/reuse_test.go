package waf

import (
	"slices"
	"testing"

	"github.com/lambdarasp/lambdarasp/internal/source"
	"github.com/lambdarasp/lambdarasp/rules"
)

// A slow run takes libinjection's "no match" from the warm cache: with a
// false answer planted there for one attack value, 942100 no longer
// reports that value, while it still reports the query's (not planted),
// with the capture Coraza makes for a match. Only an answer the cache
// has is taken: with the string kept but 942100 never run on it (and this
// event's answers not learnt, as when another event holds the cache), the
// value is reported.
func TestSlowRunReusesAnswers(t *testing.T) {
	const planted = "1' or '1'='1"
	req := func() *source.Request {
		return &source.Request{Method: "POST", URI: "/?q=1%27%20or%201%3D1--", Protocol: "HTTP/1.1", JSON: true,
			Body: []byte(`{"y":"` + planted + `"}`), Fields: []source.Field{{Name: "body.y", Value: planted}}}
	}
	paths := func(e *Engine) []string {
		var ps []string
		for _, m := range e.Request(req()).Matches {
			if m.Rule == 942100 {
				ps = append(ps, m.Path)
			}
		}
		return ps
	}
	s := rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 10000}
	e, err := New(s, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := paths(e); !slices.Contains(got, "query.q") || !slices.Contains(got, "body.y") {
		t.Fatalf("942100 matched %v, want query.q and body.y", got)
	}

	e, err = New(s, false)
	if err != nil {
		t.Fatal(err)
	}
	p := e.http
	gi := -1
	for i, g := range p.gate {
		if g.r.id == 942100 {
			gi = i
		}
	}
	if _, ok := p.opGate[p.gate[gi].r.op]; !ok {
		t.Fatal("942100's operator is not reused")
	}
	ws := &warmStr{s: planted, feat: features(planted), bits: make([]uint64, p.ix.bitsLen())}
	bitset(ws.bits[p.ix.words : 2*p.ix.words]).set(gi) // done, not matched
	p.warm.strs[planted] = ws
	if got := paths(e); !slices.Contains(got, "query.q") || slices.Contains(got, "body.y") {
		t.Fatalf("with a planted answer, 942100 matched %v, want query.q only", got)
	}

	e, err = New(s, false)
	if err != nil {
		t.Fatal(err)
	}
	p = e.http
	p.warm.strs[planted] = &warmStr{s: planted, feat: features(planted), bits: make([]uint64, p.ix.bitsLen())}
	p.warm.mu.RLock() // another event's: this one's learn is dropped
	defer p.warm.mu.RUnlock()
	if got := paths(e); !slices.Contains(got, "body.y") {
		t.Fatalf("with the string kept and no answer, 942100 matched %v, want body.y in it", got)
	}
}
