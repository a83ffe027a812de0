package otlp

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Signal is one kind of OTLP data.
type Signal string

// The signals, as they appear in the OTLP/HTTP paths (/v1/traces…).
const (
	Traces  Signal = "traces"
	Metrics Signal = "metrics"
	Logs    Signal = "logs"
)

// Target is where one signal is exported: an OTLP/HTTP URL, with the
// headers, timeout and compression the variables give.
type Target struct {
	URL     string // "" when the signal is not exported
	Headers [][2]string
	Timeout time.Duration // per attempt; default 10 s
	Gzip    bool
}

// Settings are what the standard OTEL_* variables say.
type Settings struct {
	// Disabled is OTEL_SDK_DISABLED=true: nothing is recorded or sent.
	Disabled bool
	Traces   Target
	Metrics  Target
	Logs     Target
	// Sampler is OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG; the
	// default is parentbased_always_on.
	Sampler Sampler
	// MetricInterval is OTEL_METRIC_EXPORT_INTERVAL, default 60 s.
	MetricInterval time.Duration
	// Resource is the resource's attributes, in order: service.name,
	// OTEL_RESOURCE_ATTRIBUTES, then what Lambda's variables say.
	Resource [][2]string
}

// Sampler decides which traces are recorded.
type Sampler struct {
	Ratio       float64 // 1: always on, 0: always off
	ParentBased bool    // a sampled parent's children are sampled, an unsampled one's are not
}

// Export reports whether any signal is exported.
func (s Settings) Export() bool {
	return !s.Disabled && (s.Traces.URL != "" || s.Metrics.URL != "" || s.Logs.URL != "")
}

// Target returns the target of sig.
func (s Settings) Target(sig Signal) Target {
	switch sig {
	case Traces:
		return s.Traces
	case Metrics:
		return s.Metrics
	}
	return s.Logs
}

// The variables, read here alone.
const (
	envDisabled       = "OTEL_SDK_DISABLED"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envHeaders        = "OTEL_EXPORTER_OTLP_HEADERS"
	envTimeout        = "OTEL_EXPORTER_OTLP_TIMEOUT"
	envCompression    = "OTEL_EXPORTER_OTLP_COMPRESSION"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envServiceName    = "OTEL_SERVICE_NAME"
	envResource       = "OTEL_RESOURCE_ATTRIBUTES"
	envSampler        = "OTEL_TRACES_SAMPLER"
	envSamplerArg     = "OTEL_TRACES_SAMPLER_ARG"
	envMetricInterval = "OTEL_METRIC_EXPORT_INTERVAL"
)

// DefaultTimeout is an export attempt's timeout unless
// OTEL_EXPORTER_OTLP_TIMEOUT says otherwise (the specification's default).
const DefaultTimeout = 10 * time.Second

// FromEnv reads the settings. Errors name the variable and what it
// accepts; a header's value (it may be a secret) is never repeated.
func FromEnv(getenv func(string) string) (Settings, error) {
	var s Settings
	if v := strings.TrimSpace(getenv(envDisabled)); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return s, fmt.Errorf("otlp: %s=%q: want true or false", envDisabled, v)
		}
		s.Disabled = on
	}
	for _, sig := range []Signal{Traces, Metrics, Logs} {
		t, err := target(getenv, sig)
		if err != nil {
			return s, err
		}
		switch sig {
		case Traces:
			s.Traces = t
		case Metrics:
			s.Metrics = t
		case Logs:
			s.Logs = t
		}
	}
	var err error
	if s.Sampler, err = sampler(getenv); err != nil {
		return s, err
	}
	s.MetricInterval = time.Minute
	if v := strings.TrimSpace(getenv(envMetricInterval)); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return s, fmt.Errorf("otlp: %s=%q: want milliseconds, more than 0", envMetricInterval, v)
		}
		s.MetricInterval = time.Duration(ms) * time.Millisecond
	}
	s.Resource, err = resource(getenv)
	return s, err
}

// signalEnv is the per-signal variant of a variable:
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT for OTEL_EXPORTER_OTLP_ENDPOINT.
func signalEnv(name string, sig Signal) string {
	return strings.Replace(name, "OTLP_", "OTLP_"+strings.ToUpper(string(sig))+"_", 1)
}

// lookup returns the per-signal variable if set, else the general one,
// and the name of the one it read.
func lookup(getenv func(string) string, name string, sig Signal) (string, string) {
	if n := signalEnv(name, sig); strings.TrimSpace(getenv(n)) != "" {
		return strings.TrimSpace(getenv(n)), n
	}
	return strings.TrimSpace(getenv(name)), name
}

func target(getenv func(string) string, sig Signal) (Target, error) {
	var t Target
	exporter := "OTEL_" + strings.ToUpper(string(sig)) + "_EXPORTER"
	switch v := strings.TrimSpace(getenv(exporter)); v {
	case "", "otlp":
	case "none":
		return t, nil
	default:
		return t, fmt.Errorf("otlp: %s=%q: want otlp or none", exporter, v)
	}
	if v, name := lookup(getenv, envProtocol, sig); v != "" && v != "http/protobuf" {
		return t, fmt.Errorf("otlp: %s=%q: want http/protobuf (lambdarasp sends OTLP over HTTP as protobuf; a collector's otlp receiver takes it on port 4318)", name, v)
	}
	endpoint, name := lookup(getenv, envEndpoint, sig)
	if endpoint == "" {
		return t, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return t, fmt.Errorf("otlp: %s: want an http:// or https:// URL, such as http://collector:4318", name)
	}
	if name == envEndpoint {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/" + string(sig)
	}
	t.URL = u.String()
	hv, hname := lookup(getenv, envHeaders, sig)
	if t.Headers, err = pairs(hv); err != nil {
		return t, fmt.Errorf("otlp: %s: %w", hname, err) // not the entry: it may hold a secret
	}
	t.Timeout = DefaultTimeout
	if v, name := lookup(getenv, envTimeout, sig); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return t, fmt.Errorf("otlp: %s=%q: want milliseconds, more than 0", name, v)
		}
		t.Timeout = time.Duration(ms) * time.Millisecond
	}
	switch v, name := lookup(getenv, envCompression, sig); v {
	case "", "none":
	case "gzip":
		t.Gzip = true
	default:
		return t, fmt.Errorf("otlp: %s=%q: want gzip or none", name, v)
	}
	return t, nil
}

func sampler(getenv func(string) string) (Sampler, error) {
	name := strings.TrimSpace(getenv(envSampler))
	arg := strings.TrimSpace(getenv(envSamplerArg))
	s := Sampler{Ratio: 1, ParentBased: true}
	switch name {
	case "", "parentbased_always_on":
	case "always_on":
		s.ParentBased = false
	case "always_off":
		s = Sampler{Ratio: 0}
	case "parentbased_always_off":
		s.Ratio = 0
	case "traceidratio", "parentbased_traceidratio":
		s.ParentBased = name != "traceidratio"
		if arg != "" {
			r, err := strconv.ParseFloat(arg, 64)
			if err != nil || r < 0 || r > 1 {
				return s, fmt.Errorf("otlp: %s=%q: want a ratio from 0 to 1", envSamplerArg, arg)
			}
			s.Ratio = r
		}
	default:
		return s, fmt.Errorf("otlp: %s=%q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", envSampler, name)
	}
	return s, nil
}

// resource collects the resource's attributes: service.name first
// (OTEL_SERVICE_NAME, else OTEL_RESOURCE_ATTRIBUTES', else the function's
// name), then OTEL_RESOURCE_ATTRIBUTES, then what Lambda's variables say
// unless OTEL_RESOURCE_ATTRIBUTES set it.
func resource(getenv func(string) string) ([][2]string, error) {
	user, err := pairs(getenv(envResource))
	if err != nil {
		return nil, fmt.Errorf("otlp: %s: %w", envResource, err)
	}
	has := func(key string) bool {
		for _, kv := range user {
			if kv[0] == key {
				return true
			}
		}
		return false
	}
	fn := getenv("AWS_LAMBDA_FUNCTION_NAME")
	name := strings.TrimSpace(getenv(envServiceName))
	if name == "" && !has("service.name") {
		name = fn
		if name == "" {
			name = "unknown_service:lambdarasp"
		}
	}
	var out [][2]string
	if name != "" {
		out = append(out, [2]string{"service.name", name})
	}
	for _, kv := range user {
		if kv[0] != "service.name" || name == "" {
			out = append(out, kv)
		}
	}
	for _, kv := range [][2]string{
		{"cloud.provider", "aws"},
		{"cloud.platform", "aws_lambda"},
		{"cloud.region", getenv("AWS_REGION")},
		{"faas.name", fn},
		{"faas.version", getenv("AWS_LAMBDA_FUNCTION_VERSION")},
		{"faas.instance", getenv("AWS_LAMBDA_LOG_STREAM_NAME")},
		{"telemetry.sdk.name", "lambdarasp"},
		{"telemetry.sdk.language", "go"},
	} {
		if kv[1] != "" && !has(kv[0]) {
			out = append(out, kv)
		}
	}
	return out, nil
}

// pairs reads "key=value,key=value", values URL-encoded, as the OTEL_*
// variables write headers and resource attributes.
func pairs(v string) ([][2]string, error) {
	var out [][2]string
	for _, kv := range strings.Split(v, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		dv, err := url.QueryUnescape(strings.TrimSpace(v))
		if !ok || k == "" || err != nil {
			return nil, errors.New("want key=value pairs separated by commas, values URL-encoded")
		}
		out = append(out, [2]string{k, dv})
	}
	return out, nil
}

// DefaultReceiver is where the lambdarasp extension takes OTLP/HTTP from
// the wrapper (and from any exporter in the function) unless
// LAMBDARASP_OTLP_ADDR says otherwise: loopback only. The port avoids
// the collector's 4317 and 4318, which another extension may hold.
const DefaultReceiver = "127.0.0.1:7433"
