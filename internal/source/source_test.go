package source

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// parseCase is one hand-written event and what Parse must find in it. The
// same table drives TestParse, FuzzParse's seed corpus and BenchmarkParse.
type parseCase struct {
	name    string
	lim     Limits
	payload string
	kind    Kind
	req     *Request // HTTP kinds
	records []Record // other kinds; Start and End are checked by checkSpans
}

// q returns s as a JSON string literal.
func q(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// fields builds Fields from name, value pairs.
func fields(kv ...string) []Field {
	fs := make([]Field, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		fs = append(fs, Field{Name: kv[i], Value: kv[i+1]})
	}
	return fs
}

// one is the single record of a Direct, EventBridge or Cognito event.
func one(fs []Field, vs ...Violation) []Record {
	return []Record{{Fields: fs, Violations: vs}}
}

var (
	snsNotification = `{"Type":"Notification","MessageId":"id","TopicArn":"arn:aws:sns:us-east-1:1:t",` +
		`"Subject":"subj","Message":` + q(`{"a":"<script>"}`) + `,"Timestamp":"t","SignatureVersion":"1",` +
		`"Signature":"c2ln","SigningCertURL":"https://sns/cert.pem","UnsubscribeURL":"https://sns/?Action=Unsubscribe",` +
		`"MessageAttributes":{"k":{"Type":"String","Value":"kv"}}}`
	s3Notification = `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",` +
		`"eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AWS:X"},` +
		`"s3":{"bucket":{"name":"b","arn":"arn:aws:s3:::b"},"object":{"key":"a+b%3Bc","size":1}}}]}`
	eventBridgeEvent = `{"version":"0","id":"1","detail-type":"order","source":"shop","account":"1",` +
		`"time":"t","region":"r","resources":[],"detail":{"q":"1 UNION SELECT"}}`
)

// sqsEvent wraps SQS message bodies into an SQS event.
func sqsEvent(bodies ...string) string {
	var sb strings.Builder
	sb.WriteString(`{"Records":[`)
	for i, body := range bodies {
		if i > 0 {
			sb.WriteString(",\n ")
		}
		sb.WriteString(`{"messageId":"m` + string(rune('0'+i)) + `","receiptHandle":"rh","body":` + q(body) +
			`,"attributes":{"SenderId":"AID"},"md5OfBody":"x","eventSource":"aws:sqs","eventSourceARN":"arn","awsRegion":"us-east-1"}`)
	}
	sb.WriteString(`]}`)
	return sb.String()
}

// sqsRecords is what Parse finds in sqsEvent(bodies...), given each body's
// fields.
func sqsRecords(fs ...[]Field) []Record {
	rs := make([]Record, len(fs))
	for i, f := range fs {
		rs[i] = Record{Index: i, Path: "Records[" + string(rune('0'+i)) + "]", ID: "m" + string(rune('0'+i)), Fields: f}
	}
	return rs
}

var parseCases = []parseCase{
	{
		name: "sqs/json-body",
		payload: `{"Records":[{"messageId":"m1","receiptHandle":"rh","body":` +
			q(`{"user":{"name":"x' OR 1=1"},"items":[1,"two",null,true,{}],"e":[]}`) +
			`,"attributes":{"ApproximateReceiveCount":"1","SenderId":"AID","MessageGroupId":"g1","MessageDeduplicationId":"d1"},` +
			`"messageAttributes":{"a1":{"stringValue":"v1","stringListValues":["l1"],"binaryListValues":["` + b64("bin1") + `"],"dataType":"String"},` +
			`"a2":{"binaryValue":"` + b64("<script>") + `","dataType":"Binary"}},` +
			`"md5OfBody":"x","eventSource":"aws:sqs","eventSourceARN":"arn","awsRegion":"us-east-1"}]}`,
		kind: SQS,
		records: []Record{{Path: "Records[0]", ID: "m1", Fields: fields(
			"body.user.name", "x' OR 1=1",
			"body.items[0]", "1",
			"body.items[1]", "two",
			"body.items[2]", "null",
			"body.items[3]", "true",
			"body.items[4]", "",
			"body.e", "",
			"attributes.MessageGroupId", "g1",
			"attributes.MessageDeduplicationId", "d1",
			"messageAttributes.a1.stringValue", "v1",
			"messageAttributes.a1.stringListValues[0]", "l1",
			"messageAttributes.a1.binaryListValues[0]", "bin1",
			"messageAttributes.a2.binaryValue", "<script>",
		)}},
	},
	{
		name:    "sqs/text-bodies",
		payload: sqsEvent("plain text", `{"unterminated":`, `  ["x"]`, ""),
		kind:    SQS,
		records: sqsRecords(
			fields("body", "plain text"),
			fields("body", `{"unterminated":`),
			fields("body[0]", "x"),
			fields("body", ""),
		),
	},
	{
		name:    "sqs/sns-notification",
		payload: sqsEvent(snsNotification),
		kind:    SQS,
		// Every member: whoever can send to the queue writes the metadata too.
		records: sqsRecords(fields(
			"body.Type", "Notification",
			"body.MessageId", "id",
			"body.TopicArn", "arn:aws:sns:us-east-1:1:t",
			"body.Subject", "subj",
			"body.Message.a", "<script>",
			"body.Timestamp", "t",
			"body.SignatureVersion", "1",
			"body.Signature", "c2ln",
			"body.SigningCertURL", "https://sns/cert.pem",
			"body.UnsubscribeURL", "https://sns/?Action=Unsubscribe",
			"body.MessageAttributes.k.Type", "String",
			"body.MessageAttributes.k.Value", "kv",
		)),
	},
	{
		// Whoever can send to the queue can shape a body like a notification:
		// a member SNS does not send means it is not one.
		name:    "sqs/spoofed-sns-notification",
		payload: sqsEvent(`{"Type":"Notification","Message":"hi","cmd":"; rm -rf /"}`),
		kind:    SQS,
		records: sqsRecords(fields(
			"body.Type", "Notification",
			"body.Message", "hi",
			"body.cmd", "; rm -rf /",
		)),
	},
	{
		name:    "sqs/repeated-sns-member",
		payload: sqsEvent(`{"Type":"Notification","Message":"hi","Message":"' OR 1=1"}`),
		kind:    SQS,
		records: sqsRecords(fields(
			"body.Type", "Notification",
			"body.Message", "hi",
			"body.Message", "' OR 1=1",
		)),
	},
	{
		name:    "sqs/s3-notification",
		payload: sqsEvent(s3Notification),
		kind:    SQS,
		// Every leaf, and the key decoded as well.
		records: sqsRecords(fields(
			"body.Records[0].eventVersion", "2.1",
			"body.Records[0].eventSource", "aws:s3",
			"body.Records[0].awsRegion", "us-east-1",
			"body.Records[0].eventName", "ObjectCreated:Put",
			"body.Records[0].userIdentity.principalId", "AWS:X",
			"body.Records[0].s3.bucket.name", "b",
			"body.Records[0].s3.bucket.arn", "arn:aws:s3:::b",
			"body.Records[0].s3.object.key", "a+b%3Bc",
			"body.Records[0].s3.object.size", "1",
			"body.Records[0].s3.object.key", "a b;c",
		)),
	},
	{
		// A member S3 does not send, or a record not from S3: walked whole.
		name: "sqs/spoofed-s3-notification",
		payload: sqsEvent(`{"Records":[{"eventSource":"aws:s3","s3":{"object":{"key":"k"}},"cmd":"; rm -rf /"}]}`,
			`{"Records":[{"eventSource":"aws:sqs","s3":{"object":{"key":"k"}}}]}`),
		kind: SQS,
		records: sqsRecords(
			fields("body.Records[0].eventSource", "aws:s3", "body.Records[0].s3.object.key", "k", "body.Records[0].cmd", "; rm -rf /"),
			fields("body.Records[0].eventSource", "aws:sqs", "body.Records[0].s3.object.key", "k"),
		),
	},
	{
		name: "sqs/sns-s3-notification",
		payload: sqsEvent(`{"Type":"Notification","MessageId":"id","TopicArn":"arn","Subject":"Amazon S3 Notification",` +
			`"Message":` + q(s3Notification) + `,"Timestamp":"t"}`),
		kind: SQS,
		records: sqsRecords(fields(
			"body.Type", "Notification",
			"body.MessageId", "id",
			"body.TopicArn", "arn",
			"body.Subject", "Amazon S3 Notification",
			"body.Message.Records[0].eventVersion", "2.1",
			"body.Message.Records[0].eventSource", "aws:s3",
			"body.Message.Records[0].awsRegion", "us-east-1",
			"body.Message.Records[0].eventName", "ObjectCreated:Put",
			"body.Message.Records[0].userIdentity.principalId", "AWS:X",
			"body.Message.Records[0].s3.bucket.name", "b",
			"body.Message.Records[0].s3.bucket.arn", "arn:aws:s3:::b",
			"body.Message.Records[0].s3.object.key", "a+b%3Bc",
			"body.Message.Records[0].s3.object.size", "1",
			"body.Message.Records[0].s3.object.key", "a b;c",
			"body.Timestamp", "t",
		)),
	},
	{
		name:    "sqs/eventbridge-event",
		payload: sqsEvent(eventBridgeEvent),
		kind:    SQS,
		// Walked whole: id, account… are the sender's too.
		records: sqsRecords(fields(
			"body.version", "0",
			"body.id", "1",
			"body.detail-type", "order",
			"body.source", "shop",
			"body.account", "1",
			"body.time", "t",
			"body.region", "r",
			"body.resources", "",
			"body.detail.q", "1 UNION SELECT",
		)),
	},
	{
		// Without detail-type, source and detail it is not an EventBridge event.
		name: "sqs/partial-eventbridge-event",
		payload: sqsEvent(`{"source":"s","id":"' OR 1=1","detail":{}}`, `{"detail-type":"t","id":"' OR 1=1","detail":{}}`,
			`{"detail-type":"t","source":"s","id":"' OR 1=1"}`),
		kind: SQS,
		records: sqsRecords(
			fields("body.source", "s", "body.id", "' OR 1=1", "body.detail", ""),
			fields("body.detail-type", "t", "body.id", "' OR 1=1", "body.detail", ""),
			fields("body.detail-type", "t", "body.source", "s", "body.id", "' OR 1=1"),
		),
	},
	{
		name: "sns",
		payload: `{"Records":[{"EventSource":"aws:sns","EventVersion":"1.0","EventSubscriptionArn":"arn",` +
			`"Sns":{"Type":"Notification","MessageId":"m","TopicArn":"arn","Subject":"s","Message":` + q(`{"x":[1]}`) +
			`,"Timestamp":"t","Signature":"sig","SigningCertUrl":"u","UnsubscribeUrl":"u",` +
			`"MessageAttributes":{"k":{"Type":"String","Value":"v"},"n":{"Type":"Number","Value":"1"}}}}]}`,
		kind: SNS,
		records: []Record{{Path: "Records[0]", Fields: fields(
			"Sns.Subject", "s",
			"Sns.Message.x[0]", "1",
			"Sns.MessageAttributes.k.Type", "String",
			"Sns.MessageAttributes.k.Value", "v",
			"Sns.MessageAttributes.n.Type", "Number",
			"Sns.MessageAttributes.n.Value", "1",
		)}},
	},
	{
		// Attributes are a map to aws-lambda-go: walked whole.
		name: "sns/odd-attributes",
		payload: `{"Records":[{"EventSource":"aws:sns","Sns":{"Message":"m","MessageAttributes":{"k":{"Type":"String","Value":"v"},"odd":["x"]}}},` +
			`{"EventSource":"aws:sns","Sns":{"Message":"m","MessageAttributes":"y"}}]}`,
		kind: SNS,
		records: []Record{
			{Path: "Records[0]", Fields: fields("Sns.Message", "m", "Sns.MessageAttributes.k.Type", "String",
				"Sns.MessageAttributes.k.Value", "v", "Sns.MessageAttributes.odd[0]", "x")},
			{Index: 1, Path: "Records[1]", Fields: fields("Sns.Message", "m", "Sns.MessageAttributes", "y")},
		},
	},
	{
		name: "s3",
		payload: `{"Records":[` +
			`{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a+b%3Bc","size":1}}},` +
			`{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"bad%zz"}}}]}`,
		kind: S3,
		records: []Record{
			{Path: "Records[0]", Fields: fields("s3.object.key", "a b;c")},
			{Index: 1, Path: "Records[1]", Fields: fields("s3.object.key", "bad%zz")},
		},
	},
	{
		name: "dynamodb",
		payload: `{"Records":[{"eventID":"e","eventName":"MODIFY","eventSource":"aws:dynamodb","awsRegion":"us-east-1",` +
			`"dynamodb":{"Keys":{"id":{"S":"k1"}},"NewImage":{"id":{"S":"k1"},"n":{"N":"1.5"},` +
			`"address":{"M":{"city":{"S":"x' OR 1=1"},"zip":{"N":"123"}}},` +
			`"tags":{"L":[{"S":"a"},{"M":{"deep":{"BOOL":false}}}]},"ss":{"SS":["s1","s2"]},` +
			`"bs":{"BS":["` + b64("bin1") + `"]},"b":{"B":"` + b64("<script>") + `"},"nul":{"NULL":true},"em":{"M":{}},"el":{"L":[]},` +
			`"odd":"plain","x":{"Z":{"q":"w"}}},` +
			`"OldImage":{"id":{"S":"old"}},"SequenceNumber":"111","SizeBytes":1,"StreamViewType":"NEW_AND_OLD_IMAGES"}}]}`,
		kind: DynamoDB,
		records: []Record{{Path: "Records[0]", ID: "111", Fields: fields(
			"dynamodb.Keys.id", "k1",
			"dynamodb.NewImage.id", "k1",
			"dynamodb.NewImage.n", "1.5",
			"dynamodb.NewImage.address.city", "x' OR 1=1",
			"dynamodb.NewImage.address.zip", "123",
			"dynamodb.NewImage.tags[0]", "a",
			"dynamodb.NewImage.tags[1].deep", "false",
			"dynamodb.NewImage.ss[0]", "s1",
			"dynamodb.NewImage.ss[1]", "s2",
			"dynamodb.NewImage.bs[0]", "bin1",
			"dynamodb.NewImage.b", "<script>",
			"dynamodb.NewImage.nul", "true",
			"dynamodb.NewImage.em", "",
			"dynamodb.NewImage.el", "",
			"dynamodb.NewImage.odd", "plain",
			"dynamodb.NewImage.x.Z.q", "w",
			"dynamodb.OldImage.id", "old",
		)}},
	},
	{
		name: "kinesis",
		payload: `{"Records":[{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"pk","sequenceNumber":"seq",` +
			`"data":"` + b64(`{"q":"<img src=x>","n":[1,2]}`) + `","approximateArrivalTimestamp":1.5},` +
			`"eventSource":"aws:kinesis","eventID":"shardId-0:seq","eventSourceARN":"arn"}]}`,
		kind: Kinesis,
		records: []Record{{Path: "Records[0]", ID: "seq", Fields: fields(
			"kinesis.partitionKey", "pk",
			"kinesis.data.q", "<img src=x>",
			"kinesis.data.n[0]", "1",
			"kinesis.data.n[1]", "2",
		)}},
	},
	{
		name: "firehose",
		payload: `{"invocationId":"i","deliveryStreamArn":"arn","region":"r","records":[` +
			`{"recordId":"r1","approximateArrivalTimestamp":1,"data":"` + b64("hello world") + `"},` +
			`{"recordId":"r2","data":"not base64!"}]}`,
		kind: Firehose,
		records: []Record{
			{Path: "records[0]", ID: "r1", Fields: fields("data", "hello world")},
			{Index: 1, Path: "records[1]", ID: "r2", Fields: fields("data", "not base64!")},
		},
	},
	{
		name: "kafka",
		payload: `{"eventSource":"aws:kafka","eventSourceArn":"arn","bootstrapServers":"b","records":{` +
			`"t-0":[{"topic":"t","partition":0,"offset":0,"timestamp":1,"key":"` + b64("k") + `","value":"` + b64(`{"a":"b"}`) + `",` +
			`"headers":[{"h1":[104,105]},{"h2":[-1,"x",300,1.5,65,-129]}]}],` +
			`"t-1":[{"topic":"t","partition":1,"key":null,"value":"` + b64("plain") + `","headers":[]},` +
			`{"topic":"t","partition":1,"value":"` + b64("v2") + `"}]}}`,
		kind: Kafka,
		records: []Record{
			{Path: "records.t-0[0]", Fields: fields("key", "k", "value.a", "b", "headers.h1", "hi", "headers.h2", "\xffA")},
			{Index: 1, Path: "records.t-1[0]", Fields: fields("value", "plain")},
			{Index: 2, Path: "records.t-1[1]", Fields: fields("value", "v2")},
		},
	},
	{
		name: "eventbridge",
		payload: `{"version":"0","id":"1","detail-type":"Custom","source":"my.app","account":"1","time":"t",` +
			`"region":"r","resources":["arn:x"],"detail":{"user":{"name":"n"},"list":[]}}`,
		kind: EventBridge,
		records: one(fields(
			"detail-type", "Custom",
			"source", "my.app",
			"resources[0]", "arn:x",
			"detail.user.name", "n",
			"detail.list", "",
		)),
	},
	{
		name: "cognito",
		payload: `{"version":"1","triggerSource":"PreSignUp_SignUp","region":"r","userPoolId":"p","userName":"bob'--",` +
			`"callerContext":{"clientId":"c"},"request":{"userAttributes":{"email":"e@x"},"validationData":null},"response":{}}`,
		kind:    Cognito,
		records: one(fields("userName", "bob'--", "request.userAttributes.email", "e@x", "request.validationData", "null")),
	},
	{
		name:    "direct/object",
		payload: ` {"user":{"name":"n\u0027"},"items":[1,{"a.b":"dot"}],"dup":1,"dup":2.5e3} `,
		kind:    Direct,
		records: one(fields("user.name", "n'", "items[0]", "1", `items[1].a\.b`, "dot", "dup", "1", "dup", "2.5e3")),
	},
	{
		// Every character that names use as syntax is escaped inside a key.
		name:    "direct/escaped-keys",
		payload: `{"a.b":{"c[0]":1,"d\\e":2,"]":3}}`,
		kind:    Direct,
		records: one(fields(`a\.b.c\[0\]`, "1", `a\.b.d\\e`, "2", `a\.b.\]`, "3")),
	},
	{
		name:    "direct/array",
		payload: `[1,"a",{},[]]`,
		kind:    Direct,
		records: one(fields("[0]", "1", "[1]", "a", "[2]", "", "[3]", "")),
	},
	{
		name:    "direct/empty-object",
		payload: `{}`,
		kind:    Direct,
		records: one(fields("", "")),
	},
	{
		name:    "direct/invalid-json",
		payload: `{"a":`,
		kind:    Direct,
		records: one(fields("payload", `{"a":`)),
	},
	{
		name:    "direct/number",
		payload: " 42 \n",
		kind:    Direct,
		records: one(fields("payload", "42")),
	},
	{
		name:    "direct/string",
		payload: `"\u003cscript\u003e"`,
		kind:    Direct,
		records: one(fields("payload", "<script>")),
	},
	{
		name:    "direct/empty",
		payload: ``,
		kind:    Direct,
		records: one(fields("payload", "")),
	},
	{
		name: "apigw-rest",
		payload: `{"resource":"/{proxy+}","path":"/a b/ü","httpMethod":"GET","headers":{"X-A":"2"},` +
			`"multiValueHeaders":{"X-A":["1","2"],"User-Agent":["ua"]},"queryStringParameters":{"q":"x&y"},` +
			`"multiValueQueryStringParameters":{"q":["a b","x&y"],"k=":["1"]},` +
			`"requestContext":{"domainName":"api.example.com","protocol":"HTTP/2.0","identity":{"sourceIp":"1.2.3.4"}},` +
			`"body":"` + b64("<script>") + `","isBase64Encoded":true}`,
		kind: APIGatewayREST,
		req: &Request{
			Method: "GET", URI: "/a%20b/%C3%BC?q=a+b&q=x%26y&k%3D=1", Protocol: "HTTP/2.0",
			Headers: []Header{{"X-A", "1"}, {"X-A", "2"}, {"User-Agent", "ua"}, {"host", "api.example.com"}},
			Body:    []byte("<script>"), RemoteAddr: "1.2.3.4",
		},
	},
	{
		name: "apigw-rest/single-value",
		payload: `{"path":"/","httpMethod":"POST","headers":{"Content-Type":"text/plain"},"multiValueHeaders":null,` +
			`"queryStringParameters":{"a":"1"},"multiValueQueryStringParameters":null,"requestContext":{},` +
			`"body":"not base64!","isBase64Encoded":true}`,
		kind: APIGatewayREST,
		req: &Request{
			Method: "POST", URI: "/?a=1", Protocol: "HTTP/1.1",
			Headers: []Header{{"Content-Type", "text/plain"}, {"content-length", "11"}},
			Body:    []byte("not base64!"),
		},
	},
	{
		name: "apigw-http",
		payload: `{"version":"2.0","routeKey":"$default","rawPath":"/p%20q","rawQueryString":"a=1&b=%27",` +
			`"cookies":["s=1","t=2"],"headers":{"cookie":"pre=0","user-agent":"ua","accept":"a,b"},` +
			`"queryStringParameters":{"a":"1","b":"'"},"requestContext":{"domainName":"x.execute-api.us-east-1.amazonaws.com",` +
			`"http":{"method":"POST","path":"/p q","protocol":"HTTP/1.1","sourceIp":"5.6.7.8"}},` +
			`"body":"` + b64(`{"a":1}`) + `","isBase64Encoded":true}`,
		kind: APIGatewayHTTP,
		req: &Request{
			Method: "POST", URI: "/p%20q?a=1&b=%27", Protocol: "HTTP/1.1",
			Headers: []Header{{"cookie", "pre=0; s=1; t=2"}, {"user-agent", "ua"}, {"accept", "a,b"},
				{"content-length", "7"}, {"host", "x.execute-api.us-east-1.amazonaws.com"}},
			Body: []byte(`{"a":1}`), RemoteAddr: "5.6.7.8",
			JSON: true, Fields: []Field{{"body.a", "1"}},
		},
	},
	{
		// encoding/json keeps the last of repeated members: so must we.
		// encoding/json keeps the last body but merges the two
		// requestContext objects; another reader may keep the first: every
		// value is inspected and the event is ambiguous.
		name: "apigw-http/repeated-body",
		payload: `{"version":"2.0","rawPath":"/","body":"first","requestContext":{"http":{"method":"GET"}},` +
			`"body":"last","requestContext":{"http":{"method":"PUT"}}}`,
		kind: Direct,
		records: []Record{{Fields: fields("version", "2.0", "rawPath", "/", "body", "first", "requestContext.http.method", "GET",
			"body", "last", "requestContext.http.method", "PUT"), Ambiguities: []Ambiguity{{Repeated, "body"}}}},
	},
	{
		name: "function-url",
		payload: `{"version":"2.0","rawPath":"/x","rawQueryString":"","cookies":["c=1"],"headers":{"x-h":"v"},` +
			`"requestContext":{"domainName":"abc.lambda-url.us-east-1.on.aws","http":{"method":"PUT","sourceIp":"1.1.1.1"}},` +
			`"body":"plain","isBase64Encoded":false}`,
		kind: FunctionURL,
		req: &Request{
			Method: "PUT", URI: "/x", Protocol: "HTTP/1.1",
			Headers: []Header{{"x-h", "v"}, {"Cookie", "c=1"}, {"content-length", "5"}, {"host", "abc.lambda-url.us-east-1.on.aws"}},
			Body:    []byte("plain"), RemoteAddr: "1.1.1.1",
		},
	},
	{
		name: "alb",
		payload: `{"requestContext":{"elb":{"targetGroupArn":"arn"}},"httpMethod":"GET","path":"/x%2Fy",` +
			`"queryStringParameters":{"q":"%27%20OR"},"headers":{"host":"alb.example.com"},"body":"","isBase64Encoded":false}`,
		kind: ALB,
		req: &Request{
			Method: "GET", URI: "/x%2Fy?q=%27%20OR", Protocol: "HTTP/1.1",
			Headers: []Header{{"host", "alb.example.com"}},
		},
	},
	{
		name: "alb/multi-value",
		payload: `{"requestContext":{"elb":{}},"httpMethod":"GET","path":"/",` +
			`"multiValueQueryStringParameters":{"q":["1","a%20b"]},"multiValueHeaders":{"x":["1","2"]}}`,
		kind: ALB,
		req: &Request{
			Method: "GET", URI: "/?q=1&q=a%20b", Protocol: "HTTP/1.1",
			Headers: []Header{{"x", "1"}, {"x", "2"}},
		},
	},
	{
		name: "apigw-websocket/message",
		payload: `{"requestContext":{"routeKey":"$default","eventType":"MESSAGE","connectionId":"c",` +
			`"domainName":"ws.example.com","identity":{"sourceIp":"9.9.9.9"}},"body":" {\"action\":\"x\"}","isBase64Encoded":false}`,
		kind: APIGatewayWebSocket,
		req: &Request{
			Method: "POST", URI: "/", Protocol: "HTTP/1.1",
			Headers: []Header{{"content-type", "application/json"}, {"content-length", "15"}, {"host", "ws.example.com"}},
			Body:    []byte(` {"action":"x"}`), RemoteAddr: "9.9.9.9",
			JSON: true, Fields: []Field{{"body.action", "x"}},
		},
	},
	{
		name: "apigw-websocket/text-message",
		payload: `{"requestContext":{"eventType":"MESSAGE","connectionId":"c"},` +
			`"body":"` + b64("hello") + `","isBase64Encoded":true}`,
		kind: APIGatewayWebSocket,
		req: &Request{
			Method: "POST", URI: "/", Protocol: "HTTP/1.1",
			Headers: []Header{{"content-type", "text/plain"}, {"content-length", "5"}},
			Body:    []byte("hello"),
		},
	},
	{
		name: "apigw-websocket/connect",
		payload: `{"headers":{"Host":"h"},"multiValueHeaders":{"Host":["h"]},"queryStringParameters":{"token":"a b"},` +
			`"requestContext":{"eventType":"CONNECT","connectionId":"c","domainName":"ws.example.com"},"isBase64Encoded":false}`,
		kind: APIGatewayWebSocket,
		req: &Request{
			Method: "GET", URI: "/?token=a+b", Protocol: "HTTP/1.1",
			Headers: []Header{{"Host", "h"}},
		},
	},
	{
		name:    "limits/depth",
		lim:     Limits{MaxDepth: 3},
		payload: `{"a":{"b":{"c":{"d":1}}},"z":1}`,
		kind:    Direct,
		records: one(fields("z", "1"), Violation{BoundDepth, "a.b.c"}),
	},
	{
		// The body's object is the fourth container from the event root.
		name:    "limits/depth-envelope",
		lim:     Limits{MaxDepth: 4},
		payload: sqsEvent(`{"x":{"y":1},"z":2}`),
		kind:    SQS,
		records: []Record{{Path: "Records[0]", ID: "m0", Fields: fields("body.z", "2"),
			Violations: []Violation{{BoundDepth, "body.x"}}}},
	},
	{
		// Unwrapping a notification whose attribute values would sit past
		// MaxDepth would hide them from the bound: it is walked instead.
		name:    "limits/depth-sns-notification",
		lim:     Limits{MaxDepth: 5},
		payload: sqsEvent(`{"Type":"Notification","Message":"m","MessageAttributes":{"k":{"Type":"String","Value":"v"}}}`),
		kind:    SQS,
		records: []Record{{Path: "Records[0]", ID: "m0", Fields: fields("body.Type", "Notification", "body.Message", "m"),
			Violations: []Violation{{BoundDepth, "body.MessageAttributes.k"}}}},
	},
	{
		name:    "limits/depth-s3-notification",
		lim:     Limits{MaxDepth: 7},
		payload: sqsEvent(`{"Records":[{"eventSource":"aws:s3","s3":{"object":{"key":"k"}}}]}`),
		kind:    SQS,
		records: []Record{{Path: "Records[0]", ID: "m0", Fields: fields("body.Records[0].eventSource", "aws:s3"),
			Violations: []Violation{{BoundDepth, "body.Records[0].s3.object"}}}},
	},
	{
		// MaxDepth is capped, so the readers that recurse stay bounded.
		name:    "limits/depth-ceiling",
		lim:     Limits{MaxDepth: 1 << 30},
		payload: strings.Repeat("[", depthCeiling+1) + strings.Repeat("]", depthCeiling+1),
		kind:    Direct,
		records: one(nil, Violation{BoundDepth, strings.Repeat("[0]", depthCeiling)}),
	},
	{
		name:    "limits/depth-nested",
		payload: strings.Repeat("[", 100000) + strings.Repeat("]", 100000),
		kind:    Direct,
		records: one(nil, Violation{BoundDepth, strings.Repeat("[0]", 64)}),
	},
	{
		name:    "limits/depth-unbalanced",
		lim:     Limits{MaxValueBytes: 8},
		payload: strings.Repeat(`{"a":[`, 50000),
		kind:    Direct,
		records: one(fields("payload", `{"a":[{"`), Violation{BoundValue, "payload"}),
	},
	{
		name:    "limits/fields",
		lim:     Limits{MaxFields: 2},
		payload: `{"a":1,"b":{"x":2},"c":3,"d":4}`,
		kind:    Direct,
		records: one(fields("a", "1", "b.x", "2"), Violation{BoundFields, "c"}),
	},
	{
		// MaxFields counts per record.
		name:    "limits/fields-per-record",
		lim:     Limits{MaxFields: 1},
		payload: sqsEvent("a", "b"),
		kind:    SQS,
		records: sqsRecords(fields("body", "a"), fields("body", "b")),
	},
	{
		// A handler that decodes a string as JSON gets its leaves.
		name:    "direct/stringified-json",
		payload: `{"a":"{\"b\":[1,\"\\u0027x\"]}","c":"[]","d":" {} ","e":"{not json","f":"[1] x"}`,
		kind:    Direct,
		records: one(fields("a.b[0]", "1", "a.b[1]", "'x", "c", "", "d", "", "e", "{not json", "f", "[1] x")),
	},
	{
		// Stringified JSON counts toward MaxDepth from where it sits.
		name:    "limits/depth-stringified-json",
		lim:     Limits{MaxDepth: 2},
		payload: `{"a":"{\"b\":{\"c\":1}}","d":1}`,
		kind:    Direct,
		records: one(fields("d", "1"), Violation{BoundDepth, "a.b"}),
	},
	{
		name:    "ambiguous/trailing",
		payload: `{"a":"x"} {"a":"y"}`,
		kind:    Direct,
		records: []Record{{Fields: fields("payload", `{"a":"x"} {"a":"y"}`), Ambiguities: []Ambiguity{{Kind: Trailing}}}},
	},
	{
		// Repeated in another letter case: encoding/json decodes the last.
		name:    "ambiguous/repeated-sqs-member",
		payload: `{"Records":[{"messageId":"m0","eventSource":"aws:sqs","body":"a","Body":"b","attributes":{"MessageGroupId":"g","messagegroupid":"h"}}]}`,
		kind:    SQS,
		records: []Record{{Path: "Records[0]", ID: "m0", Fields: fields("body", "b", "attributes.MessageGroupId", "h"),
			Ambiguities: []Ambiguity{{Repeated, "body"}, {Repeated, "attributes.MessageGroupId"}}}},
	},
	{
		name:    "ambiguous/http-body-trailing",
		payload: `{"version":"2.0","rawPath":"/","requestContext":{"http":{"method":"GET"}},"body":"{\"a\":1} x"}`,
		kind:    APIGatewayHTTP,
		req: &Request{Method: "GET", URI: "/", Protocol: "HTTP/1.1", Body: []byte(`{"a":1} x`),
			JSON: true, Fields: fields("body.a", "1"), Ambiguities: []Ambiguity{{Trailing, "body"}}},
	},
	{
		// Each invalid byte reads as U+FFFD, in keys and values, as
		// encoding/json decodes it; keys match in any letter case, with
		// Unicode's simple folding ("ſ" is "s", "K" is "k").
		name: "decode/utf8-and-folding",
		payload: `{"Records":[{"messageId":"m0","eventSource":"aws:sqs","BODY":"a` + "\xff" + `b",` +
			`"meſſageAttributes":{"` + "\xfe" + `":{"stringValue":"` + "\xc0" + `"}}}]}`,
		kind:    SQS,
		records: []Record{{Path: "Records[0]", ID: "m0", Fields: fields("body", "a\uFFFDb", "messageAttributes.\uFFFD.stringValue", "\uFFFD")}},
	},
	{
		name:    "limits/value",
		lim:     Limits{MaxValueBytes: 4},
		payload: `{"a":"abcdefgh","b":"xy","c":"123456"}`,
		kind:    Direct,
		records: one(fields("a", "abcd", "b", "xy", "c", "1234"), Violation{BoundValue, "a"}),
	},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			ev := Parse([]byte(tc.payload), tc.lim)
			checkEvent(t, []byte(tc.payload), tc.lim, ev)
			if ev.Kind != tc.kind {
				t.Fatalf("Kind = %q, want %q", ev.Kind, tc.kind)
			}
			if !reflect.DeepEqual(ev.Request, tc.req) {
				t.Errorf("Request =\n%s\nwant\n%s", show(ev.Request), show(tc.req))
			}
			checkSpans(t, tc.payload, ev)
			got := make([]Record, len(ev.Records))
			for i, r := range ev.Records {
				r.Start, r.End = 0, 0
				got[i] = r
			}
			want := tc.records
			if want == nil {
				want = []Record{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Records =\n%s\nwant\n%s", show(got), show(want))
			}
		})
	}
}

func show(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// checkEvent asserts what must hold of any Parse result, whatever the input.
func checkEvent(t testing.TB, payload []byte, lim Limits, ev Event) {
	t.Helper()
	lim = lim.withDefaults()
	if ev.Kind.HTTP() {
		if ev.Request == nil || ev.Records != nil {
			t.Fatalf("kind %s: Request %v, %d records", ev.Kind, ev.Request, len(ev.Records))
		}
		return
	}
	if ev.Request != nil {
		t.Fatalf("kind %s has a Request", ev.Kind)
	}
	for _, r := range ev.Records {
		if r.Start < 0 || r.Start > r.End || r.End > len(payload) {
			t.Fatalf("record %d: Start %d, End %d, payload %d bytes", r.Index, r.Start, r.End, len(payload))
		}
		if len(r.Fields) > lim.MaxFields {
			t.Fatalf("record %d: %d fields, MaxFields %d", r.Index, len(r.Fields), lim.MaxFields)
		}
		for _, f := range r.Fields {
			if len(f.Value) > lim.MaxValueBytes {
				t.Fatalf("record %d: field %q is %d bytes, MaxValueBytes %d", r.Index, f.Name, len(f.Value), lim.MaxValueBytes)
			}
		}
	}
}

// checkSpans asserts that each batch record's Start and End cut out exactly
// that record's JSON, as encoding/json sees it.
func checkSpans(t *testing.T, payload string, ev Event) {
	t.Helper()
	var raws []json.RawMessage
	switch ev.Kind {
	case SQS, SNS, S3, DynamoDB, Kinesis:
		var e struct{ Records []json.RawMessage }
		if err := json.Unmarshal([]byte(payload), &e); err != nil {
			t.Fatal(err)
		}
		raws = e.Records
	case Firehose:
		var e struct {
			Records []json.RawMessage `json:"records"`
		}
		if err := json.Unmarshal([]byte(payload), &e); err != nil {
			t.Fatal(err)
		}
		raws = e.Records
	case Kafka:
		// encoding/json loses the order of the partitions: match by content.
		var e struct {
			Records map[string][]json.RawMessage `json:"records"`
		}
		if err := json.Unmarshal([]byte(payload), &e); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, rs := range e.Records {
			for _, r := range rs {
				seen[string(r)] = true
			}
		}
		for _, r := range ev.Records {
			if !seen[payload[r.Start:r.End]] {
				t.Errorf("%s: payload[%d:%d] = %q is not a record", r.Path, r.Start, r.End, payload[r.Start:r.End])
			}
		}
		return
	default:
		for _, r := range ev.Records {
			if want := strings.TrimSpace(payload); payload[r.Start:r.End] != want {
				t.Errorf("payload[%d:%d] = %q, want %q", r.Start, r.End, payload[r.Start:r.End], want)
			}
		}
		return
	}
	if len(raws) != len(ev.Records) {
		t.Fatalf("%d records, encoding/json finds %d", len(ev.Records), len(raws))
	}
	for i, r := range ev.Records {
		if got := payload[r.Start:r.End]; got != string(raws[i]) {
			t.Errorf("%s: payload[%d:%d] = %q, want %q", r.Path, r.Start, r.End, got, raws[i])
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.payload), tc.lim.MaxDepth, tc.lim.MaxFields, tc.lim.MaxValueBytes)
	}
	if dir, err := testdataDir(); err == nil {
		for _, tf := range testdataFiles(f, dir) {
			f.Add(tf.data, 0, 0, 0)
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte, depth, nfields, value int) {
		// Keep the limits small enough to be hit, and the run fast.
		lim := Limits{MaxDepth: depth % 100, MaxFields: nfields % 1000, MaxValueBytes: value % 10000}
		ev := Parse(payload, lim)
		checkEvent(t, payload, lim, ev)
		// Of repeated topic-partition keys, encoding/json's map keeps one:
		// the records under the others are inspected, but have no span
		// there to compare with.
		if json.Valid(payload) && ev.Kind != Kafka {
			checkSpans(t, string(payload), ev)
		}
		if ev.Kind == Direct && len(ev.Records) == 1 && ev.Records[0].Violations == nil {
			checkLeaves(t, payload, ev.Records[0].Fields)
		}
		// The same bytes as a message body reach the envelope readers.
		wrapped := []byte(sqsEvent(string(payload)))
		checkEvent(t, wrapped, lim, Parse(wrapped, lim))
	})
}

// checkLeaves holds the fields of a Direct event to what encoding/json's
// tokenizer finds in payload, for valid JSON objects and arrays, invalid
// UTF-8 included (both read each bad byte as U+FFFD).
func checkLeaves(t *testing.T, payload []byte, got []Field) {
	t.Helper()
	trimmed := bytes.TrimSpace(payload)
	if !json.Valid(payload) || len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') {
		return
	}
	want, err := leaves(payload)
	if err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	if len(got) == 0 {
		got = []Field{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields of %q =\n%s\nencoding/json finds\n%s", payload, show(got), show(want))
	}
}

// leaves names every leaf of the JSON container in payload the way walk
// does, using encoding/json's tokenizer as an independent reader; a string
// holding a JSON object or array gives its own leaves.
func leaves(payload []byte) ([]Field, error) { return leavesAt(payload, "") }

// leavesAt is leaves for a document whose root is named name.
func leavesAt(payload []byte, root string) ([]Field, error) {
	type level struct {
		name  string // name of the container
		array bool
		index int
		empty bool
	}
	escape := strings.NewReplacer(`\`, `\\`, ".", `\.`, "[", `\[`, "]", `\]`)
	join := func(prefix, key string) string {
		key = escape.Replace(key)
		if prefix == "" {
			return key
		}
		return prefix + "." + key
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	fs := []Field{}
	var stack []level
	name := root // name of the next value
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return fs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			if d, ok := tok.(json.Delim); !ok || (d != '}' && d != ']') {
				if !top.array {
					if key, ok := tok.(string); ok && top.index%2 == 0 {
						// An object key: the next token is its value.
						top.index++
						top.empty = false
						name = join(top.name, key)
						continue
					}
					top.index++
				} else {
					name = top.name + "[" + strconv.Itoa(top.index) + "]"
					top.index++
					top.empty = false
				}
			}
		}
		var value string
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, level{name: name, array: v == '[', empty: true})
			default:
				top := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if top.empty {
					fs = append(fs, Field{Name: top.name})
				}
			}
			continue
		case string:
			if t := strings.TrimLeft(v, " \t\r\n"); t != "" && (t[0] == '{' || t[0] == '[') && json.Valid([]byte(v)) {
				// Stringified JSON: its leaves, under the string's name.
				inner, err := leavesAt([]byte(v), name)
				if err != nil {
					return nil, err
				}
				fs = append(fs, inner...)
				continue
			}
			value = v
		case json.Number:
			value = v.String()
		case bool:
			value = strconv.FormatBool(v)
		case nil:
			value = "null"
		}
		fs = append(fs, Field{Name: name, Value: value})
	}
}

func TestLeaves(t *testing.T) {
	for _, tc := range parseCases {
		if tc.kind == Direct && !strings.HasPrefix(tc.name, "limits/") {
			checkLeaves(t, []byte(tc.payload), Parse([]byte(tc.payload), Limits{}).Records[0].Fields)
		}
	}
	dir := mustTestdataDir(t)
	for _, f := range testdataFiles(t, dir) {
		if ev := Parse(f.data, Limits{}); ev.Kind == Direct {
			checkLeaves(t, f.data, ev.Records[0].Fields)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	dir, err := testdataDir()
	if err != nil {
		b.Skipf("aws-lambda-go sample events not found: %v", err)
	}
	var cases []struct {
		name string
		data []byte
	}
	for _, name := range []string{
		"apigw-request.json", "apigw-v2-request-iam.json", "alb-lambda-target-request-multivalue-headers.json",
		"sqs-event.json", "sns-event.json", "dynamodb-event.json", "kinesis-event.json", "codebuild-phase-change.json",
	} {
		cases = append(cases, struct {
			name string
			data []byte
		}{strings.TrimSuffix(name, ".json"), readTestdata(b, dir, name)})
	}
	// A full SQS batch of 1 KB JSON bodies, the common worst case.
	body := `{"order":{"id":"o-1","customer":{"name":"Ann Example","email":"ann@example.com"},"items":[` +
		strings.Repeat(`{"sku":"SKU-12345","qty":2,"note":"gift wrap, please"},`, 14) + `{"sku":"last","qty":1}]}}`
	bodies := make([]string, 10)
	for i := range bodies {
		bodies[i] = body
	}
	cases = append(cases, struct {
		name string
		data []byte
	}{"sqs-batch-10x1KB", []byte(sqsEvent(bodies...))})
	for _, tc := range parseCases {
		if strings.HasPrefix(tc.name, "limits/depth-") {
			cases = append(cases, struct {
				name string
				data []byte
			}{tc.name, []byte(tc.payload)})
		}
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			b.ReportAllocs()
			for b.Loop() {
				Parse(c.data, Limits{})
			}
		})
	}
}

// TestNameBudget feeds keys that would be copied into many names: the names
// an event builds must stay linear in its size.
func TestNameBudget(t *testing.T) {
	key := strings.Repeat("k", 100000)
	many := "[" + strings.Repeat("1,", 5000) + "1]"
	tests := []struct {
		name    string
		payload string
	}{
		{"direct", `{"` + key + `":` + many + `}`},
		{"sqs", sqsEvent(`{"`+key+`":`+many+`}`, `{"`+key+`":`+many+`}`)},
		{"kafka", `{"eventSource":"aws:kafka","records":{"` + key + `":[` + strings.Repeat(`{"value":"eA=="},`, 1000) + `{}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := Parse([]byte(tt.payload), Limits{})
			names := 0
			for _, r := range ev.Records {
				names += len(r.Path)
				for _, f := range r.Fields {
					names += len(f.Name)
				}
			}
			// A few times the payload, as Limits promises, and each
			// record's Path.
			if limit := 5*len(tt.payload) + 64<<10 + len(ev.Records)*(maxTopicPartition+32); names > limit {
				t.Errorf("names take %d bytes for a %d-byte payload, want at most %d", names, len(tt.payload), limit)
			}
			if tt.name != "kafka" && ev.Records[0].Violations[0].Bound != BoundFields {
				t.Errorf("violations %v, want %s", ev.Records[0].Violations, BoundFields)
			}
		})
	}
}

// TestPairsOutOfOrder gives an API Gateway REST event single- and
// multi-value headers that share nothing and are not in the same order:
// each pair is still inspected once, and telling the two apart stays
// linear (scanning the multi-value pairs for each single one took over a
// second at this size).
func TestPairsOutOfOrder(t *testing.T) {
	const n = 40000
	var multi, single strings.Builder
	for i := range n {
		fmt.Fprintf(&multi, `"m%d":["v"],`, i)
		fmt.Fprintf(&single, `"s%d":"v",`, n-i)
	}
	payload := `{"httpMethod":"GET","path":"/","requestContext":{},"multiValueHeaders":{` + multi.String() +
		`"x":["1","2"]},"headers":{"x":"2",` + single.String() + `"m0":"v"}}`
	start := time.Now()
	ev := Parse([]byte(payload), Limits{})
	if d := time.Since(start); d > time.Second {
		t.Errorf("Parse took %v for a %d-byte payload", d, len(payload))
	}
	// n multi-value pairs, x twice, n single ones; x:2 and m0:v are repeats.
	if got, want := len(ev.Request.Headers), 2*n+2; got != want {
		t.Errorf("%d headers, want %d", got, want)
	}
}

func TestSpan(t *testing.T) {
	s := `{"Records":[{"a":1},{"a":1}]}`
	recs := gjson.Parse(s).Get("Records").Array()
	if start, end := span(s, recs[1]); s[start:end] != `{"a":1}` || start != 20 {
		t.Errorf("span = %d, %d", start, end)
	}
	// A result whose Index is not where its text is gets an empty span,
	// never another record's bytes.
	wrong := recs[1]
	wrong.Index = 0
	if start, end := span(s, wrong); start != 0 || end != 0 {
		t.Errorf("span of a misplaced result = %d, %d, want 0, 0", start, end)
	}
}
