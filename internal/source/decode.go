package source

import (
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// What the handler sees is what encoding/json decodes, so the members Parse
// picks out of an object and the text of every value follow its rules, not
// gjson's: a key matches a struct field in any letter case (Unicode simple
// folding: "ſ" is an "s", "K" a "k"), the last of repeated members wins,
// and each byte of invalid UTF-8 reads as U+FFFD. gjson's Get matches
// exactly and keeps the first member, and keeps invalid bytes as they are.

// Ambiguity is a place where a payload can be read in more than one way,
// so that what was inspected might not be what the handler decodes.
type Ambiguity struct {
	Kind AmbiguityKind
	Path string // Name-style path of the member, or "" for the payload
}

// AmbiguityKind names what made a payload ambiguous.
type AmbiguityKind string

// The ambiguities Parse reports.
const (
	// Repeated: a member Parse reads selectively (an SQS record's body, an
	// API Gateway event's headers) appears more than once, in any letter
	// case. encoding/json keeps the last into a struct field but merges
	// repeated objects; a map keeps both spellings; a handler that reads the
	// payload another way may take the first.
	Repeated AmbiguityKind = "repeated"
	// Trailing: a JSON value followed by more than whitespace. The
	// aws-lambda-go runtime (a json.Decoder) and a handler decoding an HTTP
	// body with one read the first value and never see the rest.
	Trailing AmbiguityKind = "trailing"
)

// lookup reads the members of obj that names (the JSON names of a struct's
// fields) select, as encoding/json decodes obj into that struct: out[i] is
// the last member whose key folds to names[i], or the zero Result. It
// reports the first name more than one member matched, or "".
func lookup(obj gjson.Result, names []string, out []gjson.Result) (repeated string) {
	obj.ForEach(func(k, v gjson.Result) bool {
		i := match(k.Str, names)
		if i < 0 {
			return true
		}
		if out[i].Exists() && repeated == "" {
			repeated = names[i]
		}
		out[i] = v
		return true
	})
	return repeated
}

// match returns the index of the name key decodes into, or -1.
func match(key string, names []string) int {
	for i, n := range names {
		if key == n {
			return i
		}
	}
	// The names are ASCII: an ASCII key of another length cannot fold to
	// one, a key with "ſ" or "K" in it can.
	ascii := true
	for i := 0; i < len(key); i++ {
		ascii = ascii && key[i] < utf8.RuneSelf
	}
	for i, n := range names {
		if (len(key) == len(n) || !ascii) && strings.EqualFold(key, n) {
			return i
		}
	}
	return -1
}

// lookup is lookup that records a repeated member as an Ambiguity of the
// current record, at the name buffer's path.
func (b *builder) lookup(obj gjson.Result, names []string, out []gjson.Result) {
	if r := lookup(obj, names, out); r != "" {
		mark := b.push(r)
		b.amb = append(b.amb, Ambiguity{Kind: Repeated, Path: string(b.name)})
		b.pop(mark)
	}
}

// validUTF8 returns the text of a JSON string as encoding/json decodes it:
// each byte that is not part of valid UTF-8 becomes U+FFFD. Valid text is
// returned as is. Values Parse decodes from base64 are bytes, not JSON
// strings, and are handed on unchanged.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			sb.WriteString("\uFFFD")
		} else {
			sb.WriteString(s[i : i+n])
		}
		i += n
	}
	return sb.String()
}
