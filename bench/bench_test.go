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
	// Items until fmt.Sprint(items) would be 700 bytes: "[", the items
	// with a space between, "]".
	for i, size := 0, 2; size < 700; i++ {
		item := map[string]any{"sku": fmt.Sprintf("BK-%04d", 37*n+i), "qty": (n+i)%3 + 1, "note": notes[(n+i)%len(notes)]}
		size += len(fmt.Sprint(item)) + min(i, 1)
		items = append(items, item)
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

// request is one API call: its query string, body and headers.
type request struct {
	q, body string
	headers [][2]string
}

// variants is n requests to one API, as a function sees them invocation
// after invocation: the same header names, JSON keys and query names, the
// same few user agents and enumerated values, and per request its own
// trace id, client address, customer, order and query values. lambdarasp
// keeps what it learnt of repeated strings across events (see
// internal/waf/warm.go): benchmarking one event over and over would
// measure only that; these measure it as it serves an API.
func variants(n int, q func(i int) string, body func(i int) string) []request {
	agents := []string{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
		"okhttp/4.12.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101 Firefox/126.0"}
	reqs := make([]request, n)
	for i := range reqs {
		h := slices.Clone(headers)
		for k := range h {
			switch h[k][0] {
			case "user-agent":
				h[k][1] = agents[i%len(agents)]
			case "x-amzn-trace-id":
				h[k][1] = fmt.Sprintf("Root=1-6740a1b2-%024x", 7919*i+1)
			case "x-forwarded-for":
				h[k][1] = fmt.Sprintf("203.0.%d.%d", i/250%250, i%250+1)
			}
		}
		reqs[i] = request{q: q(i), body: body(i), headers: h}
	}
	return reqs
}

func apigwV2(q, body string) []byte { return request{q: q, body: body, headers: headers}.event() }

func (r request) event() []byte {
	h := map[string]string{}
	for _, kv := range r.headers {
		h[kv[0]] = kv[1]
	}
	ev := map[string]any{"version": "2.0", "routeKey": "$default", "rawPath": "/orders", "rawQueryString": r.q, "headers": h,
		"requestContext": map[string]any{"domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
			"http": map[string]any{"method": "POST", "path": "/orders", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7"}},
		"body": r.body, "isBase64Encoded": false}
	b, _ := json.Marshal(ev)
	return b
}

// sqsBatch is n messages, orders first to first+n-1.
func sqsBatch(first, n int) []byte {
	var recs []string
	for i := first; i < first+n; i++ {
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
func rawRequest(w coraza.WAF, r request) bool {
	tx := w.NewTransaction()
	defer tx.Close()
	tx.ProcessConnection("203.0.113.7", 40000, "10.0.0.1", 443)
	tx.ProcessURI("/orders?"+r.q, "POST", "HTTP/1.1")
	for _, kv := range r.headers {
		tx.AddRequestHeader(kv[0], kv[1])
	}
	tx.AddRequestHeader("content-length", fmt.Sprint(len(r.body)))
	if it := tx.ProcessRequestHeaders(); it != nil {
		return true
	}
	if it, _, _ := tx.WriteRequestBody([]byte(r.body)); it != nil {
		return true
	}
	it, _ := tx.ProcessRequestBody()
	tx.ProcessLogging()
	return it != nil
}

const sqli = "customer=42%27%20UNION%20SELECT%20password%20FROM%20users--&sort=desc&page=2"

// queryOf is the query string of request i: its customer and page vary.
func queryOf(i int) string { return fmt.Sprintf("customer=%d&sort=desc&page=%d", 1000+i, i%9+1) }

// body64K is about 64 KB of orders, from order first on.
func body64K(first int) string {
	var b strings.Builder
	b.WriteString(`{"pages":[`)
	for i := first; b.Len() < 64<<10; i++ {
		if b.Len() > 10 {
			b.WriteByte(',')
		}
		b.WriteString(order(i))
	}
	b.WriteString("]}")
	return b.String()
}

// BenchmarkInspect runs each case over a cycle of different requests (see
// variants), the same ones for both implementations; the -repeated case
// is one request over and over, lambdarasp's best case.
func BenchmarkInspect(b *testing.B) {
	in, err := protect.NewInspector()
	if err != nil {
		b.Fatal(err)
	}
	w := raw
	fixed := func(s string) func(int) string { return func(int) string { return s } }
	cases := []struct {
		name    string
		reqs    []request
		blocked bool
	}{
		{"apigw-v2-1KB-clean", variants(4096, queryOf, order), false},
		{"apigw-v2-1KB-clean-repeated", []request{{query, body1K, headers}}, false},
		{"apigw-v2-1KB-sqli", variants(4096, fixed(sqli), order), true},
		{"apigw-v2-64KB-clean", variants(64, queryOf, func(i int) string { return body64K(64 * i) }), false},
	}
	for _, c := range cases {
		events := make([][]byte, len(c.reqs))
		for i, r := range c.reqs {
			events[i] = r.event()
		}
		b.Run("case="+c.name+"/impl=raw-coraza", func(b *testing.B) {
			if got := rawRequest(w, c.reqs[0]); got != c.blocked {
				b.Fatalf("raw coraza blocked=%v, want %v", got, c.blocked)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rawRequest(w, c.reqs[i%len(c.reqs)])
				i++
			}
		})
		b.Run("case="+c.name+"/impl=lambdarasp", func(b *testing.B) {
			for _, ev := range events {
				if got := in.Inspect(ev).Action == protect.Deny; got != c.blocked {
					b.Fatalf("lambdarasp blocked=%v, want %v", got, c.blocked)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				in.Inspect(events[i%len(events)])
				i++
			}
		})
	}
	batches := make([][]byte, 1024)
	for i := range batches {
		batches[i] = sqsBatch(10*i, 10)
	}
	b.Run("case=sqs-10x1KB-clean/impl=lambdarasp", func(b *testing.B) {
		for _, batch := range batches {
			if v := in.Inspect(batch); v.Action != protect.Allow {
				b.Fatalf("clean batch blocked: %+v", v.Findings)
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			in.Inspect(batches[i%len(batches)])
			i++
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
