package audit

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// A File is one input: a template, or the JSON an AWS CLI call printed.
type File struct {
	Path string // as given: findings and errors name it
	Data []byte
	// Optional marks a file found in a directory rather than named: if it
	// is neither a template nor a function's configuration or policy, it
	// is skipped instead of being an error.
	Optional bool
}

// A Finding is one misconfiguration of one resource.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Title    string   `json:"title"`
	Resource string   `json:"resource"`       // logical id, function name, or role
	File     string   `json:"file"`           // File.Path
	Line     int      `json:"line,omitempty"` // 1-based; absent when unknown
	Evidence string   `json:"evidence"`       // what was seen; secrets masked
	Fix      string   `json:"fix"`
}

// A FileError is an input that could not be audited.
type FileError struct {
	File string `json:"file"`
	Err  string `json:"error"`
}

func (e FileError) Error() string { return e.File + ": " + e.Err }

// A Report is what Audit found in all its files.
type Report struct {
	Files    int         `json:"files"` // files audited, errors and skipped files aside
	Findings []Finding   `json:"findings"`
	Errors   []FileError `json:"errors"`
}

// Max is the highest severity of the findings, 0 with none.
func (r Report) Max() Severity {
	var m Severity
	for _, f := range r.Findings {
		m = max(m, f.Severity)
	}
	return m
}

// An Option changes how Audit judges.
type Option func(*config)

type config struct {
	trusted map[string]bool // account ids that may invoke; the template's own account always may
}

// WithTrustedAccounts names the AWS accounts (12 digits) that resource
// policies may let invoke, besides the function's own account.
func WithTrustedAccounts(ids ...string) Option {
	return func(c *config) {
		for _, id := range ids {
			c.trusted[id] = true
		}
	}
}

// accountID is an AWS account id.
var accountID = regexp.MustCompile(`^[0-9]{12}$`)

// ValidAccount reports whether id is an AWS account id (12 digits).
func ValidAccount(id string) bool { return accountID.MatchString(id) }

// Audit reads every file — AWS SAM or CloudFormation templates (YAML with
// the short intrinsic tags, or JSON), and the JSON of aws lambda
// get-function-configuration, get-function and get-policy, each told by
// its content — and returns the findings of all of them together (a role
// shared by functions of different files is found). A file that cannot be
// read is in Report.Errors; the others are still audited. Findings are
// sorted by file, line, rule and resource. Audit never panics on its input
// (FuzzAudit; and should its own code fail on a file, that is the file's
// error); its bounds are MaxFileBytes, MaxDepth and MaxNodes. It is safe
// for concurrent use.
func Audit(files []File, opts ...Option) Report {
	c := config{trusted: map[string]bool{}}
	for _, o := range opts {
		o(&c)
	}
	a := &auditor{config: c, roles: map[string][]roleUse{}}
	r := Report{Findings: []Finding{}, Errors: []FileError{}}
	for _, f := range files {
		err := a.safeFile(f)
		switch {
		case errors.Is(err, errUnknownKind) && f.Optional:
		case err != nil:
			r.Errors = append(r.Errors, FileError{File: f.Path, Err: err.Error()})
		default:
			r.Files++
		}
	}
	a.sharedRoles()
	r.Findings = append(r.Findings, a.findings...)
	slices.SortStableFunc(r.Findings, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(x.File, y.File), cmp.Compare(x.Line, y.Line), cmp.Compare(x.ID, y.ID), cmp.Compare(x.Resource, y.Resource))
	})
	return r
}

var errUnknownKind = errors.New("neither a SAM/CloudFormation template (no Resources) nor the output of aws lambda get-function-configuration, get-function or get-policy")

// auditor gathers findings over the files of one Audit.
type auditor struct {
	config
	findings []Finding
	roles    map[string][]roleUse // a role's ARN, or file#logical id, to the functions that use it
}

type roleUse struct {
	function string // function name or file#logical id: one function seen twice counts once
	resource string // the role, as the finding names it
	file     string
	line     int
}

// errBug marks a panic of this package's own code, turned into the
// file's error so that one odd file cannot crash the command; FuzzAudit
// fails on it.
var errBug = errors.New("audit failed on this file (a bug in lambdarasp audit: please report it)")

func (a *auditor) safeFile(f File) (err error) {
	n := len(a.findings)
	defer func() {
		if p := recover(); p != nil {
			a.findings = a.findings[:n]
			err = fmt.Errorf("%w: %v", errBug, p)
		}
	}()
	return a.file(f)
}

func (a *auditor) file(f File) error {
	root, err := parse(f.Data)
	if err != nil {
		if f.Optional && !looksLikeTemplate(f.Data) {
			return errUnknownKind
		}
		return err
	}
	switch {
	case root.get("Resources") != nil || root.get("AWSTemplateFormatVersion") != nil:
		return a.template(f.Path, root)
	case root.get("Policy") != nil && root.get("Policy").kind == scalarNode:
		return a.policyOutput(f.Path, root)
	case root.get("Configuration", "FunctionName") != nil:
		return a.configuration(f.Path, root.get("Configuration"))
	case root.get("FunctionName") != nil:
		return a.configuration(f.Path, root)
	}
	return errUnknownKind
}

// looksLikeTemplate tells, for a file found in a directory that does not
// parse, whether it was meant as a template (then its error counts).
func looksLikeTemplate(b []byte) bool {
	s := string(b)
	return strings.Contains(s, "AWSTemplateFormatVersion") || strings.Contains(s, "AWS::Serverless") || strings.Contains(s, "AWS::Lambda::")
}

func (a *auditor) add(rule int, resource, file string, line int, format string, args ...any) {
	r := Rules[rule]
	a.findings = append(a.findings, Finding{ID: r.ID, Severity: r.Severity, Title: r.Title, Resource: resource,
		File: file, Line: line, Evidence: fmt.Sprintf(format, args...), Fix: r.Fix})
}

// sharedRoles adds a finding per role that more than one function uses.
func (a *auditor) sharedRoles() {
	keys := make([]string, 0, len(a.roles))
	for k := range a.roles {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		uses := a.roles[k]
		var fns []string
		for _, u := range uses {
			if !slices.Contains(fns, u.function) {
				fns = append(fns, u.function)
			}
		}
		if len(fns) < 2 {
			continue
		}
		names := make([]string, len(fns))
		for i, f := range fns {
			names[i] = f[strings.LastIndex(f, "#")+1:]
		}
		u := uses[0]
		a.add(ruleSharedRole, u.resource, u.file, u.line, "role used by %d functions: %s", len(fns), strings.Join(names, ", "))
	}
}
