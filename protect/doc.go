// Package protect is lambdarasp's in-process runtime protection for Go
// Lambda functions. One call wraps a handler:
//
//	lambda.Start(protect.Handler(myHandler))
//
// Every event — API Gateway, ALB and function URL requests, SQS, SNS, S3,
// DynamoDB Streams, Kinesis, Firehose, Kafka, EventBridge, Cognito triggers
// and direct invocations — is classified from its raw JSON, and the values a
// caller of the trigger controls are run through OWASP CRS v4 and
// lambdarasp's own event-injection rules (Coraza) before the handler decodes
// them. A blocked event is refused the way its trigger understands; see
// Handler.
//
// The function's own outbound calls go through Transport (an
// http.RoundTripper), Client or DialContext: each is recorded for the
// invocation that made it, and refused when it goes to instance metadata,
// the Runtime API, an internal address not opened, a destination outside
// the egress allow-list, or one the lambdarasp extension denied. The
// checks run at dial time, on the addresses a name resolved to, so DNS
// rebinding, redirects and alternative spellings of an address do not get
// around them.
//
// Settings come from options (defaults in code) and LAMBDARASP_* variables
// (overrides at deploy time); see Option. Inspector evaluates events
// without a handler, for tests and the lambdarasp check command.
package protect
