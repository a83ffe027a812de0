package source

import (
	"strings"

	"github.com/tidwall/gjson"
)

// depthCeiling caps Limits.MaxDepth. The DynamoDB and envelope readers
// recurse once per nesting level they follow, so a configured depth must not
// turn into an unbounded stack.
const depthCeiling = 10000

// Parse recognises the trigger that produced payload and extracts the values
// its caller could choose: the HTTP request for API Gateway, ALB and function
// URL events, the records of a batch otherwise. A payload that is not JSON,
// or is a JSON scalar, is a Direct event with one field named "payload".
//
// Parse never fails and never panics: whatever it cannot make sense of is
// handed on as plain text to inspect. lim bounds what one record yields (a
// zero field means the DefaultLimits value). Time and memory are linear in
// len(payload) for a given MaxDepth: no input makes Parse recurse or rescan
// more than MaxDepth times. The result refers to a private copy of payload.
// Parse is safe for concurrent use.
func Parse(payload []byte, lim Limits) Event {
	p := parser{s: string(payload)}
	p.b.lim = lim.withDefaults()
	p.b.nameBudget = nameBudget(len(payload))
	p.b.payloadLen = len(payload)
	p.b.takeScratch()
	defer p.b.putScratch()
	return p.parse()
}

// withDefaults replaces zero (and negative) fields by DefaultLimits values.
func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxDepth > depthCeiling {
		l.MaxDepth = depthCeiling
	}
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultLimits.MaxFields
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = DefaultLimits.MaxValueBytes
	}
	return l
}

// parser holds the state of one Parse call.
type parser struct {
	s string // the payload; gjson results and field values slice it
	b builder
}

func (p *parser) parse() Event {
	s := p.s
	end, ok := scanValue(s)
	if !ok {
		return p.text(s, 0, len(s))
	}
	if end < len(s) {
		// What follows the value is not part of the event the runtime
		// decodes: inspect all of it as text, and block it as ambiguous.
		ev := p.text(s, 0, len(s))
		ev.Records[0].Ambiguities = []Ambiguity{{Kind: Trailing}}
		return ev
	}
	start := skipSpace(s, 0)
	end = len(strings.TrimRight(s, " \t\r\n"))
	if c := s[start]; c != '{' && c != '[' {
		v := s[start:end]
		if c == '"' {
			v = unquote(v)
		}
		return p.text(v, start, end)
	}
	root := gjson.Parse(s)
	var m members
	if root.IsObject() && !m.read(root) {
		// A member that classifies the event is repeated: which one the
		// handler decodes depends on how it decodes. Inspect every value
		// and block the event as ambiguous.
		r := Record{Start: start, End: end}
		p.b.begin()
		p.b.walk(s, 0)
		p.b.amb = append(p.b.amb, Ambiguity{Kind: Repeated, Path: m.repeated})
		p.b.end(&r)
		return Event{Kind: Direct, Records: []Record{r}}
	}
	kind := m.kind()
	if kind.HTTP() {
		r, text := request(kind, &m)
		p.jsonBody(r, text)
		return Event{Kind: kind, Request: r}
	}
	ev := Event{Kind: kind}
	switch kind {
	case SQS, SNS, S3, DynamoDB, Kinesis:
		p.records(&ev, m.records, "Records")
	case Firehose:
		p.records(&ev, m.records, "records")
	case Kafka:
		p.kafka(&ev, m.records)
	default:
		r := Record{Start: start, End: end}
		p.b.begin()
		switch kind {
		case EventBridge:
			p.b.eventBridgeFields(root, 1)
		case Cognito:
			p.cognito(root)
		default:
			p.b.walk(s, 0)
		}
		p.b.end(&r)
		ev.Records = []Record{r}
	}
	return ev
}

// jsonBody walks a request body that is a JSON document into r.Fields. A
// body with more after its JSON value is walked too (a handler reading the
// body with a json.Decoder decodes that value), and is ambiguous. text is
// the body as a string, or "" to copy it from r.Body (see request).
func (p *parser) jsonBody(r *Request, text string) {
	if c := firstByte(r.Body); c != '{' && c != '[' {
		return
	}
	s := text
	if s == "" {
		s = string(r.Body)
	}
	end, ok := scanValue(s)
	if !ok {
		return
	}
	var rec Record
	p.b.begin()
	mark := p.b.push("body")
	p.b.walk(s[:end], 0)
	if end < len(s) {
		p.b.amb = append(p.b.amb, Ambiguity{Kind: Trailing, Path: "body"})
	}
	p.b.pop(mark)
	p.b.end(&rec)
	r.JSON, r.Fields, r.Violations, r.Ambiguities = true, rec.Fields, rec.Violations, rec.Ambiguities
}

// text returns a Direct event whose one field is the whole payload.
func (p *parser) text(v string, start, end int) Event {
	r := Record{Start: start, End: end}
	p.b.begin()
	p.b.addKey("payload", v)
	p.b.end(&r)
	return Event{Kind: Direct, Records: []Record{r}}
}

// members are the top-level members of an event that classify it and that
// the HTTP kinds are rebuilt from, read in one pass over the payload as
// encoding/json reads them into the aws-lambda-go event types (see lookup).
type members struct {
	version, requestContext, httpMethod                    gjson.Result
	path, rawPath, rawQueryString                          gjson.Result
	queryStringParameters, multiValueQueryStringParameters gjson.Result
	headers, multiValueHeaders, cookies                    gjson.Result
	body, isBase64Encoded                                  gjson.Result
	// records is Records (SQS, SNS, S3, DynamoDB, Kinesis) or records
	// (Firehose, Kafka): one name to encoding/json.
	records, deliveryStreamArn, eventSource               gjson.Result
	detailType, source, detail, triggerSource, userPoolId gjson.Result

	// Members of requestContext, and of requestContext.http.
	http, elb, connectionId, eventType, domainName, protocol, identity gjson.Result
	method, httpProtocol, sourceIP                                     gjson.Result

	// repeated names the first member found more than once.
	repeated string
}

var (
	topNames = []string{
		"version", "requestContext", "httpMethod", "path", "rawPath", "rawQueryString",
		"queryStringParameters", "multiValueQueryStringParameters", "headers",
		"multiValueHeaders", "cookies", "body", "isBase64Encoded", "records",
		"deliveryStreamArn", "eventSource", "detail-type", "source", "detail",
		"triggerSource", "userPoolId",
	}
	contextNames = []string{"http", "elb", "connectionId", "eventType", "domainName", "protocol", "identity"}
	httpNames    = []string{"method", "protocol", "sourceIp"}
)

// read fills m from the members of the object root. It reports false when
// a member is repeated (m.repeated names it).
func (m *members) read(root gjson.Result) bool {
	top := [...]*gjson.Result{
		&m.version, &m.requestContext, &m.httpMethod, &m.path, &m.rawPath, &m.rawQueryString,
		&m.queryStringParameters, &m.multiValueQueryStringParameters, &m.headers,
		&m.multiValueHeaders, &m.cookies, &m.body, &m.isBase64Encoded, &m.records,
		&m.deliveryStreamArn, &m.eventSource, &m.detailType, &m.source, &m.detail,
		&m.triggerSource, &m.userPoolId,
	}
	ctx := [...]*gjson.Result{&m.http, &m.elb, &m.connectionId, &m.eventType, &m.domainName, &m.protocol, &m.identity}
	http := [...]*gjson.Result{&m.method, &m.httpProtocol, &m.sourceIP}
	return m.fill(root, topNames, top[:], "") &&
		m.fill(m.requestContext, contextNames, ctx[:], "requestContext.") &&
		m.fill(m.http, httpNames, http[:], "requestContext.http.")
}

// fill stores the members of obj that names select into slots, and reports
// false when one is repeated.
func (m *members) fill(obj gjson.Result, names []string, slots []*gjson.Result, prefix string) bool {
	var out [32]gjson.Result
	r := lookup(obj, names, out[:len(names)])
	for i, s := range slots {
		*s = out[i]
	}
	if r != "" {
		m.repeated = prefix + r
		return false
	}
	return true
}

var eventSourceName = []string{"eventSource"}

// kind classifies the event by the members AWS puts in each trigger's
// events. The first match wins; the order matters where shapes overlap (a
// WebSocket event can carry httpMethod, an ALB event has a requestContext).
func (m *members) kind() Kind {
	switch {
	case m.version.String() == "2.0" && m.method.Exists():
		if strings.Contains(m.domainName.String(), ".lambda-url.") {
			return FunctionURL
		}
		return APIGatewayHTTP
	case m.elb.Exists():
		return ALB
	case m.connectionId.Exists() && m.eventType.Exists():
		return APIGatewayWebSocket
	case m.httpMethod.Exists() && m.requestContext.Exists():
		return APIGatewayREST
	}
	if first := m.records.Get("0"); m.records.IsArray() && first.Exists() {
		// SNS spells it EventSource, the others eventSource: one name to
		// encoding/json.
		var src [1]gjson.Result
		lookup(first, eventSourceName, src[:])
		switch src[0].String() {
		case "aws:sqs":
			return SQS
		case "aws:kinesis":
			return Kinesis
		case "aws:dynamodb":
			return DynamoDB
		case "aws:s3":
			return S3
		case "aws:sns":
			return SNS
		}
	}
	switch {
	case m.deliveryStreamArn.Exists() && m.records.IsArray():
		return Firehose
	case (m.eventSource.String() == "aws:kafka" || m.eventSource.String() == "SelfManagedKafka") && m.records.IsObject():
		return Kafka
	case m.detailType.Exists() && m.source.Exists() && m.detail.Exists():
		return EventBridge
	case m.triggerSource.Exists() && m.userPoolId.Exists():
		return Cognito
	}
	return Direct
}
