package extension

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/anomaly"
)

func wave(at time.Time) anomaly.Anomaly {
	return anomaly.Anomaly{Type: anomaly.AttackWave, Severity: anomaly.High, At: at, RequestID: "r1",
		Values: map[string]float64{"blocked": 10, "seconds": 9}, Message: "10 blocked events in 9 s"}
}

func TestAlertLineIsEMF(t *testing.T) {
	var out strings.Builder
	al := newAlerter("orders", &out, slog.New(slog.DiscardHandler), nil)
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	if !al.raise(wave(now), "quarantine until 2026-01-02T15:05:00Z", now) {
		t.Fatal("first alert held back")
	}
	var line struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		FunctionName, AnomalyType, Msg, Type, Severity, Action string
		Anomalies                                              int
		RequestID                                              string `json:"request_id"`
		Values                                                 map[string]float64
	}
	if err := json.Unmarshal([]byte(out.String()), &line); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	m := line.AWS.CloudWatchMetrics
	if line.AWS.Timestamp != now.UnixMilli() || len(m) != 1 || m[0].Namespace != "lambdarasp" ||
		len(m[0].Metrics) != 1 || m[0].Metrics[0].Name != "Anomalies" || m[0].Metrics[0].Unit != "Count" {
		t.Errorf("EMF directive: %+v", line.AWS)
	}
	for _, dim := range m[0].Dimensions[0] {
		if !strings.Contains(out.String(), `"`+dim+`":`) {
			t.Errorf("dimension %s missing from the line", dim)
		}
	}
	if line.FunctionName != "orders" || line.AnomalyType != "attack_wave" || line.Anomalies != 1 || line.Msg != "lambdarasp alert" ||
		line.Severity != "high" || line.RequestID != "r1" || line.Values["blocked"] != 10 || !strings.HasPrefix(line.Action, "quarantine") {
		t.Errorf("line %s", out.String())
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Errorf("want one line: %q", out.String())
	}
}

func TestAlertDedupAndRate(t *testing.T) {
	var out strings.Builder
	al := newAlerter("orders", &out, slog.New(slog.DiscardHandler), nil)
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	sent := 0
	for i := range 10 { // the same key, 10 s apart: one alert per dedup window
		if al.raise(wave(now), "", now.Add(time.Duration(i)*10*time.Second)) {
			sent++
		}
	}
	if sent != 1 {
		t.Errorf("%d alerts for one repeated key within %v, want 1", sent, dedupWindow)
	}
	if !al.raise(wave(now), "", now.Add(dedupWindow+time.Minute)) {
		t.Fatal("no alert once the dedup window passed")
	}
	if !strings.Contains(out.String(), `"suppressed":9`) || !strings.Contains(out.String(), `"Anomalies":10`) {
		t.Errorf("the held-back count is not carried: %s", out.String())
	}

	// Distinct subjects of one type: rateBurst at once, then one a minute.
	sent = 0
	for i := range 20 {
		a := anomaly.Anomaly{Type: anomaly.Attacker, Severity: anomaly.High, At: now, Subject: "203.0.113." + string(rune('a'+i))}
		if al.raise(a, "", now) {
			sent++
		}
	}
	if sent != rateBurst {
		t.Errorf("%d attacker alerts at once, want the burst %d", sent, rateBurst)
	}
	if !al.raise(anomaly.Anomaly{Type: anomaly.Attacker, Subject: "x"}, "", now.Add(rateEvery)) {
		t.Error("no token after a minute")
	}
	// Decisions are always announced.
	if !al.raise(anomaly.Anomaly{Type: anomaly.Attacker, Subject: "y"}, "block_ip y until …", now.Add(rateEvery)) {
		t.Error("an alert carrying a decision was held back")
	}
	// So is what the self-check finds, past the burst and repeated.
	for i := range 2 * rateBurst {
		a := anomaly.Anomaly{Type: envSecret, Severity: anomaly.Medium, Subject: "SECRET_" + string(rune('A'+i%3))}
		if !al.raise(a, "", now) {
			t.Fatalf("self-check alert %d (%s) held back", i, a.Subject)
		}
	}
	out.Reset()
	al.flushCounts(now)
	if !strings.Contains(out.String(), `"AnomalyType":"attacker"`) || !strings.Contains(out.String(), "lambdarasp suppressed anomalies") {
		t.Errorf("held-back counts not flushed: %s", out.String())
	}
}

// A repeat that carries a decision is alerted; what is held back is
// counted once, into the next alert or else the shutdown line.
func TestAlertHeldBackCounts(t *testing.T) {
	var out strings.Builder
	al := newAlerter("orders", &out, slog.New(slog.DiscardHandler), nil)
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	al.raise(wave(now), "", now)
	al.raise(wave(now), "", now)
	if !al.raise(wave(now), "quarantine until …", now) || !strings.Contains(out.String(), `"Anomalies":2,`) {
		t.Fatalf("a repeat carrying a decision: %s; want it alerted with the one held back", out.String())
	}
	for range 3 {
		al.raise(wave(now), "", now)
	}
	al.raise(anomaly.Anomaly{Type: anomaly.Attacker, Subject: "x"}, "", now) // alerted: nothing held back
	out.Reset()
	al.flushCounts(now)
	al.flushCounts(now) // nothing more
	if strings.Count(out.String(), "\n") != 1 || !strings.Contains(out.String(), `"AnomalyType":"attack_wave","Anomalies":3,`) {
		t.Errorf("shutdown lines: %s; want one, attack_wave, 3 held back", out.String())
	}
}

func TestWebhookRetriesAreBounded(t *testing.T) {
	for _, c := range []struct {
		fail, attempts, delivered int
		status                    int
	}{
		{fail: 0, attempts: 1, delivered: 1},
		{fail: 2, attempts: 3, delivered: 1},
		{fail: 100, attempts: maxAttempts, delivered: 0},
	} {
		h := newHook(t, c.fail)
		w := newWebhook(h.URL, "json", h.Client(), slog.New(slog.DiscardHandler))
		w.enqueue(Alert{Type: anomaly.Timeout, Message: "x"})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		w.flush(ctx)
		cancel()
		if h.attempts != c.attempts || len(h.received()) != c.delivered || len(w.queue) != 0 {
			t.Errorf("failing %d times: %d attempts, %d delivered, %d queued; want %d, %d, 0",
				c.fail, h.attempts, len(h.received()), len(w.queue), c.attempts, c.delivered)
		}
	}
}

func TestSlackBody(t *testing.T) {
	w := newWebhook("https://hooks.slack.com/services/T/B/X", "slack", nil, slog.New(slog.DiscardHandler))
	b, err := w.body(Alert{Function: "orders", Type: anomaly.AttackWave, Severity: anomaly.High, Message: "10 blocked events in 9 s",
		Values: map[string]float64{"blocked": 10}, Action: "quarantine until 2026-01-02T15:05:00Z", RequestID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 {
		t.Fatalf("%s: want {\"text\": …}", b)
	}
	for _, want := range []string{"attack_wave", "orders", "10 blocked events", "quarantine until", "blocked=10", "r1"} {
		if !strings.Contains(m["text"], want) {
			t.Errorf("text %q lacks %q", m["text"], want)
		}
	}
}
