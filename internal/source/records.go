package source

import "github.com/tidwall/gjson"

// records reads the batch array recs (the Records or records member, named
// member) one record at a time, in payload order.
func (p *parser) records(ev *Event, recs gjson.Result, member string) {
	read := func(rec gjson.Result) (id string) {
		switch ev.Kind {
		case SQS:
			return p.sqs(rec)
		case SNS:
			p.sns(rec)
		case S3:
			p.b.s3Key(rec)
		case DynamoDB:
			return p.dynamodb(rec)
		case Kinesis:
			return p.kinesis(rec)
		case Firehose:
			return p.firehose(rec)
		}
		return ""
	}
	var path []byte
	recs.ForEach(func(_, rec gjson.Result) bool {
		path = appendIndex(append(path[:0], member...), len(ev.Records))
		p.record(ev, path, rec, 2, read)
		return true
	})
}

// record appends the batch record rec, found at path, to ev: read adds its
// fields and returns its ID. A record that is not an object is not one AWS
// would send, and is walked whole; it sits inside depth containers.
func (p *parser) record(ev *Event, path []byte, rec gjson.Result, depth int, read func(gjson.Result) (id string)) {
	r := Record{Index: len(ev.Records), Path: string(path)}
	r.Start, r.End = span(p.s, rec)
	p.b.begin()
	if rec.IsObject() {
		r.ID = read(rec)
	} else {
		p.b.walk(rec.Raw, depth)
	}
	p.b.end(&r)
	ev.Records = append(ev.Records, r)
}

// span returns where the record rec sits in the payload s. gjson's Index is
// exact for results reached by ForEach from the root, as every record is;
// it is 0 for results gjson computes (modifiers, '#' queries), so it is
// checked: should it ever be wrong, span returns an empty span, which a
// caller cutting records out must refuse, rather than the wrong bytes. The
// check is cheap: the strings share memory, so comparing them stops at the
// pointer.
func span(s string, rec gjson.Result) (start, end int) {
	i, n := rec.Index, len(rec.Raw)
	if n > 0 && i >= 0 && i <= len(s)-n && s[i:i+n] == rec.Raw {
		return i, i + n
	}
	return 0, 0
}

// sqs adds the body (an envelope), the message attributes and the FIFO
// group and deduplication ids, which the sender chooses, and returns the
// messageId. The rest of the record is written by SQS.
func (p *parser) sqs(rec gjson.Result) (id string) {
	b := &p.b
	var m [4]gjson.Result
	b.lookup(rec, sqsNames, m[:])
	id = str(m[0])
	if body := m[1]; body.Exists() {
		mark := b.push("body")
		b.envelope(str(body), 3)
		b.pop(mark)
	}
	if attrs := m[3]; attrs.Exists() {
		mark := b.push("attributes")
		var fifo [2]gjson.Result
		b.lookup(attrs, fifoNames, fifo[:])
		for i, v := range fifo {
			if v.Exists() {
				b.addKey(fifoNames[i], str(v))
			}
		}
		b.pop(mark)
	}
	if attrs := m[2]; attrs.Exists() {
		mark := b.push("messageAttributes")
		attrs.ForEach(func(name, attr gjson.Result) bool {
			m := b.push(name.Str)
			p.sqsAttribute(attr)
			b.pop(m)
			return !b.full
		})
		b.pop(mark)
	}
	return id
}

var (
	sqsNames       = []string{"messageId", "body", "messageAttributes", "attributes"}
	fifoNames      = []string{"MessageGroupId", "MessageDeduplicationId"}
	attributeNames = []string{"stringValue", "binaryValue", "stringListValues", "binaryListValues"}
)

// sqsAttribute adds the values of one message attribute; binary values are
// decoded.
func (p *parser) sqsAttribute(attr gjson.Result) {
	b := &p.b
	var m [4]gjson.Result
	b.lookup(attr, attributeNames, m[:])
	if v := m[0]; v.Exists() {
		b.addKey(attributeNames[0], str(v))
	}
	if v := m[1]; v.Exists() {
		b.addKey(attributeNames[1], b.decode64(v.String()))
	}
	for i := 2; i < 4; i++ {
		if !m[i].Exists() {
			continue
		}
		mark := b.push(attributeNames[i])
		j := 0
		m[i].ForEach(func(_, e gjson.Result) bool {
			m := b.pushIndex(j)
			if i == 3 {
				b.addHere(b.decode64(e.String()))
			} else {
				b.addHere(str(e))
			}
			b.pop(m)
			j++
			return !b.full
		})
		b.pop(mark)
	}
}

// sns adds Sns.Subject, Sns.Message (an envelope) and the message
// attributes.
func (p *parser) sns(rec gjson.Result) {
	var sns [1]gjson.Result
	p.b.lookup(rec, snsName, sns[:])
	if !sns[0].IsObject() {
		return
	}
	mark := p.b.push("Sns")
	p.b.snsFields(sns[0], 4)
	p.b.pop(mark)
}

var (
	snsName       = []string{"Sns"}
	kinesisName   = []string{"kinesis"}
	kinesisNames  = []string{"data", "partitionKey", "sequenceNumber"}
	firehoseNames = []string{"recordId", "data"}
)

// kinesis adds kinesis.data (base64, an envelope) and kinesis.partitionKey,
// both chosen by the producer, and returns the sequence number.
func (p *parser) kinesis(rec gjson.Result) (id string) {
	b := &p.b
	var k [1]gjson.Result
	b.lookup(rec, kinesisName, k[:])
	mark := b.push("kinesis")
	var m [3]gjson.Result
	b.lookup(k[0], kinesisNames, m[:])
	if v := m[1]; v.Exists() {
		b.addKey("partitionKey", str(v))
	}
	if v := m[0]; v.Exists() {
		mk := b.push("data")
		b.envelope(b.decode64(v.String()), 4)
		b.pop(mk)
	}
	b.pop(mark)
	return str(m[2])
}

// firehose adds data (base64, an envelope) and returns the recordId.
func (p *parser) firehose(rec gjson.Result) (id string) {
	b := &p.b
	var m [2]gjson.Result
	b.lookup(rec, firehoseNames, m[:])
	if v := m[1]; v.Exists() {
		mk := b.push("data")
		b.envelope(b.decode64(v.String()), 3)
		b.pop(mk)
	}
	return str(m[0])
}

// kafka reads the records of an MSK or self-managed Kafka event, grouped by
// "topic-partition", as one batch numbered in payload order.
func (p *parser) kafka(ev *Event, parts gjson.Result) {
	var path []byte
	read := func(rec gjson.Result) string {
		p.kafkaRecord(rec)
		return ""
	}
	parts.ForEach(func(tp, recs gjson.Result) bool {
		j := 0
		recs.ForEach(func(_, rec gjson.Result) bool {
			path = append(append(path[:0], "records."...), truncate(tp.Str, maxTopicPartition)...)
			path = appendIndex(path, j)
			p.record(ev, path, rec, 3, read)
			j++
			return true
		})
		return true
	})
}

// maxTopicPartition bounds the "topic-partition" key copied into each
// record's Path. Kafka topic names have at most 249 bytes; a longer key is
// not from Kafka, and copying it into every record's Path would cost its
// length times the number of records.
const maxTopicPartition = 256

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// kafkaRecord adds the key and value (base64; the value is an envelope) and
// the headers, which Lambda gives as arrays of signed bytes.
func (p *parser) kafkaRecord(rec gjson.Result) {
	b := &p.b
	var m [3]gjson.Result
	b.lookup(rec, kafkaNames, m[:])
	if v := m[0]; v.Exists() && v.Type != gjson.Null {
		b.addKey("key", b.decode64(v.String()))
	}
	if v := m[1]; v.Exists() && v.Type != gjson.Null {
		mark := b.push("value")
		b.envelope(b.decode64(v.String()), 4)
		b.pop(mark)
	}
	if v := m[2]; v.Exists() {
		mark := b.push("headers")
		v.ForEach(func(_, h gjson.Result) bool {
			h.ForEach(func(name, bytes gjson.Result) bool {
				b.addKey(name.Str, headerBytes(bytes))
				return !b.full
			})
			return !b.full
		})
		b.pop(mark)
	}
}

var kafkaNames = []string{"key", "value", "headers"}

// headerBytes returns a Kafka header value: an array of byte values, signed
// (Java's byte) or not. Elements that are not integers in -128..255 are
// skipped. A string is taken as it is.
func headerBytes(v gjson.Result) string {
	if !v.IsArray() {
		return v.String()
	}
	var buf []byte
	v.ForEach(func(_, e gjson.Result) bool {
		if e.Type == gjson.Number && e.Num >= -128 && e.Num <= 255 && e.Num == float64(int(e.Num)) {
			buf = append(buf, byte(int(e.Num)))
		}
		return true
	})
	return string(buf)
}

// cognito adds every leaf of request, which carries what the user typed
// (attributes, validation data, passwords for migration, challenge answers),
// and userName, which the user chooses at sign-up.
func (p *parser) cognito(root gjson.Result) {
	b := &p.b
	var m [2]gjson.Result
	b.lookup(root, cognitoNames, m[:])
	if v := m[1]; v.Exists() {
		b.addKey("userName", str(v))
	}
	if v := m[0]; v.Exists() {
		mark := b.push("request")
		b.walk(v.Raw, 1)
		b.pop(mark)
	}
}

var cognitoNames = []string{"request", "userName"}
