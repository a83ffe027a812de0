package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/lambdarasp/lambdarasp/protect"
)

// What protect.Transport adds to an outbound call on the recording path
// (budget 2 µs): finding the invocation, the checks made before a request
// (the extension's decisions, the lists, an address host), the record, and
// the response body's byte count. Run them alone with
//
//	go test -run '^$' -bench 'Outbound' -benchmem ./bench/
//
// stub/… time the round trip alone, against a RoundTripper that answers at
// once: stub/protect minus stub/bare is the added cost. loopback/… are
// whole HTTP calls to a server on 127.0.0.1 over a kept-alive connection,
// where it is lost in the noise. The calls run inside one invocation of a
// protect.Handler, as a function's do (its context passed); the checks at
// dial time, once per connection, are not on this path. Like the report
// benchmarks, these are not case=…/impl=… benchmarks: make bench's table
// leaves them out.
func BenchmarkOutbound(b *testing.B) {
	b.Setenv("LAMBDARASP_REPORT_ADDR", "off")
	b.Setenv("LAMBDARASP_DECISIONS_FILE", "off")
	b.Setenv("LAMBDARASP_EGRESS_INTERNAL", "127.0.0.1")

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()

	for _, c := range []struct {
		name string
		rt   func() http.RoundTripper
		url  string
	}{
		{"stub/bare", func() http.RoundTripper { return stub{} }, "http://203.0.113.9/v1/orders"},
		{"stub/protect", func() http.RoundTripper { return protect.Transport(stub{}) }, "http://203.0.113.9/v1/orders"},
		{"loopback/bare", func() http.RoundTripper { return http.DefaultTransport.(*http.Transport).Clone() }, srv.URL + "/v1/orders"},
		{"loopback/protect", func() http.RoundTripper { return protect.Transport(nil) }, srv.URL + "/v1/orders"},
	} {
		b.Run(c.name, func(b *testing.B) {
			rt := c.rt()
			h := protect.Handler(func(ctx context.Context) error {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
				if err != nil {
					return err
				}
				b.ReportAllocs()
				for b.Loop() {
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				return nil
			})
			ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "bench"})
			if _, err := h.Invoke(ctx, []byte(`{}`)); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// stub answers every request at once with a small body.
type stub struct{}

func (stub) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(`{"ok":true}`)), ContentLength: 11, Request: req}, nil
}
