package emulator

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Record is one Telemetry API event, as Lambda posts it to a subscriber:
// {"time": "2022-10-12T00:00:15.064Z", "type": "platform.start", "record": {…}}.
type Record struct {
	Time   time.Time
	Type   string
	Record json.RawMessage // an object for platform events, a string for log lines
}

// timeFormat is the Telemetry API's: UTC, milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z"

type wireRecord struct {
	Time   string          `json:"time"`
	Type   string          `json:"type"`
	Record json.RawMessage `json:"record"`
}

// MarshalJSON encodes r as the Telemetry API does.
func (r Record) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireRecord{r.Time.UTC().Format(timeFormat), r.Type, r.Record})
}

// UnmarshalJSON decodes a record as the Telemetry API encodes it.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w wireRecord
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return fmt.Errorf("record time %q: %w", w.Time, err)
	}
	*r = Record{Time: t, Type: w.Type, Record: w.Record}
	return nil
}

// The record types the emulator produces.
const (
	recordInitStart       = "platform.initStart"
	recordInitRuntimeDone = "platform.initRuntimeDone"
	recordInitReport      = "platform.initReport"
	recordStart           = "platform.start"
	recordRuntimeDone     = "platform.runtimeDone"
	recordReport          = "platform.report"
	recordExtensionState  = "platform.extension"
	recordSubscription    = "platform.telemetrySubscription"
	recordFunction        = "function"
	recordExtension       = "extension"
)

// The records' bodies, field for field as the Telemetry API Event schema
// reference lists them (optional fields omitempty). The contract tests hold
// them to the documentation's examples in testdata/aws.

type initStartRecord struct {
	InitializationType string `json:"initializationType"`
	Phase              string `json:"phase"`
	RuntimeVersion     string `json:"runtimeVersion,omitempty"`
	RuntimeVersionArn  string `json:"runtimeVersionArn,omitempty"`
	FunctionName       string `json:"functionName,omitempty"`
	FunctionVersion    string `json:"functionVersion,omitempty"`
}

type initRuntimeDoneRecord struct {
	InitializationType string `json:"initializationType"`
	Phase              string `json:"phase,omitempty"`
	Status             string `json:"status"`
	ErrorType          string `json:"errorType,omitempty"`
	Spans              []span `json:"spans,omitempty"`
}

type initReportRecord struct {
	InitializationType string            `json:"initializationType"`
	Phase              string            `json:"phase"`
	Status             string            `json:"status,omitempty"`
	ErrorType          string            `json:"errorType,omitempty"`
	Metrics            initReportMetrics `json:"metrics"`
	Spans              []span            `json:"spans,omitempty"`
}

type initReportMetrics struct {
	DurationMs float64 `json:"durationMs"`
}

type startRecord struct {
	RequestID string        `json:"requestId"`
	Version   string        `json:"version,omitempty"`
	Tracing   *traceContext `json:"tracing,omitempty"`
}

type runtimeDoneRecord struct {
	RequestID string              `json:"requestId"`
	Status    string              `json:"status"`
	ErrorType string              `json:"errorType,omitempty"`
	Metrics   *runtimeDoneMetrics `json:"metrics,omitempty"`
	Spans     []span              `json:"spans,omitempty"`
	Tracing   *traceContext       `json:"tracing,omitempty"`
}

type runtimeDoneMetrics struct {
	DurationMs    float64 `json:"durationMs"`
	ProducedBytes *int64  `json:"producedBytes,omitempty"`
}

type reportRecord struct {
	RequestID string        `json:"requestId"`
	Status    string        `json:"status"`
	ErrorType string        `json:"errorType,omitempty"`
	Metrics   reportMetrics `json:"metrics"`
	Spans     []span        `json:"spans,omitempty"`
	Tracing   *traceContext `json:"tracing,omitempty"`
}

type reportMetrics struct {
	BilledDurationMs  int64    `json:"billedDurationMs"`
	DurationMs        float64  `json:"durationMs"`
	InitDurationMs    *float64 `json:"initDurationMs,omitempty"`
	MaxMemoryUsedMB   int      `json:"maxMemoryUsedMB"`
	MemorySizeMB      int      `json:"memorySizeMB"`
	RestoreDurationMs *float64 `json:"restoreDurationMs,omitempty"`
}

type extensionStateRecord struct {
	Name      string   `json:"name"`
	State     string   `json:"state"`
	Events    []string `json:"events"`
	ErrorType string   `json:"errorType,omitempty"`
}

type subscriptionRecord struct {
	Name  string   `json:"name"`
	State string   `json:"state"`
	Types []string `json:"types"`
}

type span struct {
	Name       string  `json:"name"`
	Start      string  `json:"start"`
	DurationMs float64 `json:"durationMs"`
}

type traceContext struct {
	SpanID string `json:"spanId,omitempty"`
	Type   string `json:"type"`
	Value  string `json:"value"`
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// stamp formats t as the Telemetry API's timestamps.
func stamp(t time.Time) string { return t.UTC().Format(timeFormat) }

// cloudWatchLine renders a record's body, as emit takes it, as the line
// CloudWatch Logs shows for it, or "" for records that have none.
func cloudWatchLine(body any) string {
	switch v := body.(type) {
	case string: // a function or extension log line
		return v
	case initStartRecord:
		return "INIT_START Phase: " + v.Phase
	case initReportRecord:
		line := fmt.Sprintf("INIT_REPORT Init Duration: %.2f ms\tPhase: %s\tStatus: %s", v.Metrics.DurationMs, v.Phase, v.Status)
		if v.ErrorType != "" {
			line += "\tError Type: " + v.ErrorType
		}
		return line
	case startRecord:
		return "START RequestId: " + v.RequestID + " Version: " + v.Version
	case runtimeDoneRecord:
		return "END RequestId: " + v.RequestID
	case reportRecord:
		m := v.Metrics
		line := fmt.Sprintf("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB",
			v.RequestID, m.DurationMs, m.BilledDurationMs, m.MemorySizeMB, m.MaxMemoryUsedMB)
		if m.InitDurationMs != nil {
			line += fmt.Sprintf("\tInit Duration: %.2f ms", *m.InitDurationMs)
		}
		if v.Status != "success" {
			line += "\tStatus: " + v.Status
			if v.ErrorType != "" {
				line += "\tError Type: " + v.ErrorType
			}
		}
		return line
	case extensionStateRecord:
		return "EXTENSION\tName: " + v.Name + "\tState: " + v.State + "\tEvents: [" + strings.Join(v.Events, ",") + "]"
	case subscriptionRecord:
		return "TELEMETRY\tName: " + v.Name + "\tState: " + v.State + "\tTypes: [" + strings.Join(v.Types, ",") + "]"
	}
	return ""
}
