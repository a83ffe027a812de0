package protect

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func newTestInspector(t *testing.T, opts ...Option) *Inspector {
	t.Helper()
	cfg, err := newConfig(func(string) string { return "" }, opts)
	if err != nil {
		t.Fatal(err)
	}
	in, err := newInspector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

const tuningEvent = `{"Records":[{"messageId":"m0","body":"{\"bio\":\"<script>alert(1)</script>\",\"name\":\"<script>alert(2)</script>\"}","eventSource":"aws:sqs"}]}`

func TestExclusions(t *testing.T) {
	xss := []int{941100, 941110, 941160, 941390}
	all := func(id int) []Option {
		var o []Option
		for _, x := range xss {
			if x != id {
				o = append(o, WithExclusion(x, ""))
			}
		}
		return o
	}
	// Only 941100 left on: it must fire on both values.
	in := newTestInspector(t, all(941100)...)
	v := in.Inspect([]byte(tuningEvent))
	if v.Action != Deny || len(v.Findings) != 2 {
		t.Fatalf("baseline: %s %+v", v.Action, v.Findings)
	}
	// Excluded for one path, in any of the spellings a user may copy from
	// a finding: the other value still blocks.
	for _, path := range []string{"body.bio", "Records[0].body.bio"} {
		in = newTestInspector(t, append(all(941100), WithExclusion(941100, path))...)
		v = in.Inspect([]byte(tuningEvent))
		if v.Action != Deny || len(v.Findings) != 1 || v.Findings[0].Path != "Records[0].body.name" {
			t.Fatalf("exclusion %q: %s %+v", path, v.Action, v.Findings)
		}
	}
	// Excluded everywhere.
	in = newTestInspector(t, append(all(941100), WithExclusion(941100, ""))...)
	if v = in.Inspect([]byte(tuningEvent)); v.Action != Allow {
		t.Fatalf("global exclusion: %s %+v", v.Action, v.Findings)
	}
}

func TestExclusionForHTTPPaths(t *testing.T) {
	event := `{"version":"2.0","rawPath":"/","rawQueryString":"q=%3Cscript%3Ealert(1)%3C%2Fscript%3E","headers":{"host":"h","user-agent":"ua","accept":"*/*","content-type":"application/json"},` +
		`"requestContext":{"http":{"method":"POST"}},"body":"{\"a\":[{\"b\":\"<script>alert(1)</script>\"}]}"}`
	base := newTestInspector(t).Inspect([]byte(event))
	paths := map[string]bool{}
	for _, f := range base.Findings {
		paths[f.Path] = true
	}
	if !paths["query.q"] || !paths["body.a[0].b"] {
		t.Fatalf("findings %+v", base.Findings)
	}
	var opts []Option
	for _, id := range base.Rules() {
		opts = append(opts, WithExclusion(id, "query.q"), WithExclusion(id, "body.a[0].b"))
	}
	if v := newTestInspector(t, opts...).Inspect([]byte(event)); v.Action != Allow {
		t.Fatalf("path exclusions left %+v", v.Findings)
	}
}

func TestRuleFiles(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tenant.conf")
	rule := `SecRule ARGS:/^body\/tenant$/ "!@rx ^[a-z0-9-]{1,32}$" "id:10001,phase:2,block,msg:'Unexpected tenant id',severity:'CRITICAL',setvar:'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}'"`
	if err := os.WriteFile(f, []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	in := newTestInspector(t, WithRuleFiles(f))
	event := func(tenant string) []byte {
		return []byte(`{"Records":[{"messageId":"m0","body":"{\"tenant\":\"` + tenant + `\"}","eventSource":"aws:sqs"}]}`)
	}
	if v := in.Inspect(event("acme-01")); v.Action != Allow {
		t.Fatalf("clean tenant: %+v", v.Findings)
	}
	if v := in.Inspect(event("ACME_01")); v.Action != Deny || !slices.Contains(v.Rules(), 10001) {
		t.Fatalf("bad tenant: %s %+v", v.Action, v.Findings)
	}
	if _, err := NewInspector(WithRuleFiles(filepath.Join(t.TempDir(), "missing.conf"))); err == nil || !strings.Contains(err.Error(), "LAMBDARASP_RULES") {
		t.Fatalf("missing rule file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.conf")
	_ = os.WriteFile(bad, []byte(`SecRule ARGS "@nope x" "id:1"`), 0o600)
	if _, err := NewInspector(WithRuleFiles(bad)); err == nil {
		t.Fatal("invalid SecLang accepted")
	}
}

// TestFieldAfterTheLimit puts the attack in the field after the argument
// limit: the Coraza conf inside coraza-coreruleset v4.25.0 lets it through;
// lambdarasp must block, in a record and in an HTTP JSON body.
func TestFieldAfterTheLimit(t *testing.T) {
	const limit = 1000
	in := newTestInspector(t, WithLimits(Limits{MaxFields: limit}))
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < limit; i++ {
		fmt.Fprintf(&b, `"f%d":"v",`, i)
	}
	b.WriteString(`"last":"1' UNION SELECT password FROM users--"}`)
	body := b.String()
	record := `{"Records":[{"messageId":"m0","body":` + jsonString(body) + `,"eventSource":"aws:sqs"}]}`
	http := `{"version":"2.0","rawPath":"/","rawQueryString":"","headers":{"host":"h","user-agent":"ua","accept":"*/*","content-type":"application/json"},"requestContext":{"http":{"method":"POST"}},"body":` + jsonString(body) + `}`
	for name, event := range map[string]string{"record": record, "http": http} {
		v := in.Inspect([]byte(event))
		if v.Action != Deny || !slices.Contains(v.Rules(), 100902) {
			t.Errorf("%s: attack after the field limit: %s %v", name, v.Action, v.Rules())
		}
	}
	// At the limit exactly, nothing is cut: clean passes.
	var c strings.Builder
	c.WriteString("{")
	for i := 0; i < limit; i++ {
		if i > 0 {
			c.WriteString(",")
		}
		fmt.Fprintf(&c, `"f%d":"v"`, i)
	}
	c.WriteString("}")
	if v := in.Inspect([]byte(`{"Records":[{"messageId":"m0","body":` + jsonString(c.String()) + `,"eventSource":"aws:sqs"}]}`)); v.Action != Allow {
		t.Fatalf("%d fields: %s %v", limit, v.Action, v.Rules())
	}
}

func TestDepthAndRecordLimits(t *testing.T) {
	in := newTestInspector(t, WithLimits(Limits{MaxDepth: 8, MaxRecords: 2}))
	deep := strings.Repeat(`{"a":`, 20) + `"x"` + strings.Repeat(`}`, 20)
	v := in.Inspect([]byte(`{"Records":[{"messageId":"m0","body":` + jsonString(deep) + `,"eventSource":"aws:sqs"}]}`))
	if v.Action != Deny || !slices.Contains(v.Rules(), 100901) {
		t.Fatalf("deep body: %s %v", v.Action, v.Rules())
	}
	rec := `{"messageId":"m%d","body":"ok","eventSource":"aws:sqs"}`
	v = in.Inspect([]byte(`{"Records":[` + fmt.Sprintf(rec, 0) + `,` + fmt.Sprintf(rec, 1) + `,` + fmt.Sprintf(rec, 2) + `]}`))
	if v.Action != Deny || !slices.Equal(v.BlockedRecords, []int{2}) || !slices.Contains(v.Rules(), 100904) {
		t.Fatalf("records past the limit: %s %v %v", v.Action, v.BlockedRecords, v.Rules())
	}
}

func TestExclusionDirectiveKafkaPath(t *testing.T) {
	got := exclusionDirective(exclusion{942100, "records.mytopic-0[3].value.q"})
	if !strings.Contains(got, `!ARGS:/^value\/q$/|`) {
		t.Fatalf("record prefix not stripped: %s", got)
	}
}
