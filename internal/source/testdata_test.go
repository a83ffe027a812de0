package source

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The sample events of aws-lambda-go (events/testdata) are real payloads
// captured from each trigger. They are read from the module cache rather
// than copied here, so they follow the version in go.mod.

var testdata struct {
	once sync.Once
	dir  string
	err  error
}

// testdataDir returns aws-lambda-go's events/testdata directory.
func testdataDir() (string, error) {
	testdata.once.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-lambda-go").Output()
		if err != nil {
			testdata.err = err
			return
		}
		dir := strings.TrimSpace(string(out))
		if dir == "" {
			testdata.err = errors.New("aws-lambda-go is not in the module cache (go mod download)")
			return
		}
		testdata.dir = filepath.Join(dir, "events", "testdata")
	})
	return testdata.dir, testdata.err
}

type testdataFile struct {
	name string
	data []byte
}

// testdataFiles reads every sample event.
func testdataFiles(t testing.TB, dir string) []testdataFile {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no sample events in %s: %v", dir, err)
	}
	files := make([]testdataFile, len(names))
	for i, name := range names {
		files[i] = testdataFile{filepath.Base(name), readTestdata(t, dir, filepath.Base(name))}
	}
	return files
}

func readTestdata(t testing.TB, dir, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("read sample event: %v", err)
	}
	return data
}

func mustTestdataDir(t *testing.T) string {
	t.Helper()
	dir, err := testdataDir()
	if err != nil {
		t.Skipf("skipping: cannot locate aws-lambda-go sample events: %v", err)
	}
	return dir
}

// testdataKinds maps sample events, by name pattern, to the kind their
// content is. The first matching pattern wins; a sample no pattern matches
// must be Direct. Responses, authorizer results and the triggers Parse has no
// kind for (SES, CodeCommit, MQ, AppSync, IoT, S3 Object Lambda, …) are Direct.
var testdataKinds = []struct {
	pattern string
	kind    Kind
}{
	{"apigw-request.json", APIGatewayREST},
	{"apigw-restapi-openapi-request.json", APIGatewayREST},
	// A REQUEST authorizer gets the request in the REST proxy shape, and so
	// does an HTTP API authorizer using payload format 1.0.
	{"apigw-custom-auth-request-type-request.json", APIGatewayREST},
	{"apigw-v2-custom-authorizer-v1-request.json", APIGatewayREST},
	{"apigw-v2-custom-authorizer-v2-request.json", APIGatewayHTTP},
	{"apigw-v2-request-*.json", APIGatewayHTTP},
	{"lambda-urls-request.json", FunctionURL},
	{"alb-lambda-target-request-*.json", ALB},
	{"apigw-websocket-request*.json", APIGatewayWebSocket},
	{"sqs-event.json", SQS},
	{"sns-event.json", SNS},
	{"cloudwatch-alarm-sns-payload-*.json", SNS},
	{"s3-event*.json", S3},
	{"s3-glacier-event.json", S3},
	{"s3-intelligenttier-event.json", S3},
	{"s3-lifecycle-event.json", S3},
	{"s3-replication-event.json", S3},
	{"s3-restore-event.json", S3},
	{"dynamodb-event.json", DynamoDB},
	{"dynamodb-time-window-event.json", DynamoDB},
	{"kinesis-event.json", Kinesis},
	{"kinesis-time-window-event.json", Kinesis},
	{"kinesis-firehose-event.json", Firehose},
	{"kafka-event.json", Kafka},
	{"cognito-event-userpools-*.json", Cognito},
	// cognito-event.json is a Cognito Sync trigger, not a user pool: Direct.
	{"autoscaling-event-*.json", EventBridge},
	{"codebuild-*.json", EventBridge},
	{"codedeploy-*.json", EventBridge},
	{"codepipeline-*-change-event.json", EventBridge},
	{"ecr-image-*.json", EventBridge},
	{"ecs-container-instance-state-change.json", EventBridge},
}

func expectedKind(name string) Kind {
	for _, k := range testdataKinds {
		if ok, _ := filepath.Match(k.pattern, name); ok {
			return k.kind
		}
	}
	return Direct
}

func TestTestdataKinds(t *testing.T) {
	dir := mustTestdataDir(t)
	files := testdataFiles(t, dir)
	matched := map[string]bool{}
	for _, f := range files {
		for _, k := range testdataKinds {
			if ok, _ := filepath.Match(k.pattern, f.name); ok {
				matched[k.pattern] = true
			}
		}
		t.Run(f.name, func(t *testing.T) {
			ev := Parse(f.data, Limits{})
			if want := expectedKind(f.name); ev.Kind != want {
				t.Errorf("Kind = %q, want %q", ev.Kind, want)
			}
		})
	}
	for _, k := range testdataKinds {
		if !matched[k.pattern] {
			t.Errorf("pattern %q matches no sample event", k.pattern)
		}
	}
}

// TestTestdataAll parses every sample and checks what must hold of any
// event, and that the sample's content made it into the result.
func TestTestdataAll(t *testing.T) {
	dir := mustTestdataDir(t)
	for _, f := range testdataFiles(t, dir) {
		t.Run(f.name, func(t *testing.T) {
			ev := Parse(f.data, Limits{})
			checkEvent(t, f.data, Limits{}, ev)
			if ev.Kind.HTTP() {
				if ev.Request.Method == "" || !strings.HasPrefix(ev.Request.URI, "/") {
					t.Errorf("Request %+v: want a method and a URI", ev.Request)
				}
				return
			}
			if len(ev.Records) == 0 {
				t.Fatal("no records")
			}
			for _, r := range ev.Records {
				if ev.Kind.Batch() || ev.Kind == SNS || ev.Kind == S3 || ev.Kind == Firehose || ev.Kind == Kafka {
					if raw := f.data[r.Start:r.End]; !bytes.HasPrefix(raw, []byte("{")) || !bytes.HasSuffix(raw, []byte("}")) {
						t.Errorf("%s: payload[%d:%d] is not an object", r.Path, r.Start, r.End)
					}
				}
				if len(r.Violations) > 0 {
					t.Errorf("%s: violations %v", r.Path, r.Violations)
				}
			}
		})
	}
}

// TestTestdataFields spot-checks values extracted from real samples.
func TestTestdataFields(t *testing.T) {
	dir := mustTestdataDir(t)
	tests := []struct {
		file, name, value string
	}{
		{"sqs-event.json", "body", "Message Body"},
		{"sqs-event.json", "messageAttributes.Attribute3.binaryValue", "1100"},
		{"sns-event.json", "Sns.Message", "Hello from SNS!"},
		{"sns-event.json", "Sns.MessageAttributes.TestBinary.Value", "TestBinary"},
		{"cloudwatch-alarm-sns-payload-single-metric.json", "Sns.Message.Trigger.Dimensions[0].value", "TestInstance"},
		{"s3-event.json", "s3.object.key", "Happy Face.jpg"},
		{"s3-glacier-event.json", "s3.object.key", "glacier-test.txt"},
		{"kinesis-event.json", "kinesis.data", "Hello World"},
		{"kinesis-firehose-event.json", "data", "Hello World"},
		{"kafka-event.json", "headers.headerKey", "v\xdc\x00\x7f\x80"},
		{"dynamodb-event.json", "dynamodb.NewImage.Map.Name", "Joe"},
		{"cognito-event-userpools-presignup.json", "request.userAttributes.email", "<email>"},
		{"codebuild-phase-change.json", "detail.additional-information.phases[10].phase-type", "COMPLETED"},
		// Amazon MQ has no kind yet: its base64 data is inspected undecoded.
		{"activemq-event.json", "messages[0].data", "RW50ZXIgc29tZSB0ZXh0IGhlcmUgZm9yIHRoZSBtZXNzYWdlIGJvZHkuLi4="},
	}
	for _, tt := range tests {
		ev := Parse(readTestdata(t, dir, tt.file), Limits{})
		found := false
		for _, r := range ev.Records {
			for _, f := range r.Fields {
				if f.Name == tt.name {
					found = true
					if f.Value != tt.value {
						t.Errorf("%s: %s = %q, want %q", tt.file, tt.name, f.Value, tt.value)
					}
				}
			}
		}
		if !found {
			t.Errorf("%s: no field %s", tt.file, tt.name)
		}
	}
}
