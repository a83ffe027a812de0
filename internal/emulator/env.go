package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// env is one execution environment: the processes of one init, the
// extensions they registered and the telemetry they produce. The lifecycle
// loop creates it, drives it and tears it down; API handlers find it through
// the Emulator and tell the loop what happened over signals.
type env struct {
	e         *Emulator
	phase     string    // the init's phase: "init", or "invoke" for an init inside an invocation
	started   time.Time // init start
	logStream string
	signals   chan signal
	done      chan struct{}    // closed when the environment is gone
	rtEvents  chan *invocation // the next invocation, for the runtime's pending next
	hub       *hub

	mu             sync.Mutex // guards the fields below, shared with the API handlers
	regOpen        bool       // registrations accepted (until the runtime's first next)
	initDone       bool       // init over: no more telemetry subscriptions
	runtimeStarted bool       // the runtime has called next: no more init errors
	extensions     []*extension
	byName         map[string]*extension
	inflight       *invocation // dispatched to the runtime
	responded      bool        // the runtime has posted the inflight invocation's result

	external map[string]bool // file names of the external extensions, the names they register under; fixed by newEnv

	// Owned by the lifecycle loop.
	fn              *process
	procs           []*process // every process, the function's included
	runtimeReady    bool       // the runtime waits in next since its last invocation
	runtimeInitDone bool       // the runtime has called next once
	initDuration    time.Duration
	invocations     int // dispatched so far: the first one is the cold start
	memoryMB        int // the function process's peak, read last
}

func (e *Emulator) newEnv(phase string) *env {
	external := make(map[string]bool, len(e.extensions))
	for _, path := range e.extensions {
		external[filepath.Base(path)] = true
	}
	now := time.Now()
	return &env{
		e:         e,
		phase:     phase,
		started:   now,
		logStream: now.UTC().Format("2006/01/02") + "/[" + functionVersion + "]" + strings.ReplaceAll(newUUID(), "-", ""),
		signals:   make(chan signal, 16),
		done:      make(chan struct{}),
		rtEvents:  make(chan *invocation, 1),
		hub:       newHub(e),
		regOpen:   true,
		byName:    map[string]*extension{},
		external:  external,
	}
}

// signal hands s to the lifecycle loop; it gives up when the environment is
// gone.
func (env *env) signal(s signal) {
	select {
	case env.signals <- s:
	case <-env.done:
	}
}

// snapshot returns the registered extensions.
func (env *env) snapshot() []*extension {
	env.mu.Lock()
	defer env.mu.Unlock()
	return slices.Clone(env.extensions)
}

// allReady reports whether the runtime and every extension are waiting in
// next: the point where Lambda freezes the environment.
func (env *env) allReady() bool {
	if !env.runtimeReady {
		return false
	}
	for _, ext := range env.snapshot() {
		if !ext.ready {
			return false
		}
	}
	return true
}

// externalsRegistered reports whether every external extension started has
// registered: the end of the extension init phase.
func (env *env) externalsRegistered() bool {
	env.mu.Lock()
	defer env.mu.Unlock()
	for name := range env.external {
		if env.byName[name] == nil {
			return false
		}
	}
	return true
}

// extension is one registration with the Extensions API.
type extension struct {
	id       string
	name     string
	internal bool     // registered by the function process, not started from the extensions directory
	events   []string // INVOKE and/or SHUTDOWN, as registered
	env      *env
	queue    chan []byte // the next event, for the extension's pending next
	ready    bool        // owned by the loop: waiting in next since its last event
}

func (ext *extension) wants(event string) bool { return slices.Contains(ext.events, event) }

// post queues ev for the extension's next call, replacing an event a next
// that gave up left behind.
func (ext *extension) post(ev []byte) {
	for {
		select {
		case ext.queue <- ev:
			return
		default:
			select {
			case <-ext.queue:
			default:
			}
		}
	}
}

// invocation is one Invoke on its way through the environment.
type invocation struct {
	id              string
	payload         []byte
	clientContext   string
	cognitoIdentity string
	traceID         string
	deadline        time.Time
	dispatched      time.Time
	result          chan invokeOutcome // buffered: the caller may be gone
	finished        bool               // owned by the loop
}

type invokeOutcome struct {
	result *Result
	err    error
}

// finish hands the caller its result, once.
func (inv *invocation) finish(r *Result, err error) {
	if inv.finished {
		return
	}
	inv.finished = true
	inv.result <- invokeOutcome{r, err}
}

// sigKind is what a signal reports.
type sigKind int

const (
	sigRegistered     sigKind = iota // ext registered
	sigNext                          // ext, or the runtime when ext is nil, called next
	sigResponse                      // the runtime posted a response or an error
	sigInitError                     // the runtime posted /runtime/init/error
	sigExtensionError                // ext posted /extension/init/error or /exit/error
	sigExit                          // proc exited
)

// signal tells the lifecycle loop what happened in an API handler or to a
// process.
type signal struct {
	kind      sigKind
	ext       *extension
	proc      *process
	errorType string
	message   string

	// sigResponse
	body     []byte
	failed   bool      // posted to /error, or a trailer reported a failure
	received time.Time // the runtime started posting
	read     time.Time // the body was read
}

// failure is why an init or an invocation failed, as Lambda names it.
type failure struct {
	errorType string // Runtime.ExitError, Extension.Crash, Sandbox.Timedout, …
	message   string
	status    string // telemetry status: "error", or "timeout"
	closing   bool   // the emulator is closing: nobody needs a report
}

func (f *failure) Error() string { return f.errorType + ": " + f.message }

// environ is the environment of a process of kind recordFunction or
// recordExtension: Config.Env, Lambda's defaults where Env is silent, and
// Lambda's reserved variables over both. Extensions do not see the
// runtime-only variables, as in Lambda.
func (env *env) environ(kind string) []string {
	e := env.e
	vars := map[string]string{
		"AWS_REGION":         e.region,
		"AWS_DEFAULT_REGION": e.region,
		"TZ":                 ":UTC",
		"LANG":               "en_US.UTF-8",
		"PATH":               "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
	}
	for _, kv := range e.cfg.Env {
		if k, v, ok := cut(kv); ok {
			vars[k] = v
		}
	}
	reserved := map[string]string{
		"AWS_LAMBDA_RUNTIME_API":          e.RuntimeAPI(),
		"AWS_LAMBDA_FUNCTION_NAME":        e.cfg.FunctionName,
		"AWS_LAMBDA_FUNCTION_VERSION":     functionVersion,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(e.cfg.MemoryMB),
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + e.cfg.FunctionName,
		"AWS_LAMBDA_LOG_STREAM_NAME":      env.logStream,
		"LAMBDA_TASK_ROOT":                filepath.Dir(e.cfg.Function),
		"LAMBDA_RUNTIME_DIR":              filepath.Dir(e.cfg.Function),
		"_HANDLER":                        filepath.Base(e.cfg.Function),
	}
	for k, v := range reserved {
		vars[k] = v
	}
	if kind == recordExtension {
		for _, k := range []string{"AWS_EXECUTION_ENV", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
			"AWS_XRAY_CONTEXT_MISSING", "AWS_XRAY_DAEMON_ADDRESS", "LAMBDA_RUNTIME_DIR", "LAMBDA_TASK_ROOT",
			"_AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_PORT", "_HANDLER"} {
			delete(vars, k)
		}
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// functionARN is the ARN the runtime and extensions see.
func (e *Emulator) functionARN() string {
	return "arn:aws:lambda:" + e.region + ":" + accountID + ":function:" + e.cfg.FunctionName
}

func cut(kv string) (key, value string, ok bool) {
	key, value, ok = strings.Cut(kv, "=")
	return key, value, ok && key != ""
}

// newUUID returns a random (version 4) UUID, the shape of Lambda's request
// ids and extension identifiers.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newTraceID returns an X-Ray trace header for an unsampled request, as
// Lambda passes one to every invocation when active tracing is off.
func newTraceID() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", time.Now().Unix(), hex.EncodeToString(b[:12]), hex.EncodeToString(b[12:]))
}

// isUUID reports whether s has the shape of a UUID.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}
