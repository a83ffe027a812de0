package extension_test

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lambdarasp/lambdarasp/internal/decision"
)

// The self-check at start, real processes: the function's code is
// deployed with the digest lambdarasp digest printed, then changed; the
// extension raises code_changed with the digest lambdarasp digest gives
// the changed tree (the two agree), and the policy quarantines the
// function. The secrets in the function's variables are alerted masked,
// and the modules of its binary are listed, the one the vulnerability
// file names flagged.
func TestSelfCheckEndToEnd(t *testing.T) {
	s := newSetup(t, `{"version":1,"rules":[{"anomaly":"code_changed","action":"quarantine"}]}`, true)
	task := filepath.Join(s.dir, "task")
	if err := os.MkdirAll(filepath.Join(task, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(functionBin)
	if err != nil {
		t.Fatal(err)
	}
	s.function = filepath.Join(task, "bootstrap")
	write := func(path string, b []byte, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(s.function, bin, 0o755)
	write(filepath.Join(task, "conf", "app.json"), []byte(`{"debug":false}`), 0o644)
	digest := func() string {
		t.Helper()
		out, err := exec.Command(cliBin, "digest", task).Output()
		if err != nil {
			t.Fatalf("lambdarasp digest: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	deployed := digest()
	write(filepath.Join(task, "conf", "app.json"), []byte(`{"debug":true}`), 0o644) // changed after the deploy
	changed := digest()

	// An OSV file written for the binary: aws-lambda-go at its version is
	// affected (last_affected), gjson at its version is fixed.
	bi, err := buildinfo.ReadFile(functionBin)
	if err != nil {
		t.Fatal(err)
	}
	version := map[string]string{}
	for _, d := range bi.Deps {
		version[d.Path] = d.Version
	}
	lambdaGo, gjson := version["github.com/aws/aws-lambda-go"], version["github.com/tidwall/gjson"]
	if lambdaGo == "" || gjson == "" {
		t.Fatalf("the function's binary lacks aws-lambda-go or gjson: %v", version)
	}
	vulns := filepath.Join(s.dir, "osv.json")
	write(vulns, fmt.Appendf(nil, `[
  {"id": "GO-TEST-0001", "summary": "written for this test", "database_specific": {"severity": "HIGH"},
   "affected": [{"package": {"ecosystem": "Go", "name": "github.com/aws/aws-lambda-go"},
                 "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"last_affected": %q}]}]}]},
  {"id": "GO-TEST-0002", "summary": "written for this test",
   "affected": [{"package": {"ecosystem": "Go", "name": "github.com/tidwall/gjson"},
                 "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": %q}]}]}]},
  {"id": "GO-TEST-0003", "summary": "written for this test",
   "affected": [{"package": {"ecosystem": "Go", "name": "stdlib"}, "versions": [%q]}]}
]`, strings.TrimPrefix(lambdaGo, "v"), strings.TrimPrefix(gjson, "v"), goRelease(bi.GoVersion)), 0o644)

	const password, token = "Tr0ub4dor&3-correct-horse", "ghp_0123456789abcdefghijABCDEFGHIJ0123456789"
	s.env = append(s.env, "LAMBDARASP_CODE_DIR="+task, "LAMBDARASP_CODE_SHA256="+deployed, "LAMBDARASP_VULN_FILE="+vulns,
		"DB_PASSWORD="+password, "DEPLOY_TOKEN="+token, "DB_PASSWORD_ARN=arn:aws:secretsmanager:eu-west-1:123456789012:secret:db")
	em := s.start(t)
	// The code is hashed once the first invocation's runtime is done: it
	// neither slows nor refuses that one.
	expect(t, "the first clean request", status(t, em, event(t, clean, "198.51.100.1", "")), 200)
	expect(t, "clean request once the changed code is found", status(t, em, event(t, clean, "198.51.100.1", "")), 403)
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}

	d, err := decision.Read(s.decisions)
	if err != nil || d.Quarantine == nil || d.Quarantine.Reason != "code_changed" {
		t.Errorf("decisions file: %+v, %v", d, err)
	}
	logs, hook := s.logs.String(), s.hook.received()
	for _, want := range []string{
		`"AnomalyType":"code_changed"`, "has digest " + changed + ", not the expected " + deployed, `"action":"quarantine until `,
		`"AnomalyType":"env_secret"`, `"subject":"DB_PASSWORD"`, "(secret-by-name, ", `"subject":"DEPLOY_TOKEN"`, "(github-token, ghp_…(44 chars)",
		`"AnomalyType":"vulnerable_module"`, `"subject":"github.com/aws/aws-lambda-go@` + lambdaGo + `"`, "is affected by GO-TEST-0001",
		`"subject":"stdlib@v` + goRelease(bi.GoVersion) + `"`, "the Go standard library of " + bi.GoVersion + " is affected by GO-TEST-0003",
		`"msg":"lambdarasp self-check"`, `"github.com/tidwall/gjson@` + gjson + `"`, `"vulnerable":2`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log stream lacks %s", want)
		}
	}
	if n := strings.Count(logs, `"AnomalyType":"env_secret"`); n != 2 {
		t.Errorf("%d env_secret alerts, want 2 (DB_PASSWORD_ARN names a secret, it is not one)", n)
	}
	for _, want := range []string{`"type":"code_changed"`, `"type":"env_secret"`, `"type":"vulnerable_module"`} {
		if !strings.Contains(hook, want) {
			t.Errorf("webhook lacks %s", want)
		}
	}
	for _, raw := range []string{password, token, token[4:]} {
		if strings.Contains(logs+hook+s.diag.String(), raw) {
			t.Errorf("a secret's raw value reached the output: %q", raw)
		}
	}
}

// goRelease is the Go release v ("go1.26.8") as the vulnerability
// database writes it for stdlib ("1.26.8").
func goRelease(v string) string {
	v = strings.TrimPrefix(v, "go")
	if strings.Count(v, ".") == 1 {
		v += ".0"
	}
	return v
}
