package emulator

import "testing"

// TestCloudWatchLine: each platform event as CloudWatch Logs shows it in
// Config.Logs, a log record as its line, and no line for the events
// CloudWatch does not show.
func TestCloudWatchLine(t *testing.T) {
	init := 86.94
	cases := []struct {
		body any
		want string
	}{
		{"hello\tworld", "hello\tworld"},
		{initStartRecord{InitializationType: "on-demand", Phase: "init"}, "INIT_START Phase: init"},
		{initRuntimeDoneRecord{InitializationType: "on-demand", Status: "success"}, ""},
		{initReportRecord{Phase: "init", Status: "success", Metrics: initReportMetrics{DurationMs: 86.94}},
			"INIT_REPORT Init Duration: 86.94 ms\tPhase: init\tStatus: success"},
		{initReportRecord{Phase: "invoke", Status: "error", ErrorType: "Extension.Crash", Metrics: initReportMetrics{DurationMs: 12.5}},
			"INIT_REPORT Init Duration: 12.50 ms\tPhase: invoke\tStatus: error\tError Type: Extension.Crash"},
		{startRecord{RequestID: "af49", Version: "$LATEST"}, "START RequestId: af49 Version: $LATEST"},
		{runtimeDoneRecord{RequestID: "af49", Status: "success"}, "END RequestId: af49"},
		{reportRecord{RequestID: "af49", Status: "success", Metrics: reportMetrics{DurationMs: 40.57, BilledDurationMs: 128, MemorySizeMB: 128, MaxMemoryUsedMB: 29, InitDurationMs: &init}},
			"REPORT RequestId: af49\tDuration: 40.57 ms\tBilled Duration: 128 ms\tMemory Size: 128 MB\tMax Memory Used: 29 MB\tInit Duration: 86.94 ms"},
		{reportRecord{RequestID: "af49", Status: "timeout", Metrics: reportMetrics{DurationMs: 3000.21, BilledDurationMs: 3001, MemorySizeMB: 512, MaxMemoryUsedMB: 30}},
			"REPORT RequestId: af49\tDuration: 3000.21 ms\tBilled Duration: 3001 ms\tMemory Size: 512 MB\tMax Memory Used: 30 MB\tStatus: timeout"},
		{reportRecord{RequestID: "af49", Status: "error", ErrorType: "errorString", Metrics: reportMetrics{DurationMs: 1.5, BilledDurationMs: 2, MemorySizeMB: 128, MaxMemoryUsedMB: 20}},
			"REPORT RequestId: af49\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\tStatus: error\tError Type: errorString"},
		{extensionStateRecord{Name: "recorder", State: "Ready", Events: []string{"INVOKE", "SHUTDOWN"}},
			"EXTENSION\tName: recorder\tState: Ready\tEvents: [INVOKE,SHUTDOWN]"},
		{subscriptionRecord{Name: "recorder", State: "Subscribed", Types: []string{"platform", "function"}},
			"TELEMETRY\tName: recorder\tState: Subscribed\tTypes: [platform,function]"},
	}
	for _, c := range cases {
		if got := cloudWatchLine(c.body); got != c.want {
			t.Errorf("%+v:\n got %q\nwant %q", c.body, got, c.want)
		}
	}
}
