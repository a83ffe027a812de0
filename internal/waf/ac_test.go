package waf

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The automaton reports exactly the atoms strings.Contains finds in the
// framed text with ASCII letters lowercased, on
// random atoms over a small alphabet (so that they overlap and nest) and
// on the gate's own atom set.
func TestACMatcher(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	word := func(n int) string {
		b := make([]byte, 1+rng.IntN(n))
		for i := range b {
			b[i] = "abAB;\x00"[rng.IntN(6)]
		}
		return string(b)
	}
	check := func(atoms []string, text string) {
		t.Helper()
		got := make([]bool, len(atoms))
		m := newACMatcher(atoms)
		for _, a := range m.scan(text, nil) {
			got[a] = true
		}
		any := false
		for i, a := range atoms {
			if got[i] != strings.Contains(frame+asciiLower(text)+frame, a) {
				t.Fatalf("atoms %q in %q: %q reported %v", atoms, text, a, got[i])
			}
			any = any || got[i]
		}
		if m.found(text) != any {
			t.Fatalf("atoms %q in %q: found() = %v, scan found %v", atoms, text, m.found(text), any)
		}
	}
	for i := 0; i < 2000; i++ {
		var atoms []string
		for j := 0; j < 1+rng.IntN(12); j++ {
			if a := asciiLower(word(5)); !slices.Contains(atoms, a) {
				atoms = append(atoms, a)
			}
		}
		check(atoms, word(40))
	}
	e := testEngine(t)
	var all []string
	seen := map[string]bool{}
	for _, p := range []*plan{e.http, e.record} {
		for _, gr := range p.gate {
			set, _, _ := opAtoms(gr.r)
			for _, a := range set {
				if !seen[a] {
					seen[a] = true
					all = append(all, a)
				}
			}
		}
	}
	if len(all) < 1000 {
		t.Fatalf("only %d atoms in the gate", len(all))
	}
	for _, text := range []string{"; cat /etc/passwd", "<script>alert(1)</script>", "1' UNION SELECT password FROM users--", "Mozilla/5.0 (X11; Linux x86_64)"} {
		check(all, strings.ToLower(text))
	}
}
