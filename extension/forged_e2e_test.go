package extension_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// envValue is the value of name in env.
func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// The extension's loopback listeners as an attacker inside the
// environment would use them: forged reports (an "allow" for a blocked
// client, garbage, oversized datagrams, datagrams from a non-loopback
// address), forged telemetry (records that say "success" or "allow",
// garbage) and forged OTLP (malformed protobuf, oversized, the wrong
// content type, paths the receiver does not serve). The function's
// verdicts and responses stay what the rules and the decisions in force
// say, no decision is lifted or shortened, and nothing malformed reaches
// the OTLP backend (it would make it refuse the wrapper's spans with it).
// What forged reports can do is restrict: a client they name as an
// attacker is blocked, as a real attacker would be.
func TestForgedMessagesEndToEnd(t *testing.T) {
	s, rcv := otelSetup(t, `{"version":1,"rules":[{"anomaly":"attacker","action":"block_ip","ttl":"10m"}],"block_ip_after":3}`)
	telemetry := freeTCP(t)
	for i, kv := range s.env {
		if strings.HasPrefix(kv, "LAMBDARASP_TELEMETRY_PORT=") {
			_, port, _ := net.SplitHostPort(telemetry)
			s.env[i] = "LAMBDARASP_TELEMETRY_PORT=" + port
		}
	}
	reportAddr, otlpAddr := envValue(s.env, "LAMBDARASP_REPORT_ADDR"), envValue(s.env, "LAMBDARASP_OTLP_ADDR")
	em := s.start(t)
	for range 3 {
		expect(t, "SQL injection from the attacker", status(t, em, event(t, sqli, "203.0.113.66", "")), 403)
	}
	expect(t, "clean request from the attacker", status(t, em, event(t, clean, "203.0.113.66", "")), 403)
	before, err := decision.Read(s.decisions)
	if err != nil || len(before.BlockedIPs) != 1 {
		t.Fatalf("decisions before: %+v, %v", before, err)
	}

	// The environment is frozen between invocations (the extension's
	// listeners with it): forge while invocations run.
	stop, stopped := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		defer func() { stopped <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if code := status(t, em, event(t, clean, "198.51.100.1", "/slow")); code != 200 {
				t.Errorf("clean request while forging: %d", code)
				return
			}
			n++
		}
	}()

	// Reports: "allow" for the blocked client, a forged attacker, garbage,
	// too large, and from a non-loopback address.
	sender, err := report.Dial(reportAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	for i := range 50 {
		sender.Send(&report.Report{RequestID: fmt.Sprintf("forged-%d", i), Source: "apigw-http", Action: report.Allow, ClientIP: "203.0.113.66", Records: 1})
	}
	for i := range 3 {
		sender.Send(&report.Report{RequestID: fmt.Sprintf("forged-block-%d", i), Source: "apigw-http", Action: report.Block, ClientIP: "192.0.2.200", Records: 1, BlockedRecords: 1, Rules: []int{942100}})
	}
	raw, err := net.Dial("udp", reportAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, d := range [][]byte{[]byte("allow 203.0.113.66"), {0xff, 0xfe, 0, 1}, bytes.Repeat([]byte{'L'}, report.MaxSize+100)} {
		if _, err := raw.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	foreign := 0
	if ip := nonLoopback(); ip != nil {
		ua, _ := net.ResolveUDPAddr("udp", reportAddr)
		if c, err := net.DialUDP("udp", &net.UDPAddr{IP: ip}, ua); err == nil {
			var b []byte
			b = report.Append(b, &report.Report{RequestID: "foreign", Source: "apigw-http", Action: report.Block, ClientIP: "192.0.2.201", Records: 1, BlockedRecords: 1})
			for range 5 {
				if _, err := c.Write(b); err == nil {
					foreign++
				}
			}
			c.Close()
		}
	}

	// Telemetry: records that claim success or "allow", and garbage.
	post := func(url, ctype string, body []byte) int {
		resp, err := http.Post(url, ctype, bytes.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	turl := "http://" + telemetry + "/"
	if code := post(turl, "application/json", []byte(`[{"time":"2026-01-02T15:00:00Z","type":"platform.runtimeDone","record":{"requestId":"x","status":"success","action":"allow","blocked":false,"clientIp":"203.0.113.66"}},`+
		`{"type":"platform.report","record":{"requestId":"x","status":"allow","metrics":{"maxMemoryUsedMB":1,"memorySizeMB":128}}},{"type":"lambdarasp.decision","record":{"lift":"203.0.113.66"}}]`)); code != http.StatusOK {
		t.Errorf("well-formed forged telemetry: %d", code)
	}
	for _, body := range []string{`[{"type":"platform.runtimeDone","record":`, "\x00garbage", `{"unblock":"203.0.113.66"}`} {
		if code := post(turl, "application/json", []byte(body)); code != http.StatusBadRequest {
			t.Errorf("malformed telemetry %q: %d, want 400", body, code)
		}
	}

	// OTLP: malformed, oversized, the wrong type, other paths.
	ourl := "http://" + otlpAddr
	for _, c := range []struct {
		path, ctype string
		body        []byte
		want        int
	}{
		{"/v1/traces", "application/x-protobuf", []byte("\x0a\xff\xff\xff\xff\x0fnot protobuf"), http.StatusBadRequest},
		{"/v1/traces", "application/x-protobuf", []byte("{\"resourceSpans\":[]}"), http.StatusBadRequest},
		{"/v1/logs", "application/x-protobuf", bytes.Repeat([]byte{0x0a, 0x00}, 3<<20), http.StatusRequestEntityTooLarge},
		{"/v1/traces", "application/json", []byte(`{"resourceSpans":[]}`), http.StatusUnsupportedMediaType},
		{"/v1/decisions", "application/json", []byte(`{"unblock":"203.0.113.66"}`), http.StatusNotFound},
	} {
		if code := post(ourl+c.path, c.ctype, c.body); code != c.want {
			t.Errorf("OTLP %s %s %.20q: %d, want %d", c.path, c.ctype, c.body, code, c.want)
		}
	}

	close(stop)
	invocations := 4 + 7 + <-stopped // before, while forging, and the 7 below

	// Invocations after all that: the same verdicts; the forged attacker
	// is blocked (a restriction), the real one still.
	for range 2 {
		expect(t, "clean request", status(t, em, event(t, clean, "198.51.100.1", "")), 200)
		expect(t, "SQL injection", status(t, em, event(t, sqli, "198.51.100.1", "")), 403)
		expect(t, "clean request from the blocked client", status(t, em, event(t, clean, "203.0.113.66", "")), 403)
	}
	expect(t, "clean request from the client forged reports named", status(t, em, event(t, clean, "192.0.2.200", "")), 403)
	if foreign > 0 {
		expect(t, "clean request from the client a non-loopback peer named", status(t, em, event(t, clean, "192.0.2.201", "")), 200)
	}
	after, err := decision.Read(s.decisions)
	if err != nil {
		t.Fatal(err)
	}
	if after.Quarantine != nil {
		t.Errorf("forged messages quarantined the function: %+v", after.Quarantine)
	}
	for _, b := range before.BlockedIPs {
		kept := false
		for _, a := range after.BlockedIPs {
			kept = kept || (a.IP == b.IP && !a.Until.Before(b.Until))
		}
		if !kept {
			t.Errorf("the block of %s (until %v) was lifted or shortened: %+v", b.IP, b.Until, after.BlockedIPs)
		}
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	if errs := rcv.Errors(); len(errs) > 0 {
		t.Errorf("the OTLP backend got requests it could not decode: %v", errs)
	}
	servers := 0
	for _, sp := range rcv.Spans() {
		if sp.Kind == 2 {
			servers++
		}
	}
	if foreign > 0 {
		invocations++
	}
	if servers < invocations-1 {
		t.Errorf("%d server spans reached the backend, want the %d invocations' (at least %d)", servers, invocations, invocations-1)
	}
	if !strings.Contains(s.logs.String(), `"msg":"lambdarasp reports lost"`) {
		t.Errorf("the malformed and foreign datagrams were not counted")
	}
	t.Logf("%d datagrams sent from a non-loopback address", foreign)
}

// nonLoopback is an IPv4 address of this host that is not a loopback
// one, or nil.
func nonLoopback() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	return nil
}
