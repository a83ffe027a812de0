package protect_test

import (
	"cmp"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lambdarasp/lambdarasp/protect"
)

// The fast path must give exactly the verdict the reference engine gives
// (every rule over every event, as plain Coraza evaluates it): same action,
// score, findings and blocked records. The corpus is every CRS regression
// request replayed as an event, the project's sample events and the
// aws-lambda-go samples; FuzzDifferential mutates them.

func differentialPair(t testing.TB, level int) (fast, ref *protect.Inspector) {
	t.Helper()
	var err error
	if fast, err = protect.NewInspector(protect.WithParanoia(level)); err != nil {
		t.Fatal(err)
	}
	if ref, err = protect.NewInspector(protect.WithParanoia(level), protect.WithReferenceEngine()); err != nil {
		t.Fatal(err)
	}
	return fast, ref
}

func sameVerdict(t testing.TB, name string, event []byte, fast, ref *protect.Inspector) bool {
	t.Helper()
	got, want := comparable(fast.Inspect(event)), comparable(ref.Inspect(event))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: fast path and reference differ\nfast:      %+v\nreference: %+v", name, got, want)
		return false
	}
	return true
}

// comparable is the verdict with its findings sorted: Coraza reports the
// values one rule matched in map order, which differs from run to run.
func comparable(v protect.Verdict) protect.Verdict {
	out := protect.Verdict{Source: v.Source, Action: v.Action, Score: v.Score, BlockedRecords: v.BlockedRecords}
	out.Findings = slices.Clone(v.Findings)
	slices.SortFunc(out.Findings, func(a, b protect.Finding) int {
		return cmp.Or(cmp.Compare(a.Record, b.Record), cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Snippet, b.Snippet))
	})
	return out
}

func sampleEvents(t testing.TB) map[string][]byte {
	t.Helper()
	events := map[string][]byte{}
	files, _ := filepath.Glob("../examples/events/*.json")
	if out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-lambda-go").Output(); err == nil {
		more, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "events", "testdata", "*.json"))
		files = append(files, more...)
	}
	if len(files) < 50 {
		t.Fatalf("found %d sample events, want the project's and aws-lambda-go's", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		events[filepath.Base(f)] = b
	}
	return events
}

func TestFastPathMatchesReference(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: runs the CRS corpus through the reference engine")
	}
	for _, v := range []string{"LAMBDARASP_MODE", "LAMBDARASP_PARANOIA", "LAMBDARASP_ANOMALY_THRESHOLD", "LAMBDARASP_ENGINE",
		"LAMBDARASP_RULES", "LAMBDARASP_EXCLUDE", "LAMBDARASP_MAX_DEPTH", "LAMBDARASP_MAX_FIELDS",
		"LAMBDARASP_MAX_VALUE_BYTES", "LAMBDARASP_MAX_RECORDS"} {
		t.Setenv(v, "")
	}
	type job struct {
		name  string
		level int
		event []byte
	}
	var jobs []job
	for name, b := range sampleEvents(t) {
		for level := 1; level <= 4; level++ {
			jobs = append(jobs, job{name, level, b})
		}
	}
	for _, c := range loadCRSCases(t, crsRuleLevels(t)) {
		for _, s := range c.stages {
			if s.event != nil {
				jobs = append(jobs, job{"CRS " + c.id(), c.level, s.event})
			}
		}
	}
	pairs := map[int][2]*protect.Inspector{}
	for level := 1; level <= 4; level++ {
		f, r := differentialPair(t, level)
		pairs[level] = [2]*protect.Inspector{f, r}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	differ := 0
	next := make(chan job)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range next {
				p := pairs[j.level]
				if !sameVerdict(t, j.name, j.event, p[0], p[1]) {
					mu.Lock()
					differ++
					mu.Unlock()
				}
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	t.Logf("fast path vs reference: %d events compared, %d differ", len(jobs), differ)
	if len(jobs) < 4000 {
		t.Errorf("compared %d events, want the whole CRS corpus (over 4,000)", len(jobs))
	}
}

func FuzzDifferential(f *testing.F) {
	for _, b := range sampleEvents(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"version":"2.0","rawPath":"/a","rawQueryString":"id=1%27%20or%201=1--","headers":{"content-type":"application/json"},"requestContext":{"http":{"method":"POST","path":"/a","protocol":"HTTP/1.1","sourceIp":"1.2.3.4"}},"body":"{\"a\":\"<script>alert(1)</script>\"}"}`))
	fast, ref := differentialPair(f, 1)
	f.Fuzz(func(t *testing.T, event []byte) {
		sameVerdict(t, "fuzzed event", event, fast, ref)
	})
}
