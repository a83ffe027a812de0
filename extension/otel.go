package extension

import (
	"math"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/lambdarasp/lambdarasp/internal/anomaly"
	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/otlp"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// scopeName is the instrumentation scope of the extension's metrics and
// alert logs.
const scopeName = "github.com/lambdarasp/lambdarasp/extension"

// maxSeries bounds the attribute sets of one metric; past it, points go
// to one overflow series (otel.metric.overflow=true), as the SDK does.
const maxSeries = 256

// inspectBounds are the inspection duration histogram's bucket bounds, in
// seconds: 100 µs to 1 s.
var inspectBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// meters counts what the extension exports as metrics, from the reports,
// the anomalies and the decisions. Cumulative since the extension
// started: one series per execution environment (faas.instance).
type meters struct {
	start       time.Time
	invocations counter // lambdarasp.source, lambdarasp.action
	blocked     counter // lambdarasp.source, lambdarasp.rule
	calls       counter // server.address, server.port
	denied      counter // server.address, server.port
	anomalies   counter // lambdarasp.anomaly.type, lambdarasp.anomaly.severity
	inspect     map[string]*histogram
	inspectOver *histogram
	last        time.Time // the last export
}

// series is one attribute set, as (key, value) pairs.
type series [2][2]string

type counter struct {
	n    map[series]int64
	over int64
}

func (c *counter) add(s series, v int64) {
	if c.n == nil {
		c.n = map[series]int64{}
	}
	if _, ok := c.n[s]; !ok && len(c.n) >= maxSeries {
		c.over += v
		return
	}
	c.n[s] += v
}

type histogram struct {
	buckets       []uint64
	sum, min, max float64
	n             uint64
}

func (h *histogram) observe(v float64) {
	if h.buckets == nil {
		h.buckets = make([]uint64, len(inspectBounds)+1)
	}
	i := sort.SearchFloat64s(inspectBounds, v)
	h.buckets[i]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.sum += v
	h.n++
}

func newMeters(now time.Time) *meters {
	return &meters{start: now, inspect: map[string]*histogram{}, last: now}
}

// report counts one invocation's report.
func (m *meters) report(r *report.Report) {
	m.invocations.add(series{{"lambdarasp.source", r.Source}, {"lambdarasp.action", r.Action.String()}}, 1)
	if r.Action != report.Allow { // blocked, flagged or refused
		for _, id := range r.Rules {
			m.blocked.add(series{{"lambdarasp.source", r.Source}, {"lambdarasp.rule", strconv.Itoa(id)}}, 1)
		}
	}
	for _, o := range r.Outbound {
		s := series{{"server.address", o.Host}, {"server.port", strconv.Itoa(o.Port)}}
		m.calls.add(s, int64(o.Calls))
		if o.Denied > 0 {
			m.denied.add(s, int64(o.Denied))
		}
	}
	if r.InspectMicros > 0 {
		h := m.inspect[r.Source]
		if h == nil {
			if len(m.inspect) >= maxSeries {
				if m.inspectOver == nil {
					m.inspectOver = &histogram{}
				}
				h = m.inspectOver
			} else {
				h = &histogram{}
				m.inspect[r.Source] = h
			}
		}
		h.observe(float64(r.InspectMicros) / 1e6)
	}
}

func (m *meters) anomaly(a anomaly.Anomaly) {
	m.anomalies.add(series{{"lambdarasp.anomaly.type", string(a.Type)}, {"lambdarasp.anomaly.severity", string(a.Severity)}}, 1)
}

// OTLP metrics field numbers (opentelemetry/proto/metrics/v1).
const (
	mMetrics     = 2 // ScopeMetrics (otlp.Envelope writes the rest)
	mName        = 1 // Metric
	mDescription = 2
	mUnit        = 3
	mGauge       = 5
	mSum         = 7
	mHistogram   = 9
	mDataPoints  = 1 // Sum, Gauge, Histogram
	mTemporality = 2
	mMonotonic   = 3
	pAttrs       = 7 // NumberDataPoint
	pStart       = 2
	pTime        = 3
	pInt         = 6
	hAttrs       = 9 // HistogramDataPoint
	hCount       = 4
	hSum         = 5
	hBuckets     = 6
	hBounds      = 7
	hMin         = 11
	hMax         = 12
	cumulative   = 2
)

// encode writes the ExportMetricsServiceRequest of everything counted
// so far, the decisions in force and the relay's drops, at now.
func (m *meters) encode(resource []byte, now time.Time, d *decision.Decisions, dropped [len(signals)]int64) []byte {
	var w otlp.Buf
	env := w.Envelope(resource, scopeName)
	start, at := uint64(m.start.UnixNano()), uint64(now.UnixNano())
	sum := func(name, desc, unit string, c *counter) {
		if len(c.n) == 0 && c.over == 0 {
			return
		}
		mm := w.Begin(mMetrics)
		w.String(mName, name)
		w.String(mDescription, desc)
		w.String(mUnit, unit)
		s := w.Begin(mSum)
		keys := make([]series, 0, len(c.n))
		for k := range c.n {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return less(keys[i], keys[j]) })
		for _, k := range keys {
			point(&w, k[:], start, at, c.n[k])
		}
		if c.over > 0 {
			point(&w, overflowSeries, start, at, c.over)
		}
		w.Varint(mTemporality, cumulative)
		w.Varint(mMonotonic, 1)
		w.End(s)
		w.End(mm)
	}
	sum("lambdarasp.invocations", "Invocations seen by protect.Handler, by trigger and action", "{invocation}", &m.invocations)
	sum("lambdarasp.blocked", "Blocked (or, in detect mode, flagged) events, by trigger and rule", "{event}", &m.blocked)
	sum("lambdarasp.outbound.calls", "Outbound calls through protect.Transport and protect.DialContext, by destination", "{call}", &m.calls)
	sum("lambdarasp.outbound.denied", "Outbound calls refused (or flagged) by the egress rules and decisions, by destination", "{call}", &m.denied)
	sum("lambdarasp.anomalies", "Anomalies the extension detected, by type and severity", "{anomaly}", &m.anomalies)
	var drops counter
	for i, n := range dropped {
		drops.add(series{{"signal", string(signals[i])}}, n)
	}
	sum("lambdarasp.otlp.dropped", "OTLP requests the extension dropped: its queue was full, or the backend refused them", "{request}", &drops)

	if len(m.inspect) > 0 || m.inspectOver != nil {
		mm := w.Begin(mMetrics)
		w.String(mName, "lambdarasp.inspection.duration")
		w.String(mDescription, "Time the rules took on one event")
		w.String(mUnit, "s")
		hm := w.Begin(mHistogram)
		names := make([]string, 0, len(m.inspect))
		for k := range m.inspect {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			histPoint(&w, [][2]string{{"lambdarasp.source", k}}, start, at, m.inspect[k])
		}
		if m.inspectOver != nil {
			histPoint(&w, overflowSeries, start, at, m.inspectOver)
		}
		w.Varint(mTemporality, cumulative)
		w.End(hm)
		w.End(mm)
	}

	// Decisions in force, a gauge.
	mm := w.Begin(mMetrics)
	w.String(mName, "lambdarasp.decisions.active")
	w.String(mDescription, "Decisions of the extension in force, by kind")
	w.String(mUnit, "{decision}")
	g := w.Begin(mGauge)
	q := int64(0)
	if d.Quarantine != nil && d.Quarantine.Until.After(now) {
		q = 1
	}
	point(&w, [][2]string{{"lambdarasp.decision", "quarantine"}}, 0, at, q)
	point(&w, [][2]string{{"lambdarasp.decision", "block_ip"}}, 0, at, int64(len(d.BlockedIPs)))
	point(&w, [][2]string{{"lambdarasp.decision", "deny_destination"}}, 0, at, int64(len(d.DeniedDestinations)))
	w.End(g)
	w.End(mm)
	w.EndEnvelope(env)
	m.last = now
	return w.B
}

func less(a, b series) bool {
	for i := range a {
		if a[i][1] != b[i][1] {
			return a[i][1] < b[i][1]
		}
	}
	return false
}

// point writes a NumberDataPoint with an int value (always written,
// zero included).
func point(w *otlp.Buf, attrs [][2]string, start, at uint64, v int64) {
	p := w.Begin(mDataPoints)
	writeSeries(w, pAttrs, attrs)
	w.Fixed64(pStart, start)
	w.Fixed64(pTime, at)
	w.B = protowire.AppendTag(w.B, pInt, protowire.Fixed64Type)
	w.B = protowire.AppendFixed64(w.B, uint64(v))
	w.End(p)
}

// overflowSeries is the one series past maxSeries.
var overflowSeries = [][2]string{{"otel.metric.overflow", "true"}}

// writeSeries writes attrs; "server.port" and "lambdarasp.rule" are ints,
// "otel.metric.overflow" a bool, as the conventions say, the rest strings.
func writeSeries(w *otlp.Buf, field protowire.Number, attrs [][2]string) {
	for _, kv := range attrs {
		if kv[0] == "" {
			continue
		}
		if kv[0] == "otel.metric.overflow" {
			w.Bool(field, kv[0], kv[1] == "true")
			continue
		}
		if kv[0] == "server.port" || kv[0] == "lambdarasp.rule" {
			if n, err := strconv.Atoi(kv[1]); err == nil {
				w.Int(field, kv[0], int64(n))
				continue
			}
		}
		w.Str(field, kv[0], kv[1])
	}
}

func histPoint(w *otlp.Buf, attrs [][2]string, start, at uint64, h *histogram) {
	p := w.Begin(mDataPoints)
	writeSeries(w, hAttrs, attrs)
	w.Fixed64(pStart, start)
	w.Fixed64(pTime, at)
	w.B = protowire.AppendTag(w.B, hCount, protowire.Fixed64Type)
	w.B = protowire.AppendFixed64(w.B, h.n)
	w.B = protowire.AppendTag(w.B, hSum, protowire.Fixed64Type)
	w.B = protowire.AppendFixed64(w.B, math.Float64bits(h.sum))
	w.B = protowire.AppendTag(w.B, hBuckets, protowire.BytesType)
	w.B = protowire.AppendVarint(w.B, uint64(8*len(h.buckets)))
	for _, c := range h.buckets {
		w.B = protowire.AppendFixed64(w.B, c)
	}
	w.B = protowire.AppendTag(w.B, hBounds, protowire.BytesType)
	w.B = protowire.AppendVarint(w.B, uint64(8*len(inspectBounds)))
	for _, b := range inspectBounds {
		w.B = protowire.AppendFixed64(w.B, math.Float64bits(b))
	}
	w.B = protowire.AppendTag(w.B, hMin, protowire.Fixed64Type)
	w.B = protowire.AppendFixed64(w.B, math.Float64bits(h.min))
	w.B = protowire.AppendTag(w.B, hMax, protowire.Fixed64Type)
	w.B = protowire.AppendFixed64(w.B, math.Float64bits(h.max))
	w.End(p)
}

// OTLP logs field numbers (opentelemetry/proto/logs/v1).
const (
	lRecords      = 2 // ScopeLogs (otlp.Envelope writes the rest)
	lTime         = 1 // LogRecord
	lSeverity     = 2
	lSeverityText = 3
	lBody         = 5
	lAttrs        = 6
	lObserved     = 11
	lEventName    = 12
)

// alertLog encodes one alert as an OTLP log record (event
// lambdarasp.alert), severity WARN for low and medium anomalies, ERROR
// for high ones.
func alertLog(resource []byte, a Alert, now time.Time) []byte {
	var w otlp.Buf
	env := w.Envelope(resource, scopeName)
	r := w.Begin(lRecords)
	w.Fixed64(lTime, uint64(a.At.UnixNano()))
	sev, text := uint64(13), "WARN"
	if a.Severity == anomaly.High {
		sev, text = 17, "ERROR"
	}
	w.Varint(lSeverity, sev)
	w.String(lSeverityText, text)
	b := w.Begin(lBody)
	w.String(1, a.Message)
	w.End(b)
	w.Str(lAttrs, "lambdarasp.anomaly.type", string(a.Type))
	if a.Severity != "" {
		w.Str(lAttrs, "lambdarasp.anomaly.severity", string(a.Severity))
	}
	if a.RequestID != "" {
		w.Str(lAttrs, "faas.invocation_id", a.RequestID)
	}
	if a.Subject != "" {
		w.Str(lAttrs, "lambdarasp.subject", a.Subject)
	}
	if a.Action != "" {
		w.Str(lAttrs, "lambdarasp.decision", a.Action)
	}
	if a.Suppressed > 0 {
		w.Int(lAttrs, "lambdarasp.suppressed", int64(a.Suppressed))
	}
	keys := make([]string, 0, len(a.Values))
	for k := range a.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.Float(lAttrs, "lambdarasp.value."+k, a.Values[k])
	}
	w.Fixed64(lObserved, uint64(now.UnixNano()))
	w.String(lEventName, "lambdarasp.alert")
	w.End(r)
	w.EndEnvelope(env)
	return w.B
}
