package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// exampleRuns are what each example is run with under lambdarasp local:
// the variable naming its downstream service, and its sample events from
// examples/events with what each must produce.
var exampleRuns = map[string]struct {
	serviceVar string
	invokes    []exampleInvoke
}{
	"apigw-http": {"PAYMENTS_URL", []exampleInvoke{
		{"apigw-http-clean.json", false, `{"statusCode":201,"body":"{\"order\":\"created\"}"}`, 1},
		{"apigw-http-sqli-query.json", false, `{"statusCode":403,"headers":{"Content-Type":"application/json"}}`, 0},
	}},
	"sqs-worker": {"FULFILMENT_URL", []exampleInvoke{
		// The second message is plain text: the worker's own failure.
		{"sqs-clean.json", false, `{"batchItemFailures":[{"itemIdentifier":"059f36b4-87a3-44ab-83d2-661975265711"}]}`, 1},
		// The second message is blocked: cut out, the two others processed.
		{"sqs-batch-one-poisoned.json", false, `{"batchItemFailures":[{"itemIdentifier":"059f36b4-87a3-44ab-83d2-661975265711"}]}`, 2},
	}},
	"s3-processor": {"THUMBNAILER_URL", []exampleInvoke{
		{"s3-clean.json", false, `null`, 1},
		{"s3-key-command-injection.json", true, `{"errorType":"lambdarasp.Blocked"}`, 0},
	}},
	"direct-invoke": {"REPORTS_URL", []exampleInvoke{
		{"direct-invoke-clean.json", false, `{"tenant":"acme","status":"queued"}`, 1},
		{"direct-invoke-deserialization.json", true, `{"errorType":"lambdarasp.Blocked"}`, 0},
	}},
}

// exampleInvoke is one sample event sent to an example.
type exampleInvoke struct {
	event         string // in examples/events
	functionError bool   // answered with X-Amz-Function-Error
	want          string // JSON the response must contain (objects: these keys at least)
	calls         int    // requests the downstream service gets
}

var cli, exampleBins built

// lambdaraspCLI builds the lambdarasp command for this machine.
func lambdaraspCLI(t *testing.T) string {
	a := host(t)
	return cli.get(t, func(ctx context.Context, paths map[string]string) error {
		paths["cli"] = filepath.Join(work, "lambdarasp")
		return goBuild(ctx, root, "./cmd/lambdarasp", a, paths["cli"], "")
	})["cli"]
}

// exampleBootstraps builds every example for this machine as make examples
// builds it, and unpacks each bootstrap from its zip.
func exampleBootstraps(t *testing.T) map[string]string {
	a := host(t)
	return exampleBins.get(t, func(ctx context.Context, paths map[string]string) error {
		for _, name := range examples {
			_, zipPath, err := buildExample(ctx, root, filepath.Join(work, "examples"), filepath.Join(work, "dist"), name, a)
			if err != nil {
				return err
			}
			bin := filepath.Join(work, "unpacked", name, functionBinary)
			if err := unpack(zipPath, functionBinary, bin); err != nil {
				return fmt.Errorf("%s: %w", zipPath, err)
			}
			paths[name] = bin
		}
		return nil
	})
}

// TestExamples runs each example, as its zip holds it, with the extension
// from the layer zip under lambdarasp local, sends it its sample events
// the way curl would, and checks each answer, the calls its downstream
// service received, and that the extension saw every invocation and its
// report.
func TestExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds the examples and runs them under lambdarasp local")
	}
	bins := exampleBootstraps(t)
	lr := lambdaraspCLI(t)
	extDir := filepath.Join(t.TempDir(), "extensions")
	if err := unpack(layerZips(t)[host(t).name], layerExtension, filepath.Join(extDir, "lambdarasp")); err != nil {
		t.Fatal(err)
	}
	for _, name := range examples {
		t.Run(name, func(t *testing.T) {
			run, ok := exampleRuns[name]
			if !ok {
				t.Fatalf("no sample events for %s in exampleRuns", name)
			}
			var calls atomic.Int32
			service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(http.StatusCreated)
			}))
			defer service.Close()
			env, err := extensionEnv(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			env = append(env, run.serviceVar+"="+service.URL)
			url, logs, stop := startLocal(t, lr, bins[name], extDir, env)
			for _, inv := range run.invokes {
				before := calls.Load()
				event, err := os.ReadFile(filepath.Join(root, "examples", "events", inv.event))
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.Post(url, "application/json", bytes.NewReader(event))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if failed := resp.Header.Get("X-Amz-Function-Error") != ""; resp.StatusCode != 200 || failed != inv.functionError {
					t.Errorf("%s: status %d, function error %v (%s), want 200, %v", inv.event, resp.StatusCode, failed, body, inv.functionError)
				}
				if err := containsJSON(body, inv.want); err != nil {
					t.Errorf("%s: %v", inv.event, err)
				}
				if got := calls.Load() - before; int(got) != inv.calls {
					t.Errorf("%s: the downstream service got %d calls, want %d", inv.event, got, inv.calls)
				}
			}
			stop()
			wantCalls := 0
			for _, inv := range run.invokes {
				wantCalls += inv.calls
			}
			shutdown := fmt.Sprintf(`"invocations":%d,"reports":%d,"outbound_calls":%d`, len(run.invokes), len(run.invokes), wantCalls)
			for _, want := range []string{`"msg":"lambdarasp extension ready"`, `"version":"` + testVersion + `"`, shutdown} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the log stream lacks %s:\n%s", want, logs.String())
				}
			}
		})
	}
}

// TestExampleBinaries checks that each example's bootstrap, as make
// examples builds it, leaves out what functionTags are there to drop: net/rpc
// (lambda.norpc) and the JSON Schema library behind Coraza's
// @validateSchema (github.com/kaptinlin/jsonschema).
func TestExampleBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds the examples")
	}
	for name, bin := range exampleBootstraps(t) {
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, m := range info.Deps {
			if m.Path == "github.com/kaptinlin/jsonschema" {
				t.Errorf("%s links %s: not built with coraza.disabled_operators.validateSchema", name, m.Path)
			}
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		// A stripped Go binary still names its functions (for tracebacks).
		if bytes.Contains(b, []byte("net/rpc.")) {
			t.Errorf("%s links net/rpc: not built with lambda.norpc", name)
		}
	}
}

// startLocal runs lambdarasp local for function and the extensions in
// extDir, and returns its invoke URL, its log stream (stdout: read it after
// stop), and a stop function that shuts it down as SIGINT does and waits
// for it.
func startLocal(t *testing.T, lr, function, extDir string, env []string) (url string, logs *bytes.Buffer, stop func()) {
	t.Helper()
	cmd := exec.Command(lr, "local", "--function", function, "--extensions", extDir, "--addr", "127.0.0.1:0", "--timeout", "10s")
	cmd.Env = env
	logs = &bytes.Buffer{}
	cmd.Stdout = logs
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		errOut.Write(append(sc.Bytes(), '\n'))
		if _, u, ok := strings.Cut(sc.Text(), "invoke at "); ok {
			url = u
			break
		}
	}
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&errOut, stderr); close(copied) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			kill := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
			<-copied // stderr closed: errOut is whole
			err := cmd.Wait()
			if !kill.Stop() {
				t.Errorf("lambdarasp local did not stop within 10 s\n%s", errOut.String())
			} else if err != nil {
				t.Errorf("lambdarasp local: %v\n%s", err, errOut.String())
			}
		})
	}
	t.Cleanup(stop)
	if url == "" {
		stop()
		t.Fatalf("lambdarasp local announced no address:\n%s", errOut.String())
	}
	return url, logs, stop
}

// containsJSON reports whether got holds want: equal values, except that
// an object in want needs only its own keys in got.
func containsJSON(got []byte, want string) error {
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return fmt.Errorf("response %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		return fmt.Errorf("want %s: %v", want, err)
	}
	if !jsonSubset(g, w) {
		return fmt.Errorf("response %s, want %s", got, want)
	}
	return nil
}

func jsonSubset(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			if gv, ok := g[k]; !ok || !jsonSubset(gv, wv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !jsonSubset(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
}

// unpack writes the entry name of the zip at zipPath to dest, with the mode
// the zip gives it, as Lambda unpacks a function or a layer.
func unpack(zipPath, name, dest string) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return err
	}
	defer zr.Close()
	f, err := zr.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	w, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
