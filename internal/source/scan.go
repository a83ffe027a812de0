package source

// valid reports whether s is exactly one JSON value (RFC 8259), optionally
// surrounded by whitespace.
//
// It exists because gjson only reads well-formed JSON correctly and
// gjson.Valid recurses once per nesting level, so an attacker's
// "[[[[…" could exhaust the stack before any depth limit applies. This scan is
// iterative: it keeps the open containers on a byte stack that grows with the
// nesting, so time and memory stay linear in len(s) whatever the depth. Like
// encoding/json it does not check that strings are valid UTF-8.
func valid(s string) bool {
	end, ok := scanValue(s)
	return ok && end == len(s)
}

// scanValue reads the JSON value at the start of s (after whitespace) and
// reports where it ends, with the whitespace after it, and whether it is
// valid. Data after the value is not read: json.Decoder, which the
// aws-lambda-go runtime decodes events with, stops there too.
func scanValue(s string) (end int, ok bool) {
	var small [64]byte
	stack := small[:0] // '{' or '[' for each open container
	i := skipSpace(s, 0)
	for {
		// A value starts at s[i].
		if i >= len(s) {
			return i, false
		}
		switch c := s[i]; c {
		case '{', '[':
			stack = append(stack, c)
			i = skipSpace(s, i+1)
			if i < len(s) && s[i] == c+2 { // '{'+2 == '}', '['+2 == ']'
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				var ok bool
				if i, ok = scanKey(s, i); !ok {
					return i, false
				}
			}
			continue
		case '"':
			var ok bool
			if i, ok = scanString(s, i); !ok {
				return i, false
			}
		case 't':
			if !hasLiteral(s, i, "true") {
				return i, false
			}
			i += 4
		case 'f':
			if !hasLiteral(s, i, "false") {
				return i, false
			}
			i += 5
		case 'n':
			if !hasLiteral(s, i, "null") {
				return i, false
			}
			i += 4
		default:
			var ok bool
			if i, ok = scanNumber(s, i); !ok {
				return i, false
			}
		}
		// A value ended at s[i-1]: close containers until the next value.
		for {
			i = skipSpace(s, i)
			if len(stack) == 0 {
				return i, true
			}
			if i >= len(s) {
				return i, false
			}
			top := stack[len(stack)-1]
			if s[i] == top+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if s[i] != ',' {
				return i, false
			}
			i = skipSpace(s, i+1)
			if top == '{' {
				var ok bool
				if i, ok = scanKey(s, i); !ok {
					return i, false
				}
			}
			break
		}
	}
}

// scanKey reads `"key" :` and the whitespace after it, returning the index of
// the member's value.
func scanKey(s string, i int) (int, bool) {
	if i >= len(s) || s[i] != '"' {
		return i, false
	}
	i, ok := scanString(s, i)
	if !ok {
		return i, false
	}
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != ':' {
		return i, false
	}
	return skipSpace(s, i+1), true
}

// scanString reads the string starting with the quote at s[i] and returns the
// index after its closing quote.
func scanString(s string, i int) (int, bool) {
	for i++; i < len(s); i++ {
		// Most bytes are plain: skip them in a tight loop.
		for i < len(s) && plain[s[i]] {
			i++
		}
		if i >= len(s) {
			break
		}
		switch c := s[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(s) {
				return i, false
			}
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s) {
					return i, false
				}
				for _, h := range []byte(s[i+1 : i+5]) {
					if !isHex(h) {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// scanNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at s[i].
func scanNumber(s string, i int) (int, bool) {
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = skipDigits(s, i+1)
	default:
		return i, false
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func hasLiteral(s string, i int, lit string) bool {
	return len(s)-i >= len(lit) && s[i:i+len(lit)] == lit
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// plain marks the bytes that stand for themselves inside a JSON string.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()
