package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/emulator"
)

// Lambda's limits, which local holds its flags to.
const (
	minTimeout, maxTimeout = time.Second, 15 * time.Minute
	minMemory, maxMemory   = 128, 10240
)

const localUsage = `usage: lambdarasp local --function BIN [--extensions DIR] [--timeout 3s] [--memory 128] [--addr 127.0.0.1:9000]

Runs BIN and every executable in DIR as Lambda runs a function and its
extensions (Runtime, Extensions and Telemetry APIs emulated), and serves
Lambda's Invoke API:

  curl -d '{"hello":"world"}' http://127.0.0.1:9000/2015-03-31/functions/function/invocations

The log stream (function and extension output, START, END, REPORT) goes to
stdout. The processes inherit this environment; Lambda's variables are set
over it. SIGINT or SIGTERM shuts the environment down as Lambda does.

`

// local runs a function binary and its extensions in an emulated Lambda
// execution environment and serves Lambda's Invoke API for it until ctx
// ends (SIGINT or SIGTERM), then shuts the environment down as Lambda spins
// one down. The environment's log stream goes to stdout; local's own
// messages to stderr.
func local(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := newFlags("local", localUsage, stderr)
	function := fl.String("function", "", "the function's executable, a provided.al2023 bootstrap (required)")
	extensions := fl.String("extensions", "", "directory whose executables run as external extensions, as /opt/extensions does")
	timeout := fl.Duration("timeout", 3*time.Second, "function timeout, 1s to 15m")
	memory := fl.Int("memory", 128, "memory size in MB, 128 to 10240: reported to the function and in REPORT, not enforced")
	addr := fl.String("addr", "127.0.0.1:9000", "address to serve the Invoke API on")
	if err := fl.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "lambdarasp local: "+format+"\n", a...)
		return exitUsage
	}
	switch {
	case fl.NArg() > 0:
		return fail("unexpected argument %q: every setting is a flag (lambdarasp local -h)", fl.Arg(0))
	case *function == "":
		return fail("--function is required: give the path of your function's executable (go build -o bootstrap .)")
	case *timeout < minTimeout || *timeout > maxTimeout:
		return fail("--timeout %v: want %v to %v, as Lambda allows", *timeout, minTimeout, maxTimeout)
	case *memory < minMemory || *memory > maxMemory:
		return fail("--memory %d: want %d to %d (MB), as Lambda allows", *memory, minMemory, maxMemory)
	}
	if st, err := os.Stat(*function); err != nil {
		return fail("--function %s: %v: build it first (go build -o bootstrap .)", *function, errors.Unwrap(err))
	} else if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fail("--function %s: not an executable file: give the built binary (chmod +x it)", *function)
	}
	if *extensions != "" {
		if st, err := os.Stat(*extensions); err != nil || !st.IsDir() {
			return fail("--extensions %s: not a directory: give the directory that holds the extension executables (a layer's extensions/)", *extensions)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fail("--addr %s: %v: pick another address with --addr", *addr, err)
	}
	defer ln.Close()

	em, err := emulator.Start(ctx, emulator.Config{
		Function:      *function,
		ExtensionsDir: *extensions,
		Env:           os.Environ(),
		Timeout:       *timeout,
		MemoryMB:      *memory,
		Logs:          stdout,
		Logger:        slog.New(slog.NewJSONHandler(stderr, nil)),
	})
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		fmt.Fprintf(stderr, "lambdarasp local: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: em.InvokeHandler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stderr, "lambdarasp local: invoke at http://%s/2015-03-31/functions/function/invocations\n", ln.Addr())

	status := 0
	select {
	case <-ctx.Done():
	case err := <-served:
		fmt.Fprintf(stderr, "lambdarasp local: serving --addr %s: %v\n", *addr, err)
		status = 1
	}
	fmt.Fprintln(stderr, "lambdarasp local: shutting down")
	// The environment first: an invocation still waiting for its runtime
	// ends, so its request ends too, and the server can close.
	if err := em.Close(); err != nil {
		fmt.Fprintf(stderr, "lambdarasp local: %v\n", err)
		status = 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	return status
}
