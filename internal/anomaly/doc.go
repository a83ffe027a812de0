// Package anomaly learns what one Lambda execution environment's function
// normally does and says when it stops doing it. A Detector is fed what
// the lambdarasp extension sees, one observation at a time — INVOKE
// events (Invoked), protect.Handler's reports (Reported), and the
// Telemetry API's platform.runtimeDone and platform.report (RuntimeDone,
// PlatformReport) — and returns the anomalies each observation completes.
//
// Every detector is streaming and uses constant memory (fixed rings, a
// bounded table of client IPs and destinations); time is passed in, so
// tests drive it with a fake clock. The detectors and their defaults (see
// Config):
//
//   - duration: 4 of the last 6 invocations slower than the learned
//     baseline allows — max(median + 6 × 1.4826 × MAD, 2 × median,
//     median + 5 ms) over the last 64 durations, after 20 (cold starts
//     left out). The wrapper's in-process duration when it reports,
//     else the runtime's (platform.runtimeDone);
//   - timeout: every invocation Lambda ends with status timeout;
//   - error_rate: at least 6 errors in the last 20 invocations (the
//     absolute floor, 30%) and more than 3 × the learned error rate;
//     blocked events are not errors;
//   - memory: maxMemoryUsedMB above the most used during the first 20
//     invocations by 16 MB and 25%, or above 90% of the memory size; the
//     level that fired becomes the new baseline;
//   - invocation_rate: the mean gap of the last 10 invocations a fifth of
//     the median of the last 64 or less, at 1 invocation a second or more,
//     after 20 invocations;
//   - attack_wave: 10 blocked events within 60 s;
//   - attacker: 5 blocked events from one client IP within 10 minutes
//     (HTTP sources; the policy can block the address);
//   - egress_new_destination: an outbound destination not seen during the
//     first 50 reports;
//   - egress_call_jump: more outbound calls in one invocation than
//     max(3 × median, median + 6 × 1.4826 × MAD, median + 5) of the last
//     64, after the first 50 reports.
//
// A detector that fired stays quiet until its signal has gone back to
// normal (or, for duration and rate, until the new level has become the
// baseline), so a lasting change raises one anomaly, not one per
// invocation.
package anomaly
