package waf

import (
	"runtime"
	"strings"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// Byte features of a value. A transformation leaves every value without its
// trigger features as it is, so on clean text most transformation chains
// are known to be the identity from one pass over the value's bytes.
const (
	fPercent   = 1 << iota // % +
	fUpper                 // A-Z
	fHigh                  // bytes >= 0x80 (non-ASCII, invalid UTF-8)
	fBackslash             // \
	fAmp                   // &
	fNul                   // 0x00
	fSpace                 // ' '
	fCtlSpace              // \t \n \v \f \r
	fSlash                 // /
	fDot                   // .
	fCmd                   // " ' ^ , ; (  (cmdLine)
	fColon                 // :
	fComment               // * - # < !  (comment removal)
	fAll       = 1<<iota - 1
)

var byteFeatures = func() (t [256]uint16) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = fUpper
	}
	for c := 0x80; c < 256; c++ {
		t[c] = fHigh
	}
	set := func(f uint16, cs string) {
		for i := 0; i < len(cs); i++ {
			t[cs[i]] |= f
		}
	}
	set(fPercent, "%+")
	set(fBackslash, `\`)
	set(fAmp, "&")
	set(fNul, "\x00")
	set(fSpace, " ")
	set(fCtlSpace, "\t\n\v\f\r")
	set(fSlash, "/")
	set(fDot, ".")
	set(fCmd, `"'^,;(`)
	set(fColon, ":")
	set(fComment, "*-#<!")
	return t
}()

func features(s string) uint16 {
	var f uint16
	for i := 0; i < len(s); i++ {
		f |= byteFeatures[s[i]]
	}
	return f
}

// triggers are, per Coraza transformation (by its Go function name in
// v3.8.1), the features without which it returns its input unchanged.
// TestTransformationTriggers checks each against the function itself. A
// transformation not listed always runs.
var triggers = map[string]uint16{
	"none":               0,
	"urlDecode":          fPercent,
	"urlDecodeUni":       fPercent,
	"lowerCase":          fUpper | fHigh,
	"jsDecode":           fBackslash,
	"cssDecode":          fBackslash,
	"escapeSeqDecode":    fBackslash,
	"htmlEntityDecode":   fAmp,
	"utf8ToUnicode":      fHigh,
	"removeNulls":        fNul,
	"replaceNulls":       fNul,
	"cmdLine":            fUpper | fCmd | fBackslash | fSpace | fCtlSpace | fSlash,
	"removeWhitespace":   fSpace | fCtlSpace | fHigh,
	"compressWhitespace": fSpace | fCtlSpace | fHigh,
	"trim":               fSpace | fCtlSpace | fHigh,
	"trimLeft":           fSpace | fCtlSpace | fHigh,
	"trimRight":          fSpace | fCtlSpace | fHigh,
	"replaceComments":    fSlash,
	"removeComments":     fSlash | fComment,
	"removeCommentsChar": fSlash | fComment,
	"normalisePath":      fSlash | fDot,
	"normalisePathWin":   fSlash | fDot | fBackslash | fColon | fSpace,
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
