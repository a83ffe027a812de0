package extension_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/otlp/otlptest"
)

func freeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// otelSetup is newSetup exporting to a receiver of the test's own.
func otelSetup(t *testing.T, policy string, env ...string) (*setup, *otlptest.Receiver) {
	t.Helper()
	rcv, err := otlptest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	s := newSetup(t, policy, true)
	s.env = append(s.env, "OTEL_EXPORTER_OTLP_ENDPOINT="+rcv.URL, "LAMBDARASP_OTLP_ADDR="+freeTCP(t))
	s.env = append(s.env, env...)
	return s, rcv
}

func withTraceparent(b []byte, tp string) []byte {
	return []byte(strings.Replace(string(b), `"headers": {`, `"headers": {"traceparent": "`+tp+`",`, 1))
}

// The wrapper's spans, relayed by the real extension, and the
// extension's own metrics and alert logs, as a real OTLP receiver decodes
// them: clean, blocked and quarantined invocations, an outbound call, an
// attack wave; SHUTDOWN comes right after the last invocation and
// nothing is lost.
func TestOTelEndToEnd(t *testing.T) {
	var hits int
	dest := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits++ }))
	defer dest.Close()
	port := fmt.Sprint(dest.Listener.Addr().(*net.TCPAddr).Port)

	s, rcv := otelSetup(t, `{"version":1,"rules":[{"anomaly":"attack_wave","action":"quarantine","ttl":"10m"}]}`,
		"OTEL_SERVICE_NAME=orders-svc", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=test", "LAMBDARASP_EGRESS_INTERNAL=127.0.0.1")
	rcv.SetDelay(30 * time.Millisecond) // a backend across a network: the last requests are in flight at SHUTDOWN
	em := s.start(t)
	const parentTrace, parentSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	expect(t, "clean request with a traceparent", status(t, em, withTraceparent(event(t, clean, "198.51.100.1", ""), "00-"+parentTrace+"-"+parentSpan+"-01")), 200)
	expect(t, "clean request calling out", status(t, em, event(t, clean, "198.51.100.1", "/call/"+port)), 200)
	for i := range 10 { // an attack wave: quarantine
		expect(t, "SQL injection", status(t, em, event(t, sqli, fmt.Sprintf("203.0.113.%d", 10+i), "")), 403)
	}
	expect(t, "clean request in quarantine", status(t, em, event(t, clean, "198.51.100.1", "")), 403)
	if err := em.Close(); err != nil { // SHUTDOWN right after
		t.Fatal(err)
	}
	if errs := rcv.Errors(); len(errs) > 0 {
		t.Fatalf("undecodable requests: %v", errs)
	}

	spans := rcv.Spans()
	servers := map[string]otlptest.Span{}
	byID := map[string]otlptest.Span{}
	for _, sp := range spans {
		byID[sp.SpanID()] = sp
		if sp.Kind == 2 {
			servers[sp.Attr("faas.invocation_id")] = sp
		}
	}
	if len(servers) != 13 {
		t.Fatalf("%d server spans, want one per invocation, 13 (of %d spans)", len(servers), len(spans))
	}
	var first, calling, quarantined otlptest.Span
	blocked := 0
	for _, sp := range servers {
		if sp.Resource["service.name"] != "orders-svc" || sp.Resource["deployment.environment.name"] != "test" || sp.Resource["faas.name"] != "orders" {
			t.Errorf("resource %v: want OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and faas.name", sp.Resource)
		}
		if sp.Attr("faas.trigger") != "http" || sp.Attr("cloud.provider") != "aws" || !strings.HasPrefix(sp.Attr("cloud.resource_id"), "arn:aws:lambda:") {
			t.Errorf("server span attributes %v", sp.Attributes)
		}
		switch {
		case sp.TraceID() == parentTrace:
			first = sp
		case sp.Attr("lambdarasp.action") == "quarantine":
			quarantined = sp
		case sp.Attr("lambdarasp.action") == "block":
			blocked++
		}
	}
	for _, sp := range spans {
		if sp.Kind == 3 {
			calling = byID[sp.ParentID()]
			if sp.Attr("server.address") != "127.0.0.1" || sp.Attr("server.port") != port || sp.Attr("http.response.status_code") != "200" {
				t.Errorf("client span %v", sp.Attributes)
			}
		}
		if sp.Name == "lambdarasp.inspect" {
			parent, ok := byID[sp.ParentID()]
			if !ok || parent.Kind != 2 || parent.TraceID() != sp.TraceID() {
				t.Errorf("inspection span %s: parent %s is not its invocation's server span", sp.SpanID(), sp.ParentID())
			}
			if parent.Attr("lambdarasp.action") == "block" && (sp.Attr("lambdarasp.action") != "block" || len(sp.Events) == 0 || !strings.Contains(sp.Attr("lambdarasp.rules"), "942")) {
				t.Errorf("inspection span of a block: action %s, %d events, rules %s", sp.Attr("lambdarasp.action"), len(sp.Events), sp.Attr("lambdarasp.rules"))
			}
		}
	}
	if first.Span == nil || first.ParentID() != parentSpan || first.Attr("faas.coldstart") != "true" {
		t.Errorf("first invocation: want the incoming traceparent's trace and parent, cold start; got %v", first.Span)
	}
	if calling.Span == nil || calling.Kind != 2 || hits != 1 {
		t.Errorf("the outbound call's client span has no server span as parent (%d calls made)", hits)
	}
	if blocked != 10 || quarantined.Span == nil {
		t.Errorf("%d blocked server spans, quarantine %v: want 10 and one", blocked, quarantined.Span != nil)
	}

	metrics := map[string]string{}
	for _, m := range rcv.Metrics() {
		if sum := m.GetSum(); sum != nil {
			for _, p := range sum.DataPoints {
				var kv []string
				for _, a := range p.Attributes {
					kv = append(kv, a.Key+"="+fmt.Sprint(a.Value.GetStringValue(), a.Value.GetIntValue()))
				}
				metrics[m.Name+"{"+strings.Join(kv, ",")+"}"] = fmt.Sprint(p.GetAsInt())
			}
		}
		if g := m.GetGauge(); g != nil {
			for _, p := range g.DataPoints {
				metrics[m.Name+"{"+p.Attributes[0].Value.GetStringValue()+"}"] = fmt.Sprint(p.GetAsInt())
			}
		}
		if h := m.GetHistogram(); h != nil {
			n := uint64(0)
			for _, p := range h.DataPoints {
				n += p.Count
			}
			metrics[m.Name] = fmt.Sprint(n)
		}
	}
	for k, want := range map[string]string{
		"lambdarasp.invocations{lambdarasp.source=apigw-http0,lambdarasp.action=allow0}":               "2",
		"lambdarasp.invocations{lambdarasp.source=apigw-http0,lambdarasp.action=block0}":               "10",
		"lambdarasp.invocations{lambdarasp.source=apigw-http0,lambdarasp.action=quarantine0}":          "1",
		"lambdarasp.outbound.calls{server.address=127.0.0.10,server.port=" + port + "}":                "1",
		"lambdarasp.anomalies{lambdarasp.anomaly.type=attack_wave0,lambdarasp.anomaly.severity=high0}": "1",
		"lambdarasp.decisions.active{quarantine}":                                                      "1",
		"lambdarasp.inspection.duration":                                                               "12",
	} {
		if metrics[k] != want {
			t.Errorf("metric %s = %q, want %s", k, metrics[k], want)
		}
	}
	if len(metrics) == 0 || t.Failed() {
		t.Logf("metrics: %v", metrics)
	}
	alerts := 0
	for _, l := range rcv.Logs() {
		if l.Attr("lambdarasp.anomaly.type") == "attack_wave" && strings.HasPrefix(l.Attr("lambdarasp.decision"), "quarantine") && l.SeverityText == "ERROR" {
			alerts++
		}
	}
	if alerts != 1 {
		t.Errorf("%d attack_wave alert logs, want 1", alerts)
	}
}

// A backend that answers slowly slows no invocation, and the queue
// stays bounded: past LAMBDARASP_OTLP_QUEUE_BYTES the oldest requests
// are dropped, and lambdarasp.otlp.dropped says how many once the
// backend is back.
func TestOTelSlowBackend(t *testing.T) {
	s, rcv := otelSetup(t, `{"version":1,"rules":[]}`, "LAMBDARASP_OTLP_QUEUE_BYTES=65536")
	rcv.SetDelay(time.Second)
	em := s.start(t)
	const n = 80
	var slowest, total time.Duration
	for i := range n {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res, err := em.Invoke(ctx, event(t, sqli, "203.0.113.9", ""))
		cancel()
		if err != nil || res.FunctionError != "" {
			t.Fatalf("invocation %d: %v %s", i, err, res.FunctionError)
		}
		if d := time.Since(start); i >= 2 {
			slowest, total = max(slowest, d), total+d
		}
	}
	// One invocation may wait for the backend once (up to 200 ms) before
	// the extension knows it is slow; none after that. An extension that
	// waited each time would take 200 ms an invocation; a busy machine
	// takes a few ms.
	if total > (n-2)*60*time.Millisecond {
		t.Errorf("invocations took %v in all (the slowest %v) with a slow backend: want them unaffected", total, slowest)
	}
	rcv.SetDelay(0)
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	var dropped int64 = -1
	for _, m := range rcv.Metrics() {
		if m.Name != "lambdarasp.otlp.dropped" {
			continue
		}
		for _, p := range m.GetSum().DataPoints {
			if p.Attributes[0].Value.GetStringValue() == "traces" {
				dropped = max(dropped, p.GetAsInt())
			}
		}
	}
	servers := 0
	for _, sp := range rcv.Spans() {
		if sp.Kind == 2 {
			servers++
		}
	}
	if dropped <= 0 || servers == 0 || int64(servers)+dropped < n-1 || servers >= n {
		t.Errorf("%d server spans delivered, %d requests dropped: want some delivered, the rest dropped and counted (%d invocations)", servers, dropped, n)
	}
}

// A backend that is down (503) costs the invocations nothing; what it
// refused is kept, retried with backoff, and delivered once it is back,
// at the latest at SHUTDOWN.
func TestOTelBackendDown(t *testing.T) {
	s, rcv := otelSetup(t, `{"version":1,"rules":[]}`)
	rcv.SetFail(http.StatusServiceUnavailable)
	em := s.start(t)
	const n = 20
	start := time.Now()
	for range n {
		expect(t, "clean request", status(t, em, event(t, clean, "198.51.100.1", "")), 200)
	}
	if d := time.Since(start); d > n*60*time.Millisecond {
		t.Errorf("%d invocations took %v with the backend down: want them unaffected", n, d)
	}
	if rcv.Requests() == 0 {
		t.Fatal("the backend was never tried")
	}
	rcv.SetFail(0)
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	servers := 0
	for _, sp := range rcv.Spans() {
		if sp.Kind == 2 {
			servers++
		}
	}
	if servers != n {
		t.Errorf("%d server spans delivered after the backend came back, want all %d", servers, n)
	}
}
