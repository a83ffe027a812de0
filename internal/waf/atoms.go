package waf

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of the atom analysis. A set larger than these is not worth the
// memory; the pattern then just runs on every value.
const (
	maxExact = 256  // strings an exactly known sub-pattern may stand for
	maxAtoms = 1024 // atoms in the set one rule is gated on
)

// atoms returns a set of strings at least one of which every match of the
// regular expression pattern contains, in the form the gate scans for:
// ASCII letters lowercased, anything else as its UTF-8 bytes. ok=false when
// the pattern has no such set; it must then run on every value. The set is
// a necessary condition, never a sufficient one: a value that contains an
// atom still runs the pattern.
//
// The analysis follows FilteredRE2: a sub-pattern whose language is a small
// finite set is known exactly (literals, small classes, alternations and
// concatenations of them, as a cross product); any other sub-pattern
// requires whatever its best child requires. Soundness rests on three
// choices: case folding expands each letter to its whole Unicode fold orbit
// (K also matches U+212A, s also U+017F); any other non-ASCII rune in the
// pattern gives up (Coraza matches some patterns byte-wise, where \xff is
// one byte, not the rune's UTF-8 encoding); a repetition that may be empty
// requires nothing.
func atoms(pattern string) (set []string, ok bool) {
	return analyser{}.atoms(pattern)
}

// frame is the byte the gate scans before and after every value, so that
// an anchored pattern (^ls, w$) requires "\x00ls" or "\nls" rather than
// any "ls". A value may contain the byte itself: it then shows more
// atoms, never fewer.
const frame = "\x00"

// evasionChars are the characters CRS's command patterns let an attacker
// put anywhere between the letters of a command (`["')[\\]*` and `\\?`
// after every letter of b.u.s.y.b.o.x): analysed as they are, those
// patterns require one of these common characters or a two-letter piece
// of a word. Analysed with the characters deleted — from the pattern's
// language and from the value scanned — they require whole command words.
const evasionChars = "\"')[\\"

// bestAtoms is the better of the pattern's plain atoms and its atoms with
// evasionChars deleted (deleted reports which): a value must contain one
// of set, or, when deleted, do so once those characters are removed
// from it.
func bestAtoms(pattern string) (set []string, ok, deleted bool) {
	set, ok = atoms(pattern)
	if !strings.ContainsAny(pattern, `"')[\`) {
		return set, ok, false
	}
	if dset, dok := (analyser{del: evasionChars}).atoms(pattern); dok && (!ok || better(dset, set)) {
		return dset, true, true
	}
	return set, ok, false
}

// analyser analyses patterns; with del set, for the language with the
// characters of del deleted from every string (deletion distributes over
// concatenation and alternation, so it is applied to the literals and
// classes, and a part that only matches those characters matches "").
type analyser struct{ del string }

func (a analyser) atoms(pattern string) ([]string, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, false
	}
	return a.analyse(re.Simplify()).required()
}

// strip deletes the characters of del from s.
func (a analyser) strip(s string) string {
	return deleteChars(s, a.del)
}

// deleteChars returns s without the bytes in chars (ASCII), s itself when
// it has none.
func deleteChars(s, chars string) string {
	if chars == "" || !strings.ContainsAny(s, chars) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(chars, s[i]) < 0 {
			b = append(b, s[i])
		}
	}
	return string(b)
}

func (a analyser) forms(r rune, fold bool) []string {
	f := runeForms(r, fold)
	if a.del == "" {
		return f
	}
	var out []string
	for _, x := range f {
		out = union(out, []string{a.strip(x)})
	}
	return out
}

// info is what the analysis knows about a sub-pattern: its match contains
// one of need; and, when isExact, its match is exactly one of exact unless
// it contains one of esc (parts that may match empty were taken as empty,
// and esc is what their non-empty matches contain).
type info struct {
	exact   []string // valid when isExact
	esc     []string
	isExact bool
	need    []string // valid when hasNeed
	hasNeed bool
}

func exactly(s ...string) info { return info{exact: s, isExact: true} }

var nothing = info{}

// required is the set a match must contain one of.
func (in info) required() ([]string, bool) {
	if !in.isExact {
		return in.need, in.hasNeed
	}
	set, ok := atomSet(in.exact)
	if ok && len(set)+len(in.esc) <= maxAtoms {
		set = minimal(union(slices.Clone(set), in.esc))
		if !in.hasNeed || !better(in.need, set) {
			return set, true
		}
	}
	return in.need, in.hasNeed
}

// onlyEmpty reports whether the sub-pattern only matches "" (all its
// characters deleted).
func (in info) onlyEmpty() bool {
	if !in.isExact || len(in.esc) > 0 {
		return false
	}
	for _, x := range in.exact {
		if x != "" {
			return false
		}
	}
	return true
}

// nonEmpty is a set one of whose atoms every non-empty match contains.
func (in info) nonEmpty() ([]string, bool) {
	if !in.isExact {
		return in.need, in.hasNeed
	}
	var set []string
	for _, x := range in.exact {
		if x != "" {
			set = append(set, x)
		}
	}
	if len(set)+len(in.esc) > maxAtoms {
		return nil, false
	}
	set = union(set, in.esc)
	return set, len(set) > 0
}

// atomSet turns an exact set into a requirement: none if it holds the
// empty string, which every value contains.
func atomSet(s []string) ([]string, bool) {
	if len(s) == 0 || len(s) > maxAtoms {
		return nil, false
	}
	for _, x := range s {
		if x == "" {
			return nil, false
		}
	}
	return s, true
}

// minimal drops every atom that contains another: a value that contains it
// contains the other too.
func minimal(s []string) []string {
	short := map[string]bool{}
	for _, x := range s {
		if len(x) <= 3 {
			short[x] = true
		}
	}
	out := make([]string, 0, len(s))
	for _, x := range s {
		if !containsShort(x, short) && (len(s) > 128 || !containsLonger(x, s)) {
			out = append(out, x)
		}
	}
	return out
}

// containsShort reports whether x has a proper substring in short.
func containsShort(x string, short map[string]bool) bool {
	for n := 1; n <= 3 && n < len(x); n++ {
		for i := 0; i+n <= len(x); i++ {
			if short[x[i:i+n]] {
				return true
			}
		}
	}
	return false
}

// containsLonger reports whether x contains another atom of the set
// longer than three bytes (shorter ones are containsShort's).
func containsLonger(x string, set []string) bool {
	for _, y := range set {
		if len(y) > 3 && len(y) < len(x) && strings.Contains(x, y) {
			return true
		}
	}
	return false
}

func (a analyser) analyse(re *syntax.Regexp) info {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText:
		// Coraza matches in (?m) mode: an anchor stands next to a newline
		// or an end of the value, which the gate scans as frame.
		return exactly(frame, "\n")
	case syntax.OpEmptyMatch, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		// Zero-width: contributes the empty string to a concatenation.
		return exactly("")
	case syntax.OpLiteral:
		cur := []string{""}
		fold := re.Flags&syntax.FoldCase != 0
		for _, r := range re.Rune {
			if cur = product(cur, a.forms(r, fold)); cur == nil {
				return a.literalSegments(re)
			}
		}
		return exactly(cur...)
	case syntax.OpCharClass:
		set, ok := a.classSet(re)
		if !ok {
			return nothing
		}
		return exactly(set...)
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return nothing
	case syntax.OpCapture:
		return a.analyse(re.Sub[0])
	case syntax.OpQuest:
		sub := a.analyse(re.Sub[0])
		if sub.isExact {
			// Its requirement no longer holds: it may be absent.
			return info{exact: union(slices.Clone(sub.exact), []string{""}), esc: sub.esc, isExact: true}
		}
		return optional(sub)
	case syntax.OpStar:
		return optional(a.analyse(re.Sub[0]))
	case syntax.OpPlus:
		return requires(a.analyse(re.Sub[0]))
	case syntax.OpRepeat:
		if re.Min < 1 {
			return optional(a.analyse(re.Sub[0]))
		}
		return requires(a.analyse(re.Sub[0]))
	case syntax.OpConcat:
		return a.concat(re.Sub)
	case syntax.OpAlternate:
		return a.alternate(re.Sub)
	}
	return nothing
}

// classSet is the scanned forms of a small character class.
func (a analyser) classSet(re *syntax.Regexp) ([]string, bool) {
	var set []string
	for i := 0; i+1 < len(re.Rune); i += 2 {
		lo, hi := re.Rune[i], re.Rune[i+1]
		if hi-lo > 32 {
			return nil, false
		}
		for r := lo; r <= hi; r++ {
			if set = union(set, a.forms(r, false)); len(set) > 32 {
				return nil, false
			}
		}
	}
	return set, len(set) > 0
}

// optional is a part that may match empty: taken as empty, with what its
// non-empty matches contain as the escape. Without such a set, nothing
// is known.
func optional(sub info) info {
	if sub.onlyEmpty() {
		return exactly("")
	}
	set, ok := sub.nonEmpty()
	if !ok {
		return nothing
	}
	return info{exact: []string{""}, esc: set, isExact: true}
}

// requires keeps what a sub-pattern requires but forgets its exact form
// (it repeats).
func requires(in info) info {
	if in.onlyEmpty() {
		return exactly("")
	}
	set, ok := in.required()
	return info{need: set, hasNeed: ok}
}

// concat joins runs of exactly known parts into cross products and keeps
// the best requirement any run or part gives. A part that may match empty
// both extends the runs (with its escape) and starts a fresh run after
// it, so "process" is found in process\s*\.\s*spawn although whitespace
// is common. A repeated part ends the runs with its first repetition and
// starts the next with its last.
func (a analyser) concat(subs []*syntax.Regexp) info {
	subs = distributeSuffix(subs)
	const maxRuns = 6
	var best []string
	found := false
	consider := func(in info) {
		if set, ok := in.required(); ok && (!found || better(set, best)) {
			best, found = set, true
		}
	}
	runs := []info{exactly("")}
	whole := true // runs[0] started at the first part and spans all so far
	extend := func(in info) {
		kept := runs[:0]
		for i, r := range runs {
			p := product(r.exact, in.exact)
			if p == nil || len(r.esc)+len(in.esc) > maxAtoms {
				consider(r)
				if i == 0 {
					whole = false
				}
				continue
			}
			kept = append(kept, info{exact: p, esc: union(slices.Clone(r.esc), in.esc), isExact: true})
		}
		runs = kept
	}
	restart := func(in info) {
		for _, r := range runs {
			consider(r)
		}
		whole = false
		runs = []info{in}
	}
	for _, sub := range subs {
		if sub.Op == syntax.OpPlus || sub.Op == syntax.OpRepeat && sub.Min >= 1 {
			in := a.analyse(sub.Sub[0])
			if in.onlyEmpty() {
				continue // zero-width, or only deleted characters
			}
			if !in.isExact {
				restart(exactly(""))
				consider(requires(in))
				continue
			}
			extend(in)
			restart(in)
			continue
		}
		in := a.analyse(sub)
		if in.onlyEmpty() {
			continue
		}
		if !in.isExact {
			restart(exactly(""))
			consider(in)
			continue
		}
		// A part that may be empty, or that multiplies the set (a
		// class after a word), may make the run worse: the run so far
		// is a candidate too.
		consider(in)
		optional := len(in.esc) > 0 || slices.Contains(in.exact, "")
		if optional || len(in.exact) > 1 {
			for _, r := range runs {
				consider(r)
			}
		}
		extend(in)
		if optional {
			runs = append(runs, exactly(""))
		}
		if len(runs) > maxRuns {
			consider(runs[0])
			whole = false
			runs = runs[1:]
		}
	}
	if whole && len(runs) > 0 {
		in := runs[0]
		in.need, in.hasNeed = best, found
		return in
	}
	for _, r := range runs {
		consider(r)
	}
	return info{need: best, hasNeed: found}
}

// distributeSuffix rewrites a concatenation that ends with an alternation
// and a short literal or anchor suffix, (?:a|b|c(?:x)?)$, into
// (?:a$|b$|c(?:x)?$): the same language, but each branch that is known
// exactly keeps its suffix even when another branch is not (932340's
// `…|w(?:ho…)?)$` then requires "w" at the end of a line, not anywhere).
func distributeSuffix(subs []*syntax.Regexp) []*syntax.Regexp {
	const maxSuffix, maxBranches = 2, 64
	for i := len(subs) - 2; i >= 0 && i >= len(subs)-1-maxSuffix; i-- {
		alt := subs[i]
		if alt.Op != syntax.OpAlternate || len(alt.Sub) > maxBranches {
			continue
		}
		rest := subs[i+1:]
		for _, r := range rest {
			switch r.Op {
			case syntax.OpLiteral, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText:
			default:
				return subs
			}
		}
		branches := make([]*syntax.Regexp, len(alt.Sub))
		for j, b := range alt.Sub {
			branches[j] = &syntax.Regexp{Op: syntax.OpConcat, Flags: b.Flags, Sub: append([]*syntax.Regexp{b}, rest...)}
		}
		out := append(slices.Clone(subs[:i]), &syntax.Regexp{Op: syntax.OpAlternate, Flags: alt.Flags, Sub: branches})
		return out
	}
	return subs
}

func (a analyser) alternate(subs []*syntax.Regexp) info {
	all := exactly()
	var need []string
	hasNeed := true
	for _, sub := range subs {
		in := a.analyse(sub)
		if hasNeed {
			set, ok := in.required()
			if need = union(need, set); !ok || len(need) > maxAtoms {
				need, hasNeed = nil, false
			}
		}
		if all.isExact && in.isExact && len(all.exact)+len(in.exact) <= maxExact && len(all.esc)+len(in.esc) <= maxAtoms {
			all.exact = union(all.exact, in.exact)
			all.esc = union(all.esc, in.esc)
			continue
		}
		all.isExact = false
	}
	all.need, all.hasNeed = need, hasNeed && len(need) > 0
	return all
}

// literalSegments is the fallback for a literal whose forms are too many
// to expand: its longest run of runes with a single (ASCII) form.
func (a analyser) literalSegments(re *syntax.Regexp) info {
	best, cur := "", []byte{}
	flush := func() {
		if len(cur) > len(best) {
			best = string(cur)
		}
		cur = cur[:0]
	}
	for _, r := range re.Rune {
		c, ok := asciiForm(r)
		if !ok {
			flush()
			continue
		}
		if strings.IndexByte(a.del, c) < 0 {
			cur = append(cur, c)
		}
	}
	flush()
	if best == "" {
		return nothing
	}
	return info{need: []string{best}, hasNeed: true}
}

// runeForms returns the scanned forms of a rune, and under folding of
// every rune in its fold orbit: a letter of an ASCII orbit is its
// lowercase ASCII letter (scanText maps K U+212A and ſ U+017F to k and
// s); any other rune is its UTF-8 encoding and, up to U+00FF, also the
// single byte, since Coraza matches some patterns byte-wise.
func runeForms(r rune, fold bool) []string {
	if c, ok := asciiForm(r); ok {
		return []string{string(c)}
	}
	var forms []string
	add := func(r rune) {
		if r <= 0xFF {
			forms = union(forms, []string{string([]byte{byte(r)})})
		}
		forms = union(forms, []string{string(r)})
	}
	add(r)
	if fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			add(f)
		}
	}
	return forms
}

func asciiForm(r rune) (byte, bool) {
	if r < utf8.RuneSelf {
		return lowerByte(byte(r)), true
	}
	c, ok := foldsToASCII[r]
	return c, ok
}

// foldsToASCII maps each non-ASCII rune whose case-fold orbit holds an
// ASCII letter to that letter, lowercased.
var foldsToASCII = func() map[rune]byte {
	m := map[rune]byte{}
	for c := 'a'; c <= 'z'; c++ {
		for f := unicode.SimpleFold(c); f != c; f = unicode.SimpleFold(f) {
			if f >= utf8.RuneSelf {
				m[f] = byte(c)
			}
		}
	}
	return m
}()

// atomFilter tells whether a value, as the gate scans it, shows one of a
// set of atoms: the test that atoms are a necessary condition for.
type atomFilter struct {
	m     *acMatcher
	strip bool // the atoms are of the value with evasionChars deleted
}

func newAtomFilter(set []string, strip bool) *atomFilter {
	return &atomFilter{m: newACMatcher(set), strip: strip}
}

func (f *atomFilter) shows(s string) bool {
	folded := scanFolded(s)
	if f.strip {
		s, folded = deleteChars(s, evasionChars), deleteChars(folded, evasionChars)
	}
	return f.m.found(s) || folded != "" && f.m.found(folded)
}

// A value is scanned for atoms as it is, ASCII letters lowercased (the
// automaton lowers them, see acMatcher); and, when it has them, also with
// the non-ASCII fold forms of ASCII letters replaced by those letters:
// scanFolded returns that form, or "" (the raw form is still needed for
// patterns Coraza matches byte-wise, where the last byte of K U+212A is a
// byte a pattern can name).
func scanFolded(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return foldASCII(s[i:], s[:i])
		}
	}
	return ""
}

// foldASCII replaces the fold forms of ASCII letters in s, returning ""
// when it has none. prefix is prepended.
func foldASCII(s, prefix string) string {
	var b []byte
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if a, ok := foldsToASCII[r]; ok && n > 1 {
			if b == nil {
				b = append([]byte(prefix), s[:i]...)
			}
			b = append(b, a)
		} else if b != nil {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

// asciiLower lowercases ASCII letters only, returning s itself when it has
// none to change.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lowerByte(b[j])
			}
			return string(b)
		}
	}
	return s
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// product is every a+b, or nil when there would be more than maxExact.
func product(as, bs []string) []string {
	if len(as)*len(bs) > maxExact {
		return nil
	}
	out := make([]string, 0, len(as)*len(bs))
	for _, a := range as {
		for _, b := range bs {
			out = append(out, a+b)
		}
	}
	return out
}

// union appends to set the strings of more it lacks.
func union(set, more []string) []string {
	if len(set)*len(more) <= 256 {
		for _, s := range more {
			if !slices.Contains(set, s) {
				set = append(set, s)
			}
		}
		return set
	}
	have := make(map[string]bool, len(set)+len(more))
	for _, s := range set {
		have[s] = true
	}
	for _, s := range more {
		if !have[s] {
			have[s] = true
			set = append(set, s)
		}
	}
	return set
}

// better prefers the set less likely to occur in clean text, by a rough
// cost per atom: a letter, digit or space is in most values, punctuation
// in some, longer atoms in few.
func better(a, b []string) bool { return rarity(a) < rarity(b) }

func rarity(set []string) float64 {
	var sum float64
	for _, s := range set {
		switch len(s) {
		case 1:
			switch c := s[0]; {
			case s == frame:
				sum += 2 // in every value
			case c == ' ' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9':
				sum += 1
			case strings.IndexByte(".,-/:_@=&?+()", c) >= 0:
				sum += 0.3
			default:
				sum += 0.05
			}
		case 2:
			sum += 0.05
		case 3:
			sum += 0.01
		default:
			sum += 0.002
		}
	}
	return sum
}
