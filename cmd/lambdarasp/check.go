package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/lambdarasp/lambdarasp/protect"
)

// Exit statuses of check.
const (
	exitAllowed = 0 // every event allowed
	exitBlocked = 1 // at least one event would be blocked
	exitUsage   = 2 // bad arguments, or an event could not be read
)

type ruleFiles []string

func (r *ruleFiles) String() string     { return strings.Join(*r, ",") }
func (r *ruleFiles) Set(v string) error { *r = append(*r, v); return nil }

// result is one output line of check.
type result struct {
	Path           string `json:"path"`
	Source         string `json:"source,omitempty"`
	Action         string `json:"action,omitempty"`
	Rules          []int  `json:"rules"`
	BlockedRecords []int  `json:"blocked_records,omitempty"`
	Error          string `json:"error,omitempty"`
}

const checkUsage = "usage: lambdarasp check [flags] PATH...\n\nPATH is an event JSON file, a directory (every *.json inside, recursively) or - for stdin.\nExit status: 0 all allowed, 1 at least one blocked, 2 usage error or unreadable event.\nLAMBDARASP_* variables apply as they do in a function, and win over --paranoia and --threshold.\n\n"

func check(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fl := newFlags("check", checkUsage, stderr)
	paranoia := fl.Int("paranoia", 1, "CRS paranoia level, 1 to 4")
	threshold := fl.Int("threshold", 5, "inbound anomaly score that blocks")
	format := fl.String("format", "json", "output: json (one object per event per line) or table")
	var rules ruleFiles
	fl.Var(&rules, "rules", "extra SecLang rule file (repeatable)")
	if err := fl.Parse(args); err != nil {
		return exitUsage
	}
	if fl.NArg() == 0 {
		fl.Usage()
		return exitUsage
	}
	if *format != "json" && *format != "table" {
		fmt.Fprintf(stderr, "lambdarasp check: --format %q: want json or table\n", *format)
		return exitUsage
	}
	in, err := protect.NewInspector(
		protect.WithParanoia(*paranoia),
		protect.WithAnomalyThreshold(*threshold),
		protect.WithRuleFiles(rules...),
	)
	if err != nil {
		fmt.Fprintf(stderr, "lambdarasp check: %v\n", err)
		return exitUsage
	}
	var results []result
	status := exitAllowed
	for _, p := range fl.Args() {
		paths, err := expand(p)
		if err != nil {
			results = append(results, result{Path: p, Error: err.Error()})
			status = exitUsage
			continue
		}
		for _, path := range paths {
			r := evaluate(in, path, stdin)
			switch {
			case r.Error != "":
				status = exitUsage
			case r.Action == string(protect.Deny) && status == exitAllowed:
				status = exitBlocked
			}
			results = append(results, r)
		}
	}
	if *format == "table" {
		writeTable(stdout, results)
	} else {
		enc := json.NewEncoder(stdout)
		for _, r := range results {
			_ = enc.Encode(r)
		}
	}
	return status
}

// expand turns a PATH argument into event files: a directory yields every
// *.json below it, in WalkDir's lexical order.
func expand(p string) ([]string, error) {
	if p == "-" {
		return []string{p}, nil
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var out []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".json") {
			out = append(out, path)
		}
		return nil
	})
	if err == nil && len(out) == 0 {
		err = errors.New("no *.json files in directory")
	}
	return out, err
}

func evaluate(in *protect.Inspector, path string, stdin io.Reader) result {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 64<<20))
	} else {
		b, err = os.ReadFile(path)
	}
	r := result{Path: path, Rules: []int{}}
	switch {
	case err != nil:
		r.Error = err.Error()
		return r
	case !json.Valid(b):
		r.Error = "not a JSON document"
		return r
	}
	v := in.Inspect(b)
	r.Source, r.Action, r.BlockedRecords = v.Source, string(v.Action), v.BlockedRecords
	if ids := v.Rules(); ids != nil {
		r.Rules = ids
	}
	return r
}

func writeTable(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tSOURCE\tACTION\tRULES\tRECORDS")
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t-\terror\t%s\t-\n", r.Path, r.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Path, r.Source, r.Action, ints(r.Rules), ints(r.BlockedRecords))
	}
	_ = tw.Flush()
}

// ints writes a list of numbers for the table: "942100,942190", or "-".
func ints(ns []int) string {
	if len(ns) == 0 {
		return "-"
	}
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
