package bench

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkColdStart runs fresh processes of three builds of the same
// function (bench/coldstart): bare aws-lambda-go, wrapped with
// protect.Handler, and with raw Coraza + CRS compiled at init. Each is
// timed from exec to its first call to the Runtime API's
// invocation/next — the end of init as Lambda counts it — served here by
// a stub that never answers. Reported: median init time, median peak RSS
// at that point (VmHWM of the process), and the stripped binary's size.
func BenchmarkColdStart(b *testing.B) {
	api, ready := runtimeStub(b)
	dir := b.TempDir()
	for _, impl := range []string{"bare", "lambdarasp", "raw-coraza"} {
		pkg := map[string]string{"raw-coraza": "coraza"}[impl]
		if pkg == "" {
			pkg = impl
		}
		bin := buildColdStart(b, dir, pkg)
		b.Run("case=cold-init/impl="+impl, func(b *testing.B) { coldStart(b, bin, api, ready, nil) })
	}
}

// runtimeStub serves a Runtime API whose invocation/next never answers;
// ready receives each call to it.
func runtimeStub(b *testing.B) (api string, ready chan struct{}) {
	ready = make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/2018-06-01/runtime/invocation/next" {
			ready <- struct{}{}
		}
		<-r.Context().Done() // the process is killed while it waits
	}))
	b.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), ready
}

// buildColdStart builds bench/coldstart/pkg into dir as make examples
// builds a function (internal/dist: goBuild, functionTags) and the README
// tells users to: static, stripped, -trimpath, with the tags lambda.norpc
// and coraza.disabled_operators.validateSchema. The three builds get the
// same flags, so the binary row compares like with like.
func buildColdStart(b *testing.B, dir, pkg string) string {
	bin := filepath.Join(dir, pkg)
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w",
		"-tags", "lambda.norpc,coraza.disabled_operators.validateSchema", "-o", bin, "./coldstart/"+pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// coldStart times fresh processes of bin, with env besides the Runtime
// API's address, from exec to their first invocation/next.
func coldStart(b *testing.B, bin, api string, ready chan struct{}, env []string) {
	st, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	var wall, rss []float64
	for b.Loop() {
		cmd := exec.Command(bin)
		cmd.Env = append([]string{"AWS_LAMBDA_RUNTIME_API=" + api}, env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-ready:
		case err := <-exited:
			b.Fatalf("%s exited during init: %v\n%s", bin, err, stderr.Bytes())
		}
		wall = append(wall, float64(time.Since(start).Microseconds())/1000)
		rss = append(rss, peakRSS(b, cmd.Process.Pid))
		cmd.Process.Kill()
		<-exited
	}
	b.ReportMetric(median(wall), "init-ms")
	b.ReportMetric(median(rss), "rss-MB")
	b.ReportMetric(float64(st.Size())/(1<<20), "bin-MB")
}

// peakRSS is the process's peak resident set so far, in MB.
func peakRSS(b *testing.B, pid int) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
