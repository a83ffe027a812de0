package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/testbin"
)

// The emulator's test function (an aws-lambda-go lambda.Start main) and
// test extension, built by TestMain.
var functionBin, extensionBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lambdarasp-local-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := testbin.Build(dir, "../../internal/emulator/testdata/function", "../../internal/emulator/testdata/extension"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	functionBin, extensionBin = filepath.Join(dir, "function"), filepath.Join(dir, "extension")
	return m.Run()
}

func TestLocalFlags(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "bootstrap")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string // in stderr
	}{
		{nil, "--function is required"},
		{[]string{"--function", functionBin, "extra"}, `unexpected argument "extra"`},
		{[]string{"--function", filepath.Join(t.TempDir(), "missing")}, "no such file or directory: build it first"},
		{[]string{"--function", notExec}, "not an executable file"},
		{[]string{"--function", t.TempDir()}, "not an executable file"},
		{[]string{"--function", functionBin, "--extensions", notExec}, "--extensions " + notExec + ": not a directory"},
		{[]string{"--function", functionBin, "--timeout", "500ms"}, "--timeout 500ms: want 1s to 15m0s"},
		{[]string{"--function", functionBin, "--timeout", "16m"}, "--timeout 16m0s"},
		{[]string{"--function", functionBin, "--memory", "64"}, "--memory 64: want 128 to 10240"},
		{[]string{"--function", functionBin, "--addr", "not-an-address"}, "--addr not-an-address"},
		{[]string{"--function", functionBin, "--timeout", "soon"}, `invalid value "soon" for flag -timeout`},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		status := local(context.Background(), c.args, &stdout, &stderr)
		if status != exitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: status %d, stderr %q, want %d and %q", c.args, status, stderr.String(), exitUsage, c.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if status := run([]string{"local", "-h"}, nil, &stdout, &stderr); status != exitUsage || !strings.Contains(stderr.String(), "2015-03-31/functions/function/invocations") {
		t.Errorf("local -h: %d %s", status, stderr.String())
	}
}

// syncBuffer is a buffer the emulator's goroutines may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLocalServes runs the test function with the test extension, invokes
// it the way curl would, and stops it the way SIGINT does.
func TestLocalServes(t *testing.T) {
	extDir, outDir := t.TempDir(), t.TempDir()
	if err := os.Symlink(extensionBin, filepath.Join(extDir, "recorder")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EXT_OUT_DIR", outDir)
	t.Setenv("FN_CUSTOM", "from the shell")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout syncBuffer
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- local(ctx, []string{"--function", functionBin, "--extensions", extDir, "--timeout", "1s", "--memory", "512", "--addr", "127.0.0.1:0"}, &stdout, pw)
		pw.Close()
	}()
	url := ""
	var stderr syncBuffer
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		stderr.Write(append(sc.Bytes(), '\n'))
		if _, u, ok := strings.Cut(sc.Text(), "invoke at "); ok {
			url = u
			break
		}
	}
	go func() { _, _ = io.Copy(&stderr, pr) }()
	if url == "" {
		t.Fatalf("no address announced: %s", stderr.String())
	}

	resp, err := http.Post(url, "application/json", strings.NewReader(`{"log":"hello from curl"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"AWS_LAMBDA_FUNCTION_MEMORY_SIZE":"512"`) ||
		!strings.Contains(string(body), `"FN_CUSTOM":"from the shell"`) {
		t.Errorf("invoke: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Post(url, "application/json", strings.NewReader(`{"error":"bad input"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Amz-Function-Error") != "Unhandled" {
		t.Errorf("function error: %d %v", resp.StatusCode, resp.Header)
	}

	began := time.Now()
	cancel()
	select {
	case status := <-done:
		if status != 0 {
			t.Errorf("status %d: %s", status, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("local did not stop")
	}
	if took := time.Since(began); took > 2500*time.Millisecond {
		t.Errorf("stopping took %v", took)
	}
	log := stdout.String()
	for _, want := range []string{"INIT_START", "EXTENSION\tName: recorder", "START RequestId:", "hello from curl", "END RequestId:",
		"REPORT RequestId:", "Memory Size: 512 MB", "Status: error\tError Type: errorString", "recorder shutting down"} {
		if !strings.Contains(log, want) {
			t.Errorf("log stream lacks %q:\n%s", want, log)
		}
	}
	notes, err := os.ReadFile(filepath.Join(outDir, "recorder.jsonl"))
	if err != nil || !strings.Contains(string(notes), `"shutdownReason":"spindown"`) {
		t.Errorf("the extension's notes: %v\n%s", err, notes)
	}
}
