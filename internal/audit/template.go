package audit

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// template is one SAM or CloudFormation template.
type template struct {
	file      string
	ids       []string         // logical ids, in the template's order
	resources map[string]*node // logical id to resource
	params    map[string]*node
	globals   *node           // Globals.Function
	execRoles map[string]bool // role resources a function of this template uses
}

func (a *auditor) template(file string, root *node) error {
	res := root.get("Resources")
	if res == nil || res.kind != mapNode {
		return fmt.Errorf("Resources: want a mapping of resources")
	}
	t := &template{file: file, resources: map[string]*node{}, params: map[string]*node{}, globals: root.get("Globals", "Function"), execRoles: map[string]bool{}}
	for i, id := range res.keys {
		t.ids = append(t.ids, id)
		t.resources[id] = res.vals[i]
	}
	if p := root.get("Parameters"); p != nil && p.kind == mapNode {
		for i, id := range p.keys {
			t.params[id] = p.vals[i]
		}
	}
	// Globals are copied into every SAM function: bound what that costs.
	if g, n := size(t.globals), countType(t, "AWS::Serverless::Function"); g*n > MaxNodes {
		return fmt.Errorf("Globals.Function (%d values) merged into %d functions: more than %d values", g, n, MaxNodes)
	}
	fns := map[string]*function{}
	var order []string
	for _, id := range t.ids {
		r := t.resources[id]
		switch r.get("Type").text() {
		case "AWS::Serverless::Function":
			fns[id] = a.samFunction(t, id, r)
		case "AWS::Lambda::Function":
			fns[id] = a.cfnFunction(t, id, r)
		default:
			continue
		}
		order = append(order, id)
	}
	names := map[string]*function{} // FunctionName to function, for references by name or ARN
	for _, id := range order {
		if n, _ := t.literal(t.resources[id].get("Properties", "FunctionName")); n != "" {
			names[n] = fns[id]
		}
	}
	byName := func(ref *node) *function { // the function a FunctionName or TargetFunctionArn names
		if fn := fns[t.target(ref)]; fn != nil {
			return fn
		}
		name, _ := t.literal(ref)
		if i := strings.LastIndex(name, ":function:"); i >= 0 {
			name, _, _ = strings.Cut(name[i+len(":function:"):], ":")
		}
		return names[name]
	}
	for _, id := range t.ids {
		r := t.resources[id]
		p := r.get("Properties")
		switch r.get("Type").text() {
		case "AWS::Lambda::Url":
			if v, _ := t.literal(p.get("AuthType")); v == "NONE" {
				a.add(rulePublicURL, id, file, lineOr(p.get("AuthType"), r), "AuthType NONE%s", forFunction(byName(p.get("TargetFunctionArn"))))
			}
		case "AWS::Lambda::Permission":
			fn := byName(p.get("FunctionName"))
			// An asynchronous trigger's right to invoke is a permission for its service.
			if svc, _ := t.literal(p.get("Principal")); fn != nil && asyncServices[svc] {
				fn.async = append(fn.async, id+" ("+svc+")")
			}
			a.permission(t, id, r)
		case "AWS::Lambda::EventSourceMapping":
			if kind := t.batchSource(p.get("EventSourceArn")); kind != "" && !reportsFailures(p.get("FunctionResponseTypes")) {
				a.add(ruleNoPartialBatch, id, file, r.line, "%s mapping%s without FunctionResponseTypes [ReportBatchItemFailures]", kind, forFunction(byName(p.get("FunctionName"))))
			}
		case "AWS::Lambda::EventInvokeConfig":
			if fn := byName(p.get("FunctionName")); fn != nil && p.get("DestinationConfig", "OnFailure", "Destination") != nil {
				fn.onFailure = true
			}
		}
	}
	a.roleResources(t)
	for _, id := range order {
		a.check(fns[id])
	}
	return nil
}

// forFunction is ", function X" for evidence, or "".
func forFunction(fn *function) string {
	if fn == nil {
		return ""
	}
	return ", function " + fn.resource
}

// lineOr is n's line, or else r's.
func lineOr(n, r *node) int {
	if n != nil && n.line > 0 {
		return n.line
	}
	return r.line
}

// asyncEvents are the SAM event types Lambda invokes asynchronously.
var asyncEvents = map[string]bool{"S3": true, "SNS": true, "EventBridgeRule": true, "CloudWatchEvent": true, "Schedule": true,
	"ScheduleV2": true, "IoTRule": true, "CloudWatchLogs": true}

// batchEvents are the SAM event types whose mapping can report batch item
// failures, and so return lambdarasp's blocked records one by one.
var batchEvents = map[string]bool{"SQS": true, "Kinesis": true, "DynamoDB": true}

func (a *auditor) samFunction(t *template, id string, r *node) *function {
	local := r.get("Properties")
	prop := func(keys ...string) *node { return merge(t.globals.get(keys...), local.get(keys...)) }
	fn := t.function(id, r, prop)
	if tr := prop("Tracing"); tr != nil {
		v, _ := t.literal(tr)
		fn.tracing, fn.tracingLine = v == "Active", tr.line
	}
	fn.onFailure = prop("DeadLetterQueue", "TargetArn") != nil || prop("EventInvokeConfig", "DestinationConfig", "OnFailure", "Destination") != nil
	if v, _ := t.literal(prop("FunctionUrlConfig", "AuthType")); v == "NONE" {
		a.add(rulePublicURL, id, t.file, lineOr(prop("FunctionUrlConfig", "AuthType"), r), "FunctionUrlConfig AuthType NONE")
	}
	ev := local.get("Events")
	if ev != nil && ev.kind == mapNode {
		for i, name := range ev.keys {
			e := ev.vals[i]
			typ := e.get("Type").text()
			switch {
			case typ == "SNS" && e.get("Properties", "SqsSubscription") != nil:
				// Delivered through a queue: the SQS side is the function's own mapping.
			case asyncEvents[typ]:
				fn.async = append(fn.async, name+" ("+typ+")")
			case batchEvents[typ] && !reportsFailures(e.get("Properties", "FunctionResponseTypes")):
				a.add(ruleNoPartialBatch, id, t.file, e.line, "event %s (%s) without FunctionResponseTypes [ReportBatchItemFailures]", name, typ)
			}
		}
	}
	if role := prop("Role"); role != nil {
		a.executionRole(t, id, role)
	} else {
		// SAM creates a role of the function's own from Policies.
		for i, p := range prop("Policies").items() {
			a.policyEntry(t, id, fmt.Sprintf("Policies[%d]", i), p)
		}
	}
	return fn
}

func (a *auditor) cfnFunction(t *template, id string, r *node) *function {
	p := r.get("Properties")
	fn := t.function(id, r, p.get)
	if tc := p.get("TracingConfig", "Mode"); tc != nil {
		v, _ := t.literal(tc)
		fn.tracing, fn.tracingLine = v == "Active", tc.line
	}
	fn.onFailure = p.get("DeadLetterConfig", "TargetArn") != nil
	if role := p.get("Role"); role != nil {
		a.executionRole(t, id, role)
	}
	return fn
}

// asyncServices invoke functions asynchronously.
var asyncServices = map[string]bool{"s3.amazonaws.com": true, "sns.amazonaws.com": true, "events.amazonaws.com": true,
	"iot.amazonaws.com": true, "logs.amazonaws.com": true}

// function reads what SAM and CloudFormation functions declare alike.
func (t *template) function(id string, r *node, prop func(...string) *node) *function {
	fn := &function{resource: id, file: t.file, line: r.line}
	if rt := prop("Runtime"); rt != nil {
		fn.runtime, _ = t.literal(rt)
		fn.runtimeLine = rt.line
	}
	if pt, _ := t.literal(prop("PackageType")); pt == "Image" {
		fn.image = true
	}
	fn.kms = prop("KmsKeyArn") != nil
	if vars := prop("Environment", "Variables"); vars != nil && vars.kind == mapNode {
		for i, name := range vars.keys {
			v := vars.vals[i]
			value, ok := t.literal(v)
			if !ok {
				continue
			}
			via := ""
			if ref := v.fn("Ref"); ref != nil {
				via = "default of parameter " + ref.text()
			}
			fn.env = append(fn.env, variable{name: name, value: value, line: v.line, via: via})
		}
	}
	fn.layersKnown = true
	if l := prop("Layers"); l != nil {
		fn.layersLine = l.line
		for _, x := range l.items() {
			m := t.mentions(x, 0)
			if len(m) == 0 || t.unknown(x) {
				fn.layersKnown = false
			}
			fn.layers = append(fn.layers, m...)
		}
	}
	return fn
}

// merge is SAM's Globals rule: maps merge, lists add up (globals first),
// anything else the function's own value wins. The checks read one path
// (Environment.Variables, Layers) in both, so maps merge one level deep.
func merge(g, l *node) *node {
	switch {
	case g == nil:
		return l
	case l == nil:
		return g
	case g.kind == mapNode && l.kind == mapNode:
		out := &node{kind: mapNode, line: l.line}
		at := map[string]int{}
		for i, k := range g.keys {
			at[k] = len(out.keys)
			out.keys, out.vals = append(out.keys, k), append(out.vals, g.vals[i])
		}
		for i, k := range l.keys {
			if j, ok := at[k]; ok {
				out.vals[j] = l.vals[i]
				continue
			}
			out.keys, out.vals = append(out.keys, k), append(out.vals, l.vals[i])
		}
		return out
	case g.kind == listNode && l.kind == listNode:
		return &node{kind: listNode, line: l.line, vals: append(slices.Clip(g.vals), l.vals...)}
	}
	return l
}

// reportsFailures reports whether FunctionResponseTypes has ReportBatchItemFailures.
func reportsFailures(n *node) bool {
	for _, x := range n.items() {
		if x.text() == "ReportBatchItemFailures" {
			return true
		}
	}
	return false
}

// batchSource names the kind of an event source mapping's EventSourceArn
// whose mapping can report batch item failures: SQS, Kinesis or DynamoDB;
// "" for others and unknown ones.
func (t *template) batchSource(arn *node) string {
	if id := t.target(arn); id != "" {
		switch t.resources[id].get("Type").text() {
		case "AWS::SQS::Queue":
			return "SQS"
		case "AWS::Kinesis::Stream":
			return "Kinesis"
		case "AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable":
			return "DynamoDB"
		}
		return ""
	}
	s, _ := t.literal(arn)
	switch {
	case strings.Contains(s, ":sqs:"):
		return "SQS"
	case strings.Contains(s, ":kinesis:"):
		return "Kinesis"
	case strings.Contains(s, ":dynamodb:"):
		return "DynamoDB"
	}
	return ""
}

// subVar is a ${…} of !Sub.
var subVar = regexp.MustCompile(`\$\{([^!}][^}]*)\}`)

// literal is the string a value is, as far as the template alone says: a
// scalar; a parameter's Default through !Ref; !Sub's text with its ${…}
// left in place. false for what only a deployment knows.
func (t *template) literal(n *node) (string, bool) {
	switch {
	case n == nil:
		return "", false
	case n.kind == scalarNode:
		return n.str, true
	case n.fn("Ref") != nil:
		if p := t.params[n.fn("Ref").text()]; p != nil && p.get("Default") != nil && p.get("Default").kind == scalarNode {
			return p.get("Default").str, true
		}
	case n.fn("Sub") != nil:
		s := n.fn("Sub")
		if s.kind == listNode && len(s.vals) > 0 {
			s = s.vals[0]
		}
		if s.kind == scalarNode {
			return s.str, true
		}
	}
	return "", false
}

// target is the logical id of the resource a value refers to — !Ref X,
// !GetAtt X.Arn, !Sub "${X.Arn}" — or "".
func (t *template) target(n *node) string {
	var id string
	switch {
	case n.fn("Ref") != nil:
		id = n.fn("Ref").text()
	case n.fn("GetAtt") != nil:
		g := n.fn("GetAtt")
		if g.kind == listNode && len(g.vals) > 0 {
			g = g.vals[0]
		}
		id, _, _ = strings.Cut(g.text(), ".")
	case n.fn("Sub") != nil:
		s, _ := t.literal(n)
		if m := subVar.FindStringSubmatch(s); m != nil && m[0] == s {
			id, _, _ = strings.Cut(m[1], ".")
		}
	}
	if t.resources[id] == nil {
		return ""
	}
	return id
}

// unknown reports a !Ref to a parameter without a Default: a value only
// the deployment decides.
func (t *template) unknown(n *node) bool {
	ref := n.fn("Ref")
	if ref == nil || t.resources[ref.text()] != nil {
		return false
	}
	_, ok := t.literal(n)
	return !ok
}

// mentions lists the strings a layer value names: literal ARNs, and for
// !Ref or !GetAtt the logical id and the referred layer's LayerName, or
// the parameter's name and Default; both branches of !If.
func (t *template) mentions(n *node, depth int) []string {
	if n == nil || depth > 4 {
		return nil
	}
	if s, ok := t.literal(n); ok && n.fn("Ref") == nil {
		return []string{s}
	}
	var out []string
	if ref := n.fn("Ref"); ref != nil {
		out = append(out, ref.text())
		if s, ok := t.literal(n); ok {
			out = append(out, s)
		}
	}
	if id := t.target(n); id != "" {
		out = append(out, id)
		if name, ok := t.literal(t.resources[id].get("Properties", "LayerName")); ok {
			out = append(out, name)
		}
	}
	if f := n.fn("If"); f != nil && f.kind == listNode {
		for _, b := range f.vals[min(1, len(f.vals)):] {
			out = append(out, t.mentions(b, depth+1)...)
		}
	}
	return slices.Compact(out)
}

// size counts the values of a tree.
func size(n *node) int {
	if n == nil {
		return 0
	}
	c := 1
	for _, v := range n.vals {
		c += size(v)
	}
	return c
}

// countType counts the resources of one type.
func countType(t *template, typ string) int {
	c := 0
	for _, id := range t.ids {
		if t.resources[id].get("Type").text() == typ {
			c++
		}
	}
	return c
}
