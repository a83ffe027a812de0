package waf

import (
	"math/rand/v2"
	"os"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"

	"github.com/lambdarasp/lambdarasp/rules"
)

// stockRules are the embedded rules compiled with Coraza's own @rx
// operator, before any New registers lazyRX.
var stockRules []*compiledRule

func TestMain(m *testing.M) {
	d, root, err := rules.Directives(rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 10000, All: true})
	if err == nil {
		var w coraza.WAF
		if w, err = coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(root).WithDirectives(d)); err == nil {
			stockRules, err = readRules(w)
		}
	}
	if err == nil {
		// Beyond the CRS: more than nine groups, a byte-wise pattern.
		var w coraza.WAF
		if w, err = coraza.NewWAF(coraza.NewWAFConfig().WithDirectives(
			`SecRule ARGS "@rx (a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)" "id:1,pass,capture"` + "\n" +
				`SecRule ARGS "@rx a(\\xff|b)(c)?" "id:2,pass,capture"`)); err == nil {
			var extra []*compiledRule
			extra, err = readRules(w)
			stockRules = append(stockRules, extra...)
		}
	}
	if err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// captureState records what an operator captures.
type captureState struct {
	plugintypes.TransactionState // nil: operators call only the two below
	capturing                    bool
	fields                       []string
}

func (c *captureState) Capturing() bool { return c.capturing }
func (c *captureState) CaptureField(i int, v string) {
	for len(c.fields) <= i {
		c.fields = append(c.fields, "\x00unset")
	}
	c.fields[i] = v
}

// lazyRX answers and captures exactly what Coraza's @rx does, plain and
// filtered by atoms as in the fast engine, on strings
// generated from each embedded pattern (most match) and their prefixes and
// mutations (many do not).
func TestLazyRXMatchesCoraza(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[string]bool{}
	matched, checked := 0, 0
	for _, r := range stockRules {
		for c := r; c != nil; c = c.chain {
			if c.opName != "rx" || seen[c.opData] {
				continue
			}
			seen[c.opData] = true
			if _, ok := c.op.(lazyRX); ok {
				t.Fatal("stock rules were compiled with lazyRX: TestMain must run before New")
			}
			lazy, err := newLazyRX(plugintypes.OperatorOptions{Arguments: c.opData})
			if err != nil {
				t.Fatalf("rule %d: %v", c.id, err)
			}
			// As the fast engine builds it: filtered by atoms.
			filtered, err := newLazyRX(plugintypes.OperatorOptions{Arguments: c.opData, Root: fastFS{rules.FS}})
			if err != nil || !filtered.(lazyRX).filter || lazy.(lazyRX).filter {
				t.Fatalf("rule %d: %v, or filter set wrong", c.id, err)
			}
			ast, err := syntax.Parse(c.opData, syntax.Perl)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 60; i++ {
				var b strings.Builder
				generate(&b, ast, rng)
				s := b.String()
				for _, v := range []string{s, "abcdefghijk", "xa\xffc", s[:rng.IntN(len(s)+1)], "x " + strings.ToUpper(s) + "\n;", strings.ReplaceAll(s, " ", "")} {
					for _, capturing := range []bool{false, true} {
						want, got := &captureState{capturing: capturing}, &captureState{capturing: capturing}
						m := c.op.Evaluate(want, v)
						if lazy.Evaluate(got, v) != m || !slices.Equal(want.fields, got.fields) {
							t.Fatalf("rule %d on %q (capturing %v): Coraza %v %q, lazyRX %q", c.id, v, capturing, m, want.fields, got.fields)
						}
						got = &captureState{capturing: capturing}
						if filtered.Evaluate(got, v) != m || !slices.Equal(want.fields, got.fields) {
							t.Fatalf("rule %d on %q (capturing %v): Coraza %v %q, lazyRX filtered by atoms %q", c.id, v, capturing, m, want.fields, got.fields)
						}
						checked++
						if m {
							matched++
						}
					}
				}
			}
		}
	}
	if len(seen) < 200 || matched < checked/4 || matched == checked {
		t.Fatalf("%d patterns, %d of %d inputs matched: the generator is broken", len(seen), matched, checked)
	}
}

// setvars and macros read what these patterns read, on every rule's text.
func TestSetvarsAndMacros(t *testing.T) {
	setvarRx := regexp.MustCompile(`(?i)setvar:'?!?tx\.([^=',"]*)`)
	macroRx := regexp.MustCompile(`%\{([^}]*)\}`)
	texts := []string{"setvar:tx.a", "SetVar:'!TX.b_c'", "setvar:tx.", "x%{tx.a}%{", "%{}%{REQUEST_HEADERS.host}"}
	for _, r := range stockRules {
		for c := r; c != nil; c = c.chain {
			texts = append(texts, c.raw, c.opData)
		}
	}
	sub := func(rx *regexp.Regexp, s string) []string {
		var out []string
		for _, m := range rx.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1])
		}
		return out
	}
	n := 0
	for _, s := range texts {
		want := sub(setvarRx, s)
		n += len(want)
		if got := setvars(s); !slices.Equal(got, want) {
			t.Fatalf("setvars(%.200q) = %q, want %q", s, got, want)
		}
		if got, want := macros(s), sub(macroRx, s); !slices.Equal(got, want) {
			t.Fatalf("macros(%.200q) = %q, want %q", s, got, want)
		}
	}
	if n < 500 {
		t.Fatalf("only %d setvars in the rules", n)
	}
}

// lazyPM answers and captures exactly what Coraza's @pm and @pmFromFile
// do, on phrases of each list embedded in text, case-changed, cut short
// and run together.
func TestLazyPMMatchesCoraza(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	rulesChecked, matched, checked := 0, 0, 0
	for _, r := range stockRules {
		for c := r; c != nil; c = c.chain {
			var lazy plugintypes.Operator
			var err error
			opts := plugintypes.OperatorOptions{Arguments: c.opData, Path: []string{"@owasp_crs"}, Root: rules.FS}
			switch c.opName {
			case "pm":
				lazy, err = newLazyPM(opts)
			case "pmFromFile", "pmf":
				lazy, err = newLazyPMFromFile(opts)
			default:
				continue
			}
			if err != nil {
				t.Fatalf("rule %d: %v", c.id, err)
			}
			if _, ok := c.op.(*lazyPM); ok {
				t.Fatal("stock rules were compiled with lazyPM: TestMain must run before New")
			}
			rulesChecked++
			dict := lazy.(*lazyPM).dict
			for i := 0; i < 40; i++ {
				p, q := dict[rng.IntN(len(dict))], dict[rng.IntN(len(dict))]
				for _, v := range []string{p, "a " + strings.ToUpper(p) + " b", p[:len(p)/2], p + q + p, strings.Repeat(q, 12), "K\u212a" + p} {
					for _, capturing := range []bool{false, true} {
						want, got := &captureState{capturing: capturing}, &captureState{capturing: capturing}
						m := c.op.Evaluate(want, v)
						if lazy.Evaluate(got, v) != m || !slices.Equal(want.fields, got.fields) {
							t.Fatalf("rule %d on %q (capturing %v): Coraza %v %q, lazyPM %q", c.id, v, capturing, m, want.fields, got.fields)
						}
						checked++
						if m {
							matched++
						}
					}
				}
			}
		}
	}
	if rulesChecked < 15 || matched < checked/2 || matched == checked {
		t.Fatalf("%d rules, %d of %d inputs matched: the test inputs are broken", rulesChecked, matched, checked)
	}
}

// The gate runs @detectXSS only on strings with '<' or '=' (opAtoms). On
// random strings without them, built from the pieces XSS is made of, the
// operator Coraza runs (libinjection) never reports XSS; with them it does.
func TestXSSNeedsLtOrEquals(t *testing.T) {
	var op plugintypes.Operator
	for _, r := range stockRules {
		if r.id == 941100 {
			op = r.op
		}
	}
	if op == nil {
		t.Fatal("no rule 941100")
	}
	pieces := []string{"script", "onerror", "onload", "javascript:", "vbscript:", "style", "src", "href", "xmlns", "import",
		"alert(1)", "expression(", "url(", " ", "\t", "\n", "/", "\"", "'", "`", ">", "!", "-", "--", "?", "[if", "&#", ";", ":",
		"\x00", "data:", "x", "A", "ENTITY", "DOCTYPE", "CDATA", "<", "="}
	rng := rand.New(rand.NewPCG(9, 10))
	flagged, withEither := 0, 0
	for i := 0; i < 100000; i++ {
		var b strings.Builder
		for j := 0; j < 1+rng.IntN(12); j++ {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := b.String()
		xss := op.Evaluate(&captureState{}, s)
		if !strings.ContainsAny(s, "<=") {
			if xss {
				t.Fatalf("libinjection flags %q, which has neither '<' nor '=': the gate's atoms for @detectXSS are wrong", s)
			}
			continue
		}
		withEither++
		if xss {
			flagged++
		}
	}
	if flagged < withEither/100 {
		t.Fatalf("only %d of %d strings with '<' or '=' flagged: the generator is broken", flagged, withEither)
	}
}

// On long ASCII values, which the fast engine matches with RE2 (see
// longValue), lazyRX still answers and captures what Coraza's @rx does:
// for every embedded pattern, a string generated from it inside base64
// noise (which shows most atoms), at a random place and at the end.
func TestLongValuesMatchCoraza(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	noise := make([]byte, longValue)
	for i := range noise {
		noise[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[rng.IntN(64)]
	}
	seen := map[string]bool{}
	matched, checked, ascii := 0, 0, 0
	for _, r := range stockRules {
		for c := r; c != nil; c = c.chain {
			if c.opName != "rx" || seen[c.opData] {
				continue
			}
			seen[c.opData] = true
			fast, err := newLazyRX(plugintypes.OperatorOptions{Arguments: c.opData, Root: fastFS{rules.FS}})
			if err != nil {
				t.Fatalf("rule %d: %v", c.id, err)
			}
			ast, err := syntax.Parse(c.opData, syntax.Perl)
			if err != nil {
				t.Fatal(err)
			}
			var s string
			for try := 0; try < 10 && (try == 0 || !isASCII(s)); try++ {
				var b strings.Builder
				generate(&b, ast, rng)
				s = b.String()
			}
			at := rng.IntN(len(noise))
			for _, v := range []string{string(noise[:at]) + s + string(noise[at:]), string(noise) + " " + s} {
				want, got := &captureState{capturing: true}, &captureState{capturing: true}
				m := c.op.Evaluate(want, v)
				if fast.Evaluate(got, v) != m || !slices.Equal(want.fields, got.fields) {
					t.Fatalf("rule %d on a %d-byte value with %q (ASCII %v): Coraza %v %q, lazyRX %q", c.id, len(v), s, isASCII(v), m, want.fields, got.fields)
				}
				checked++
				if m {
					matched++
				}
				if isASCII(v) {
					ascii++
				}
			}
		}
	}
	if matched < checked/4 || matched == checked || ascii < checked*3/4 {
		t.Fatalf("%d of %d long values matched, %d ASCII: the generator is broken", matched, checked, ascii)
	}
	t.Logf("%d patterns, %d of %d long values matched, %d ASCII", len(seen), matched, checked, ascii)
}
