package waf

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"unicode"
)

func TestAtoms(t *testing.T) {
	cases := []struct {
		pattern string
		want    []string // nil: no requirement
	}{
		{`union\s+select`, []string{"union"}},
		{`(?i)SELECT`, []string{"select"}},
		{`(?:a|b)c`, []string{"ac", "bc"}},
		{`x?`, nil},
		{`a*b*`, nil},
		// The optional scheme prefix must not become the requirement.
		{`(?i)(?:(?:url|jar):)?(?:http|ftp)://`, []string{"http://", "ftp://"}},
		// Evasion characters that may sit between letters escape: the
		// word, or one of them.
		{`c["']*a["']*t`, []string{"cat", `"`, "'"}},
		// A common class after a word: the word alone is rarer.
		{`(?:curl|wget)[\s&|]`, []string{"curl", "wget"}},
		{`process\s*\.\s*spawn`, []string{"process"}},
		{`\x{bc}[^>]*>`, []string{"\xbc"}},
		// Anchors: a line edge, which the gate scans as "\n" or frame.
		{`^ls`, []string{"\x00ls", "\nls"}},
		// A suffix after an alternation goes into each branch, so a
		// branch that is not exact does not cost the others theirs.
		{`(?:ls|w|mysql.)$`, []string{"ls\x00", "ls\n", "w\x00", "w\n", "mysql"}},
	}
	for _, c := range cases {
		got, ok := atoms(c.pattern)
		if c.want == nil {
			if ok {
				t.Errorf("atoms(%q) = %q, want no requirement", c.pattern, got)
			}
			continue
		}
		if !ok || !sameSet(got, c.want) {
			t.Errorf("atoms(%q) = %q, %v; want %q", c.pattern, got, ok, c.want)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			found = found || x == y
		}
		if !found {
			return false
		}
	}
	return true
}

// Every string any rule's pattern matches contains one of its atoms and
// the bytes of one of its byte-need sets (bytes.go): for each @rx of the
// rule set, random strings generated from the pattern (with case folds,
// K U+212A and ſ U+017F included) that the compiled pattern matches must
// show an atom to the gate's scan and be admitted by the need.
func TestAtomsSoundOnRuleSet(t *testing.T) {
	e := testEngine(t)
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	checked, evasive, needing := 0, 0, 0
	for _, p := range []*plan{e.http, e.record} {
		for _, gr := range p.gate {
			r := gr.r
			if r.opName != "rx" || seen[r.opData] {
				continue
			}
			seen[r.opData] = true
			set, ok, deleted := bestAtoms(r.opData)
			need := patternBytes(r.opData)
			if !ok && need == nil {
				continue
			}
			if deleted {
				evasive++
			}
			if need != nil {
				needing++
			}
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
				if ok && !scanShows(s, set, deleted) {
					t.Fatalf("rule %d: %q matches but contains none of the atoms %q (evasion characters deleted: %v)", r.id, s, set, deleted)
				}
				if need != nil && !need.admitsString(s) {
					t.Fatalf("rule %d: %q matches but lacks every byte set of its need", r.id, s)
				}
			}
		}
	}
	if checked < 10000 {
		t.Fatalf("only %d generated strings matched: the generator is broken", checked)
	}
	if evasive < 5 || needing < 50 {
		t.Fatalf("only %d patterns analysed with evasion characters deleted, %d with a byte need", evasive, needing)
	}
}

func scanShows(s string, set []string, deleted bool) bool {
	lower, folded := asciiLower(s), asciiLower(scanFolded(s))
	if deleted {
		lower, folded = deleteChars(lower, evasionChars), deleteChars(folded, evasionChars)
	}
	for _, a := range set {
		if strings.Contains(frame+lower+frame, a) || folded != "" && strings.Contains(frame+folded+frame, a) {
			return true
		}
	}
	return false
}

// generate appends to b a random string of re's language (anchors
// ignored: the caller keeps only strings the pattern matches).
func generate(b *strings.Builder, re *syntax.Regexp, rng *rand.Rand) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				for n := rng.IntN(3); n > 0; n-- {
					r = unicode.SimpleFold(r)
				}
			}
			b.WriteRune(r)
		}
	case syntax.OpCharClass:
		i := rng.IntN(len(re.Rune)/2) * 2
		lo, hi := re.Rune[i], re.Rune[i+1]
		if hi-lo > 200 {
			hi = lo + 200
		}
		b.WriteRune(lo + rng.Int32N(hi-lo+1))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte(byte(' ' + rng.IntN(95)))
	case syntax.OpCapture:
		generate(b, re.Sub[0], rng)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := 0, 3
		switch re.Op {
		case syntax.OpPlus:
			lo = 1
		case syntax.OpQuest:
			hi = 1
		case syntax.OpRepeat:
			lo, hi = re.Min, re.Max
			if hi < 0 || hi > lo+3 {
				hi = lo + 3
			}
		}
		for n := lo + rng.IntN(hi-lo+1); n > 0; n-- {
			generate(b, re.Sub[0], rng)
		}
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			generate(b, sub, rng)
		}
	case syntax.OpAlternate:
		generate(b, re.Sub[rng.IntN(len(re.Sub))], rng)
	}
}
