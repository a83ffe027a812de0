package source

import "testing"

// depthCases put the document {"a":[{"b":"x"}]}, or what stands for it,
// where each source carries caller-chosen JSON; deepest is the number of
// containers around "x", counted from the event root.
var depthCases = []struct {
	name    string
	payload string
	deepest int
}{
	{"direct", `{"a":[{"b":"x"}]}`, 3},
	{"sqs/body", sqsEvent(`{"a":[{"b":"x"}]}`), 6},
	{"sqs/not-an-object", `{"Records":[{"eventSource":"aws:sqs"},[{"a":[{"b":"x"}]}]]}`, 6},
	{"sqs/sns-notification", sqsEvent(`{"Type":"Notification","Message":` + q(`{"a":[{"b":"x"}]}`) + `}`), 7},
	{"sns/message", `{"Records":[{"EventSource":"aws:sns","Sns":{"Message":` + q(`{"a":[{"b":"x"}]}`) + `}}]}`, 7},
	{"kinesis/data", `{"Records":[{"eventSource":"aws:kinesis","kinesis":{"data":"` + b64(`{"a":[{"b":"x"}]}`) + `"}}]}`, 7},
	{"firehose/data", `{"deliveryStreamArn":"arn","records":[{"data":"` + b64(`{"a":[{"b":"x"}]}`) + `"}]}`, 6},
	{"kafka/value", `{"eventSource":"aws:kafka","records":{"t-0":[{"value":"` + b64(`{"a":[{"b":"x"}]}`) + `"}]}}`, 7},
	{"kafka/not-an-object", `{"eventSource":"aws:kafka","records":{"t-0":[[{"a":[{"b":"x"}]}]]}}`, 7},
	{"eventbridge/detail", `{"detail-type":"t","source":"s","detail":{"a":[{"b":"x"}]}}`, 4},
	{"cognito/request", `{"triggerSource":"t","userPoolId":"p","request":{"a":[{"b":"x"}]}}`, 4},
	// The image, a's type, the list, its element's type, the map, b's type.
	{"dynamodb/image", `{"Records":[{"eventSource":"aws:dynamodb","dynamodb":{"NewImage":{"a":{"L":[{"M":{"b":{"S":"x"}}}]}}}}]}`, 10},
	// A JSON request body counts from the body, not the event.
	{"http/json-body", `{"version":"2.0","rawPath":"/","requestContext":{"http":{"method":"POST"}},"body":` + q(`{"a":[{"b":"x"}]}`) + `}`, 3},
}

// TestDepthFromRoot checks each source's count of the containers around the
// JSON it reads: "x" is extracted under a MaxDepth of deepest, and withheld,
// with a BoundDepth violation, under one less.
func TestDepthFromRoot(t *testing.T) {
	for _, tc := range depthCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, max := range []int{tc.deepest, tc.deepest - 1} {
				ev := Parse([]byte(tc.payload), Limits{MaxDepth: max})
				var fs []Field
				var vs []Violation
				if ev.Request != nil {
					fs, vs = ev.Request.Fields, ev.Request.Violations
				}
				for _, r := range ev.Records {
					fs, vs = append(fs, r.Fields...), append(vs, r.Violations...)
				}
				found := false
				for _, f := range fs {
					found = found || f.Value == "x"
				}
				violated := len(vs) == 1 && vs[0].Bound == BoundDepth
				if want := max == tc.deepest; found != want || violated == want || len(vs) > 1 {
					t.Errorf("MaxDepth %d: fields %v, violations %v", max, fs, vs)
				}
			}
		})
	}
}
