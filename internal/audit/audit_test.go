package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func read(t testing.TB, paths ...string) []File {
	t.Helper()
	var files []File
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, File{Path: p, Data: b})
	}
	return files
}

// ids lists "ID resource" of every finding.
func ids(r Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.ID+" "+f.Resource)
	}
	return out
}

// TestFindings: each testdata file written for one finding gives exactly
// that finding, on that resource.
func TestFindings(t *testing.T) {
	cases := []struct {
		files []string
		want  string
	}{
		{[]string{"001-secret.yaml"}, "LR-AUDIT-001 Api"},
		{[]string{"002-admin.yaml"}, "LR-AUDIT-002 Api"},
		{[]string{"002-admin-role.yaml"}, "LR-AUDIT-002 ApiRole"},
		{[]string{"003-wildcard-action.yaml"}, "LR-AUDIT-003 Api"},
		{[]string{"004-wildcard-resource.yaml"}, "LR-AUDIT-004 Api"},
		{[]string{"005-shared-role.yaml"}, "LR-AUDIT-005 SharedRole"},
		{[]string{"006-public-url.yaml"}, "LR-AUDIT-006 Api"},
		{[]string{"006-public-url-cfn.yaml"}, "LR-AUDIT-006 ApiUrl"},
		{[]string{"007-any-principal.yaml"}, "LR-AUDIT-007 OpenInvoke"},
		{[]string{"008-unknown-account.yaml"}, "LR-AUDIT-008 PartnerInvoke"},
		{[]string{"009-tracing-off.json"}, "LR-AUDIT-009 Api"},
		{[]string{"010-deprecated-runtime.yaml"}, "LR-AUDIT-010 Api"},
		{[]string{"011-async-no-dlq.yaml"}, "LR-AUDIT-011 Thumbnails"},
		{[]string{"012-sqs-no-partial-batch.yaml"}, "LR-AUDIT-012 Worker"},
		{[]string{"012-mapping-no-partial-batch.yaml"}, "LR-AUDIT-012 OrdersMapping"},
		{[]string{"013-no-layer.yaml"}, "LR-AUDIT-013 Api"},
		{[]string{"014-mode-off.yaml"}, "LR-AUDIT-014 Api"},
		{[]string{"aws/config-secret.json"}, "LR-AUDIT-001 orders-api,LR-AUDIT-001 orders-api"},
		{[]string{"aws/config-shared-a.json", "aws/config-shared-b.json"}, "LR-AUDIT-005 arn:aws:iam::123456789012:role/orders-shared"},
		{[]string{"aws/getfunction-no-layer.json"}, "LR-AUDIT-013 orders-api"},
		{[]string{"aws/policy-public-url.json"}, "LR-AUDIT-006 orders-api"},
		{[]string{"aws/policy-any-principal.json"}, "LR-AUDIT-007 orders-api"},
		{[]string{"aws/policy-any-principal-list.json"}, "LR-AUDIT-007 orders-api"},
		{[]string{"aws/policy-unknown-account.json"}, "LR-AUDIT-008 orders-api"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		r := Audit(read(t, c.files...))
		if len(r.Errors) > 0 {
			t.Errorf("%v: errors %v", c.files, r.Errors)
		}
		if got := strings.Join(ids(r), ","); got != c.want {
			t.Errorf("%v: findings %q, want %q", c.files, got, c.want)
		}
		for _, f := range r.Findings {
			seen[f.ID] = true
			if f.Line < 1 || f.Evidence == "" || f.Fix == "" || f.Title == "" {
				t.Errorf("%v: finding %+v lacks a line, evidence, title or fix", c.files, f)
			}
		}
	}
	for _, rl := range Rules {
		if !seen[rl.ID] {
			t.Errorf("rule %s: no test file finds it", rl.ID)
		}
	}
}

// TestClean: a realistic application, a function configuration and a
// resource policy with nothing to find.
func TestClean(t *testing.T) {
	r := Audit(read(t, "clean.yaml", "aws/config-clean.json", "aws/policy-clean.json"))
	if len(r.Findings) > 0 || len(r.Errors) > 0 || r.Files != 3 {
		t.Errorf("findings %v, errors %v, %d files; want none, none, 3", ids(r), r.Errors, r.Files)
	}
}

// TestExamples: the project's own SAM templates have nothing high.
func TestExamples(t *testing.T) {
	paths, err := filepath.Glob("../../examples/*/template.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no example templates: %v", err)
	}
	var files []File
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, File{Path: p, Data: b})
	}
	r := Audit(files)
	if len(r.Errors) > 0 || r.Max() >= High {
		t.Errorf("errors %v, findings %v: want nothing high", r.Errors, ids(r))
	}
	for _, f := range r.Findings { // tracing is left to the user's choice of backend
		if f.ID != "LR-AUDIT-009" {
			t.Errorf("%s: %s %s: %s", f.File, f.ID, f.Title, f.Evidence)
		}
	}
}

// TestKMS: a secret in variables encrypted with the user's own key is not
// reported.
func TestKMS(t *testing.T) {
	f := read(t, "001-secret.yaml")[0]
	f.Data = bytes.Replace(f.Data, []byte("      Environment:"), []byte("      KmsKeyArn: !GetAtt Key.Arn\n      Environment:"), 1)
	if r := Audit([]File{f}); len(r.Findings) != 0 || len(r.Errors) != 0 {
		t.Errorf("with KmsKeyArn: findings %v, errors %v", ids(r), r.Errors)
	}
}

// TestLayerParameter: a layer given by a parameter is judged by its
// default, and not at all without one.
func TestLayerParameter(t *testing.T) {
	const tmpl = `Parameters:
  Layer: {Type: String%s}
Resources:
  Api:
    Type: AWS::Serverless::Function
    Properties: {Runtime: provided.al2023, Tracing: Active, Layers: [!Ref Layer]}
`
	for def, want := range map[string]string{
		"": "",
		", Default: arn:aws:lambda:eu-west-1:123456789012:layer:otel:1":       "LR-AUDIT-013 Api",
		", Default: arn:aws:lambda:eu-west-1:123456789012:layer:lambdarasp:1": "",
	} {
		r := Audit([]File{{Path: "t.yaml", Data: []byte(fmt.Sprintf(tmpl, def))}})
		if got := strings.Join(ids(r), ","); got != want || len(r.Errors) > 0 {
			t.Errorf("default %q: findings %q, errors %v; want %q", def, got, r.Errors, want)
		}
	}
}

func TestTrustedAccounts(t *testing.T) {
	for _, p := range []string{"008-unknown-account.yaml", "aws/policy-unknown-account.json"} {
		if r := Audit(read(t, p), WithTrustedAccounts("111122223333")); len(r.Findings) > 0 {
			t.Errorf("%s with the account trusted: %v", p, ids(r))
		}
		if r := Audit(read(t, p), WithTrustedAccounts("444455556666")); len(r.Findings) != 1 {
			t.Errorf("%s with another account trusted: %v, want one finding", p, ids(r))
		}
	}
}

// TestSecretsMasked: no output format carries a secret's value.
func TestSecretsMasked(t *testing.T) {
	r := Audit(read(t, "001-secret.yaml", "aws/config-secret.json"))
	for name, write := range map[string]func(*bytes.Buffer, Report) error{
		"table": func(b *bytes.Buffer, r Report) error { return WriteTable(b, r) },
		"json":  func(b *bytes.Buffer, r Report) error { return WriteJSON(b, r) },
		"sarif": func(b *bytes.Buffer, r Report) error { return WriteSARIF(b, r) },
	} {
		var b bytes.Buffer
		if err := write(&b, r); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"hunter22", "IOSFODNN7", "bPxRfiCY"} {
			if strings.Contains(b.String(), s) {
				t.Errorf("%s output shows %q", name, s)
			}
		}
		if !strings.Contains(b.String(), "hun…(13 chars)") {
			t.Errorf("%s output lacks the masked password", name)
		}
	}
}

// TestBadInput: malformed files are errors naming the problem, never
// panics, and the other files are still audited.
func TestBadInput(t *testing.T) {
	good := read(t, "001-secret.yaml")[0]
	cases := []struct {
		name, data, want string
	}{
		{"yaml", "Resources:\n  a: [\n", "["},
		{"json", `{"Resources": {"a": }`, "invalid character"},
		{"tag", "Resources:\n  A:\n    Type: !Reff x\n", "tag !Reff is not a CloudFormation intrinsic function"},
		{"repeated key", "Resources:\n  A: {Type: x}\n  A: {Type: y}\n", "already defined"},
		{"repeated json key", `{"Resources": {"A": {}, "A": {}}}`, `key "A" repeated`},
		{"two documents", "Resources: {}\n---\nResources: {}\n", "2 YAML documents"},
		{"not audited", `{"Records": []}`, "neither a SAM/CloudFormation template"},
		{"resources list", "Resources: [a, b]\n", "Resources: want a mapping"},
		{"policy", `{"Policy": "{not json"}`, "Policy: not a JSON policy document"},
		{"deep flow", "Resources: " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000), "nested deeper than 64"},
		{"deep json", `{"Resources":` + strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 101), "nested deeper than 64"},
		{"deep block", deepBlock(100), "nested deeper than 64"},
		{"alias bomb", aliasBomb(), "more than 1000000 values"},
		{"globals bomb", globalsBomb(), "merged into 600 functions"},
		{"large", "Resources: {}\n#" + strings.Repeat("x", MaxFileBytes), "larger than"},
		{"empty", "", "neither"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Audit([]File{{Path: "bad", Data: []byte(c.data)}, good})
			if len(r.Errors) != 1 || r.Errors[0].File != "bad" || !strings.Contains(r.Errors[0].Err, c.want) {
				t.Errorf("errors %v, want one for file bad containing %q", r.Errors, c.want)
			}
			if got := ids(r); !slices.Equal(got, []string{"LR-AUDIT-001 Api"}) {
				t.Errorf("the good file's findings %v", got)
			}
		})
	}
	// The parser's error names the line, never quotes it: it can hold a secret.
	r := Audit([]File{{Path: "bad", Data: []byte("Resources:\n  F:\n    Properties:\n      DB_PASSWORD: hunter2-plain\n      X: [a\n    Type: y\n")}})
	if len(r.Errors) != 1 || strings.Contains(r.Errors[0].Err, "hunter2") {
		t.Errorf("errors %v, want one without the file's text", r.Errors)
	}
	// Found in a directory, what is not meant for audit is skipped.
	r = Audit([]File{{Path: "event.json", Data: []byte(`{"Records": []}`), Optional: true}, {Path: "chart.yaml", Data: []byte("a: {{ .Values }}\n"), Optional: true}})
	if len(r.Errors) != 0 || r.Files != 0 {
		t.Errorf("optional files: errors %v, %d files audited; want none", r.Errors, r.Files)
	}
	r = Audit([]File{{Path: "broken.yaml", Data: []byte("AWSTemplateFormatVersion: x\nResources: [\n"), Optional: true}})
	if len(r.Errors) != 1 {
		t.Errorf("a broken template in a directory: errors %v, want one", r.Errors)
	}
}

// deepBlock is a block mapping n levels deep.
func deepBlock(n int) string {
	var b strings.Builder
	b.WriteString("Resources:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%sa%d:\n", strings.Repeat(" ", i), i)
	}
	return b.String() + strings.Repeat(" ", n+1) + "x: 1\n"
}

// aliasBomb expands to 10^7 values through ten levels of aliases.
// globalsBomb is a template whose Globals, small alone, would be copied
// into every one of its many functions.
func globalsBomb() string {
	var b strings.Builder
	b.WriteString("Globals:\n  Function:\n    Environment:\n      Variables:\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "        V%d: x\n", i)
	}
	b.WriteString("Resources:\n")
	for i := range 600 {
		fmt.Fprintf(&b, "  F%d: {Type: AWS::Serverless::Function}\n", i)
	}
	return b.String()
}

func aliasBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 7; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String() + "Resources: {}\n"
}

// TestSARIF checks the log against what SARIF 2.1.0 requires of it.
func TestSARIF(t *testing.T) {
	r := Audit(read(t, "001-secret.yaml", "005-shared-role.yaml", "009-tracing-off.json", "aws/policy-any-principal.json"))
	var b bytes.Buffer
	if err := WriteSARIF(&b, r); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID                   string                     `json:"id"`
						ShortDescription     struct{ Text string }      `json:"shortDescription"`
						Help                 struct{ Text string }      `json:"help"`
						DefaultConfiguration struct{ Level string }     `json:"defaultConfiguration"`
						Properties           map[string]json.RawMessage `json:"properties"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string                `json:"ruleId"`
				RuleIndex *int                  `json:"ruleIndex"`
				Level     string                `json:"level"`
				Message   struct{ Text string } `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region *struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	raw := b.Bytes()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // everything written is checked here
	if err := dec.Decode(&log); err != nil {
		// $schema is the one field the struct leaves out on purpose.
		if !strings.Contains(err.Error(), `"$schema"`) {
			t.Fatal(err)
		}
		dec = json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&log); err != nil {
			t.Fatal(err)
		}
	}
	levels := []string{"none", "note", "warning", "error"}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name == "" {
		t.Fatalf("version %q, %d runs, driver %q", log.Version, len(log.Runs), log.Runs[0].Tool.Driver.Name)
	}
	run := log.Runs[0]
	if len(run.Tool.Driver.Rules) != len(Rules) {
		t.Errorf("%d rules, want %d", len(run.Tool.Driver.Rules), len(Rules))
	}
	for _, rl := range run.Tool.Driver.Rules {
		if rl.ID == "" || rl.ShortDescription.Text == "" || rl.Help.Text == "" || !slices.Contains(levels, rl.DefaultConfiguration.Level) || rl.Properties["security-severity"] == nil {
			t.Errorf("rule %+v incomplete", rl)
		}
	}
	if len(run.Results) != len(r.Findings) || len(run.Results) < 4 {
		t.Fatalf("%d results for %d findings", len(run.Results), len(r.Findings))
	}
	for i, res := range run.Results {
		f := r.Findings[i]
		if res.RuleIndex == nil || run.Tool.Driver.Rules[*res.RuleIndex].ID != res.RuleID || res.RuleID != f.ID {
			t.Errorf("result %d: ruleId %q, ruleIndex %v, finding %s", i, res.RuleID, res.RuleIndex, f.ID)
		}
		if !slices.Contains(levels, res.Level) || res.Message.Text == "" || len(res.Locations) != 1 {
			t.Errorf("result %d: level %q, message %q, %d locations", i, res.Level, res.Message.Text, len(res.Locations))
			continue
		}
		loc := res.Locations[0].PhysicalLocation
		if loc.ArtifactLocation.URI != f.File || loc.Region == nil || loc.Region.StartLine != f.Line || f.Line < 1 {
			t.Errorf("result %d: location %+v, want %s:%d", i, loc, f.File, f.Line)
		}
	}
}

// FuzzAudit: any input is audited or refused, never a panic, and every
// finding is complete.
func FuzzAudit(f *testing.F) {
	for _, dir := range []string{"testdata", "testdata/aws"} {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.*"))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := Audit([]File{{Path: "f", Data: b}, {Path: "g", Data: b}})
		for _, e := range r.Errors {
			if strings.Contains(e.Err, errBug.Error()) {
				t.Fatal(e.Err)
			}
		}
		if r.Files+len(r.Errors) != 2 {
			t.Fatalf("%d files audited and %d errors for 2 files", r.Files, len(r.Errors))
		}
		for _, f := range r.Findings {
			if f.ID == "" || f.Severity < Low || f.Severity > Critical || f.Fix == "" || f.File == "" {
				t.Fatalf("incomplete finding %+v", f)
			}
		}
		var out bytes.Buffer
		if err := WriteSARIF(&out, r); err != nil || !json.Valid(out.Bytes()) {
			t.Fatalf("SARIF: %v", err)
		}
	})
}
