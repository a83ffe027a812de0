package protect

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"go.opentelemetry.io/otel/trace"

	"github.com/lambdarasp/lambdarasp/internal/otlp"
	"github.com/lambdarasp/lambdarasp/internal/otlp/otlptest"
)

// tracedHandler is testHandler exporting its spans straight to a receiver of
// its own (no extension: the direct path), with env as the OTEL_*
// variables besides the endpoint.
func tracedHandler(t *testing.T, next lambda.Handler, env map[string]string, opts ...Option) (*handler, *otlptest.Receiver) {
	t.Helper()
	rcv, err := otlptest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	h := testHandler(t, next, &bytes.Buffer{}, opts...)
	getenv := func(k string) string {
		if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			return rcv.URL
		}
		if k == "AWS_LAMBDA_FUNCTION_NAME" {
			return "orders"
		}
		return env[k]
	}
	s, err := otlp.FromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	h.tracer = newTracer(s, off)
	return h, rcv
}

func tracedCtx(id string) context.Context {
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: id,
		InvokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:orders"})
	return context.WithValue(ctx, "x-amzn-trace-id", "Root=1-6740a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=0") //nolint:staticcheck // aws-lambda-go's key
}

func spansOf(rcv *otlptest.Receiver, id string) map[string]otlptest.Span {
	out := map[string]otlptest.Span{}
	var server otlptest.Span
	for _, s := range rcv.Spans() {
		if s.Attr("faas.invocation_id") == id {
			server = s
		}
	}
	if server.Span == nil {
		return out
	}
	out["server"] = server
	for _, s := range rcv.Spans() {
		if s.ParentID() == server.SpanID() && s.TraceID() == server.TraceID() {
			out[s.Name] = s
		}
	}
	return out
}

func TestTraceDirect(t *testing.T) {
	var handlerCtx context.Context
	next := lambda.NewHandler(func(ctx context.Context) error {
		handlerCtx = ctx
		// An outbound call through Transport becomes a client span.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://169.254.169.254/latest/meta-data/", nil)
		_, err := Client().Do(req)
		if !IsDenied(err) {
			t.Errorf("metadata call: %v, want denied", err)
		}
		return nil
	})
	h, rcv := tracedHandler(t, next, nil)

	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	clean := `{"version":"2.0","rawPath":"/p","rawQueryString":"q=books","headers":{"host":"x.example.com","traceparent":"` + parent + `","tracestate":"vendor=1"},"requestContext":{"domainName":"x.example.com","http":{"method":"GET","path":"/p","protocol":"HTTP/1.1","sourceIp":"203.0.113.9"}}}`
	if _, err := h.Invoke(tracedCtx("req-clean"), []byte(clean)); err != nil {
		t.Fatal(err)
	}
	sc := trace.SpanContextFromContext(handlerCtx)
	if sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || !sc.IsSampled() {
		t.Errorf("handler's span context %v: want the incoming trace, sampled", sc)
	}

	attack := `{"version":"2.0","rawPath":"/p","rawQueryString":"id=1%27%20UNION%20SELECT%20password%20FROM%20users--","headers":{"host":"x.example.com"},"requestContext":{"domainName":"x.example.com","http":{"method":"GET","path":"/p","protocol":"HTTP/1.1","sourceIp":"203.0.113.9"}}}`
	if _, err := h.Invoke(tracedCtx("req-attack"), []byte(attack)); err != nil {
		t.Fatal(err)
	}

	// Direct export is synchronous: the spans are there on return.
	if errs := rcv.Errors(); len(errs) > 0 {
		t.Fatalf("undecodable requests: %v", errs)
	}
	got := spansOf(rcv, "req-clean")
	srv := got["server"]
	if srv.Span == nil {
		t.Fatalf("no server span for req-clean in %d spans", len(rcv.Spans()))
	}
	for k, want := range map[string]string{"faas.trigger": "http", "faas.coldstart": "true", "cloud.provider": "aws", "faas.name": "orders",
		"cloud.resource_id": "arn:aws:lambda:eu-west-1:123456789012:function:orders", "cloud.account.id": "123456789012",
		"lambdarasp.action": "allow", "lambdarasp.source": "apigw-http", "client.address": "203.0.113.9"} {
		if v := srv.Attr(k); v != want {
			t.Errorf("server span %s = %q, want %q", k, v, want)
		}
	}
	if srv.Name != "orders" {
		t.Errorf("server span named %q, want the function's name", srv.Name)
	}
	if srv.Kind != 2 || srv.TraceID() != "0af7651916cd43dd8448eb211c80319c" || srv.ParentID() != "b7ad6b7169203331" || srv.TraceState != "vendor=1" {
		t.Errorf("server span kind %v trace %s parent %s state %q: want the incoming traceparent's", srv.Kind, srv.TraceID(), srv.ParentID(), srv.TraceState)
	}
	if srv.Flags&0x300 != 0x300 {
		t.Errorf("server span flags %#x: want the parent marked remote", srv.Flags)
	}
	if srv.SpanID() != sc.SpanID().String() {
		t.Errorf("handler's span %s, server span %s: want the same", sc.SpanID(), srv.SpanID())
	}
	if srv.Resource["service.name"] != "orders" {
		t.Errorf("resource %v: want service.name orders", srv.Resource)
	}
	in := got["lambdarasp.inspect"]
	if in.Span == nil || in.Attr("lambdarasp.action") != "allow" || len(in.Events) != 0 {
		t.Errorf("inspection span %v: want action allow, no events", in.Span)
	}
	call := got["GET"]
	if call.Span == nil || call.Kind != 3 || call.Attr("server.address") != "169.254.169.254" || call.Attr("error.type") != "denied" || call.Status.GetCode() != 2 {
		t.Errorf("client span %v: want GET to the metadata, denied, status error", call.Span)
	}

	got = spansOf(rcv, "req-attack")
	srv, in = got["server"], got["lambdarasp.inspect"]
	if srv.Span == nil || in.Span == nil {
		t.Fatalf("req-attack: spans %v", got)
	}
	// No traceparent: the X-Ray trace id, unsampled by Lambda, is kept, as a root.
	if srv.TraceID() != "6740a1b20123456789abcdef01234567" || len(srv.ParentSpanId) != 0 || srv.Attr("faas.coldstart") != "false" {
		t.Errorf("req-attack server span trace %s parent %q coldstart %s: want the X-Ray trace id, no parent, warm", srv.TraceID(), srv.ParentID(), srv.Attr("faas.coldstart"))
	}
	if in.Attr("lambdarasp.action") != "block" || !strings.Contains(in.Attr("lambdarasp.rules"), "942") || in.Attr("lambdarasp.score") == "0" || len(in.Events) == 0 {
		t.Errorf("inspection span: action %s rules %s score %s events %d: want a block with SQL rules", in.Attr("lambdarasp.action"), in.Attr("lambdarasp.rules"), in.Attr("lambdarasp.score"), len(in.Events))
	}
	for _, e := range in.Events {
		for _, kv := range e.Attributes {
			if strings.Contains(kv.Value.GetStringValue(), "UNION SELECT") || strings.Contains(kv.Value.GetStringValue(), "password") {
				t.Errorf("finding event carries the payload: %s=%q", kv.Key, kv.Value.GetStringValue())
			}
		}
	}
}

func TestTraceLinksAndSampler(t *testing.T) {
	h, rcv := tracedHandler(t, &recorder{}, map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}, WithPartialBatch(true))
	sqs := `{"Records":[` +
		`{"messageId":"m1","body":"{\"a\":1}","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:eu-west-1:1:q","messageAttributes":{"traceparent":{"stringValue":"00-11111111111111111111111111111111-2222222222222222-01","dataType":"String"}}},` +
		`{"messageId":"m2","body":"{\"a\":2}","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:eu-west-1:1:q","attributes":{"AWSTraceHeader":"Root=1-6740a1b2-333333333333333333333333;Parent=4444444444444444;Sampled=1"}},` +
		`{"messageId":"m3","body":"{\"a\":3}","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:eu-west-1:1:q"},` +
		`{"messageId":"m4","body":"{\"Type\":\"Notification\",\"MessageId\":\"n\",\"TopicArn\":\"arn:aws:sns:eu-west-1:1:t\",\"Message\":\"{}\",\"MessageAttributes\":{\"traceparent\":{\"Type\":\"String\",\"Value\":\"00-99999999999999999999999999999999-aaaaaaaaaaaaaaaa-01\"}}}","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:eu-west-1:1:q"}]}`
	if _, err := h.Invoke(tracedCtx("req-sqs"), []byte(sqs)); err != nil {
		t.Fatal(err)
	}
	srv := spansOf(rcv, "req-sqs")["server"]
	if srv.Span == nil {
		t.Fatal("no server span")
	}
	if srv.Attr("faas.trigger") != "pubsub" || len(srv.Links) != 3 {
		t.Fatalf("trigger %s, %d links: want pubsub, one link per record that carries a context", srv.Attr("faas.trigger"), len(srv.Links))
	}
	if l := srv.Links[0]; hex.EncodeToString(l.TraceId) != "11111111111111111111111111111111" || hex.EncodeToString(l.SpanId) != "2222222222222222" {
		t.Errorf("link 0: %x/%x", l.TraceId, l.SpanId)
	}
	if l := srv.Links[2]; hex.EncodeToString(l.TraceId) != "99999999999999999999999999999999" {
		t.Errorf("link 2 (SNS in SQS): %x/%x", l.TraceId, l.SpanId)
	}

	// A lone record's context is the parent too.
	sns := `{"Records":[{"EventSource":"aws:sns","EventSubscriptionArn":"arn:aws:sns:eu-west-1:1:t:s","Sns":{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:eu-west-1:1:t","Message":"{\"a\":1}",` +
		`"MessageAttributes":{"traceparent":{"Type":"String","Value":"00-55555555555555555555555555555555-6666666666666666-01"}}}}]}`
	if _, err := h.Invoke(tracedCtx("req-sns"), []byte(sns)); err != nil {
		t.Fatal(err)
	}
	if srv := spansOf(rcv, "req-sns")["server"]; srv.Span == nil || srv.TraceID() != "55555555555555555555555555555555" || srv.ParentID() != "6666666666666666" || len(srv.Links) != 1 {
		t.Errorf("SNS server span %v: want the message's traceparent as parent and link", srv.Span)
	}

	// always_off: nothing is sent.
	h2, rcv2 := tracedHandler(t, &recorder{}, map[string]string{"OTEL_TRACES_SAMPLER": "always_off"})
	if _, err := h2.Invoke(tracedCtx("req-off"), []byte(sqs)); err != nil {
		t.Fatal(err)
	}
	if n := rcv2.Requests(); n != 0 {
		t.Errorf("always_off: %d export requests, want none", n)
	}

	// parentbased_always_on (the default): an unsampled parent's decision
	// is kept, so nothing is sent.
	h3, rcv3 := tracedHandler(t, &recorder{}, nil)
	unsampled := `{"version":"2.0","rawPath":"/p","headers":{"host":"x.example.com","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"},"requestContext":{"domainName":"x.example.com","http":{"method":"GET","path":"/p","protocol":"HTTP/1.1","sourceIp":"203.0.113.9"}}}`
	if _, err := h3.Invoke(tracedCtx("req-unsampled"), []byte(unsampled)); err != nil {
		t.Fatal(err)
	}
	if n := rcv3.Requests(); n != 0 {
		t.Errorf("unsampled parent: %d export requests, want none", n)
	}
}

// A backend that does not answer slows a direct export by its timeout at
// most, and never past the invocation's deadline.
func TestTraceDirectBounded(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server sees the client go
		<-r.Context().Done()
	}))
	defer slow.Close()
	for _, c := range []struct {
		name, timeout string        // OTEL_EXPORTER_OTLP_TIMEOUT
		deadline      time.Duration // the invocation's, 0: none
	}{
		{"timeout", "200", 0},
		{"deadline", "", 300 * time.Millisecond}, // the default timeout is 10 s
	} {
		t.Run(c.name, func(t *testing.T) {
			h := testHandler(t, &recorder{}, &bytes.Buffer{})
			s, err := otlp.FromEnv(func(k string) string {
				return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": slow.URL, "OTEL_EXPORTER_OTLP_TIMEOUT": c.timeout}[k]
			})
			if err != nil {
				t.Fatal(err)
			}
			h.tracer = newTracer(s, off)
			ctx := tracedCtx("req-slow")
			if c.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.deadline)
				defer cancel()
			}
			start := time.Now()
			if _, err := h.Invoke(ctx, []byte(`{"a":1}`)); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("invocation took %v with a backend that never answers: want about 200 or 300 ms", d)
			}
		})
	}
}

// An outbound call carries the trace on: the callee gets a traceparent
// naming the invocation's trace and the call's client span; a request
// that already has one keeps it.
func TestTracePropagatesOutbound(t *testing.T) {
	useOutbound(t, nil, nil, WithEgressInternal("127.0.0.1"))
	got := make(chan string, 3)
	callee := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("traceparent") }))
	defer callee.Close()
	const own = "00-77777777777777777777777777777777-8888888888888888-01"
	next := lambda.NewHandler(func(ctx context.Context) error {
		for _, tp := range []string{"", own} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, callee.URL, nil)
			if tp != "" {
				req.Header.Set("traceparent", tp)
			}
			resp, err := Client().Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if tp == "" && req.Header.Get("traceparent") != "" {
				t.Error("the caller's request was changed")
			}
		}
		// A span of the handler's own SDK, under the server span: the
		// call's client span is its child.
		sc := trace.SpanContextFromContext(ctx)
		own := trace.NewSpanContext(trace.SpanContextConfig{TraceID: sc.TraceID(), SpanID: trace.SpanID{9, 9, 9, 9, 9, 9, 9, 9}, TraceFlags: trace.FlagsSampled})
		req, _ := http.NewRequestWithContext(trace.ContextWithSpanContext(ctx, own), http.MethodGet, callee.URL, nil)
		resp, err := Client().Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	h, rcv := tracedHandler(t, next, nil)
	if _, err := h.Invoke(tracedCtx("req-out"), []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	first, second := <-got, <-got
	<-got
	if second != own {
		t.Errorf("a request with its own traceparent got %q", second)
	}
	var clients []otlptest.Span
	server := spansOf(rcv, "req-out")["server"]
	for _, s := range rcv.Spans() {
		if s.Kind == 3 {
			clients = append(clients, s)
		}
	}
	if len(clients) != 3 || server.Span == nil {
		t.Fatalf("%d client spans, server %v: want 3 and one", len(clients), server.Span)
	}
	if first != "00-"+clients[0].TraceID()+"-"+clients[0].SpanID()+"-01" {
		t.Errorf("callee got traceparent %q, want the first client span's %s", first, clients[0].SpanID())
	}
	if clients[0].ParentID() != server.SpanID() || clients[2].ParentID() != "0909090909090909" {
		t.Errorf("client spans' parents %s and %s: want the server span %s, then the handler's own span", clients[0].ParentID(), clients[2].ParentID(), server.SpanID())
	}
}
