package source

import (
	"encoding/base64"
	"strconv"
	"strings"
	"sync"

	"github.com/tidwall/gjson"
)

// builder collects the Fields and Violations of one record at a time, under
// the Limits. Allocation is per record, not per field: names are built in a
// reusable buffer and become one string when the record ends, values that
// need no unescaping or decoding share the payload's memory, and the Fields
// of every record live in one backing slice, each Record getting a capped
// sub-slice of it.
type builder struct {
	lim    Limits
	fields []Field // the fields of all records so far
	start  int     // index in fields of the current record's first field
	viol   []Violation
	amb    []Ambiguity
	full   bool   // the current record reached MaxFields
	name   []byte // name of the value being read
	stack  []frame
	buf    []byte // base64 scratch

	// The names of the current record's fields, end to end, and where each
	// ends.
	names []byte
	ends  []int
	// nameBudget is how many more bytes of names the event may build. A
	// long key above many values would otherwise be copied into every
	// value's name, which is quadratic in the payload: see nameBudget.
	nameBudget int
	payloadLen int
}

// scratch is a builder's working memory that no Event keeps: Parse takes
// it from scratches and gives it back, so an event does not grow it from
// nothing. A buffer grown past maxScratch by a large event is not kept.
type scratch struct {
	name, names, buf []byte
	ends             []int
	stack            []frame
}

var scratches = sync.Pool{New: func() any {
	return &scratch{name: make([]byte, 0, 256), names: make([]byte, 0, 2048), ends: make([]int, 0, 64), stack: make([]frame, 0, 16)}
}}

const maxScratch = 64 << 10

// takeScratch gives b the pool's buffers; putScratch gives them back.
func (b *builder) takeScratch() {
	sc := scratches.Get().(*scratch)
	b.name, b.names, b.buf, b.ends, b.stack = sc.name[:0], sc.names[:0], sc.buf[:0], sc.ends[:0], sc.stack[:0]
}

func (b *builder) putScratch() {
	if cap(b.name)+cap(b.names)+cap(b.buf) > maxScratch || cap(b.ends)+cap(b.stack) > maxScratch/8 {
		return
	}
	scratches.Put(&scratch{name: b.name[:0], names: b.names[:0], buf: b.buf[:0], ends: b.ends[:0], stack: b.stack[:0]})
}

// nameBudget bounds the bytes of field names one event may build: a few times
// the payload, which real events stay far below since their names are short
// paths. A record that reaches it stops there with a BoundFields violation.
func nameBudget(payloadLen int) int {
	return 4*payloadLen + 64<<10
}

// frame is one open container of the JSON value walk is reading.
type frame struct {
	nameLen int // len(builder.name) without the member's suffix
	array   bool
	index   int
}

// begin starts a new record.
func (b *builder) begin() {
	b.start = len(b.fields)
	b.viol = nil
	b.amb = nil
	b.full = false
	b.name = b.name[:0]
	b.names = b.names[:0]
	b.ends = b.ends[:0]
}

// end hands the current record's fields and violations to r.
func (b *builder) end(r *Record) {
	n := len(b.fields)
	r.Ambiguities = b.amb
	if n == b.start {
		r.Violations = b.viol
		return
	}
	fs := b.fields[b.start:n:n]
	names := string(b.names)
	from := 0
	for i, to := range b.ends {
		fs[i].Name = names[from:to]
		from = to
	}
	r.Fields = fs
	r.Violations = b.viol
}

// addHere appends one field named by the name buffer.
func (b *builder) addHere(value string) {
	if b.admit(&value) {
		b.fields = append(b.fields, Field{Value: value})
		b.names = append(b.names, b.name...)
		b.nameBudget -= len(b.name)
		b.ends = append(b.ends, len(b.names))
	}
}

// admit enforces MaxFields and MaxValueBytes on the field about to be added,
// named by the name buffer: it reports whether to add it and truncates
// *value if need be.
func (b *builder) admit(value *string) bool {
	if b.full {
		return false
	}
	if len(b.fields)-b.start >= b.lim.MaxFields || len(b.name) > b.nameBudget {
		b.full = true
		b.violate(BoundFields, string(b.name))
		return false
	}
	if b.fields == nil {
		// Start with room for the fields the payload could hold at one
		// per 32 bytes, up to 512, rather than growing from one.
		b.fields = make([]Field, 0, min(b.payloadLen/32+16, 512))
	}
	if len(*value) > b.lim.MaxValueBytes {
		*value = (*value)[:b.lim.MaxValueBytes]
		b.violate(BoundValue, string(b.name))
	}
	return true
}

// violate records that the current record exceeded bound at path. Only the
// first place each bound is hit is kept: one violation is enough to act on,
// and a list that grows with the attacker's input would be a cost of its own.
func (b *builder) violate(bound Bound, path string) {
	for _, v := range b.viol {
		if v.Bound == bound {
			return
		}
	}
	b.viol = append(b.viol, Violation{Bound: bound, Path: path})
}

// push appends the object key to the name buffer and returns the length to
// pop back to. Inside a key, '.', '[', ']' and '\\' are escaped with a
// backslash, so a name always splits back into the keys it was built from:
// the rules see {"java.lang.Runtime":1} as one key, not three (see
// waf.ArgName), and the name stays unambiguous in findings.
func (b *builder) push(key string) int {
	key = validUTF8(key)
	mark := len(b.name)
	if mark > 0 {
		b.name = append(b.name, '.')
	}
	for i := 0; i < len(key); i++ {
		switch c := key[i]; c {
		case '.', '[', ']', '\\':
			b.name = append(b.name, '\\', c)
		default:
			b.name = append(b.name, c)
		}
	}
	return mark
}

// pushIndex appends "[i]" to the name buffer and returns the length to pop
// back to.
func (b *builder) pushIndex(i int) int {
	mark := len(b.name)
	b.name = appendIndex(b.name, i)
	return mark
}

// appendIndex appends "[i]" to dst.
func appendIndex(dst []byte, i int) []byte {
	dst = append(dst, '[')
	dst = strconv.AppendInt(dst, int64(i), 10)
	return append(dst, ']')
}

func (b *builder) pop(mark int) {
	b.name = b.name[:mark]
}

// addKey appends a field named by the name buffer plus key.
func (b *builder) addKey(key, value string) {
	if b.full {
		return
	}
	mark := b.push(key)
	b.addHere(value)
	b.pop(mark)
}

// decode64 returns s base64-decoded, or s itself when it is not valid
// base64: a value that cannot be decoded is still inspected, never dropped.
func (b *builder) decode64(s string) string {
	n := base64.StdEncoding.DecodedLen(len(s))
	if cap(b.buf) < n {
		b.buf = make([]byte, n)
	}
	m, err := base64.StdEncoding.Decode(b.buf[:n], []byte(s))
	if err != nil {
		return s
	}
	return string(b.buf[:m])
}

// walk adds a field for every leaf of the JSON value s, named from the name
// buffer: object members append ".key" and array elements "[i]". Strings are
// unescaped, numbers and literals keep their JSON text, and an empty object or
// array yields one empty value so that its key is still inspected. depth is
// the number of containers around s, counted from the event root; a
// container deeper than MaxDepth is skipped with a BoundDepth violation.
//
// A string that holds a JSON object or array (stringified JSON) is walked
// as if it were one, under the string's name: its text is not a field of
// its own, as an envelope's is not.
//
// s must be valid JSON (see valid). The walk is a single iterative pass with
// an explicit stack, so the nesting of containers cannot make it recurse.
// Each level of stringified JSON is one recursion and one more pass over
// that string; as a string inside a string needs its quotes escaped, and
// the escapes double with each level, there are at most log2(len(s)) such
// levels, and MaxDepth counts them too.
func (b *builder) walk(s string, depth int) {
	base := len(b.name)
	stack := b.stack[:0]
	i := skipSpace(s, 0)
walk:
	for i < len(s) && !b.full {
		// A value starts at s[i]; the name buffer holds its name.
		switch c := s[i]; c {
		case '{', '[':
			if depth+len(stack)+1 > b.lim.MaxDepth {
				b.violate(BoundDepth, string(b.name))
				i = skipContainer(s, i)
				break
			}
			j := skipSpace(s, i+1)
			if j < len(s) && s[j] == c+2 {
				b.addHere("")
				i = j + 1
				break
			}
			stack = append(stack, frame{nameLen: len(b.name), array: c == '['})
			if c == '{' {
				i = b.member(s, j)
			} else {
				b.pushIndex(0)
				i = j
			}
			continue
		case '"':
			j := stringEnd(s, i)
			v := unquote(s[i:j])
			if isDocument(v) {
				// Stringified JSON: a handler that decodes the string gets
				// its leaves, escapes undone, so they are what is
				// inspected. The nested walk's frames go after this one's.
				b.stack = stack[len(stack):]
				b.walk(v, depth+len(stack))
			} else {
				b.addHere(v)
			}
			i = j
		default:
			j := literalEnd(s, i)
			b.addHere(s[i:j])
			i = j
		}
		// The value ended: close containers until the next value starts.
		for {
			i = skipSpace(s, i)
			if len(stack) == 0 || i >= len(s) {
				break walk
			}
			top := &stack[len(stack)-1]
			b.name = b.name[:top.nameLen]
			if s[i] != ',' {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			i = skipSpace(s, i+1)
			if top.array {
				top.index++
				b.pushIndex(top.index)
			} else {
				i = b.member(s, i)
			}
			break
		}
	}
	b.stack = stack[:0]
	b.name = b.name[:base]
}

// isDocument reports whether the text v is a JSON object or array.
func isDocument(v string) bool {
	k := skipSpace(v, 0)
	return k < len(v) && (v[k] == '{' || v[k] == '[') && valid(v)
}

// member reads the key of the object member at s[i], appends it to the name
// buffer and returns the index of the member's value.
func (b *builder) member(s string, i int) int {
	j := stringEnd(s, i)
	b.push(unquote(s[i:j]))
	j = skipSpace(s, j)
	if j < len(s) && s[j] == ':' {
		j++
	}
	return skipSpace(s, j)
}

// unquote returns the text of the JSON string literal raw (quotes included),
// as encoding/json decodes it (see validUTF8). Strings without escapes are
// sliced, not copied.
func unquote(raw string) string {
	if len(raw) < 2 {
		return ""
	}
	if strings.IndexByte(raw, '\\') < 0 {
		return validUTF8(raw[1 : len(raw)-1])
	}
	return validUTF8(gjson.Parse(raw).Str)
}

// str returns the text of v as encoding/json decodes it into a string field.
func str(v gjson.Result) string {
	if v.Type == gjson.String {
		return validUTF8(v.Str)
	}
	return v.String()
}

// stringEnd returns the index after the closing quote of the string starting
// with the quote at s[i].
func stringEnd(s string, i int) int {
	j := i + 1
	for j < len(s) {
		k := strings.IndexByte(s[j:], '"')
		if k < 0 {
			break
		}
		j += k
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for p := j - 1; p > i && s[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		j++
	}
	return len(s)
}

// literalEnd returns the index after the number, true, false or null at s[i].
func literalEnd(s string, i int) int {
	for ; i < len(s); i++ {
		switch s[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// skipContainer returns the index after the object or array starting at s[i].
func skipContainer(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch s[i] {
		case '"':
			i = stringEnd(s, i)
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return i
}
