// Package extension is lambdarasp's Lambda extension, the sidecar shipped
// in the layer as /opt/extensions/lambdarasp (built from
// cmd/lambdarasp-extension). It watches the function from outside, through
// the Telemetry API (platform.runtimeDone and platform.report), and from
// inside, through the report protect.Handler sends after each invocation
// (internal/report); learns what normal looks like for this execution
// environment (internal/anomaly); raises alerts (one JSON line with
// CloudWatch Embedded Metric Format counters on stdout, and a webhook);
// and publishes the decisions its policy asks for (quarantine, blocked
// client IPs, denied destinations) to a file the wrapper enforces
// (internal/decision).
//
// Run is the whole extension: register for INVOKE and SHUTDOWN, listen for
// reports, subscribe to telemetry, then one event loop until SHUTDOWN or
// until ctx ends. For each INVOKE it waits for the wrapper's report of
// that invocation before calling next again, so the report is judged
// before the environment freezes. The wrapper sends it just before the
// runtime posts the response, so the wait costs nothing while the handler
// runs; once the runtime is done (platform.runtimeDone) it waits at most
// Config.ReportWait (20 ms) more, and never past the deadline. Without
// telemetry, or before the wrapper has said hello, it waits ReportWait
// from INVOKE; a report that comes later is not lost — the kernel keeps
// the datagram while the environment is frozen, and it is read at the
// next thaw. After 3 invocations in a row without any report the wait is
// skipped (no wrapper) until one comes. Webhook deliveries happen before
// next too, so they are never frozen mid-flight; at SHUTDOWN everything
// pending is flushed within the deadline Lambda gives.
//
// With an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT), the extension also
// takes OTLP/HTTP on loopback (the wrapper's spans, which it sends before
// its report) and relays it to the backend from a goroutine of its own,
// with its own metrics and one log record per alert: batched, retried
// with backoff, bounded in bytes, drained at SHUTDOWN. Before next it
// waits at most 200 ms for a healthy backend, and not at all for one that
// is failing or slow.
//
// At start the extension checks the environment it runs in, once (see
// selfcheck.go): the secrets in the function's variables, the modules
// compiled into the function's binary (its build info) against an
// offline OSV file, and, with an expected digest, the code directory's
// digest (internal/codedigest), hashed only once the first invocation's
// runtime is done so that it slows neither the init nor the first
// response. What it finds is alerted (code_changed, env_secret,
// vulnerable_module), through the policy like any anomaly.
//
// Fail-open and fail-closed: a LAMBDARASP_* variable, policy file or
// vulnerability file that is invalid is an init error (reported to
// /extension/init/error, so the deployment fails loudly, as
// protect.Handler's own settings do); a
// telemetry subscription that is refused, a report port that is taken or a
// webhook that is down is logged once and the extension keeps working with
// what it has.
package extension
