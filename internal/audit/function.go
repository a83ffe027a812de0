package audit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/lambdarasp/lambdarasp/internal/secret"
)

// function is what the checks common to templates and configurations
// need to know of one function, however it was declared.
type function struct {
	resource string // logical id or function name
	file     string
	line     int

	runtime     string // "" when unknown or a container image
	runtimeLine int
	image       bool // PackageType Image: no runtime, no layers
	env         []variable
	kms         bool // KmsKeyArn set
	tracing     bool // Active
	tracingLine int
	layers      []string // every name, ARN or logical id the layers mention
	layersLine  int
	layersKnown bool     // false when a layer is a value only the deployment knows
	async       []string // asynchronous triggers, by name
	onFailure   bool     // DLQ or on-failure destination
}

// variable is one environment variable whose value is known.
type variable struct {
	name, value string
	line        int
	via         string // where the value came from when not written in place: "default of parameter X"
}

// deprecated are the Lambda runtimes AWS has deprecated (its runtime
// table, as of 2026): functions on them get no security patches and can
// no longer be updated. provided.al2 and the other Amazon Linux 2 based
// runtimes are not listed yet.
var deprecated = []string{
	"go1.x", "provided",
	"nodejs", "nodejs4.3", "nodejs4.3-edge", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x", "nodejs14.x", "nodejs16.x", "nodejs18.x",
	"python2.7", "python3.6", "python3.7", "python3.8", "python3.9",
	"java8",
	"dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1", "dotnetcore3.1", "dotnet5.0", "dotnet6", "dotnet7",
	"ruby2.5", "ruby2.7", "ruby3.2",
}

// modeVariable is the variable that turns lambdarasp off (README, Settings).
const modeVariable = "LAMBDARASP_MODE"

// check runs the checks every function gets.
func (a *auditor) check(fn *function) {
	if !fn.kms {
		env := map[string]string{}
		at := map[string]variable{}
		for _, v := range fn.env {
			env[v.name], at[v.name] = v.value, v
		}
		// Scan, not Find per variable: it tells an AWS secret key beside its key id.
		for _, f := range secret.Scan(env) {
			v := at[f.Name]
			via := ""
			if v.via != "" {
				via = ", " + v.via
			}
			a.add(ruleSecret, fn.resource, fn.file, cmp.Or(v.line, fn.line), "%s=%s (%s%s), no KmsKeyArn", f.Name, f.Masked, f.Kind, via)
		}
	}
	for _, v := range fn.env {
		if v.name == modeVariable && strings.EqualFold(strings.TrimSpace(v.value), "off") {
			via := ""
			if v.via != "" {
				via = " (" + v.via + ")"
			}
			a.add(ruleModeOff, fn.resource, fn.file, v.line, "%s=%s%s", v.name, v.value, via)
		}
	}
	if !fn.tracing {
		a.add(ruleTracing, fn.resource, fn.file, cmp.Or(fn.tracingLine, fn.line), "tracing is not Active")
	}
	if slices.Contains(deprecated, fn.runtime) {
		a.add(ruleRuntime, fn.resource, fn.file, cmp.Or(fn.runtimeLine, fn.line), "Runtime %s", fn.runtime)
	}
	if !fn.image && fn.layersKnown && !slices.ContainsFunc(fn.layers, func(s string) bool { return strings.Contains(strings.ToLower(s), "lambdarasp") }) {
		ev := "no layers"
		if len(fn.layers) > 0 {
			ev = fmt.Sprintf("no layer named lambdarasp among %s", strings.Join(fn.layers, ", "))
		}
		a.add(ruleNoLayer, fn.resource, fn.file, cmp.Or(fn.layersLine, fn.line), "%s", ev)
	}
	if len(fn.async) > 0 && !fn.onFailure {
		a.add(ruleNoDLQ, fn.resource, fn.file, fn.line, "asynchronous triggers %s; no DeadLetterQueue, DeadLetterConfig or EventInvokeConfig OnFailure destination", strings.Join(fn.async, ", "))
	}
}
