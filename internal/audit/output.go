package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable writes the report for people: one finding per line, then
// the fix of each rule that was found, then a count.
func WriteTable(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(r.Findings) > 0 {
		fmt.Fprintln(tw, "SEVERITY\tID\tRESOURCE\tWHERE\tFINDING")
	}
	count := map[Severity]int{}
	var found []string
	for _, f := range r.Findings {
		where := f.File
		if f.Line > 0 {
			where = fmt.Sprintf("%s:%d", f.File, f.Line)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s: %s\n", f.Severity, f.ID, f.Resource, where, f.Title, f.Evidence)
		count[f.Severity]++
		if !slices.Contains(found, f.ID) {
			found = append(found, f.ID)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(found) > 0 {
		fmt.Fprintln(w, "\nfixes:")
	}
	for _, rl := range Rules {
		if slices.Contains(found, rl.ID) {
			fmt.Fprintf(w, "  %s %s: %s\n", rl.ID, rl.Title, rl.Fix)
		}
	}
	var parts []string
	for s := Critical; s >= Low; s-- {
		if count[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[s], s))
		}
	}
	summary := "no findings"
	if len(parts) > 0 {
		summary = fmt.Sprintf("%s (%s)", plural(len(r.Findings), "finding"), strings.Join(parts, ", "))
	}
	_, err := fmt.Fprintf(w, "\n%s in %s\n", summary, plural(r.Files, "file"))
	return err
}

// WriteJSON writes the report as one JSON object (Report's fields).
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// SARIF 2.1.0, the parts audit writes.
type (
	sarifLog struct {
		Version string     `json:"version"`
		Schema  string     `json:"$schema"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifRule struct {
		ID                   string            `json:"id"`
		Name                 string            `json:"name"`
		ShortDescription     sarifText         `json:"shortDescription"`
		Help                 sarifText         `json:"help"`
		DefaultConfiguration sarifLevel        `json:"defaultConfiguration"`
		Properties           map[string]string `json:"properties"`
	}
	sarifLevel struct {
		Level string `json:"level"`
	}
	sarifResult struct {
		RuleID    string          `json:"ruleId"`
		RuleIndex int             `json:"ruleIndex"`
		Level     string          `json:"level"`
		Message   sarifText       `json:"message"`
		Locations []sarifLocation `json:"locations"`
	}
	sarifLocation struct {
		PhysicalLocation sarifPhysical `json:"physicalLocation"`
	}
	sarifPhysical struct {
		ArtifactLocation sarifArtifact `json:"artifactLocation"`
		Region           *sarifRegion  `json:"region,omitempty"`
	}
	sarifArtifact struct {
		URI string `json:"uri"`
	}
	sarifRegion struct {
		StartLine int `json:"startLine"`
	}
)

// sarifLevels maps severities to SARIF levels; security-severity is the
// score code-scanning services sort by.
var (
	sarifLevels      = map[Severity]string{Low: "note", Medium: "warning", High: "error", Critical: "error"}
	securitySeverity = map[Severity]string{Low: "3.0", Medium: "5.5", High: "8.0", Critical: "9.5"}
)

// WriteSARIF writes the report as a SARIF 2.1.0 log with one run: every
// rule, and a result per finding located at its file (and line).
func WriteSARIF(w io.Writer, r Report) error {
	run := sarifRun{
		Tool:    sarifTool{Driver: sarifDriver{Name: "lambdarasp audit", InformationURI: "https://github.com/lambdarasp/lambdarasp#audit"}},
		Results: []sarifResult{},
	}
	index := map[string]int{}
	for i, rl := range Rules {
		index[rl.ID] = i
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: rl.ID, Name: ruleName(rl.Title), ShortDescription: sarifText{rl.Title}, Help: sarifText{rl.Fix},
			DefaultConfiguration: sarifLevel{sarifLevels[rl.Severity]},
			Properties:           map[string]string{"security-severity": securitySeverity[rl.Severity], "severity": rl.Severity.String()},
		})
	}
	for _, f := range r.Findings {
		loc := sarifPhysical{ArtifactLocation: sarifArtifact{URI: (&url.URL{Path: filepath.ToSlash(f.File)}).String()}}
		if f.Line > 0 {
			loc.Region = &sarifRegion{StartLine: f.Line}
		}
		run.Results = append(run.Results, sarifResult{
			RuleID: f.ID, RuleIndex: index[f.ID], Level: sarifLevels[f.Severity],
			Message:   sarifText{fmt.Sprintf("%s: %s: %s. Fix: %s", f.Resource, f.Title, f.Evidence, f.Fix)},
			Locations: []sarifLocation{{PhysicalLocation: loc}},
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Version: "2.1.0", Schema: "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json", Runs: []sarifRun{run}})
}

// ruleName is a title in PascalCase, as SARIF's rule names are.
func ruleName(title string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(title, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') }) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

// plural is "1 file", "2 files".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
