// Package bench measures lambdarasp's inspection side by side with the
// reference it must match: raw Coraza with the full OWASP CRS, fed the same
// request the way a web server would. Run with `make bench`; results and
// the command are recorded in RESULTS.md.
package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"

	"github.com/lambdarasp/lambdarasp/protect"
)

// body1K is a clean JSON body of about 1 KB.
var body1K = order(0)

// order is a clean JSON order of about 1 KB; orders with different n
// share their keys and some values, as a queue's messages do, and differ
// in the rest.
func order(n int) string {
	names := []string{"Tim O'Reilly", "Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra"}
	notes := []string{"gift wrap, please", "leave at the door", "", "call before delivery"}
	m := map[string]any{"customer": map[string]any{"name": names[n%len(names)], "email": fmt.Sprintf("customer%d@example.com", n),
		"address": fmt.Sprintf("%d Gravenstein Hwy N, Sebastopol", 1005+n)}}
	items := []map[string]any{}
	for i := 0; len(fmt.Sprint(items)) < 700; i++ {
		items = append(items, map[string]any{"sku": fmt.Sprintf("BK-%04d", 37*n+i), "qty": (n+i)%3 + 1, "note": notes[(n+i)%len(notes)]})
	}
	m["items"] = items
	b, _ := json.Marshal(m)
	return string(b)
}

var headers = [][2]string{
	{"accept", "application/json"}, {"accept-encoding", "gzip, deflate, br"}, {"accept-language", "en-GB,en;q=0.9"},
	{"content-type", "application/json"}, {"host", "abc123.execute-api.eu-west-1.amazonaws.com"},
	{"user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"}, {"x-amzn-trace-id", "Root=1-6740a1b2-0123456789abcdef01234567"},
	{"x-forwarded-for", "203.0.113.7"}, {"x-forwarded-port", "443"}, {"x-forwarded-proto", "https"},
	{"origin", "https://shop.example.com"}, {"referer", "https://shop.example.com/cart"},
}

const query = "customer=42&sort=desc&page=2"

func apigwV2(q, body string) []byte {
	h := map[string]string{}
	for _, kv := range headers {
		h[kv[0]] = kv[1]
	}
	ev := map[string]any{"version": "2.0", "routeKey": "$default", "rawPath": "/orders", "rawQueryString": q, "headers": h,
		"requestContext": map[string]any{"domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
			"http": map[string]any{"method": "POST", "path": "/orders", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7"}},
		"body": body, "isBase64Encoded": false}
	b, _ := json.Marshal(ev)
	return b
}

func sqsBatch(n int) []byte {
	var recs []string
	for i := 0; i < n; i++ {
		b, _ := json.Marshal(order(i))
		recs = append(recs, fmt.Sprintf(`{"messageId":"m%d","body":%s,"attributes":{},"messageAttributes":{},"eventSource":"aws:sqs"}`, i, b))
	}
	return []byte(`{"Records":[` + strings.Join(recs, ",") + `]}`)
}

// raw is the reference: Coraza with the full CRS and Coraza's own
// operators. It is built in TestMain, before anything in this process
// creates a lambdarasp engine, which replaces Coraza's @rx, @pm and
// @pmFromFile with lazily compiled ones (same matches) process-wide.
var raw coraza.WAF

func TestMain(m *testing.M) {
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(
		"Include @coraza.conf-recommended\nInclude @crs-setup.conf.example\nInclude @owasp_crs/*.conf\nSecRuleEngine On"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	raw = w
	os.Exit(m.Run())
}

// rawRequest is what a web server in front of Coraza would do with the
// same request.
func rawRequest(w coraza.WAF, q, body string) bool {
	tx := w.NewTransaction()
	defer tx.Close()
	tx.ProcessConnection("203.0.113.7", 40000, "10.0.0.1", 443)
	tx.ProcessURI("/orders?"+q, "POST", "HTTP/1.1")
	for _, kv := range headers {
		tx.AddRequestHeader(kv[0], kv[1])
	}
	tx.AddRequestHeader("content-length", fmt.Sprint(len(body)))
	if it := tx.ProcessRequestHeaders(); it != nil {
		return true
	}
	if it, _, _ := tx.WriteRequestBody([]byte(body)); it != nil {
		return true
	}
	it, _ := tx.ProcessRequestBody()
	tx.ProcessLogging()
	return it != nil
}

const sqli = "customer=42%27%20UNION%20SELECT%20password%20FROM%20users--&sort=desc&page=2"

func body64K() string {
	var b strings.Builder
	b.WriteString(`{"pages":[`)
	for b.Len() < 64<<10 {
		if b.Len() > 10 {
			b.WriteByte(',')
		}
		b.WriteString(body1K)
	}
	b.WriteString("]}")
	return b.String()
}

func BenchmarkInspect(b *testing.B) {
	in, err := protect.NewInspector()
	if err != nil {
		b.Fatal(err)
	}
	w := raw
	b64k := body64K()
	cases := []struct {
		name    string
		q, body string
		blocked bool
	}{
		{"apigw-v2-1KB-clean", query, body1K, false},
		{"apigw-v2-1KB-sqli", sqli, body1K, true},
		{"apigw-v2-64KB-clean", query, b64k, false},
	}
	for _, c := range cases {
		ev := apigwV2(c.q, c.body)
		b.Run("case="+c.name+"/impl=raw-coraza", func(b *testing.B) {
			if got := rawRequest(w, c.q, c.body); got != c.blocked {
				b.Fatalf("raw coraza blocked=%v, want %v", got, c.blocked)
			}
			b.ReportAllocs()
			for b.Loop() {
				rawRequest(w, c.q, c.body)
			}
		})
		b.Run("case="+c.name+"/impl=lambdarasp", func(b *testing.B) {
			if got := in.Inspect(ev).Action == protect.Deny; got != c.blocked {
				b.Fatalf("lambdarasp blocked=%v, want %v", got, c.blocked)
			}
			b.ReportAllocs()
			for b.Loop() {
				in.Inspect(ev)
			}
		})
	}
	batch := sqsBatch(10)
	b.Run("case=sqs-10x1KB-clean/impl=lambdarasp", func(b *testing.B) {
		if v := in.Inspect(batch); v.Action != protect.Allow {
			b.Fatalf("clean batch blocked: %+v", v.Findings)
		}
		b.ReportAllocs()
		for b.Loop() {
			in.Inspect(batch)
		}
	})
	// One long string value of text, just over LAMBDARASP_MAX_VALUE_BYTES
	// (BenchmarkBounds has the worse cases: base64 noise). lambdarasp only:
	// raw Coraza takes seconds per run.
	long := apigwV2(query, longValueBody(1<<20))
	b.Run("case=apigw-v2-1MB-value/impl=lambdarasp", func(b *testing.B) {
		if v := in.Inspect(long); v.Action != protect.Deny || !slices.Contains(v.Rules(), 100903) {
			b.Fatalf("1 MB value: %v %v, want blocked by the value limit only", v.Action, v.Rules())
		}
		b.ReportAllocs()
		for b.Loop() {
			in.Inspect(long)
		}
	})
}

// longValueBody is a JSON body with one clean text value of n bytes.
func longValueBody(n int) string {
	words := []string{"order", "please", "Tim O'Reilly", "gift wrap", "1005", "Gravenstein", "a-b", "shop"}
	var sb strings.Builder
	for i := 0; sb.Len() < n; i++ {
		sb.WriteString(words[(i*7+i/3)%len(words)])
		sb.WriteByte(' ')
	}
	b, _ := json.Marshal(map[string]string{"text": sb.String()})
	return string(b)
}
