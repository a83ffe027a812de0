package protect

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// extension is a stand-in for the lambdarasp extension: a UDP listener
// that decodes reports, and a decisions file.
type extension struct {
	conn      *net.UDPConn
	reports   chan report.Report
	decisions string
	hellos    atomic.Int32
}

func newExtension(t *testing.T) *extension {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	x := &extension{conn: conn, reports: make(chan report.Report, 64), decisions: filepath.Join(t.TempDir(), "decisions.json")}
	go func() {
		buf := make([]byte, report.MaxSize)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			r, err := report.Decode(buf[:n])
			if errors.Is(err, report.ErrHello) {
				x.hellos.Add(1)
				continue
			}
			if err != nil {
				t.Errorf("undecodable report: %v", err)
				continue
			}
			x.reports <- r
		}
	}()
	return x
}

func (x *extension) next(t *testing.T) report.Report {
	t.Helper()
	select {
	case r := <-x.reports:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no report")
	}
	return report.Report{}
}

func (x *extension) publish(t *testing.T, d decision.Decisions) {
	t.Helper()
	if err := decision.Write(x.decisions, d); err != nil {
		t.Fatal(err)
	}
}

// linked is testHandler with a link to x.
func linked(t *testing.T, x *extension, next lambda.Handler, logs *bytes.Buffer, opts ...Option) *handler {
	t.Helper()
	h := testHandler(t, next, logs, opts...)
	cfg := h.in.cfg
	cfg.reportAddr = x.conn.LocalAddr().String()
	cfg.decisions = x.decisions
	l, err := newLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.sender.Close() })
	h.link = l
	return h
}

func ctxFor(id string) context.Context {
	return lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: id})
}

const (
	httpClean = `{"version":"2.0","rawPath":"/p","rawQueryString":"q=books","headers":{"host":"x.example.com","user-agent":"curl/8","accept":"*/*"},"requestContext":{"domainName":"x.example.com","http":{"method":"GET","path":"/p","protocol":"HTTP/1.1","sourceIp":"203.0.113.9"}}}`
	httpSQLi  = `{"version":"2.0","rawPath":"/p","rawQueryString":"id=1%27%20UNION%20SELECT%20password%20FROM%20users--","headers":{"host":"x.example.com","user-agent":"curl/8","accept":"*/*"},"requestContext":{"domainName":"x.example.com","http":{"method":"GET","path":"/p","protocol":"HTTP/1.1","sourceIp":"203.0.113.9"}}}`
	s3Clean   = `{"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"b"},"object":{"key":"invoices/2024/a.pdf"}}}]}`
)

func TestReports(t *testing.T) {
	x := newExtension(t)
	next := &recorder{out: []byte(`{"statusCode":200}`)}
	h := linked(t, x, next, &bytes.Buffer{})

	for deadline := time.Now().Add(5 * time.Second); x.hellos.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if x.hellos.Load() != 1 {
		t.Errorf("%d hellos at init, want 1", x.hellos.Load())
	}
	if _, err := h.Invoke(ctxFor("r1"), []byte(httpClean)); err != nil {
		t.Fatal(err)
	}
	r := x.next(t)
	if r.RequestID != "r1" || r.Source != "apigw-http" || r.Action != report.Allow || !r.ColdStart ||
		r.ClientIP != "203.0.113.9" || r.Records != 1 || r.BlockedRecords != 0 || len(r.Rules) != 0 || r.ErrorType != "" || len(r.Outbound) != 0 {
		t.Errorf("clean request: %+v", r)
	}

	if _, err := h.Invoke(ctxFor("r2"), []byte(httpSQLi)); err != nil {
		t.Fatal(err)
	}
	r = x.next(t)
	if r.RequestID != "r2" || r.Action != report.Block || r.ColdStart || r.BlockedRecords != 1 || len(r.Rules) == 0 {
		t.Errorf("blocked request: %+v", r)
	}

	event := []byte(`{"Records":[` + sqsRecord("m0", cleanBody) + `,` + sqsRecord("m1", evilBody) + `,` + sqsRecord("m2", cleanBody) + `]}`)
	hp := linked(t, x, &recorder{out: []byte(`{}`)}, &bytes.Buffer{}, WithPartialBatch(true))
	if _, err := hp.Invoke(ctxFor("r3"), event); err != nil {
		t.Fatal(err)
	}
	if r = x.next(t); r.Source != "sqs" || r.Action != report.Block || r.Records != 3 || r.BlockedRecords != 1 || r.ClientIP != "" {
		t.Errorf("partial batch: %+v", r)
	}

	// The handler's error is reported by its type, never its message.
	failing := linked(t, x, &recorder{err: errors.New("secret=hunter2")}, &bytes.Buffer{})
	_, _ = failing.Invoke(ctxFor("r4"), []byte(s3Clean))
	if r = x.next(t); r.ErrorType != "errorString" || strings.Contains(r.ErrorType, "hunter2") {
		t.Errorf("handler error reported as %q", r.ErrorType)
	}

	// A handler that panics is reported too, and the panic goes on.
	panicking := linked(t, x, lambda.NewHandler(func() error { panic("user bug") }), &bytes.Buffer{})
	func() {
		defer func() { _ = recover() }()
		_, _ = panicking.Invoke(ctxFor("r5"), []byte(`{}`))
	}()
	if r = x.next(t); r.RequestID != "r5" || r.ErrorType != "panic" {
		t.Errorf("panic: %+v", r)
	}
}

func TestQuarantine(t *testing.T) {
	x := newExtension(t)
	x.publish(t, decision.Decisions{Quarantine: &decision.Quarantine{Until: time.Now().Add(time.Hour), Reason: "attack_wave"}})
	var logs bytes.Buffer
	next := &recorder{out: []byte(`{}`)}
	h := linked(t, x, next, &logs, WithPartialBatch(true))

	out, err := h.Invoke(ctxFor("req-1"), []byte(httpClean))
	if err != nil || !strings.Contains(string(out), `"statusCode":403`) || !strings.Contains(string(out), `req-1`) {
		t.Errorf("quarantined HTTP request: %s, %v; want the 403", out, err)
	}
	batch := []byte(`{"Records":[` + sqsRecord("m0", cleanBody) + `,` + sqsRecord("m1", cleanBody) + `]}`)
	out, err = h.Invoke(ctxFor("req-2"), batch)
	if err != nil || string(out) != `{"batchItemFailures":[{"itemIdentifier":"m0"},{"itemIdentifier":"m1"}]}` {
		t.Errorf("quarantined batch: %s, %v; want every record failed", out, err)
	}
	if _, err = h.Invoke(ctxFor("req-3"), []byte(s3Clean)); !IsBlocked(err) {
		t.Errorf("quarantined S3 event: %v; want the blocked error", err)
	}
	if next.calls != 0 {
		t.Errorf("the handler ran %d times in quarantine", next.calls)
	}
	for range 3 {
		if r := x.next(t); r.Action != report.Quarantine || r.BlockedRecords != r.Records {
			t.Errorf("report %+v: want action quarantine, every record blocked", r)
		}
	}
	if n := strings.Count(logs.String(), `"decision":"quarantine"`); n != 3 || !strings.Contains(logs.String(), `"reason":"attack_wave"`) {
		t.Errorf("%d quarantine log lines, want 3 with the reason: %s", n, logs.String())
	}

	// Detect mode enforces decisions too: they are the operator's.
	hd := linked(t, x, next, &bytes.Buffer{}, WithMode(Detect))
	if out, _ := hd.Invoke(ctxFor("req-4"), []byte(httpClean)); !strings.Contains(string(out), `"statusCode":403`) || next.calls != 0 {
		t.Errorf("detect mode, quarantined: %s, %d calls", out, next.calls)
	}
	x.next(t)

	// The quarantine lifts when the file says so.
	x.publish(t, decision.Decisions{})
	if _, err := h.Invoke(ctxFor("req-5"), []byte(httpClean)); err != nil || next.calls != 1 {
		t.Errorf("after the quarantine: %v, %d calls", err, next.calls)
	}
}

func TestBlockedIP(t *testing.T) {
	x := newExtension(t)
	x.publish(t, decision.Decisions{BlockedIPs: []decision.BlockedIP{
		{IP: "203.0.113.9", Until: time.Now().Add(time.Hour), Reason: "attacker"},
		{IP: "198.51.100.4", Until: time.Now().Add(time.Hour)},
	}})
	next := &recorder{out: []byte(`{}`)}
	h := linked(t, x, next, &bytes.Buffer{})
	out, err := h.Invoke(ctxFor("r1"), []byte(httpClean))
	if err != nil || !strings.Contains(string(out), `"statusCode":403`) || next.calls != 0 {
		t.Errorf("blocked client: %s, %v, %d calls", out, err, next.calls)
	}
	if r := x.next(t); r.Action != report.BlockedIP || r.ClientIP != "203.0.113.9" {
		t.Errorf("report %+v", r)
	}
	other := strings.Replace(httpClean, "203.0.113.9", "203.0.113.10", 1)
	if _, err := h.Invoke(ctxFor("r2"), []byte(other)); err != nil || next.calls != 1 {
		t.Errorf("other client: %v, %d calls", err, next.calls)
	}
	x.next(t)

	// An ALB's client is the address it appended to X-Forwarded-For.
	alb := func(xff string) string {
		return `{"requestContext":{"elb":{"targetGroupArn":"arn"}},"httpMethod":"GET","path":"/p","headers":{"host":"x.example.com","user-agent":"curl/8","accept":"*/*","x-forwarded-for":"` + xff + `"},"body":"","isBase64Encoded":false}`
	}
	if out, _ := h.Invoke(ctxFor("r3"), []byte(alb("10.0.0.1, 10.0.0.2, 198.51.100.4"))); !strings.Contains(string(out), `"statusCode":403`) {
		t.Errorf("ALB, blocked client last in X-Forwarded-For: %s", out)
	}
	x.next(t)
	if _, err := h.Invoke(ctxFor("r4"), []byte(alb("198.51.100.4, 10.0.0.1, 10.0.0.2"))); err != nil || next.calls != 2 {
		t.Errorf("ALB, blocked address claimed by the client: %v, %d calls; want it to run", err, next.calls)
	}
	x.next(t)

	// Non-HTTP events have no client IP.
	if _, err := h.Invoke(ctxFor("r5"), []byte(s3Clean)); err != nil || next.calls != 3 {
		t.Errorf("S3: %v, %d calls", err, next.calls)
	}
}

// Without a live extension the wrapper keeps protecting: the rules block,
// clean events pass, decisions are not enforced, and that is logged once.
func TestExtensionGoneFailsOpen(t *testing.T) {
	x := newExtension(t)
	x.publish(t, decision.Decisions{Quarantine: &decision.Quarantine{Until: time.Now().Add(time.Hour)}})
	var logs bytes.Buffer
	next := &recorder{out: []byte(`{}`)}
	h := linked(t, x, next, &logs)
	if out, _ := h.Invoke(ctxFor("r1"), []byte(httpClean)); !strings.Contains(string(out), "403") {
		t.Fatalf("quarantine not enforced while the extension listens: %s", out)
	}
	x.next(t)
	x.conn.Close() // the extension dies

	// The report of the first invocation after its death finds nobody.
	_, _ = h.Invoke(ctxFor("r2"), []byte(httpClean))
	deadline := time.Now().Add(5 * time.Second)
	for h.link.sender.Reachable() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	calls := next.calls
	for i := range 5 {
		if _, err := h.Invoke(ctxFor("r"), []byte(httpClean)); err != nil {
			t.Fatalf("clean request %d without the extension: %v", i, err)
		}
		out, err := h.Invoke(ctxFor("r"), []byte(httpSQLi))
		if err != nil || !strings.Contains(string(out), `"statusCode":403`) {
			t.Fatalf("SQL injection %d without the extension: %s, %v; want the 403", i, out, err)
		}
	}
	if next.calls != calls+5 {
		t.Errorf("the handler ran %d times for 5 clean requests: decisions still enforced?", next.calls-calls)
	}
	if n := strings.Count(logs.String(), "lambdarasp extension not reachable"); n != 1 {
		t.Errorf("%d 'not reachable' lines, want 1:\n%s", n, logs.String())
	}
}

// A function deployed without the extension knows it from init: a stale
// decisions file is not enforced even on the first invocation, and that is
// said once, quietly.
func TestNoExtensionAtInit(t *testing.T) {
	x := newExtension(t)
	x.publish(t, decision.Decisions{Quarantine: &decision.Quarantine{Until: time.Now().Add(time.Hour)}})
	x.conn.Close() // nobody listens from the start
	var logs bytes.Buffer
	next := &recorder{out: []byte(`{}`)}
	h := linked(t, x, next, &logs)
	for range 3 {
		if _, err := h.Invoke(ctxFor("r"), []byte(httpClean)); err != nil {
			t.Fatal(err)
		}
	}
	if next.calls != 3 {
		t.Errorf("handler ran %d of 3 times: a stale quarantine enforced without the extension", next.calls)
	}
	if n := strings.Count(logs.String(), "lambdarasp extension not running"); n != 1 || strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("want one INFO line saying the extension is not running:\n%s", logs.String())
	}
}

// A decisions file that cannot be read — truncated, garbage, empty, too
// large, another version — never loosens anything: the last good
// decisions stay in force (here a quarantine), the rules still block, and
// the failure is logged once for as long as it lasts, however often the
// file changes. A good file is enforced again, and said so once.
func TestDecisionsFileUnreadable(t *testing.T) {
	x := newExtension(t)
	x.publish(t, decision.Decisions{Quarantine: &decision.Quarantine{Until: time.Now().Add(time.Hour)}})
	var logs bytes.Buffer
	next := &recorder{out: []byte(`{}`)}
	h := linked(t, x, next, &logs)
	_, _ = h.Invoke(ctxFor("r1"), []byte(httpClean))
	x.next(t)
	huge := `{"version":1,"blocked_ips":[` + strings.Repeat(`{"ip":"198.51.100.1","until":"2099-01-01T00:00:00Z"},`, decision.MaxFileBytes/50) + `{"ip":"198.51.100.1","until":"2099-01-01T00:00:00Z"}]}`
	broken := []string{`{"version":1,"quarantine":`, "\x00\x01 not json", "", huge, `{"version":2}`, `{"version":1,"blocked_ips":[{"ip":"nope"}]}`}
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(x.decisions, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, content := range broken {
		write(content)
		if out, _ := h.Invoke(ctxFor("r"), []byte(httpClean)); !strings.Contains(string(out), `"statusCode":403`) {
			t.Errorf("decisions file %.30q dropped the last good quarantine: %s", content, out)
		}
		x.next(t)
	}
	if next.calls != 0 {
		t.Errorf("handler ran %d times in quarantine", next.calls)
	}
	if n := strings.Count(logs.String(), "lambdarasp decisions unreadable"); n != 1 {
		t.Errorf("%d 'unreadable' lines for %d broken files in a row, want 1:\n%s", n, len(broken), logs.String())
	}

	// A good file again, without the quarantine: enforced, said once.
	x.publish(t, decision.Decisions{})
	for range 2 {
		if _, err := h.Invoke(ctxFor("r"), []byte(httpClean)); err != nil {
			t.Fatal(err)
		}
		x.next(t)
	}
	if next.calls != 2 || strings.Count(logs.String(), "lambdarasp decisions readable again") != 1 {
		t.Errorf("good file again: the handler ran %d of 2 times; want it to run and one 'readable again' line:\n%s", next.calls, logs.String())
	}

	// Whatever a file says beyond decisions is ignored: nothing in it can
	// turn inspection off or loosen what the code configured.
	write(`{"version":1,"mode":"off","paranoia":0,"anomaly_threshold":1000,"exclude":[942100],"rules":[],"allow":["*"]}`)
	if out, err := h.Invoke(ctxFor("r"), []byte(httpSQLi)); err != nil || !strings.Contains(string(out), `"statusCode":403`) {
		t.Errorf("SQL injection with a decisions file that asks for less: %s, %v; want the 403", out, err)
	}
	x.next(t)

	// Broken from the start: no decisions, the rules alone.
	write("garbage")
	var logs2 bytes.Buffer
	next2 := &recorder{out: []byte(`{}`)}
	h2 := linked(t, x, next2, &logs2)
	if _, err := h2.Invoke(ctxFor("r"), []byte(httpClean)); err != nil || next2.calls != 1 {
		t.Errorf("clean request, no good decisions ever: %v, %d calls", err, next2.calls)
	}
	if out, _ := h2.Invoke(ctxFor("r"), []byte(httpSQLi)); !strings.Contains(string(out), `"statusCode":403`) {
		t.Errorf("SQL injection, no good decisions ever: %s; want the 403", out)
	}
	if n := strings.Count(logs2.String(), "lambdarasp decisions unreadable"); n != 1 {
		t.Errorf("%d 'unreadable' lines, want 1", n)
	}
}

func TestLinkSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, bad := range []string{"10.0.0.1:7431", "127.0.0.1", "localhost:7431", "127.0.0.1:0"} {
		if _, err := newConfig(env(map[string]string{envReport: bad}), nil); err == nil || !strings.Contains(err.Error(), envReport) {
			t.Errorf("%s=%q: %v; want an error naming the variable", envReport, bad, err)
		}
	}
	cfg, err := newConfig(env(map[string]string{envReport: "off", envDecisions: "off"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := newLink(cfg); l != nil || err != nil {
		t.Errorf("both off: link %v, %v; want none", l, err)
	}
	cfg, _ = newConfig(env(nil), nil)
	if cfg.reportAddr != report.DefaultAddr || cfg.decisions != decision.DefaultPath {
		t.Errorf("defaults %q, %q", cfg.reportAddr, cfg.decisions)
	}
}

// A report queue that fills up (its goroutine starved) drops reports; that
// is logged once, not per report, and once more when reports flow again.
// (It skips if the sender keeps up with the test's burst.)
func TestReportQueueFull(t *testing.T) {
	x := newExtension(t)
	var logs bytes.Buffer
	h := linked(t, x, &recorder{out: []byte(`{}`)}, &logs)
	r := h.link.report("r1", &outcome{}, nil)
	for i := 0; i < 100000 && h.link.sender.Dropped() < 100; i++ {
		h.link.queue(&r)
	}
	if h.link.sender.Dropped() < 100 {
		t.Skip("the sender kept up with 100,000 reports in a row: nothing dropped to log")
	}
	// Once, or twice if it drained for reportsCalm reports in between.
	if n := strings.Count(logs.String(), "report queue full"); n < 1 || n > 2 {
		t.Fatalf("%d log lines for a queue that dropped %d reports, want 1 or 2:\n%s", n, h.link.sender.Dropped(), logs.String())
	}
	full := strings.Count(logs.String(), "report queue full")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "reports queued again") {
		if time.Now().After(deadline) {
			t.Fatalf("no line once reports were queued again:\n%s", logs.String())
		}
		time.Sleep(time.Millisecond)
		h.link.queue(&r)
	}
	if n := strings.Count(logs.String(), "report queue full"); n != full {
		t.Errorf("a full queue logged again after it drained:\n%s", logs.String())
	}
}
