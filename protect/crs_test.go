package protect_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"unicode/utf8"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	"github.com/goccy/go-yaml"

	"github.com/lambdarasp/lambdarasp/protect"
	"github.com/lambdarasp/lambdarasp/rules"
)

// TestCRSRegression runs the OWASP CRS regression suite that ships with the
// rules (coraza-coreruleset tests.FS, go-ftw format) through Inspector.
// Each stage's request is rebuilt as go-ftw would send it and then delivered
// the way API Gateway (HTTP API, payload v2) hands it to a function: as an
// event, not as bytes on a socket. Requests API Gateway could never deliver
// (malformed request lines, smuggling framing, a missing Host, …) and
// assertions about responses are skipped with their reason; every other test
// runs.
//
// A stage passes when every id of expect_ids is in Verdict.Rules() and no id
// of no_expect_ids is. The anomaly evaluation 949110, which Verdict does not
// list, stands for the Score reaching the threshold; the few assertions on
// error-log text are translated by crsLogEquivalent or skipped.
//
// The headline counts the tests of paranoia-level-1 rules, run at paranoia
// level 1, lambdarasp's default; tests of PL2-4 rules run at their own level
// and are reported apart. `go test -v -run CRSRegression ./protect` lists
// every skip and failure.
func TestCRSRegression(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: runs about 4,500 requests through the full CRS")
	}
	// The variables override the options: the rule set under test must be
	// the one this test asks for.
	for _, v := range []string{"LAMBDARASP_MODE", "LAMBDARASP_PARANOIA", "LAMBDARASP_ANOMALY_THRESHOLD",
		"LAMBDARASP_RULES", "LAMBDARASP_EXCLUDE", "LAMBDARASP_MAX_DEPTH", "LAMBDARASP_MAX_FIELDS",
		"LAMBDARASP_MAX_VALUE_BYTES", "LAMBDARASP_MAX_RECORDS"} {
		t.Setenv(v, "")
	}
	levels := crsRuleLevels(t)
	cases := loadCRSCases(t, levels)

	inspectors := map[int]*protect.Inspector{}
	for _, c := range cases {
		if c.skip.group != "" || inspectors[c.level] != nil {
			continue
		}
		in, err := protect.NewInspector(protect.WithParanoia(c.level))
		if err != nil {
			t.Fatalf("NewInspector(paranoia %d): %v", c.level, err)
		}
		inspectors[c.level] = in
	}

	// Inspector is meant for concurrent use: run the cases on every core,
	// which also lets -race see concurrent inspections.
	var wg sync.WaitGroup
	next := make(chan *crsCase)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for c := range next {
				c.run(inspectors[c.level])
			}
		})
	}
	for _, c := range cases {
		if c.skip.group == "" {
			next <- c
		}
	}
	close(next)
	wg.Wait()

	pl1 := crsReport(t, cases)
	if rate := pl1.rate(); rate < 95 {
		t.Errorf("CRS regression at paranoia level 1: %.1f%% passed, want at least 95%% (run with -v for the failures)", rate)
	}
}

// A crsCase is one test (all of its stages) of one CRS rule file.
type crsCase struct {
	file   string // REQUEST-942-APPLICATION-ATTACK-SQLI/942100.yaml
	rule   int
	test   int
	level  int // paranoia level the test needs; it runs at that level
	stages []crsStageCase
	skip   crsSkip

	// Set by run.
	failure string
}

type crsStageCase struct {
	event []byte
	want  crsExpectation
}

type crsSkip struct {
	group  string // why, in words shared by every test skipped for it
	detail string // what in this test
}

func (c *crsCase) id() string { return fmt.Sprintf("%d-%d", c.rule, c.test) }

func (c *crsCase) run(in *protect.Inspector) {
	for i, s := range c.stages {
		v := in.Inspect(s.event)
		if v.Source != "apigw-http" {
			c.failure = fmt.Sprintf("stage %d: event classified as %q, want apigw-http", i+1, v.Source)
			return
		}
		if problem := s.want.check(v, c.rule); problem != "" {
			c.failure = fmt.Sprintf("stage %d: %s", i+1, problem)
			return
		}
	}
}

// crsRuleLevels maps each CRS request rule id to its paranoia level, read from
// the rule files the inspector loads. A rule's level is its
// tag:'paranoia-level/N'; rules without the tag take the level of the
// `TX:DETECTION_PARANOIA_LEVEL "@lt N"` skip marker above them (rules after
// the "@lt 2" marker only run from PL2 on), or 1 before any marker.
func crsRuleLevels(t *testing.T) map[int]int {
	t.Helper()
	files, err := fs.Glob(rules.FS, "@owasp_crs/REQUEST-*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRS request rule files in rules.FS (%v)", err)
	}
	marker := regexp.MustCompile(`DETECTION_PARANOIA_LEVEL "@lt (\d)"`)
	idRe := regexp.MustCompile(`\bid:(\d+)`)
	tagRe := regexp.MustCompile(`paranoia-level/(\d)`)
	levels := map[int]int{}
	for _, f := range files {
		b, err := fs.ReadFile(rules.FS, f)
		if err != nil {
			t.Fatal(err)
		}
		level := 1
		// One directive per logical line: join the backslash continuations.
		text := strings.ReplaceAll(string(b), "\\\n", "")
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' {
				continue
			}
			if m := marker.FindStringSubmatch(line); m != nil {
				level = max(1, int(m[1][0]-'0'))
			}
			m := idRe.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			id, _ := strconv.Atoi(m[1])
			levels[id] = level
			if tag := tagRe.FindStringSubmatch(line); tag != nil {
				levels[id] = int(tag[1][0] - '0')
			}
		}
	}
	return levels
}

// loadCRSCases reads every test of tests.FS and prepares the events of the
// REQUEST-* tests; RESPONSE-* tests come back skipped, with level 0.
func loadCRSCases(t *testing.T, levels map[int]int) (cases []*crsCase) {
	t.Helper()
	err := fs.WalkDir(crstests.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(name, ".yaml") {
			return err
		}
		b, err := fs.ReadFile(crstests.FS, name)
		if err != nil {
			return err
		}
		if strings.HasPrefix(name, "RESPONSE-") {
			var f struct {
				RuleID int `yaml:"rule_id"`
				Tests  []struct {
					TestID int `yaml:"test_id"`
				} `yaml:"tests"`
			}
			if err := yaml.Unmarshal(b, &f); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			for _, ft := range f.Tests {
				cases = append(cases, &crsCase{file: name, rule: f.RuleID, test: ft.TestID,
					skip: crsSkip{skipResponse, "RESPONSE-* rule file"}})
			}
			return nil
		}
		// Strict: a go-ftw field this file does not know could change what
		// a test sends or asserts, so it must not be ignored silently.
		var f crsFile
		if err := yaml.UnmarshalWithOptions(b, &f, yaml.Strict()); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, ft := range f.Tests {
			c, err := newCRSCase(name, f.RuleID, ft, levels)
			if err != nil {
				return fmt.Errorf("%s test %d: %w", name, ft.TestID, err)
			}
			cases = append(cases, c)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("load CRS tests: %v", err)
	}
	if len(cases) < 4000 {
		t.Fatalf("found %d CRS request tests, want the whole suite (over 4,000)", len(cases))
	}
	return cases
}

// The go-ftw test format, as far as the CRS request tests use it. Fields
// that do not matter here (dest_addr, port, desc, …) are declared so that
// strict decoding accepts them.
type crsFile struct {
	Meta   map[string]any `yaml:"meta"`
	Author string         `yaml:"author"` // 932271.yaml has it outside meta
	RuleID int            `yaml:"rule_id"`
	Tests  []crsTest      `yaml:"tests"`
}

type crsTest struct {
	TestID int        `yaml:"test_id"`
	Desc   string     `yaml:"desc"`
	Stages []crsStage `yaml:"stages"`
}

type crsStage struct {
	Input  crsInput  `yaml:"input"`
	Output crsOutput `yaml:"output"`
}

type crsInput struct {
	DestAddr            string            `yaml:"dest_addr"`
	Port                int               `yaml:"port"`
	Method              *string           `yaml:"method"`  // default GET
	URI                 *string           `yaml:"uri"`     // default /
	Version             *string           `yaml:"version"` // default HTTP/1.1
	Headers             map[string]string `yaml:"headers"`
	Data                *string           `yaml:"data"` // a Go template
	EncodedRequest      string            `yaml:"encoded_request"`
	AutocompleteHeaders *bool             `yaml:"autocomplete_headers"` // default true
}

type crsOutput struct {
	Status      any    `yaml:"status"` // a code or a list of codes
	ExpectError bool   `yaml:"expect_error"`
	RetryOnce   bool   `yaml:"retry_once"`
	Log         crsLog `yaml:"log"`
}

type crsLog struct {
	ExpectIDs    []int  `yaml:"expect_ids"`
	NoExpectIDs  []int  `yaml:"no_expect_ids"`
	MatchRegex   string `yaml:"match_regex"`
	NoMatchRegex string `yaml:"no_match_regex"`
}

// inactiveRules are CRS rules that lambdarasp's configuration leaves off on
// purpose; their tests cannot pass and say nothing about the code path.
var inactiveRules = map[int]string{
	920170: "rule off for HTTP events: AWS terminates HTTP and owns its framing (waf.httpProfile)",
	920340: "rule off for HTTP events: AWS terminates HTTP and owns its framing (waf.httpProfile)",
	920640: "rule off for HTTP events: AWS terminates HTTP and owns its framing (waf.httpProfile)",
	920250: "optional CRS check (tx.crs_validate_utf8_encoding) the CRS test setup enables; off by CRS default and in lambdarasp",
	920360: "optional CRS limit (tx.arg_name_length) the CRS test setup sets; unset by CRS default; lambdarasp bounds values itself (100901-100904)",
	920370: "optional CRS limit (tx.arg_length) the CRS test setup sets; unset by CRS default; lambdarasp bounds values itself (100901-100904)",
	920380: "optional CRS limit (tx.max_num_args) the CRS test setup sets; unset by CRS default; lambdarasp bounds values itself (100901-100904)",
	920390: "optional CRS limit (tx.total_arg_length) the CRS test setup sets; unset by CRS default; lambdarasp bounds values itself (100901-100904)",
	920400: "optional CRS limit (tx.max_file_size) the CRS test setup sets; unset by CRS default",
	920410: "optional CRS limit (tx.combined_file_sizes) the CRS test setup sets; unset by CRS default",
}

// newCRSCase prepares the events of a test, or the reason to skip it: one
// stage API Gateway could not deliver is enough. The test runs at the
// highest paranoia level among its rule and the rules it asserts on: below
// that level an assertion that a rule stays silent could not fail.
func newCRSCase(file string, rule int, ft crsTest, levels map[int]int) (*crsCase, error) {
	if len(ft.Stages) == 0 {
		return nil, fmt.Errorf("no stages")
	}
	c := &crsCase{file: file, rule: rule, test: ft.TestID, level: max(1, levels[rule])}
	if why, ok := inactiveRules[rule]; ok {
		c.skip = crsSkip{why, fmt.Sprint(rule)}
		return c, nil
	}
	for _, st := range ft.Stages {
		want, skip := newCRSExpectation(st.Output, rule, levels)
		for _, id := range slices.Concat(want.expect, want.noExpect) {
			c.level = max(c.level, levels[id])
		}
		if skip.group == "" {
			req, s, err := newFTWRequest(st.Input)
			if err != nil {
				return nil, err
			}
			skip = s
			if skip.group == "" {
				var ev []byte
				ev, skip = crsEventJSON(req)
				c.stages = append(c.stages, crsStageCase{event: ev, want: want})
			}
		}
		if skip.group != "" && c.skip.group == "" {
			c.skip = skip
		}
	}
	return c, nil
}

// ftwRequest is the request go-ftw writes to the socket for one stage.
type ftwRequest struct {
	method, target, version string
	headers                 []ftwHeader // in wire order, names as written
	body                    []byte
}

type ftwHeader struct{ name, value string }

func (r *ftwRequest) values(name string) []string {
	var vs []string
	for _, h := range r.headers {
		if strings.EqualFold(h.name, name) {
			vs = append(vs, h.value)
		}
	}
	return vs
}

// newFTWRequest builds the request as go-ftw does: an encoded_request is
// sent as is; otherwise the data template is executed and, unless
// autocomplete_headers is false, a form Content-Type and Content-Length are
// added and form data is URL-encoded. (go-ftw's Connection: close is not
// added: it manages the test client's socket, which API Gateway terminates.)
func newFTWRequest(in crsInput) (ftwRequest, crsSkip, error) {
	if in.EncodedRequest != "" {
		raw, err := base64.StdEncoding.DecodeString(in.EncodedRequest)
		if err != nil {
			return ftwRequest{}, crsSkip{}, fmt.Errorf("encoded_request: %w", err)
		}
		r, skip := parseFTWRequest(raw)
		return r, skip, nil
	}
	r := ftwRequest{method: "GET", target: "/", version: "HTTP/1.1"}
	if in.Method != nil {
		r.method = *in.Method
	}
	if in.URI != nil {
		r.target = *in.URI
	}
	if in.Version != nil {
		r.version = *in.Version
	}
	names := make([]string, 0, len(in.Headers))
	for name := range in.Headers {
		names = append(names, name)
	}
	sort.Strings(names) // go-ftw writes headers sorted by name
	for _, name := range names {
		r.headers = append(r.headers, ftwHeader{name, in.Headers[name]})
	}
	if in.Data != nil {
		data, err := ftwData(*in.Data)
		if err != nil {
			return ftwRequest{}, crsSkip{}, fmt.Errorf("data template: %w", err)
		}
		r.body = data
	}
	autocomplete := in.AutocompleteHeaders == nil || *in.AutocompleteHeaders
	if autocomplete && len(r.body) > 0 {
		if len(r.values("Content-Type")) == 0 {
			r.headers = append(r.headers, ftwHeader{"Content-Type", "application/x-www-form-urlencoded"})
		}
		if slices.Contains(r.values("Content-Type"), "application/x-www-form-urlencoded") {
			r.body = ftwEncodeForm(r.body)
		}
	}
	if slices.ContainsFunc(r.values("Content-Type"), func(v string) bool { return strings.Contains(v, "multipart/form-data;") }) {
		r.body = bytes.ReplaceAll(r.body, []byte("\n"), []byte("\r\n"))
	}
	if autocomplete && len(r.values("Content-Length")) == 0 && (len(r.body) > 0 || ftwBodyMethod.MatchString(r.method)) {
		r.headers = append(r.headers, ftwHeader{"Content-Length", strconv.Itoa(len(r.body))})
	}
	return r, crsSkip{}, nil
}

// ftwBodyMethod is go-ftw's test for methods that get a Content-Length even
// without data, unanchored alternatives included.
var ftwBodyMethod = regexp.MustCompile(`^POST|PUT|PATCH|DELETE$`)

// ftwData runs data as go-ftw does: as a text/template with sprig's
// functions, of which the suite uses only repeat.
func ftwData(data string) ([]byte, error) {
	tpl, err := template.New("data").Funcs(template.FuncMap{
		"repeat": func(count int, s string) string { return strings.Repeat(s, count) },
	}).Parse(data)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, nil); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ftwEncodeForm URL-encodes the names and values of form data written
// unencoded, as go-ftw does when unescaping the data would not change it.
func ftwEncodeForm(data []byte) []byte {
	if u, err := url.QueryUnescape(string(data)); err != nil || u != string(data) {
		return data
	}
	var b strings.Builder
	for i, field := range strings.Split(string(data), "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		k, v, ok := strings.Cut(field, "=")
		b.WriteString(url.QueryEscape(k))
		if ok {
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(v))
		}
	}
	return []byte(b.String())
}

// parseFTWRequest reads an encoded_request.
func parseFTWRequest(raw []byte) (ftwRequest, crsSkip) {
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return ftwRequest{}, crsSkip{skipMalformed, "encoded_request has no end of header section"}
	}
	lines := strings.Split(string(head), "\r\n")
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 {
		return ftwRequest{}, crsSkip{skipMalformed, fmt.Sprintf("request line %q", lines[0])}
	}
	r := ftwRequest{method: parts[0], target: parts[1], version: parts[2], body: body}
	for _, line := range lines[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return ftwRequest{}, crsSkip{skipMalformed, fmt.Sprintf("header line %q", line)}
		}
		r.headers = append(r.headers, ftwHeader{name, strings.Trim(value, " \t")})
	}
	return r, crsSkip{}
}

// Why a test cannot be run through an API Gateway event.
const (
	skipResponse   = "response rule: lambdarasp does not inspect responses"
	skipMalformed  = "malformed request line or header line: API Gateway rejects it"
	skipTarget     = "request target is not a path (asterisk-, authority- or absolute-form): API Gateway delivers paths"
	skipVersion    = "HTTP version API Gateway does not speak"
	skipHost       = "Host missing, empty or repeated: API Gateway routes by Host"
	skipChunked    = "Transfer-Encoding framing: API Gateway de-chunks the body and drops the header"
	skipLength     = "Content-Length missing, repeated or not the body length: API Gateway sends the length of the body it read"
	skipRepeated   = "repeated header lines: API Gateway v2 joins them into one header"
	skipBareCRLF   = "bare CR or LF in a header value: HTTP/1.1 parsers reject it or replace it by a space"
	skipNotUTF8    = "non-UTF-8 bytes outside the body: events are JSON text"
	skipStatusOnly = "asserts only on the response status"
	skipLogText    = "asserts on error-log text with no Verdict equivalent"
	skipCannotFail = "asserts only that a rule that does not exist stays silent: cannot fail"
)

// httpToken matches RFC 9110 tokens, the syntax of methods and header names.
var httpToken = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// crsEventJSON turns a request into the event API Gateway HTTP API
// (payload format 2.0, $default route and stage) gives the function, or says
// why API Gateway would never deliver it.
func crsEventJSON(r ftwRequest) ([]byte, crsSkip) {
	switch {
	case !httpToken.MatchString(r.method):
		return nil, crsSkip{skipMalformed, fmt.Sprintf("method %q", r.method)}
	case r.method == "CONNECT" || r.target == "*" || !strings.HasPrefix(r.target, "/"):
		return nil, crsSkip{skipTarget, fmt.Sprintf("%s %q", r.method, r.target)}
	case strings.ContainsFunc(r.target, func(c rune) bool { return c <= ' ' || c == 0x7f }):
		return nil, crsSkip{skipMalformed, fmt.Sprintf("whitespace or control character in request target %q", r.target)}
	}
	http2 := false
	switch r.version {
	case "HTTP/1.0", "HTTP/1.1":
	case "HTTP/2", "HTTP/2.0":
		http2 = true
	default:
		return nil, crsSkip{skipVersion, fmt.Sprintf("%q", r.version)}
	}

	// Header names: tokens, lower-cased; repeats joined with ",".
	headers := map[string]string{}
	seen := map[string]int{}
	for _, h := range r.headers {
		if !httpToken.MatchString(h.name) {
			return nil, crsSkip{skipMalformed, fmt.Sprintf("header name %q", h.name)}
		}
		if strings.ContainsAny(h.value, "\r\n") {
			return nil, crsSkip{skipBareCRLF, fmt.Sprintf("%s: %q", h.name, h.value)}
		}
		name := strings.ToLower(h.name)
		if seen[name]++; seen[name] > 1 {
			headers[name] += "," + h.value
		} else {
			headers[name] = h.value
		}
	}
	for name, n := range seen {
		if n > 1 && name != "host" && name != "content-length" {
			return nil, crsSkip{skipRepeated, fmt.Sprintf("%d %s header lines", n, name)}
		}
	}
	host := r.values("Host")
	switch {
	case len(host) == 0:
		return nil, crsSkip{skipHost, "no Host header"}
	case len(host) > 1:
		return nil, crsSkip{skipHost, fmt.Sprintf("%d Host headers", len(host))}
	case host[0] == "":
		return nil, crsSkip{skipHost, "empty Host header"}
	}
	if te := r.values("Transfer-Encoding"); len(te) > 0 {
		return nil, crsSkip{skipChunked, fmt.Sprintf("Transfer-Encoding: %s", strings.Join(te, ","))}
	}
	body := r.body
	switch cl := r.values("Content-Length"); {
	case len(cl) > 1:
		return nil, crsSkip{skipLength, fmt.Sprintf("%d Content-Length headers", len(cl))}
	case len(cl) == 1:
		n, err := strconv.Atoi(cl[0])
		if err != nil || n < 0 || n > len(body) {
			// The server would wait for bytes that never come, or refuse.
			return nil, crsSkip{skipLength, fmt.Sprintf("Content-Length %q, %d-byte body", cl[0], len(body))}
		}
		// The server reads n bytes; the rest would be the next request on
		// the connection, which API Gateway would answer on its own.
		body = body[:n]
	case !http2 && (len(body) > 0 || ftwBodyMethod.MatchString(r.method)):
		// Without Content-Length an HTTP/1 server reads no body, and API
		// Gateway sends content-length: 0: the missing header, which the
		// test is about, never reaches the function.
		return nil, crsSkip{skipLength, fmt.Sprintf("%s without Content-Length, %d-byte body", r.method, len(body))}
	}

	path, query, _ := strings.Cut(r.target, "?")
	for _, s := range []string{path, query} {
		if !utf8.ValidString(s) {
			return nil, crsSkip{skipNotUTF8, fmt.Sprintf("%q", s)}
		}
	}
	for name, v := range headers {
		if !utf8.ValidString(v) {
			return nil, crsSkip{skipNotUTF8, fmt.Sprintf("%s: %q", name, v)}
		}
	}

	// What API Gateway adds or rewrites: the body length it read, its trace
	// id and forwarding headers; cookies move to their own member.
	const sourceIP = "198.51.100.7"
	headers["content-length"] = strconv.Itoa(len(body))
	headers["x-amzn-trace-id"] = "Root=1-6745a2f1-0123456789abcdef01234567"
	if xff, ok := headers["x-forwarded-for"]; ok {
		headers["x-forwarded-for"] = xff + ", " + sourceIP
	} else {
		headers["x-forwarded-for"] = sourceIP
	}
	headers["x-forwarded-port"] = "443"
	headers["x-forwarded-proto"] = "https"
	var cookies []string
	if c, ok := headers["cookie"]; ok {
		delete(headers, "cookie")
		for _, part := range strings.Split(c, ";") {
			if part = strings.TrimSpace(part); part != "" {
				cookies = append(cookies, part)
			}
		}
	}

	ev := crsEvent{
		Version:               "2.0",
		RouteKey:              "$default",
		RawPath:               path,
		RawQueryString:        query,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: crsQueryParameters(query),
		RequestContext: crsEventContext{
			AccountID:    "123456789012",
			APIID:        "r3pmxmplak",
			DomainName:   crsHostName(host[0]),
			DomainPrefix: strings.Split(crsHostName(host[0]), ".")[0],
			HTTP: crsEventHTTP{
				Method:    r.method,
				Path:      path,
				Protocol:  r.version,
				SourceIP:  sourceIP,
				UserAgent: headers["user-agent"],
			},
			RequestID: "JKJaXmPLvHcESHA=",
			RouteKey:  "$default",
			Stage:     "$default",
			Time:      "10/Mar/2025:21:23:17 +0000",
			TimeEpoch: 1741641797000,
		},
	}
	if len(body) > 0 {
		if utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		panic(err) // strings and maps of strings always encode
	}
	return b.Bytes(), crsSkip{}
}

// crsEvent is an API Gateway HTTP API event, payload format 2.0, with
// the members AWS sends for a $default route without authorizer.
type crsEvent struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	RequestContext        crsEventContext   `json:"requestContext"`
	Body                  string            `json:"body,omitempty"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
}

type crsEventContext struct {
	AccountID    string       `json:"accountId"`
	APIID        string       `json:"apiId"`
	DomainName   string       `json:"domainName"`
	DomainPrefix string       `json:"domainPrefix"`
	HTTP         crsEventHTTP `json:"http"`
	RequestID    string       `json:"requestId"`
	RouteKey     string       `json:"routeKey"`
	Stage        string       `json:"stage"`
	Time         string       `json:"time"`
	TimeEpoch    int64        `json:"timeEpoch"`
}

type crsEventHTTP struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Protocol  string `json:"protocol"`
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// crsQueryParameters decodes a raw query as API Gateway v2 does: repeated
// names are joined with ","; what does not decode is kept as sent.
func crsQueryParameters(query string) map[string]string {
	if query == "" {
		return nil
	}
	params := map[string]string{}
	for _, field := range strings.Split(query, "&") {
		if field == "" {
			continue
		}
		k, v, _ := strings.Cut(field, "=")
		k, v = crsUnescape(k), crsUnescape(v)
		if old, ok := params[k]; ok {
			v = old + "," + v
		}
		params[k] = v
	}
	return params
}

func crsUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// crsHostName is the Host header without its port: API Gateway's domainName.
func crsHostName(host string) string {
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		return h
	}
	return host
}

// crsExpectation is what one stage asserts about the verdict.
type crsExpectation struct {
	expect, noExpect []int
	logChecks        []crsLogCheck
}

type crsLogCheck struct {
	want bool // match_regex: true, no_match_regex: false
	desc string
	ok   func(v protect.Verdict, rule int) bool
}

// crsBlockingRule is CRS's inbound anomaly evaluation. Verdict does not list
// it: it matches exactly when the Verdict's Score reaches the threshold,
// which this test leaves at the default, as the CRS test setup does.
const (
	crsBlockingRule      = 949110
	crsBlockingThreshold = 5
)

func newCRSExpectation(out crsOutput, rule int, levels map[int]int) (crsExpectation, crsSkip) {
	e := crsExpectation{expect: out.Log.ExpectIDs, noExpect: out.Log.NoExpectIDs}
	for _, lc := range []struct {
		re   string
		want bool
	}{{out.Log.MatchRegex, true}, {out.Log.NoMatchRegex, false}} {
		if lc.re == "" {
			continue
		}
		check, ok := crsLogEquivalent(lc.re)
		if !ok {
			return e, crsSkip{skipLogText, fmt.Sprintf("%q", lc.re)}
		}
		check.want = lc.want
		e.logChecks = append(e.logChecks, check)
	}
	if len(e.expect) == 0 && len(e.noExpect) == 0 && len(e.logChecks) == 0 {
		return e, crsSkip{skipStatusOnly, fmt.Sprintf("status %v", out.Status)}
	}
	if len(e.expect) == 0 && len(e.logChecks) == 0 && !slices.ContainsFunc(e.noExpect, func(id int) bool {
		_, ok := levels[id]
		return ok
	}) {
		return e, crsSkip{skipCannotFail, fmt.Sprintf("no_expect_ids %v", e.noExpect)}
	}
	return e, crsSkip{}
}

// crsLogTarget finds the variable a log assertion names ("found within
// ARGS:x", "ARGS:testarg", "REQUEST_HEADERS:Referer").
var crsLogTarget = regexp.MustCompile(`\b(ARGS|REQUEST_HEADERS):([\w.-]+)`)

// crsLogEquivalent translates an assertion on ModSecurity's error-log line into
// one on the Verdict, for the kinds of line the suite asserts on. Matched
// data in the line is not checked: a Verdict carries no data.
func crsLogEquivalent(re string) (crsLogCheck, bool) {
	switch {
	case strings.HasPrefix(re, `Inbound Anomaly Score Exceeded`):
		return crsLogCheck{desc: "949110 (score at the threshold)", ok: func(v protect.Verdict, _ int) bool {
			return v.Score >= crsBlockingThreshold
		}}, true
	case strings.HasPrefix(re, `Multipart parsing error:`) && strings.Contains(re, `[id "922130"\]`):
		// ModSecurity logs a multipart parse failure or rule 922130;
		// Coraza's multipart failures are rules 200002 and 200003.
		return crsLogCheck{desc: "multipart parse failure (200002/200003) or 922130", ok: func(v protect.Verdict, _ int) bool {
			rs := v.Rules()
			return slices.Contains(rs, 200002) || slices.Contains(rs, 200003) || slices.Contains(rs, 922130)
		}}, true
	}
	m := crsLogTarget.FindStringSubmatch(re)
	if m == nil {
		return crsLogCheck{}, false
	}
	var paths []string
	switch m[1] {
	case "ARGS":
		paths = []string{"query." + m[2], "body." + m[2]}
	case "REQUEST_HEADERS":
		paths = []string{"headers." + strings.ToLower(m[2])}
	}
	return crsLogCheck{desc: fmt.Sprintf("the test's rule found within %s (path %s)", m[0], strings.Join(paths, " or ")), ok: func(v protect.Verdict, rule int) bool {
		return slices.ContainsFunc(v.Findings, func(f protect.Finding) bool {
			return f.Rule == rule && slices.Contains(paths, f.Path)
		})
	}}, true
}

// check returns what is wrong with v, or "".
func (e crsExpectation) check(v protect.Verdict, rule int) string {
	got := v.Rules()
	has := func(id int) bool {
		if id == crsBlockingRule {
			return v.Score >= crsBlockingThreshold
		}
		return slices.Contains(got, id)
	}
	var problems []string
	var missing, unwanted []int
	for _, id := range e.expect {
		if !has(id) {
			missing = append(missing, id)
		}
	}
	for _, id := range e.noExpect {
		if has(id) {
			unwanted = append(unwanted, id)
		}
	}
	if missing != nil {
		problems = append(problems, fmt.Sprintf("expected %v did not match", missing))
	}
	if unwanted != nil {
		problems = append(problems, fmt.Sprintf("unexpected %v matched", unwanted))
	}
	for _, lc := range e.logChecks {
		if lc.ok(v, rule) != lc.want {
			verb := "want"
			if !lc.want {
				verb = "want no"
			}
			problems = append(problems, fmt.Sprintf("%s %s", verb, lc.desc))
		}
	}
	if problems == nil {
		return ""
	}
	return fmt.Sprintf("%s; got %s (score %d), rules %v, findings %s",
		strings.Join(problems, "; "), v.Action, v.Score, got, crsFindings(v))
}

func crsFindings(v protect.Verdict) string {
	parts := make([]string, len(v.Findings))
	for i, f := range v.Findings {
		parts[i] = fmt.Sprintf("%d@%s", f.Rule, f.Path)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// crsTally counts the outcomes of one group of cases.
type crsTally struct {
	passed, failed, skipped int
}

func (t crsTally) rate() float64 {
	if t.passed+t.failed == 0 {
		return 0
	}
	return 100 * float64(t.passed) / float64(t.passed+t.failed)
}

func (t crsTally) String() string {
	return fmt.Sprintf("%d/%d passed (%.1f%%), %d skipped", t.passed, t.passed+t.failed, t.rate(), t.skipped)
}

// crsReport logs the summary, then every skip and failure, and returns the
// paranoia-level-1 tally.
func crsReport(t *testing.T, cases []*crsCase) crsTally {
	t.Helper()
	var pl1, higher, response crsTally
	failedByFile := map[string]int{}
	skipGroups := map[string]int{}
	for _, c := range cases {
		tl := &pl1
		switch {
		case c.level == 0:
			tl = &response
		case c.level > 1:
			tl = &higher
		}
		switch {
		case c.skip.group != "":
			tl.skipped++
			skipGroups[c.skip.group]++
		case c.failure != "":
			tl.failed++
			failedByFile[fmt.Sprintf("PL%d %s", min(c.level, 2), c.file)]++
		default:
			tl.passed++
		}
	}

	t.Logf("CRS regression (paranoia level 1): %v", pl1)
	t.Logf("CRS regression (tests of paranoia level 2-4 rules, run at their level; not counted above): %v", higher)
	t.Logf("CRS regression (RESPONSE-* rules): %d skipped", response.skipped)
	for _, f := range crsSortedKeys(failedByFile) {
		t.Logf("  failures %3d: %s", failedByFile[f], strings.Replace(f, "PL2", "PL2+", 1))
	}
	for _, g := range crsSortedKeys(skipGroups) {
		t.Logf("  skipped %4d: %s", skipGroups[g], g)
	}
	for _, c := range cases {
		if c.skip.group != "" {
			t.Logf("skip %s (PL%d): %s (%s)", c.id(), c.level, c.skip.detail, c.skip.group)
		}
	}
	for _, c := range cases {
		if c.failure != "" {
			t.Logf("FAIL %s (PL%d): %s", c.id(), c.level, c.failure)
		}
	}
	return pl1
}

func crsSortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
