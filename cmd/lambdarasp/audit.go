package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lambdarasp/lambdarasp/internal/audit"
)

const auditUsage = "usage: lambdarasp audit [flags] PATH...\n\nPATH is a SAM or CloudFormation template (YAML or JSON), the JSON output of aws lambda\nget-function-configuration, get-function or get-policy, or a directory (its *.yaml, *.yml and\n*.json files, recursively, at most 2,000; hidden directories and node_modules skipped;\nfiles that are none of these are skipped).\nExit status: 0 no finding at or above --fail-on, 1 some, 2 usage error or unreadable input.\n\n"

func auditCmd(args []string, stdout, stderr io.Writer) int {
	fl := newFlags("audit", auditUsage, stderr)
	format := fl.String("format", "table", "output: table, json or sarif")
	failOn := fl.String("fail-on", "high", "exit 1 when a finding is at least this severe: low, medium, high or critical")
	trusted := fl.String("trusted-accounts", "", "comma-separated AWS account ids that resource policies may let invoke, besides the function's own")
	if err := fl.Parse(args); err != nil {
		return exitUsage
	}
	if fl.NArg() == 0 {
		fl.Usage()
		return exitUsage
	}
	write := map[string]func(io.Writer, audit.Report) error{"table": audit.WriteTable, "json": audit.WriteJSON, "sarif": audit.WriteSARIF}[*format]
	if write == nil {
		fmt.Fprintf(stderr, "lambdarasp audit: --format %q: want table, json or sarif\n", *format)
		return exitUsage
	}
	threshold, err := audit.ParseSeverity(*failOn)
	if err != nil {
		fmt.Fprintf(stderr, "lambdarasp audit: --fail-on: %v\n", err)
		return exitUsage
	}
	var accounts []string
	for _, id := range strings.Split(*trusted, ",") {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		if !audit.ValidAccount(id) {
			fmt.Fprintf(stderr, "lambdarasp audit: --trusted-accounts: %q is not an AWS account id (12 digits)\n", id)
			return exitUsage
		}
		accounts = append(accounts, id)
	}
	status := exitAllowed
	var files []audit.File
	for _, p := range fl.Args() {
		found, err := auditFiles(p)
		if err != nil {
			fmt.Fprintf(stderr, "lambdarasp audit: %s: %v\n", p, err)
			status = exitUsage
		}
		files = append(files, found...)
	}
	r := audit.Audit(files, audit.WithTrustedAccounts(accounts...))
	for _, e := range r.Errors {
		fmt.Fprintf(stderr, "lambdarasp audit: %s\n", e.Error())
		status = exitUsage
	}
	if err := write(stdout, r); err != nil {
		fmt.Fprintf(stderr, "lambdarasp audit: %v\n", err)
		return exitUsage
	}
	if status == exitAllowed && r.Max() >= threshold {
		status = exitBlocked
	}
	return status
}

// maxDirFiles bounds the files a directory argument may bring: past it,
// the directory is refused rather than read into memory file by file.
const maxDirFiles = 2000

// auditFiles reads a PATH argument: a file, or a directory's *.yaml,
// *.yml and *.json files below it (hidden directories such as .aws-sam
// and node_modules skipped; at most maxDirFiles), which may turn out to
// be neither templates nor AWS output.
func auditFiles(p string) ([]audit.File, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		b, err := readBounded(p)
		return []audit.File{{Path: p, Data: b}}, err
	}
	var out []audit.File
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && path != p && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules"):
			return filepath.SkipDir
		case d.IsDir():
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			if len(out) == maxDirFiles {
				return fmt.Errorf("more than %d *.yaml, *.yml and *.json files: name the templates to audit instead of the directory", maxDirFiles)
			}
			b, err := readBounded(path)
			if err != nil {
				return err
			}
			out = append(out, audit.File{Path: path, Data: b, Optional: true})
		}
		return nil
	})
	if err == nil && len(out) == 0 {
		err = errors.New("no *.yaml, *.yml or *.json files in directory")
	}
	return out, err
}

// readBounded reads a file of at most audit.MaxFileBytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, audit.MaxFileBytes+1))
	if err == nil && len(b) > audit.MaxFileBytes {
		err = fmt.Errorf("larger than the %d bytes audit reads", audit.MaxFileBytes)
	}
	return b, err
}
