// Package rules holds the SecLang that lambdarasp runs: OWASP CRS v4 (from
// github.com/corazawaf/coraza-coreruleset/v4, request rules only) and
// lambdarasp's own event-injection rules, assembled for one paranoia level
// and anomaly threshold.
//
// Everything is embedded: a function needs no files at run time. Directives
// is called once at init; the text it returns is parsed by Coraza.
package rules

import (
	"bytes"
	_ "embed"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

var (
	//go:embed engine.conf
	engineConf string
	//go:embed lambdarasp.conf
	ownConf string
)

// FS holds the OWASP CRS files (@owasp_crs/…) as published.
var FS fs.FS = coreruleset.FS

// Rule id ranges. Ids in [OwnFirst, OwnLast] are lambdarasp's SecLang rules;
// ids in [EngineFirst, EngineLast] are findings the engine makes itself.
const (
	OwnFirst    = 100100
	OwnLast     = 100899
	EngineFirst = 100900
	EngineLast  = 100999
)

// RuntimeAPIRule is the id of the rule that catches SSRF to the address of
// this environment's Lambda Runtime API.
const RuntimeAPIRule = 100112

// CRS request rule files, in the order CRS loads them. Response rules are
// left out: a Lambda handler's response is not inspected.
var crsFiles = []string{
	"REQUEST-901-INITIALIZATION",
	"REQUEST-905-COMMON-EXCEPTIONS",
	"REQUEST-911-METHOD-ENFORCEMENT",
	"REQUEST-913-SCANNER-DETECTION",
	"REQUEST-920-PROTOCOL-ENFORCEMENT",
	"REQUEST-921-PROTOCOL-ATTACK",
	"REQUEST-922-MULTIPART-ATTACK",
	"REQUEST-930-APPLICATION-ATTACK-LFI",
	"REQUEST-931-APPLICATION-ATTACK-RFI",
	"REQUEST-932-APPLICATION-ATTACK-RCE",
	"REQUEST-933-APPLICATION-ATTACK-PHP",
	"REQUEST-934-APPLICATION-ATTACK-GENERIC",
	"REQUEST-941-APPLICATION-ATTACK-XSS",
	"REQUEST-942-APPLICATION-ATTACK-SQLI",
	"REQUEST-943-APPLICATION-ATTACK-SESSION-FIXATION",
	"REQUEST-944-APPLICATION-ATTACK-JAVA",
}

// Settings choose what Directives assembles.
type Settings struct {
	// Paranoia is the CRS paranoia level, 1 (fewest false positives) to 4.
	Paranoia int
	// Threshold is the inbound anomaly score at which an event is blocked
	// (CRS default 5: one critical rule).
	Threshold int
	// MaxDepth is the deepest JSON nesting Coraza's body parser accepts;
	// deeper bodies fail to parse and are blocked by rule 200002.
	MaxDepth int
	// MaxArgs is the most arguments one transaction holds; rules 200004 and
	// 200005 block a request that reaches it.
	MaxArgs int
	// RuntimeAPI is this environment's AWS_LAMBDA_RUNTIME_API (host:port),
	// or "" outside Lambda.
	RuntimeAPI string
	// Extra is user SecLang, loaded after the attack rules and before the
	// blocking evaluation, so it can add to the anomaly score.
	Extra []string
	// Exclusions is SecLang loaded last (SecRuleRemoveById,
	// SecRuleUpdateTargetById), so it can refer to every rule above.
	// A SecRuleUpdateTargetById of a rule left out (see All) is dropped.
	Exclusions []string
	// All keeps the CRS rules of the paranoia levels above Paranoia. They
	// never run — each file's paranoia skip rules jump over them — so by
	// default they are left out, which halves the rules Coraza parses at
	// init. They are kept anyway when Extra mentions paranoia_level (a
	// user rule could raise it), and by the reference engine.
	All bool
}

// Directives returns the SecLang text for s, and the file system its
// Include lines resolve in (pass it to coraza.NewWAFConfig().WithRootFS).
// It does not validate s beyond what it must interpolate; Coraza reports
// anything it cannot parse.
func Directives(s Settings) (string, fs.FS, error) {
	if s.Paranoia < 1 || s.Paranoia > 4 {
		return "", nil, fmt.Errorf("paranoia level %d: want 1 to 4", s.Paranoia)
	}
	if s.Threshold < 1 {
		return "", nil, fmt.Errorf("anomaly threshold %d: want 1 or more", s.Threshold)
	}
	root, dropped := FS, map[string]bool{}
	if !s.All && !strings.Contains(strings.ToLower(strings.Join(s.Extra, "\n")), "paranoia_level") {
		var err error
		if root, dropped, err = aboveParanoia(s.Paranoia); err != nil {
			return "", nil, err
		}
	}
	var b strings.Builder
	b.WriteString(engineConf)
	fmt.Fprintf(&b, "SecRequestBodyJsonDepthLimit %d\n", s.MaxDepth)
	fmt.Fprintf(&b, "SecArgumentsLimit %d\n", s.MaxArgs)
	fmt.Fprintf(&b, "SecAction \"id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d\"\n", s.Paranoia)
	fmt.Fprintf(&b, "SecAction \"id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=%d,setvar:tx.outbound_anomaly_score_threshold=4\"\n", s.Threshold)
	for _, f := range crsFiles {
		fmt.Fprintf(&b, "Include @owasp_crs/%s.conf\n", f)
	}
	b.WriteString(ownConf)
	if s.RuntimeAPI != "" {
		if strings.ContainsAny(s.RuntimeAPI, "\"'\\ \n") {
			return "", nil, fmt.Errorf("runtime API address %q: unexpected characters", s.RuntimeAPI)
		}
		fmt.Fprintf(&b, `SecRule ARGS|ARGS_NAMES|REQUEST_COOKIES|REQUEST_HEADERS|XML:/* "@contains %s" "id:%d,phase:2,block,t:none,t:urlDecodeUni,t:lowercase,msg:'SSRF to the Lambda Runtime API address of this environment',logdata:'found within %%{MATCHED_VAR_NAME}',tag:'lambdarasp',tag:'attack-ssrf',severity:'CRITICAL',setvar:'tx.inbound_anomaly_score_pl1=+%%{tx.critical_anomaly_score}'"`+"\n",
			strings.ToLower(s.RuntimeAPI), RuntimeAPIRule)
	}
	for _, e := range s.Extra {
		b.WriteString(e)
		b.WriteString("\n")
	}
	b.WriteString("Include @owasp_crs/REQUEST-949-BLOCKING-EVALUATION.conf\n")
	for _, e := range s.Exclusions {
		if f := strings.Fields(e); len(f) > 1 && f[0] == "SecRuleUpdateTargetById" && dropped[f[1]] {
			continue
		}
		b.WriteString(e)
		b.WriteString("\n")
	}
	return b.String(), root, nil
}

// aboveParanoia returns FS with the CRS request rule files cut down to the
// rules of paranoia levels up to level, and the ids of the rules it left
// out. In each file, the rules of level N follow the skip rules
// `SecRule TX:DETECTION_PARANOIA_LEVEL "@lt N" … skipAfter:END-…` and run
// to the next level's skip rules or the file's end marker; the cut starts
// at the first skip rule above level and ends before that marker.
func aboveParanoia(level int) (fs.FS, map[string]bool, error) {
	files := map[string][]byte{}
	dropped := map[string]bool{}
	for _, f := range crsFiles {
		name := "@owasp_crs/" + f + ".conf"
		data, err := fs.ReadFile(FS, name)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", name, err)
		}
		var out strings.Builder
		cutting := false
		for _, line := range strings.SplitAfter(string(data), "\n") {
			if n, ok := strings.CutPrefix(line, `SecRule TX:DETECTION_PARANOIA_LEVEL "@lt `); ok && len(n) > 0 && int(n[0]-'0') > level {
				cutting = true
			}
			if strings.HasPrefix(line, "SecMarker ") {
				cutting = false
			}
			if !cutting {
				out.WriteString(line)
				continue
			}
			for _, id := range ruleIDs(line) {
				dropped[id] = true
			}
		}
		if cutting {
			return nil, nil, fmt.Errorf("%s: no SecMarker after the paranoia level %d skip rules: unexpected CRS layout", name, level+1)
		}
		files[name] = []byte(out.String())
	}
	return overlayFS{base: FS, files: files}, dropped, nil
}

// ruleIDs returns the ids in the id: actions of a SecLang line.
func ruleIDs(line string) []string {
	var ids []string
	for i := strings.Index(line, "id:"); i >= 0; {
		if i > 0 && (line[i-1] == '"' || line[i-1] == ',') {
			j := i + 3
			for j < len(line) && '0' <= line[j] && line[j] <= '9' {
				j++
			}
			if j > i+3 {
				ids = append(ids, line[i+3:j])
			}
		}
		next := strings.Index(line[i+3:], "id:")
		if next < 0 {
			break
		}
		i += 3 + next
	}
	return ids
}

// overlayFS serves files from memory, and everything else from base.
type overlayFS struct {
	base  fs.FS
	files map[string][]byte
}

func (o overlayFS) Open(name string) (fs.File, error) {
	if data, ok := o.files[name]; ok {
		return &memFile{name: path.Base(name), Reader: bytes.NewReader(data), size: int64(len(data))}, nil
	}
	return o.base.Open(name)
}

func (o overlayFS) ReadFile(name string) ([]byte, error) {
	if data, ok := o.files[name]; ok {
		return bytes.Clone(data), nil
	}
	return fs.ReadFile(o.base, name)
}

type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f, nil }
func (f *memFile) Close() error               { return nil }
func (f *memFile) Name() string               { return f.name }
func (f *memFile) Size() int64                { return f.size }
func (f *memFile) Mode() fs.FileMode          { return 0o444 }
func (f *memFile) ModTime() time.Time         { return time.Time{} }
func (f *memFile) IsDir() bool                { return false }
func (f *memFile) Sys() any                   { return nil }
