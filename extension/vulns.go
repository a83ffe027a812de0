package extension

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"

	"github.com/lambdarasp/lambdarasp/internal/anomaly"
)

// maxVulnFile bounds the vulnerability file: it is read and parsed during
// init, before the extension's first next.
const maxVulnFile = 32 << 20

// vulnDB is an offline vulnerability list (LAMBDARASP_VULN_FILE): the Go
// entries of OSV documents, by module path ("stdlib" for the standard
// library, as the Go vulnerability database names it).
type vulnDB map[string][]vulnAffected

// vulnAffected is one affected package of one entry.
type vulnAffected struct {
	id       string
	severity anomaly.Severity
	ranges   [][]osvEvent // each sorted by version
	versions []string     // with the "v" semver wants
}

// osvEntry is what an OSV entry says that matters here; the rest of the
// schema is accepted and ignored.
type osvEntry struct {
	ID               string        `json:"id"`
	Affected         []osvAffected `json:"affected"`
	DatabaseSpecific struct {
		Severity string `json:"severity"` // GitHub's advisories: LOW, MODERATE, HIGH, CRITICAL
	} `json:"database_specific"`
}

type osvAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Ranges []struct {
		Type   string     `json:"type"`
		Events []osvEvent `json:"events"`
	} `json:"ranges"`
	Versions []string `json:"versions"`
}

// osvEvent is one event of a range: exactly one of its fields is set.
type osvEvent struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// version returns the event's version, normalised for semver, and the
// name of its kind.
func (e osvEvent) version() (v, kind string, n int) {
	for _, f := range []struct{ kind, v string }{{"introduced", e.Introduced}, {"fixed", e.Fixed}, {"last_affected", e.LastAffected}, {"limit", e.Limit}} {
		if f.v != "" {
			v, kind, n = f.v, f.kind, n+1
		}
	}
	return v, kind, n
}

// loadVulns reads the vulnerability file: one OSV entry, an array of
// entries, a query answer ({"vulns":[…]}) or a query-batch answer
// ({"results":[{"vulns":[…]},…]}). Entries of other ecosystems are
// skipped; ranges of type SEMVER and ECOSYSTEM are read (Go's ecosystem
// versions are semantic versions), GIT ranges skipped. Anything else
// malformed is an error that says where.
func loadVulns(path string) (vulnDB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("extension: %s: %w", envVulnFile, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxVulnFile+1))
	if err != nil {
		return nil, fmt.Errorf("extension: %s: %w", envVulnFile, err)
	}
	if len(b) > maxVulnFile {
		return nil, fmt.Errorf("extension: %s=%s: more than %d MiB: keep the entries of the modules you ship", envVulnFile, path, maxVulnFile>>20)
	}
	db, err := parseVulns(b)
	if err != nil {
		return nil, fmt.Errorf("extension: %s=%s: %w", envVulnFile, path, err)
	}
	return db, nil
}

const osvShapes = `want an OSV entry, an array of entries, {"vulns":[…]} or {"results":[{"vulns":[…]}]}`

func parseVulns(b []byte) (vulnDB, error) {
	var entries []osvEntry
	switch b = bytes.TrimSpace(b); {
	case len(b) > 0 && b[0] == '[':
		if err := json.Unmarshal(b, &entries); err != nil {
			return nil, fmt.Errorf("not OSV JSON: %w", err)
		}
	case len(b) > 0 && b[0] == '{':
		var doc struct {
			osvEntry
			Vulns   *[]osvEntry `json:"vulns"`
			Results *[]struct {
				Vulns []osvEntry `json:"vulns"`
			} `json:"results"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("not OSV JSON: %w", err)
		}
		switch {
		case doc.Results != nil:
			for _, r := range *doc.Results {
				entries = append(entries, r.Vulns...)
			}
		case doc.Vulns != nil:
			entries = *doc.Vulns
		case doc.ID != "":
			entries = []osvEntry{doc.osvEntry}
		default:
			return nil, errors.New("a JSON object without id, vulns or results: " + osvShapes)
		}
	default:
		return nil, errors.New("not JSON: " + osvShapes)
	}
	db := vulnDB{}
	for i, e := range entries {
		if err := db.add(e); err != nil {
			where := "entry " + strconv.Itoa(i+1)
			if e.ID != "" {
				where += " (" + e.ID + ")"
			}
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	return db, nil
}

func (db vulnDB) add(e osvEntry) error {
	if e.ID == "" {
		return errors.New("no id")
	}
	if len(e.Affected) == 0 {
		// A query-batch answer names each entry by id and modified alone.
		return errors.New("no affected packages: give the whole entries (a query-batch answer lists ids only)")
	}
	sev := anomaly.Medium
	switch strings.ToUpper(e.DatabaseSpecific.Severity) {
	case "CRITICAL", "HIGH":
		sev = anomaly.High
	case "LOW":
		sev = anomaly.Low
	}
	for i, a := range e.Affected {
		if a.Package.Ecosystem != "Go" {
			continue
		}
		where := "affected " + strconv.Itoa(i+1)
		if a.Package.Name == "" {
			return fmt.Errorf("%s: no package name", where)
		}
		va := vulnAffected{id: e.ID, severity: sev}
		for _, v := range a.Versions {
			sv, ok := semverOf(v)
			if !ok {
				return fmt.Errorf("%s: version %q: not a semantic version", where, v)
			}
			va.versions = append(va.versions, sv)
		}
		for j, r := range a.Ranges {
			if r.Type == "GIT" {
				continue
			}
			where := where + ": range " + strconv.Itoa(j+1)
			if r.Type != "SEMVER" && r.Type != "ECOSYSTEM" {
				return fmt.Errorf("%s: type %q: want SEMVER, ECOSYSTEM or GIT", where, r.Type)
			}
			events := make([]osvEvent, 0, len(r.Events))
			for k, ev := range r.Events {
				v, kind, n := ev.version()
				if n != 1 {
					return fmt.Errorf("%s: event %d: want one of introduced, fixed, last_affected or limit", where, k+1)
				}
				sv, ok := semverOf(v)
				if !ok {
					return fmt.Errorf("%s: %s %q: not a semantic version", where, kind, v)
				}
				ev = osvEvent{}
				switch kind {
				case "introduced":
					ev.Introduced = sv
				case "fixed":
					ev.Fixed = sv
				case "last_affected":
					ev.LastAffected = sv
				case "limit":
					ev.Limit = sv
				}
				events = append(events, ev)
			}
			slices.SortStableFunc(events, func(a, b osvEvent) int {
				va, _, _ := a.version()
				vb, _, _ := b.version()
				return semver.Compare(va, vb)
			})
			va.ranges = append(va.ranges, events)
		}
		if len(va.ranges) > 0 || len(va.versions) > 0 {
			db[a.Package.Name] = append(db[a.Package.Name], va)
		}
	}
	return nil
}

// semverOf turns an OSV version ("1.2.3", "0" for "from the start") into
// the form golang.org/x/mod/semver compares.
func semverOf(v string) (string, bool) {
	if v == "0" {
		return "v0.0.0-0", true // below every version, pseudo-versions v0.0.0-… included
	}
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	return v, semver.IsValid(v)
}

// affects reports whether version (semver, with its "v") is affected.
func (va vulnAffected) affects(version string) bool {
	if slices.ContainsFunc(va.versions, func(v string) bool { return semver.Compare(v, version) == 0 }) {
		return true
	}
	for _, events := range va.ranges {
		in := false
		for _, e := range events {
			v, kind, _ := e.version()
			c := semver.Compare(version, v)
			switch kind {
			case "introduced":
				if c >= 0 {
					in = true
				}
			case "fixed", "limit":
				if c >= 0 {
					in = false
				}
			case "last_affected":
				if c > 0 {
					in = false
				}
			}
		}
		if in {
			return true
		}
	}
	return false
}

// match returns the entries that affect module at version, and the
// highest severity among them.
func (db vulnDB) match(module, version string) (ids []string, sev anomaly.Severity) {
	if !semver.IsValid(version) {
		return nil, ""
	}
	for _, va := range db[module] {
		if va.affects(version) && !slices.Contains(ids, va.id) {
			ids = append(ids, va.id)
			if va.severity.Rank() > sev.Rank() {
				sev = va.severity
			}
		}
	}
	return ids, sev
}

// goSemver turns a Go release as build info records it ("go1.22.3",
// "go1.20", "go1.21rc2", "go1.22.1 X:boringcrypto") into the semantic
// version the vulnerability database uses for "stdlib" (v1.22.3, v1.20.0,
// v1.21.0-rc.2); "" for a development build.
func goSemver(v string) string {
	v, _, _ = strings.Cut(strings.TrimPrefix(v, "go"), " ")
	pre := ""
	if i := strings.IndexAny(v, "abr"); i >= 0 { // alpha, beta, rc
		p := v[i:]
		v = v[:i]
		j := strings.IndexAny(p, "0123456789")
		if j <= 0 {
			return ""
		}
		pre = "-" + p[:j] + "." + p[j:]
	}
	switch strings.Count(v, ".") {
	case 0:
		v += ".0.0"
	case 1:
		v += ".0"
	}
	s := "v" + v + pre
	if !semver.IsValid(s) {
		return ""
	}
	return s
}
