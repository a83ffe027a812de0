// Package emulator runs a Lambda execution environment on the local machine:
// the real function binary and the real extension binaries, each as its own
// process, talking to an emulated Runtime API (2018-06-01), Extensions API
// (2020-01-01) and Telemetry API (2022-07-01, schema versions 2022-12-13 and
// 2025-01-29) on one loopback address, as they would inside Lambda.
//
// Start launches the environment and runs its init phase; Invoke sends one
// event through it and returns as soon as the runtime posts its response;
// Close shuts it down the way Lambda spins an environment down. The
// lifecycle is Lambda's:
//
//   - init: every executable in the extensions directory is started and must
//     register before the function process starts; init ends when the
//     runtime and every extension have called next.
//   - invoke: INVOKE goes to the extensions that asked for it, the event to
//     the runtime; the caller gets the response the moment the runtime posts
//     it, while extensions may keep working. The next invocation waits until
//     the runtime and every extension have called next again; then the
//     environment freezes (its processes are stopped with SIGSTOP, as Lambda
//     freezes the microVM) until the next invocation or shutdown.
//   - a handler that runs past the timeout, a runtime that exits and an
//     extension that crashes reset the environment: the runtime is stopped,
//     extensions get SHUTDOWN (timeout or failure), and the next invocation
//     initialises a new environment.
//   - Close: SHUTDOWN (spindown) with a deadline 2,000 ms away, then SIGKILL
//     for whatever is still running.
//
// Telemetry (platform events, and the processes' stdout and stderr as
// function and extension log lines) is delivered to subscribers in batches
// under the buffering limits they asked for, and kept for Records.
//
// One environment serves one invocation at a time: concurrent Invoke calls
// queue, as they would for a function with reserved concurrency 1. An
// Emulator is safe for concurrent use. The package needs a Unix system
// (process groups, SIGSTOP); memory figures come from Linux's /proc.
package emulator
