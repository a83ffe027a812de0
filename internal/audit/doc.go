// Package audit finds, in what a Lambda function is deployed with, the
// misconfigurations and secrets that make a successful injection worse:
// plaintext secrets in environment variables, execution roles with
// wildcards or administrator access, one role shared by several
// functions, function URLs and resource policies open to anyone, tracing
// off, deprecated runtimes, asynchronous triggers without a DLQ, batch
// triggers without partial batch responses, and lambdarasp absent or off.
// Rules lists them; their ids (LR-AUDIT-001…) never change meaning.
//
// Audit reads AWS SAM and CloudFormation templates (YAML with the short
// intrinsic tags such as !Ref and !GetAtt, or JSON with their long forms)
// and the JSON of aws lambda get-function-configuration, get-function
// and get-policy, telling each file's kind from its content. It only
// reads: no AWS call, no network. SAM's Globals.Function is merged into
// each function first. Values a deployment decides (!Ref to a parameter
// without a default, !GetAtt, !If) are not guessed at: a check that needs
// one passes.
//
// WriteTable, WriteJSON and WriteSARIF write a Report for people, for
// programs and for code-scanning services. Secrets appear in evidence
// only as secret.Mask shows them.
package audit
