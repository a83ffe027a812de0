package source

import (
	"net/url"

	"github.com/tidwall/gjson"
)

// envelope adds the fields of a text value that may carry a document of its
// own: an SQS body, an SNS message, Kinesis or Firehose data, a Kafka value.
// JSON text is walked leaf by leaf under the name buffer, so a rule sees
// `body.user.name` rather than one opaque string. Text that is a notification
// of another AWS service (SNS→SQS, S3→SQS, S3→SNS→SQS, EventBridge→SQS) gives
// only what that service's caller chose, as the top-level kinds do. Anything
// else is one field holding the text.
//
// depth is the number of containers around the text in the event: envelopes
// share the event's depth budget, so nesting JSON inside strings does not
// reset it.
func (b *builder) envelope(text string, depth int) {
	j := skipSpace(text, 0)
	if j == len(text) || (text[j] != '{' && text[j] != '[') || !valid(text) {
		b.addHere(text)
		return
	}
	if text[j] == '{' {
		if sns, s3, eb := shapes(text, j); sns || s3 || eb {
			doc := gjson.Parse(text)
			if (sns && b.snsNotification(doc, depth)) || (s3 && b.s3Notification(doc, depth)) ||
				(eb && b.eventBridgeNotification(doc, depth)) {
				return
			}
		}
	}
	b.walk(text, depth)
}

// The members a notification of each service may have. A document whose
// members are not all of these, or that repeats one, is walked whole instead:
// whoever can write the envelope's text (anyone who can send to the queue) can
// shape it like a notification, and extra members the handler reads must not
// escape inspection. A repeated member matters because Go's encoding/json
// keeps the last one where gjson finds the first.
var (
	snsKeys = []string{
		"Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp",
		"SignatureVersion", "Signature", "SigningCertURL", "SigningCertUrl",
		"UnsubscribeURL", "UnsubscribeUrl", "MessageAttributes", "SequenceNumber",
	}
	s3EventKeys  = []string{"Records"}
	s3RecordKeys = []string{
		"eventVersion", "eventSource", "awsRegion", "eventTime", "eventName",
		"userIdentity", "requestParameters", "responseElements", "s3",
		"glacierEventData", "restoreEventData", "intelligentTieringEventData",
		"lifecycleEventData", "replicationEventData",
	}
	eventBridgeKeys = []string{
		"version", "id", "detail-type", "source", "account", "time", "region",
		"resources", "detail", "replay-name",
	}
)

// shapes reports which notifications the JSON object starting at text[i]
// could be, judging by its member keys alone. It reads the keys with the
// walker's tokenizer and stops at the first key no shape allows, which for
// an application's own document is usually the first: most bodies cost a
// few bytes here, not a rescan.
func shapes(text string, i int) (sns, s3, eb bool) {
	sns, s3, eb = true, true, true
	var snsSeen, s3Seen, ebSeen uint64
	i = skipSpace(text, i+1)
	for i < len(text) && text[i] == '"' {
		j := stringEnd(text, i)
		key := unquote(text[i:j])
		sns = sns && once(key, snsKeys, &snsSeen)
		s3 = s3 && once(key, s3EventKeys, &s3Seen)
		eb = eb && once(key, eventBridgeKeys, &ebSeen)
		if !sns && !s3 && !eb {
			return
		}
		// Skip the colon and the value to the next key.
		i = skipSpace(text, j)
		if i < len(text) && text[i] == ':' {
			i = skipSpace(text, i+1)
		}
		if i < len(text) && (text[i] == '{' || text[i] == '[') {
			i = skipContainer(text, i)
		} else if i < len(text) && text[i] == '"' {
			i = stringEnd(text, i)
		} else {
			i = literalEnd(text, i)
		}
		i = skipSpace(text, i)
		if i < len(text) && text[i] == ',' {
			i = skipSpace(text, i+1)
		}
	}
	return
}

// once reports whether key is one of keys (at most 64) not seen before, and
// marks it seen.
func once(key string, keys []string, seen *uint64) bool {
	for i, k := range keys {
		if k == key {
			if *seen&(1<<i) != 0 {
				return false
			}
			*seen |= 1 << i
			return true
		}
	}
	return false
}

// onlyKeys reports whether obj is an object whose members all have a key in
// keys (at most 64), each at most once.
func onlyKeys(obj gjson.Result, keys []string) bool {
	if !obj.IsObject() {
		return false
	}
	ok := true
	var seen uint64
	obj.ForEach(func(k, _ gjson.Result) bool {
		ok = once(k.Str, keys, &seen)
		return ok
	})
	return ok
}

// snsNotification adds the fields of an SNS notification as SNS delivers it
// to SQS or HTTP subscribers: Subject, Message (itself an envelope) and the
// message attributes' values. It reports false, adding nothing, when doc is
// not such a notification.
func (b *builder) snsNotification(doc gjson.Result, depth int) bool {
	// The attribute values sit three containers down.
	if depth+3 > b.lim.MaxDepth {
		return false
	}
	typ, msg := doc.Get("Type"), doc.Get("Message")
	if typ.Type != gjson.String || typ.Str != "Notification" || msg.Type != gjson.String {
		return false
	}
	b.snsFields(doc, depth+1)
	return true
}

// snsFields adds Subject, Message and MessageAttributes.<k>.Value of the SNS
// object sns, whose members sit inside depth containers. It serves both the
// SNS trigger (the Sns member of a record) and SNS notifications found in an
// envelope; the two spell some metadata keys differently but not these.
func (b *builder) snsFields(sns gjson.Result, depth int) {
	sns.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "Subject":
			if v.Type != gjson.Null {
				b.addKey("Subject", v.String())
			}
		case "Message":
			mark := b.push("Message")
			if v.Type == gjson.String {
				b.envelope(v.Str, depth)
			} else {
				b.walk(v.Raw, depth)
			}
			b.pop(mark)
		case "MessageAttributes":
			mark := b.push("MessageAttributes")
			b.snsAttributes(v, depth+1)
			b.pop(mark)
		}
		return !b.full
	})
}

// snsAttributes adds <k>.Value for each message attribute. An attribute that
// is not the usual {"Type", "Value"} object is walked whole so nothing in it
// escapes inspection.
func (b *builder) snsAttributes(attrs gjson.Result, depth int) {
	if !attrs.IsObject() {
		if attrs.Type != gjson.Null {
			b.walk(attrs.Raw, depth-1)
		}
		return
	}
	attrs.ForEach(func(k, attr gjson.Result) bool {
		mark := b.push(k.Str)
		if attr.IsObject() {
			attr.ForEach(func(ak, v gjson.Result) bool {
				if ak.Str == "Value" {
					b.addKey("Value", v.String())
				}
				return !b.full
			})
		} else {
			b.walk(attr.Raw, depth)
		}
		b.pop(mark)
		return !b.full
	})
}

// s3Notification adds Records[i].s3.object.key of an S3 event notification
// and reports whether doc was one.
func (b *builder) s3Notification(doc gjson.Result, depth int) bool {
	// The key sits five containers down: event, Records, record, s3, object.
	if depth+5 > b.lim.MaxDepth {
		return false
	}
	recs := doc.Get("Records")
	if !recs.IsArray() {
		return false
	}
	ok := true
	recs.ForEach(func(_, rec gjson.Result) bool {
		ok = onlyKeys(rec, s3RecordKeys) && rec.Get("eventSource").Str == "aws:s3"
		return ok
	})
	if !ok {
		return false
	}
	mark := b.push("Records")
	i := 0
	recs.ForEach(func(_, rec gjson.Result) bool {
		m := b.pushIndex(i)
		b.s3Key(rec)
		b.pop(m)
		i++
		return !b.full
	})
	b.pop(mark)
	return true
}

// s3Key adds s3.object.key of an S3 event record, decoded: S3 form-encodes
// the key in events, so "a+b%3Bc" is the object "a b;c".
func (b *builder) s3Key(rec gjson.Result) {
	key := rec.Get("s3.object.key")
	if !key.Exists() {
		return
	}
	raw := key.String()
	text, err := url.QueryUnescape(raw)
	if err != nil {
		text = raw
	}
	mark := b.push("s3")
	b.push("object")
	b.addKey("key", text)
	b.pop(mark)
}

// eventBridgeNotification adds the fields of an EventBridge event found in an
// envelope and reports whether doc was one.
func (b *builder) eventBridgeNotification(doc gjson.Result, depth int) bool {
	if !doc.Get("detail-type").Exists() ||
		!doc.Get("source").Exists() || !doc.Get("detail").Exists() {
		return false
	}
	b.eventBridgeFields(doc, depth+1)
	return true
}

// eventBridgeFields adds what a PutEvents caller chooses: every leaf of
// detail, and source, detail-type and resources, whose values are free-form
// for custom events. The event's members sit inside depth containers.
func (b *builder) eventBridgeFields(ev gjson.Result, depth int) {
	ev.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "source", "detail-type", "resources", "detail":
			mark := b.push(k.Str)
			b.walk(v.Raw, depth)
			b.pop(mark)
		}
		return !b.full
	})
}
