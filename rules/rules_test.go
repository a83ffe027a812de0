package rules

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// At each paranoia level, the rules left out are exactly the CRS rules
// tagged with a higher paranoia level, the skip rules that jump over them,
// and 921170 (an untagged helper that counts parameters for the level 3
// rule 921180).
func TestAboveParanoia(t *testing.T) {
	tagRx := regexp.MustCompile(`paranoia-level/(\d)`)
	idRx := regexp.MustCompile(`[",]id:(\d+)`)
	skipRx := regexp.MustCompile(`^SecRule TX:DETECTION_PARANOIA_LEVEL "@lt (\d)" "id:(\d+)`)
	level := map[string]int{"921170": 3} // rule id → its paranoia tag, or the level a skip rule guards
	for _, f := range crsFiles {
		data, err := fs.ReadFile(FS, "@owasp_crs/"+f+".conf")
		if err != nil {
			t.Fatal(err)
		}
		id := ""
		for _, line := range strings.Split(string(data), "\n") {
			if m := skipRx.FindStringSubmatch(line); m != nil {
				level[m[2]] = int(m[1][0] - '0')
				id = ""
				continue
			}
			if m := idRx.FindStringSubmatch(line); m != nil {
				id = m[1]
			}
			if m := tagRx.FindStringSubmatch(line); m != nil && id != "" && level[id] == 0 {
				level[id] = int(m[1][0] - '0')
			}
		}
	}
	if len(level) < 350 {
		t.Fatalf("only %d CRS rules with a paranoia level found", len(level))
	}
	for pl := 1; pl <= 4; pl++ {
		_, dropped, err := aboveParanoia(pl)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for id, l := range level {
			if dropped[id] != (l > pl) {
				t.Errorf("paranoia %d: rule %d (level %d) dropped=%v", pl, atoi(id), l, dropped[id])
			}
			if l > pl {
				n++
			}
		}
		for id := range dropped {
			if _, ok := level[id]; !ok {
				t.Errorf("paranoia %d: rule %s dropped, but it has no paranoia level", pl, id)
			}
		}
		if len(dropped) != n {
			t.Errorf("paranoia %d: %d rules dropped, %d expected", pl, len(dropped), n)
		}
	}
}

// Directives leaves the rules out unless told to keep them, or when user
// rules mention the paranoia level; an exclusion of a rule left out is
// dropped, others are kept.
func TestDirectivesParanoiaFilter(t *testing.T) {
	base := Settings{Paranoia: 1, Threshold: 5, MaxDepth: 64, MaxArgs: 1000,
		Exclusions: []string{`SecRuleUpdateTargetById 942200 "!ARGS:a"`, `SecRuleUpdateTargetById 942100 "!ARGS:a"`}}
	has942200 := func(s Settings) (bool, bool) {
		d, root, err := Directives(s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := fs.ReadFile(root, "@owasp_crs/REQUEST-942-APPLICATION-ATTACK-SQLI.conf")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(d, "942100") {
			t.Fatalf("exclusion of a paranoia level 1 rule dropped")
		}
		return strings.Contains(string(b), "id:942200,"), strings.Contains(d, "942200")
	}
	if rule, excl := has942200(base); rule || excl {
		t.Errorf("paranoia 1: rule 942200 (level 2) kept=%v, its exclusion kept=%v", rule, excl)
	}
	all := base
	all.All = true
	if rule, excl := has942200(all); !rule || !excl {
		t.Errorf("All: rule 942200 kept=%v, its exclusion kept=%v", rule, excl)
	}
	raised := base
	raised.Extra = []string{`SecAction "id:1,phase:1,pass,nolog,setvar:tx.detection_paranoia_level=2"`}
	if rule, _ := has942200(raised); !rule {
		t.Error("user rules set the paranoia level, and rule 942200 was left out")
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
