package extension

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/anomaly"
	"github.com/lambdarasp/lambdarasp/internal/codedigest"
	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/testbin"
)

// The OSV samples in testdata/osv: a real Go vulnerability database entry
// (GO-2023-2102) and a query-batch answer written for these tests. Each
// module version is matched as the ranges say, the standard library by
// the Go release a binary records.
func TestVulnMatch(t *testing.T) {
	db := vulnDB{}
	for _, name := range []string{"GO-2023-2102.json", "batch.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "osv", name))
		if err != nil {
			t.Fatal(err)
		}
		d, err := parseVulns(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for k, v := range d {
			db[k] = append(db[k], v...)
		}
	}
	cases := []struct {
		module, version string
		ids             []string
		sev             anomaly.Severity
	}{
		{"golang.org/x/net", "v0.16.0", []string{"GO-2023-2102"}, anomaly.Medium},
		{"golang.org/x/net", "v0.0.0-20230101000000-abcdefabcdef", []string{"GO-2023-2102"}, anomaly.Medium}, // a pseudo-version
		{"golang.org/x/net", "v0.17.0", nil, ""},                                                             // fixed
		{"golang.org/x/net", "v0.59.0", nil, ""},
		{"stdlib", goSemver("go1.20.9"), []string{"GO-2023-2102"}, anomaly.Medium},
		{"stdlib", goSemver("go1.20.10"), nil, ""},
		{"stdlib", goSemver("go1.21rc2"), []string{"GO-2023-2102"}, anomaly.Medium}, // introduced 1.21.0-0
		{"stdlib", goSemver("go1.21.2 X:boringcrypto"), []string{"GO-2023-2102"}, anomaly.Medium},
		{"stdlib", goSemver("go1.21.3"), nil, ""},
		{"stdlib", goSemver("devel go1.23-abcdef"), nil, ""},
		{"example.com/lib", "v1.1.9", nil, ""},
		{"example.com/lib", "v1.2.0", []string{"GHSA-0000-test-0001"}, anomaly.High}, // introduced
		{"example.com/lib", "v1.4.1", []string{"GHSA-0000-test-0001"}, anomaly.High}, // last_affected is affected
		{"example.com/lib", "v1.4.2", nil, ""},
		{"example.com/lib", "v0.9.0", []string{"GHSA-0000-test-0001"}, anomaly.High}, // listed in versions
		{"example.com/lib", "v2.0.5", []string{"GO-0000-0002"}, anomaly.Low},
		{"example.com/lib", "v2.1.0", nil, ""}, // limit
		{"example.com/other", "v1.2.0", nil, ""},
	}
	for _, c := range cases {
		ids, sev := db.match(c.module, c.version)
		if !slices.Equal(ids, c.ids) || sev != c.sev {
			t.Errorf("%s@%s: %v %q, want %v %q", c.module, c.version, ids, sev, c.ids, c.sev)
		}
	}
}

// Every accepted shape holds the same entry; what is not OSV is an error
// that says where and what.
func TestVulnShapes(t *testing.T) {
	entry := `{"id":"GO-1","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]}]}]}`
	for _, doc := range []string{entry, "[" + entry + "]", `{"vulns":[` + entry + `]}`, `{"results":[{"vulns":[` + entry + `]}]}`} {
		db, err := parseVulns([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if ids, _ := db.match("m", "v0.9.0"); !slices.Equal(ids, []string{"GO-1"}) {
			t.Errorf("%s: matched %v", doc, ids)
		}
	}
	bad := []struct{ doc, want string }{
		{``, "not JSON"},
		{`"GO-1"`, "not JSON"},
		{`{"id":`, "not OSV JSON"},
		{`{"schema_version":"1.6.0"}`, "without id, vulns or results"},
		{`{"results":[{"vulns":[{"id":"GO-2","modified":"2024-01-01T00:00:00Z"}]}]}`, "entry 1 (GO-2): no affected packages: give the whole entries"},
		{`[{"affected":[]}]`, "entry 1: no id"},
		{`[` + entry + `,{"id":"GO-3","affected":[{"package":{"ecosystem":"Go"}}]}]`, "entry 2 (GO-3): affected 1: no package name"},
		{`{"id":"GO-4","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"one"}]}]}]}`, `affected 1: range 1: fixed "one": not a semantic version`},
		{`{"id":"GO-5","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1.0.0"}]}]}]}`, "range 1: event 1: want one of introduced"},
		{`{"id":"GO-6","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVERS","events":[]}]}]}`, `type "SEMVERS": want SEMVER, ECOSYSTEM or GIT`},
		{`{"id":"GO-7","affected":[{"package":{"ecosystem":"Go","name":"m"},"versions":["latest"]}]}`, `version "latest": not a semantic version`},
	}
	for _, c := range bad {
		if _, err := parseVulns([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.doc, err, c.want)
		}
	}
}

// A vulnerability file that cannot be used is an init error naming the
// variable and the problem, reported to Lambda; the extension does not
// start.
func TestVulnFileInitError(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, content, want string }{
		{"missing.json", "", "LAMBDARASP_VULN_FILE: open " + filepath.Join(dir, "missing.json") + ": no such file"},
		{"bad.json", `[{"id":"GO-1","affected":[{"package":{"ecosystem":"Go","name":"m"},"versions":["x"]}]}]`,
			"LAMBDARASP_VULN_FILE=" + filepath.Join(dir, "bad.json") + `: entry 1 (GO-1): affected 1: version "x": not a semantic version`},
	} {
		f := newFakeAPI(t)
		var stdout, logs syncBuffer
		cfg := testConfig(t, f, &stdout, &logs)
		cfg.VulnFile = filepath.Join(dir, c.name)
		if c.content != "" {
			if err := os.WriteFile(cfg.VulnFile, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		err := wait(t, run(t, cfg), 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Run: %v, want %q", c.name, err, c.want)
		}
		f.mu.Lock()
		if !slices.Equal(f.errors, []string{"Extension.ConfigError"}) {
			t.Errorf("%s: errors reported %v", c.name, f.errors)
		}
		f.mu.Unlock()
	}
}

// The code digest at start: a tree that matches raises nothing; one that
// does not raises code_changed once, and the policy's rule (no ttl: the
// life of the environment) quarantines the function.
func TestCodeDigest(t *testing.T) {
	code := t.TempDir()
	if err := os.WriteFile(filepath.Join(code, "app.conf"), []byte("mode=prod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := codedigest.Dir(code, codedigest.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	start := func(t *testing.T) (Config, *syncBuffer, *syncBuffer) {
		f := newFakeAPI(t)
		stdout, logs := &syncBuffer{}, &syncBuffer{}
		cfg := testConfig(t, f, stdout, logs)
		cfg.CodeDir, cfg.CodeSHA256 = code, strings.ToUpper(sum.SHA256)
		policy := `{"version":1,"rules":[{"anomaly":"code_changed","action":"quarantine"}]}`
		if err := os.WriteFile(cfg.PolicyFile, []byte(policy), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, cfg)
		f.invoke("r1")
		eventually(t, "the extension is done with r1", f.waiting(2))
		return cfg, stdout, logs
	}

	cfg, stdout, logs := start(t)
	if !strings.Contains(logs.String(), `"code_sha256":"`+sum.SHA256+`"`) || stdout.String() != "" {
		t.Errorf("matching code: log %s\nalerts %s", logs.String(), stdout.String())
	}
	if d, _ := decision.Read(cfg.DecisionsFile); d.Quarantine != nil {
		t.Errorf("matching code quarantined: %+v", d.Quarantine)
	}

	if err := os.WriteFile(filepath.Join(code, "app.conf"), []byte("mode=debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, _ := codedigest.Dir(code, codedigest.Limits{})
	cfg, stdout, _ = start(t)
	out := stdout.String()
	if strings.Count(out, `"type":"code_changed"`) != 1 || !strings.Contains(out, "has digest "+changed.SHA256+", not the expected "+sum.SHA256) ||
		!strings.Contains(out, `"severity":"high"`) || !strings.Contains(out, `"action":"quarantine until `) {
		t.Errorf("changed code: alerts %s", out)
	}
	d, err := decision.Read(cfg.DecisionsFile)
	if err != nil || d.Quarantine == nil || d.Quarantine.Reason != "code_changed" || d.Quarantine.Until.Before(time.Now().Add(167*time.Hour)) {
		t.Errorf("changed code: decisions %+v, %v", d, err)
	}
}

// An environment shut down before its first invocation ended does not hash
// the code (no invocation is left for the check to protect, and the time
// is the flushes'), and says so rather than raise code_changed for a
// digest it did not compute.
func TestNoCodeCheckAtShutdown(t *testing.T) {
	code := t.TempDir()
	if err := os.WriteFile(filepath.Join(code, "app.conf"), []byte("mode=prod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFakeAPI(t)
	var stdout, logs syncBuffer
	cfg := testConfig(t, f, &stdout, &logs)
	cfg.CodeDir, cfg.CodeSHA256 = code, strings.Repeat("0", 64) // never the code's
	done := run(t, cfg)
	f.shutdown(time.Now().Add(2 * time.Second))
	if err := wait(t, done, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String(), "code_changed") || !strings.Contains(logs.String(), `"code_sha256":"not computed: the environment ended before its first invocation did"`) {
		t.Errorf("the code was hashed at shutdown:\nalerts %s\nlog %s", stdout.String(), logs.String())
	}
}

// Past the bounds the code cannot be verified: with an expected digest,
// that is code_changed (lambdarasp digest refuses the same tree, so it
// never had that digest).
func TestCodeOverBound(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := selfCheck{codeDir: dir, expected: strings.Repeat("a", 64), hashed: true}
	_, c.codeErr = codedigest.Dir(dir, codedigest.Limits{Files: 1})
	as := c.anomalies(time.Now())
	if len(as) != 1 || as[0].Type != codeChanged || !strings.Contains(as[0].Message, "cannot be verified") || !strings.Contains(as[0].Message, "over the bound") {
		t.Errorf("anomalies %+v", as)
	}
}

// The standard library's version, from the Go release build info records.
func TestGoSemver(t *testing.T) {
	for in, want := range map[string]string{
		"go1.26.8": "v1.26.8", "go1.20": "v1.20.0", "go1.21rc2": "v1.21.0-rc.2", "go1.22beta1": "v1.22.0-beta.1",
		"go1.22.1 X:boringcrypto": "v1.22.1", "devel go1.23-abc": "", "go1": "v1.0.0", "go1.21rc": "",
	} {
		if got := goSemver(in); got != want {
			t.Errorf("goSemver(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every secret in the environment is alerted once, masked, none held back
// by the alerts' rate limit (5 a type at once); the credentials Lambda
// itself puts in every environment are not findings.
func TestEnvSecrets(t *testing.T) {
	f := newFakeAPI(t)
	var stdout, logs syncBuffer
	cfg := testConfig(t, f, &stdout, &logs)
	secrets := map[string]string{
		"DB_PASSWORD":       "Tr0ub4dor&3-correct-horse",
		"API_KEY":           "q8Jm2LxR7vNc4TzW9pYb",
		"GITHUB_TOKEN":      "ghp_0123456789abcdefghijABCDEFGHIJ0123456789",
		"STRIPE":            "sk_live_0123456789abcdefABCDEF",
		"SIGNING_KEY":       "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
		"DATABASE_URL":      "postgres://app:s3cr3t-pw@db.internal:5432/app",
		"SLACK_HOOK":        "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefghijklmnopqrstuvwx",
		"LEGACY_ACCESS_KEY": "AKIAIOSFODNN7EXAMPLE",
	}
	for k, v := range secrets {
		cfg.Environ = append(cfg.Environ, k+"="+v)
	}
	// Accepted by the deployer (LAMBDARASP_SECRETS_ACCEPTED): not reported.
	cfg.SecretsAccepted = []string{"LAMBDARASP_WEBHOOK_URL", "ACCEPTED_TOKEN"}
	cfg.Environ = append(cfg.Environ, "LAMBDARASP_WEBHOOK_URL=https://hooks.slack.com/services/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",
		"ACCEPTED_TOKEN=ghp_9876543210abcdefghijABCDEFGHIJ0123456789")
	cfg.Environ = append(cfg.Environ, // what Lambda sets: the execution role's credentials
		"AWS_ACCESS_KEY=ASIAQWERTYUIOPASDFGH", "AWS_ACCESS_KEY_ID=ASIAQWERTYUIOPASDFGH",
		"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_SESSION_TOKEN=IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ",
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin", "TZ=:UTC")
	run(t, cfg)
	f.invoke("r1")
	eventually(t, "the extension is done with r1", f.waiting(2))
	out := stdout.String()
	if n := strings.Count(out, `"type":"env_secret"`); n != len(secrets) {
		t.Errorf("%d env_secret alerts, want %d:\n%s", n, len(secrets), out)
	}
	for name := range secrets {
		if !strings.Contains(out, `"subject":"`+name+`"`) {
			t.Errorf("no alert names %s", name)
		}
	}
	if strings.Contains(out, `"subject":"AWS_`) {
		t.Errorf("Lambda's own credentials alerted:\n%s", out)
	}
	if strings.Contains(out, `"subject":"LAMBDARASP_WEBHOOK_URL"`) || strings.Contains(out, `"subject":"ACCEPTED_TOKEN"`) {
		t.Errorf("an accepted variable alerted:\n%s", out)
	}
	if !strings.Contains(out, "(aws-access-key-id, AKIA…(20 chars))") || !strings.Contains(logs.String(), `"secrets":8`) {
		t.Errorf("alerts:\n%s\nlog:\n%s", out, logs.String())
	}
	for name, v := range secrets {
		if strings.Contains(out+logs.String(), v[5:]) {
			t.Errorf("%s's value reached the output", name)
		}
	}
}

// The modules of a binary built for the purpose (internal/testbin): a
// dependency replaced by a directory is listed with its replacement and
// never matched at the version it replaces; the standard library is
// matched at the binary's Go release. Without a bootstrap, the binary is
// the file _HANDLER names.
func TestModules(t *testing.T) {
	src := t.TempDir()
	for name, content := range map[string]string{
		"go.mod":     "module example.com/fn\n\ngo 1.26\n\nrequire example.com/dep v1.0.0\n\nreplace example.com/dep => ./dep\n",
		"main.go":    "package main\n\nimport \"example.com/dep\"\n\nfunc main() { println(dep.Hello()) }\n",
		"dep/go.mod": "module example.com/dep\n\ngo 1.26\n",
		"dep/dep.go": "package dep\n\nfunc Hello() string { return \"hello\" }\n",
	} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code := t.TempDir()
	if err := testbin.BuildModule(code, "handler", src); err != nil {
		t.Fatal(err)
	}
	release := strings.TrimPrefix(goSemver(runtime.Version()), "v")
	db, err := parseVulns([]byte(`[
		{"id":"GO-TEST-1","affected":[{"package":{"ecosystem":"Go","name":"example.com/dep"},"versions":["1.0.0"]}]},
		{"id":"GO-TEST-2","affected":[{"package":{"ecosystem":"Go","name":"stdlib"},"versions":["` + release + `"]}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan bool, 1)
	c := checkSelf(Config{CodeDir: code, Handler: "handler"}, db, gate)
	if c.binary != filepath.Join(code, "handler") || c.buildErr != nil || c.main != "example.com/fn@(devel)" ||
		!slices.Equal(c.modules, []string{"example.com/dep@v1.0.0 => ./dep"}) {
		t.Errorf("binary %s (%v), main %s, modules %q", c.binary, c.buildErr, c.main, c.modules)
	}
	if len(c.vulnerable) != 1 || c.vulnerable[0].Subject != "stdlib@v"+release || !strings.Contains(c.vulnerable[0].Message, "is affected by GO-TEST-2") {
		t.Errorf("vulnerable %+v", c.vulnerable)
	}
	if c := checkSelf(Config{CodeDir: code}, db, gate); c.binary != "" || len(c.vulnerable) != 0 {
		t.Errorf("without bootstrap or _HANDLER: binary %q", c.binary)
	}
}

// More findings of a type than maxCheckAlerts raise that many alerts; the
// self-check line counts them all.
func TestSelfCheckAlertCap(t *testing.T) {
	var environ []string
	for i := range maxCheckAlerts + 8 {
		environ = append(environ, "DB_PASSWORD_"+string(rune('A'+i/26))+string(rune('A'+i%26))+"=Tr0ub4dor&3-correct-horse")
	}
	c := selfCheck{secrets: secretsIn(environ, nil)}
	if len(c.secrets) != maxCheckAlerts+8 {
		t.Fatalf("%d secrets found, want %d", len(c.secrets), maxCheckAlerts+8)
	}
	if n := len(c.anomalies(time.Now())); n != maxCheckAlerts {
		t.Errorf("%d alerts, want %d", n, maxCheckAlerts)
	}
}

// The code is hashed only once the gate says so, and never when it says
// false (the environment ended before its first invocation was done).
func TestCodeGate(t *testing.T) {
	cfg := Config{CodeDir: t.TempDir(), CodeSHA256: strings.Repeat("a", 64)}
	for _, open := range []bool{false, true} {
		gate := make(chan bool, 1)
		gate <- open
		if c := checkSelf(cfg, nil, gate); (c.code.SHA256 != "") != open {
			t.Errorf("gate %v: digest %q", open, c.code.SHA256)
		}
	}
}
