package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The demo itself, as make demo runs it: real binaries under lambdarasp
// local. It must find every expected outcome, so the scenario cannot rot.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds three binaries and runs the scenario")
	}
	bin := t.TempDir()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	for _, b := range [][2]string{
		{filepath.Join(bin, "lambdarasp"), "../../cmd/lambdarasp"},
		{filepath.Join(bin, "extensions", "lambdarasp"), "../../cmd/lambdarasp-extension"},
		{filepath.Join(bin, "orders"), "../orders"},
	} {
		cmd := exec.Command(goCmd, "build", "-o", b[0], b[1])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b[1], err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{
		"-lambdarasp", filepath.Join(bin, "lambdarasp"), "-function", filepath.Join(bin, "orders"),
		"-extensions", filepath.Join(bin, "extensions"), "-events", "../events", "-policy", "policy.json",
	}, &out, &errOut)
	if code != 0 {
		t.Fatalf("demo exited %d\n%s\n%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "all expected outcomes happened") {
		t.Errorf("no summary line:\n%s", out.String())
	}
}
