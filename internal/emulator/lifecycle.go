package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"syscall"
	"time"
)

// The phases an init runs in, and why an environment shuts down.
const (
	phaseInit      = "init"   // before any invocation
	phaseInvoke    = "invoke" // inside an invocation, after a failed init or a reset
	reasonSpindown = "spindown"
	reasonTimeout  = "timeout"
	reasonFailure  = "failure"
)

// run is the lifecycle loop: the one goroutine that initialises, dispatches
// to, freezes and tears down environments. It runs the first init, reports
// it through ready, and then serves invocations one at a time until Close.
func (e *Emulator) run(ready chan<- struct{}) {
	defer close(e.done)
	if _, f := e.initialize(phaseInit); f != nil && !f.closing {
		e.log.Warn("init failed; the next invocation initialises again", "errorType", f.errorType, "error", f.message)
	}
	close(ready)
	for {
		env := e.current()
		var signals <-chan signal
		if env != nil {
			signals = env.signals
		}
		select {
		case inv := <-e.invokes:
			e.setBusy(true)
			e.serve(inv)
			e.setBusy(false)
		case s := <-signals:
			// Nothing should happen in a frozen environment; a process
			// that dies anyway (killed from outside) takes it down.
			if s.kind == sigExit {
				e.log.Warn("process exited while the environment was frozen", "process", s.proc.name, "status", s.proc.exitReason())
				e.shutdown(env, reasonFailure)
			}
		case <-e.closing:
			if env != nil {
				e.shutdown(env, reasonSpindown)
			}
			return
		}
	}
}

func (e *Emulator) current() *env {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.env
}

func (e *Emulator) setBusy(busy bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if busy {
		e.idle = make(chan struct{})
	} else {
		close(e.idle)
	}
}

// initialize runs an init phase in a new environment: extension init (every
// external extension starts and registers), then runtime init (the function
// starts), until the runtime and every extension have called next. On
// success the environment is frozen and current; on failure it has been
// shut down and the failure says why.
func (e *Emulator) initialize(phase string) (*env, *failure) {
	env := e.newEnv(phase)
	e.mu.Lock()
	e.env = env
	e.mu.Unlock()
	e.emit(env, recordInitStart, initStartRecord{
		InitializationType: "on-demand",
		Phase:              phase,
		FunctionName:       e.cfg.FunctionName,
		FunctionVersion:    functionVersion,
	})
	timer := time.NewTimer(e.cfg.InitTimeout)
	defer timer.Stop()

	f := e.initPhases(env, timer)
	if f != nil {
		if f.closing {
			e.shutdown(env, reasonSpindown)
			return nil, f
		}
		env.syncLogs(true)
		e.emit(env, recordInitReport, initReportRecord{
			InitializationType: "on-demand",
			Phase:              phase,
			Status:             f.status,
			ErrorType:          f.errorType,
			Metrics:            initReportMetrics{DurationMs: millis(time.Since(env.started))},
		})
		e.shutdown(env, reasonFailure)
		return nil, f
	}
	env.syncLogs(true)
	for _, ext := range env.snapshot() {
		e.emit(env, recordExtensionState, extensionStateRecord{Name: ext.name, State: "Ready", Events: ext.events})
	}
	env.initDuration = time.Since(env.started)
	e.emit(env, recordInitReport, initReportRecord{
		InitializationType: "on-demand",
		Phase:              phase,
		Status:             "success",
		Metrics:            initReportMetrics{DurationMs: millis(env.initDuration)},
	})
	env.mu.Lock()
	env.initDone = true
	env.mu.Unlock()
	env.hub.closeSubscriptions()
	e.freeze(env)
	return env, nil
}

func (e *Emulator) initPhases(env *env, timer *time.Timer) *failure {
	for _, path := range e.extensions {
		if _, err := env.start(path, recordExtension); err != nil {
			return &failure{errorType: "Extension.LaunchError", message: err.Error(), status: "error"}
		}
	}
	if f := e.await(env, timer, env.externalsRegistered); f != nil {
		return f
	}
	fn, err := env.start(e.cfg.Function, recordFunction)
	if err != nil {
		return &failure{errorType: "Runtime.InvalidEntrypoint", message: err.Error(), status: "error"}
	}
	env.fn = fn
	return e.await(env, timer, env.allReady)
}

// await applies the environment's signals until done reports true, a
// signal is fatal, the init timer fires or the emulator closes.
func (e *Emulator) await(env *env, timer *time.Timer, done func() bool) *failure {
	for !done() {
		select {
		case s := <-env.signals:
			if f := e.apply(env, s); f != nil {
				return f
			}
		case <-timer.C:
			return &failure{
				errorType: "Sandbox.Timedout",
				message:   fmt.Sprintf("init timed out after %.2f seconds", e.cfg.InitTimeout.Seconds()),
				status:    "timeout",
			}
		case <-e.closing:
			return &failure{closing: true}
		}
	}
	return nil
}

// apply notes what a signal says about the environment and returns the
// failure it means, if it means one. Responses are the invocation's
// business, not apply's.
func (e *Emulator) apply(env *env, s signal) *failure {
	switch s.kind {
	case sigNext:
		if s.ext != nil {
			s.ext.ready = true
			return nil
		}
		env.runtimeReady = true
		if !env.runtimeInitDone {
			env.runtimeInitDone = true
			env.syncLogs(false)
			env.mu.Lock()
			env.regOpen = false
			env.mu.Unlock()
			e.emit(env, recordInitRuntimeDone, initRuntimeDoneRecord{
				InitializationType: "on-demand",
				Phase:              env.phase,
				Status:             "success",
			})
		}
	case sigInitError:
		e.emit(env, recordInitRuntimeDone, initRuntimeDoneRecord{
			InitializationType: "on-demand",
			Phase:              env.phase,
			Status:             "error",
			ErrorType:          s.errorType,
		})
		return &failure{errorType: s.errorType, message: s.message, status: "error"}
	case sigExtensionError:
		return &failure{errorType: s.errorType, message: fmt.Sprintf("extension %s: %s", s.ext.name, s.message), status: "error"}
	case sigExit:
		if s.proc == env.fn {
			if !env.runtimeInitDone {
				e.emit(env, recordInitRuntimeDone, initRuntimeDoneRecord{
					InitializationType: "on-demand",
					Phase:              env.phase,
					Status:             "error",
					ErrorType:          "Runtime.ExitError",
				})
			}
			return &failure{errorType: "Runtime.ExitError", message: "Runtime exited with error: " + s.proc.exitReason(), status: "error"}
		}
		return &failure{errorType: "Extension.Crash", message: fmt.Sprintf("extension %s exited: %s", s.proc.name, s.proc.exitReason()), status: "error"}
	}
	return nil
}

// serve runs one invocation: an init first when the environment was reset,
// then INVOKE to the extensions that asked for it and the event to the
// runtime. The caller gets its result the moment the runtime posts it;
// serve returns when the runtime and every extension have called next again
// (and the environment is frozen), or after the timeout or a crash has
// reset the environment.
func (e *Emulator) serve(inv *invocation) {
	began := time.Now()
	env := e.current()
	if env == nil {
		var f *failure
		env, f = e.initialize(phaseInvoke)
		if f != nil {
			if f.closing {
				inv.finish(nil, ErrClosed)
				return
			}
			e.failWithoutEnv(inv, f, began)
			return
		}
	}
	e.thaw(env)
	cold := env.invocations == 0
	env.invocations++
	inv.dispatched = time.Now()
	inv.deadline = inv.dispatched.Add(e.cfg.Timeout)
	e.emit(env, recordStart, startRecord{RequestID: inv.id, Version: functionVersion})
	env.mu.Lock()
	env.inflight, env.responded = inv, false
	env.mu.Unlock()

	event, _ := json.Marshal(invokeEvent{
		EventType:          "INVOKE",
		DeadlineMs:         inv.deadline.UnixMilli(),
		RequestID:          inv.id,
		InvokedFunctionArn: e.functionARN(),
		Tracing:            tracing{Type: "X-Amzn-Trace-Id", Value: inv.traceID},
	})
	for _, ext := range env.snapshot() {
		if ext.wants("INVOKE") {
			ext.ready = false
			ext.post(event)
		}
	}
	env.runtimeReady = false
	select {
	case <-env.rtEvents: // a runtime next that gave up left one behind
	default:
	}
	env.rtEvents <- inv

	timer := time.NewTimer(e.cfg.Timeout)
	defer timer.Stop()
	var resp *signal
	for resp == nil || !env.allReady() {
		// Close waits for an invocation that has its response: the
		// extensions finish their work and the report goes out. One still
		// waiting for its runtime is abandoned.
		closing := e.closing
		if resp != nil {
			closing = nil
		}
		select {
		case s := <-env.signals:
			if s.kind == sigResponse {
				resp = &s
				inv.finish(responseResult(inv, s), nil) // first: the caller waits for nothing else
				e.sampleMemory(env)
				env.syncLogs(false)
				e.emit(env, recordRuntimeDone, runtimeDone(inv, s))
				continue
			}
			if f := e.apply(env, s); f != nil {
				e.abort(env, inv, resp, f, cold)
				return
			}
		case <-timer.C:
			e.abort(env, inv, resp, &failure{
				errorType: "Sandbox.Timedout",
				message:   fmt.Sprintf("Task timed out after %.2f seconds", e.cfg.Timeout.Seconds()),
				status:    "timeout",
			}, cold)
			return
		case <-closing:
			inv.finish(nil, ErrClosed)
			return
		}
	}
	status, errorType := "success", ""
	if resp.failed {
		status, errorType = "error", resp.errorType
	}
	e.report(env, inv, status, errorType, cold)
	env.mu.Lock()
	env.inflight = nil
	env.mu.Unlock()
	e.freeze(env)
}

// abort ends an invocation that failed or timed out: the caller gets the
// failure unless the runtime had already answered, the platform reports it,
// and the environment is reset.
func (e *Emulator) abort(env *env, inv *invocation, resp *signal, f *failure, cold bool) {
	errorType := f.errorType
	if f.status == "timeout" {
		errorType = "" // Lambda reports a timeout by its status alone
	}
	if resp == nil {
		inv.finish(errorResult(inv.id, f), nil)
		env.syncLogs(false)
		e.emit(env, recordRuntimeDone, runtimeDoneRecord{
			RequestID: inv.id,
			Status:    f.status,
			ErrorType: errorType,
			Metrics:   &runtimeDoneMetrics{DurationMs: millis(time.Since(inv.dispatched))},
		})
	}
	e.report(env, inv, f.status, errorType, cold)
	reason := reasonFailure
	if f.status == "timeout" {
		reason = reasonTimeout
	}
	e.shutdown(env, reason)
}

// failWithoutEnv ends an invocation whose init failed: there is no
// environment left to deliver telemetry in, but Records still gets the
// invocation's start and report.
func (e *Emulator) failWithoutEnv(inv *invocation, f *failure, began time.Time) {
	inv.finish(errorResult(inv.id, f), nil)
	d := time.Since(began)
	e.emit(nil, recordStart, startRecord{RequestID: inv.id, Version: functionVersion})
	e.emit(nil, recordReport, reportRecord{
		RequestID: inv.id,
		Status:    f.status,
		ErrorType: f.errorType,
		Metrics: reportMetrics{
			BilledDurationMs: ceilMillis(d),
			DurationMs:       millis(d),
			MemorySizeMB:     e.cfg.MemoryMB,
		},
	})
}

// report emits platform.report: the invocation's whole duration (runtime
// and extensions, until the last next), billed to the millisecond and, on a
// cold start, with the init billed too, as for provided runtimes.
func (e *Emulator) report(env *env, inv *invocation, status, errorType string, cold bool) {
	e.sampleMemory(env)
	env.syncLogs(true)
	d := time.Since(inv.dispatched)
	m := reportMetrics{
		BilledDurationMs: ceilMillis(d),
		DurationMs:       millis(d),
		MaxMemoryUsedMB:  env.memoryMB,
		MemorySizeMB:     e.cfg.MemoryMB,
	}
	if cold {
		init := millis(env.initDuration)
		m.InitDurationMs = &init
		m.BilledDurationMs += ceilMillis(env.initDuration)
	}
	e.emit(env, recordReport, reportRecord{RequestID: inv.id, Status: status, ErrorType: errorType, Metrics: m})
}

// sampleMemory reads the function process's peak memory while it lives.
func (e *Emulator) sampleMemory(env *env) {
	if env.fn == nil || !env.fn.running() {
		return
	}
	if mb, ok := peakMemoryMB(env.fn.cmd.Process.Pid); ok {
		env.memoryMB = max(env.memoryMB, mb)
	}
}

func ceilMillis(d time.Duration) int64 {
	return int64(math.Ceil(float64(d) / float64(time.Millisecond)))
}

// responseResult is the caller's result for what the runtime posted.
func responseResult(inv *invocation, s signal) *Result {
	r := &Result{RequestID: inv.id, Payload: s.body}
	if s.failed {
		r.FunctionError, r.ErrorType = "Unhandled", s.errorType
	}
	return r
}

// runtimeDone is platform.runtimeDone for what the runtime posted, with the
// two spans Lambda reports: until the runtime started posting, and the
// posting itself.
func runtimeDone(inv *invocation, s signal) runtimeDoneRecord {
	produced := int64(len(s.body))
	r := runtimeDoneRecord{
		RequestID: inv.id,
		Status:    "success",
		Metrics:   &runtimeDoneMetrics{DurationMs: millis(s.read.Sub(inv.dispatched)), ProducedBytes: &produced},
		Spans: []span{
			{Name: "responseLatency", Start: stamp(inv.dispatched), DurationMs: millis(s.received.Sub(inv.dispatched))},
			{Name: "responseDuration", Start: stamp(s.received), DurationMs: millis(s.read.Sub(s.received))},
		},
	}
	if s.failed {
		r.Status, r.ErrorType = "error", s.errorType
	}
	return r
}

// errorResult is the caller's result for a failure of the platform's: the
// error document Lambda's Invoke API returns.
func errorResult(requestID string, f *failure) *Result {
	doc := errorJSON(f.errorType, fmt.Sprintf("RequestId: %s Error: %s", requestID, f.message))
	return &Result{RequestID: requestID, Payload: doc, FunctionError: "Unhandled", ErrorType: f.errorType}
}

// shutdown ends env, as Lambda's shutdown phase does: the runtime gets
// SIGTERM when an extension is registered (SIGKILL at once otherwise) and
// 300 ms, 500 ms with an internal extension, to exit; the telemetry produced
// so far is delivered; the external extensions registered for it get
// SHUTDOWN with reason, and every process still running when the phase's
// deadline (2,000 ms from its start with external extensions) passes is
// killed.
func (e *Emulator) shutdown(env *env, reason string) {
	begin := time.Now()
	exts := env.snapshot()
	grace := runtimeGrace
	for _, ext := range exts {
		if ext.internal {
			grace = internalGrace
		}
	}
	var extProcs []*process
	for _, p := range env.procs {
		if p != env.fn {
			extProcs = append(extProcs, p)
		}
	}
	limit := grace
	if len(extProcs) > 0 {
		limit = shutdownLimit
	}
	deadline := begin.Add(limit)
	env.mu.Lock()
	env.regOpen, env.initDone = false, true
	env.mu.Unlock()
	e.thaw(env)

	if fn := env.fn; fn != nil {
		e.sampleMemory(env)
		if fn.running() && len(exts) > 0 {
			fn.send(syscall.SIGTERM)
			e.drain(env, begin.Add(grace), fn.exited)
		}
		if fn.running() {
			e.log.Info("runtime killed", "reason", reason)
			fn.kill()
		}
		fn.waitLogs(100 * time.Millisecond)
	}

	flushed := make(chan struct{})
	flushBy := time.Now().Add(500 * time.Millisecond)
	if deadline.Before(flushBy) {
		flushBy = deadline
	}
	ctx, cancel := context.WithDeadline(context.Background(), flushBy)
	go func() {
		env.hub.flush(ctx)
		close(flushed)
	}()
	e.drain(env, deadline, flushed)
	cancel()

	event, _ := json.Marshal(shutdownEvent{EventType: "SHUTDOWN", ShutdownReason: reason, DeadlineMs: deadline.UnixMilli()})
	for _, p := range extProcs {
		env.mu.Lock()
		ext := env.byName[p.name]
		env.mu.Unlock()
		if ext != nil && !ext.internal && ext.wants("SHUTDOWN") {
			ext.post(event)
		} else if p.running() {
			p.kill() // nothing to tell it: it would only be killed at the deadline
		}
	}
	exited := make(chan struct{})
	go func() {
		for _, p := range extProcs {
			<-p.exited
		}
		close(exited)
	}()
	e.drain(env, deadline, exited)
	for _, p := range extProcs {
		if p.running() {
			e.log.Info("extension killed at the shutdown deadline", "extension", p.name, "reason", reason)
			p.kill()
		}
	}
	for _, p := range extProcs {
		p.waitLogs(100 * time.Millisecond)
	}
	close(env.done)
	env.hub.stop()
	e.mu.Lock()
	for _, ext := range exts {
		delete(e.exts, ext.id)
	}
	if e.env == env {
		e.env = nil
	}
	e.mu.Unlock()
}

// drain discards the environment's signals until done is closed or until
// passes: a handler must never block on a loop that stopped listening.
func (e *Emulator) drain(env *env, until time.Time, done <-chan struct{}) {
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			return
		case <-env.signals:
		}
	}
}

// logSyncWait bounds the wait for a process's log lines before a platform
// event; a line still missing after it comes later in the stream.
const logSyncWait = 20 * time.Millisecond

// syncLogs waits until the function's (all: every process's) output so far
// is in the stream.
func (env *env) syncLogs(all bool) {
	for _, p := range env.procs {
		if all || p == env.fn {
			p.syncLogs(logSyncWait)
		}
	}
}

// freeze stops every process of env, as Lambda freezes the microVM once the
// runtime and every extension have called next; telemetry delivery pauses
// with them.
func (e *Emulator) freeze(env *env) {
	env.hub.setFrozen(true)
	for _, p := range env.procs {
		p.send(syscall.SIGSTOP)
	}
}

func (e *Emulator) thaw(env *env) {
	for _, p := range env.procs {
		p.send(syscall.SIGCONT)
	}
	env.hub.setFrozen(false)
}
