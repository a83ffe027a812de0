package waf

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
)

// Every string a gate @rx pattern matches has the bytes of one of its
// byteNeed sets: checked on strings generated from each pattern (case
// folded letters included, U+212A for k among them).
func TestBytesSoundOnRuleSet(t *testing.T) {
	e := testEngine(t)
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[string]bool{}
	checked, needing := 0, 0
	for _, p := range []*plan{e.http, e.record} {
		for _, gr := range p.gate {
			r := gr.r
			if r.opName != "rx" || seen[r.opData] {
				continue
			}
			need := patternBytes(r.opData)
			if need == nil {
				continue
			}
			seen[r.opData] = true
			needing++
			re := regexp.MustCompile("(?sm)" + r.opData)
			ast, err := syntax.Parse(r.opData, syntax.Perl)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 300; i++ {
				var b strings.Builder
				generate(&b, ast, rng)
				s := b.String()
				if !re.MatchString(s) {
					continue
				}
				checked++
				if v := byteSetOf(s); !need.admits(&v) {
					t.Fatalf("rule %d: %q matches but lacks every byte set of its need", r.id, s)
				}
			}
		}
	}
	if needing < 50 || checked < 5000 {
		t.Fatalf("%d patterns with a byte need, %d strings checked: the analysis or the generator is broken", needing, checked)
	}
}

// CRS 941170's branches each need rare bytes: an e-mail address or a
// product code shows its atoms ("@", "-") but not those bytes.
func TestBytesRuleOut(t *testing.T) {
	e := testEngine(t)
	var need byteNeed
	for _, gr := range e.http.gate {
		if gr.r.id == 941170 {
			need = patternBytes(gr.r.opData)
		}
	}
	if need == nil {
		t.Fatal("941170 has no byte need")
	}
	for s, want := range map[string]bool{
		"customer12@example.com": false,
		"BK-0037":                false,
		`@import "evil.css"`:     true,
		"-moz-binding:url(x)":    true,
		"javascript:alert(1)":    true,
		"JAVASCRIPT:name":        true,
	} {
		if v := byteSetOf(s); need.admits(&v) != want {
			t.Errorf("%q: admitted %v, want %v", s, !want, want)
		}
	}
}
