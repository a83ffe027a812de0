// Command demo replays lambdarasp's scripted scenario: `make demo` builds
// the example function (examples/orders), the extension and the lambdarasp
// command, and runs this against them under `lambdarasp local`.
//
// It sends steady traffic from four sources (orders paid by card are
// charged at a payment service this program serves on 127.0.0.1), orders
// whose webhook points at a host the function never called and at the
// instance metadata, injection attempts on each source, a client that
// keeps trying, a slow-down, an error burst and an attack wave, then
// checks that the wrapper blocked what it should, that the extension
// raised the anomalies and alerts it should (on stdout and to a webhook
// this program serves on 127.0.0.1), and that the wrapper enforced the
// decisions of the demo's policy (policy.json): the never-seen destination
// denied, the repeat attacker's IP blocked, the function quarantined after
// the wave. It prints a progress line, the invocations by outcome, the
// anomalies and alerts, the decisions enforced, the outbound calls the
// wrapper refused and a one-line summary, and exits 1 if any expected
// outcome did not happen.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/otlp/otlptest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("demo", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cli := fl.String("lambdarasp", "bin/lambdarasp", "the lambdarasp command")
	function := fl.String("function", "bin/orders", "the example function's executable")
	extensions := fl.String("extensions", "bin/extensions", "the extensions directory (the layer's extensions/)")
	events := fl.String("events", "examples/events", "the sample events")
	policy := fl.String("policy", "examples/demo/policy.json", "the extension's policy")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	steps, err := scenario(*events)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	start := time.Now()
	res, err := play(ctx, steps, *cli, *function, *extensions, *policy, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	if !present(stdout, res, time.Since(start)) {
		return 1
	}
	return 0
}

// result is everything the run produced.
type result struct {
	steps   []step
	calls   [][]outcome // per step, per call
	logs    logs
	webhook []string // bodies received
	charges int      // requests the payment service received
	otel    telemetry
}

// outcome is one invocation's answer.
type outcome struct {
	requestID     string
	functionError string
	payload       []byte
	err           error
}

// play starts lambdarasp local with the function and the extension, sends
// every step's invocations, shuts the environment down (so the extension
// flushes its alerts) and returns what happened.
func play(ctx context.Context, steps []step, cli, function, extensions, policy string, progress io.Writer) (*result, error) {
	// The processes run elsewhere than here: every path absolute.
	paths := []*string{&cli, &function, &extensions, &policy}
	for _, p := range paths {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, err
		}
		*p = abs
	}
	for _, f := range []string{cli, function, filepath.Join(extensions, "lambdarasp"), policy} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%w (make demo builds it)", err)
		}
	}
	dir, err := os.MkdirTemp("", "lambdarasp-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	res := &result{steps: steps}
	var hookMu sync.Mutex
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		res.webhook = append(res.webhook, string(b))
		hookMu.Unlock()
	}))
	defer hook.Close()
	// The payment service the function charges orders at, on loopback:
	// the one internal address the function is allowed to call.
	var charges atomic.Int32
	payments := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		charges.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer payments.Close()
	reportAddr, err := freeUDP()
	if err != nil {
		return nil, err
	}
	// A local OTLP receiver plays the backend; the extension relays the
	// wrapper's spans to it, with its own metrics and alert logs.
	rcv, err := otlptest.Start()
	if err != nil {
		return nil, err
	}
	defer rcv.Close()
	otlpAddr, err := freeTCP()
	if err != nil {
		return nil, err
	}

	cmd := exec.Command(cli, "local", "--function", function, "--extensions", extensions, "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(),
		"LAMBDARASP_REPORT_ADDR="+reportAddr,
		"LAMBDARASP_TELEMETRY_PORT=0",
		"LAMBDARASP_DECISIONS_FILE="+filepath.Join(dir, "decisions.json"),
		"LAMBDARASP_POLICY_FILE="+policy,
		"LAMBDARASP_WEBHOOK_URL="+hook.URL+"/alerts",
		"LAMBDARASP_EGRESS_INTERNAL=127.0.0.1",
		"ORDERS_PAYMENTS_URL="+payments.URL,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+rcv.URL,
		"OTEL_SERVICE_NAME=orders",
		"LAMBDARASP_OTLP_ADDR="+otlpAddr,
	)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errOut, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s local: %w", cli, err)
	}
	logsDone := make(chan struct{})
	go func() {
		res.logs.read(out)
		close(logsDone)
	}()
	url, stderrTail, err := invokeURL(errOut)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("lambdarasp local did not start: %w\n%s", err, stderrTail())
	}

	total := 0
	for _, s := range steps {
		total += len(s.calls)
	}
	bar := newProgress(progress, total)
	client := &http.Client{Timeout: 30 * time.Second}
	for _, s := range steps {
		outs := make([]outcome, len(s.calls))
		for i, c := range s.calls {
			if ctx.Err() != nil {
				break
			}
			outs[i] = invoke(ctx, client, url, c.payload)
			bar.advance(s.name)
		}
		res.calls = append(res.calls, outs)
	}
	bar.done()

	// Spin down: the extension gets SHUTDOWN and flushes what it holds.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	waited := make(chan error, 1)
	go func() { <-logsDone; waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-waited
		return nil, errors.New("lambdarasp local did not shut down within 10 s")
	}
	hookMu.Lock()
	defer hookMu.Unlock()
	res.charges = int(charges.Load())
	res.otel = telemetry{spans: rcv.Spans(), metrics: rcv.Metrics(), logs: rcv.Logs(), errs: rcv.Errors()}
	return res, ctx.Err()
}

// invokeURL waits for lambdarasp local's "invoke at" line on stderr and
// keeps reading the rest in the background.
func invokeURL(r io.Reader) (string, func() string, error) {
	var mu sync.Mutex
	var tail bytes.Buffer
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			if _, u, ok := strings.Cut(line, "invoke at "); ok {
				select {
				case found <- u:
				default:
				}
			}
			mu.Lock()
			tail.WriteString(line + "\n")
			mu.Unlock()
		}
		close(found)
	}()
	tailText := func() string { mu.Lock(); defer mu.Unlock(); return tail.String() }
	select {
	case u, ok := <-found:
		if !ok {
			return "", tailText, errors.New("it exited")
		}
		return u, tailText, nil
	case <-time.After(30 * time.Second):
		return "", tailText, errors.New("no invoke address within 30 s")
	}
}

func invoke(ctx context.Context, client *http.Client, url string, payload []byte) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return outcome{err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return outcome{requestID: resp.Header.Get("X-Amzn-Requestid"), functionError: resp.Header.Get("X-Amz-Function-Error"), payload: b, err: err}
}

func freeTCP() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func freeUDP() (string, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}

// progress is one line, redrawn in place on a terminal; elsewhere one
// line per step.
type progress struct {
	w         io.Writer
	tty       bool
	n, total  int
	last      string
	startedAt time.Time
}

func newProgress(w io.Writer, total int) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progress{w: w, tty: tty, total: total, startedAt: time.Now()}
}

func (p *progress) advance(step string) {
	p.n++
	if p.tty {
		const width = 30
		filled := p.n * width / p.total
		fmt.Fprintf(p.w, "\r[%s%s] %3d/%d  %-40s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.n, p.total, step)
		return
	}
	if step != p.last {
		if p.last != "" {
			fmt.Fprintln(p.w, "done")
		}
		fmt.Fprintf(p.w, "%-40s ", step)
		p.last = step
	}
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintf(p.w, "\r%-80s\r", "")
		fmt.Fprintf(p.w, "%d invocations sent in %.1f s\n\n", p.n, time.Since(p.startedAt).Seconds())
		return
	}
	fmt.Fprintf(p.w, "done\n%d invocations sent in %.1f s\n\n", p.n, time.Since(p.startedAt).Seconds())
}
