package waf

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	ahocorasick "github.com/petar-dambovaliev/aho-corasick"
	re2 "github.com/wasilibs/go-re2"
	"rsc.io/binaryregexp"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// Coraza compiles every @rx pattern and builds every @pm and @pmFromFile
// automaton when it loads the rules: about 70 ms of a cold start for the
// CRS, most of it for operators that never run (the fast path evaluates an
// operator only where one of its atoms occurs). lazyRX and lazyPM are
// Coraza's operators with that work moved to their first evaluation; they
// replace Coraza's in this process (useLazyOperators).

// lazyRX is Coraza's @rx operator (v3.8.1, default build: internal/
// operators/rx.go) with the compilation moved to the first evaluation.
// Patterns of the embedded rules are known to compile (TestAtomTable
// compiles every one); any other pattern — user rules — is compiled when
// loaded, so a bad one is still an error at init.
//
// The matching is Coraza's: the pattern in (?sm) mode, or byte-wise
// (rsc.io/binaryregexp, without the flags) when it names bytes that are
// not UTF-8; with capturing on, groups 0-8 are captured. Coraza's optional
// literal pre-filter (SecRxPreFilter, off by default) is not reproduced:
// it only skips values the pattern cannot match.
//
// In the fast engine's WAF, a pattern also refuses without running any
// value that lacks all of its atoms (atoms.go): a necessary condition, so
// the answer is the same, but Coraza's own evaluation of a candidate rule
// (which runs it on every value of its variables) no longer pays the
// regexp for values that cannot match. Any other WAF — the reference
// engine, a user's own Coraza, the raw Coraza of the benchmarks — keeps
// plain regexps, so the differential tests still check the atoms.
//
// Also in the fast engine's WAF only, an ASCII value of longValue bytes or
// more is matched by RE2 instead of Go's regexp (same answers and
// captures; see longValue).
type lazyRX struct {
	p      *rxPattern
	filter bool
}

// rxPattern is one compiled pattern, shared by every rule and WAF that
// uses it, as Coraza's memoizer shares them.
type rxPattern struct {
	once  sync.Once
	args  string
	re    *regexp.Regexp
	bin   *binaryregexp.Regexp
	err   error
	atoms *atomFilter // nil: no atoms, or matched byte-wise
	need  byteNeed    // the bytes a match needs (bytes.go); nil: none known

	longOnce sync.Once
	long     *re2.Regexp // for long ASCII values; nil: re is used
}

// fastFS marks the root file system of the fast engine's WAF: operators
// built for it filter by atoms.
type fastFS struct{ fs.FS }

var (
	rxPatterns   sync.Map // pattern → *rxPattern
	registerOnce sync.Once
)

// useLazyOperators makes lazyRX and lazyPM Coraza's @rx, @pm and
// @pmFromFile operators in this process, and libOp (reuse.go) its
// @detectSQLi and @detectXSS. Coraza's operator registry is
// global: any WAF the process builds afterwards gets them; their matches
// are the same.
func useLazyOperators() {
	registerOnce.Do(func() {
		plugins.RegisterOperator("rx", newLazyRX)
		plugins.RegisterOperator("pm", newLazyPM)
		plugins.RegisterOperator("pmFromFile", newLazyPMFromFile)
		plugins.RegisterOperator("pmf", newLazyPMFromFile)
		plugins.RegisterOperator("detectSQLi", newDetectSQLi)
		plugins.RegisterOperator("detectXSS", newDetectXSS)
	})
}

func newLazyRX(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	v, _ := rxPatterns.LoadOrStore(o.Arguments, &rxPattern{args: o.Arguments})
	p := v.(*rxPattern)
	if _, known := tableEntry(o.Arguments); !known {
		if p.compile(); p.err != nil {
			return nil, p.err
		}
	}
	_, fast := o.Root.(fastFS)
	return lazyRX{p: p, filter: fast}, nil
}

func (p *rxPattern) compile() {
	p.once.Do(func() {
		data := "(?sm)" + p.args
		if matchesArbitraryBytes(data) {
			p.bin, p.err = binaryregexp.Compile(p.args)
			return
		}
		if p.re, p.err = regexp.Compile(data); p.err != nil {
			return
		}
		if set, ok, deleted := patternAtoms(p.args); ok {
			p.atoms = newAtomFilter(set, deleted)
		}
		p.need = patternBytes(p.args)
	})
}

func (o lazyRX) Evaluate(tx plugintypes.TransactionState, value string) bool {
	return o.evaluate(tx, value, o.filter)
}

// evaluate is Evaluate, refusing values without atoms only with filter
// set: the gate, which runs an operator only where its atoms occur, has
// no need to look again.
func (o lazyRX) evaluate(tx plugintypes.TransactionState, value string, filter bool) bool {
	p := o.p
	p.compile()
	switch {
	case p.err != nil:
		// Not reachable: only patterns TestAtomTable compiled are
		// deferred. Fail closed rather than let the rule never match.
		return true
	case filter && p.atoms != nil && !p.atoms.shows(value):
		return false
	case filter && p.need != nil && !p.need.admitsString(value):
		return false
	case p.bin != nil:
		if !tx.Capturing() {
			return p.bin.MatchString(value)
		}
		match := p.bin.FindStringSubmatch(value)
		if len(match) == 0 {
			return false
		}
		for i, c := range match {
			if i == 9 {
				break
			}
			tx.CaptureField(i, c)
		}
		return true
	}
	re := p.matcher(o.filter, value)
	if !tx.Capturing() {
		return re.MatchString(value)
	}
	match := re.FindStringSubmatchIndex(value)
	if match == nil {
		return false
	}
	for i := 0; i < len(match)/2 && i < 9; i++ {
		if match[2*i] >= 0 {
			tx.CaptureField(i, value[match[2*i]:match[2*i+1]])
		} else {
			tx.CaptureField(i, "")
		}
	}
	return true
}

// longValue is the length from which the fast engine matches an ASCII
// value with RE2's automata (github.com/wasilibs/go-re2) instead of Go's
// regexp. Go's regexp runs an NFA over long inputs, whose cost per byte
// grows with the pattern: 0.4-0.7 µs per byte for the CRS command
// patterns, so a 1 MB string of base64 cost 3 s; RE2's DFA is 30-130
// times faster there (bench/RESULTS.md, Bounds). Both implement the same
// syntax and leftmost-first semantics; they differ on invalid UTF-8,
// which ASCII rules out, and TestLongValuesMatchCoraza holds them equal,
// captures included, on every embedded pattern. Below this length RE2 does
// not pay: with it for every ASCII value, the 1 KB event of make bench
// went from 0.61 to 0.85 ms and SQS 10 x 1 KB from 3.5 to 4.7 ms (one
// interleaved run; go-re2's calls carry more fixed cost, and short values
// rarely reach the NFA's worst case).
const longValue = 4 << 10

// regexpMatcher is what Go's regexp and go-re2 share.
type regexpMatcher interface {
	MatchString(string) bool
	FindStringSubmatchIndex(string) []int
}

// matcher returns the regexp to match value with: with fast set (the fast
// engine's WAF) RE2 for a long ASCII value, else Go's regexp.
func (p *rxPattern) matcher(fast bool, value string) regexpMatcher {
	if !fast || len(value) < longValue || !isASCII(value) {
		return p.re
	}
	p.longOnce.Do(func() {
		// A pattern RE2 refuses (none of the embedded ones) stays with
		// Go's regexp.
		p.long, _ = re2.Compile("(?sm)" + p.args)
	})
	if p.long == nil {
		return p.re
	}
	return p.long
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lazyPM is Coraza's @pm (phrases separated by spaces) and @pmFromFile
// (one phrase per line of a file) operator: the phrases lowercased, found
// ASCII case-insensitively, leftmost-longest, with up to ten captures. The
// file is read when the rule loads, so a missing one is still an error at
// init; the automaton is built on first use.
type lazyPM struct {
	dict   []string // the phrases, as Coraza lists them
	minLen int
	m      *pmMatcher
}

type pmMatcher struct {
	once sync.Once
	dict []string
	dfa  bool
	ac   ahocorasick.AhoCorasick
}

var pmMatchers sync.Map // Coraza's memoization key → *pmMatcher

func newPM(key string, dict []string, dfa bool) *lazyPM {
	v, _ := pmMatchers.LoadOrStore(key, &pmMatcher{dict: dict, dfa: dfa})
	minLen := 0
	for _, p := range dict {
		if len(p) == 0 {
			minLen = 0
			break
		}
		if minLen == 0 || len(p) < minLen {
			minLen = len(p)
		}
	}
	return &lazyPM{dict: dict, minLen: minLen, m: v.(*pmMatcher)}
}

func newLazyPM(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	data := strings.ToLower(o.Arguments)
	return newPM("pm:"+data, strings.Split(data, " "), true), nil
}

func newLazyPMFromFile(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	data, err := loadFromFile(o.Arguments, o.Path, o.Root)
	if err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		lines = append(lines, strings.ToLower(l))
	}
	return newPM("pmf:"+strings.Join(o.Path, ",")+o.Arguments, lines, false), nil
}

// loadFromFile is Coraza's: an absolute path is read from root, a relative
// one from the first of dirs that has it.
func loadFromFile(name string, dirs []string, root fs.FS) ([]byte, error) {
	if path.IsAbs(name) {
		return fs.ReadFile(root, name)
	}
	if len(dirs) == 0 {
		return nil, errors.New("empty dirs")
	}
	var err error
	for _, d := range dirs {
		var content []byte
		content, err = fs.ReadFile(root, path.Join(d, name))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		return content, nil
	}
	return nil, err
}

func (o *lazyPM) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if len(value) < o.minLen {
		return false
	}
	m := o.m
	m.once.Do(func() {
		b := ahocorasick.NewAhoCorasickBuilder(ahocorasick.Opts{
			AsciiCaseInsensitive: true,
			MatchKind:            ahocorasick.LeftMostLongestMatch,
			DFA:                  m.dfa,
		})
		m.ac = b.Build(m.dict)
	})
	iter := m.ac.Iter(value)
	if !tx.Capturing() {
		return iter.Next() != nil
	}
	n := 0
	for match := iter.Next(); match != nil; match = iter.Next() {
		tx.CaptureField(n, value[match.Start():match.End()])
		if n++; n == 10 {
			break
		}
	}
	return n > 0
}

// matchesArbitraryBytes is Coraza's test for a pattern that must be
// matched byte-wise: with its \xNN escapes decoded, it is not UTF-8.
func matchesArbitraryBytes(expr string) bool {
	decoded := make([]byte, 0, len(expr))
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c != '\\' {
			decoded = append(decoded, c)
			continue
		}
		if i+3 >= len(expr) {
			decoded = append(decoded, expr[i:]...)
			break
		}
		if expr[i+1] != 'x' {
			decoded = append(decoded, expr[i])
			continue
		}
		sub := expr[i:]
		advance := 3
		if len(sub) >= 6 && sub[2] == '{' {
			if end := strings.IndexByte(sub, '}'); end != -1 {
				sub = `\x` + sub[3:end]
				advance = end
			}
		}
		v, mb, _, err := strconv.UnquoteChar(sub, 0)
		if err != nil || mb {
			decoded = append(decoded, expr[i])
			continue
		}
		decoded = append(decoded, byte(v))
		i += advance
	}
	return !utf8.Valid(decoded)
}
