// Package report is the per-invocation report protect.Handler sends to the
// lambdarasp extension: what the wrapper saw and did (request id, source,
// action, rule ids, in-process duration, handler error type, cold start,
// outbound calls per destination and one by one), one UDP datagram to a
// loopback address per invocation.
//
// The encoding is a small versioned binary format (see Append): a report
// is a few dozen bytes and is encoded without allocating. Decode takes any
// bytes, checks every length against the bounds below and never panics
// (FuzzDecode). Fields may be appended in later versions of the format
// without a version bump: a decoder ignores bytes after the fields it
// knows. The version changes only when a field changes its meaning.
//
// Sender is the wrapper's side: Send encodes on the caller's goroutine and
// hands the datagram to a sender goroutine without waiting (about 0.2 µs on
// the request path, bench/report_test.go); the write itself (3 to 8 µs on
// loopback, most of it waking the receiver) happens off the request path.
// Sender also tells whether anybody is listening, so the wrapper can fail
// open on decisions when the extension is absent or dead.
package report
