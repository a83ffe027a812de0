package source

import "github.com/tidwall/gjson"

// dynamodb adds the item's keys and new and old images, whose attribute
// values are what the table's writers chose, and returns the stream sequence
// number.
func (p *parser) dynamodb(rec gjson.Result) (id string) {
	b := &p.b
	var d [1]gjson.Result
	b.lookup(rec, dynamodbName, d[:])
	mark := b.push("dynamodb")
	var m [4]gjson.Result
	b.lookup(d[0], imageNames, m[:])
	for i, v := range m[1:] {
		if v.Exists() {
			mk := b.push(imageNames[i+1])
			// The image sits inside the event, Records, the record and dynamodb.
			p.item(v, 4)
			b.pop(mk)
		}
	}
	b.pop(mark)
	return str(m[0])
}

var (
	dynamodbName = []string{"dynamodb"}
	imageNames   = []string{"SequenceNumber", "Keys", "NewImage", "OldImage"}
)

// item adds the attributes of a DynamoDB item or map, an object of typed
// values, which sits inside depth containers.
func (p *parser) item(obj gjson.Result, depth int) {
	b := &p.b
	if !b.open(obj, obj.IsObject(), depth) {
		return
	}
	obj.ForEach(func(k, v gjson.Result) bool {
		mark := b.push(k.Str)
		p.typed(v, depth+1)
		b.pop(mark)
		return !b.full
	})
}

// typed adds one DynamoDB attribute value in the service's JSON form
// ({"S": "text"}, {"N": "1"}, {"M": {…}}, …), which sits inside depth
// containers: the name is the attribute path (`address.city`, `tags[0]`),
// numbers keep their text, binaries are decoded. A value of an unknown type
// is walked as plain JSON so nothing in it escapes inspection.
//
// typed recurses once per level of the item, at most MaxDepth times.
func (p *parser) typed(v gjson.Result, depth int) {
	b := &p.b
	if !b.open(v, v.IsObject(), depth) {
		return
	}
	depth++ // inside the type object
	v.ForEach(func(t, x gjson.Result) bool {
		switch t.Str {
		case "S", "N":
			b.addHere(str(x))
		case "B":
			b.addHere(b.decode64(x.String()))
		case "BOOL", "NULL":
			b.addHere(x.Raw)
		case "M":
			p.item(x, depth)
		case "L", "SS", "NS", "BS":
			p.list(t.Str, x, depth)
		default:
			mark := b.push(t.Str)
			b.walk(x.Raw, depth)
			b.pop(mark)
		}
		return !b.full
	})
}

// list adds the elements of an L, SS, NS or BS value, which sits inside depth
// containers.
func (p *parser) list(typ string, arr gjson.Result, depth int) {
	b := &p.b
	if !b.open(arr, arr.IsArray(), depth) {
		return
	}
	i := 0
	arr.ForEach(func(_, e gjson.Result) bool {
		mark := b.pushIndex(i)
		switch typ {
		case "L":
			p.typed(e, depth+1)
		case "BS":
			b.addHere(b.decode64(e.String()))
		default:
			b.addHere(str(e))
		}
		b.pop(mark)
		i++
		return !b.full
	})
}

// open reports whether the container v, which sits inside depth containers,
// is to be read member by member, as walk would: not when it is too deep (a
// BoundDepth violation) or empty (one empty value, so its name is seen).
// expected is false when v is not the container the item's shape calls for;
// v is then walked as plain JSON, so nothing in it escapes inspection.
func (b *builder) open(v gjson.Result, expected bool, depth int) bool {
	switch {
	case !expected:
		b.walk(v.Raw, depth)
	case depth+1 > b.lim.MaxDepth:
		b.violate(BoundDepth, string(b.name))
	case !hasMember(v):
		b.addHere("")
	default:
		return true
	}
	return false
}

// hasMember reports whether the object or array v is not empty.
func hasMember(v gjson.Result) bool {
	i := skipSpace(v.Raw, 1)
	return i < len(v.Raw) && v.Raw[i] != '}' && v.Raw[i] != ']'
}
