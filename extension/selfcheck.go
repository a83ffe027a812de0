package extension

import (
	"debug/buildinfo"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/semver"

	"github.com/lambdarasp/lambdarasp/internal/anomaly"
	"github.com/lambdarasp/lambdarasp/internal/codedigest"
	"github.com/lambdarasp/lambdarasp/internal/secret"
)

// The alert types of the self-check at start. They are not detectors'
// anomalies: each is raised once per extension start, never held back
// by deduplication or rate limiting, and a policy rule may name them.
const (
	codeChanged      anomaly.Type = "code_changed"
	envSecret        anomaly.Type = "env_secret"
	vulnerableModule anomaly.Type = "vulnerable_module"
)

var selfCheckTypes = []anomaly.Type{codeChanged, envSecret, vulnerableModule}

// Bounds on what one self-check reports.
const (
	maxCheckAlerts = 32  // alerts per type; the rest are counted in the self-check line
	maxListed      = 500 // modules listed in the self-check line
)

// selfCheck is what the extension finds about the environment it runs in,
// computed once, off the event loop, from settings it does not change.
type selfCheck struct {
	took, codeTook time.Duration

	codeDir  string
	hashed   bool // the code was hashed (the gate opened)
	code     codedigest.Sum
	codeErr  error // the tree has no digest
	expected string

	binary     string // the function's executable, "" when none was found
	buildErr   error  // it has no Go build info
	goVersion  string
	main       string   // the main module's path@version
	modules    []string // path@version, "=> replacement" when replaced
	vulnerable []anomaly.Anomaly

	secrets []anomaly.Anomaly
}

// checkSelf runs the self-check; it hashes the code once gate says true.
// db may be nil (no vulnerability file).
func checkSelf(cfg Config, db vulnDB, gate <-chan bool) selfCheck {
	start := time.Now()
	c := selfCheck{codeDir: cfg.CodeDir, expected: cfg.CodeSHA256}
	c.secrets = secretsIn(cfg.Environ, cfg.SecretsAccepted)
	c.binary = functionBinary(cfg.CodeDir, cfg.Handler)
	if c.binary != "" {
		c.modulesOf(db)
	}
	c.took = time.Since(start)
	if c.expected != "" && <-gate {
		start := time.Now()
		c.hashed = true
		c.code, c.codeErr = codedigest.Dir(cfg.CodeDir, codedigest.Limits{})
		c.codeTook = time.Since(start)
	}
	return c
}

// secretsIn finds the variables of environ that hold a secret in plain
// text (leaving out those Lambda sets itself, see secret.Scan), but for
// the names accepted.
func secretsIn(environ, accepted []string) []anomaly.Anomaly {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && !slices.Contains(accepted, k) {
			env[k] = v
		}
	}
	var as []anomaly.Anomaly
	for _, f := range secret.Scan(env) {
		as = append(as, anomaly.Anomaly{Type: envSecret, Severity: anomaly.Medium, Subject: f.Name,
			Message: "environment variable " + f.Name + " holds a secret in plain text (" + string(f.Kind) + ", " + f.Masked +
				"): read it from Secrets Manager or Parameter Store instead, or accept it in " + envSecretsAccepted})
	}
	return as
}

// functionBinary is the function's executable: bootstrap in the code
// directory (provided.al2023, provided.al2), else the file _HANDLER names
// there (the retired go1.x runtime's layout; Lambda shows _HANDLER to the
// runtime only, so an extension sees it only where it is set for it).
func functionBinary(dir, handler string) string {
	for _, name := range []string{"bootstrap", handler} {
		if name == "" {
			continue
		}
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, name)
		}
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// modulesOf lists the modules compiled into the binary and flags those
// the vulnerability list says are affected, the standard library included.
func (c *selfCheck) modulesOf(db vulnDB) {
	bi, err := buildinfo.ReadFile(c.binary)
	if err != nil {
		c.buildErr = err
		return
	}
	c.goVersion = bi.GoVersion
	c.main = bi.Main.Path + "@" + bi.Main.Version
	flag := func(path, version, shown string) {
		ids, sev := db.match(path, version)
		if len(ids) == 0 {
			return
		}
		msg := shown + " is affected by " + strings.Join(ids[:min(len(ids), 5)], ", ")
		if len(ids) > 5 {
			msg += " and " + strconv.Itoa(len(ids)-5) + " more"
		}
		c.vulnerable = append(c.vulnerable, anomaly.Anomaly{Type: vulnerableModule, Severity: sev, Subject: path + "@" + version,
			Message: msg, Values: map[string]float64{"vulnerabilities": float64(len(ids))}})
	}
	if v := goSemver(bi.GoVersion); v != "" {
		flag("stdlib", v, "the Go standard library of "+bi.GoVersion)
	}
	flag(bi.Main.Path, bi.Main.Version, "module "+bi.Main.Path+" "+bi.Main.Version) // "(devel)" matches nothing
	for _, d := range bi.Deps {
		m := d.Path + "@" + d.Version
		path, version := d.Path, d.Version
		if r := d.Replace; r != nil {
			// A directory replacement's version is "(devel)": the code is not
			// any published version, and nothing matches it.
			m += " => " + r.Path
			if semver.IsValid(r.Version) {
				m += "@" + r.Version
			}
			path, version = r.Path, r.Version
		}
		c.modules = append(c.modules, m)
		flag(path, version, "module "+path+" "+version)
	}
}

// anomalies are the alerts the self-check raises, at most maxCheckAlerts
// of each type.
func (c *selfCheck) anomalies(now time.Time) []anomaly.Anomaly {
	var as []anomaly.Anomaly
	if c.hashed {
		switch {
		case c.codeErr != nil:
			// The same bounds hold in lambdarasp digest: a tree over them never had
			// the expected digest, so one that cannot be read is not the deployed one.
			as = append(as, anomaly.Anomaly{Type: codeChanged, Severity: anomaly.High, Subject: c.codeDir,
				Message: "the function's code cannot be verified: " + c.codeErr.Error()})
		case c.code.SHA256 != c.expected:
			as = append(as, anomaly.Anomaly{Type: codeChanged, Severity: anomaly.High, Subject: c.codeDir,
				Message: "the function's code has digest " + c.code.SHA256 + ", not the expected " + c.expected,
				Values:  map[string]float64{"files": float64(c.code.Files), "bytes": float64(c.code.Bytes)}})
		}
	}
	as = append(as, c.secrets[:min(len(c.secrets), maxCheckAlerts)]...)
	as = append(as, c.vulnerable[:min(len(c.vulnerable), maxCheckAlerts)]...)
	for i := range as {
		as[i].At = now
	}
	return as
}

// log writes the self-check line: what was checked, the digest, the
// modules of the function's binary, and what was found.
func (c *selfCheck) log(x *ext) {
	attrs := []any{"duration_ms", float64(c.took.Microseconds()) / 1000, "secrets", len(c.secrets)}
	if c.expected != "" && !c.hashed {
		attrs = append(attrs, "code_dir", c.codeDir, "code_expected", c.expected, "code_sha256", "not computed: the environment ended before its first invocation did")
	}
	if c.hashed {
		attrs = append(attrs, "code_dir", c.codeDir, "code_sha256", c.code.SHA256, "code_expected", c.expected,
			"code_files", c.code.Files, "code_bytes", c.code.Bytes, "code_ms", float64(c.codeTook.Microseconds())/1000)
		if c.codeErr != nil {
			attrs = append(attrs, "code_error", c.codeErr.Error())
		}
	}
	switch {
	case c.binary == "":
		attrs = append(attrs, "binary", "none: no bootstrap in "+c.codeDir)
	case c.buildErr != nil:
		attrs = append(attrs, "binary", c.binary, "build_error", c.buildErr.Error())
	default:
		attrs = append(attrs, "binary", c.binary, "go", c.goVersion, "main", c.main,
			"modules", c.modules[:min(len(c.modules), maxListed)], "modules_count", len(c.modules))
	}
	attrs = append(attrs, "vulnerable", len(c.vulnerable), "vuln_file", x.cfg.VulnFile != "")
	x.log.Info("lambdarasp self-check", attrs...)
}
