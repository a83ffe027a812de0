package source_test

import (
	"fmt"

	"github.com/lambdarasp/lambdarasp/internal/source"
)

// An SQS message whose body is an SNS notification carrying JSON: the
// fields are the values inside, named by where they sit.
func ExampleParse() {
	payload := []byte(`{"Records":[{"messageId":"059f36b4","receiptHandle":"AQEB",` +
		`"body":"{\"Type\":\"Notification\",\"TopicArn\":\"arn:aws:sns:us-east-1:1:orders\",` +
		`\"Subject\":\"new order\",\"Message\":\"{\\\"user\\\":\\\"x' OR 1=1--\\\"}\"}",` +
		`"eventSource":"aws:sqs"}]}`)
	ev := source.Parse(payload, source.Limits{})
	fmt.Println(ev.Kind)
	for _, r := range ev.Records {
		for _, f := range r.Fields {
			fmt.Printf("%s %s.%s = %q\n", r.ID, r.Path, f.Name, f.Value)
		}
	}
	// Output:
	// sqs
	// 059f36b4 Records[0].body.Type = "Notification"
	// 059f36b4 Records[0].body.TopicArn = "arn:aws:sns:us-east-1:1:orders"
	// 059f36b4 Records[0].body.Subject = "new order"
	// 059f36b4 Records[0].body.Message.user = "x' OR 1=1--"
}
