package bench

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lambdarasp/lambdarasp/internal/codedigest"
)

// BenchmarkCodeDigest times the code digest the extension computes once
// per start when LAMBDARASP_CODE_SHA256 is set (after the first
// invocation's response), over a tree shaped like a Go function's: a
// 30 MiB bootstrap and 200 small files. b.SetBytes makes MB/s the hash
// rate. Run it alone with
//
//	go test -run '^$' -bench CodeDigest -benchtime 10x ./bench/
func BenchmarkCodeDigest(b *testing.B) {
	dir := b.TempDir()
	bin := make([]byte, 30<<20)
	rand.Read(bin)
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), bin, 0o755); err != nil {
		b.Fatal(err)
	}
	size := int64(len(bin))
	for i := range 200 {
		p := filepath.Join(dir, "static", fmt.Sprint(i%10), fmt.Sprintf("f%d.json", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, bin[:1024], 0o644); err != nil {
			b.Fatal(err)
		}
		size += 1024
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codedigest.Dir(dir, codedigest.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
