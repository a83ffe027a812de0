package waf

import (
	"math/bits"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// Features of a value: bytes, byte pairs and its end, found in one pass.
// A transformation leaves every value without its trigger features as it
// is, so on clean text most transformation chains are known to be the
// identity without running them. Single bytes are not enough for the
// comment and path transformations: JSON argument names (body/items/3/sku)
// have '/', dates '-', emails '.', but they change only around pairs such
// as "//", "/*" or "--".
const (
	fPercent     = 1 << iota // + ; % then a hex digit, u or U (what URL decoding decodes)
	fUpper                   // A-Z
	fHigh                    // bytes >= 0x80 (non-ASCII, invalid UTF-8)
	fBackslash               // \
	fAmp                     // &
	fNul                     // 0x00
	fSpace                   // ' '
	fCtlSpace                // \t \n \v \f \r
	fCmd                     // " ' ^ , ;  (cmdLine)
	fColon                   // :
	fComment                 // # "--" "*/"  (comment removal)
	fOpenComment             // "/*"
	fSpaceBefore             // "  " " /" " ("  (cmdLine, compressWhitespace)
	fPath                    // "//" "/." "./", or the value is "." or "/"
	fTrail                   // the value ends in '.' or ' '
	// fAny is a feature of every value, "" too: fAll, the trigger of a
	// transformation with no trigger, must meet every value's features.
	fAny
	fAll = 1<<iota - 1
)

// pairs are the byte pairs that make features: a byte of first followed
// by a byte of second (at most 16 entries: see byteInfo).
var pairs = []struct {
	f             uint16
	first, second string
}{
	{fPercent, "%", "0123456789ABCDEFabcdefuU"},
	{fComment, "-", "-"},
	{fComment, "*", "/"},
	{fOpenComment, "/", "*"},
	{fSpaceBefore, " ", " /("},
	{fPath, "/", "/."},
	{fPath, ".", "/"},
}

// byteInfo is, per byte, its features (bits 0-15), then the pairs it
// starts and the pairs it ends (bit 16+k and bit 32+k for pairs[k]).
var byteInfo = func() (t [256]uint64) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = fUpper
	}
	for c := 0x80; c < 256; c++ {
		t[c] = fHigh
	}
	set := func(f uint64, cs string) {
		for i := 0; i < len(cs); i++ {
			t[cs[i]] |= f
		}
	}
	set(fPercent, "+")
	set(fBackslash, `\`)
	set(fAmp, "&")
	set(fNul, "\x00")
	set(fSpace, " ")
	set(fCtlSpace, "\t\n\v\f\r")
	set(fCmd, `"'^,;`)
	set(fColon, ":")
	set(fComment, "#")
	for k, p := range pairs {
		set(1<<(16+k), p.first)
		set(1<<(32+k), p.second)
	}
	return t
}()

// features is one pass over s, a table load per byte: about 0.5 ns a
// byte, 1.7 times the single-byte pass it replaced (BenchmarkFeatures).
func features(s string) uint16 {
	var all, pair, prev uint64
	for i := 0; i < len(s); i++ {
		b := byteInfo[s[i]]
		all |= b
		pair |= prev << 16 & b // the pairs prev starts and b ends
		prev = b
	}
	f := uint16(all) | fAny
	for k := uint16(pair >> 32); k != 0; k &= k - 1 {
		f |= pairs[bits.TrailingZeros16(k)].f
	}
	if n := len(s); n > 0 {
		if c := s[n-1]; c == '.' || c == ' ' {
			f |= fTrail
		}
		if n == 1 && (s[0] == '.' || s[0] == '/') {
			f |= fPath
		}
	}
	return f
}

// triggers are, per Coraza transformation (by its Go function name in
// v3.8.1), the features without which it returns its input unchanged.
// TestTransformationTriggers checks each against the function itself. A
// transformation not listed always runs (its trigger is fAll): length,
// md5 and sha1 change every value, "" too, and base64decode every value
// but "" (it makes at most 3 bytes of 4 and never fails).
var triggers = map[string]uint16{
	"urlDecode":        fPercent,
	"urlDecodeUni":     fPercent,
	"lowerCase":        fUpper | fHigh,
	"jsDecode":         fBackslash,
	"cssDecode":        fBackslash,
	"escapeSeqDecode":  fBackslash,
	"htmlEntityDecode": fAmp,
	"utf8ToUnicode":    fHigh,
	"removeNulls":      fNul,
	"replaceNulls":     fNul,
	// cmdLine deletes " ' \ ^, makes , ; \t \r \n a space, lowercases,
	// and otherwise changes only a space before a space, '/' or '('.
	"cmdLine":            fUpper | fCmd | fBackslash | fCtlSpace | fSpaceBefore,
	"removeWhitespace":   fSpace | fCtlSpace | fHigh,
	"compressWhitespace": fSpaceBefore | fCtlSpace | fHigh,
	"trim":               fSpace | fCtlSpace,
	"trimLeft":           fSpace | fCtlSpace,
	"trimRight":          fSpace | fCtlSpace,
	"replaceComments":    fOpenComment,
	"removeComments":     fOpenComment | fComment,
	"removeCommentsChar": fOpenComment | fComment,
	// filepath.Clean changes "//", "." and ".." elements and makes "" of
	// "."; normalisePath makes "//" of "/".
	"normalisePath": fPath,
	// normalisePathWin: '\' is '/', a last element is cut at ':', and an
	// element ending in '.' or ' ' (before '/' or at the end) is trimmed.
	"normalisePathWin": fPath | fBackslash | fColon | fSpaceBefore | fTrail,
}

func init() {
	if filepath.Separator != '/' {
		// normalisePath is filepath.Clean, whose rules above are Unix's.
		delete(triggers, "normalisePath")
		delete(triggers, "normalisePathWin")
	}
}

// transName is the Go function name of a transformation.
func transName(pc uintptr) string {
	f := runtime.FuncForPC(pc)
	if f == nil {
		return ""
	}
	name := f.Name()
	return name[strings.LastIndexByte(name, '.')+1:]
}

// chainTrigger is the union of the chain's triggers: a value without any
// of these features comes out of the chain unchanged.
func chainTrigger(ids []uintptr) uint16 {
	var t uint16
	for _, pc := range ids {
		f, ok := triggers[transName(pc)]
		if !ok {
			return fAll
		}
		t |= f
	}
	return t
}

// applyChain applies transformations as Coraza does: a failing
// transformation leaves the value as it was.
func applyChain(v string, fns []plugintypes.Transformation) string {
	for _, fn := range fns {
		if out, _, err := fn(v); err == nil {
			v = out
		}
	}
	return v
}

// multiTransform is what a multiMatch rule's operator sees: the value
// before the chain and after each transformation that changed it.
func multiTransform(v string, fns []plugintypes.Transformation) []string {
	out := []string{v}
	for _, fn := range fns {
		t, changed, err := fn(v)
		if err != nil || !changed {
			continue
		}
		v = t
		out = append(out, v)
	}
	return out
}
