package waf

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/source"
	"github.com/lambdarasp/lambdarasp/rules"
)

var (
	engineOnce [2]sync.Once
	engines    [2]*Engine
	engineErrs [2]error
)

// testEngine is the fast engine at paranoia level 1, built once.
func testEngine(t testing.TB) *Engine { return sharedEngine(t, false) }

// refEngine is the reference engine with testEngine's settings.
func refEngine(t testing.TB) *Engine { return sharedEngine(t, true) }

func sharedEngine(t testing.TB, reference bool) *Engine {
	t.Helper()
	k := 0
	if reference {
		k = 1
	}
	engineOnce[k].Do(func() {
		engines[k], engineErrs[k] = New(rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 10000, RuntimeAPI: "127.0.0.1:9001"}, reference)
	})
	if engineErrs[k] != nil {
		t.Fatal(engineErrs[k])
	}
	return engines[k]
}

// newEngines builds the fast and the reference engine for s.
func newEngines(t *testing.T, s rules.Settings) (fast, ref *Engine) {
	t.Helper()
	fast, err := New(s, false)
	if err != nil {
		t.Fatal(err)
	}
	if ref, err = New(s, true); err != nil {
		t.Fatal(err)
	}
	return fast, ref
}

func hdrs(kv ...string) []source.Header {
	var h []source.Header
	for i := 0; i < len(kv); i += 2 {
		h = append(h, source.Header{Name: kv[i], Value: kv[i+1]})
	}
	return h
}

var requestCases = []struct {
	name    string
	req     source.Request
	blocked bool
	rule    int
	path    string
}{
	{"clean get", source.Request{Method: "GET", URI: "/items?id=42&q=hello", Protocol: "HTTP/1.1",
		Headers: hdrs("Host", "api.example.com", "User-Agent", "curl/8.0", "Accept", "*/*")}, false, 0, ""},
	{"sqli in query", source.Request{Method: "GET", URI: "/items?id=1%27%20OR%201%3D1--", Protocol: "HTTP/1.1",
		Headers: hdrs("Host", "api.example.com", "User-Agent", "curl/8.0", "Accept", "*/*")}, true, 942100, "query.id"},
	{"xss in json body", source.Request{Method: "POST", URI: "/c", Protocol: "HTTP/1.1",
		Headers: hdrs("Host", "a", "User-Agent", "curl/8.0", "Accept", "*/*", "Content-Type", "application/json"),
		Body:    []byte(`{"user":{"bio":"<script>alert(1)</script>"}}`),
		JSON:    true, Fields: []source.Field{{Name: "body.user.bio", Value: "<script>alert(1)</script>"}}}, true, 941100, "body.user.bio"},
	{"json body sent as text/plain", source.Request{Method: "POST", URI: "/c", Protocol: "HTTP/1.1",
		Headers: hdrs("Host", "a", "User-Agent", "curl/8.0", "Accept", "*/*", "Content-Type", "text/plain"),
		Body:    []byte(`{"items":[{"cmd":"; cat /etc/passwd"}]}`),
		JSON:    true, Fields: []source.Field{{Name: "body.items[0].cmd", Value: "; cat /etc/passwd"}}}, true, 930120, "body.items[0].cmd"},
	{"nosql key in json body", source.Request{Method: "POST", URI: "/login", Protocol: "HTTP/1.1",
		Headers: hdrs("Host", "a", "User-Agent", "curl/8.0", "Accept", "*/*", "Content-Type", "application/json"),
		Body:    []byte(`{"user":"admin","password":{"$ne":null}}`),
		JSON:    true, Fields: []source.Field{{Name: "body.user", Value: "admin"}, {Name: "body.password.$ne", Value: "null"}}}, true, 100100, "body.password.$ne"},
	{"runtime api ssrf", source.Request{Method: "GET", URI: "/fetch?url=http%3A%2F%2F127.0.0.1%3A9001%2Fx", Protocol: "HTTP/1.1",
		Headers: hdrs("Host", "a", "User-Agent", "curl/8.0", "Accept", "*/*")}, true, rules.RuntimeAPIRule, "query.url"},
}

func TestRequest(t *testing.T) {
	e := testEngine(t)
	for _, c := range requestCases {
		t.Run(c.name, func(t *testing.T) {
			checkResult(t, e.Request(&c.req), c.blocked, c.rule, c.path)
		})
	}
}

var recordCases = []struct {
	name    string
	rec     source.Record
	blocked bool
	rule    int
	path    string
}{
	{"clean message", source.Record{Fields: []source.Field{{Name: "body.user.name", Value: "O'Reilly"}, {Name: "body.note", Value: "please select a union rep"}}}, false, 0, ""},
	{"sqli", source.Record{Fields: []source.Field{{Name: "body.id", Value: "1' or '1'='1"}}}, true, 942100, "body.id"},
	{"s3 key shell", source.Record{Fields: []source.Field{{Name: "s3.object.key", Value: "img;curl x|sh.png"}}}, true, 100160, "s3.object.key"},
	{"proto pollution key", source.Record{Fields: []source.Field{{Name: "body.__proto__.admin", Value: "true"}}}, true, 100130, "body.__proto__.admin"},
	{"json.net type", source.Record{Fields: []source.Field{{Name: "body.obj.$type", Value: "System.Windows.Data.ObjectDataProvider, PresentationFramework"}}}, true, 100121, "body.obj.$type"},
	{"json.net type, key in capitals", source.Record{Fields: []source.Field{{Name: "body.obj.$TYPE", Value: "System.Windows.Data.ObjectDataProvider, PresentationFramework"}}}, true, 100121, "body.obj.$TYPE"},
	{"java class in a key", source.Record{Fields: []source.Field{{Name: `body.java\.lang\.Runtime`, Value: "x"}}}, true, 944130, `body.java\.lang\.Runtime`},
	{"json keys that spell dotfiles", source.Record{Fields: []source.Field{{Name: "dynamodb.NewImage.profile.name", Value: "Ada"}, {Name: "body.history[0].credentials", Value: "x"}}}, false, 0, ""},
	{"metadata ssrf decimal", source.Record{Fields: []source.Field{{Name: "body.url", Value: "http://2852039166/latest/meta-data/"}}}, true, 100110, "body.url"},
	{"depth bound", source.Record{Violations: []source.Violation{{Bound: source.BoundDepth, Path: "body.a"}}}, true, RuleDepth, "body.a"},
}

func TestRecord(t *testing.T) {
	e := testEngine(t)
	for _, c := range recordCases {
		t.Run(c.name, func(t *testing.T) {
			checkResult(t, e.NewBatch().Record(&c.rec), c.blocked, c.rule, c.path)
		})
	}
}

// checkResult asserts the verdict and, when rule is set, that rule matched
// the value at path.
func checkResult(t *testing.T, res Result, blocked bool, rule int, path string) {
	t.Helper()
	if res.Blocked != blocked {
		t.Fatalf("blocked = %v, want %v; result %+v", res.Blocked, blocked, res)
	}
	if rule == 0 {
		return
	}
	for _, m := range res.Matches {
		if m.Rule == rule && m.Path == path {
			return
		}
	}
	t.Fatalf("no match for rule %d at %q in %+v", rule, path, res.Matches)
}

// The fast path must actually narrow the rules: a clean record leaves
// (almost) no gate rule standing, an attack leaves the rule that catches
// it. The differential test in package protect proves the result is the
// same as running every rule; this one fails if the gate stops pruning.
func TestGateNarrowsRules(t *testing.T) {
	e := testEngine(t)
	ids := func(cand []int) map[int]bool {
		m := map[int]bool{}
		for _, c := range cand {
			m[e.record.gate[c].r.id] = true
		}
		return m
	}
	clean := ids(e.NewBatch().gate(&source.Record{Fields: []source.Field{{Name: "body.name", Value: "Tim O'Reilly"}, {Name: "body.qty", Value: "2"}}}))
	// 941010 matches the empty REQUEST_FILENAME of every record (a ctl
	// that narrows XSS targets); nothing else may remain.
	delete(clean, 941010)
	if len(clean) > 0 {
		t.Errorf("clean record leaves gate rules %v standing, want none besides 941010", clean)
	}
	attack := ids(e.NewBatch().gate(&source.Record{Fields: []source.Field{{Name: "body.q", Value: "1' UNION SELECT password FROM users--"}}}))
	if !attack[942100] {
		t.Errorf("SQL injection record: gate rules %v, want 942100 (libinjection) among them", attack)
	}
	if n := len(e.record.gate); len(attack) > n/2 {
		t.Errorf("SQL injection record leaves %d of %d gate rules: the gate is not pruning", len(attack), n)
	}
	// The rules whose operator reads a static TX value (911100's allowed
	// methods, 920430's allowed versions) decide a clean request in the
	// gate only if its transaction has those values (plan.gateStatic).
	req := requestCases[0].req
	for _, c := range e.requestGate(&req) {
		if id := e.http.gate[c].r.id; id == 911100 || id == 920430 {
			t.Errorf("clean GET leaves %d standing: the gate lacks the TX values its macros read", id)
		}
	}
}

// A clean request's remaining candidates (941010's target narrowing,
// 920539's skip, the 920420/920450 policy chains) are settled without
// Coraza; an attack's are not, nor a content type outside the policy
// (only the probe of 920420 can tell the two content types apart).
func TestCleanRequestSettled(t *testing.T) {
	e := testEngine(t)
	settled := func(r *source.Request) bool {
		cand := e.requestGate(r)
		return len(e.http.run(cand, e.prober(r, cand))) == 0
	}
	if c := requestCases[0]; !settled(&c.req) {
		t.Errorf("clean request %q not settled: candidates %v", c.name, e.requestGate(&c.req))
	}
	if c := requestCases[1]; settled(&c.req) {
		t.Errorf("attack %q settled without Coraza", c.name)
	}
	post := source.Request{Method: "POST", URI: "/orders", Protocol: "HTTP/1.1",
		Headers: hdrs("Host", "api.example.com", "User-Agent", "curl/8.0", "Accept", "*/*", "Content-Type", "application/json"),
		Body:    []byte(`{"qty":2}`), JSON: true, Fields: []source.Field{{Name: "body.qty", Value: "2"}}}
	clean := post.Headers
	outside := hdrs("Host", "api.example.com", "User-Agent", "curl/8.0", "Accept", "*/*", "Content-Type", "text/plain")
	restricted := hdrs("Host", "api.example.com", "User-Agent", "curl/8.0", "Accept", "*/*", "Content-Type", "application/json",
		"Content-Encoding", "gzip")
	// Twice each, interleaved: the second answer comes from the probe's
	// memo (probeMemo), which must tell the header sets apart.
	for range 2 {
		post.Headers = clean
		if !settled(&post) {
			t.Errorf("clean JSON POST not settled: candidates %v", e.requestGate(&post))
		}
		post.Headers = outside
		if settled(&post) {
			t.Error("a content type outside the policy was settled: the 920420 probe did not run")
		}
		post.Headers = restricted
		if settled(&post) {
			t.Error("a restricted header (920450) was settled")
		}
	}
	// The memo is bounded: past maxProbeAnswers distinct header sets it
	// starts again, and still answers right.
	for i := range maxProbeAnswers + 10 {
		post.Headers = hdrs("Content-Type", "application/json", "X-Id-"+strconv.Itoa(i), "1")
		if !settled(&post) {
			t.Fatalf("clean POST %d not settled", i)
		}
	}
	for k, a := range e.http.memo.answers {
		if len(a) > maxProbeAnswers {
			t.Errorf("probe memo %d holds %d answers, more than %d", k, len(a), maxProbeAnswers)
		}
	}
	post.Headers = outside
	if settled(&post) {
		t.Error("after the memo filled up, a content type outside the policy was settled")
	}
}

// Header sets that differ only in how their strings split must not share a
// probe memo key.
func TestProbeKeyUnambiguous(t *testing.T) {
	e := testEngine(t)
	for _, gi := range e.http.probed {
		r := e.http.gate[gi].r
		a := probeKey(nil, r, hdrs("Content-Type", "ab", "X", "c"))
		b := probeKey(nil, r, hdrs("Content-Type", "a", "bX", "c"))
		c := probeKey(nil, r, hdrs("Content-Typ", "e", "X", "c"))
		if string(a) == string(b) || string(a) == string(c) {
			t.Errorf("rule %d: different headers, same probe key %q", r.id, a)
		}
	}
}

// A batch reuses what the gate learnt about a string in earlier records:
// a repeated attack is blocked every time, with the same rules, and clean
// records around it stay clean.
func TestBatchSharesAnswers(t *testing.T) {
	e := testEngine(t)
	rec := func(v string) *source.Record {
		return &source.Record{Fields: []source.Field{{Name: "body.q", Value: v}, {Name: "body.name", Value: "Tim O'Reilly"}}}
	}
	b := e.NewBatch()
	var got []Result
	for _, v := range []string{"hello", "1' UNION SELECT password FROM users--", "hello", "1' UNION SELECT password FROM users--", "; cat /etc/passwd"} {
		got = append(got, b.Record(rec(v)))
	}
	for i, want := range []bool{false, true, false, true, true} {
		if got[i].Blocked != want {
			t.Errorf("record %d: blocked=%v, want %v (%+v)", i, got[i].Blocked, want, got[i].Matches)
		}
	}
	alone := e.NewBatch().Record(rec("1' UNION SELECT password FROM users--"))
	if fmt.Sprint(got[3].Matches) != fmt.Sprint(alone.Matches) || fmt.Sprint(got[1].Matches) != fmt.Sprint(alone.Matches) {
		t.Errorf("repeated attack in a batch: %+v and %+v, alone: %+v", got[1].Matches, got[3].Matches, alone.Matches)
	}
}

// Rule 100110 catches the metadata addresses in every spelling inet_aton
// accepts (what curl and libc dial), and not their neighbours.
func TestMetadataSpellings(t *testing.T) {
	e := testEngine(t)
	hits := func(v string) bool {
		res := e.NewBatch().Record(&source.Record{Fields: []source.Field{{Name: "body.url", Value: "http://" + v + "/latest/meta-data/"}}})
		for _, m := range res.Matches {
			if m.Rule == 100110 {
				return true
			}
		}
		return false
	}
	for _, v := range []string{
		"169.254.169.254", "0251.0376.0251.0376", "0xa9.0xfe.0xa9.0xfe", "0xA9.254.0251.0xFE", "00251.0x00fe.169.254",
		"169.254.43518", "169.254.0124776", "169.254.0xa9fe", "0xa9.0376.43518",
		"169.16689662", "169.077524776", "0251.0xfea9fe",
		"2852039166", "025177524776", "0xa9fea9fe", "0x00A9FEA9FE",
		"169.254.170.2", "0xa9.0xfe.0xaa.0x2", "169.254.43522", "169.16689666", "2852039170", "0xa9feaa02",
		"[::ffff:a9fe:a9fe]", "[::ffff:169.254.169.254]", "[fd00:ec2::254]", "[0:0:0:0:0:ffff:a9fe:a9fe]",
		"[0000:0000:0000:0000:0000:ffff:169.254.169.254]", "[::ffff:169.254.170.2]", "[::ffff:a9fe:aa02]",
		// The EKS Pod Identity agent, 169.254.170.23, in every inet_aton spelling.
		"169.254.170.23", "0251.0376.0252.027", "0xa9.0xfe.0xaa.0x17", "0xA9.254.0252.0x017", "169.254.43543", "169.254.0125027",
		"169.254.0xaa17", "169.16689687", "169.077525027", "0251.0xfeaa17", "2852039191", "025177525027", "0xa9feaa17", "0x00A9FEAA17",
		"[::ffff:169.254.170.23]", "[::ffff:a9fe:aa17]", "[0:0:0:0:0:ffff:a9fe:aa17]", "[fd00:ec2::23]",
	} {
		if !hits(v) {
			t.Errorf("%s: not caught by 100110", v)
		}
	}
	for _, v := range []string{"169.254.169.25", "169.254.170.20", "169.254.170.230", "169.254.170.023", "169.254.435435", "2852039192", "0xa9feaa170", "169.254.435", "28520391661", "12852039166", "169.254.1.1"} {
		if hits(v) {
			t.Errorf("%s: caught by 100110, but it is not a metadata address", v)
		}
	}
}

// Long values take their own paths (RE2 for long ASCII values, the long
// forms of a value forgotten once it is evaluated and made again for the
// next selection that reads it); the fast path still reports exactly what
// the reference engine does, with the same value in two fields, the query
// and two headers (read by different rules), clean and with attacks at
// either end.
func TestLongValuesMatchReference(t *testing.T) {
	ref, fast := refEngine(t), testEngine(t)
	filler := strings.Repeat("order please Tim O'Reilly gift+wrap 1005 Gravenstein a-b shop ", 120) // 7 KB
	attacks := []string{"", "<script>alert(1)</script>", "1' UNION SELECT password FROM users--", ";cat /etc/passwd", "${jndi:ldap://x/a}", "x\r\nSet-Cookie: a=b"}
	for _, a := range attacks {
		for _, v := range []string{filler + a, a + filler, "%2B" + filler + a} {
			req := source.Request{Method: "POST", URI: "/c?q=" + url.QueryEscape(v), Protocol: "HTTP/1.1",
				Headers: hdrs("Host", "a", "User-Agent", v, "X-Note", v, "Accept", "*/*", "Content-Type", "application/json"),
				JSON:    true, Body: []byte(`{}`),
				Fields: []source.Field{{Name: "body.a", Value: v}, {Name: "body.b", Value: v}}}
			want, got := ref.Request(&req), fast.Request(&req)
			if fmt.Sprint(rulePaths(want)) != fmt.Sprint(rulePaths(got)) || want.Blocked != got.Blocked {
				t.Fatalf("attack %q: reference %v %v, fast %v %v", a, want.Blocked, rulePaths(want), got.Blocked, rulePaths(got))
			}
			if a != "" && !got.Blocked {
				t.Fatalf("attack %q in a long value not blocked", a)
			}
		}
	}
}

func rulePaths(r Result) []string {
	var out []string
	for _, m := range r.Matches {
		out = append(out, fmt.Sprint(m.Rule, " ", m.Path))
	}
	slices.Sort(out)
	return out
}

// The answers a plan keeps across events (warm.go) change nothing: every
// request and record gives the same result on its first inspection, when
// it is seen again (its strings kept) and on an engine that keeps nothing.
func TestWarmMatchesCold(t *testing.T) {
	s := rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 10000, RuntimeAPI: "127.0.0.1:9001"}
	warm, err := New(s, false)
	if err != nil {
		t.Fatal(err)
	}
	cold, err := New(s, false)
	if err != nil {
		t.Fatal(err)
	}
	cold.http.warm, cold.record.warm = nil, nil
	record := func(e *Engine, rec *source.Record) Result {
		b := e.NewBatch()
		defer b.Close()
		return b.Record(rec)
	}
	for round := range 3 {
		for _, c := range requestCases {
			if got, want := warm.Request(&c.req), cold.Request(&c.req); !reflect.DeepEqual(got, want) {
				t.Errorf("round %d, %s: kept answers give %+v, none %+v", round, c.name, got, want)
			}
		}
		for _, c := range recordCases {
			if got, want := record(warm, &c.rec), record(cold, &c.rec); !reflect.DeepEqual(got, want) {
				t.Errorf("round %d, %s: kept answers give %+v, none %+v", round, c.name, got, want)
			}
		}
	}
	for name, w := range map[string]*warmCache{"http": warm.http.warm, "record": warm.record.warm} {
		if n := len(w.strs); n < 20 {
			t.Errorf("%s plan kept %d strings after three rounds, want the repeated ones", name, n)
		}
		for s, ws := range w.strs {
			if ws.bits == nil && len(ws.steps) == 0 {
				t.Errorf("%s plan kept %q with nothing known of it", name, s)
			}
		}
	}
}

// The warm cache holds at most maxWarmStrings strings of at most
// maxWarmLen bytes, whatever the events.
func TestWarmBounded(t *testing.T) {
	e, err := New(rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 10000}, false)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("abc ", maxWarmLen)
	// Short, but t:utf8toUnicode makes it three times as long.
	grows := strings.Repeat("é", maxWarmLen/2-10)
	rec := &source.Record{}
	peak := 0
	for i := range 2 * maxWarmStrings / 50 {
		rec.Fields = rec.Fields[:0]
		for j := range 100 { // each value in two events
			v := fmt.Sprintf("value %d ", (i*50+j)%(2*maxWarmStrings))
			// Near the length bound, with bytes transformations change.
			v += strings.Repeat("A%41&#65;/*x*/ ", (maxWarmLen-len(v))/16)
			rec.Fields = append(rec.Fields, source.Field{Name: "body.v", Value: v})
		}
		rec.Fields = append(rec.Fields, source.Field{Name: "body.long", Value: long}, source.Field{Name: "body.grows", Value: grows})
		for range 2 {
			b := e.NewBatch()
			b.Record(rec)
			b.Close()
		}
		if n := len(e.record.warm.strs); i == 0 && n < 100 {
			t.Errorf("after two events of 100 values, the warm cache holds %d strings", n)
		}
		peak = max(peak, e.record.warm.bytes)
		if kept := warmBytes(e.record.warm); kept != e.record.warm.bytes {
			t.Fatalf("after event %d the warm cache counts %d bytes but holds %d", i, e.record.warm.bytes, kept)
		}
	}
	w := e.record.warm
	if len(w.strs) > maxWarmStrings || len(w.seen) > maxWarmSeen {
		t.Errorf("warm cache holds %d strings and %d hashes, bounds %d and %d", len(w.strs), len(w.seen), maxWarmStrings, maxWarmSeen)
	}
	kept := warmBytes(w)
	if kept != w.bytes || peak > maxWarmBytes {
		t.Errorf("warm cache held up to %d bytes of strings (counted %d now, %d), bound %d", peak, kept, w.bytes, maxWarmBytes)
	}
	for s, ws := range w.strs {
		if len(s) > maxWarmLen {
			t.Errorf("warm cache kept a %d-byte string", len(s))
		}
		for _, st := range ws.steps {
			if len(st.out) > maxWarmLen {
				t.Errorf("warm cache kept a %d-byte transformation result", len(st.out))
			}
		}
	}
}

// A full warm cache keeps the strings events keep using: a key present in
// every event stays while one-off values fill the cache again and again.
func TestWarmKeepsUsed(t *testing.T) {
	e, err := New(rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 10000}, false)
	if err != nil {
		t.Fatal(err)
	}
	const every = "a value every event has"
	w, rec := e.record.warm, &source.Record{}
	evictions := 0
	for i := range 3 * maxWarmStrings / 100 {
		rec.Fields = append(rec.Fields[:0], source.Field{Name: "body.k", Value: every})
		for j := range 200 { // each value in two events
			rec.Fields = append(rec.Fields, source.Field{Name: "body.v", Value: fmt.Sprintf("one-off %d", (i/2)*200+j)})
		}
		before := len(w.strs)
		b := e.NewBatch()
		b.Record(rec)
		b.Close()
		if len(w.strs) < before {
			evictions++
		}
		if _, ok := w.strs[every]; i > 0 && !ok {
			t.Fatalf("event %d: the value every event has was dropped (cache of %d strings)", i, len(w.strs))
		}
	}
	if evictions < 2 {
		t.Fatalf("the cache filled %d times; the test needs it full at least twice", evictions)
	}
}

// Past SecArgumentsLimit, Coraza drops arguments and sets
// ARGUMENTS_LIMIT_REACHED; the gate then leaves the arguments to the
// transaction (holdsArgs) and agrees with the reference on either side of
// the limit.
func TestArgumentLimit(t *testing.T) {
	fast, ref := newEngines(t, rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 3})
	// One batch for all, in and out of the limit in turn (a batch shares
	// a gate transaction between the records whose fields it holds).
	batch, refBatch := fast.NewBatch(), ref.NewBatch()
	defer batch.Close()
	defer refBatch.Close()
	for _, n := range []int{1, 5, 2, 4, 3} {
		rec := &source.Record{}
		for i := range n {
			rec.Fields = append(rec.Fields, source.Field{Name: fmt.Sprintf("body.f%d", i), Value: "ok"})
		}
		rec.Fields[n-1].Value = "1' or '1'='1" // the last one
		got, want := batch.Record(rec), refBatch.Record(rec)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%d arguments, limit 3: fast path %+v, reference %+v", n, got, want)
		}
		if n <= 3 && !got.Blocked {
			t.Errorf("%d arguments, limit 3: the attack in the last was not blocked", n)
		}
	}
}

// An event never waits for another to teach the warm cache: one still
// open (its cache read-locked) leaves the next to skip teaching.
func TestWarmNeverWaits(t *testing.T) {
	e, err := New(rules.Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 10000}, false)
	if err != nil {
		t.Fatal(err)
	}
	open := e.NewBatch()
	done := make(chan Result)
	go func() {
		b := e.NewBatch()
		defer close(done)
		res := b.Record(&recordCases[1].rec)
		b.Close()
		done <- res
	}()
	select {
	case res := <-done:
		if !res.Blocked {
			t.Errorf("attack not blocked while another batch was open: %+v", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a batch waited for another batch to end")
	}
	open.Close()
}

// warmBytes is what w holds of strings and transformation results.
func warmBytes(w *warmCache) int {
	n := 0
	for s, ws := range w.strs {
		n += len(s)
		for _, st := range ws.steps {
			if !st.same {
				n += len(st.out)
			}
		}
	}
	return n
}
