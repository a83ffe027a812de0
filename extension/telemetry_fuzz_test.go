package extension

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzTelemetry sends fuzzed bodies to the Telemetry API listener's handler
// and holds it to all or nothing: a batch it cannot read is refused with
// 400 and passes on no record; a batch it accepts passes on (or counts as
// dropped) exactly its platform.runtimeDone and platform.report records,
// in order, and nothing else.
func FuzzTelemetry(f *testing.F) {
	for _, s := range []string{
		`[{"time":"2026-01-02T15:00:03.000Z","type":"platform.runtimeDone","record":{"requestId":"t1","status":"timeout","metrics":{"durationMs":3000}}},` +
			`{"time":"2026-01-02T15:00:03.001Z","type":"platform.report","record":{"requestId":"t1","status":"timeout","metrics":{"durationMs":3000.5,"billedDurationMs":3001,"memorySizeMB":128,"maxMemoryUsedMB":40}}}]`,
		`[{"time":"2026-01-02T15:00:00.000Z","type":"platform.initStart","record":{"initializationType":"on-demand","phase":"init"}},` +
			`{"time":"2026-01-02T15:00:00.100Z","type":"platform.start","record":{"requestId":"r1","version":"$LATEST"}},` +
			`{"time":"2026-01-02T15:00:00.200Z","type":"function","record":"log line"}]`,
		`[{"type":"platform.report","record":"not an object"}]`,
		`[]`, `{}`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		const capacity = 4
		l := &telemetryListener{events: make(chan platformEvent, capacity)}
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.RemoteAddr = "127.0.0.1:40000"
		l.serve(w, req)
		got := len(l.events)
		var want []string
		var types []struct {
			Type string `json:"type"`
		}
		// One array and nothing after it: a batch with trailing data (the
		// seed a7d64ebcbdd47cf7) is refused whole.
		if json.Unmarshal(body, &types) == nil {
			for _, e := range types {
				if e.Type == "platform.runtimeDone" || e.Type == "platform.report" {
					want = append(want, e.Type)
				}
			}
		}
		switch w.Code {
		case http.StatusBadRequest:
			if got != 0 || l.dropped.Load() != 0 {
				t.Fatalf("refused batch passed on %d records, dropped %d", got, l.dropped.Load())
			}
		case http.StatusOK:
			if got+int(l.dropped.Load()) != len(want) {
				t.Fatalf("passed on %d and dropped %d of %d records", got, l.dropped.Load(), len(want))
			}
			for i := 0; i < got; i++ {
				if e := <-l.events; e.Type != want[i] {
					t.Fatalf("record %d: %s, want %s", i, e.Type, want[i])
				}
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
	})
}
