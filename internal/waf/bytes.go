package waf

import (
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// A byteNeed is a second necessary condition for an @rx pattern, checked
// after its atoms occur and before it runs: every match contains all the
// bytes of one of its sets (ASCII letters lowercased, as byteSetOf reads
// a value). Atoms are one string of the match; this is every byte of it a
// branch cannot do without, so a long alternation whose branches each
// need a few rare characters (CRS 941170: "@" and "i…m…p…o…r…t" and a
// quote or "(", or "-…m…o…z…" and ":" and "(") does not run on every
// e-mail address or product code that shows its atom "@" or "-".
//
// The analysis keeps the requirement of a sub-pattern as a disjunction of
// byte sets: a literal needs its bytes, a concatenation the union of its
// parts' (one set per combination of their alternatives), an alternation
// any one of its branches', a repetition that may be empty nothing. Only
// ASCII bytes are ever required: a non-ASCII rune, or a letter whose case
// folding reaches outside ASCII (K and U+212A), requires nothing, so a
// pattern Coraza matches byte-wise needs no special case.
type byteNeed []byteSet

// byteSet is a set of bytes.
type byteSet [4]uint64

func (s *byteSet) add(c byte)            { s[c>>6] |= 1 << (c & 63) }
func (s byteSet) within(v *byteSet) bool { return s[0]&^v[0]|s[1]&^v[1]|s[2]&^v[2]|s[3]&^v[3] == 0 }
func (s byteSet) union(o byteSet) byteSet {
	return byteSet{s[0] | o[0], s[1] | o[1], s[2] | o[2], s[3] | o[3]}
}
func (s byteSet) inter(o byteSet) byteSet {
	return byteSet{s[0] & o[0], s[1] & o[1], s[2] & o[2], s[3] & o[3]}
}
func (s byteSet) empty() bool { return s == byteSet{} }
func (n byteNeed) admits(v *byteSet) bool {
	for _, s := range n {
		if s.within(v) {
			return true
		}
	}
	return false
}

func (n byteNeed) admitsString(s string) bool {
	v := byteSetOf(s)
	return n.admits(&v)
}

// byteSetOf is the bytes of s, ASCII letters lowercased.
func byteSetOf(s string) byteSet {
	var v byteSet
	for i := 0; i < len(s); i++ {
		v.add(lowerBytes[s[i]])
	}
	return v
}

// maxByteSets bounds the sets of one sub-pattern's requirement; past it
// they are merged into the bytes all of them need.
const maxByteSets = 32

// patternBytes returns the byte requirement of pattern, or nil when it
// has none worth checking (some branch needs no byte).
func patternBytes(pattern string) byteNeed {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	need := needOf(re.Simplify())
	for _, s := range need {
		if s.empty() {
			return nil
		}
	}
	return need
}

func needOf(re *syntax.Regexp) byteNeed {
	switch re.Op {
	case syntax.OpLiteral:
		var s byteSet
		for _, r := range re.Rune {
			if c, ok := asciiNeed(r, re.Flags&syntax.FoldCase != 0); ok {
				s.add(c)
			}
		}
		return byteNeed{s}
	case syntax.OpCharClass:
		var s byteSet
		if c, ok := classNeed(re.Rune); ok {
			s.add(c)
		}
		return byteNeed{s}
	case syntax.OpCapture, syntax.OpPlus:
		return needOf(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return needOf(re.Sub[0])
		}
	case syntax.OpConcat:
		need := byteNeed{{}}
		for _, sub := range re.Sub {
			need = cross(need, needOf(sub))
		}
		return need
	case syntax.OpAlternate:
		var need byteNeed
		for _, sub := range re.Sub {
			need = append(need, needOf(sub)...)
		}
		return merged(need)
	}
	return byteNeed{{}}
}

// cross is the requirement of a concatenation of a and b.
func cross(a, b byteNeed) byteNeed {
	if len(a)*len(b) > maxByteSets {
		a, b = byteNeed{a.common()}, byteNeed{b.common()}
	}
	out := make(byteNeed, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, x.union(y))
		}
	}
	return out
}

// merged bounds n to maxByteSets sets.
func merged(n byteNeed) byteNeed {
	if len(n) > maxByteSets {
		return byteNeed{n.common()}
	}
	return n
}

// common is the bytes every set of n has.
func (n byteNeed) common() byteSet {
	s := n[0]
	for _, o := range n[1:] {
		s = s.inter(o)
	}
	return s
}

// asciiNeed is the byte a literal rune requires: itself when ASCII, or,
// under case folding, its lowercase when its whole fold orbit is ASCII.
func asciiNeed(r rune, fold bool) (byte, bool) {
	if r >= utf8.RuneSelf {
		return 0, false
	}
	if fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f >= utf8.RuneSelf {
				return 0, false
			}
		}
	}
	return lowerBytes[r], true
}

// classNeed is the byte a character class requires: one ASCII byte, or
// one ASCII letter in both cases.
func classNeed(ranges []rune) (byte, bool) {
	var runes []rune
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1]; r++ {
			if len(runes) == 2 || r >= utf8.RuneSelf {
				return 0, false
			}
			runes = append(runes, r)
		}
	}
	switch {
	case len(runes) == 1:
		return lowerBytes[runes[0]], true
	case len(runes) == 2 && lowerBytes[runes[0]] == lowerBytes[runes[1]]:
		return lowerBytes[runes[0]], true
	}
	return 0, false
}
