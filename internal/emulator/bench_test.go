package emulator

import (
	"context"
	"testing"
)

// BenchmarkInvoke measures an invocation's round trip through the real
// function (and, in the second case, a real extension subscribed to
// telemetry): what the emulator adds to a handler that does nothing.
func BenchmarkInvoke(b *testing.B) {
	for _, exts := range [][]string{nil, {"recorder"}} {
		name := "no extension"
		if exts != nil {
			name = "recorder extension"
		}
		b.Run(name, func(b *testing.B) {
			cfg := Config{Function: functionBin}
			if exts != nil {
				dir, out := b.TempDir(), b.TempDir()
				if err := symlinkAll(dir, exts); err != nil {
					b.Fatal(err)
				}
				cfg.ExtensionsDir, cfg.Env = dir, []string{"EXT_OUT_DIR=" + out}
			}
			em, err := Start(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer em.Close()
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if _, err := em.Invoke(ctx, []byte(`{}`)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
