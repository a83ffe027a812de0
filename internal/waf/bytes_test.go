package waf

import "testing"

// CRS 941170's branches each need rare bytes: an e-mail address or a
// product code shows its atoms ("@", "-") but not those bytes.
func TestBytesRuleOut(t *testing.T) {
	e := testEngine(t)
	var need byteNeed
	for _, gr := range e.http.gate {
		if gr.r.id == 941170 {
			need = patternBytes(gr.r.opData)
		}
	}
	if need == nil {
		t.Fatal("941170 has no byte need")
	}
	for s, want := range map[string]bool{
		"customer12@example.com": false,
		"BK-0037":                false,
		`@import "evil.css"`:     true,
		"-moz-binding:url(x)":    true,
		"javascript:alert(1)":    true,
		"JAVASCRIPT:name":        true,
	} {
		if v := byteSetOf(s); need.admits(&v) != want {
			t.Errorf("%q: admitted %v, want %v", s, !want, want)
		}
	}
}
