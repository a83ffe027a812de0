package audit

import "fmt"

// Severity orders findings: Low < Medium < High < Critical.
type Severity int

// The severities, lowest first.
const (
	Low Severity = iota + 1
	Medium
	High
	Critical
)

var severityNames = map[Severity]string{Low: "low", Medium: "medium", High: "high", Critical: "critical"}

func (s Severity) String() string { return severityNames[s] }

// MarshalText writes the severity's name, as JSON shows it.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseSeverity reads low, medium, high or critical.
func ParseSeverity(name string) (Severity, error) {
	for s, n := range severityNames {
		if n == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("severity %q: want low, medium, high or critical", name)
}

// A Rule is one kind of finding. Its ID never changes meaning.
type Rule struct {
	ID       string
	Severity Severity
	Title    string // what is wrong, in a few words
	Fix      string // how to fix it
}

// The rules, in ID order. README's Audit section lists them too.
var Rules = []Rule{
	{"LR-AUDIT-001", High, "plaintext secret in an environment variable",
		"Keep the secret in Secrets Manager or Parameter Store (SecureString) and read it at init, or encrypt the variables with your own KMS key (KmsKeyArn) and grant kms:Decrypt to the execution role only; rotate a secret that was committed."},
	{"LR-AUDIT-002", Critical, "execution role with administrator access",
		"Drop AdministratorAccess (or the Allow of * on *) from the execution role; grant the actions the function calls on the resources it uses."},
	{"LR-AUDIT-003", High, "execution role allows every action of a service",
		"Replace * or service:* actions by the actions the function calls."},
	{"LR-AUDIT-004", Medium, "execution role allows actions on every resource",
		"Name the resources (ARNs) instead of *; only actions that AWS defines without resources (xray:PutTraceSegments, cloudwatch:PutMetricData, …) need *."},
	{"LR-AUDIT-005", Medium, "one execution role shared by several functions",
		"Give each function its own role with only what it needs, so that an injection in one function cannot use another's permissions."},
	{"LR-AUDIT-006", High, "function URL without authentication",
		"Set AuthType: AWS_IAM on the function URL (sign requests with SigV4, or put CloudFront with origin access control in front), or serve the function through API Gateway with an authorizer."},
	{"LR-AUDIT-007", High, "resource policy lets any principal invoke",
		"Name the principal (an account, a role or a service) and, for a service, add SourceArn or SourceAccount; or add a SourceArn, SourceAccount or PrincipalOrgID condition."},
	{"LR-AUDIT-008", High, "resource policy lets an unknown account invoke",
		"Remove the permission, or pass the account in --trusted-accounts if it is yours."},
	{"LR-AUDIT-009", Low, "tracing off",
		"Set Tracing: Active (SAM, or in Globals.Function) or TracingConfig.Mode: Active, so that an attack can be followed across services."},
	{"LR-AUDIT-010", High, "deprecated runtime",
		"Move to a supported runtime: provided.al2023 for Go (go1.x is deprecated), the current version for other languages; deprecated runtimes get no security patches."},
	{"LR-AUDIT-011", Medium, "asynchronous trigger without a DLQ or on-failure destination",
		"Add an on-failure destination (EventInvokeConfig.DestinationConfig.OnFailure) or a DeadLetterQueue: events lambdarasp blocks, like any failed asynchronous event, are dropped after their retries without one."},
	{"LR-AUDIT-012", Medium, "batch event source without ReportBatchItemFailures",
		"Set FunctionResponseTypes: [ReportBatchItemFailures] on the mapping and protect.WithPartialBatch(true) (LAMBDARASP_PARTIAL_BATCH=true): without it one blocked record fails and retries the whole batch."},
	{"LR-AUDIT-013", Medium, "lambdarasp layer absent",
		"Add the lambdarasp layer (make layer, make publish-layer) to the function's Layers: without the extension there are no anomaly alerts, decisions or OTLP export."},
	{"LR-AUDIT-014", High, "lambdarasp turned off",
		"Set LAMBDARASP_MODE to block (or detect while tuning): off returns the handler unwrapped, with no inspection."},
}

// Indices into Rules, used by the checks.
const (
	ruleSecret = iota
	ruleAdmin
	ruleWildcardAction
	ruleWildcardResource
	ruleSharedRole
	rulePublicURL
	ruleAnyPrincipal
	ruleUnknownAccount
	ruleTracing
	ruleRuntime
	ruleNoDLQ
	ruleNoPartialBatch
	ruleNoLayer
	ruleModeOff
)
