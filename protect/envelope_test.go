package protect

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Notifications as SNS, S3 and EventBridge deliver them to a queue. Whoever
// can send to the queue can write every member of such a body, metadata
// included, and a handler that decodes it into the aws-lambda-go types
// reads those members too.
var notifications = []struct {
	name, doc string
	metadata  []string // paths of the members that are not the payload
}{
	{
		name: "sns",
		doc: `{"Type":"Notification","MessageId":"7a2c9f4e-5b1d-4e7a-9c3f-1d2e3f4a5b6c","TopicArn":"arn:aws:sns:us-east-1:123456789012:orders",` +
			`"Subject":"new order","Message":"{\"id\":1}","Timestamp":"2026-11-22T10:00:00.000Z","SignatureVersion":"1",` +
			`"Signature":"c2lnbmF0dXJl","SigningCertURL":"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",` +
			`"UnsubscribeURL":"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:orders:1",` +
			`"MessageAttributes":{"k":{"Type":"String","Value":"v"}}}`,
		metadata: []string{"MessageId", "TopicArn", "Timestamp", "SignatureVersion", "Signature", "SigningCertURL",
			"UnsubscribeURL", "MessageAttributes.k.Type"},
	},
	{
		name: "s3",
		doc: `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-22T10:00:00.000Z",` +
			`"eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AWS:AIDAEXAMPLE"},"requestParameters":{"sourceIPAddress":"203.0.113.1"},` +
			`"responseElements":{"x-amz-request-id":"C3D13FE58DE4C810"},"s3":{"s3SchemaVersion":"1.0","configurationId":"cfg",` +
			`"bucket":{"name":"uploads","ownerIdentity":{"principalId":"A3NL1KOZZKExample"},"arn":"arn:aws:s3:::uploads"},` +
			`"object":{"key":"a/b.txt","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"0055AED6DCD90281E5"}}}]}`,
		metadata: []string{"Records.0.eventVersion", "Records.0.awsRegion", "Records.0.eventTime", "Records.0.eventName",
			"Records.0.userIdentity.principalId", "Records.0.requestParameters.sourceIPAddress",
			"Records.0.responseElements.x-amz-request-id", "Records.0.s3.configurationId", "Records.0.s3.bucket.name",
			"Records.0.s3.bucket.arn", "Records.0.s3.object.eTag", "Records.0.s3.object.sequencer"},
	},
	{
		name: "eventbridge",
		doc: `{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"OrderPlaced","source":"shop.orders",` +
			`"account":"123456789012","time":"2026-11-22T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":1},"replay-name":"r"}`,
		metadata: []string{"version", "id", "account", "time", "region", "replay-name"},
	},
}

// set returns the JSON document doc with the string at path (keys and
// array indices joined by dots) replaced by v.
func set(t *testing.T, doc, path, v string) string {
	t.Helper()
	var root any
	if err := json.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(path, ".")
	node := root
	for i, k := range keys {
		last := i == len(keys)-1
		switch n := node.(type) {
		case map[string]any:
			if _, ok := n[k]; !ok {
				t.Fatalf("%s: no %q", path, k)
			}
			if last {
				n[k] = v
			}
			node = n[k]
		case []any:
			j, err := strconv.Atoi(k)
			if err != nil || j >= len(n) {
				t.Fatalf("%s: no element %q", path, k)
			}
			if last {
				n[j] = v
			}
			node = n[j]
		}
	}
	b, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAttackInNotificationMetadata(t *testing.T) {
	in := sharedInspector(t)
	for _, n := range notifications {
		if v := in.Inspect([]byte(sqsEvent(n.doc, "x"))); v.Action != Allow {
			t.Errorf("%s: clean notification blocked: %+v", n.name, v.Findings)
		}
		for _, path := range n.metadata {
			t.Run(n.name+"/"+path, func(t *testing.T) {
				v := in.Inspect([]byte(sqsEvent(set(t, n.doc, path, attacks["sqli"]), "x")))
				if v.Source != "sqs" || !slices.Equal(v.BlockedRecords, []int{1}) {
					t.Fatalf("source %s, blocked %v, findings %+v", v.Source, v.BlockedRecords, v.Findings)
				}
				want := "Records[1].body." + strings.ReplaceAll(strings.ReplaceAll(path, ".0.", "[0]."), ".0", "[0]")
				for _, f := range v.Findings {
					if f.Path == want {
						return
					}
				}
				t.Fatalf("no finding at %s: %+v", want, v.Findings)
			})
		}
	}
}
