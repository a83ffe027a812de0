// Package otlptest is an OTLP/HTTP receiver for tests and the demo: it
// decodes what it gets with the OpenTelemetry project's own protobuf
// types (go.opentelemetry.io/proto/otlp), so what lambdarasp writes by
// hand is checked against the real wire format. The requests decode as
// TracesData, MetricsData and LogsData, which share the wire shape of
// the Export*ServiceRequest messages without their gRPC dependencies.
package otlptest

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is a decoded span with its resource's attributes.
type Span struct {
	*tracepb.Span
	Resource map[string]string
}

// Attr returns the span's attribute key as a string ("" when absent;
// ints and bools formatted).
func (s Span) Attr(key string) string { return attrString(s.Attributes, key) }

// TraceID and SpanID and ParentID are hex.
func (s Span) TraceID() string  { return hex.EncodeToString(s.Span.TraceId) }
func (s Span) SpanID() string   { return hex.EncodeToString(s.Span.SpanId) }
func (s Span) ParentID() string { return hex.EncodeToString(s.Span.ParentSpanId) }

// Metric is one decoded metric with its resource's attributes.
type Metric struct {
	*metricspb.Metric
	Resource map[string]string
}

// Log is one decoded log record.
type Log struct {
	*logspb.LogRecord
	Resource map[string]string
}

// Attr returns the log record's attribute key as a string.
func (l Log) Attr(key string) string { return attrString(l.Attributes, key) }

// Receiver collects what it is sent. SetFail makes it answer with a
// status instead of taking the data, SetDelay answer late.
type Receiver struct {
	URL string // http://127.0.0.1:PORT, the OTEL_EXPORTER_OTLP_ENDPOINT

	mu       sync.Mutex
	spans    []Span
	metrics  []Metric
	logs     []Log
	requests int
	errs     []string
	fail     int
	delay    time.Duration
	srv      *http.Server
}

// Start listens on 127.0.0.1, on a port of its own.
func Start() (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Receiver{URL: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.traces)
	mux.HandleFunc("POST /v1/metrics", r.metricsH)
	mux.HandleFunc("POST /v1/logs", r.logsH)
	r.srv = &http.Server{Handler: mux}
	go r.srv.Serve(ln)
	return r, nil
}

// Close stops the receiver.
func (r *Receiver) Close() { r.srv.Close() }

// SetFail makes the receiver answer status (0: take the data again).
func (r *Receiver) SetFail(status int) { r.mu.Lock(); r.fail = status; r.mu.Unlock() }

// SetDelay makes the receiver answer after d.
func (r *Receiver) SetDelay(d time.Duration) { r.mu.Lock(); r.delay = d; r.mu.Unlock() }

// Spans, Metrics and Logs return what has been received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

func (r *Receiver) Metrics() []Metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Metric(nil), r.metrics...)
}

func (r *Receiver) Logs() []Log {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Log(nil), r.logs...)
}

// Requests counts the requests that reached the receiver, failed or not.
func (r *Receiver) Requests() int { r.mu.Lock(); defer r.mu.Unlock(); return r.requests }

// Errors lists the bodies that did not decode.
func (r *Receiver) Errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// read returns the body, or false after answering the configured failure.
func (r *Receiver) read(w http.ResponseWriter, req *http.Request) ([]byte, bool) {
	r.mu.Lock()
	r.requests++
	fail, delay := r.fail, r.delay
	r.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return nil, false
		}
	}
	if fail != 0 {
		w.WriteHeader(fail)
		return nil, false
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return nil, false
		}
		body = z
	}
	b, err := io.ReadAll(body)
	if err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want application/x-protobuf", http.StatusUnsupportedMediaType)
		return nil, false
	}
	return b, true
}

func (r *Receiver) bad(w http.ResponseWriter, err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err.Error())
	r.mu.Unlock()
	http.Error(w, err.Error(), http.StatusBadRequest)
}

// serve decodes one request into m (the signal's *Data message, the wire
// shape of its Export*ServiceRequest) and hands it to keep under the lock.
func serve[M proto.Message](r *Receiver, w http.ResponseWriter, req *http.Request, m M, keep func(M)) {
	b, ok := r.read(w, req)
	if !ok {
		return
	}
	if err := proto.Unmarshal(b, m); err != nil {
		r.bad(w, err)
		return
	}
	r.mu.Lock()
	keep(m)
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf") // an empty response message
}

func (r *Receiver) traces(w http.ResponseWriter, req *http.Request) {
	serve(r, w, req, &tracepb.TracesData{}, func(m *tracepb.TracesData) {
		for _, rs := range m.ResourceSpans {
			res := attrMap(rs.GetResource().GetAttributes())
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					r.spans = append(r.spans, Span{Span: s, Resource: res})
				}
			}
		}
	})
}

func (r *Receiver) metricsH(w http.ResponseWriter, req *http.Request) {
	serve(r, w, req, &metricspb.MetricsData{}, func(m *metricspb.MetricsData) {
		for _, rm := range m.ResourceMetrics {
			res := attrMap(rm.GetResource().GetAttributes())
			for _, sm := range rm.ScopeMetrics {
				for _, x := range sm.Metrics {
					r.metrics = append(r.metrics, Metric{Metric: x, Resource: res})
				}
			}
		}
	})
}

func (r *Receiver) logsH(w http.ResponseWriter, req *http.Request) {
	serve(r, w, req, &logspb.LogsData{}, func(m *logspb.LogsData) {
		for _, rl := range m.ResourceLogs {
			res := attrMap(rl.GetResource().GetAttributes())
			for _, sl := range rl.ScopeLogs {
				for _, x := range sl.LogRecords {
					r.logs = append(r.logs, Log{LogRecord: x, Resource: res})
				}
			}
		}
	})
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = valueString(kv.Value)
	}
	return m
}

func attrString(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.Key == key {
			return valueString(kv.Value)
		}
	}
	return ""
}

// valueString formats an attribute value: strings as they are, ints and
// bools in Go syntax, arrays as [a b c].
func valueString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_ArrayValue:
		var b bytes.Buffer
		b.WriteByte('[')
		for i, e := range x.ArrayValue.Values {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(valueString(e))
		}
		b.WriteByte(']')
		return b.String()
	}
	return ""
}
