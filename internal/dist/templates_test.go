package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Offline validation of the deployment templates: no sam, cfn-lint or
// terraform runs here, so the tests parse the files (YAML with
// CloudFormation's intrinsic tags, HCL) and check what a deployment gets
// wrong: a zip path the build does not write, a LAMBDARASP_* variable the
// code does not read, a reference to nothing, partial batch responses on
// one side only, an asynchronous trigger without an on-failure destination.

// TestSAMTemplates checks every example's template.yaml.
func TestSAMTemplates(t *testing.T) {
	known := knownVariables(t)
	found, err := filepath.Glob(filepath.Join(root, "examples", "*", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, f := range found {
		dirs = append(dirs, filepath.Base(filepath.Dir(f)))
	}
	sort.Strings(dirs)
	want := slices.Sorted(slices.Values(examples))
	if !slices.Equal(dirs, want) {
		t.Errorf("templates in examples/%v, want one per example %v", dirs, want)
	}
	for _, name := range examples {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(root, "examples", name)
			for _, f := range []string{"main.go", "README.md"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Error(err)
				}
			}
			src, err := os.ReadFile(filepath.Join(dir, "main.go"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "template.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range checkSAM(name, b, string(src), known) {
				t.Error(err)
			}
		})
	}
}

// TestTemplateChecksFail feeds the checks broken copies of a template: each
// must be caught, so that the checks above can fail.
func TestTemplateChecksFail(t *testing.T) {
	known := knownVariables(t)
	b, err := os.ReadFile(filepath.Join(root, "examples", "sqs-worker", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "examples", "sqs-worker", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if errs := checkSAM("sqs-worker", b, string(src), known); len(errs) > 0 {
		t.Fatalf("the template itself fails: %v", errs)
	}
	for _, c := range []struct{ from, to, want string }{
		{"LAMBDARASP_PARANOIA:", "LAMBDARASP_PARANOYA:", "LAMBDARASP_PARANOYA"},
		{"LAMBDARASP_MODE:", "LAMBDARASP_MOOD:", "LAMBDARASP_MOOD"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT:", "OTEL_ENDPOINT:", "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"CodeUri: ../../dist/sqs-worker-arm64.zip", "CodeUri: ../../dist/sqs-worker.zip", "CodeUri"},
		{"ContentUri: ../../dist/lambdarasp-layer-arm64.zip", "ContentUri: ../../dist/lambdarasp-layer-x86_64.zip", "ContentUri"},
		{"Runtime: provided.al2023", "Runtime: go1.x", "Runtime"},
		{"FunctionResponseTypes: [ReportBatchItemFailures]", "FunctionResponseTypes: []", "ReportBatchItemFailures"},
		{"deadLetterTargetArn: !GetAtt DeadLetters.Arn", "deadLetterTargetArn: !GetAtt DeadLetter.Arn", "DeadLetter"},
		{"!Ref AnomalyThreshold", "!Ref Threshold", "Threshold"},
		{"!If [PublishLayer,", "!If [PublishLayers,", "PublishLayers"},
		{`!Sub "${AWS::StackName}-lambdarasp"`, `!Sub "${Stack}-lambdarasp"`, "Stack"},
		{"!GetAtt Orders.Arn", "!Getatt Orders.Arn", "!Getatt"},
		{"Timeout: 10", "Timeout: 10\n      Timeout: 11", "already defined"},
		{"Transform: AWS::Serverless-2016-10-31", "", "Transform"},
	} {
		if !strings.Contains(string(b), c.from) {
			t.Fatalf("the template lacks %q", c.from)
		}
		broken := strings.Replace(string(b), c.from, c.to, 1)
		errs := checkSAM("sqs-worker", []byte(broken), string(src), known)
		if !strings.Contains(fmt.Sprint(errs), c.want) {
			t.Errorf("%q → %q: errors %v, want one naming %s", c.from, c.to, errs, c.want)
		}
	}
	if errs := checkSAM("sqs-worker", b, strings.Replace(string(src), "protect.WithPartialBatch(true)", "protect.WithPartialBatch(false)", 1), known); len(errs) == 0 {
		t.Error("ReportBatchItemFailures with code that does not set WithPartialBatch(true): no error")
	}
}

// knownVariables are the LAMBDARASP_* variables the code reads (string
// literals in protect/ and extension/, tests aside) that the README
// documents too.
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lit := regexp.MustCompile(`"(LAMBDARASP_[A-Z0-9_]+)"`)
	known := map[string]bool{}
	for _, dir := range []string{"protect", "extension"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			for _, m := range lit.FindAllSubmatch(b, -1) {
				if strings.Contains(string(readme), "`"+string(m[1])+"`") {
					known[string(m[1])] = true
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"LAMBDARASP_MODE", "LAMBDARASP_PARANOIA", "LAMBDARASP_ANOMALY_THRESHOLD", "LAMBDARASP_POLICY_FILE"} {
		if !known[v] {
			t.Fatalf("%s not found in the code and the README: the scan is broken", v)
		}
	}
	return known
}

// requiredVariables are set by every template: the mode and thresholds
// an operator changes without a rebuild, and the OpenTelemetry endpoint.
var requiredVariables = []string{"LAMBDARASP_MODE", "LAMBDARASP_PARANOIA", "LAMBDARASP_ANOMALY_THRESHOLD", "OTEL_EXPORTER_OTLP_ENDPOINT"}

// checkVariables checks a function's environment variable names.
func checkVariables(names []string, known map[string]bool) []error {
	var errs []error
	for _, n := range names {
		if strings.HasPrefix(n, "LAMBDARASP_") && !known[n] {
			errs = append(errs, fmt.Errorf("variable %s: neither read by protect/ or extension/ nor documented in the README", n))
		}
	}
	for _, n := range requiredVariables {
		if !slices.Contains(names, n) {
			errs = append(errs, fmt.Errorf("variable %s: not set", n))
		}
	}
	return errs
}

// tagged is a YAML value with a tag: a CloudFormation intrinsic function.
type tagged struct {
	tag   string
	value any
}

// intrinsics are the tags CloudFormation understands.
var intrinsics = map[string]bool{"!Ref": true, "!GetAtt": true, "!Sub": true, "!If": true, "!Equals": true, "!Not": true,
	"!And": true, "!Or": true, "!Join": true, "!Select": true, "!Split": true, "!FindInMap": true, "!Base64": true,
	"!Cidr": true, "!GetAZs": true, "!ImportValue": true, "!Condition": true}

// yamlValue turns a YAML node into maps, slices, scalars and tagged values.
func yamlValue(n ast.Node) (any, error) {
	switch n := n.(type) {
	case nil:
		return nil, nil
	case *ast.DocumentNode:
		return yamlValue(n.Body)
	case *ast.MappingNode:
		return yamlMapping(n.Values)
	case *ast.MappingValueNode:
		return yamlMapping([]*ast.MappingValueNode{n})
	case *ast.SequenceNode:
		var s []any
		for _, v := range n.Values {
			x, err := yamlValue(v)
			if err != nil {
				return nil, err
			}
			s = append(s, x)
		}
		return s, nil
	case *ast.TagNode:
		if !intrinsics[n.Start.Value] {
			return nil, fmt.Errorf("line %d: tag %s is not a CloudFormation intrinsic function", n.Start.Position.Line, n.Start.Value)
		}
		v, err := yamlValue(n.Value)
		return tagged{n.Start.Value, v}, err
	case ast.ScalarNode:
		return n.GetValue(), nil
	}
	return nil, fmt.Errorf("line %d: %s not expected in a template", n.GetToken().Position.Line, n.Type())
}

func yamlMapping(values []*ast.MappingValueNode) (map[string]any, error) {
	m := map[string]any{}
	for _, mv := range values {
		v, err := yamlValue(mv.Value)
		if err != nil {
			return nil, err
		}
		m[mv.Key.GetToken().Value] = v // the parser refuses a duplicate key
	}
	return m, nil
}

// get follows keys through nested maps.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// checkSAM checks the SAM template b of example name, whose main.go is src.
func checkSAM(name string, b []byte, src string, known map[string]bool) []error {
	f, err := parser.ParseBytes(b, 0)
	if err != nil {
		return []error{err}
	}
	if len(f.Docs) != 1 {
		return []error{fmt.Errorf("%d YAML documents, want 1", len(f.Docs))}
	}
	doc, err := yamlValue(f.Docs[0])
	if err != nil {
		return []error{err}
	}
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if get(doc, "Transform") != "AWS::Serverless-2016-10-31" || get(doc, "AWSTemplateFormatVersion") != "2010-09-09" {
		fail("Transform or AWSTemplateFormatVersion missing or wrong")
	}
	resources, _ := get(doc, "Resources").(map[string]any)
	params, _ := get(doc, "Parameters").(map[string]any)
	conds, _ := get(doc, "Conditions").(map[string]any)
	errs = append(errs, checkReferences(doc, resources, params, conds)...)

	var fns, layers []string
	for id, r := range resources {
		switch get(r, "Type") {
		case "AWS::Serverless::Function":
			fns = append(fns, id)
		case "AWS::Serverless::LayerVersion":
			layers = append(layers, id)
		case nil:
			fail("resource %s: no Type", id)
		}
		if c, ok := get(r, "Condition").(string); ok && conds[c] == nil {
			fail("resource %s: Condition %s is not defined", id, c)
		}
	}
	if len(fns) != 1 || len(layers) != 1 {
		return append(errs, fmt.Errorf("%d functions and %d layers, want one of each", len(fns), len(layers)))
	}
	fn, layer := get(resources[fns[0]], "Properties"), get(resources[layers[0]], "Properties")
	archs, _ := get(fn, "Architectures").([]any)
	var a arch
	for _, x := range arches {
		if len(archs) == 1 && archs[0] == x.name {
			a = x
		}
	}
	if a.name == "" {
		return append(errs, fmt.Errorf("function Architectures %v: want one of x86_64, arm64", archs))
	}
	// Paths are relative to the template: examples/<name>/.
	if uri := get(fn, "CodeUri"); uri != "../../dist/"+exampleZip(name, a) {
		fail("function CodeUri %v: want ../../dist/%s, the zip make examples writes", uri, exampleZip(name, a))
	}
	if uri := get(layer, "ContentUri"); uri != "../../dist/"+layerZip(a) {
		fail("layer ContentUri %v: want ../../dist/%s, the zip make layer writes for the function's architecture", uri, layerZip(a))
	}
	if get(fn, "Runtime") != "provided.al2023" || get(fn, "Handler") != "bootstrap" {
		fail("function Runtime %v, Handler %v: want provided.al2023 and bootstrap", get(fn, "Runtime"), get(fn, "Handler"))
	}
	if rt, _ := get(layer, "CompatibleRuntimes").([]any); !slices.Contains(rt, any("provided.al2023")) {
		fail("layer CompatibleRuntimes %v: want provided.al2023", rt)
	}
	if ca, _ := get(layer, "CompatibleArchitectures").([]any); len(ca) != 1 || ca[0] != a.name {
		fail("layer CompatibleArchitectures %v: want [%s]", ca, a.name)
	}
	if l, _ := get(fn, "Layers").([]any); len(l) != 1 {
		fail("function Layers %v: want the lambdarasp layer", l)
	}
	vars, _ := get(fn, "Environment", "Variables").(map[string]any)
	errs = append(errs, checkVariables(slices.Collect(mapKeys(vars)), known)...)

	// How each trigger keeps a blocked event.
	events, _ := get(fn, "Events").(map[string]any)
	partial, async := false, len(events) == 0 // no events: invoked directly, maybe asynchronously
	for id, ev := range events {
		switch get(ev, "Type") {
		case "SQS":
			types, _ := get(ev, "Properties", "FunctionResponseTypes").([]any)
			partial = slices.Contains(types, any("ReportBatchItemFailures"))
			if !partial {
				fail("event %s: SQS without FunctionResponseTypes [ReportBatchItemFailures]", id)
			}
			q, _ := get(ev, "Properties", "Queue").(tagged)
			qid, _ := q.value.(string)
			qid, _, _ = strings.Cut(qid, ".")
			if get(resources[qid], "Properties", "RedrivePolicy", "deadLetterTargetArn") == nil {
				fail("event %s: queue %s has no RedrivePolicy to a dead-letter queue", id, qid)
			}
		case "S3", "SNS", "EventBridgeRule", "Schedule":
			async = true
		}
	}
	if setsPartial := strings.Contains(src, "protect.WithPartialBatch(true)"); setsPartial != partial {
		fail("main.go sets protect.WithPartialBatch(true): %v; the SQS mapping reports batch item failures: %v; they must agree", setsPartial, partial)
	}
	if async && get(fn, "EventInvokeConfig", "DestinationConfig", "OnFailure", "Destination") == nil {
		fail("asynchronous trigger without EventInvokeConfig.DestinationConfig.OnFailure: blocked events would be dropped after their retries")
	}
	return errs
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// samImplicit are resources SAM generates that a template may refer to.
var samImplicit = map[string]bool{"ServerlessHttpApi": true, "ServerlessRestApi": true}

// checkReferences checks that every !Ref, !GetAtt, ${…} of !Sub and
// condition of !If names something the template defines.
func checkReferences(doc any, resources, params, conds map[string]any) []error {
	var errs []error
	defined := func(id string) bool {
		return resources[id] != nil || params[id] != nil || samImplicit[id] || strings.HasPrefix(id, "AWS::")
	}
	subVar := regexp.MustCompile(`\$\{([^!}][^}]*)\}`)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		case tagged:
			switch v.tag {
			case "!Ref":
				if id, _ := v.value.(string); !defined(id) {
					errs = append(errs, fmt.Errorf("!Ref %v: no such parameter or resource", v.value))
				}
			case "!GetAtt":
				id, _ := v.value.(string)
				if s, ok := v.value.([]any); ok && len(s) == 2 {
					id, _ = s[0].(string)
				}
				id, _, _ = strings.Cut(id, ".")
				if resources[id] == nil && !samImplicit[id] {
					errs = append(errs, fmt.Errorf("!GetAtt %v: no such resource", v.value))
				}
			case "!Sub":
				s, _ := v.value.(string)
				for _, m := range subVar.FindAllStringSubmatch(s, -1) {
					id, _, _ := strings.Cut(m[1], ".")
					if !defined(id) {
						errs = append(errs, fmt.Errorf("!Sub %q: ${%s} names no parameter or resource", s, m[1]))
					}
				}
			case "!If":
				if s, ok := v.value.([]any); !ok || len(s) != 3 {
					errs = append(errs, fmt.Errorf("!If %v: want [condition, then, else]", v.value))
				} else if c, _ := s[0].(string); conds[c] == nil {
					errs = append(errs, fmt.Errorf("!If: condition %v is not defined", s[0]))
				}
			}
			walk(v.value)
		}
	}
	walk(doc)
	return errs
}

// TestTerraformModule parses examples/terraform and checks what it
// deploys: the zips it names are those make layer and make examples write,
// for each architecture and example its variables accept; the function is
// a provided.al2023 bootstrap; its LAMBDARASP_* variables are known and the
// required ones set.
func TestTerraformModule(t *testing.T) {
	dir := filepath.Join(root, "examples", "terraform")
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files in %s: %v", dir, err)
	}
	p := hclparse.NewParser()
	var bodies []*hclsyntax.Body
	for _, f := range files {
		file, diags := p.ParseHCLFile(f)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		bodies = append(bodies, file.Body.(*hclsyntax.Body))
	}
	block := func(typ string, labels ...string) *hclsyntax.Block {
		for _, body := range bodies {
			for _, b := range body.Blocks {
				if b.Type == typ && slices.Equal(b.Labels, labels) {
					return b
				}
			}
		}
		t.Fatalf("no %s %q block", typ, labels)
		return nil
	}
	// The examples and architectures the variables accept.
	accepted := func(name string) []string {
		for _, b := range block("variable", name).Body.Blocks {
			if b.Type != "validation" {
				continue
			}
			call, ok := b.Body.Attributes["condition"].Expr.(*hclsyntax.FunctionCallExpr)
			if !ok || call.Name != "contains" {
				break
			}
			v, diags := call.Args[0].Value(nil)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var s []string
			for _, x := range v.AsValueSlice() {
				s = append(s, x.AsString())
			}
			return s
		}
		t.Fatalf("variable %s has no contains([…], var.%s) validation", name, name)
		return nil
	}
	var archNames []string
	for _, a := range arches {
		archNames = append(archNames, a.name)
	}
	if got := accepted("architecture"); !slices.Equal(got, archNames) {
		t.Errorf("variable architecture accepts %v, want %v", got, archNames)
	}
	if got := accepted("example"); !slices.Equal(got, examples) {
		t.Errorf("variable example accepts %v, want %v", got, examples)
	}
	locals := block("locals").Body.Attributes
	for _, a := range arches {
		for _, ex := range examples {
			ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
				"path": cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(dir)}),
				"var": cty.ObjectVal(map[string]cty.Value{
					"architecture": cty.StringVal(a.name), "example": cty.StringVal(ex), "function_zip": cty.StringVal(""),
				}),
			}}
			for local, want := range map[string]string{"layer_zip": layerZip(a), "function_zip": exampleZip(ex, a)} {
				attr, ok := locals[local]
				if !ok {
					t.Fatalf("no local %s", local)
				}
				v, diags := attr.Expr.Value(ctx)
				if diags.HasErrors() {
					t.Fatalf("local %s: %v", local, diags)
				}
				if got := filepath.Clean(v.AsString()); got != filepath.Join(root, "dist", want) {
					t.Errorf("local %s for %s %s is %s, want %s", local, ex, a.name, got, filepath.Join(root, "dist", want))
				}
			}
		}
	}
	fn := block("resource", "aws_lambda_function", "this").Body
	for attr, want := range map[string]string{"runtime": "provided.al2023", "handler": "bootstrap"} {
		v, diags := fn.Attributes[attr].Expr.Value(nil)
		if diags.HasErrors() || v.AsString() != want {
			t.Errorf("aws_lambda_function %s: %#v %v, want %s", attr, v, diags, want)
		}
	}
	var env *hclsyntax.Block
	for _, b := range fn.Blocks {
		if b.Type == "environment" {
			env = b
		}
	}
	if env == nil {
		t.Fatal("aws_lambda_function has no environment block")
	}
	var names []string
	hclsyntax.VisitAll(env.Body.Attributes["variables"].Expr, func(n hclsyntax.Node) hcl.Diagnostics {
		if k, ok := n.(*hclsyntax.ObjectConsKeyExpr); ok {
			names = append(names, hcl.ExprAsKeyword(k.Wrapped))
		}
		return nil
	})
	for _, err := range checkVariables(names, knownVariables(t)) {
		t.Error(err)
	}
	for _, r := range [][]string{{"aws_lambda_function_event_invoke_config", "this"}, {"aws_lambda_event_source_mapping", "sqs"}} {
		block("resource", r...)
	}
}
