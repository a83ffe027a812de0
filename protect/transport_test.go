package protect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// useOutbound installs the outbound settings of opts (and the link l,
// for decisions outside an invocation) for one test, and restores the
// previous ones after it. Findings are logged to logs when not nil.
func useOutbound(t *testing.T, logs *bytes.Buffer, l *link, opts ...Option) {
	t.Helper()
	cfg, err := newConfig(func(string) string { return "" }, opts)
	if err != nil {
		t.Fatal(err)
	}
	var w io.Writer = io.Discard
	if logs != nil {
		w = logs
	}
	cfg.logger = slog.New(slog.NewJSONHandler(w, nil))
	prev := outbound.cfg.Load()
	install(newOutboundConfig(cfg, l))
	takeCarry()
	t.Cleanup(func() {
		if prev != nil {
			outbound.cfg.Store(prev)
		}
		takeCarry()
	})
}

// withRuntimeAPI sets this environment's Runtime API address, as Lambda
// does in AWS_LAMBDA_RUNTIME_API.
func withRuntimeAPI(addr string) Option { return func(c *config) { c.runtimeAPI = addr } }

// server is a local HTTP server that counts its requests.
type server struct {
	*httptest.Server
	hits atomic.Int32
	port string
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.WriteString(w, "hello from "+r.Host)
	}))
	t.Cleanup(s.Close)
	_, s.port, _ = net.SplitHostPort(s.Listener.Addr().String())
	return s
}

// url is the server's URL with another host (name or address spelling).
func (s *server) url(host string) string {
	return "http://" + net.JoinHostPort(host, s.port) + "/path?token=secret"
}

// redirected is a base transport whose dials all reach s, whatever
// address the guard asks for, and which remembers those addresses: public
// destinations are tested without leaving the machine.
type redirected struct {
	to    string
	mu    sync.Mutex
	dials []string
}

func (r *redirected) transport() *http.Transport {
	return &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		r.mu.Lock()
		r.dials = append(r.dials, addr)
		r.mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, r.to)
	}}
}

func (r *redirected) dialed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.dials)
}

func get(t *testing.T, rt http.RoundTripper, ctx context.Context, u string) (int, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func denied(t *testing.T, err error) *DeniedError {
	t.Helper()
	var de *DeniedError
	if !errors.As(err, &de) || !IsDenied(err) {
		t.Fatalf("error %v: want a *DeniedError", err)
	}
	return de
}

// Loopback is refused by default: the tests' own servers must be opened.
func TestLoopbackDeniedByDefault(t *testing.T) {
	srv := newServer(t, nil)
	useOutbound(t, nil, nil)
	_, err := get(t, Transport(nil), context.Background(), srv.URL)
	de := denied(t, err)
	want := "protect: outbound to 127.0.0.1:" + srv.port + " denied: loopback; LAMBDARASP_EGRESS_INTERNAL opens it"
	if de.Error() != want || de.Rule != ruleEgressGuard || !strings.Contains(err.Error(), want) {
		t.Errorf("error %q (rule %d); want %q", de.Error(), de.Rule, want)
	}
	if srv.hits.Load() != 0 {
		t.Errorf("the server got %d requests", srv.hits.Load())
	}
	useOutbound(t, nil, nil, WithEgressInternal("127.0.0.1"))
	if status, err := get(t, Transport(nil), context.Background(), srv.URL); err != nil || status != 200 {
		t.Errorf("loopback opened: %d, %v", status, err)
	}
	if srv.hits.Load() != 1 {
		t.Errorf("the server got %d requests, want 1", srv.hits.Load())
	}
}

// Every way of writing the metadata address, or of reaching it through a
// name, is refused before anything is dialed: in detect mode, and with
// link-local and loopback opened, too.
func TestMetadataSpellings(t *testing.T) {
	srv := newServer(t, nil)
	dns := newDNS(t, map[string][]string{
		"metadata.test": {"169.254.169.254"},
		"mapped.test":   {"::ffff:169.254.169.254"},
		"v6.test":       {"fd00:ec2::254"},
		"task.test":     {"169.254.170.2"},
		"mixed.test":    {"127.0.0.1", "169.254.169.254"},
	})
	hosts := []struct{ host, reason, addr string }{
		{"169.254.169.254", "instance metadata", "169.254.169.254"},
		{"169.254.169.254.", "instance metadata", "169.254.169.254"},
		{"0xa9fea9fe", "instance metadata", "169.254.169.254"},
		{"2852039166", "instance metadata", "169.254.169.254"},
		{"025177524776", "instance metadata", "169.254.169.254"},
		{"0251.0376.0251.0376", "instance metadata", "169.254.169.254"},
		{"169.254.43518", "instance metadata", "169.254.169.254"},
		{"::ffff:169.254.169.254", "instance metadata", "169.254.169.254"},
		{"::ffff:a9fe:a9fe", "instance metadata", "169.254.169.254"},
		{"64:ff9b::a9fe:a9fe", "instance metadata", "169.254.169.254"},
		{"fd00:ec2::254", "instance metadata", "fd00:ec2::254"},
		{"169.254.170.2", "container metadata", "169.254.170.2"},
		{"metadata.test", "instance metadata", "169.254.169.254"},
		{"METADATA.test", "instance metadata", "169.254.169.254"},
		{"mapped.test", "instance metadata", "169.254.169.254"},
		{"v6.test", "instance metadata", "fd00:ec2::254"},
		{"task.test", "container metadata", "169.254.170.2"},
		{"mixed.test", "instance metadata", "169.254.169.254"},
	}
	for _, mode := range []Mode{Block, Detect} {
		var logs bytes.Buffer
		useOutbound(t, &logs, nil, WithEgressMode(mode), withResolver(dns), WithEgressInternal("127.0.0.0/8", "169.254.0.0/16"))
		base := &redirected{to: srv.Listener.Addr().String()}
		rt := Transport(base.transport())
		for _, h := range hosts {
			_, err := get(t, rt, context.Background(), "http://"+net.JoinHostPort(h.host, "80")+"/latest/meta-data/iam/security-credentials/?token=secret")
			de := denied(t, err)
			if de.Reason != h.reason || de.Addr.String() != h.addr || de.Rule != ruleEgressGuard {
				t.Errorf("%s, %s: %v (address %v); want %s at %s", mode, h.host, de, de.Addr, h.reason, h.addr)
			}
			if !strings.Contains(de.Error(), h.addr) || !strings.HasSuffix(de.Error(), "denied: "+h.reason) {
				t.Errorf("%s, %s: %q does not name the address and the reason", mode, h.host, de.Error())
			}
		}
		if d := base.dialed(); len(d) != 0 || srv.hits.Load() != 0 {
			t.Errorf("%s: dialed %v, %d requests served", mode, d, srv.hits.Load())
		}
		if n := strings.Count(logs.String(), `"msg":"lambdarasp outbound finding"`); n != len(hosts) || !strings.Contains(logs.String(), `"action":"block"`) {
			t.Errorf("%s: %d findings logged for %d calls, want each with action block", mode, n, len(hosts))
		}
		for _, secret := range []string{"token", "secret", "meta-data", "/latest"} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("%s: the logs carry %q from the URL:\n%s", mode, secret, logs.String())
			}
		}
	}
	if e := `protect: outbound to metadata.test:80 (169.254.169.254) denied: instance metadata`; !strings.Contains(fmt.Sprint(func() error {
		_, err := get(t, Transport(nil), context.Background(), "http://metadata.test/")
		return err
	}()), e) {
		t.Errorf("a name's error does not read %q", e)
	}
	if e := `protect: outbound to 169.254.169.254:80 denied: instance metadata`; !strings.Contains(fmt.Sprint(func() error {
		_, err := get(t, Transport(nil), context.Background(), "http://0xa9fea9fe/")
		return err
	}()), e) {
		t.Errorf("an address's error does not read %q", e)
	}
}

// Loopback in other spellings is loopback: refused by default, and once
// opened, the spelling reaches the server at 127.0.0.1.
func TestLoopbackSpellings(t *testing.T) {
	srv := newServer(t, nil)
	spellings := []string{"0x7f000001", "017700000001", "2130706433", "127.1", "::ffff:127.0.0.1", "::ffff:7f00:1"}
	useOutbound(t, nil, nil)
	for _, h := range spellings {
		_, err := get(t, Transport(nil), context.Background(), srv.url(h))
		if de := denied(t, err); de.Reason != "loopback" || de.Addr.String() != "127.0.0.1" {
			t.Errorf("%s: %v, want loopback at 127.0.0.1", h, de)
		}
	}
	useOutbound(t, nil, nil, WithEgressInternal("127.0.0.1"))
	for _, h := range spellings {
		if status, err := get(t, Transport(nil), context.Background(), srv.url(h)); err != nil || status != 200 {
			t.Errorf("%s with 127.0.0.1 opened: %d, %v", h, status, err)
		}
	}
	if int(srv.hits.Load()) != len(spellings) {
		t.Errorf("%d requests served, want %d", srv.hits.Load(), len(spellings))
	}
}

// A redirect is a new request: one to a refused address is refused.
func TestRedirectToDenied(t *testing.T) {
	final := newServer(t, nil)
	var to atomic.Value
	first := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, to.Load().(string), http.StatusFound)
	})
	useOutbound(t, nil, nil, WithEgressInternal("127.0.0.1"))
	for _, c := range []struct{ to, reason string }{
		{"http://169.254.169.254/latest/meta-data/", "instance metadata"},
		{"http://[::ffff:a9fe:a9fe]/latest/meta-data/", "instance metadata"},
		{final.url("127.0.0.2"), "loopback"}, // only 127.0.0.1 is opened
		{"http://10.0.0.5/admin", "private network"},
	} {
		to.Store(c.to)
		_, err := get(t, Transport(nil), context.Background(), first.URL)
		if de := denied(t, err); de.Reason != c.reason {
			t.Errorf("redirect to %s: %v, want %s", c.to, de, c.reason)
		}
	}
	to.Store(final.url("127.0.0.1"))
	if status, err := get(t, Transport(nil), context.Background(), first.URL); err != nil || status != 200 || final.hits.Load() != 1 {
		t.Errorf("redirect to an allowed address: %d, %v, %d served", status, err, final.hits.Load())
	}
}

// A name is checked by the addresses it resolves to, once, and those are
// what is dialed: a resolver that changes its answer between the check
// and the connection (DNS rebinding) cannot send the call elsewhere.
func TestNamesResolvingToDenied(t *testing.T) {
	srv := newServer(t, nil)
	dns := newDNS(t, map[string][]string{
		"db.test":      {"10.0.3.7"},
		"local.test":   {"127.0.0.1"},
		"both.test":    {"203.0.113.9", "127.0.0.1"},
		"public.test":  {"203.0.113.9"},
		"public6.test": {"2001:db8::9"},
	})
	dns.sequence("rebind.test", []string{"203.0.113.9"}, []string{"169.254.169.254"})
	useOutbound(t, nil, nil, withResolver(dns))
	base := &redirected{to: srv.Listener.Addr().String()}
	rt := Transport(base.transport())
	for _, c := range []struct{ host, reason string }{
		{"db.test", "private network"},
		{"local.test", "loopback"},
		{"both.test", "loopback"}, // one refused address refuses the name
	} {
		_, err := get(t, rt, context.Background(), "http://"+c.host+"/")
		if de := denied(t, err); de.Reason != c.reason || de.Host != c.host {
			t.Errorf("%s: %v, want %s", c.host, de, c.reason)
		}
	}
	if _, err := get(t, rt, context.Background(), "http://nowhere.test/"); errorClass(err) != "dns" {
		t.Errorf("unknown name: %v (%s), want a DNS error", err, errorClass(err))
	}
	if d := base.dialed(); len(d) != 0 {
		t.Fatalf("dialed %v for refused names", d)
	}
	for _, host := range []string{"public.test", "public6.test"} {
		if status, err := get(t, rt, context.Background(), "http://"+host+":8080/"); err != nil || status != 200 {
			t.Errorf("%s: %d, %v", host, status, err)
		}
	}
	if status, err := get(t, rt, context.Background(), "http://rebind.test/"); err != nil || status != 200 {
		t.Fatalf("rebind.test, first answer public: %d, %v", status, err)
	}
	_, err := get(t, rt, context.Background(), "http://rebind.test/")
	if de := denied(t, err); de.Reason != "instance metadata" {
		t.Errorf("rebind.test, second answer metadata: %v", de)
	}
	if got, want := base.dialed(), []string{"203.0.113.9:8080", "[2001:db8::9]:8080", "203.0.113.9:80"}; !slices.Equal(got, want) {
		t.Errorf("dialed %v, want %v: the addresses checked, by address", got, want)
	}
	if n := dns.lookups("rebind.test"); n != 2 {
		t.Errorf("rebind.test resolved %d times for 2 connections, want 2: once per dial", n)
	}
}

// A base that dials on its own (not an *http.Transport, or one with its
// own DialTLSContext for https) is never asked to reach a refused
// address: the name is resolved and checked before the request.
func TestBaseThatDialsItself(t *testing.T) {
	dns := newDNS(t, map[string][]string{"metadata.test": {"169.254.169.254"}, "db.test": {"10.0.3.7"}, "public.test": {"203.0.113.9"}})
	var logs bytes.Buffer
	useOutbound(t, &logs, nil, withResolver(dns))
	var reached atomic.Int32
	other := roundTripper(func(r *http.Request) (*http.Response, error) {
		reached.Add(1)
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	tlsOwn := &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
		reached.Add(1)
		return nil, errors.New("dialed")
	}}
	for _, rt := range []http.RoundTripper{Transport(other), Transport(tlsOwn)} {
		for _, c := range []struct{ host, reason string }{{"metadata.test", "instance metadata"}, {"db.test", "private network"}} {
			_, err := get(t, rt, context.Background(), "https://"+c.host+"/")
			if de := denied(t, err); de.Reason != c.reason {
				t.Errorf("%T, %s: %v, want %s", rt, c.host, de, c.reason)
			}
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the base was asked %d times to reach refused names", n)
	}
	if n := strings.Count(logs.String(), `"msg":"lambdarasp outbound finding"`); n != 4 {
		t.Errorf("%d findings logged for 4 refused calls", n)
	}
	if status, err := get(t, Transport(other), context.Background(), "https://public.test/"); err != nil || status != 200 || reached.Load() != 1 {
		t.Errorf("public name: %d, %v, base reached %d times", status, err, reached.Load())
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestAllowAndDenyLists(t *testing.T) {
	srv := newServer(t, nil)
	dns := newDNS(t, map[string][]string{
		"s3.eu-west-1.amazonaws.com":       {"203.0.113.10"},
		"dynamodb.eu-west-1.amazonaws.com": {"203.0.113.11"},
		"amazonaws.com":                    {"203.0.113.12"},
		"amazonaws.com.evil.test":          {"203.0.113.13"},
		"api.stripe.com":                   {"203.0.113.14"},
		"exfil.test":                       {"203.0.113.15"},
		"db.test":                          {"10.0.3.7"},
	})
	var logs bytes.Buffer
	useOutbound(t, &logs, nil, withResolver(dns),
		WithEgressAllow("*.amazonaws.com", "api.stripe.com", "198.51.100.0/24"),
		WithEgressDeny("dynamodb.eu-west-1.amazonaws.com"))
	base := &redirected{to: srv.Listener.Addr().String()}
	rt := Transport(base.transport())
	for _, c := range []struct{ host, reason string }{
		{"s3.eu-west-1.amazonaws.com", ""},
		{"api.stripe.com", ""},
		{"198.51.100.7", ""},
		{"dynamodb.eu-west-1.amazonaws.com", "in the egress deny-list"},
		{"amazonaws.com", "not in the egress allow-list"},
		{"amazonaws.com.evil.test", "not in the egress allow-list"},
		{"exfil.test", "not in the egress allow-list"},
		{"203.0.113.15", "not in the egress allow-list"},
		{"db.test", "private network"},
	} {
		status, err := get(t, rt, context.Background(), "https://"+c.host+"/")
		if c.reason == "" {
			// The stand-in server speaks HTTP, not TLS: the call fails after
			// it was let through and dialed (see the dials below).
			if IsDenied(err) {
				t.Errorf("%s: %d, %v; want it allowed", c.host, status, err)
			}
			continue
		}
		wantRule := ruleEgressList
		if c.reason == "private network" {
			wantRule = ruleEgressGuard
		}
		if de := denied(t, err); de.Reason != c.reason || de.Rule != wantRule {
			t.Errorf("%s: %v (rule %d), want %s (rule %d)", c.host, de, de.Rule, c.reason, wantRule)
		}
	}
	if got := base.dialed(); !slices.Equal(got, []string{"203.0.113.10:443", "203.0.113.14:443", "198.51.100.7:443"}) {
		t.Errorf("dialed %v: only the allowed destinations", got)
	}
	if !strings.Contains(logs.String(), `"rule":100993`) || !strings.Contains(logs.String(), `"reason":"not in the egress allow-list"`) {
		t.Errorf("list findings not logged:\n%s", logs.String())
	}
}

// Detect mode lets a call through and logs and reports what block mode
// would have refused.
func TestDetectMode(t *testing.T) {
	srv := newServer(t, nil)
	x := newExtension(t)
	for _, mode := range []Mode{Detect, Block} {
		var logs bytes.Buffer
		h := linked(t, x, callOut(func(ctx context.Context) {
			status, err := get(t, Transport(nil), ctx, srv.URL)
			if (mode == Detect) != (err == nil && status == 200) {
				t.Errorf("%s: %d, %v", mode, status, err)
			}
		}), &logs, WithEgressMode(mode))
		useOutbound(t, &logs, h.link, WithEgressMode(mode))
		if _, err := h.Invoke(ctxFor("r-"+string(mode)), []byte(s3Clean)); err != nil {
			t.Fatal(err)
		}
		r := x.next(t)
		wantAction := map[Mode]report.Action{Detect: report.Detect, Block: report.Block}[mode]
		if r.Action != wantAction || !slices.Contains(r.Rules, ruleEgressGuard) || len(r.Outbound) != 1 || r.Outbound[0].Denied != 1 {
			t.Errorf("%s: report %+v", mode, r)
		}
		if !strings.Contains(logs.String(), `"action":"`+string(mode)+`"`) || !strings.Contains(logs.String(), `"reason":"loopback"`) ||
			!strings.Contains(logs.String(), `"request_id":"r-`+string(mode)+`"`) {
			t.Errorf("%s: finding not logged:\n%s", mode, logs.String())
		}
	}
	if srv.hits.Load() != 1 {
		t.Errorf("%d requests served, want the detect mode's 1", srv.hits.Load())
	}
}

// In detect mode a name that resolves to an internal address is found at
// dial time, and every call over that connection is reported, not only
// the one that dialed it.
func TestDetectModeAtDial(t *testing.T) {
	srv := newServer(t, nil)
	dns := newDNS(t, map[string][]string{"local.test": {"127.0.0.1"}})
	var logs bytes.Buffer
	useOutbound(t, &logs, nil, WithEgressMode(Detect), withResolver(dns))
	rt := Transport(nil)
	for range 3 {
		if status, err := get(t, rt, context.Background(), "http://local.test:"+srv.port+"/"); err != nil || status != 200 {
			t.Fatalf("%d, %v", status, err)
		}
	}
	if dns.lookups("local.test") != 1 {
		t.Errorf("%d lookups for 3 calls over one kept-alive connection", dns.lookups("local.test"))
	}
	c := takeCarry()
	if len(c.dests) != 1 || c.dests[0].Calls != 3 || c.dests[0].Denied != 3 || c.dests[0].Addr != "127.0.0.1" || !c.detected || c.refused {
		t.Errorf("recorded %+v", c)
	}
	if n := strings.Count(logs.String(), `"action":"detect"`); n != 3 || !strings.Contains(logs.String(), `"host":"local.test"`) {
		t.Errorf("%d detect lines, want 3:\n%s", n, logs.String())
	}
}

// callOut is a handler that runs f with its context.
type callOut func(ctx context.Context)

func (f callOut) Invoke(ctx context.Context, _ []byte) ([]byte, error) {
	f(ctx)
	return []byte(`{}`), nil
}

// What a report says about an invocation's calls.
func TestReportedCalls(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/missing" {
			w.WriteHeader(404)
		}
		_, _ = w.Write(bytes.Repeat([]byte("x"), 1000+len(b)))
	})
	dns := newDNS(t, map[string][]string{"api.test": {"127.0.0.1"}})
	x := newExtension(t)
	h := linked(t, x, callOut(func(ctx context.Context) {
		c := &http.Client{Transport: Transport(nil)}
		resp, err := c.Post("http://api.test:"+srv.port+"/orders", "application/json", strings.NewReader(`{"sku":"BK-1"}`))
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// A body of unknown length, and a 404.
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL+"/missing", io.MultiReader(strings.NewReader("abc"), strings.NewReader("de")))
		if resp, err = c.Do(req); err != nil {
			t.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if _, err := get(t, c.Transport, ctx, "http://169.254.169.254/latest/api/token"); !IsDenied(err) {
			t.Errorf("metadata: %v", err)
		}
	}), nil)
	useOutbound(t, nil, h.link, withResolver(dns), WithEgressInternal("127.0.0.1"))
	if _, err := h.Invoke(ctxFor("r1"), []byte(s3Clean)); err != nil {
		t.Fatal(err)
	}
	r := x.next(t)
	if r.RequestID != "r1" || r.Action != report.Block || !slices.Equal(r.Rules, []int{ruleEgressGuard}) {
		t.Errorf("report %+v: want action block and rule %d for the refused call", r, ruleEgressGuard)
	}
	if len(r.Outbound) != 3 || len(r.Calls) != 3 {
		t.Fatalf("%d destinations, %d calls: %+v", len(r.Outbound), len(r.Calls), r)
	}
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	want := []report.Outbound{
		{Host: "api.test", Port: port, Calls: 1, Scheme: "http", Addr: "127.0.0.1", BytesSent: 14, BytesReceived: 1014},
		{Host: "127.0.0.1", Port: port, Calls: 1, Scheme: "http", Addr: "127.0.0.1", BytesSent: 5, BytesReceived: 1005},
		{Host: "169.254.169.254", Port: 80, Calls: 1, Errors: 1, Denied: 1, Scheme: "http", Addr: "169.254.169.254"},
	}
	for i := range want {
		got := r.Outbound[i]
		if got.DurationMicros <= 0 && i < 2 {
			t.Errorf("destination %d: no duration", i)
		}
		got.DurationMicros = 0
		if got != want[i] {
			t.Errorf("destination %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}
	wantCalls := []report.Call{
		{Dest: 0, Method: "POST", Status: 200, BytesSent: 14, BytesReceived: 1014},
		{Dest: 1, Method: "PUT", Status: 404, BytesSent: 5, BytesReceived: 1005},
		{Dest: 2, Method: "GET", Error: "denied"},
	}
	for i := range wantCalls {
		got := r.Calls[i]
		got.DurationMicros = 0
		if got != wantCalls[i] {
			t.Errorf("call %d:\n got %+v\nwant %+v", i, got, wantCalls[i])
		}
	}
}

// A call belongs to the invocation whose context it carries, in any
// goroutine; without one, to the one in flight; with several in flight
// and no context, to none (the next report carries it, marked so), and
// so does a call made after its invocation reported.
func TestAttribution(t *testing.T) {
	srv := newServer(t, nil)
	x := newExtension(t)
	late := make(chan struct{})
	lateDone := make(chan struct{})
	var lateCtx context.Context
	h := linked(t, x, callOut(func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, c := range []context.Context{ctx, context.Background()} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := get(t, Transport(nil), c, srv.URL+"/in-goroutine"); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		lateCtx = ctx
	}), nil)
	useOutbound(t, nil, h.link, WithEgressInternal("127.0.0.1"))
	go func() {
		<-late
		_, _ = get(t, Transport(nil), lateCtx, srv.URL+"/late") // its invocation has reported
		close(lateDone)
	}()
	if _, err := h.Invoke(ctxFor("r1"), []byte(s3Clean)); err != nil {
		t.Fatal(err)
	}
	r := x.next(t)
	if len(r.Calls) != 2 || r.Calls[0].Phase != report.Invoked || r.Calls[1].Phase != report.Invoked || r.Outbound[0].Calls != 2 {
		t.Errorf("r1: %+v; want both goroutines' calls, attributed", r)
	}
	close(late)
	<-lateDone

	// Two invocations in flight at once: each has its own calls; a call
	// with neither's context belongs to neither.
	started := make(chan struct{}, 2)
	release := make(chan struct{})
	both := linked(t, x, callOut(func(ctx context.Context) {
		started <- struct{}{}
		<-release
		if _, err := get(t, Transport(nil), ctx, srv.URL+"/own"); err != nil {
			t.Error(err)
		}
	}), nil)
	var wg sync.WaitGroup
	for _, id := range []string{"r2", "r3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = both.Invoke(ctxFor(id), []byte(s3Clean))
		}()
	}
	<-started
	<-started
	if _, err := get(t, Transport(nil), context.Background(), srv.URL+"/whose"); err != nil {
		t.Fatal(err)
	}
	close(release)
	wg.Wait()
	byID := map[string]report.Report{}
	for range 2 {
		r := x.next(t)
		byID[r.RequestID] = r
	}
	var unattributed int
	for _, id := range []string{"r2", "r3"} {
		r := byID[id]
		own := 0
		for _, c := range r.Calls {
			switch c.Phase {
			case report.Invoked:
				own++
			case report.Unattributed:
				unattributed++
			}
		}
		if own != 1 {
			t.Errorf("%s: %d own calls, want 1: %+v", id, own, r.Calls)
		}
	}
	// The late call of r1 and the call made while both were in flight.
	if unattributed != 2 {
		t.Errorf("%d unattributed calls carried by r2 and r3, want 2", unattributed)
	}
}

// Calls made during init, before any invocation, go with the first
// report, marked init.
func TestInitCalls(t *testing.T) {
	srv := newServer(t, nil)
	x := newExtension(t)
	h := linked(t, x, callOut(func(context.Context) {}), nil)
	useOutbound(t, nil, h.link, WithEgressInternal("127.0.0.1"))
	was := outbound.flight.started.Swap(false)
	defer outbound.flight.started.Store(was)

	if status, err := get(t, Client().Transport, context.Background(), srv.URL+"/config"); err != nil || status != 200 {
		t.Fatal(status, err)
	}
	conn, err := DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if _, err := h.Invoke(ctxFor("first"), []byte(s3Clean)); err != nil {
		t.Fatal(err)
	}
	r := x.next(t)
	// One destination (host and port), an HTTP call and a connection.
	if !r.ColdStart || len(r.Calls) != 2 || r.Calls[0].Phase != report.Init || r.Calls[1].Phase != report.Init ||
		r.Calls[0].Method != "GET" || r.Calls[0].Status != 200 || r.Calls[1].Method != "" || r.Calls[1].Status != 0 || r.Outbound[0].Calls != 2 {
		t.Errorf("first report: %+v; want the two init calls", r)
	}
	if _, err := h.Invoke(ctxFor("second"), []byte(s3Clean)); err != nil {
		t.Fatal(err)
	}
	if r := x.next(t); len(r.Calls) != 0 {
		t.Errorf("second report: %+v; the init calls again", r)
	}
}

// The extension's deny_destination decisions are enforced from the next
// invocation on, in detect mode too, and lifted the same way.
func TestDeniedDestinationDecision(t *testing.T) {
	srv := newServer(t, nil)
	x := newExtension(t)
	var status int
	var callErr error
	h := linked(t, x, callOut(func(ctx context.Context) { status, callErr = get(t, Transport(nil), ctx, srv.URL) }), nil)
	useOutbound(t, nil, h.link, WithEgressInternal("127.0.0.1"), WithEgressMode(Detect))
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	until := time.Now().Add(time.Hour)
	x.publish(t, decision.Decisions{DeniedDestinations: []decision.Destination{{Host: "127.0.0.1", Port: port, Until: until, Reason: "egress_new_destination"}}})
	if _, err := h.Invoke(ctxFor("r1"), []byte(s3Clean)); err != nil {
		t.Fatal(err)
	}
	de := denied(t, callErr)
	want := fmt.Sprintf("protect: outbound to 127.0.0.1:%d denied: decision of the lambdarasp extension (egress_new_destination, until %s)", port, until.UTC().Format(time.RFC3339))
	if de.Error() != want || de.Rule != ruleEgressDecision {
		t.Errorf("error %q, rule %d; want %q", de.Error(), de.Rule, want)
	}
	if r := x.next(t); r.Action != report.Block || !slices.Contains(r.Rules, ruleEgressDecision) || r.Calls[0].Error != "denied" {
		t.Errorf("report %+v", r)
	}
	x.publish(t, decision.Decisions{})
	if _, err := h.Invoke(ctxFor("r2"), []byte(s3Clean)); err != nil || callErr != nil || status != 200 {
		t.Errorf("after the decision is lifted: %d, %v", status, callErr)
	}
	x.next(t)
}

// This environment's Runtime API is refused even with loopback opened: a
// function that called it could take other invocations' events.
func TestRuntimeAPIDenied(t *testing.T) {
	api := newServer(t, nil)
	useOutbound(t, nil, nil, WithEgressInternal("127.0.0.0/8"), withRuntimeAPI(api.Listener.Addr().String()), WithEgressMode(Detect))
	_, err := get(t, Transport(nil), context.Background(), api.URL+"/2018-06-01/runtime/invocation/next")
	if de := denied(t, err); de.Reason != "Lambda Runtime API" {
		t.Errorf("%v, want Lambda Runtime API", de)
	}
	if _, err := DialContext(context.Background(), "tcp", api.Listener.Addr().String()); !IsDenied(err) {
		t.Errorf("DialContext to the Runtime API: %v", err)
	}
	if api.hits.Load() != 0 {
		t.Errorf("the Runtime API got %d requests", api.hits.Load())
	}
}

func TestDialContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("ok"))
			c.Close()
		}
	}()
	dns := newDNS(t, map[string][]string{"db.test": {"127.0.0.1"}, "meta.test": {"169.254.169.254"}, "two.test": {"127.0.0.2", "127.0.0.1"}})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	useOutbound(t, nil, nil, withResolver(dns))
	_, err = DialContext(context.Background(), "tcp", "db.test:"+port)
	if de := denied(t, err); de.Reason != "loopback" || de.Addr.String() != "127.0.0.1" {
		t.Errorf("%v", de)
	}
	var logs bytes.Buffer
	useOutbound(t, &logs, nil, withResolver(dns), WithEgressInternal("127.0.0.1"))
	conn, err := DialContext(context.Background(), "tcp", "db.test:"+port)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(conn)
	conn.Close()
	if string(b) != "ok" {
		t.Errorf("read %q", b)
	}
	for _, addr := range []string{"meta.test:80", "0xa9fea9fe:80", "[::ffff:169.254.169.254]:80"} {
		if _, err := DialContext(context.Background(), "tcp", addr); !IsDenied(err) {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if n := strings.Count(logs.String(), `"msg":"lambdarasp outbound finding"`); n != 3 {
		t.Errorf("%d findings logged for 3 refused connections:\n%s", n, logs.String())
	}
	// A Unix socket is not outbound network traffic: dialed unchecked.
	if _, err := DialContext(context.Background(), "unix", "/nonexistent/socket"); err == nil || IsDenied(err) {
		t.Errorf("unix socket: %v", err)
	}
	// Recorded (outside an invocation: for the next report): the
	// connection, then the three refusals.
	carried := takeCarry()
	if len(carried.calls) != 4 || carried.calls[0].Error != "" || carried.calls[1].Error != "denied" ||
		carried.dests[0] != (report.Outbound{Host: "db.test", Port: mustAtoi(t, port), Calls: 1, Scheme: "tcp", Addr: "127.0.0.1", DurationMicros: carried.calls[0].DurationMicros}) {
		t.Errorf("recorded %+v", carried)
	}

	// The addresses of a name are dialed in turn: nobody listens on the
	// first.
	useOutbound(t, nil, nil, withResolver(dns), WithEgressInternal("127.0.0.0/8"))
	if conn, err = DialContext(context.Background(), "tcp", "two.test:"+port); err != nil {
		t.Fatalf("two.test, nobody on 127.0.0.2: %v", err)
	}
	conn.Close()
}

// Mode off checks and records nothing.
func TestEgressOff(t *testing.T) {
	srv := newServer(t, nil)
	useOutbound(t, nil, nil, WithEgressMode(Off))
	if status, err := get(t, Transport(nil), context.Background(), srv.URL); err != nil || status != 200 {
		t.Errorf("%d, %v", status, err)
	}
	if c := takeCarry(); len(c.calls) != 0 {
		t.Errorf("recorded %+v", c)
	}
}

func TestEgressSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{envEgressMode: "audit"}, envEgressMode},
		{map[string]string{envEgressAllow: "api.example.com, bad host"}, envEgressAllow},
		{map[string]string{envEgressDeny: "10.0.0.0/40"}, envEgressDeny},
		{map[string]string{envEgressInternal: "db.internal"}, envEgressInternal},
		{map[string]string{envEgressInternal: "0x7f000001"}, "dotted decimal"},
	} {
		if _, err := newConfig(env(c.env), nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v; want an error naming %s", c.env, err, c.want)
		}
	}
	cfg, err := newConfig(env(nil), []Option{WithMode(Detect)})
	if err != nil || cfg.egressMode != Detect {
		t.Errorf("egress mode %q, %v: want the inbound mode", cfg.egressMode, err)
	}
	cfg, err = newConfig(env(map[string]string{envEgressMode: "Block", envEgressAllow: "*.amazonaws.com,api.stripe.com", envEgressInternal: "10.0.0.0/16"}),
		[]Option{WithMode(Detect), WithEgressAllow("other.example"), WithEgressInternal("127.0.0.1")})
	if err != nil || cfg.egressMode != Block || !slices.Equal(cfg.egressAllow, []string{"*.amazonaws.com", "api.stripe.com"}) ||
		!slices.Equal(cfg.egressInternal, []string{"10.0.0.0/16"}) {
		t.Errorf("variables over options: %q %v %v, %v", cfg.egressMode, cfg.egressAllow, cfg.egressInternal, err)
	}
}

// The error names the rule and the way to open what can be opened, and
// nothing of the URL past the host.
func TestDeniedErrorText(t *testing.T) {
	srv := newServer(t, nil)
	dns := newDNS(t, map[string][]string{"db.test": {"10.0.3.7"}})
	useOutbound(t, nil, nil, withResolver(dns))
	_, err := get(t, Transport(nil), context.Background(), "http://db.test:5432/x?password=hunter2")
	if got, want := denied(t, err).Error(), "protect: outbound to db.test:5432 (10.0.3.7) denied: private network; LAMBDARASP_EGRESS_INTERNAL opens it"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	_, err = get(t, Transport(nil), context.Background(), "http://[::1]:"+srv.port+"/")
	if got, want := denied(t, err).Error(), "protect: outbound to [::1]:"+srv.port+" denied: loopback; LAMBDARASP_EGRESS_INTERNAL opens it"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The README's recipe for code that uses http.DefaultTransport (http.Get,
// http.DefaultClient): replace it at init.
func TestDefaultTransportRecipe(t *testing.T) {
	srv := newServer(t, nil)
	useOutbound(t, nil, nil, WithEgressInternal("127.0.0.1"))
	saved := http.DefaultTransport
	defer func() { http.DefaultTransport = saved }()
	http.DefaultTransport = Transport(http.DefaultTransport)
	if Transport(nil) != http.DefaultTransport {
		t.Error("Transport(nil) wraps the wrapped DefaultTransport again")
	}
	if _, err := http.Get("http://169.254.169.254/latest/meta-data/"); !IsDenied(err) {
		t.Errorf("http.Get to the metadata: %v", err)
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := takeCarry(); len(c.calls) != 2 || c.calls[1].Status != 200 {
		t.Errorf("recorded %+v", c)
	}
}
