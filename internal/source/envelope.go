package source

import (
	"net/url"

	"github.com/tidwall/gjson"
)

// envelope adds the fields of a text value that may carry a document of its
// own: an SQS body, an SNS message, Kinesis or Firehose data, a Kafka value.
// JSON text is walked leaf by leaf under the name buffer, so a rule sees
// `body.user.name` rather than one opaque string. Text that is a notification
// of another AWS service (SNS→SQS, S3→SQS, S3→SNS→SQS) is walked the same
// way, with what that service encodes read as its subscriber reads it: an
// SNS Message as an envelope of its own, an S3 object key URL-decoded. Its
// metadata (TopicArn, MessageId, eventName…) is inspected too: whoever can
// write the text (anyone who can send to the queue) writes those as well.
// Anything else is one field holding the text.
//
// depth is the number of containers around the text in the event: envelopes
// share the event's depth budget, so nesting JSON inside strings does not
// reset it.
func (b *builder) envelope(text string, depth int) {
	if !isDocument(text) {
		b.addHere(text)
		return
	}
	j := skipSpace(text, 0)
	if text[j] == '{' {
		if sns, s3 := shapes(text, j); sns || s3 {
			doc := gjson.Parse(text)
			if sns && b.snsNotification(doc, depth) {
				return
			}
			if s3 && b.s3Notification(doc, text, depth) {
				return
			}
		}
	}
	b.walk(text, depth)
}

// The members a notification of each service may have, spelled exactly. A
// document whose members are not all of these, or that repeats one, is
// walked as plain JSON instead: its Message or object key is then inspected
// as written, not decoded the way the notification's reader would, but a
// second Message in another letter case that encoding/json would prefer
// cannot sit beside the one that was decoded.
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
)

// shapes reports which notifications the JSON object starting at text[i]
// could be, judging by its member keys alone. It reads the keys with the
// walker's tokenizer and stops at the first key no shape allows, which for
// an application's own document is usually the first: most bodies cost a
// few bytes here, not a rescan.
func shapes(text string, i int) (sns, s3 bool) {
	sns, s3 = true, true
	var snsSeen, s3Seen uint64
	i = skipSpace(text, i+1)
	for i < len(text) && text[i] == '"' {
		j := stringEnd(text, i)
		key := unquote(text[i:j])
		sns = sns && once(key, snsKeys, &snsSeen)
		s3 = s3 && once(key, s3EventKeys, &s3Seen)
		if !sns && !s3 {
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
// to SQS or HTTP subscribers: every member, with Message read as an envelope
// of its own. It reports false, adding nothing, when doc is not such a
// notification.
func (b *builder) snsNotification(doc gjson.Result, depth int) bool {
	typ, msg := doc.Get("Type"), doc.Get("Message")
	if typ.Type != gjson.String || typ.Str != "Notification" || msg.Type != gjson.String {
		return false
	}
	doc.ForEach(func(k, v gjson.Result) bool {
		mark := b.push(k.Str)
		if k.Str == "Message" {
			b.envelope(str(v), depth+1)
		} else {
			b.walk(v.Raw, depth+1)
		}
		b.pop(mark)
		return !b.full
	})
	return true
}

var snsFieldNames = []string{"Subject", "Message", "MessageAttributes"}

// snsFields adds Subject, Message and MessageAttributes of the Sns object of
// an SNS trigger's record, whose members sit inside depth containers. The
// rest is written by SNS.
func (b *builder) snsFields(sns gjson.Result, depth int) {
	var m [3]gjson.Result
	b.lookup(sns, snsFieldNames, m[:])
	if v := m[0]; v.Exists() && v.Type != gjson.Null {
		b.addKey("Subject", str(v))
	}
	if v := m[1]; v.Exists() {
		mark := b.push("Message")
		if v.Type == gjson.String {
			b.envelope(str(v), depth)
		} else {
			b.walk(v.Raw, depth)
		}
		b.pop(mark)
	}
	// A map to aws-lambda-go: the handler gets every member of every
	// attribute.
	if v := m[2]; v.Exists() && v.Type != gjson.Null {
		mark := b.push("MessageAttributes")
		b.walk(v.Raw, depth)
		b.pop(mark)
	}
}

// s3Notification adds the fields of an S3 event notification, text, and
// reports whether doc was one: every leaf, and each object key decoded as
// well (see s3Key).
func (b *builder) s3Notification(doc gjson.Result, text string, depth int) bool {
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
	b.walk(text, depth)
	// The key sits five containers down: event, Records, record, s3,
	// object; walk said so if that is too deep.
	if depth+5 > b.lim.MaxDepth {
		return true
	}
	mark := b.push("Records")
	i := 0
	recs.ForEach(func(_, rec gjson.Result) bool {
		m := b.pushIndex(i)
		if raw, key, ok := b.objectKey(rec); ok && key != raw {
			b.addKey("key", key)
		}
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
	mark := len(b.name)
	if _, key, ok := b.objectKey(rec); ok {
		b.addKey("key", key)
	}
	b.pop(mark)
}

var (
	s3Name     = []string{"s3"}
	objectName = []string{"object"}
	keyName    = []string{"key"}
)

// objectKey finds s3.object.key in the S3 event record rec as encoding/json
// does, and returns it as written and decoded. It leaves the name buffer at
// s3.object, for the key's field, and reports whether there is a key.
func (b *builder) objectKey(rec gjson.Result) (raw, key string, ok bool) {
	var s3, obj, k [1]gjson.Result
	b.lookup(rec, s3Name, s3[:])
	b.push("s3")
	b.lookup(s3[0], objectName, obj[:])
	b.push("object")
	b.lookup(obj[0], keyName, k[:])
	if !k[0].Exists() {
		return "", "", false
	}
	raw = str(k[0])
	key, err := url.QueryUnescape(raw)
	if err != nil {
		key = raw
	}
	return raw, key, true
}

// eventBridgeFields adds what a PutEvents caller chooses: every leaf of
// detail, and source, detail-type and resources, whose values are free-form
// for custom events. The event's members sit inside depth containers.
func (b *builder) eventBridgeFields(ev gjson.Result, depth int) {
	var m [4]gjson.Result
	b.lookup(ev, eventBridgeNames, m[:])
	for i, v := range m {
		if v.Exists() {
			mark := b.push(eventBridgeNames[i])
			b.walk(v.Raw, depth)
			b.pop(mark)
		}
	}
}

var eventBridgeNames = []string{"detail-type", "source", "resources", "detail"}
