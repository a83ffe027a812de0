package bench

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/lambdarasp/lambdarasp/protect"
)

// What tracing costs (issue 7's budget: 100 µs per invocation, 10 ms of
// cold init, exporting to the extension). Run them alone with
//
//	go test -run '^$' -bench 'OTel' -benchmem ./bench/
//
// They are not case=…/impl=… benchmarks: make bench's table leaves them out.

// BenchmarkOTelInvoke times protect.Handler's Invoke on a small clean API
// Gateway event (so that inspection, the same in every case, does not
// drown the difference on a noisy machine) and a trivial handler: without an OTLP endpoint (off),
// exporting to the extension (extension: a loopback OTLP receiver and a
// report listener stand in for it), and exporting straight to a backend
// on loopback (direct, no extension: the POST is on the invocation's
// path). Each iteration waits, outside the timer, until the extension has
// the report (and so the spans, which go first), as the real one would
// before Lambda's next invocation.
func BenchmarkOTelInvoke(b *testing.B) {
	payload := []byte(`{"version":"2.0","rawPath":"/orders","rawQueryString":"","headers":{"host":"x.example.com","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},` +
		`"requestContext":{"domainName":"x.example.com","http":{"method":"GET","path":"/orders","protocol":"HTTP/1.1","sourceIp":"203.0.113.9"}}}`)
	otlpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer otlpSrv.Close()
	reportAddr, got := reportListener(b)
	handle := func(_ context.Context, _ json.RawMessage) (string, error) { return "ok", nil }
	for _, c := range []struct {
		name string
		env  map[string]string
	}{
		{"off", nil},
		{"extension", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://192.0.2.1:4318", // never reached: the extension relays
			"LAMBDARASP_OTLP_ADDR": otlpSrv.Listener.Addr().String()}},
		{"direct", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": otlpSrv.URL, "LAMBDARASP_REPORT_ADDR": "off"}},
	} {
		b.Run("otel="+c.name, func(b *testing.B) {
			b.Setenv("LAMBDARASP_REPORT_ADDR", reportAddr)
			b.Setenv("LAMBDARASP_DECISIONS_FILE", "off")
			for k, v := range c.env {
				b.Setenv(k, v)
			}
			h := protect.Handler(handle)
			wait := c.env["LAMBDARASP_REPORT_ADDR"] != "off"
			ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "c6af9ac6-7b61-11e6-9a41-93e812345678",
				InvokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:orders"})
			b.ReportAllocs()
			var spent time.Duration
			for b.Loop() {
				start := time.Now()
				if _, err := h.Invoke(ctx, payload); err != nil {
					b.Fatal(err)
				}
				spent += time.Since(start)
				if wait {
					select {
					case <-got:
					case <-time.After(time.Second):
						b.Fatal("no report")
					}
				}
			}
			b.ReportMetric(float64(spent.Microseconds())/float64(b.N), "µs/invoke")
		})
	}
}

// BenchmarkOTelColdStart is BenchmarkColdStart's lambdarasp build with
// and without an OTLP endpoint: what tracing adds to init.
func BenchmarkOTelColdStart(b *testing.B) {
	api, ready := runtimeStub(b)
	bin := buildColdStart(b, b.TempDir(), "lambdarasp")
	b.Run("otel=off", func(b *testing.B) { coldStart(b, bin, api, ready, nil) })
	b.Run("otel=on", func(b *testing.B) {
		coldStart(b, bin, api, ready, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318", "OTEL_SERVICE_NAME=orders"})
	})
}
