package emulator

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseSubscription(t *testing.T) {
	const dest = `"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243/telemetry"}`
	cases := []struct {
		name  string
		body  string
		err   string // substring of the error; "" for success
		check func(*subscription) bool
	}{
		{"defaults", `{"schemaVersion":"2022-12-13","types":["platform"],` + dest + `}`, "", func(s *subscription) bool {
			return s.maxItems == 10_000 && s.maxBytes == 262_144 && s.timeout == time.Second && s.url == "http://127.0.0.1:4243/telemetry"
		}},
		{"2025-01-29", `{"schemaVersion":"2025-01-29","types":["function","extension"],` + dest + `}`, "", func(s *subscription) bool {
			return slices.Equal(s.types, []string{"function", "extension"})
		}},
		{"2022-07-01", `{"schemaVersion":"2022-07-01","types":["platform"],` + dest + `}`, "", nil},
		{"lower bounds", `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},` + dest + `}`, "", func(s *subscription) bool {
			return s.maxItems == 1000 && s.maxBytes == 262144 && s.timeout == 25*time.Millisecond
		}},
		{"upper bounds", `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":10000,"maxBytes":1048576,"timeoutMs":30000},` + dest + `}`, "", func(s *subscription) bool {
			return s.maxItems == 10000 && s.maxBytes == 1048576 && s.timeout == 30*time.Second
		}},
		{"duplicate types", `{"schemaVersion":"2022-12-13","types":["platform","platform"],` + dest + `}`, "", func(s *subscription) bool {
			return len(s.types) == 1
		}},
		{"sandbox host", `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox:9999"}}`, "", func(s *subscription) bool {
			return s.url == "http://127.0.0.1:9999"
		}},
		{"not JSON", `{`, "not valid JSON", nil},
		{"no schema", `{"types":["platform"],` + dest + `}`, "schemaVersion is required", nil},
		{"unknown schema", `{"schemaVersion":"2023-01-01","types":["platform"],` + dest + `}`, `schemaVersion "2023-01-01"`, nil},
		{"no types", `{"schemaVersion":"2022-12-13",` + dest + `}`, "types is required", nil},
		{"unknown type", `{"schemaVersion":"2022-12-13","types":["logs"],` + dest + `}`, `types: "logs"`, nil},
		{"no destination", `{"schemaVersion":"2022-12-13","types":["platform"]}`, "destination is required", nil},
		{"maxItems low", `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":999},` + dest + `}`, "buffering.maxItems 999: must be between 1000 and 10000", nil},
		{"maxItems high", `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":10001},` + dest + `}`, "buffering.maxItems 10001", nil},
		{"maxBytes low", `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxBytes":262143},` + dest + `}`, "buffering.maxBytes 262143: must be between 262144 and 1048576", nil},
		{"maxBytes high", `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxBytes":1048577},` + dest + `}`, "buffering.maxBytes 1048577", nil},
		{"timeoutMs low", `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"timeoutMs":24},` + dest + `}`, "buffering.timeoutMs 24: must be between 25 and 30000", nil},
		{"timeoutMs high", `{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"timeoutMs":30001},` + dest + `}`, "buffering.timeoutMs 30001", nil},
		{"TCP", `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"TCP","URI":"sandbox.localdomain:4243"}}`, "HTTP only", nil},
		{"no protocol", `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"URI":"http://sandbox.localdomain:4243"}}`, "destination.protocol is required", nil},
		{"no URI", `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP"}}`, "destination.URI is required", nil},
		{"https", `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"https://sandbox.localdomain:4243"}}`, "not \"https\"", nil},
		{"outside host", `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://example.com:4243"}}`, "inside the execution environment", nil},
		{"no port", `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain/x"}}`, "needs a port", nil},
		{"reserved port", `{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:9001"}}`, "reserved", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := parseSubscription([]byte(c.body))
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("error %v, want one containing %q", err, c.err)
			case c.check != nil && !c.check(s):
				t.Errorf("parsed %+v", s)
			}
		})
	}
}

// listener is a telemetry destination that hands every batch to the test.
type listener struct {
	*httptest.Server
	batches chan []Record
	mu      sync.Mutex
	fail    int // answer 500 to this many posts first
}

func newListener(t *testing.T) *listener {
	l := &listener{batches: make(chan []Record, 100)}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		l.mu.Lock()
		failing := l.fail > 0
		l.fail--
		l.mu.Unlock()
		if failing {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var batch []Record
		if err := json.Unmarshal(b, &batch); err != nil {
			t.Errorf("batch: %v: %s", err, b)
		}
		l.batches <- batch
	}))
	t.Cleanup(l.Close)
	return l
}

// next waits for the next batch.
func (l *listener) next(t *testing.T) []Record {
	t.Helper()
	select {
	case b := <-l.batches:
		return b
	case <-time.After(5 * time.Second):
		t.Fatal("no batch")
		return nil
	}
}

// none checks that no batch comes within d.
func (l *listener) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case b := <-l.batches:
		t.Fatalf("unexpected batch of %d", len(b))
	case <-time.After(d):
	}
}

// testHub returns a hub with one subscription to l of the given types and
// buffering.
func testHub(t *testing.T, l *listener, types []string, items, bytes int, timeout time.Duration) (*Emulator, *hub) {
	e := &Emulator{cfg: Config{MaxRecords: 100_000}, log: slog.New(slog.DiscardHandler), delivered: map[string][]Record{}}
	h := newHub(e)
	t.Cleanup(h.stop)
	h.subscribe(&subscription{name: "sub", types: types, maxItems: items, maxBytes: bytes, timeout: timeout, url: l.URL})
	return e, h
}

func record(typ string, body any) Record {
	raw, _ := json.Marshal(body)
	return Record{Time: time.Now(), Type: typ, Record: raw}
}

// TestBufferingMaxItems: a batch goes as soon as it holds maxItems records;
// the rest waits for the timeout, or a flush.
func TestBufferingMaxItems(t *testing.T) {
	l := newListener(t)
	_, h := testHub(t, l, []string{"function"}, 1000, 1_048_576, 30*time.Second)
	for i := range 2500 {
		h.add(record(recordFunction, i))
	}
	if n := len(l.next(t)); n != 1000 {
		t.Fatalf("first batch %d records", n)
	}
	if n := len(l.next(t)); n != 1000 {
		t.Fatalf("second batch %d records", n)
	}
	l.none(t, 100*time.Millisecond)
	h.flush(context.Background())
	last := l.next(t)
	var n int
	if len(last) != 500 || json.Unmarshal(last[499].Record, &n) != nil || n != 2499 {
		t.Fatalf("flushed batch of %d ending with %s", len(last), last[len(last)-1].Record)
	}
}

// TestBufferingMaxBytes: a batch goes once it holds maxBytes.
func TestBufferingMaxBytes(t *testing.T) {
	l := newListener(t)
	_, h := testHub(t, l, []string{"function"}, 10_000, 262_144, 30*time.Second)
	line := strings.Repeat("x", 100_000)
	for range 3 {
		h.add(record(recordFunction, line))
	}
	if n := len(l.next(t)); n != 3 {
		t.Fatalf("batch of %d records of 100 KB, want 3 (the one that reaches 256 KB included)", n)
	}
}

// TestBufferingTimeout: a lone record goes timeoutMs after it was produced,
// not before.
func TestBufferingTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	l := newListener(t)
	_, h := testHub(t, l, []string{"platform"}, 1000, 262_144, timeout)
	r := record(recordStart, startRecord{RequestID: "r"})
	h.add(r)
	b := l.next(t)
	if waited := time.Since(r.Time); waited < timeout || waited > timeout+time.Second || len(b) != 1 {
		t.Fatalf("batch of %d after %v, want 1 after %v", len(b), waited, timeout)
	}
}

// TestDeliveryFilterFreezeRetry: only subscribed types go, records from
// before the subscription go too, nothing goes while frozen, and a failed
// post is retried.
func TestDeliveryFilterFreezeRetry(t *testing.T) {
	l := newListener(t)
	e := &Emulator{cfg: Config{MaxRecords: 100_000}, log: slog.New(slog.DiscardHandler), delivered: map[string][]Record{}}
	h := newHub(e)
	t.Cleanup(h.stop)
	h.add(record(recordInitStart, initStartRecord{Phase: "init"}))
	h.add(record(recordFunction, "before"))
	h.subscribe(&subscription{name: "sub", types: []string{"platform"}, maxItems: 1000, maxBytes: 262_144, timeout: 25 * time.Millisecond, url: l.URL})
	b := l.next(t)
	if len(b) != 1 || b[0].Type != recordInitStart {
		t.Fatalf("first batch %v", b)
	}

	h.setFrozen(true)
	h.add(record(recordReport, reportRecord{RequestID: "r1"}))
	l.none(t, 200*time.Millisecond)
	l.mu.Lock()
	l.fail = 2
	l.mu.Unlock()
	h.setFrozen(false)
	b = l.next(t)
	if len(b) != 1 || b[0].Type != recordReport {
		t.Fatalf("batch after thaw %v", b)
	}
	l.none(t, 100*time.Millisecond)
	if got := e.Delivered("sub"); len(got) != 2 || got[1].Type != recordReport {
		t.Errorf("Delivered %v", got)
	}
}

// TestTelemetrySchemaVersions: extensions subscribed with each schema
// version get the same stream; one with buffering out of bounds is refused
// with AWS's 400 and gets nothing.
func TestTelemetrySchemaVersions(t *testing.T) {
	dir, out := extensionsDir(t, "old", "new", "bad")
	em := start(t, Config{ExtensionsDir: dir, Env: []string{"EXT_OUT_DIR=" + out,
		"EXT_OLD_SCHEMA=2022-12-13", "EXT_NEW_SCHEMA=2025-01-29", "EXT_NEW_TYPES=platform", "EXT_BAD_TIMEOUT_MS=10"}})
	invoke(t, em, `{"log":"hi"}`)
	_ = em.Close()

	for _, n := range notes(t, out, "bad") {
		switch n.Kind {
		case "subscribe":
			if n.Status != http.StatusBadRequest {
				t.Errorf("bad subscription answered %d %s", n.Status, n.Body)
			}
			assertJSON(t, "bad subscription", n.Body, `{"errorType":"ValidationError","errorMessage":"buffering.timeoutMs 10: must be between 25 and 30000"}`)
		case "telemetry":
			t.Errorf("the refused subscriber got telemetry: %s", n.Body)
		}
	}
	old, new := received(t, notes(t, out, "old")), received(t, notes(t, out, "new"))
	if !slices.Equal(platform(old), platform(new)) || len(platform(new)) == 0 {
		t.Errorf("2022-12-13 got %v\n2025-01-29 got %v", platform(old), platform(new))
	}
	if len(new) != len(platform(new)) {
		t.Errorf("the platform-only subscriber got log lines: %v", new)
	}
	if !slices.Contains(logLines(t, old, recordFunction), "hi") {
		t.Errorf("old got function lines %q", logLines(t, old, recordFunction))
	}
}
