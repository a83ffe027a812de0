package extension

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/otlp"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// Config is the extension's settings. FromEnv reads them from the
// environment; a zero field takes the default written beside it.
type Config struct {
	// Name is the name the extension registers under: Lambda requires its
	// file name in /opt/extensions. Default "lambdarasp".
	Name string
	// RuntimeAPI is AWS_LAMBDA_RUNTIME_API (host:port). Required.
	RuntimeAPI string
	// FunctionName names the function in alerts (AWS_LAMBDA_FUNCTION_NAME).
	FunctionName string
	// ReportAddr is where the wrapper's reports arrive (UDP, loopback).
	// Default report.DefaultAddr, 127.0.0.1:7431.
	ReportAddr string
	// TelemetryPort is the port of the Telemetry API listener; -1 picks a
	// free one. Default 7432.
	TelemetryPort int
	// DecisionsFile is where decisions are published. Default
	// decision.DefaultPath.
	DecisionsFile string
	// PolicyFile is the policy (see Policy); a file that does not exist
	// means the default policy, alert only. Default
	// /opt/lambdarasp/policy.json, a file in the layer.
	PolicyFile string
	// PolicyURL, when set, is polled for the policy every PolicyPoll
	// (default 1m) with If-None-Match; what it serves replaces the file's
	// policy. An unreachable or invalid source keeps the last good policy
	// and raises one alert.
	PolicyURL  string
	PolicyPoll time.Duration
	// ReportWait bounds the wait for an invocation's report once the
	// runtime is done (or from INVOKE without telemetry), at most 20 ms.
	// Default 20 ms; a negative value does not wait.
	ReportWait time.Duration
	// WebhookURL receives alerts (http or https), in WebhookFormat "json"
	// (default) or "slack". Empty: no webhook.
	WebhookURL    string
	WebhookFormat string
	// OTel is what the standard OTEL_* variables say: with an
	// OTEL_EXPORTER_OTLP_(TRACES_|METRICS_|LOGS_)ENDPOINT, the extension
	// relays the wrapper's spans and sends its own metrics and alert logs
	// there. Without one, nothing is exported.
	OTel otlp.Settings
	// OTLPAddr is where the extension takes OTLP/HTTP from the wrapper
	// (loopback). Default otlp.DefaultReceiver, 127.0.0.1:7433; "off":
	// no receiver (the extension still exports its own metrics and logs).
	OTLPAddr string
	// OTLPQueueBytes bounds what waits for the backend; past it the
	// oldest requests are dropped and counted. Default 4 MiB.
	OTLPQueueBytes int

	// CodeDir is the function's code: its digest is checked against
	// CodeSHA256, and the function's executable is found there. Default
	// LAMBDA_TASK_ROOT where the extension sees it (Lambda shows it to the
	// runtime only), else /var/task.
	CodeDir string
	// CodeSHA256 is the code's expected digest, 64 hex digits, as
	// lambdarasp digest prints it (see internal/codedigest). Empty: the
	// code is not checked.
	CodeSHA256 string
	// Handler is _HANDLER, where the extension sees it: the executable's
	// name in CodeDir when there is no bootstrap.
	Handler string
	// VulnFile is an offline vulnerability list, OSV JSON (see loadVulns),
	// against which the modules compiled into the function are checked at
	// start. Empty: modules are listed, not checked.
	VulnFile string
	// SecretsAccepted are variables the start self-check does not report
	// as secrets: the deployer knows and accepts them (a Slack webhook URL
	// in LAMBDARASP_WEBHOOK_URL, say).
	SecretsAccepted []string
	// Environ is the environment checked for secrets at start, as
	// os.Environ returns it (the extension shares the function's
	// variables). Nil: none is checked.
	Environ []string

	// Stdout receives the alert lines. Default: discarded.
	Stdout io.Writer
	// Logger receives the extension's own diagnostics. Default: discarded.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// HTTPClient sends webhooks and polls the policy source. Default: a
	// client that ignores proxy variables (it follows redirects as
	// net/http does).
	HTTPClient *http.Client
	// HostsFile is read for sandbox.localdomain, the address Lambda asks
	// telemetry listeners to use. Default /etc/hosts; when it does not
	// list the name, the listener takes 127.0.0.1.
	HostsFile string

	envErr error // what FromEnv could not parse: Run reports it as an init error
}

// Defaults.
const (
	defaultName          = "lambdarasp"
	defaultTelemetryPort = 7432
	defaultPolicyFile    = "/opt/lambdarasp/policy.json"
	defaultCodeDir       = "/var/task"
	maxReportWait        = 20 * time.Millisecond
	defaultOTLPQueue     = 4 << 20
	minOTLPQueue         = 64 << 10
)

// Environment variables, read in this one place.
const (
	envRuntimeAPI      = "AWS_LAMBDA_RUNTIME_API"
	envFunctionName    = "AWS_LAMBDA_FUNCTION_NAME"
	envReportAddr      = "LAMBDARASP_REPORT_ADDR"
	envTelemetryPort   = "LAMBDARASP_TELEMETRY_PORT"
	envDecisions       = "LAMBDARASP_DECISIONS_FILE"
	envPolicy          = "LAMBDARASP_POLICY_FILE"
	envPolicyURL       = "LAMBDARASP_POLICY_URL"
	envPolicyPoll      = "LAMBDARASP_POLICY_POLL"
	envReportWait      = "LAMBDARASP_REPORT_WAIT"
	envWebhook         = "LAMBDARASP_WEBHOOK_URL"
	envWebhookFormat   = "LAMBDARASP_WEBHOOK_FORMAT"
	envOTLPAddr        = "LAMBDARASP_OTLP_ADDR"
	envOTLPQueue       = "LAMBDARASP_OTLP_QUEUE_BYTES"
	envCodeDir         = "LAMBDARASP_CODE_DIR"
	envCodeSHA256      = "LAMBDARASP_CODE_SHA256"
	envVulnFile        = "LAMBDARASP_VULN_FILE"
	envSecretsAccepted = "LAMBDARASP_SECRETS_ACCEPTED"
	envTaskRoot        = "LAMBDA_TASK_ROOT"
	envHandler         = "_HANDLER"
)

// FromEnv reads the settings from the environment. A variable it cannot
// use is kept as an error that Run, once registered, reports to Lambda as
// an init error: the message names the variable and what it accepts, and
// does not repeat a value that may be a secret (the webhook URL).
func FromEnv(getenv func(string) string) Config {
	c, err := fromEnv(getenv)
	c.envErr = err
	return c
}

func fromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		RuntimeAPI:    getenv(envRuntimeAPI),
		FunctionName:  getenv(envFunctionName),
		ReportAddr:    strings.TrimSpace(getenv(envReportAddr)),
		DecisionsFile: strings.TrimSpace(getenv(envDecisions)),
		PolicyFile:    strings.TrimSpace(getenv(envPolicy)),
		PolicyURL:     strings.TrimSpace(getenv(envPolicyURL)),
		WebhookURL:    strings.TrimSpace(getenv(envWebhook)),
		WebhookFormat: strings.ToLower(strings.TrimSpace(getenv(envWebhookFormat))),
		OTLPAddr:      strings.TrimSpace(getenv(envOTLPAddr)),
		CodeDir:       strings.TrimSpace(getenv(envCodeDir)),
		CodeSHA256:    strings.TrimSpace(getenv(envCodeSHA256)),
		Handler:       strings.TrimSpace(getenv(envHandler)),
		VulnFile:      strings.TrimSpace(getenv(envVulnFile)),
	}
	for _, name := range strings.Split(getenv(envSecretsAccepted), ",") {
		if name = strings.TrimSpace(name); name != "" {
			c.SecretsAccepted = append(c.SecretsAccepted, name)
		}
	}
	if c.CodeDir == "" {
		c.CodeDir = strings.TrimSpace(getenv(envTaskRoot))
	}
	o, err := otlp.FromEnv(getenv)
	if err != nil {
		return c, fmt.Errorf("extension: %w", err)
	}
	c.OTel = o
	if v := strings.TrimSpace(getenv(envOTLPQueue)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < minOTLPQueue {
			return c, fmt.Errorf("extension: %s=%q: want a number of bytes, %d or more", envOTLPQueue, v, minOTLPQueue)
		}
		c.OTLPQueueBytes = n
	}
	if v := strings.TrimSpace(getenv(envTelemetryPort)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 65535 {
			return c, fmt.Errorf("extension: %s=%q: want a port, 1-65535, or 0 for any free port", envTelemetryPort, v)
		}
		c.TelemetryPort = n
		if n == 0 {
			c.TelemetryPort = -1
		}
	}
	if v := strings.TrimSpace(getenv(envPolicyPoll)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return c, fmt.Errorf("extension: %s=%q: want a duration of 1s or more, such as 1m", envPolicyPoll, v)
		}
		c.PolicyPoll = d
	}
	if v := strings.TrimSpace(getenv(envReportWait)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d > maxReportWait {
			return c, fmt.Errorf("extension: %s=%q: want a duration up to %v, such as 20ms (0 does not wait)", envReportWait, v, maxReportWait)
		}
		c.ReportWait = d
		if d == 0 {
			c.ReportWait = -1
		}
	}
	return c, c.check()
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = defaultName
	}
	if c.ReportAddr == "" {
		c.ReportAddr = report.DefaultAddr
	}
	if c.TelemetryPort == 0 {
		c.TelemetryPort = defaultTelemetryPort
	}
	if c.DecisionsFile == "" {
		c.DecisionsFile = decision.DefaultPath
	}
	if c.PolicyFile == "" {
		c.PolicyFile = defaultPolicyFile
	}
	if c.ReportWait == 0 {
		c.ReportWait = maxReportWait
	}
	if c.PolicyPoll == 0 {
		c.PolicyPoll = time.Minute
	}
	if c.WebhookFormat == "" {
		c.WebhookFormat = "json"
	}
	if c.OTLPAddr == "" {
		c.OTLPAddr = otlp.DefaultReceiver
	}
	if c.OTLPQueueBytes == 0 {
		c.OTLPQueueBytes = defaultOTLPQueue
	}
	if c.CodeDir == "" {
		c.CodeDir = defaultCodeDir
	}
	c.CodeSHA256 = strings.ToLower(c.CodeSHA256)
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second}}
	}
	if c.HostsFile == "" {
		c.HostsFile = "/etc/hosts"
	}
	return c
}

// check validates the settings a deployment gets wrong.
func (c Config) check() error {
	if c.envErr != nil {
		return c.envErr
	}
	c = c.withDefaults()
	if !report.Loopback(c.ReportAddr) {
		return fmt.Errorf("extension: %s=%q: want a loopback address and port such as %s", envReportAddr, c.ReportAddr, report.DefaultAddr)
	}
	if c.OTLPAddr != "off" && !report.Loopback(c.OTLPAddr) {
		return fmt.Errorf("extension: %s=%q: want off, or a loopback address and port such as %s", envOTLPAddr, c.OTLPAddr, otlp.DefaultReceiver)
	}
	if c.OTLPQueueBytes < minOTLPQueue {
		return fmt.Errorf("extension: OTLP queue of %d bytes: want %d or more (%s)", c.OTLPQueueBytes, minOTLPQueue, envOTLPQueue)
	}
	if c.ReportWait > maxReportWait {
		return fmt.Errorf("extension: report wait %v: at most %v", c.ReportWait, maxReportWait)
	}
	for _, v := range []struct{ name, url string }{{envWebhook, c.WebhookURL}, {envPolicyURL, c.PolicyURL}} {
		if v.url == "" {
			continue
		}
		u, err := url.Parse(v.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("extension: %s: want an http:// or https:// URL", v.name)
		}
	}
	if c.PolicyPoll < time.Second {
		return fmt.Errorf("extension: policy poll %v: want 1s or more (%s)", c.PolicyPoll, envPolicyPoll)
	}
	if c.WebhookFormat != "json" && c.WebhookFormat != "slack" {
		return fmt.Errorf("extension: %s=%q: want json or slack", envWebhookFormat, c.WebhookFormat)
	}
	if d := c.CodeSHA256; d != "" && (len(d) != 64 || strings.Trim(d, "0123456789abcdef") != "") {
		return fmt.Errorf("extension: %s=%q: want the 64 hex digits lambdarasp digest prints", envCodeSHA256, d)
	}
	return nil
}
