// Package rules holds the SecLang that lambdarasp runs: OWASP CRS v4 (from
// github.com/corazawaf/coraza-coreruleset/v4, request rules only) and
// lambdarasp's own event-injection rules, assembled for one paranoia level
// and anomaly threshold.
//
// Everything is embedded: a function needs no files at run time. Directives
// is called once at init; the text it returns is parsed by Coraza.
package rules

import (
	_ "embed"
	"fmt"
	"io/fs"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

var (
	//go:embed engine.conf
	engineConf string
	//go:embed lambdarasp.conf
	ownConf string
)

// FS resolves the `Include @owasp_crs/…` lines in the text Directives returns.
// Pass it to coraza.NewWAFConfig().WithRootFS.
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
	Exclusions []string
}

// Directives returns the SecLang text for s. It does not validate s beyond
// what it must interpolate; Coraza reports anything it cannot parse.
func Directives(s Settings) (string, error) {
	if s.Paranoia < 1 || s.Paranoia > 4 {
		return "", fmt.Errorf("paranoia level %d: want 1 to 4", s.Paranoia)
	}
	if s.Threshold < 1 {
		return "", fmt.Errorf("anomaly threshold %d: want 1 or more", s.Threshold)
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
			return "", fmt.Errorf("runtime API address %q: unexpected characters", s.RuntimeAPI)
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
		b.WriteString(e)
		b.WriteString("\n")
	}
	return b.String(), nil
}
