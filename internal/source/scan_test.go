package source

import (
	"encoding/json"
	"strings"
	"testing"
)

// validCases drive TestValid and seed FuzzValid, which holds valid to
// encoding/json's verdict.
var validCases = []struct {
	in   string
	want bool
}{
	{``, false},
	{` `, false},
	{`{}`, true},
	{` [ ] `, true},
	{`{"a":1,"b":[true,false,null,"x",-0.5e+10,{}]}`, true},
	{`"\u00e9\n\"\\\/"`, true},
	{`0`, true},
	{`-`, false},
	{`01`, false},
	{`1.`, false},
	{`1e`, false},
	{`.5`, false},
	{`+1`, false},
	{`tru`, false},
	{`nul`, false},
	{`{"a"}`, false},
	{`{"a":}`, false},
	{`{"a":1,}`, false},
	{`[1,]`, false},
	{`[1 2]`, false},
	{`{1:2}`, false},
	{`{"a":1}}`, false},
	{`[`, false},
	{`]`, false},
	{`"\x"`, false},
	{`"\u12g4"`, false},
	{`"\u123"`, false},
	{"\"a\tb\"", false},
	{`"abc`, false},
	{`{} {}`, false},
	{`[1]x`, false},
	{strings.Repeat("[", 20000) + strings.Repeat("]", 20000), true},
	{strings.Repeat("[", 20000) + strings.Repeat("]", 19999), false},
}

func TestValid(t *testing.T) {
	for _, tc := range validCases {
		if got := valid(tc.in); got != tc.want {
			t.Errorf("valid(%.40q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, tc := range validCases {
		if len(tc.in) < 1000 {
			f.Add(tc.in)
		}
	}
	for _, tc := range parseCases {
		f.Add(tc.payload)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// encoding/json refuses nesting beyond 10000 levels; valid does not.
		if strings.Count(s, "[")+strings.Count(s, "{") > 10000 {
			t.Skip("deeper than encoding/json accepts")
		}
		if got, want := valid(s), json.Valid([]byte(s)); got != want {
			t.Errorf("valid(%q) = %v, encoding/json says %v", s, got, want)
		}
	})
}
