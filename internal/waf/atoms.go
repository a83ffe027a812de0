package waf

import (
	"regexp/syntax"
	"strings"
)

// maxAtoms bounds the alternatives an atom set may hold; a pattern whose
// smallest necessary set is larger gets no prefilter (it just runs).
const maxAtoms = 64

// atoms returns a set of strings at least one of which every match of the
// regular expression pattern contains, lowercased for a scan of the
// ASCII-lowercased input, or ok=false when the pattern has no such set
// (then it must always run). The set is a necessary condition, never a
// sufficient one: a value that contains an atom still runs the pattern.
//
// Soundness rests on three choices: literals under (?i) keep only their
// longest segment without k or s (Unicode folds K to U+212A and s to
// U+017F, which ASCII lowercasing does not undo); anything non-ASCII gives
// up (Coraza matches some patterns byte-wise, where \xff is one byte, not
// the rune's UTF-8 encoding); repetitions that may be empty require
// nothing.
func atoms(pattern string) (set []string, ok bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, false
	}
	return need(re.Simplify())
}

func need(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		return literalAtom(re.Rune, re.Flags&syntax.FoldCase != 0)
	case syntax.OpCharClass:
		var set []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi >= 0x80 || hi-lo > 32 {
				return nil, false
			}
			for r := lo; r <= hi; r++ {
				set = appendUnique(set, strings.ToLower(string(r)))
			}
		}
		return set, len(set) > 0 && len(set) <= maxAtoms
	case syntax.OpCapture, syntax.OpPlus:
		return need(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min < 1 {
			return nil, false
		}
		return need(re.Sub[0])
	case syntax.OpConcat:
		var best []string
		found := false
		for _, sub := range re.Sub {
			if set, ok := need(sub); ok && (!found || better(set, best)) {
				best, found = set, true
			}
		}
		return best, found
	case syntax.OpAlternate:
		var set []string
		for _, sub := range re.Sub {
			s, ok := need(sub)
			if !ok {
				return nil, false
			}
			for _, a := range s {
				set = appendUnique(set, a)
			}
			if len(set) > maxAtoms {
				return nil, false
			}
		}
		return set, len(set) > 0
	}
	return nil, false
}

func literalAtom(runes []rune, fold bool) ([]string, bool) {
	best, cur := "", []byte{}
	flush := func() {
		if len(cur) > len(best) {
			best = string(cur)
		}
		cur = cur[:0]
	}
	for _, r := range runes {
		if r >= 0x80 {
			return nil, false
		}
		c := byte(r)
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if fold && (c == 'k' || c == 's') {
			flush()
			continue
		}
		cur = append(cur, c)
	}
	flush()
	if best == "" {
		return nil, false
	}
	return []string{best}, true
}

// better prefers the set whose shortest atom is longer (rarer in clean
// text), then the smaller set.
func better(a, b []string) bool {
	ma, mb := minLen(a), minLen(b)
	if ma != mb {
		return ma > mb
	}
	return len(a) < len(b)
}

func minLen(set []string) int {
	m := -1
	for _, s := range set {
		if m < 0 || len(s) < m {
			m = len(s)
		}
	}
	return m
}

func appendUnique(set []string, s string) []string {
	for _, x := range set {
		if x == s {
			return set
		}
	}
	return append(set, s)
}

// containsAny reports whether lower, an ASCII-lowercased value, contains
// one of the atoms.
func containsAny(lower string, set []string) bool {
	for _, a := range set {
		if strings.Contains(lower, a) {
			return true
		}
	}
	return false
}

// asciiLower lowercases ASCII letters only, returning s itself when it has
// none to change.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
