package main

import (
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	in := `goos: linux
BenchmarkInspect/case=apigw-1KB/impl=raw-coraza-2   10   12000000 ns/op   1700000 B/op   9800 allocs/op
BenchmarkInspect/case=apigw-1KB/impl=raw-coraza-2   10   14000000 ns/op   1700000 B/op   9800 allocs/op
BenchmarkInspect/case=apigw-1KB/impl=raw-coraza-2   10   90000000 ns/op   1700000 B/op   9800 allocs/op
BenchmarkInspect/case=apigw-1KB/impl=lambdarasp-2   10   1000000 ns/op   240000 B/op   3900 allocs/op
BenchmarkColdStart/case=cold-init/impl=bare-2   10   3000000 ns/op   7.9 bin-MB   2.5 init-ms   7.5 rss-MB   15000 B/op   97 allocs/op
BenchmarkColdStart/case=cold-init/impl=lambdarasp-2   10   30000000 ns/op   16 bin-MB   30 init-ms   23 rss-MB
PASS
`
	var out strings.Builder
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| apigw-1KB | time per event |  | 14.00 ms | 1.00 ms | 14.0× |", // the median, not the mean
		"| apigw-1KB | allocations per event |  | 9800 | 3900 | 2.5× |",
		"| cold-init | exec to handler ready | 2.5 ms |  | 30.0 ms |  |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "cold-init | time per event") || strings.Contains(out.String(), "cold-init | allocations") {
		t.Errorf("cold-init reports the mean ns/op:\n%s", out.String())
	}
	if err := run(strings.NewReader("PASS\n"), &out); err == nil {
		t.Error("no benchmarks: want an error")
	}
}
