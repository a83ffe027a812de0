package waf

import (
	"testing"

	"github.com/lambdarasp/lambdarasp/rules"
)

func BenchmarkScan(b *testing.B) {
	e, err := New(rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 10000}, false)
	if err != nil {
		b.Fatal(err)
	}
	x := e.http.ix.atoms
	text := asciiLower("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 1005 Gravenstein Hwy N, Sebastopol gift wrap, please body/items/16/note")
	var found []int32
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		found = x.ac[0].scan(text, found[:0])
	}
	b.Log(len(x.list[0]), len(x.ac[0].fail), len(found))
}
