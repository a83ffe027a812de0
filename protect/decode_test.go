package protect

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

// decodeCase is one way the bytes of an event can be read differently by
// encoding/json, which decodes the event for the handler, and by a reader
// of the same bytes that follows JSON's letter (exact keys, the first of
// repeated members, invalid UTF-8 as it is). Each is run against the real
// decode: aws-lambda-go's, through lambda.NewHandler, into its event types
// or into a handler's own struct.
type decodeCase struct {
	name    string
	payload string
	// handler is a typed handler that stores in *seen the value the
	// attacker aims at, as the handler decodes it.
	handler func(seen *string) any
	// sees is what the unprotected handler finds there; "" means its
	// decode fails, so its code never runs.
	sees string
	// rule must be among the findings; 0: the event need not be blocked
	// (its decode fails).
	rule int
}

const xss = "<script>alert(document.cookie)</script>"

// escapedXSS is xss with every '<' and '>' as a \u escape, as a JSON
// string's text.
var escapedXSS = strings.NewReplacer("<", `\u003c`, ">", `\u003e`).Replace(xss)

// reads is a typed handler for lambda.NewHandler: it stores in *seen what
// get finds in the event E it decodes.
func reads[E any](get func(E) (string, error)) func(seen *string) any {
	return func(seen *string) any {
		return func(e E) (err error) {
			*seen, err = get(e)
			return err
		}
	}
}

// order is a direct invocation's own type.
type order struct {
	Q string
	N float64
}

// decodeQ reads the handler's own type from JSON text with a json.Decoder,
// as many Go handlers read a body: it reads the first value and stops.
func decodeQ(text string) (string, error) {
	var o order
	err := json.NewDecoder(strings.NewReader(text)).Decode(&o)
	return o.Q, err
}

var (
	sqsBody      = reads(func(e events.SQSEvent) (string, error) { return e.Records[0].Body, nil })
	sqsAttribute = reads(func(e events.SQSEvent) (string, error) {
		return *e.Records[0].MessageAttributes["k"].StringValue, nil
	})
	snsMessage   = reads(func(e events.SNSEvent) (string, error) { return e.Records[0].SNS.Message, nil })
	kinesisData  = reads(func(e events.KinesisEvent) (string, error) { return string(e.Records[0].Kinesis.Data), nil })
	httpBody     = reads(func(e events.APIGatewayV2HTTPRequest) (string, error) { return e.Body, nil })
	httpJSONBody = reads(func(e events.APIGatewayV2HTTPRequest) (string, error) { return decodeQ(e.Body) })
	restQuery    = reads(func(e events.APIGatewayProxyRequest) (string, error) { return e.QueryStringParameters["q"], nil })
	directQ      = reads(func(o order) (string, error) { return o.Q, nil })
	// The body read as the SNS notification it claims to be, and its
	// message as the handler's own type.
	sqsNotification = reads(func(e events.SQSEvent) (string, error) {
		var n events.SNSEntity
		if err := json.Unmarshal([]byte(e.Records[0].Body), &n); err != nil {
			return "", err
		}
		return decodeQ(n.Message)
	})
)

func sqsRec(members string) string {
	return `{"Records":[{"messageId":"m0","eventSource":"aws:sqs",` + members + `}]}`
}

const httpV2 = `{"version":"2.0","rawPath":"/","requestContext":{"domainName":"x.example","http":{"method":"POST","sourceIp":"203.0.113.1"}},`

var decodeCases = []decodeCase{
	{
		name:    "key-case/sqs-body",
		payload: sqsRec(`"Body":` + jsonString(xss)),
		handler: sqsBody, sees: xss, rule: 941100,
	},
	{
		// "ſ" (U+017F) folds to "s" in encoding/json's case-insensitive match.
		name:    "key-fold/sqs-message-attributes",
		payload: sqsRec(`"body":"ok","meſſageAttributes":{"k":{"stringValue":` + jsonString(xss) + `,"dataType":"String"}}`),
		handler: sqsAttribute, sees: xss, rule: 941100,
	},
	{
		name: "key-fold/sns",
		payload: `{"Records":[{"EventSource":"aws:sns","EventSubscriptionArn":"arn",` +
			`"ſns":{"Type":"Notification","MessageId":"m","Message":` + jsonString(xss) + `}}]}`,
		handler: snsMessage, sees: xss, rule: 941100,
	},
	{
		// "K" (U+212A, Kelvin) folds to "k".
		name:    "key-fold/kinesis",
		payload: `{"Records":[{"eventSource":"aws:kinesis","Kinesis":{"sequenceNumber":"1","data":"` + b64(xss) + `"}}]}`,
		handler: kinesisData, sees: xss, rule: 941100,
	},
	{
		name:    "key-escaped/sqs-body",
		payload: sqsRec(`"b\u006fdy":` + jsonString(xss)),
		handler: sqsBody, sees: xss, rule: 941100,
	},
	{
		name:    "key-repeated/sqs-body",
		payload: sqsRec(`"body":"hello","body":` + jsonString(xss)),
		handler: sqsBody, sees: xss, rule: ruleRepeated,
	},
	{
		name:    "key-repeated/sqs-body-other-case",
		payload: sqsRec(`"body":"hello","BODY":` + jsonString(xss)),
		handler: sqsBody, sees: xss, rule: ruleRepeated,
	},
	{
		name:    "key-repeated/sqs-attribute-value",
		payload: sqsRec(`"body":"ok","messageAttributes":{"k":{"stringValue":"hello","StringValue":` + jsonString(xss) + `}}`),
		handler: sqsAttribute, sees: xss, rule: ruleRepeated,
	},
	{
		name:    "key-case/apigw-http-body",
		payload: httpV2 + `"Body":` + jsonString(xss) + `}`,
		handler: httpBody, sees: xss, rule: 941100,
	},
	{
		// encoding/json merges the two requestContext objects.
		name:    "key-repeated/apigw-http-request-context",
		payload: httpV2 + `"body":` + jsonString(xss) + `,"requestContext":{"elb":{}}}`,
		handler: httpBody, sees: xss, rule: ruleRepeated,
	},
	{
		// Both forms reach the handler: both are inspected.
		name: "single-and-multi-value/apigw-rest-query",
		payload: `{"resource":"/","path":"/","httpMethod":"GET","requestContext":{"identity":{"sourceIp":"203.0.113.1"}},` +
			`"queryStringParameters":{"q":` + jsonString(xss) + `},"multiValueQueryStringParameters":{"q":["hello"]}}`,
		handler: restQuery, sees: xss, rule: 941100,
	},
	{
		name:    "key-case/direct",
		payload: `{"Q":` + jsonString(xss) + `}`,
		handler: directQ, sees: xss, rule: 941100,
	},
	{
		// Walked whole: both are inspected.
		name:    "key-repeated/direct",
		payload: `{"q":"hello","q":` + jsonString(xss) + `}`,
		handler: directQ, sees: xss, rule: 941100,
	},
	{
		name:    "escape/unicode",
		payload: `{"q":"` + escapedXSS + `"}`,
		handler: directQ, sees: xss, rule: 941100,
	},
	{
		name:    "escape/nul",
		payload: `{"q":"\u0000` + escapedXSS + `"}`,
		handler: directQ, sees: "\x00" + xss, rule: 941100,
	},
	{
		// A lone high surrogate is U+FFFD and the escape after it stands:
		// a reader that took both as a pair would lose the '<'.
		name:    "escape/lone-surrogate",
		payload: `{"q":"\ud800` + escapedXSS + `"}`,
		handler: directQ, sees: "\uFFFD" + xss, rule: 941100,
	},
	{
		name:    "utf8/invalid",
		payload: "{\"q\":\"\xff" + xss + "\"}",
		handler: directQ, sees: "\uFFFD" + xss, rule: 941100,
	},
	{
		// The runtime's json.Decoder reads the first value and stops.
		name:    "trailing/direct",
		payload: `{"q":"` + escapedXSS + `"} {"q":"hello"}`,
		handler: directQ, sees: xss, rule: ruleTrailing,
	},
	{
		name:    "trailing/garbage",
		payload: `{"q":"` + escapedXSS + `"}garbage`,
		handler: directQ, sees: xss, rule: ruleTrailing,
	},
	{
		// Inspected as text, the body would keep its escapes.
		name:    "trailing/http-json-body",
		payload: httpV2 + `"headers":{"content-type":"text/plain"},"body":` + jsonString(`{"q":"`+escapedXSS+`"} and more`) + `}`,
		handler: httpJSONBody, sees: xss, rule: ruleTrailing,
	},
	{
		// Not JSON to encoding/json nor to lambdarasp: Coraza's JSON body
		// processor refuses it (200002) and the handler cannot decode it.
		name:    "bom/http-json-body",
		payload: httpV2 + `"headers":{"content-type":"application/json"},"body":` + jsonString("\ufeff{\"q\":\"hello\"}") + `}`,
		handler: httpJSONBody, rule: 200002,
	},
	{
		// A number that does not fit fails the decode: the handler's code
		// never runs.
		name:    "number/too-large",
		payload: `{"q":"hello","n":1e400}`,
		handler: directQ,
	},
	{
		name:    "bom",
		payload: "\xef\xbb\xbf{\"q\":\"hello\"}",
		handler: directQ,
	},
	{
		// A body shaped like an SNS notification but with "message": not
		// read as a notification, so walked whole; the handler's decode
		// takes "message" for Message all the same.
		name: "envelope/sns-message-other-case",
		payload: sqsRec(`"body":` + jsonString(`{"Type":"Notification","MessageId":"m","message":`+
			jsonString(`{"q":"`+escapedXSS+`"}`)+`}`)),
		handler: sqsNotification, sees: xss, rule: 941100,
	},
}

// TestDecodeDifferentials runs each case through the real decode, to show
// the differential is there (the unprotected handler sees the attack, or
// cannot decode the event), and then through the protected handler, which
// must not run the handler's code on it.
func TestDecodeDifferentials(t *testing.T) {
	for _, c := range decodeCases {
		t.Run(c.name, func(t *testing.T) {
			var seen string
			_, err := lambda.NewHandler(c.handler(&seen)).Invoke(context.Background(), []byte(c.payload))
			switch {
			case c.sees == "" && err == nil:
				t.Fatalf("unprotected: decoded %q, want a decode error", seen)
			case c.sees != "" && err != nil:
				t.Fatalf("unprotected: %v", err)
			case seen != c.sees:
				t.Fatalf("unprotected handler saw %q, want %q", seen, c.sees)
			}

			seen = ""
			h := testHandler(t, lambda.NewHandler(c.handler(&seen)), nil)
			_, _ = h.Invoke(invokeCtx(), []byte(c.payload))
			if seen != "" {
				t.Fatalf("protected handler ran and saw %q", seen)
			}
			if c.rule == 0 {
				return
			}
			v := h.in.Inspect([]byte(c.payload))
			if v.Action != Deny || !slices.Contains(v.Rules(), c.rule) {
				t.Fatalf("verdict %s, rules %v; want blocked with %d", v.Action, v.Rules(), c.rule)
			}
		})
	}
}
