// Package source recognises which AWS trigger produced a Lambda event and
// extracts the attacker-controllable values from its raw JSON, without
// decoding the whole event into Go types.
//
// Parse reads the payload with gjson and an iterative scanner of its own, so
// an event costs a few linear scans of the bytes and a few allocations per
// record; values that need no unescaping or decoding share the payload's
// memory. AWS-generated metadata (ARNs, timestamps, signatures, request ids)
// is not extracted: only what a caller of the trigger can choose. What is
// extracted is what encoding/json decodes for the handler (see lookup and
// validUTF8); where the bytes read two ways, the record carries an
// Ambiguity.
package source

// Kind names the trigger that produced an event. The values are stable: they
// appear in logs, in `lambdarasp check` output and in OTel attributes.
type Kind string

// The event sources Parse recognises. Direct is everything else.
const (
	APIGatewayREST      Kind = "apigw-rest"      // API Gateway REST API, proxy integration (payload v1)
	APIGatewayHTTP      Kind = "apigw-http"      // API Gateway HTTP API (payload v2)
	APIGatewayWebSocket Kind = "apigw-websocket" // API Gateway WebSocket API
	ALB                 Kind = "alb"             // Application Load Balancer target
	FunctionURL         Kind = "function-url"    // Lambda function URL
	SQS                 Kind = "sqs"
	SNS                 Kind = "sns"
	S3                  Kind = "s3"
	DynamoDB            Kind = "dynamodb"    // DynamoDB Streams
	Kinesis             Kind = "kinesis"     // Kinesis Data Streams
	Firehose            Kind = "firehose"    // Kinesis Data Firehose transformation
	Kafka               Kind = "kafka"       // Amazon MSK and self-managed Kafka
	EventBridge         Kind = "eventbridge" // EventBridge and CloudWatch Events
	Cognito             Kind = "cognito"     // Cognito user-pool triggers
	Direct              Kind = "direct"      // anything unrecognised: direct invocations
)

// HTTP reports whether events of this kind carry an HTTP request.
func (k Kind) HTTP() bool {
	switch k {
	case APIGatewayREST, APIGatewayHTTP, APIGatewayWebSocket, ALB, FunctionURL:
		return true
	}
	return false
}

// Batch reports whether the trigger can take a partial-batch response
// (batchItemFailures), so blocked records can be failed one by one.
func (k Kind) Batch() bool {
	switch k {
	case SQS, Kinesis, DynamoDB:
		return true
	}
	return false
}

// Event is what Parse found in one payload. HTTP kinds fill Request; every
// other kind fills Records (a direct invocation, an EventBridge event and a
// Cognito trigger are one record each).
type Event struct {
	Kind    Kind
	Request *Request
	Records []Record
}

// Request is an HTTP request rebuilt from an API Gateway, ALB or function URL
// event, in the shape a web server would hand to a WAF.
type Request struct {
	Method   string
	URI      string // path and raw query, percent-encoded as on the wire ("/a%20b?x=1&y=2")
	Protocol string // "HTTP/1.1" when the event does not say
	Headers  []Header
	Body     []byte // base64 bodies already decoded
	// RemoteAddr is the client address API Gateway or the ALB saw, or "".
	RemoteAddr string
	// JSON is true when Body is a JSON document, whatever Content-Type
	// says: a Go handler decodes a JSON body regardless of the header, so
	// an attacker must not be able to hide it from the rules by declaring
	// text/plain. Its leaves are then in Fields, named body.…, walked under
	// the same Limits as a record, with Violations for what exceeded them.
	JSON       bool
	Fields     []Field
	Violations []Violation
	// Ambiguities are places where the handler could decode the request
	// differently from what was inspected (see Ambiguity).
	Ambiguities []Ambiguity
}

// Header is one HTTP header line. Multi-value headers give one Header per
// value; API Gateway v2 cookies are folded into one Cookie header.
type Header struct {
	Name, Value string
}

// Record is one independently blockable unit of an event: one SQS message,
// one Kinesis record, or the whole event for single-record kinds.
type Record struct {
	// Index is the record's position in the batch, as reported in
	// blocked_records. Kafka records are numbered across all partitions in
	// payload order.
	Index int
	// Path is where the record sits in the event: "Records[3]",
	// "records[0]", "records.topic-0[2]" (Kafka: the "topic-partition" key,
	// verbatim, cut at 256 bytes), or "" for single-record kinds.
	Path string
	// ID identifies the record to the trigger in a partial-batch response:
	// the SQS messageId, the Kinesis or DynamoDB sequence number, the
	// Firehose recordId. Empty where the trigger has no such notion.
	ID string
	// Start and End are the byte offsets of the record's JSON object in the
	// payload, so the record can be cut out without re-encoding the event.
	Start, End int
	// Fields are the values to inspect.
	Fields []Field
	// Violations are bounds the record exceeded; each becomes a finding.
	// Each Bound appears at most once, at the first place it was hit.
	Violations []Violation
	// Ambiguities are places where the handler could decode the record
	// differently from what was inspected: a repeated member, data after
	// the JSON value. The record is still inspected as encoding/json reads
	// it.
	Ambiguities []Ambiguity
}

// Field is one value to inspect. Name is its path inside the record, in the
// form `body.user.name`, `body.items[0]`, `messageAttributes.k.stringValue`;
// the full path of a finding is Record.Path + "." + Name. An object key is
// inspected as part of the Name of the values below it; an empty object or
// array under a key yields a Field with an empty Value so its key is seen.
// Inside a key, '.', '[', ']' and '\\' are escaped with a backslash
// (`body.java\.lang\.Runtime`), so a Name always splits back into the keys
// it was built from.
type Field struct {
	Name  string
	Value string
}

// Violation says which bound a record exceeded and where.
type Violation struct {
	Bound Bound
	Path  string // Name-style path where the bound was hit
}

// Bound names one of the Limits.
type Bound string

// The bounds Parse enforces.
const (
	BoundDepth  Bound = "depth"  // JSON nesting deeper than Limits.MaxDepth
	BoundFields Bound = "fields" // more than Limits.MaxFields values in one record
	BoundValue  Bound = "value"  // one value longer than Limits.MaxValueBytes
)

// Limits bound the work Parse does on one payload. The zero value means
// DefaultLimits.
type Limits struct {
	// MaxDepth is the deepest JSON nesting followed, counted from the event
	// root (default 64; at most 10,000). JSON inside a string that Parse
	// reads as a document (an SQS body, Kinesis data, an SNS message) counts
	// from where the string sits. Deeper values are not extracted; the record
	// gets a BoundDepth violation.
	MaxDepth int
	// MaxFields is the most values extracted from one record (default 10,000).
	// The record gets a BoundFields violation and the rest is not extracted.
	// The same happens when the names of an event's fields together pass a
	// few times the payload's size, as a long key above many values would.
	MaxFields int
	// MaxValueBytes is the longest value handed on whole (default 1 MiB).
	// Longer values are extracted truncated to MaxValueBytes and the record
	// gets a BoundValue violation.
	MaxValueBytes int
}

// DefaultLimits are the bounds used when a Limits field is zero.
var DefaultLimits = Limits{MaxDepth: 64, MaxFields: 10000, MaxValueBytes: 1 << 20}
