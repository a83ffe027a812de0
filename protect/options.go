package protect

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/egress"
	"github.com/lambdarasp/lambdarasp/internal/otlp"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// Mode says what Handler does with an event the rules would block.
type Mode string

// The modes. Block is the default.
const (
	// Block answers the trigger with a refusal it understands (see Handler)
	// and does not run the handler on the blocked event or records.
	Block Mode = "block"
	// Detect logs findings and always runs the handler.
	Detect Mode = "detect"
	// Off passes every event straight to the handler, uninspected.
	Off Mode = "off"
)

// Limits bound the work done on one event; what exceeds a bound is blocked
// with a finding (rules 100901-100904), never passed on unseen. The zero
// value of a field means its default.
type Limits struct {
	// MaxDepth is the deepest JSON nesting inspected (default 64).
	MaxDepth int
	// MaxFields is the most values inspected in one record or HTTP request
	// (default 10,000).
	MaxFields int
	// MaxValueBytes is the longest single value inspected (default 1 MiB).
	MaxValueBytes int
	// MaxRecords is the most records inspected in one batch (default
	// 10,000, the largest batch any event source mapping delivers).
	MaxRecords int
}

// config is what the options build. Defaults are written beside the fields.
type config struct {
	mode         Mode          // Block
	paranoia     int           // 1
	threshold    int           // 5 (CRS default: one critical rule)
	partialBatch bool          // false: a blocked record fails the whole batch
	failClosed   bool          // false: inspection failure runs the handler
	ruleFiles    []string      // none
	exclusions   []exclusion   // none
	limits       Limits        // see Limits
	logger       *slog.Logger  // JSON on stderr
	snippets     bool          // false: never log matched data
	runtimeAPI   string        // AWS_LAMBDA_RUNTIME_API
	reference    bool          // false: the fast path decides clean events
	reportAddr   string        // report.DefaultAddr; "off": no reports to the extension
	decisions    string        // decision.DefaultPath; "off": no decisions enforced
	otel         otlp.Settings // the OTEL_* variables: no endpoint, no traces
	otlpAddr     string        // otlp.DefaultReceiver; "off": export directly

	// Outbound calls (Transport, Client, DialContext).
	egressMode     Mode           // "": the same as mode
	egressAllow    []string       // none: every public destination
	egressDeny     []string       // none
	egressInternal []string       // none: every internal address refused
	lookup         lookupFunc     // net.DefaultResolver.LookupNetIP
	egress         *egress.Policy // built by validate from the above
}

type exclusion struct {
	rule int
	path string
}

func defaults() config {
	return config{
		mode:       Block,
		paranoia:   1,
		threshold:  5,
		limits:     Limits{MaxDepth: 64, MaxFields: 10000, MaxValueBytes: 1 << 20, MaxRecords: 10000},
		runtimeAPI: os.Getenv("AWS_LAMBDA_RUNTIME_API"),
		reportAddr: report.DefaultAddr,
		decisions:  decision.DefaultPath,
		otlpAddr:   otlp.DefaultReceiver,
	}
}

// Option configures Handler and NewInspector. Options set defaults; the
// LAMBDARASP_* environment variables override them.
type Option func(*config)

// WithMode sets the mode (default Block). Variable: LAMBDARASP_MODE.
func WithMode(m Mode) Option { return func(c *config) { c.mode = m } }

// WithParanoia sets the CRS paranoia level, 1 to 4 (default 1). Higher
// levels catch more and block more clean traffic. Variable:
// LAMBDARASP_PARANOIA.
func WithParanoia(level int) Option { return func(c *config) { c.paranoia = level } }

// WithAnomalyThreshold sets the inbound anomaly score at which an event is
// blocked (default 5: one critical rule). Variable:
// LAMBDARASP_ANOMALY_THRESHOLD.
func WithAnomalyThreshold(score int) Option { return func(c *config) { c.threshold = score } }

// WithPartialBatch says the event source mapping has ReportBatchItemFailures
// on, so blocked SQS, Kinesis and DynamoDB Streams records are returned as
// batchItemFailures while the rest of the batch is processed (default false:
// one blocked record fails the whole invocation). Variable:
// LAMBDARASP_PARTIAL_BATCH.
func WithPartialBatch(on bool) Option { return func(c *config) { c.partialBatch = on } }

// WithFailClosed blocks events when inspection itself fails (default false:
// the handler runs and the failure is logged). Variable: LAMBDARASP_FAIL
// (open or closed).
func WithFailClosed(on bool) Option { return func(c *config) { c.failClosed = on } }

// WithRuleFiles adds SecLang files, loaded after the built-in rules and
// before the anomaly evaluation. Variable: LAMBDARASP_RULES (comma-separated
// paths, added to these).
func WithRuleFiles(paths ...string) Option {
	return func(c *config) { c.ruleFiles = append(c.ruleFiles, paths...) }
}

// WithExclusion turns rule off everywhere (path "") or for the value at path
// only. Paths are written as findings show them, relative to the record for
// batch events: "body.comment", "query.q", "headers.referer",
// "Sns.Message.text". Variable: LAMBDARASP_EXCLUDE ("942100,941100@body.bio").
func WithExclusion(rule int, path string) Option {
	return func(c *config) { c.exclusions = append(c.exclusions, exclusion{rule, path}) }
}

// WithLimits sets the inspection bounds; zero fields keep their defaults.
// Variables: LAMBDARASP_MAX_DEPTH, LAMBDARASP_MAX_FIELDS,
// LAMBDARASP_MAX_VALUE_BYTES, LAMBDARASP_MAX_RECORDS.
func WithLimits(l Limits) Option {
	return func(c *config) {
		setIfPositive(&c.limits.MaxDepth, l.MaxDepth)
		setIfPositive(&c.limits.MaxFields, l.MaxFields)
		setIfPositive(&c.limits.MaxValueBytes, l.MaxValueBytes)
		setIfPositive(&c.limits.MaxRecords, l.MaxRecords)
	}
}

func setIfPositive(dst *int, v int) {
	if v > 0 {
		*dst = v
	}
}

// WithLogger sends finding and failure logs to l (default: JSON lines on
// stderr, which Lambda ships to CloudWatch Logs).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithLogSnippets adds to each finding up to 32 bytes of the value that
// matched, control characters replaced (default false: matched data never
// reaches the logs). Variable: LAMBDARASP_LOG_SNIPPETS.
func WithLogSnippets(on bool) Option { return func(c *config) { c.snippets = on } }

// WithReferenceEngine runs every rule over every event, as plain Coraza
// would (default false). The default engine gives the same verdicts and
// findings — its tests compare the two — at a fraction of the cost; the
// reference is there to repeat that comparison, and to keep working if a
// Coraza upgrade changes what the fast path reads. Variable:
// LAMBDARASP_ENGINE=reference (or fast, the default).
func WithReferenceEngine() Option { return func(c *config) { c.reference = true } }

// WithEgressMode sets what Transport, Client and DialContext do with a
// call the egress rules refuse (default: the same as WithMode). Block
// fails the call with a *DeniedError; Detect logs and reports it and lets
// it through; Off checks and records nothing. Instance and container
// metadata, the Runtime API and the extension's deny_destination
// decisions are refused in modes block and detect alike. Variable:
// LAMBDARASP_EGRESS_MODE.
func WithEgressMode(m Mode) Option { return func(c *config) { c.egressMode = m } }

// WithEgressAllow makes entries the only destinations outbound calls may
// reach (default: none, every public destination). An entry is a host
// name ("api.example.com"), a wildcard ("*.amazonaws.com": any name below
// it; "*": anything), an IP address or a range ("203.0.113.0/24"); a
// destination passes by its name or by the address it resolves to.
// Addresses and ranges here also open the internal addresses they cover
// (see WithEgressInternal). Variable: LAMBDARASP_EGRESS_ALLOW
// (comma-separated; replaces the option's list).
func WithEgressAllow(entries ...string) Option {
	return func(c *config) { c.egressAllow = append(c.egressAllow, entries...) }
}

// WithEgressDeny refuses the destinations entries name, whatever else
// allows them (default: none). Entries are written as for
// WithEgressAllow. Variable: LAMBDARASP_EGRESS_DENY (comma-separated;
// replaces the option's list).
func WithEgressDeny(entries ...string) Option {
	return func(c *config) { c.egressDeny = append(c.egressDeny, entries...) }
}

// WithEgressInternal opens internal addresses to outbound calls: ranges
// or addresses ("10.0.0.0/16" for a VPC's databases and interface
// endpoints, "127.0.0.1" for a local sidecar). By default loopback,
// link-local, private (10/8, 172.16/12, 192.168/16, fc00::/7), shared
// (100.64/10), unspecified, multicast and reserved addresses are refused.
// Opened addresses also pass WithEgressAllow's list. A metadata address
// is opened only by an entry that is exactly that address; the Runtime
// API never. Variable: LAMBDARASP_EGRESS_INTERNAL (comma-separated;
// replaces the option's list).
func WithEgressInternal(ranges ...string) Option {
	return func(c *config) { c.egressInternal = append(c.egressInternal, ranges...) }
}

// Environment variables, read in this one place.
const (
	envMode      = "LAMBDARASP_MODE"
	envParanoia  = "LAMBDARASP_PARANOIA"
	envThreshold = "LAMBDARASP_ANOMALY_THRESHOLD"
	envPartial   = "LAMBDARASP_PARTIAL_BATCH"
	envFail      = "LAMBDARASP_FAIL"
	envRules     = "LAMBDARASP_RULES"
	envExclude   = "LAMBDARASP_EXCLUDE"
	envSnippets  = "LAMBDARASP_LOG_SNIPPETS"
	envMaxDepth  = "LAMBDARASP_MAX_DEPTH"
	envMaxFields = "LAMBDARASP_MAX_FIELDS"
	envMaxValue  = "LAMBDARASP_MAX_VALUE_BYTES"
	envMaxRecs   = "LAMBDARASP_MAX_RECORDS"
	envEngine    = "LAMBDARASP_ENGINE"
	envReport    = "LAMBDARASP_REPORT_ADDR"
	envDecisions = "LAMBDARASP_DECISIONS_FILE"
	envOTLPAddr  = "LAMBDARASP_OTLP_ADDR"

	envEgressMode     = "LAMBDARASP_EGRESS_MODE"
	envEgressAllow    = "LAMBDARASP_EGRESS_ALLOW"
	envEgressDeny     = "LAMBDARASP_EGRESS_DENY"
	envEgressInternal = "LAMBDARASP_EGRESS_INTERNAL"
)

// newConfig applies opts over the defaults, then the environment over both,
// and validates the result. Errors name the setting and what it accepts.
func newConfig(getenv func(string) string, opts []Option) (config, error) {
	c := defaults()
	for _, o := range opts {
		o(&c)
	}
	if err := c.fromEnv(getenv); err != nil {
		return c, err
	}
	if c.logger == nil {
		c.logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return c, c.validate()
}

func (c *config) fromEnv(getenv func(string) string) error {
	modes := []struct {
		name string
		dst  *Mode
	}{{envMode, &c.mode}, {envEgressMode, &c.egressMode}}
	for _, m := range modes {
		v := getenv(m.name)
		if v == "" {
			continue
		}
		*m.dst = Mode(strings.ToLower(strings.TrimSpace(v)))
		if !m.dst.valid() {
			return fmt.Errorf("protect: %s=%q: want block, detect or off", m.name, v)
		}
	}
	ints := []struct {
		name string
		dst  *int
		min  int
	}{
		{envParanoia, &c.paranoia, 1}, {envThreshold, &c.threshold, 1},
		{envMaxDepth, &c.limits.MaxDepth, 1}, {envMaxFields, &c.limits.MaxFields, 1},
		{envMaxValue, &c.limits.MaxValueBytes, 1}, {envMaxRecs, &c.limits.MaxRecords, 1},
	}
	for _, i := range ints {
		v := getenv(i.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < i.min {
			return fmt.Errorf("protect: %s=%q: want a whole number, %d or more", i.name, v, i.min)
		}
		*i.dst = n
	}
	bools := []struct {
		name string
		dst  *bool
	}{{envPartial, &c.partialBatch}, {envSnippets, &c.snippets}}
	for _, b := range bools {
		v := getenv(b.name)
		if v == "" {
			continue
		}
		on, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("protect: %s=%q: want true or false", b.name, v)
		}
		*b.dst = on
	}
	choices := []struct {
		name    string
		off, on string
		dst     *bool
	}{{envFail, "open", "closed", &c.failClosed}, {envEngine, "fast", "reference", &c.reference}}
	for _, ch := range choices {
		switch v := strings.ToLower(strings.TrimSpace(getenv(ch.name))); v {
		case "":
		case ch.off, ch.on:
			*ch.dst = v == ch.on
		default:
			return fmt.Errorf("protect: %s=%q: want %s or %s", ch.name, getenv(ch.name), ch.off, ch.on)
		}
	}
	lists := []struct {
		name string
		dst  *[]string
	}{{envEgressAllow, &c.egressAllow}, {envEgressDeny, &c.egressDeny}, {envEgressInternal, &c.egressInternal}}
	for _, l := range lists {
		if v := getenv(l.name); strings.TrimSpace(v) != "" {
			*l.dst = splitList(v)
		}
	}
	if v := strings.TrimSpace(getenv(envReport)); v != "" {
		c.reportAddr = v
	}
	if v := strings.TrimSpace(getenv(envDecisions)); v != "" {
		c.decisions = v
	}
	if v := strings.TrimSpace(getenv(envOTLPAddr)); v != "" {
		c.otlpAddr = v
	}
	o, err := otlp.FromEnv(getenv)
	if err != nil {
		return fmt.Errorf("protect: %w", err)
	}
	c.otel = o
	c.ruleFiles = append(c.ruleFiles, splitList(getenv(envRules))...)
	for _, e := range splitList(getenv(envExclude)) {
		id, path, _ := strings.Cut(e, "@")
		n, err := strconv.Atoi(id)
		if err != nil || n <= 0 {
			return fmt.Errorf("protect: %s entry %q: want RULE or RULE@PATH, e.g. 942100 or 941100@body.bio", envExclude, e)
		}
		c.exclusions = append(c.exclusions, exclusion{n, path})
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (m Mode) valid() bool { return m == Block || m == Detect || m == Off }

func (c *config) validate() error {
	switch {
	case !c.mode.valid():
		return fmt.Errorf("protect: mode %q: want block, detect or off (WithMode, %s)", c.mode, envMode)
	case c.paranoia < 1 || c.paranoia > 4:
		return fmt.Errorf("protect: paranoia level %d: want 1 to 4 (WithParanoia, %s)", c.paranoia, envParanoia)
	case c.threshold < 1:
		return fmt.Errorf("protect: anomaly threshold %d: want 1 or more (WithAnomalyThreshold, %s)", c.threshold, envThreshold)
	}
	if c.egressMode == "" {
		c.egressMode = c.mode
	}
	if !c.egressMode.valid() {
		return fmt.Errorf("protect: egress mode %q: want block, detect or off (WithEgressMode, %s)", c.egressMode, envEgressMode)
	}
	for _, l := range []struct {
		cfg      egress.Config
		opt, env string
	}{
		{egress.Config{Allow: c.egressAllow}, "WithEgressAllow", envEgressAllow},
		{egress.Config{Deny: c.egressDeny}, "WithEgressDeny", envEgressDeny},
		{egress.Config{Internal: c.egressInternal}, "WithEgressInternal", envEgressInternal},
	} {
		if _, err := egress.New(l.cfg); err != nil {
			return fmt.Errorf("protect: egress %v (%s, %s)", err, l.opt, l.env)
		}
	}
	p, err := egress.New(egress.Config{Allow: c.egressAllow, Deny: c.egressDeny, Internal: c.egressInternal, RuntimeAPI: c.runtimeAPI})
	if err != nil {
		return fmt.Errorf("protect: egress %v", err)
	}
	c.egress = p
	for _, a := range []struct{ name, addr, example string }{{envReport, c.reportAddr, report.DefaultAddr}, {envOTLPAddr, c.otlpAddr, otlp.DefaultReceiver}} {
		if a.addr != off {
			if err := loopback(a.addr, a.example); err != nil {
				return fmt.Errorf("protect: %s=%q: %v", a.name, a.addr, err)
			}
		}
	}
	for _, e := range c.exclusions {
		if e.rule <= 0 {
			return fmt.Errorf("protect: exclusion of rule %d: want a positive rule id (WithExclusion, %s)", e.rule, envExclude)
		}
		if strings.ContainsAny(e.path, "\"'|, \t\r\n") {
			return fmt.Errorf("protect: exclusion path %q: quotes, commas, pipes and spaces are not allowed (WithExclusion, %s)", e.path, envExclude)
		}
	}
	return nil
}

// off turns the extension link's parts off (LAMBDARASP_REPORT_ADDR=off,
// LAMBDARASP_DECISIONS_FILE=off).
const off = "off"

// loopback checks that addr is a loopback IP and port: reports never
// leave the execution environment.
func loopback(addr, example string) error {
	if !report.Loopback(addr) {
		return fmt.Errorf("want off, or a loopback address and port such as %s", example)
	}
	return nil
}
