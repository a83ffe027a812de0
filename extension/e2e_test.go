package extension_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/extension"
	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/emulator"
	"github.com/lambdarasp/lambdarasp/internal/testbin"
)

// The real binaries: the extension as the layer ships it
// (cmd/lambdarasp-extension, named lambdarasp in the extensions
// directory), a function wrapped in protect.Handler, and the command line
// (for lambdarasp digest).
var extensionBin, functionBin, cliBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "extension-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := testbin.Build(dir, "./testdata/function", "../cmd/lambdarasp-extension", "../cmd/lambdarasp"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	functionBin, extensionBin, cliBin = filepath.Join(dir, "function"), filepath.Join(dir, "lambdarasp-extension"), filepath.Join(dir, "lambdarasp")
	return m.Run()
}

// setup is one test's environment: its own report port, decisions and
// policy files, webhook, and log stream.
type setup struct {
	dir, extensions, decisions, policy string
	function                           string // the function's executable: functionBin unless a test sets it
	env                                []string
	logs                               *extension.SyncBuffer // the environment's log stream
	diag                               *extension.SyncBuffer // the emulator's own diagnostics
	hook                               *webhook
	timeout                            time.Duration // the function's; 0: the emulator's default, 3 s
}

func newSetup(t *testing.T, policy string, withExtension bool) *setup {
	t.Helper()
	s := &setup{dir: t.TempDir(), logs: &extension.SyncBuffer{}, diag: &extension.SyncBuffer{}}
	s.decisions = filepath.Join(s.dir, "decisions.json")
	s.policy = filepath.Join(s.dir, "policy.json")
	if err := os.WriteFile(s.policy, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	if withExtension {
		s.extensions = filepath.Join(s.dir, "extensions")
		if err := os.Mkdir(s.extensions, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(extensionBin, filepath.Join(s.extensions, "lambdarasp")); err != nil {
			t.Fatal(err)
		}
	}
	s.hook = newWebhook(t)
	s.env = []string{
		"LAMBDARASP_REPORT_ADDR=" + extension.FreeUDP(t),
		"LAMBDARASP_TELEMETRY_PORT=0",
		"LAMBDARASP_DECISIONS_FILE=" + s.decisions,
		"LAMBDARASP_POLICY_FILE=" + s.policy,
		"LAMBDARASP_WEBHOOK_URL=" + s.hook.URL + "/hook",
	}
	return s
}

func (s *setup) start(t *testing.T) *emulator.Emulator {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fn := s.function
	if fn == "" {
		fn = functionBin
	}
	em, err := emulator.Start(ctx, emulator.Config{Function: fn, ExtensionsDir: s.extensions, Env: s.env, Timeout: s.timeout,
		Logs: s.logs, Logger: slog.New(slog.NewJSONHandler(s.diag, nil)), FunctionName: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = em.Close()
		if t.Failed() {
			t.Logf("environment log:\n%s", s.logs.String())
		}
	})
	return em
}

// webhook records what the extension posts.
type webhook struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		w.bodies = append(w.bodies, string(b))
		w.mu.Unlock()
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhook) received() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.bodies, "\n")
}

func event(t *testing.T, name, ip, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "203.0.113.7", ip)
	if path != "" {
		s = strings.ReplaceAll(s, `"/orders"`, `"`+path+`"`)
	}
	return []byte(s)
}

// invoke runs one invocation of payload under em.
func invoke(t *testing.T, em *emulator.Emulator, payload []byte) *emulator.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := em.Invoke(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// status invokes em with payload and returns the HTTP status the function
// answered.
func status(t *testing.T, em *emulator.Emulator, payload []byte) int {
	t.Helper()
	res := invoke(t, em, payload)
	if res.FunctionError != "" {
		return -1
	}
	var r struct {
		StatusCode int `json:"statusCode"`
	}
	if err := json.Unmarshal(res.Payload, &r); err != nil {
		t.Fatalf("%v: %s", err, res.Payload)
	}
	return r.StatusCode
}

func expect(t *testing.T, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: status %d, want %d", what, got, want)
	}
}

const clean, sqli = "apigw-http-clean.json", "apigw-http-sqli-query.json"

// The product end to end, real processes: the extension receives the
// wrapper's reports and the platform's telemetry, sees an attack wave,
// alerts (stdout with EMF, webhook), publishes a quarantine, and the
// wrapper then refuses clean invocations.
func TestQuarantineEndToEnd(t *testing.T) {
	s := newSetup(t, `{"version":1,"rules":[{"anomaly":"attack_wave","action":"quarantine","ttl":"10m"}]}`, true)
	em := s.start(t)
	for i := range 3 {
		expect(t, "clean request", status(t, em, event(t, clean, "198.51.100.1", "")), 200)
		_ = i
	}
	// Ten attacks from ten addresses: a wave, but no single attacker.
	for i := range 10 {
		expect(t, "SQL injection", status(t, em, event(t, sqli, fmt.Sprintf("203.0.113.%d", 10+i), "")), 403)
	}
	expect(t, "clean request in quarantine", status(t, em, event(t, clean, "198.51.100.1", "")), 403)
	expect(t, "another clean request in quarantine", status(t, em, event(t, clean, "198.51.100.2", "/slow")), 403)

	d, err := decision.Read(s.decisions)
	if err != nil || d.Quarantine == nil || d.Quarantine.Reason != "attack_wave" {
		t.Fatalf("decisions file: %+v, %v", d, err)
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	logs := s.logs.String()
	for _, want := range []string{
		`"msg":"lambdarasp alert"`, `"AnomalyType":"attack_wave"`, `"CloudWatchMetrics"`, // the extension's stdout
		`"msg":"lambdarasp decision enforced"`, `"decision":"quarantine"`, // the wrapper's
		`"msg":"lambdarasp extension shut down"`, `"reports":15`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log stream lacks %s", want)
		}
	}
	if strings.Count(logs, `"msg":"lambdarasp decision enforced"`) != 2 {
		t.Errorf("want 2 refusals logged by the wrapper")
	}
	if got := s.hook.received(); !strings.Contains(got, `"type":"attack_wave"`) || !strings.Contains(got, `"action":"quarantine until`) {
		t.Errorf("webhook received %q", got)
	}
	reports := 0
	for _, r := range em.Delivered("lambdarasp") {
		if r.Type == "platform.report" {
			reports++
		}
	}
	if reports < 14 {
		t.Errorf("the extension's telemetry holds %d platform.report records, want the 15 invocations' (at least 14)", reports)
	}
}

// The extension is killed mid-run. Lambda (and the emulator) then reset
// the environment: the next invocation starts a new one, with a new
// extension. The wrapper keeps protecting throughout, and a decision the
// dead extension published still holds: a client IP it blocked stays
// blocked.
func TestExtensionKilled(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("finds the extension's process through /proc: Linux only")
	}
	s := newSetup(t, `{"version":1,"rules":[{"anomaly":"attacker","action":"block_ip","ttl":"10m"}],"block_ip_after":3}`, true)
	em := s.start(t)
	for range 3 {
		expect(t, "SQL injection", status(t, em, event(t, sqli, "203.0.113.66", "")), 403)
	}
	expect(t, "clean request from the attacker", status(t, em, event(t, clean, "203.0.113.66", "")), 403)
	expect(t, "clean request from someone else", status(t, em, event(t, clean, "198.51.100.1", "")), 200)

	// Killed while the environment is frozen between invocations.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := em.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	pid := processOf(t, extensionBin)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The emulator, as Lambda, takes the environment down when one of its
	// processes dies; wait for that, or the next invocation could race it
	// and fail with Extension.Crash, as it would in Lambda.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.diag.String(), "process exited"); {
		if time.Now().After(deadline) {
			t.Fatalf("the emulator did not see the extension die:\n%s", s.diag.String())
		}
		time.Sleep(5 * time.Millisecond)
	}

	expect(t, "clean request after the kill", status(t, em, event(t, clean, "198.51.100.1", "")), 200)
	expect(t, "SQL injection after the kill", status(t, em, event(t, sqli, "198.51.100.1", "")), 403)
	expect(t, "clean request from the blocked attacker after the kill", status(t, em, event(t, clean, "203.0.113.66", "")), 403)
	if next := processOf(t, extensionBin); next == pid {
		t.Errorf("the extension was not restarted")
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(s.logs.String(), `"msg":"lambdarasp extension ready"`); n != 2 {
		t.Errorf("%d extension starts, want 2 (the killed one and its replacement)", n)
	}
}

// A function deployed without the extension: a decisions file left in
// /tmp is not enforced, the rules protect on their own, and the wrapper
// says once that the extension is not running.
func TestWithoutExtension(t *testing.T) {
	s := newSetup(t, `{"version":1,"rules":[]}`, false)
	if err := decision.Write(s.decisions, decision.Decisions{Quarantine: &decision.Quarantine{Until: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	em := s.start(t)
	for range 3 {
		expect(t, "clean request", status(t, em, event(t, clean, "198.51.100.1", "")), 200)
		expect(t, "SQL injection", status(t, em, event(t, sqli, "203.0.113.9", "")), 403)
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(s.logs.String(), "lambdarasp extension not running"); n != 1 {
		t.Errorf("%d 'not running' lines, want 1", n)
	}
}

// Outbound calls end to end: the function calls out through
// protect.Client(); the extension receives the calls in the wrapper's
// reports, learns the destinations of the first 50, raises
// egress_new_destination for a new one, and its policy's deny_destination
// makes the wrapper refuse the next call there, while the known
// destination still works.
func TestEgressEndToEnd(t *testing.T) {
	var knownHits, newHits atomic.Int32
	known := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { knownHits.Add(1) }))
	defer known.Close()
	fresh := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { newHits.Add(1) }))
	defer fresh.Close()
	port := func(s *httptest.Server) string { return fmt.Sprint(s.Listener.Addr().(*net.TCPAddr).Port) }

	s := newSetup(t, `{"version":1,"rules":[{"anomaly":"egress_new_destination","action":"deny_destination","ttl":"1h"}]}`, true)
	s.env = append(s.env, "LAMBDARASP_EGRESS_INTERNAL=127.0.0.1") // the test's servers
	em := s.start(t)
	const learning = 50
	for range learning {
		expect(t, "call to the known destination", status(t, em, event(t, clean, "198.51.100.1", "/call/"+port(known))), 200)
	}
	expect(t, "first call to a new destination", status(t, em, event(t, clean, "198.51.100.1", "/call/"+port(fresh))), 200)
	expect(t, "second call to it, denied by the decision", status(t, em, event(t, clean, "198.51.100.1", "/call/"+port(fresh))), 502)
	expect(t, "the known destination, still", status(t, em, event(t, clean, "198.51.100.1", "/call/"+port(known))), 200)
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}

	if knownHits.Load() != learning+1 || newHits.Load() != 1 {
		t.Errorf("the known destination got %d calls, the new one %d; want %d and 1", knownHits.Load(), newHits.Load(), learning+1)
	}
	dest := "127.0.0.1:" + port(fresh)
	d, err := decision.Read(s.decisions)
	if err != nil || len(d.DeniedDestinations) != 1 || d.DeniedDestinations[0].Host != "127.0.0.1" || fmt.Sprint(d.DeniedDestinations[0].Port) != port(fresh) {
		t.Errorf("decisions file: %+v, %v", d, err)
	}
	logs := s.logs.String()
	for _, want := range []string{
		`"AnomalyType":"egress_new_destination"`, `"subject":"` + dest + `"`, `"action":"deny_destination ` + dest, // the extension's alert
		`"msg":"lambdarasp outbound finding"`, `"rule":100994`, `"host":"127.0.0.1","port":` + port(fresh), // the wrapper's refusal
		`"outbound_calls":53`, // every call reached the extension in a report, the refused one too
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log stream lacks %s", want)
		}
	}
	if n := strings.Count(logs, `"AnomalyType":"egress_new_destination"`); n != 1 {
		t.Errorf("%d egress_new_destination alerts, want 1", n)
	}
	if got := s.hook.received(); !strings.Contains(got, `"type":"egress_new_destination"`) {
		t.Errorf("webhook received %q", got)
	}
}

// processOf returns the pid of the process running the executable at
// path.
func processOf(t *testing.T, path string) int {
	t.Helper()
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		exe, err := os.Readlink(filepath.Join(d, "exe"))
		if err != nil || exe != want {
			continue
		}
		var pid int
		fmt.Sscanf(filepath.Base(d), "%d", &pid)
		if processAlive(pid) {
			return pid
		}
	}
	t.Fatalf("no process runs %s", path)
	return 0
}

// processAlive reports whether pid runs and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}
