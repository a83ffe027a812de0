package waf

import (
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/corazawaf/coraza/v3"

	"github.com/lambdarasp/lambdarasp/internal/source"
)

// triggerAlphabet is the bytes that make features, alone or in pairs, and
// a few that make none: every string over it up to triggerLen bytes is
// tried.
const (
	triggerAlphabet = "/.*-# (%0aAu:\\+&\t\x00\xa0;x"
	triggerLen      = 4
)

// Every transformation leaves a value without its trigger features (see
// chainTrigger) unchanged: the gate relies on it to skip the call. And
// each feature of a listed trigger is needed: some input with that
// feature alone is changed (so the inputs below would catch a trigger
// made too narrow).
func TestTransformationTriggers(t *testing.T) {
	var names []string
	for _, n := range []string{"urlDecode", "urlDecodeUni", "lowercase", "jsDecode", "cssDecode",
		"escapeSeqDecode", "htmlEntityDecode", "utf8toUnicode", "removeNulls", "replaceNulls", "cmdLine",
		"removeWhitespace", "compressWhitespace", "trim", "trimLeft", "trimRight", "replaceComments",
		"removeComments", "removeCommentsChar", "normalizePath", "normalizePathWin",
		"base64Decode", "length", "md5"} { // the last ones have no trigger
		names = append(names, "t:"+n)
	}
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithDirectives(
		`SecRule ARGS "@rx x" "id:1,phase:2,pass,` + strings.Join(names, ",") + `"`))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := readRules(w)
	if err != nil {
		t.Fatal(err)
	}
	inputs := triggerInputs()
	feats := make([]uint16, len(inputs))
	for i, s := range inputs {
		feats[i] = features(s)
	}
	tested := map[string]bool{}
	for i, fn := range rs[0].trans {
		name := transName(rs[0].transIDs[i])
		trig := chainTrigger(rs[0].transIDs[i : i+1])
		_, listed := triggers[name]
		tested[name] = true
		var needed uint16
		for j, s := range inputs {
			f := feats[j] & trig
			if f != 0 && (!listed || bits.OnesCount16(f) > 1) {
				continue
			}
			out, _, err := fn(s)
			if err != nil || out == s {
				continue
			}
			if f == 0 {
				t.Errorf("%s(%q) = %q: changed a value without its trigger features", name, s, out)
			}
			needed |= f
		}
		if listed && needed != trig {
			t.Errorf("%s: no input with only the trigger features %016b changes", name, trig&^needed)
		}
	}
	for name := range triggers {
		if !tested[name] {
			t.Errorf("%s not tested: transName no longer identifies it, or it is missing from the rule above", name)
		}
	}
}

// A value with none of the features still goes through a transformation
// without a trigger: 920520 measures Accept-Encoding with t:length.
func TestUntriggeredTransformationRuns(t *testing.T) {
	req := source.Request{Method: "GET", URI: "/", Protocol: "HTTP/1.1",
		Headers: hdrs("Host", "a", "User-Agent", "curl/8.0", "Accept", "*/*", "Accept-Encoding", strings.Repeat("gzip", 30))}
	checkResult(t, testEngine(t).Request(&req), true, 920520, "headers.accept-encoding")
}

// triggerTokens are what the decoding transformations decode: with the
// bytes of triggerAlphabet, the pieces of triggerInputs' longer strings.
var triggerTokens = []string{"%u0041", "%uff41", "%41", "&lt;", "&#65;", "<!--", "-->", `\x41`, `\u0041`, `\101`,
	"C:", "..", "\xc2\x85", "\xc3\x89", "\xe2\x80\xa8"}

// triggerInputs is every string over triggerAlphabet up to triggerLen
// bytes, then random longer ones: sequences of triggerTokens and bytes of
// triggerAlphabet, and bytes of triggerAlphabet mixed with any byte.
func triggerInputs() []string {
	inputs := []string{""}
	for n, prev := 0, []string{""}; n < triggerLen; n++ {
		var next []string
		for _, p := range prev {
			for i := 0; i < len(triggerAlphabet); i++ {
				next = append(next, p+triggerAlphabet[i:i+1])
			}
		}
		inputs = append(inputs, next...)
		prev = next
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 50000 {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			if i := rng.IntN(2 * len(triggerTokens)); i < len(triggerTokens) {
				b.WriteString(triggerTokens[i])
			} else {
				b.WriteByte(triggerAlphabet[rng.IntN(len(triggerAlphabet))])
			}
		}
		inputs = append(inputs, b.String())
	}
	for range 50000 {
		buf := make([]byte, 5+rng.IntN(28))
		for j := range buf {
			if rng.IntN(2) == 0 {
				buf[j] = triggerAlphabet[rng.IntN(len(triggerAlphabet))]
			} else {
				buf[j] = byte(rng.IntN(256))
			}
		}
		inputs = append(inputs, string(buf))
	}
	return inputs
}

// BenchmarkFeatures is the pass over every distinct string of an event.
func BenchmarkFeatures(b *testing.B) {
	strs := []string{"body/pages/12/items/3/sku", "BK-0481", "customer1005@example.com", "gift wrap, please",
		"2010 Gravenstein Hwy N, Sebastopol", "Edsger Dijkstra", "2", "application/json",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"}
	n := 0
	for _, s := range strs {
		n += len(s)
	}
	b.SetBytes(int64(n))
	var f uint16
	for b.Loop() {
		for _, s := range strs {
			f |= features(s)
		}
	}
	_ = f
}
