package otlp

import (
	"strings"
	"testing"
	"time"

	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	s, err := FromEnv(env(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":         "http://collector:4318/",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://metrics.example.com/custom",
		"OTEL_EXPORTER_OTLP_HEADERS":          "api-key=s%20ecret, x-team=sec",
		"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT":   "500",
		"OTEL_EXPORTER_OTLP_COMPRESSION":      "gzip",
		"OTEL_LOGS_EXPORTER":                  "none",
		"OTEL_TRACES_SAMPLER":                 "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG":             "0.25",
		"OTEL_RESOURCE_ATTRIBUTES":            "service.name=ignored,deployment.environment.name=prod,cloud.region=override",
		"OTEL_SERVICE_NAME":                   "orders-api",
		"AWS_LAMBDA_FUNCTION_NAME":            "orders",
		"AWS_REGION":                          "eu-west-1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Traces.URL != "http://collector:4318/v1/traces" || s.Metrics.URL != "https://metrics.example.com/custom" || s.Logs.URL != "" {
		t.Errorf("URLs %q %q %q", s.Traces.URL, s.Metrics.URL, s.Logs.URL)
	}
	if s.Traces.Timeout != 500*time.Millisecond || s.Metrics.Timeout != DefaultTimeout || !s.Traces.Gzip {
		t.Errorf("timeouts %v %v, gzip %v", s.Traces.Timeout, s.Metrics.Timeout, s.Traces.Gzip)
	}
	if len(s.Traces.Headers) != 2 || s.Traces.Headers[0] != [2]string{"api-key", "s ecret"} {
		t.Errorf("headers %q", s.Traces.Headers)
	}
	if s.Sampler != (Sampler{Ratio: 0.25, ParentBased: true}) {
		t.Errorf("sampler %+v", s.Sampler)
	}
	got := map[string]string{}
	for _, kv := range s.Resource {
		if _, dup := got[kv[0]]; dup {
			t.Errorf("resource attribute %s twice", kv[0])
		}
		got[kv[0]] = kv[1]
	}
	if s.Resource[0] != [2]string{"service.name", "orders-api"} || got["cloud.region"] != "override" || got["faas.name"] != "orders" || got["deployment.environment.name"] != "prod" {
		t.Errorf("resource %q", s.Resource)
	}

	if s, _ := FromEnv(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"})); s.Export() {
		t.Error("OTEL_SDK_DISABLED=true: want nothing exported")
	}
	if s, _ := FromEnv(env(nil)); s.Export() || s.Sampler != (Sampler{Ratio: 1, ParentBased: true}) {
		t.Errorf("no variables: %+v, want nothing exported and parentbased_always_on", s)
	}
}

func TestFromEnvRefuses(t *testing.T) {
	for name, m := range map[string]map[string]string{
		"OTEL_EXPORTER_OTLP_PROTOCOL":       {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
		"OTEL_EXPORTER_OTLP_ENDPOINT":       {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
		"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1s"},
		"OTEL_EXPORTER_OTLP_HEADERS":        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_HEADERS": "novalue"},
		"OTEL_EXPORTER_OTLP_COMPRESSION":    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"},
		"OTEL_TRACES_SAMPLER":               {"OTEL_TRACES_SAMPLER": "sometimes"},
		"OTEL_TRACES_SAMPLER_ARG":           {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
		"OTEL_SDK_DISABLED":                 {"OTEL_SDK_DISABLED": "maybe"},
		"OTEL_METRICS_EXPORTER":             {"OTEL_METRICS_EXPORTER": "prometheus"},
		"OTEL_METRIC_EXPORT_INTERVAL":       {"OTEL_METRIC_EXPORT_INTERVAL": "-5"},
		"OTEL_RESOURCE_ATTRIBUTES":          {"OTEL_RESOURCE_ATTRIBUTES": "novalue"},
	} {
		_, err := FromEnv(env(m))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: error %v, want one naming %s", m, err, name)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error repeats a value", name)
		}
	}
}

// Buf's nested lengths, one byte or several, decode with the OTLP types.
func TestBufDecodes(t *testing.T) {
	long := strings.Repeat("x", 300) // a length of two bytes, inside one of two
	b := Resource([][2]string{{"service.name", "orders"}, {"long", long}})
	// b is field 1 of some message: the Resource is its bytes.
	num, typ, n := protowire.ConsumeTag(b)
	body, m := protowire.ConsumeBytes(b[n:])
	if num != 1 || typ != protowire.BytesType || m != len(b)-n {
		t.Fatalf("field %d type %d, %d of %d bytes", num, typ, m, len(b)-n)
	}
	var outer resourcepb.Resource
	if err := proto.Unmarshal(body, &outer); err != nil {
		t.Fatal(err)
	}
	if len(outer.Attributes) != 2 || outer.Attributes[1].Value.GetStringValue() != long {
		t.Errorf("decoded %v", outer.Attributes)
	}
}
