package waf

import (
	"math/rand/v2"
	"testing"
)

// Every transformation the rule set uses leaves a value without its
// trigger features unchanged: the gate relies on it to skip the call.
func TestTransformationTriggers(t *testing.T) {
	e := testEngine(t)
	rng := rand.New(rand.NewPCG(3, 4))
	tested := map[string]bool{}
	for _, r := range e.http.rules {
		for c := r; c != nil; c = c.chain {
			for i, fn := range c.trans {
				name := transName(c.transIDs[i])
				trig, ok := triggers[name]
				if !ok || tested[name] {
					continue
				}
				tested[name] = true
				var alphabet []byte
				for b := 0; b < 256; b++ {
					if byteFeatures[b]&trig == 0 {
						alphabet = append(alphabet, byte(b))
					}
				}
				for n := 0; n < 20000; n++ {
					buf := make([]byte, rng.IntN(24))
					for j := range buf {
						buf[j] = alphabet[rng.IntN(len(alphabet))]
					}
					s := string(buf)
					if out, _, err := fn(s); err == nil && out != s {
						t.Fatalf("%s(%q) = %q: changed a value without its trigger features", name, s, out)
					}
				}
			}
		}
	}
	for _, name := range []string{"urlDecodeUni", "lowerCase", "htmlEntityDecode", "jsDecode", "cmdLine", "removeNulls"} {
		if !tested[name] {
			t.Errorf("%s not found among the rule set's transformations: transName no longer identifies them", name)
		}
	}
}
