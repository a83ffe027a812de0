package emulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/testbin"
)

// The binaries TestMain builds: testdata/function (an unmodified
// aws-lambda-go lambda.Start main), testdata/extension (a standard
// library extension that writes down what it receives) and
// testdata/protected (a function wrapped in protect.Handler).
var functionBin, extensionBin, protectedBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "emulator-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bin")
	if err := testbin.Build(bin, "./testdata/function", "./testdata/extension", "./testdata/protected"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	functionBin, extensionBin, protectedBin = filepath.Join(bin, "function"), filepath.Join(bin, "extension"), filepath.Join(bin, "protected")
	return m.Run()
}

// extensionsDir returns a new extensions directory holding the test
// extension under each of names, and the directory the extensions write
// their notes to.
func extensionsDir(t *testing.T, names ...string) (dir, outDir string) {
	t.Helper()
	dir, outDir = t.TempDir(), t.TempDir()
	if err := symlinkAll(dir, names); err != nil {
		t.Fatal(err)
	}
	return dir, outDir
}

// symlinkAll puts the test extension into dir under each of names.
func symlinkAll(dir string, names []string) error {
	for _, n := range names {
		if err := os.Symlink(extensionBin, filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// start starts an emulator for the test function and closes it at the end
// of the test.
func start(t *testing.T, cfg Config) *Emulator {
	t.Helper()
	if cfg.Function == "" {
		cfg.Function = functionBin
	}
	if testing.Verbose() && cfg.Logs == nil {
		cfg.Logs = testWriter{t}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	em, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = em.Close() })
	return em
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func invoke(t *testing.T, em *Emulator, payload string, opts ...InvokeOption) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := em.Invoke(ctx, []byte(payload), opts...)
	if err != nil {
		t.Fatalf("Invoke(%s): %v", payload, err)
	}
	return res
}

// note is one line an extension wrote.
type note struct {
	Kind   string          `json:"kind"`
	At     int64           `json:"at"`
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
	Env    map[string]string
}

func (n note) time() time.Time { return time.Unix(0, n.At) }

// notes reads what extension name wrote to outDir.
func notes(t *testing.T, outDir, name string) []note {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(outDir, name+".jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // killed before it wrote anything
	}
	if err != nil {
		t.Fatal(err)
	}
	var ns []note
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var n note
		if err := json.Unmarshal(sc.Bytes(), &n); err != nil {
			t.Fatalf("%s: %v: %s", name, err, sc.Text())
		}
		ns = append(ns, n)
	}
	return ns
}

// received is every telemetry record the extension got, in order.
func received(t *testing.T, ns []note) []Record {
	t.Helper()
	var rs []Record
	for _, n := range ns {
		if n.Kind != "telemetry" {
			continue
		}
		var batch []Record
		if err := json.Unmarshal(n.Body, &batch); err != nil {
			t.Fatalf("telemetry batch: %v: %s", err, n.Body)
		}
		rs = append(rs, batch...)
	}
	return rs
}

// events is the Extensions API events the extension got.
func events(t *testing.T, ns []note) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, n := range ns {
		if n.Kind != "event" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal(n.Body, &ev); err != nil {
			t.Fatalf("event: %v: %s", err, n.Body)
		}
		evs = append(evs, ev)
	}
	return evs
}

// platform is the types of the platform records among rs, in order.
func platform(rs []Record) []string {
	var out []string
	for _, r := range rs {
		if strings.HasPrefix(r.Type, "platform.") {
			out = append(out, r.Type)
		}
	}
	return out
}

// lifecycle is the types of the platform records among rs, in order, but
// for platform.telemetrySubscription: an extension subscribes while the
// runtime initialises, so where it lands among the runtime's events is a
// race, in Lambda too. Each subscription must come between an initStart and
// the initReport that follows.
func lifecycle(t *testing.T, rs []Record) []string {
	t.Helper()
	var out []string
	initOpen := false
	for _, typ := range platform(rs) {
		switch typ {
		case recordSubscription:
			if !initOpen {
				t.Errorf("%s outside init: %v", typ, platform(rs))
			}
			continue
		case recordInitStart:
			initOpen = true
		case recordInitReport:
			initOpen = false
		}
		out = append(out, typ)
	}
	return out
}

// body decodes a record's body.
func body(t *testing.T, r Record) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Record, &m); err != nil {
		t.Fatalf("%s: %v: %s", r.Type, err, r.Record)
	}
	return m
}

// find returns the records of type typ.
func find(rs []Record, typ string) []Record {
	var out []Record
	for _, r := range rs {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// logLines returns the log lines of type typ ("function" or "extension").
func logLines(t *testing.T, rs []Record, typ string) []string {
	t.Helper()
	var out []string
	for _, r := range find(rs, typ) {
		var s string
		if err := json.Unmarshal(r.Record, &s); err != nil {
			t.Fatalf("%s record: %v", typ, err)
		}
		out = append(out, s)
	}
	return out
}
