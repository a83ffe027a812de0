package waf

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"rsc.io/binaryregexp"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// Coraza compiles every @rx pattern when it loads the rules: about 55 ms
// of a cold start for the CRS, most of it for patterns that never run
// (the fast path evaluates a pattern only where one of its atoms occurs).
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
type lazyRX struct{ p *rxPattern }

// rxPattern is one compiled pattern, shared by every rule and WAF that
// uses it, as Coraza's memoizer shares them.
type rxPattern struct {
	once sync.Once
	args string
	re   *regexp.Regexp
	bin  *binaryregexp.Regexp
	err  error
}

var (
	rxPatterns   sync.Map // pattern → *rxPattern
	registerOnce sync.Once
)

// useLazyRX makes lazyRX Coraza's @rx operator in this process. Coraza's
// operator registry is global: any WAF the process builds afterwards gets
// it; its matches are the same.
func useLazyRX() {
	registerOnce.Do(func() { plugins.RegisterOperator("rx", newLazyRX) })
}

func newLazyRX(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	v, _ := rxPatterns.LoadOrStore(o.Arguments, &rxPattern{args: o.Arguments})
	p := v.(*rxPattern)
	if _, known := tableEntry(o.Arguments); !known {
		if p.compile(); p.err != nil {
			return nil, p.err
		}
	}
	return lazyRX{p}, nil
}

func (p *rxPattern) compile() {
	p.once.Do(func() {
		data := "(?sm)" + p.args
		if matchesArbitraryBytes(data) {
			p.bin, p.err = binaryregexp.Compile(p.args)
			return
		}
		p.re, p.err = regexp.Compile(data)
	})
}

func (o lazyRX) Evaluate(tx plugintypes.TransactionState, value string) bool {
	p := o.p
	p.compile()
	switch {
	case p.err != nil:
		// Not reachable: only patterns TestAtomTable compiled are
		// deferred. Fail closed rather than let the rule never match.
		return true
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
	case !tx.Capturing():
		return p.re.MatchString(value)
	}
	match := p.re.FindStringSubmatchIndex(value)
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
