package extension

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI plays the Extensions and Telemetry APIs for one extension: the
// test hands it the events next returns.
type fakeAPI struct {
	srv    *httptest.Server
	events chan event

	mu         sync.Mutex
	registered []string // names
	subscribed []string // destination URIs
	refuse     bool     // answer the subscription 403
	errors     []string // error types posted to init/error and exit/error
	nexts      int      // next calls
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{events: make(chan event, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2020-01-01/extension/register", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.registered = append(f.registered, r.Header.Get("Lambda-Extension-Name"))
		f.mu.Unlock()
		w.Header().Set("Lambda-Extension-Identifier", "ext-1")
		w.Write([]byte(`{"functionName":"orders","functionVersion":"$LATEST","handler":"bootstrap"}`))
	})
	mux.HandleFunc("GET /2020-01-01/extension/event/next", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.nexts++
		f.mu.Unlock()
		select {
		case ev := <-f.events:
			json.NewEncoder(w).Encode(ev)
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("PUT /2022-07-01/telemetry", func(w http.ResponseWriter, r *http.Request) {
		var sub struct {
			Destination struct{ URI string } `json:"destination"`
		}
		json.NewDecoder(r.Body).Decode(&sub)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.refuse {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"errorType":"Telemetry.SubscriptionClosed","errorMessage":"no"}`))
			return
		}
		f.subscribed = append(f.subscribed, sub.Destination.URI)
		w.WriteHeader(http.StatusOK)
	})
	record := func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.errors = append(f.errors, r.Header.Get("Lambda-Extension-Function-Error-Type"))
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}
	mux.HandleFunc("POST /2020-01-01/extension/init/error", record)
	mux.HandleFunc("POST /2020-01-01/extension/exit/error", record)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// waiting reports whether the extension has called next n times.
func (f *fakeAPI) waiting(n int) func() bool {
	return func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.nexts >= n
	}
}

func (f *fakeAPI) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeAPI) invoke(id string) {
	f.events <- event{EventType: "INVOKE", RequestID: id, DeadlineMs: time.Now().Add(3 * time.Second).UnixMilli()}
}

func (f *fakeAPI) shutdown(deadline time.Time) {
	f.events <- event{EventType: "SHUTDOWN", ShutdownReason: "spindown", DeadlineMs: deadline.UnixMilli()}
}

// freeUDP returns a loopback UDP address nobody listens on.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// syncBuffer is a bytes.Buffer safe for the extension's and the test's
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig is a Config for an extension under f, with its own ports and
// files, and its output in stdout and logs.
func testConfig(t *testing.T, f *fakeAPI, stdout, logs io.Writer) Config {
	t.Helper()
	dir := t.TempDir()
	return Config{
		RuntimeAPI:    f.addr(),
		FunctionName:  "orders",
		ReportAddr:    freeUDP(t),
		TelemetryPort: -1,
		DecisionsFile: dir + "/decisions.json",
		PolicyFile:    dir + "/policy.json",
		Stdout:        stdout,
		Logger:        slog.New(slog.NewJSONHandler(logs, nil)),
		HostsFile:     dir + "/no-hosts",
	}
}

// running is Run in a goroutine.
type running struct {
	done chan struct{} // closed when Run has returned
	err  error
}

// run starts Run in a goroutine; the test's cleanup cancels its context
// and waits for it.
func run(t *testing.T, cfg Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{done: make(chan struct{})}
	go func() {
		r.err = Run(ctx, cfg)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return r
}

// wait returns Run's result, failing the test if it takes longer than
// within.
func wait(t *testing.T, r *running, within time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(within):
		t.Fatalf("Run still running after %v", within)
	}
	return nil
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 5 s", what)
}
