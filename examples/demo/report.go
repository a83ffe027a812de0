package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// logs is what the environment's log stream said, by the messages
// lambdarasp writes (stable field names: see the README).
type logs struct {
	alerts   []alertLine
	enforced map[string]string // request id -> decision
	outbound []outboundLine    // the wrapper's outbound findings
	ready    int               // extension starts
	shutdown map[string]any    // the extension's last line
}

type outboundLine struct {
	RequestID string `json:"request_id"`
	Action    string `json:"action"`
	Rule      int    `json:"rule"`
	Reason    string `json:"reason"`
	Host      string `json:"host"`
	Port      int    `json:"port"`
	Address   string `json:"address"`
}

type alertLine struct {
	Msg       string             `json:"msg"`
	Type      string             `json:"type"`
	Severity  string             `json:"severity"`
	RequestID string             `json:"request_id"`
	Subject   string             `json:"subject"`
	Message   string             `json:"message"`
	Action    string             `json:"action"`
	Values    map[string]float64 `json:"values"`
	Anomalies int                `json:"Anomalies"`
}

func (l *logs) read(r io.Reader) {
	l.enforced = map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var m struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
			Decision  string `json:"decision"`
		}
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		switch m.Msg {
		case "lambdarasp alert":
			var a alertLine
			if json.Unmarshal(line, &a) == nil {
				l.alerts = append(l.alerts, a)
			}
		case "lambdarasp decision enforced":
			l.enforced[m.RequestID] = m.Decision
		case "lambdarasp outbound finding":
			var o outboundLine
			if json.Unmarshal(line, &o) == nil {
				l.outbound = append(l.outbound, o)
			}
		case "lambdarasp extension ready":
			l.ready++
		case "lambdarasp extension shut down":
			_ = json.Unmarshal(line, &l.shutdown)
		}
	}
}

// The outcomes an invocation can have, in table order.
const (
	served     = "served"
	blocked    = "blocked"
	quarantine = "refused: quarantine"
	blockedIP  = "refused: client IP"
	failed     = "function error"
	broken     = "no answer"
)

var outcomes = []string{served, blocked, blockedIP, quarantine, failed, broken}

// classify names what happened to one invocation.
func classify(o outcome, enforced map[string]string) string {
	if o.err != nil {
		return broken
	}
	switch enforced[o.requestID] {
	case "quarantine":
		return quarantine
	case "blocked-ip":
		return blockedIP
	}
	var body struct {
		StatusCode        int               `json:"statusCode"`
		ErrorType         string            `json:"errorType"`
		BatchItemFailures []json.RawMessage `json:"batchItemFailures"`
	}
	_ = json.Unmarshal(o.payload, &body)
	switch {
	case o.functionError != "" && body.ErrorType == "lambdarasp.Blocked":
		return blocked
	case o.functionError != "":
		return failed
	case body.StatusCode == 403, len(body.BatchItemFailures) > 0:
		return blocked
	}
	return served
}

// present prints the tables and the expected outcomes, and reports
// whether every one happened.
func present(w io.Writer, r *result, took time.Duration) bool {
	stepOf := map[string]string{}
	counts := make([]map[string]int, len(r.steps))
	all := map[string]int{}
	for i, s := range r.steps {
		counts[i] = map[string]int{}
		for _, o := range r.calls[i] {
			c := classify(o, r.logs.enforced)
			counts[i][c]++
			all[c]++
			stepOf[o.requestID] = s.name
		}
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "Invocations by outcome")
	fmt.Fprint(tw, "step\tsent\t")
	for _, o := range outcomes {
		fmt.Fprint(tw, o, "\t")
	}
	fmt.Fprintln(tw)
	total := 0
	for i, s := range r.steps {
		fmt.Fprintf(tw, "%s\t%d\t", s.name, len(s.calls))
		total += len(s.calls)
		for _, o := range outcomes {
			fmt.Fprint(tw, dash(counts[i][o]), "\t")
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "all\t%d\t", total)
	for _, o := range outcomes {
		fmt.Fprint(tw, dash(all[o]), "\t")
	}
	fmt.Fprintln(tw)
	tw.Flush()

	fmt.Fprintf(w, "\nAnomalies and alerts (%d alert lines with EMF counters on stdout, %d webhook deliveries)\n", len(r.logs.alerts), len(r.webhook))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "during\ttype\tseverity\twhat\tdecision")
	raised := map[string]alertLine{}
	for _, a := range r.logs.alerts {
		if _, seen := raised[a.Type]; !seen {
			raised[a.Type] = a
		}
		during := stepOf[a.RequestID]
		if during == "" {
			during = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", during, a.Type, a.Severity, a.Message, dashS(a.Action))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nDecisions enforced by the wrapper")
	decisions := map[string]int{}
	for _, d := range r.logs.enforced {
		decisions[d]++
	}
	if len(decisions) == 0 {
		fmt.Fprintln(w, "  none")
	}
	names := make([]string, 0, len(decisions))
	for d := range decisions {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		fmt.Fprintf(w, "  %-12s %d invocations refused\n", d, decisions[d])
	}

	fmt.Fprintln(w, "\nOutbound calls refused by the wrapper")
	if len(r.logs.outbound) == 0 {
		fmt.Fprintln(w, "  none")
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, o := range r.logs.outbound {
		dest := fmt.Sprintf("%s:%d", o.Host, o.Port)
		if o.Address != "" && o.Address != o.Host {
			dest += " (" + o.Address + ")"
		}
		during := stepOf[o.RequestID]
		if during == "" {
			during = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\trule %d\t%s\n", during, dest, o.Action, o.Rule, o.Reason)
	}
	tw.Flush()

	checks := expectations(r, counts, raised, decisions)
	checks = append(checks, presentTelemetry(w, &r.otel)...)
	fmt.Fprintln(w, "\nExpected outcomes")
	passed := 0
	for _, c := range checks {
		mark := "ok  "
		if !c.ok {
			mark = "FAIL"
		} else {
			passed++
		}
		fmt.Fprintf(w, "  %s %s\n", mark, c.what)
	}
	verdict := "all expected outcomes happened"
	if passed < len(checks) {
		verdict = fmt.Sprintf("%d of %d expected outcomes did NOT happen", len(checks)-passed, len(checks))
	}
	fmt.Fprintf(w, "\nlambdarasp demo: %d invocations in %.1f s — %d served, %d blocked, %d refused by decisions, %d function errors; %d anomaly types alerted; %s.\n",
		total, took.Seconds(), all[served], all[blocked], all[quarantine]+all[blockedIP], all[failed], len(raised), verdict)
	return passed == len(checks)
}

type check struct {
	what string
	ok   bool
}

// expectations are what the scenario must show, step by step.
func expectations(r *result, counts []map[string]int, raised map[string]alertLine, decisions map[string]int) []check {
	step := func(name string) map[string]int {
		for i, s := range r.steps {
			if s.name == name {
				return counts[i]
			}
		}
		return nil
	}
	sent := func(name string) int {
		for _, s := range r.steps {
			if s.name == name {
				return len(s.calls)
			}
		}
		return -1
	}
	action := func(typ, prefix string) bool {
		a, ok := raised[typ]
		return ok && strings.HasPrefix(a.Action, prefix)
	}
	steadyAlerts := 0
	for _, a := range r.logs.alerts {
		for i, s := range r.steps {
			if s.name != "steady traffic from four sources" {
				continue
			}
			for _, o := range r.calls[i] {
				if o.requestID == a.RequestID {
					steadyAlerts++
				}
			}
		}
	}
	repeat := step("one client keeps trying")
	webhookAlerts := 0
	for _, b := range r.webhook {
		if strings.Contains(b, `"source":"lambdarasp"`) {
			webhookAlerts++
		}
	}
	// The outbound steps: the never-seen host's alert and the refusal of
	// the next call to it; the metadata call stopped, by the inbound rules
	// or at dial time.
	newDest := strings.TrimPrefix(newHost, "http://") + ":80"
	newAlert, refusedNext := false, false
	for _, a := range r.logs.alerts {
		if a.Type == "egress_new_destination" && a.Subject == newDest && strings.HasPrefix(a.Action, "deny_destination") {
			newAlert = true
		}
	}
	ssrf := map[string]bool{} // request ids
	for _, o := range r.logs.outbound {
		if o.Host+":"+fmt.Sprint(o.Port) == newDest && o.Rule == 100994 && o.Action == "block" {
			refusedNext = true
		}
		if o.Reason == "instance metadata" && o.Action == "block" {
			ssrf[o.RequestID] = true
		}
	}
	// The metadata webhook is stopped by the inbound rules (no outbound
	// call is made) or, past them, at dial time (a refused call).
	metadataStopped, metadataCalls := false, 0
	for i, s := range r.steps {
		if s.name != "SSRF: metadata webhook" {
			continue
		}
		for _, o := range r.calls[i] {
			metadataStopped = ssrf[o.requestID] || classify(o, r.logs.enforced) == blocked
			if ssrf[o.requestID] {
				metadataCalls++
			}
		}
	}
	return []check{
		{"steady traffic from HTTP, SQS, S3 and direct invocations is served (orders charged at the payment service), and raises nothing",
			step("steady traffic from four sources")[served] == sent("steady traffic from four sources") && steadyAlerts == 0 && r.charges >= 10},
		{"an outbound call to a never-seen host raises egress_new_destination; the policy denies the destination and the wrapper refuses the next call to it",
			newAlert && refusedNext && step("order webhooks to a never-seen host")[served] == 2},
		{"a webhook at the instance metadata written 169.254.43518 never leaves: rule 100110 blocks the order, or the wrapper refuses the call at dial time",
			metadataStopped},
		{"every injection attempt is blocked, on every source",
			step("injection attempts, one per source")[blocked] == sent("injection attempts, one per source")},
		{"a client that keeps attacking is an attacker; its IP is blocked and its clean request refused, while others are served",
			action("attacker", "block_ip 203.0.113.66") && repeat[blocked] == 3 && repeat[blockedIP] == 1 && repeat[served] == 1},
		{"the slow-down raises a duration anomaly",
			raised["duration"].Type != "" && step("slow-down: the report query")[served] == sent("slow-down: the report query")},
		{"the error burst raises an error_rate anomaly",
			raised["error_rate"].Type != "" && step("error burst: gift cards down")[failed] == sent("error burst: gift cards down")},
		{"the attack wave raises attack_wave, and the policy quarantines the function",
			action("attack_wave", "quarantine until") && step("attack wave from many addresses")[served] == 0},
		{"the wrapper refuses every invocation in quarantine, on every source, with the trigger's blocked response",
			step("quarantine")[quarantine] == sent("quarantine") && decisions["quarantine"] >= sent("quarantine")},
		{"every alert reaches the webhook, and the extension saw every invocation's report with its outbound calls",
			webhookAlerts == len(r.logs.alerts) && len(r.logs.alerts) > 0 && shutdownCount(r, "reports") == totalCalls(r) &&
				shutdownCount(r, "outbound_calls") == r.charges+webhookCalls+metadataCalls},
	}
}

// webhookCalls are the outbound step's calls to the never-seen host.
const webhookCalls = 2

// shutdownCount is a counter of the extension's last line; -1 when it
// has none.
func shutdownCount(r *result, field string) int {
	if n, ok := r.logs.shutdown[field].(float64); ok {
		return int(n)
	}
	return -1
}

func totalCalls(r *result) int {
	n := 0
	for _, s := range r.steps {
		n += len(s.calls)
	}
	return n
}

func dash(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func dashS(s string) string {
	if s == "" {
		return "alert only"
	}
	return s
}
