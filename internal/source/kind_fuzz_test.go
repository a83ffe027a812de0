package source

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// FuzzKind holds classification and extraction to the meaning of the JSON,
// not its layout: the same event re-indented is the same kind, with the
// same request, records, fields and ambiguities. Seeds are the parse
// cases, aws-lambda-go's sample events and the project's own.
func FuzzKind(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.payload))
	}
	if dir, err := testdataDir(); err == nil {
		for _, tf := range testdataFiles(f, dir) {
			f.Add(tf.data)
		}
	}
	files, _ := filepath.Glob("../../examples/events/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var indented bytes.Buffer
		if !json.Valid(payload) || json.Indent(&indented, payload, "", "\t") != nil {
			return
		}
		a, b := Parse(payload, Limits{}), Parse(indented.Bytes(), Limits{})
		if a.Kind != b.Kind {
			t.Fatalf("kind %s, re-indented %s", a.Kind, b.Kind)
		}
		if typ, ok := eventTypes[a.Kind]; ok && json.Unmarshal(payload, typ()) != nil {
			// The handler cannot decode it: an object where its type has a
			// string is inspected as its JSON text, spaces and all.
			return
		}
		if a.Kind.HTTP() {
			if !reflect.DeepEqual(a.Request, b.Request) && a.Request.Violations == nil && b.Request.Violations == nil {
				t.Fatalf("request\n%s\nre-indented\n%s", show(a.Request), show(b.Request))
			}
			return
		}
		if len(a.Records) != len(b.Records) {
			t.Fatalf("%d records, re-indented %d", len(a.Records), len(b.Records))
		}
		for i := range a.Records {
			ra, rb := a.Records[i], b.Records[i]
			if ra.Violations != nil || rb.Violations != nil {
				continue // the name budget grows with the payload's size
			}
			ra.Start, ra.End, rb.Start, rb.End = 0, 0, 0, 0
			if !reflect.DeepEqual(ra, rb) {
				t.Fatalf("record %d\n%s\nre-indented\n%s", i, show(ra), show(rb))
			}
		}
	})
}

// eventTypes are the aws-lambda-go types a handler decodes each kind into.
var eventTypes = map[Kind]func() any{
	APIGatewayREST:      func() any { return new(events.APIGatewayProxyRequest) },
	APIGatewayHTTP:      func() any { return new(events.APIGatewayV2HTTPRequest) },
	APIGatewayWebSocket: func() any { return new(events.APIGatewayWebsocketProxyRequest) },
	ALB:                 func() any { return new(events.ALBTargetGroupRequest) },
	FunctionURL:         func() any { return new(events.LambdaFunctionURLRequest) },
	SQS:                 func() any { return new(events.SQSEvent) },
	SNS:                 func() any { return new(events.SNSEvent) },
	S3:                  func() any { return new(events.S3Event) },
	DynamoDB:            func() any { return new(events.DynamoDBEvent) },
	Kinesis:             func() any { return new(events.KinesisEvent) },
	Firehose:            func() any { return new(events.KinesisFirehoseEvent) },
	Kafka:               func() any { return new(events.KafkaEvent) },
	EventBridge:         func() any { return new(events.EventBridgeEvent) },
	Cognito:             func() any { return new(events.CognitoEventUserPoolsPreSignup) },
}
