package audit

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// starOnly are actions AWS defines without resource types: Resource "*"
// is the only way to grant them, so it is no finding.
var starOnly = []string{"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
	"xray:GetSamplingStatisticSummaries", "cloudwatch:PutMetricData", "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
	"ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses", "logs:CreateLogGroup"}

// executionRole records that function id of t uses role, and marks a role
// of the template for roleResources.
func (a *auditor) executionRole(t *template, id string, role *node) {
	fnKey := t.file + "#" + id
	if n, _ := t.literal(t.resources[id].get("Properties", "FunctionName")); n != "" && !strings.Contains(n, "${") {
		fnKey = n // the same function in a configuration file counts once
	}
	use := roleUse{function: fnKey, file: t.file, line: role.line}
	var key string
	if rid := t.target(role); rid != "" {
		t.execRoles[rid] = true
		key, use.resource = t.file+"#"+rid, rid
	} else if s, ok := t.literal(role); ok {
		key, use.resource = s, s
		if strings.Contains(s, "${") {
			key = t.file + "#" + s
		}
	} else {
		return
	}
	a.roles[key] = append(a.roles[key], use)
}

// roleResources checks the template's execution roles: those its
// functions use and those Lambda may assume.
func (a *auditor) roleResources(t *template) {
	attached := map[string][]*node{} // role id to policy resources naming it in Roles
	for _, id := range t.ids {
		r := t.resources[id]
		if typ := r.get("Type").text(); typ == "AWS::IAM::Policy" || typ == "AWS::IAM::ManagedPolicy" || typ == "AWS::IAM::RolePolicy" {
			p := r.get("Properties")
			roles := p.get("Roles").items()
			if rn := p.get("RoleName"); rn != nil {
				roles = append(roles, rn)
			}
			for _, role := range roles {
				if rid := t.target(role); rid != "" {
					attached[rid] = append(attached[rid], r)
				}
			}
		}
	}
	for _, id := range t.ids {
		r := t.resources[id]
		if r.get("Type").text() != "AWS::IAM::Role" {
			continue
		}
		p := r.get("Properties")
		if !t.execRoles[id] && !trustsLambda(p.get("AssumeRolePolicyDocument")) {
			continue
		}
		for i, m := range p.get("ManagedPolicyArns").items() {
			a.policyEntry(t, id, fmt.Sprintf("ManagedPolicyArns[%d]", i), m)
		}
		for i, pol := range p.get("Policies").items() {
			a.statements(id, t.file, fmt.Sprintf("Policies[%d]", i), pol.get("PolicyDocument"))
		}
		for _, pr := range attached[id] {
			a.statements(id, t.file, "policy resource", pr.get("Properties", "PolicyDocument"))
		}
	}
}

// trustsLambda reports whether an assume-role policy lets Lambda assume the role.
func trustsLambda(doc *node) bool {
	for _, st := range doc.get("Statement").items() {
		for _, svc := range st.get("Principal", "Service").items() {
			if svc.text() == "lambda.amazonaws.com" {
				return true
			}
		}
	}
	return false
}

// policyEntry checks one entry of SAM's Policies or a role's
// ManagedPolicyArns: a managed policy's name or ARN, an inline policy
// document, a customer managed policy of the template; SAM policy
// templates (S3ReadPolicy: …) are scoped by construction and pass.
func (a *auditor) policyEntry(t *template, resource, where string, p *node) {
	if id := t.target(p); id != "" {
		a.statements(resource, t.file, where+" "+id, t.resources[id].get("Properties", "PolicyDocument"))
		return
	}
	if s, ok := t.literal(p); ok {
		if s == "AdministratorAccess" || strings.HasSuffix(s, ":policy/AdministratorAccess") {
			a.add(ruleAdmin, resource, t.file, p.line, "%s: managed policy %s", where, s)
		}
		return
	}
	if p.get("Statement") != nil {
		a.statements(resource, t.file, where, p)
	}
}

// statements checks the Allow statements of a policy document.
func (a *auditor) statements(resource, file, where string, doc *node) {
	for i, st := range doc.get("Statement").items() {
		if st.get("Effect").text() != "Allow" {
			continue
		}
		at := fmt.Sprintf("%s Statement[%d]", where, i)
		actions, resources := texts(st.get("Action")), texts(st.get("Resource"))
		if st.get("NotAction") != nil {
			actions = append(actions, "NotAction")
		}
		if st.get("NotResource") != nil {
			resources = append(resources, "*")
		}
		var wild []string
		for _, x := range actions {
			if x == "*" || x == "NotAction" || strings.HasSuffix(x, ":*") {
				wild = append(wild, x)
			}
		}
		allRes := slices.Contains(resources, "*")
		if allRes && (slices.Contains(actions, "*") || slices.Contains(actions, "NotAction")) {
			a.add(ruleAdmin, resource, file, st.line, "%s: Allow %s on Resource *", at, strings.Join(wild, ", "))
			continue
		}
		if len(wild) > 0 {
			a.add(ruleWildcardAction, resource, file, st.line, "%s: Allow %s", at, strings.Join(wild, ", "))
		}
		if allRes && slices.ContainsFunc(actions, func(x string) bool { return !slices.Contains(starOnly, x) }) {
			a.add(ruleWildcardResource, resource, file, st.line, "%s: Resource * for %s", at, strings.Join(actions, ", "))
		}
	}
}

// texts are the scalars of a string-or-list value.
func texts(n *node) []string {
	var out []string
	for _, x := range n.items() {
		if x.kind == scalarNode {
			out = append(out, x.str)
		}
	}
	return out
}

// principalAccount is the account an IAM principal names: 123456789012
// or arn:aws:iam::123456789012:…; "" for others.
var principalAccount = regexp.MustCompile(`^(?:arn:aws[a-z-]*:(?:iam|sts)::)?([0-9]{12})(?::|$)`)

// sourceConditions are the condition keys that tie an invocation to a
// source or an organisation.
var sourceConditions = []string{"aws:sourcearn", "aws:sourceaccount", "aws:principalorgid", "aws:sourceorgid", "aws:principalorgpaths"}

// permission checks an AWS::Lambda::Permission.
func (a *auditor) permission(t *template, id string, r *node) {
	p := r.get("Properties")
	pn := p.get("Principal")
	if own(pn) {
		return
	}
	principal, ok := t.literal(pn)
	if !ok {
		return
	}
	if principal == "*" {
		if auth, _ := t.literal(p.get("FunctionUrlAuthType")); auth == "NONE" {
			return // the function URL's own permission: LR-AUDIT-006 is about it
		}
		if p.get("SourceArn") == nil && p.get("SourceAccount") == nil && p.get("PrincipalOrgID") == nil {
			a.add(ruleAnyPrincipal, id, t.file, lineOr(pn, r), "Principal * without SourceArn, SourceAccount or PrincipalOrgID")
		}
		return
	}
	if m := principalAccount.FindStringSubmatch(principal); m != nil && !a.trusted[m[1]] {
		a.add(ruleUnknownAccount, id, t.file, lineOr(pn, r), "Principal %s: account %s is not the template's own nor in --trusted-accounts", principal, m[1])
	}
}

// own reports whether a principal is the template's own account:
// !Ref AWS::AccountId, or a !Sub that names ${AWS::AccountId} as its account.
func own(n *node) bool {
	if n.fn("Ref").text() == "AWS::AccountId" {
		return true
	}
	s := n.fn("Sub")
	if s != nil && s.kind == listNode && len(s.vals) > 0 {
		s = s.vals[0]
	}
	v := s.text()
	return v == "${AWS::AccountId}" || strings.HasPrefix(v, "arn:${AWS::Partition}:iam::${AWS::AccountId}:") || strings.HasPrefix(v, "arn:aws:iam::${AWS::AccountId}:")
}
