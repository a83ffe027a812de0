package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const auditData = "../../internal/audit/testdata/"

func TestAudit(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("Resources:\n  A: !Nope x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A project whose build output (.aws-sam) holds a copy with a secret.
	proj := t.TempDir()
	for dst, src := range map[string]string{"template.yaml": "clean.yaml", ".aws-sam/build/template.yaml": "001-secret.yaml",
		"node_modules/x/template.yaml": "001-secret.yaml"} {
		b, err := os.ReadFile(auditData + src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(proj, dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proj, dst), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	many := t.TempDir()
	for i := range maxDirFiles + 1 {
		if err := os.WriteFile(filepath.Join(many, fmt.Sprintf("%d.json", i)), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		args   []string
		status int
		stdout string // contained in the output
		stderr string // contained in stderr
	}{
		{"clean", []string{auditData + "clean.yaml"}, 0, "no findings in 1 file", ""},
		{"low under the default", []string{auditData + "009-tracing-off.json"}, 0, "LR-AUDIT-009", ""},
		{"low at --fail-on low", []string{"--fail-on", "low", auditData + "009-tracing-off.json"}, 1, "LR-AUDIT-009", ""},
		{"high", []string{auditData + "001-secret.yaml"}, 1, "DB_PASSWORD=hun…(13 chars)", ""},
		{"critical at --fail-on critical", []string{"--fail-on", "critical", auditData + "002-admin.yaml"}, 1, "LR-AUDIT-002", ""},
		{"medium under --fail-on critical", []string{"--fail-on", "critical", auditData + "004-wildcard-resource.yaml"}, 0, "LR-AUDIT-004", ""},
		{"trusted account", []string{"--trusted-accounts", "444455556666, 111122223333", auditData + "008-unknown-account.yaml"}, 0, "no findings", ""},
		{"directory", []string{auditData + "aws"}, 1, "LR-AUDIT-005", ""},
		{"hidden directory and node_modules skipped", []string{proj}, 0, "no findings in 1 file", ""},
		{"too many files", []string{many}, 2, "", "more than 2000"},
		{"missing", []string{auditData + "nope.yaml", auditData + "clean.yaml"}, 2, "in 1 file", "nope.yaml: no such file"},
		{"malformed", []string{bad, auditData + "001-secret.yaml"}, 2, "LR-AUDIT-001", "bad.yaml: line 2: tag !Nope is not a CloudFormation intrinsic function"},
		{"format", []string{"--format", "xml", auditData + "clean.yaml"}, 2, "", `--format "xml": want table, json or sarif`},
		{"fail-on", []string{"--fail-on", "severe", auditData + "clean.yaml"}, 2, "", `severity "severe": want low, medium, high or critical`},
		{"accounts", []string{"--trusted-accounts", "12345", auditData + "clean.yaml"}, 2, "", `"12345" is not an AWS account id`},
		{"no path", nil, 2, "", "usage: lambdarasp audit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			status := run(append([]string{"audit"}, c.args...), strings.NewReader(""), &out, &errb)
			if status != c.status || !strings.Contains(out.String(), c.stdout) || !strings.Contains(errb.String(), c.stderr) {
				t.Errorf("status %d (want %d)\nstdout:\n%s\nstderr:\n%s", status, c.status, out.String(), errb.String())
			}
		})
	}
}

func TestAuditJSON(t *testing.T) {
	var out, errb bytes.Buffer
	status := run([]string{"audit", "--format", "json", auditData + "010-deprecated-runtime.yaml"}, strings.NewReader(""), &out, &errb)
	var r struct {
		Files    int
		Findings []map[string]any
		Errors   []map[string]string
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || status != 1 {
		t.Fatalf("status %d, %v:\n%s", status, err, out.String())
	}
	want := map[string]any{"id": "LR-AUDIT-010", "severity": "high", "title": "deprecated runtime", "resource": "Api",
		"file": auditData + "010-deprecated-runtime.yaml", "line": 15.0, "evidence": "Runtime go1.x"}
	if r.Files != 1 || len(r.Findings) != 1 || r.Errors == nil || len(r.Errors) != 0 {
		t.Fatalf("report %+v", r)
	}
	for k, v := range want {
		if r.Findings[0][k] != v {
			t.Errorf("%s = %v, want %v", k, r.Findings[0][k], v)
		}
	}
	if len(r.Findings[0]) != len(want)+1 || r.Findings[0]["fix"] == "" {
		t.Errorf("fields %v, want %d with fix", r.Findings[0], len(want)+1)
	}
}

// TestAuditReadme: the README's sample report is what the command prints.
func TestAuditReadme(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const cmd = "$ lambdarasp audit internal/audit/testdata/sample.yaml\n"
	_, sample, ok := strings.Cut(string(readme), cmd)
	sample, _, ok2 := strings.Cut(sample, "```")
	if !ok || !ok2 {
		t.Fatalf("README has no block starting %q", cmd)
	}
	t.Chdir("../..")
	var out, errb bytes.Buffer
	if status := run([]string{"audit", "internal/audit/testdata/sample.yaml"}, strings.NewReader(""), &out, &errb); status != 1 {
		t.Fatalf("status %d: %s", status, errb.String())
	}
	if out.String() != sample {
		t.Errorf("README's sample differs from the output; the output:\n%s", out.String())
	}
}
