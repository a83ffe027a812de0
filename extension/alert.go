package extension

import (
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/anomaly"
)

// Alert limits. An anomaly whose key (type and subject) was alerted less
// than dedupWindow ago is counted, not alerted; each type may alert
// rateBurst times at once and then once per rateEvery. What is held back
// is counted into the key's next alert ("suppressed"), and at shutdown
// into a last metrics line.
const (
	dedupWindow = 5 * time.Minute
	rateBurst   = 5
	rateEvery   = time.Minute
	maxKeys     = 512 // keys remembered for deduplication
)

// Alert is one alert as the sinks see it.
type Alert struct {
	Function   string             `json:"function"`
	Type       anomaly.Type       `json:"type"`
	Severity   anomaly.Severity   `json:"severity"`
	At         time.Time          `json:"at"`
	RequestID  string             `json:"request_id,omitempty"`
	Subject    string             `json:"subject,omitempty"`
	Message    string             `json:"message"`
	Values     map[string]float64 `json:"values"`
	Action     string             `json:"action,omitempty"`
	Suppressed int                `json:"suppressed"`
}

// alerter deduplicates and rate-limits anomalies, writes one line per
// alert to stdout and queues the webhook's deliveries. It belongs to the
// event loop's goroutine.
type alerter struct {
	function string
	out      io.Writer
	log      *slog.Logger
	hook     *webhook    // nil: no webhook
	sink     func(Alert) // nil: no OTLP logs

	keys    map[string]*keyState
	buckets map[anomaly.Type]*bucket
}

type keyState struct {
	last       time.Time
	suppressed int
	typ        anomaly.Type
}

// bucket is a token bucket: tokens refill one per rateEvery up to rateBurst.
type bucket struct {
	tokens float64
	at     time.Time
}

func newAlerter(function string, out io.Writer, log *slog.Logger, hook *webhook) *alerter {
	return &alerter{function: function, out: out, log: log, hook: hook,
		keys: map[string]*keyState{}, buckets: map[anomaly.Type]*bucket{}}
}

// raise alerts a, unless it is a repeat or its type is over its rate; it
// reports whether it alerted. action is what the policy did about it.
func (al *alerter) raise(a anomaly.Anomaly, action string, now time.Time) bool {
	key := a.Key()
	k := al.keys[key]
	if k == nil {
		if len(al.keys) >= maxKeys {
			al.forget(now)
		}
		k = &keyState{typ: a.Type}
		al.keys[key] = k
	}
	// A decision is always announced: it changes what the function does.
	// So is what the self-check finds, once per start, whole.
	whole := action != "" || slices.Contains(selfCheckTypes, a.Type)
	if !whole && !k.last.IsZero() && now.Sub(k.last) < dedupWindow {
		k.suppressed++
		return false
	}
	if !whole && !al.take(a.Type, now) {
		k.suppressed++
		return false
	}
	alert := Alert{Function: al.function, Type: a.Type, Severity: a.Severity, At: a.At, RequestID: a.RequestID,
		Subject: a.Subject, Message: a.Message, Values: a.Values, Action: action, Suppressed: k.suppressed}
	k.last, k.suppressed = now, 0
	al.emit(alert, 1+alert.Suppressed, "lambdarasp alert")
	if al.hook != nil {
		al.hook.enqueue(alert)
	}
	if al.sink != nil {
		al.sink(alert)
	}
	return true
}

func (al *alerter) take(t anomaly.Type, now time.Time) bool {
	b := al.buckets[t]
	if b == nil {
		b = &bucket{tokens: rateBurst, at: now}
		al.buckets[t] = b
	}
	b.tokens = min(rateBurst, b.tokens+now.Sub(b.at).Seconds()/rateEvery.Seconds())
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// forget drops the keys alerted longest ago with nothing held back.
func (al *alerter) forget(now time.Time) {
	for key, k := range al.keys {
		if k.suppressed == 0 && now.Sub(k.last) >= dedupWindow {
			delete(al.keys, key)
		}
	}
	for key := range al.keys { // still full: drop any
		if len(al.keys) < maxKeys {
			break
		}
		delete(al.keys, key)
	}
}

// flushCounts writes, at shutdown, one metrics line per key whose
// anomalies were all held back since its last alert, so the EMF counts
// stay whole.
func (al *alerter) flushCounts(now time.Time) {
	for _, k := range al.keys {
		if k.suppressed == 0 {
			continue
		}
		al.emit(Alert{Function: al.function, Type: k.typ, At: now, Message: "anomalies held back by deduplication or rate limiting",
			Suppressed: k.suppressed}, k.suppressed, "lambdarasp suppressed anomalies")
		k.suppressed = 0
	}
}

// emfLine is an alert as one CloudWatch Logs line: the Embedded Metric
// Format directive makes CloudWatch count Anomalies per function and type.
type emfLine struct {
	AWS struct {
		Timestamp         int64       `json:"Timestamp"`
		CloudWatchMetrics []emfMetric `json:"CloudWatchMetrics"`
	} `json:"_aws"`
	FunctionName string       `json:"FunctionName"`
	AnomalyType  anomaly.Type `json:"AnomalyType"`
	Anomalies    int          `json:"Anomalies"`
	Msg          string       `json:"msg"`
	Alert
}

type emfMetric struct {
	Namespace  string         `json:"Namespace"`
	Dimensions [][]string     `json:"Dimensions"`
	Metrics    []emfMetricDef `json:"Metrics"`
}

type emfMetricDef struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

const emfNamespace = "lambdarasp"

func (al *alerter) emit(a Alert, count int, msg string) {
	l := emfLine{FunctionName: a.Function, AnomalyType: a.Type, Anomalies: count, Msg: msg, Alert: a}
	l.AWS.Timestamp = a.At.UnixMilli()
	l.AWS.CloudWatchMetrics = []emfMetric{{Namespace: emfNamespace, Dimensions: [][]string{{"FunctionName", "AnomalyType"}},
		Metrics: []emfMetricDef{{Name: "Anomalies", Unit: "Count"}}}}
	b, err := json.Marshal(l)
	if err != nil {
		al.log.Error("lambdarasp alert not encoded", "error", err.Error())
		return
	}
	_, _ = al.out.Write(append(b, '\n'))
}
