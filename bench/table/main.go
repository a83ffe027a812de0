// Command table turns `go test -bench` output of ./bench into the
// side-by-side table of bench/RESULTS.md: one row per case and metric, one
// column per implementation (medians over -count runs), and the ratio of
// raw Coraza to lambdarasp. `make bench` pipes into it.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
}

type key struct{ kase, metric, impl string }

func run(in io.Reader, out io.Writer) error {
	values := map[key][]float64{}
	var cases, metrics []string
	impls := []string{"bare", "raw-coraza", "lambdarasp"}
	seen := map[string]bool{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		var kase, impl string
		for _, part := range strings.Split(f[0], "/") {
			if v, ok := strings.CutPrefix(part, "case="); ok {
				kase = v
			}
			if v, ok := strings.CutPrefix(part, "impl="); ok {
				impl = trimProcs(v)
			}
		}
		if kase == "" || impl == "" {
			continue
		}
		if !seen[kase] {
			seen[kase] = true
			cases = append(cases, kase)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not a number", f[0], f[i])
			}
			m := f[i+1]
			if kase == "cold-init" && (m == "ns/op" || m == "B/op" || m == "allocs/op") {
				continue // of the harness; init-ms is the process's time
			}
			if !slices.Contains(metrics, m) {
				metrics = append(metrics, m)
			}
			k := key{kase, m, impl}
			values[k] = append(values[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(cases) == 0 {
		return fmt.Errorf("no case=…/impl=… benchmarks in the input")
	}
	fmt.Fprintln(out, "| case | metric | bare handler | raw Coraza + CRS | lambdarasp | raw / lambdarasp |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	for _, c := range cases {
		for _, m := range metrics {
			row := []string{c, unit(m)}
			med := map[string]float64{}
			any := false
			for _, impl := range impls {
				v, ok := values[key{c, m, impl}]
				if !ok {
					row = append(row, "")
					continue
				}
				any = true
				med[impl] = median(v)
				row = append(row, format(m, med[impl]))
			}
			if !any {
				continue
			}
			ratio := ""
			if r, l := med["raw-coraza"], med["lambdarasp"]; r > 0 && l > 0 {
				ratio = fmt.Sprintf("%.1f×", r/l)
			}
			row = append(row, ratio)
			fmt.Fprintln(out, "| "+strings.Join(row, " | ")+" |")
		}
	}
	return nil
}

// trimProcs removes the -GOMAXPROCS suffix go test adds to a name.
func trimProcs(s string) string {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return s
	}
	if _, err := strconv.Atoi(s[i+1:]); err != nil {
		return s
	}
	return s[:i]
}

func unit(m string) string {
	switch m {
	case "ns/op":
		return "time per event"
	case "B/op":
		return "allocated per event"
	case "allocs/op":
		return "allocations per event"
	case "init-ms":
		return "exec to handler ready"
	case "rss-MB":
		return "peak RSS at ready"
	case "bin-MB":
		return "stripped binary"
	}
	return m
}

func format(m string, v float64) string {
	switch m {
	case "ns/op":
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2f ms", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%.0f µs", v/1e3)
		}
		return fmt.Sprintf("%.0f ns", v)
	case "B/op":
		switch {
		case v >= 1<<20:
			return fmt.Sprintf("%.1f MB", v/(1<<20))
		case v >= 1<<10:
			return fmt.Sprintf("%.0f KB", v/(1<<10))
		}
		return fmt.Sprintf("%.0f B", v)
	case "allocs/op":
		return fmt.Sprintf("%.0f", v)
	case "init-ms":
		return fmt.Sprintf("%.1f ms", v)
	case "rss-MB", "bin-MB":
		return fmt.Sprintf("%.1f MB", v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
