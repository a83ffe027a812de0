package extension

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

func TestFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string {
			if k == envRuntimeAPI {
				return "127.0.0.1:9001"
			}
			return m[k]
		}
	}
	c := FromEnv(env(nil))
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	d := c.withDefaults()
	if d.ReportAddr != report.DefaultAddr || d.TelemetryPort != defaultTelemetryPort || d.DecisionsFile != decision.DefaultPath ||
		d.PolicyFile != defaultPolicyFile || d.ReportWait != 20*time.Millisecond || d.PolicyPoll != time.Minute || d.WebhookFormat != "json" ||
		d.CodeDir != "/var/task" || d.CodeSHA256 != "" || d.VulnFile != "" || d.SecretsAccepted != nil {
		t.Errorf("defaults: %+v", d)
	}
	for _, p := range []string{"2772", "2773", "4317", "4318", "8124", "9001"} {
		if n, _ := strconv.Atoi(p); strings.HasSuffix(d.ReportAddr, ":"+p) || d.TelemetryPort == n {
			t.Errorf("a default port is %s, which another common extension uses", p)
		}
	}
	c = FromEnv(env(map[string]string{envTelemetryPort: "0", envReportWait: "0", envWebhookFormat: "Slack", envPolicyPoll: "30s",
		envTaskRoot: "/task", envCodeSHA256: strings.Repeat("AB", 32), envVulnFile: "/opt/osv.json",
		envSecretsAccepted: " LAMBDARASP_WEBHOOK_URL, ,DB_PASSWORD"}))
	if c.TelemetryPort != -1 || c.ReportWait != -1 || c.WebhookFormat != "slack" || c.PolicyPoll != 30*time.Second || c.check() != nil ||
		c.CodeDir != "/task" || c.withDefaults().CodeSHA256 != strings.Repeat("ab", 32) || c.VulnFile != "/opt/osv.json" ||
		strings.Join(c.SecretsAccepted, "|") != "LAMBDARASP_WEBHOOK_URL|DB_PASSWORD" {
		t.Errorf("explicit values: %+v, %v", c, c.check())
	}
	for _, v := range [][2]string{
		{envTelemetryPort, "70000"}, {envReportWait, "21ms"}, {envReportAddr, "10.0.0.1:7431"}, {envWebhook, "ftp://hooks.example.com/x?token=secret"},
		{envWebhookFormat, "xml"}, {envPolicyURL, "file:///etc/policy.json"}, {envPolicyPoll, "10ms"},
		{envCodeSHA256, "sha256:" + strings.Repeat("a", 64)}, {envCodeSHA256, strings.Repeat("a", 63)},
		{envOTLPAddr, "10.0.0.1:4318"}, {envOTLPAddr, "127.0.0.1:0"}, {envOTLPAddr, "localhost:4318"}, {envReportAddr, "[::1]"},
	} {
		name, value := v[0], v[1]
		err := FromEnv(env(map[string]string{name: value})).check()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: %v; want an error naming the variable", name, value, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error repeats a secret: %v", name, err)
		}
	}
	if err := FromEnv(env(map[string]string{envOTLPAddr: "[::1]:4318", envReportAddr: "[::ffff:127.0.0.1]:7431"})).check(); err != nil {
		t.Errorf("IPv6 and IPv4-mapped loopback addresses: %v", err)
	}
}
