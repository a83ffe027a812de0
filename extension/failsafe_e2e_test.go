package extension_test

import (
	"context"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/emulator"
)

const poisonedBatch, poisonedID = "sqs-batch-one-poisoned.json", "059f36b4-87a3-44ab-83d2-661975265711"

// verdicts checks that the function serves and blocks as the rules and
// the decision in force (203.0.113.66 blocked) say, on every trigger:
// HTTP 403, the poisoned SQS record back in batchItemFailures, a direct
// invocation failed with the blocked error.
func verdicts(t *testing.T, em *emulator.Emulator, when string) {
	t.Helper()
	expect(t, when+": clean request", status(t, em, event(t, clean, "198.51.100.1", "")), 200)
	expect(t, when+": SQL injection", status(t, em, event(t, sqli, "198.51.100.1", "")), 403)
	expect(t, when+": clean request from the blocked client", status(t, em, event(t, clean, "203.0.113.66", "")), 403)
	if res := invoke(t, em, event(t, poisonedBatch, "", "")); res.FunctionError != "" || string(res.Payload) != `{"batchItemFailures":[{"itemIdentifier":"`+poisonedID+`"}]}` {
		t.Errorf("%s: SQS batch with a poisoned record: %s %s; want it in batchItemFailures", when, res.FunctionError, res.Payload)
	}
	if res := invoke(t, em, event(t, "direct-invoke-deserialization.json", "", "")); res.ErrorType != "lambdarasp.Blocked" {
		t.Errorf("%s: direct invocation with a serialized object: %q %s; want the lambdarasp.Blocked error", when, res.ErrorType, res.Payload)
	}
}

// during invokes em with payload and, while the handler runs (GET /slow
// sleeps 150 ms), does act.
func during(t *testing.T, em *emulator.Emulator, payload []byte, act func()) (*emulator.Result, time.Duration) {
	t.Helper()
	type out struct {
		res *emulator.Result
		err error
	}
	done := make(chan out, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := em.Invoke(ctx, payload)
		done <- out{res, err}
	}()
	time.Sleep(60 * time.Millisecond)
	act()
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	return o.res, time.Since(start)
}

// The extension hangs (stopped mid-invocation: it never calls next, nor
// reads a report), then is killed mid-invocation. The caller of the hung
// invocation has its response at once: the wrapper never waits for the
// extension. Lambda, and the emulator, then reset the environment; the new
// one serves and blocks on every trigger as before, and the decision the
// dead extensions published (a blocked client) holds throughout. The
// wrapper says a failure once, not per invocation.
func TestExtensionFailuresEndToEnd(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("finds the extension's process through /proc: Linux only")
	}
	s := newSetup(t, `{"version":1,"rules":[{"anomaly":"attacker","action":"block_ip","ttl":"10m"}],"block_ip_after":3}`, true)
	s.env = append(s.env, "LAMBDARASP_PARTIAL_BATCH=true")
	s.timeout = 2 * time.Second
	em := s.start(t)
	for range 3 {
		expect(t, "SQL injection from the attacker", status(t, em, event(t, sqli, "203.0.113.66", "")), 403)
	}
	verdicts(t, em, "extension running")

	hung := processOf(t, extensionBin)
	res, took := during(t, em, event(t, clean, "198.51.100.1", "/slow"), func() {
		if err := syscall.Kill(hung, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	})
	if res.FunctionError != "" || !strings.Contains(string(res.Payload), `"statusCode":200`) || took > 1500*time.Millisecond {
		t.Errorf("invocation during which the extension hung: %s %s after %v; want the 200 at once", res.ErrorType, res.Payload, took)
	}
	verdicts(t, em, "after the extension hung")
	if processAlive(hung) {
		t.Errorf("the hung extension still runs after the reset")
	}

	killed := processOf(t, extensionBin)
	res, _ = during(t, em, event(t, clean, "198.51.100.1", "/slow"), func() {
		if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	})
	// The platform fails the invocation (Extension.Crash), unless the
	// function answered first: the trigger retries it, nothing is lost.
	if res.FunctionError != "" && res.ErrorType != "Extension.Crash" {
		t.Errorf("invocation during which the extension was killed: %s %s", res.ErrorType, res.Payload)
	}
	verdicts(t, em, "after the extension was killed")
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}

	logs := s.logs.String()
	if n := strings.Count(logs, `"msg":"lambdarasp extension ready"`); n != 3 {
		t.Errorf("%d extension starts, want 3 (the first, after the hang, after the kill)", n)
	}
	// One environment ends with each failure: a wrapper says it at most
	// once in each.
	if n := strings.Count(logs, "lambdarasp extension not reachable"); n > 2 {
		t.Errorf("%d 'not reachable' lines for 2 failures", n)
	}
	if n := strings.Count(logs, `"msg":"lambdarasp decision enforced"`); n != 3 {
		t.Errorf("%d refusals of the blocked client, want 3 (one per environment)", n)
	}
}
