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
	if !valid(s) {
		return p.text(s, 0, len(s))
	}
	start := skipSpace(s, 0)
	end := len(strings.TrimRight(s, " \t\r\n"))
	if c := s[start]; c != '{' && c != '[' {
		v := s[start:end]
		if c == '"' {
			v = unquote(v)
		}
		return p.text(v, start, end)
	}
	root := gjson.Parse(s)
	var m members
	if root.IsObject() {
		m.read(root)
	}
	kind := m.kind()
	if kind.HTTP() {
		r := request(kind, &m)
		p.jsonBody(r)
		return Event{Kind: kind, Request: r}
	}
	ev := Event{Kind: kind}
	switch kind {
	case SQS, SNS, S3, DynamoDB, Kinesis:
		p.records(&ev, m.Records, "Records")
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

// jsonBody walks a request body that is a JSON document into r.Fields.
func (p *parser) jsonBody(r *Request) {
	if c := firstByte(r.Body); c != '{' && c != '[' {
		return
	}
	s := string(r.Body)
	if !valid(s) {
		return
	}
	var rec Record
	p.b.begin()
	mark := p.b.push("body")
	p.b.walk(s, 0)
	p.b.pop(mark)
	p.b.end(&rec)
	r.JSON, r.Fields, r.Violations = true, rec.Fields, rec.Violations
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
// the HTTP kinds are rebuilt from, read in one pass over the payload.
type members struct {
	version, requestContext, httpMethod                    gjson.Result
	path, rawPath, rawQueryString                          gjson.Result
	queryStringParameters, multiValueQueryStringParameters gjson.Result
	headers, multiValueHeaders, cookies                    gjson.Result
	body, isBase64Encoded                                  gjson.Result
	Records, records, deliveryStreamArn, eventSource       gjson.Result
	detailType, source, detail, triggerSource, userPoolId  gjson.Result

	// Members of requestContext.
	http, elb, connectionId, eventType, domainName, protocol, identity gjson.Result
}

// read fills m from the members of the object root.
func (m *members) read(root gjson.Result) {
	readLast(root, func(key string) *gjson.Result {
		switch key {
		case "version":
			return &m.version
		case "requestContext":
			return &m.requestContext
		case "httpMethod":
			return &m.httpMethod
		case "path":
			return &m.path
		case "rawPath":
			return &m.rawPath
		case "rawQueryString":
			return &m.rawQueryString
		case "queryStringParameters":
			return &m.queryStringParameters
		case "multiValueQueryStringParameters":
			return &m.multiValueQueryStringParameters
		case "headers":
			return &m.headers
		case "multiValueHeaders":
			return &m.multiValueHeaders
		case "cookies":
			return &m.cookies
		case "body":
			return &m.body
		case "isBase64Encoded":
			return &m.isBase64Encoded
		case "Records":
			return &m.Records
		case "records":
			return &m.records
		case "deliveryStreamArn":
			return &m.deliveryStreamArn
		case "eventSource":
			return &m.eventSource
		case "detail-type":
			return &m.detailType
		case "source":
			return &m.source
		case "detail":
			return &m.detail
		case "triggerSource":
			return &m.triggerSource
		case "userPoolId":
			return &m.userPoolId
		}
		return nil
	})
	readLast(m.requestContext, func(key string) *gjson.Result {
		switch key {
		case "http":
			return &m.http
		case "elb":
			return &m.elb
		case "connectionId":
			return &m.connectionId
		case "eventType":
			return &m.eventType
		case "domainName":
			return &m.domainName
		case "protocol":
			return &m.protocol
		case "identity":
			return &m.identity
		}
		return nil
	})
}

// readLast stores each member of obj that slot names into its slot. Of
// repeated members the last wins: encoding/json, which decodes the event for
// the handler, keeps the last, and what is inspected must be what the
// handler sees.
func readLast(obj gjson.Result, slot func(key string) *gjson.Result) {
	obj.ForEach(func(k, v gjson.Result) bool {
		if f := slot(k.Str); f != nil {
			*f = v
		}
		return true
	})
}

// kind classifies the event by the members AWS puts in each trigger's
// events. The first match wins; the order matters where shapes overlap (a
// WebSocket event can carry httpMethod, an ALB event has a requestContext).
func (m *members) kind() Kind {
	switch {
	case m.version.String() == "2.0" && m.http.Get("method").Exists():
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
	if first := m.Records.Get("0"); m.Records.IsArray() && first.Exists() {
		switch first.Get("eventSource").String() {
		case "aws:sqs":
			return SQS
		case "aws:kinesis":
			return Kinesis
		case "aws:dynamodb":
			return DynamoDB
		case "aws:s3":
			return S3
		}
		if first.Get("EventSource").String() == "aws:sns" {
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
