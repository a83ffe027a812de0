package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Config describes the function and its environment. A zero field takes the
// default written beside it.
type Config struct {
	// Function is the path of the function's executable: the bootstrap of a
	// provided.al2023 function, for example an unmodified lambda.Start main.
	// Required.
	Function string

	// ExtensionsDir plays /opt/extensions: every file in it is started as an
	// external extension, in name order, and must register under its file
	// name. Empty: no extensions.
	ExtensionsDir string

	// Env is added to the environment of the function and extension
	// processes, as "KEY=value". Lambda's reserved variables
	// (AWS_LAMBDA_RUNTIME_API, AWS_LAMBDA_FUNCTION_NAME, …) are set over it;
	// AWS_REGION, AWS_DEFAULT_REGION (us-east-1), TZ (:UTC) and LANG get
	// Lambda's values only when Env does not set them.
	Env []string

	// Timeout is the function timeout: the invoke phase, runtime and
	// extensions together, must end within it. Default 3s.
	Timeout time.Duration

	// MemoryMB is the memory size reported to the processes
	// (AWS_LAMBDA_FUNCTION_MEMORY_SIZE) and in platform.report. It is not
	// enforced. Default 128.
	MemoryMB int

	// FunctionName names the function in its environment variables, ARN and
	// extension registrations. Default "function".
	FunctionName string

	// InitTimeout bounds each init phase. Default 10s, Lambda's limit for
	// on-demand functions.
	InitTimeout time.Duration

	// Logs receives the environment's log stream as CloudWatch Logs shows
	// it: the processes' output lines, and INIT_START, START, END, REPORT…
	// lines rendered from the platform events. Default: discarded.
	Logs io.Writer

	// Logger receives the emulator's own diagnostics (an init that failed, a
	// process killed at a deadline). Default: discarded.
	Logger *slog.Logger

	// MaxRecords is how many telemetry records Records and Delivered keep;
	// older ones are dropped. Default 100,000.
	MaxRecords int
}

// Lambda's fixed numbers.
const (
	defaultTimeout     = 3 * time.Second
	defaultMemoryMB    = 128
	defaultInitTimeout = 10 * time.Second
	defaultMaxRecords  = 100_000
	defaultName        = "function"

	// maxPayload is Lambda's limit for a synchronous request and response.
	maxPayload = 6 << 20
	// maxExtensions is Lambda's limit of registered extensions.
	maxExtensions = 10

	// shutdownLimit is the whole shutdown phase of an environment with
	// external extensions; the runtime gets runtimeGrace of it (internalGrace
	// with an internal extension), or all of its phase when there are no
	// extensions.
	shutdownLimit = 2000 * time.Millisecond
	runtimeGrace  = 300 * time.Millisecond
	internalGrace = 500 * time.Millisecond

	functionVersion = "$LATEST"
	accountID       = "012345678912"
)

// ErrClosed is returned by Invoke once Close has been called.
var ErrClosed = errors.New("emulator: closed")

// Emulator is one running execution environment and the API server its
// processes talk to. Create it with Start.
type Emulator struct {
	cfg        Config
	extensions []string // executables found in ExtensionsDir, in name order
	region     string
	log        *slog.Logger
	ln         net.Listener
	srv        *http.Server

	invokes   chan *invocation
	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	done      chan struct{} // closed when the lifecycle loop has shut everything down

	mu        sync.Mutex
	env       *env                  // nil between a reset and the next init
	exts      map[string]*extension // every live registration, by identifier
	records   []Record
	delivered map[string][]Record
	idle      chan struct{} // closed while no invocation is in progress
}

// Start validates cfg, starts the API server on a loopback port and runs the
// environment's init phase. It returns once init has ended, whether it
// succeeded or not: an init that failed is logged, and the first Invoke
// initialises again (as Lambda retries a failed init inside the invoke) and
// returns the init error as a function error. Start fails only when cfg is
// unusable, the server cannot listen, or ctx ends before init does.
func Start(ctx context.Context, cfg Config) (*Emulator, error) {
	e := &Emulator{
		cfg:       cfg,
		invokes:   make(chan *invocation),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
		exts:      map[string]*extension{},
		delivered: map[string][]Record{},
		idle:      make(chan struct{}),
	}
	close(e.idle)
	if err := e.configure(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("emulator: listen for the Runtime API: %w", err)
	}
	e.ln = ln
	e.srv = &http.Server{Handler: e.apiHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()

	ready := make(chan struct{})
	go e.run(ready)
	select {
	case <-ready:
		return e, nil
	case <-ctx.Done():
		_ = e.Close()
		return nil, ctx.Err()
	}
}

// configure fills the defaults and checks that the binaries can be run.
func (e *Emulator) configure() error {
	c := &e.cfg
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = defaultMemoryMB
	}
	if c.FunctionName == "" {
		c.FunctionName = defaultName
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = defaultInitTimeout
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = defaultMaxRecords
	}
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("emulator: timeout %v: want a positive duration", c.Timeout)
	case c.MemoryMB < 0:
		return fmt.Errorf("emulator: memory %d MB: want a positive size", c.MemoryMB)
	case c.InitTimeout < 0:
		return fmt.Errorf("emulator: init timeout %v: want a positive duration", c.InitTimeout)
	}
	e.log = c.Logger
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.region = "us-east-1"
	for _, kv := range c.Env {
		if k, v, ok := cut(kv); ok && k == "AWS_REGION" && v != "" {
			e.region = v
		}
	}
	if c.Function == "" {
		return errors.New("emulator: no function: set Config.Function to the path of its executable")
	}
	fn, err := filepath.Abs(c.Function)
	if err != nil {
		return fmt.Errorf("emulator: function %q: %w", c.Function, err)
	}
	if err := executable(fn); err != nil {
		return fmt.Errorf("emulator: function: %w", err)
	}
	c.Function = fn
	if c.ExtensionsDir == "" {
		return nil
	}
	dir, err := filepath.Abs(c.ExtensionsDir)
	if err != nil {
		return fmt.Errorf("emulator: extensions %q: %w", c.ExtensionsDir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("emulator: extensions: %w", err)
	}
	for _, ent := range entries {
		path := filepath.Join(dir, ent.Name())
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			continue
		}
		if err := executable(path); err != nil {
			return fmt.Errorf("emulator: extension: %w", err)
		}
		e.extensions = append(e.extensions, path)
	}
	c.ExtensionsDir = dir
	return nil
}

// executable reports why path cannot be started as a process, if it cannot.
func executable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory, not an executable", path)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable (chmod +x it)", path)
	}
	return nil
}

// RuntimeAPI is the host:port the processes see as AWS_LAMBDA_RUNTIME_API.
func (e *Emulator) RuntimeAPI() string { return e.ln.Addr().String() }

// Result is how one invocation ended, as Lambda's Invoke API reports it.
type Result struct {
	// RequestID is the invocation's request id (Lambda-Runtime-Aws-Request-Id).
	RequestID string
	// Payload is the function's response, or the error document when
	// FunctionError is set.
	Payload []byte
	// FunctionError is "Unhandled" when the invocation failed (the
	// X-Amz-Function-Error header of Lambda's Invoke API), "" otherwise.
	FunctionError string
	// ErrorType names the failure: the errorType the runtime posted, or the
	// platform's (Sandbox.Timedout, Runtime.ExitError, Extension.Crash, …).
	ErrorType string
}

// InvokeOption sets an optional part of an invocation.
type InvokeOption func(*invocation)

// WithClientContext passes clientContext (JSON, as the AWS Mobile SDK sends
// it) to the runtime in Lambda-Runtime-Client-Context.
func WithClientContext(clientContext string) InvokeOption {
	return func(inv *invocation) { inv.clientContext = clientContext }
}

// WithCognitoIdentity passes identity (JSON) to the runtime in
// Lambda-Runtime-Cognito-Identity.
func WithCognitoIdentity(identity string) InvokeOption {
	return func(inv *invocation) { inv.cognitoIdentity = identity }
}

// WithTraceID sets the X-Ray trace header the runtime and extensions see,
// instead of a generated one.
func WithTraceID(traceID string) InvokeOption {
	return func(inv *invocation) { inv.traceID = traceID }
}

// Invoke runs one invocation with payload and returns as soon as the runtime
// has posted its response (or the invocation has failed); the environment
// goes on until every extension has called next, and the next Invoke waits
// for that. A function that fails is a Result with FunctionError set, not an
// error: the error is for the emulator (ErrClosed) or ctx ending. When ctx
// ends after the event was dispatched, the invocation still runs to its end
// in the environment, as it would in Lambda.
func (e *Emulator) Invoke(ctx context.Context, payload []byte, opts ...InvokeOption) (*Result, error) {
	inv := e.newInvocation(payload, opts)
	if err := e.submit(ctx, inv); err != nil {
		return nil, err
	}
	select {
	case out := <-inv.result:
		return out.result, out.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// submit hands inv to the lifecycle loop, which takes it when the
// environment is free.
func (e *Emulator) submit(ctx context.Context, inv *invocation) error {
	select {
	case e.invokes <- inv:
		return nil
	case <-e.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Emulator) newInvocation(payload []byte, opts []InvokeOption) *invocation {
	inv := &invocation{
		id:      newUUID(),
		payload: payload,
		result:  make(chan invokeOutcome, 1),
	}
	for _, opt := range opts {
		opt(inv)
	}
	if inv.traceID == "" {
		inv.traceID = newTraceID()
	}
	return inv
}

// Wait blocks until no invocation is in progress: the runtime and every
// extension have called next and the environment is frozen (or reset), or
// ctx ends.
func (e *Emulator) Wait(ctx context.Context) error {
	e.mu.Lock()
	idle := e.idle
	e.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Records returns the telemetry records the platform has produced, oldest
// first, whether or not an extension subscribed to them: platform events and
// function and extension log lines, across every environment the emulator
// has run (at most Config.MaxRecords).
func (e *Emulator) Records() []Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(trimmed(e.records, e.cfg.MaxRecords))
}

// Delivered returns the records delivered to the Telemetry API subscription
// of the extension registered as name (batches the listener acknowledged
// with a 2xx), oldest first.
func (e *Emulator) Delivered(name string) []Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(trimmed(e.delivered[name], e.cfg.MaxRecords))
}

// Close shuts the environment down as Lambda spins one down: the runtime is
// stopped, extensions registered for it get SHUTDOWN (spindown) with a
// deadline 2,000 ms away, and processes still running at the deadline are
// killed. An invocation whose runtime has answered is first allowed to end
// (its extensions call next, or its timeout passes) so that its report goes
// out; one still waiting for its runtime ends with ErrClosed. Close returns
// when every process is gone; calling it again does nothing.
func (e *Emulator) Close() error {
	e.closeOnce.Do(func() { close(e.closing) })
	<-e.done
	err := e.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// appendCapped appends r to rs, dropping the oldest records beyond max.
func appendCapped(rs []Record, r Record, max int) []Record {
	rs = append(rs, r)
	if len(rs) > 2*max {
		rs = append(rs[:0:0], rs[len(rs)-max:]...)
	}
	return rs
}

// trimmed is rs without the records appendCapped keeps beyond max.
func trimmed(rs []Record, max int) []Record {
	if len(rs) > max {
		return rs[len(rs)-max:]
	}
	return rs
}
