package audit

import (
	"fmt"
	"strings"
)

// configuration checks the output of aws lambda get-function-configuration
// (or the Configuration of get-function). It says nothing of triggers,
// URLs or role policies: those checks need the template or get-policy.
func (a *auditor) configuration(file string, c *node) error {
	name := c.get("FunctionName").text()
	if name == "" {
		return fmt.Errorf("FunctionName: want the function's name")
	}
	fn := &function{resource: name, file: file, line: c.get("FunctionName").line, layersKnown: true}
	fn.runtime, fn.runtimeLine = c.get("Runtime").text(), lineOr(c.get("Runtime"), c)
	fn.image = c.get("PackageType").text() == "Image"
	fn.kms = c.get("KMSKeyArn").text() != ""
	fn.tracing = c.get("TracingConfig", "Mode").text() == "Active"
	fn.tracingLine = lineOr(c.get("TracingConfig"), c)
	if vars := c.get("Environment", "Variables"); vars != nil && vars.kind == mapNode {
		for i, k := range vars.keys {
			if v := vars.vals[i]; v.kind == scalarNode {
				fn.env = append(fn.env, variable{name: k, value: v.str, line: v.line})
			}
		}
	}
	if l := c.get("Layers"); l != nil {
		fn.layersLine = l.line
		for _, x := range l.items() {
			fn.layers = append(fn.layers, x.get("Arn").text())
		}
	}
	if role := c.get("Role"); role.text() != "" {
		a.roles[role.text()] = append(a.roles[role.text()], roleUse{function: name, resource: role.text(), file: file, line: role.line})
	}
	a.check(fn)
	return nil
}

// policyOutput checks the output of aws lambda get-policy: a function's
// resource policy, as a JSON string.
func (a *auditor) policyOutput(file string, root *node) error {
	pn := root.get("Policy")
	doc, err := parseJSON([]byte(pn.str))
	if err != nil {
		return fmt.Errorf("Policy: not a JSON policy document: %w", err)
	}
	line := pn.line // lines inside the string mean nothing in the file
	for i, st := range doc.get("Statement").items() {
		if st.get("Effect").text() != "Allow" {
			continue
		}
		// Resource is one ARN or a list: the function is what they name
		// (get-policy lists the function's own ARNs, qualified or not).
		var fn, ownAccount string
		for _, arn := range texts(st.get("Resource")) {
			if parts := strings.Split(arn, ":"); len(parts) >= 7 && parts[2] == "lambda" && parts[5] == "function" {
				fn, ownAccount = parts[6], parts[4]
				break
			}
			if fn == "" {
				fn = arn
			}
		}
		at := fmt.Sprintf("Statement[%d]", i)
		if sid := st.get("Sid").text(); sid != "" {
			at += " " + sid
		}
		cond := st.get("Condition")
		var principals []string
		if p := st.get("Principal"); p != nil && p.kind == scalarNode {
			principals = []string{p.str}
		} else {
			principals = texts(p.get("AWS"))
		}
		for _, p := range principals {
			if p == "*" {
				switch {
				case conditionValue(cond, "lambda:functionurlauthtype") == "NONE":
					a.add(rulePublicURL, fn, file, line, "%s: Principal * may call the function URL with AuthType NONE", at)
				case !hasCondition(cond, sourceConditions):
					a.add(ruleAnyPrincipal, fn, file, line, "%s: Principal * without a SourceArn, SourceAccount or PrincipalOrgID condition", at)
				}
				continue
			}
			if m := principalAccount.FindStringSubmatch(p); m != nil && m[1] != ownAccount && !a.trusted[m[1]] {
				a.add(ruleUnknownAccount, fn, file, line, "%s: Principal %s: account %s is not the function's own nor in --trusted-accounts", at, p, m[1])
			}
		}
	}
	return nil
}

// hasCondition reports whether a Condition block tests one of keys
// (lower case), under any operator.
func hasCondition(cond *node, keys []string) bool {
	if cond == nil || cond.kind != mapNode {
		return false
	}
	for _, op := range cond.vals {
		if op.kind != mapNode {
			continue
		}
		for _, k := range op.keys {
			for _, want := range keys {
				if strings.EqualFold(k, want) {
					return true
				}
			}
		}
	}
	return false
}

// conditionValue is the value a Condition block tests key (lower case)
// against, under any operator; "" when absent.
func conditionValue(cond *node, key string) string {
	if cond == nil || cond.kind != mapNode {
		return ""
	}
	for _, op := range cond.vals {
		if op.kind != mapNode {
			continue
		}
		for i, k := range op.keys {
			if strings.EqualFold(k, key) {
				return op.vals[i].text()
			}
		}
	}
	return ""
}
