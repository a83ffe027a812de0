package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/otlp/otlptest"
)

// telemetry is what the demo's OTLP receiver got from the extension.
type telemetry struct {
	spans   []otlptest.Span
	metrics []otlptest.Metric
	logs    []otlptest.Log
	errs    []string // requests that did not decode
}

// invocationTrace is one invocation's spans: its server span and the
// children, in start order.
type invocationTrace struct {
	server   otlptest.Span
	children []otlptest.Span
}

// traceOf finds the spans of the invocation requestID.
func (t *telemetry) traceOf(requestID string) (invocationTrace, bool) {
	var it invocationTrace
	found := false
	for _, s := range t.spans {
		if s.Kind == 2 && s.Attr("faas.invocation_id") == requestID {
			it.server, found = s, true
		}
	}
	if !found {
		return it, false
	}
	for _, s := range t.spans {
		if s.TraceID() == it.server.TraceID() && s.ParentID() == it.server.SpanID() {
			it.children = append(it.children, s)
		}
	}
	sort.Slice(it.children, func(i, j int) bool { return it.children[i].StartTimeUnixNano < it.children[j].StartTimeUnixNano })
	return it, true
}

// inspected reports whether it has an inspection span with action.
func inspected(it invocationTrace, action string) bool {
	for _, c := range it.children {
		if c.Name == "lambdarasp.inspect" && c.Attr("lambdarasp.action") == action {
			return true
		}
	}
	return false
}

func spanDuration(s otlptest.Span) string {
	d := time.Duration(s.EndTimeUnixNano - s.StartTimeUnixNano)
	return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
}

// printTrace draws one invocation's trace as a tree.
func printTrace(w io.Writer, title string, it invocationTrace) {
	s := it.server
	parent := "root"
	if len(s.ParentSpanId) > 0 {
		parent = "parent " + s.ParentID()
	}
	fmt.Fprintf(w, "  %s — trace %s (%s)\n", title, s.TraceID(), parent)
	fmt.Fprintf(w, "    %s  server  %s  faas.trigger=%s faas.coldstart=%s lambdarasp.source=%s lambdarasp.action=%s client.address=%s\n",
		s.Name, spanDuration(s), s.Attr("faas.trigger"), s.Attr("faas.coldstart"), s.Attr("lambdarasp.source"), s.Attr("lambdarasp.action"), s.Attr("client.address"))
	for i, c := range it.children {
		branch, cont := "├─", "│ "
		if i == len(it.children)-1 {
			branch, cont = "└─", "  "
		}
		switch c.Kind {
		case 3:
			status := c.Attr("http.response.status_code")
			if e := c.Attr("error.type"); e != "" {
				status = e
			}
			fmt.Fprintf(w, "    %s %s  client  %s  %s:%s → %s\n", branch, c.Name, spanDuration(c), c.Attr("server.address"), c.Attr("server.port"), status)
		default:
			fmt.Fprintf(w, "    %s %s  %s  lambdarasp.action=%s score=%s", branch, c.Name, spanDuration(c), c.Attr("lambdarasp.action"), c.Attr("lambdarasp.score"))
			if r := c.Attr("lambdarasp.rules"); r != "" {
				fmt.Fprintf(w, " rules=%s", r)
			}
			fmt.Fprintln(w)
			for j, e := range c.Events {
				if j == 3 {
					fmt.Fprintf(w, "    %s   … %d more findings\n", cont, len(c.Events)-3)
					break
				}
				var rule, path string
				for _, kv := range e.Attributes {
					switch kv.Key {
					case "lambdarasp.rule":
						rule = fmt.Sprint(kv.Value.GetIntValue())
					case "lambdarasp.path":
						path = kv.Value.GetStringValue()
					}
				}
				fmt.Fprintf(w, "    %s   • %s rule %s at %s\n", cont, e.Name, rule, path)
			}
		}
	}
}

// presentTelemetry prints what reached the OTLP receiver: counts, the
// trace of one allowed and one blocked invocation, the metrics; and
// returns the checks it makes.
func presentTelemetry(w io.Writer, t *telemetry) []check {
	fmt.Fprintf(w, "\nOpenTelemetry, as the demo's OTLP receiver decoded it: %d spans, %d metrics, %d alert logs\n", len(t.spans), len(t.metrics), len(t.logs))
	hasChild := func(it invocationTrace, name string, kind int32) bool {
		for _, c := range it.children {
			if c.Name == name && int32(c.Kind) == kind {
				return true
			}
		}
		return false
	}
	// One allowed HTTP order that charged a card, one HTTP request the
	// rules blocked.
	var allowed, blocked invocationTrace
	okA, okB := false, false
	for _, s := range t.spans {
		if s.Kind != 2 || s.Attr("faas.trigger") != "http" {
			continue
		}
		it, _ := t.traceOf(s.Attr("faas.invocation_id"))
		switch a := s.Attr("lambdarasp.action"); {
		case !okA && a == "allow" && hasChild(it, "POST", 3):
			allowed, okA = it, true
		case !okB && a == "block" && inspected(it, "block"):
			blocked, okB = it, true
		}
	}
	if okA {
		printTrace(w, "an allowed order, charged at the payment service", allowed)
	}
	if okB {
		printTrace(w, "a request the rules blocked", blocked)
	}
	var names []string
	for _, m := range t.metrics {
		if !strings.Contains(strings.Join(names, " "), m.Name) {
			names = append(names, m.Name)
		}
	}
	sort.Strings(names)
	fmt.Fprintf(w, "  metrics: %s\n", strings.Join(names, ", "))

	blockedFindings := false
	for _, c := range blocked.children {
		if c.Name == "lambdarasp.inspect" && len(c.Events) > 0 {
			blockedFindings = true
		}
	}
	alerts := 0
	for _, l := range t.logs {
		if l.Attr("lambdarasp.anomaly.type") != "" {
			alerts++
		}
	}
	return []check{
		{"every OTLP request the extension relayed decoded with the OpenTelemetry protobuf types", len(t.errs) == 0 && len(t.spans) > 0},
		{"the allowed order's trace: server span, inspection span, client span of the charge", okA && hasChild(allowed, "lambdarasp.inspect", 1) && hasChild(allowed, "POST", 3)},
		{"the blocked request's trace: inspection span with action block and one event per finding", okB && blockedFindings},
		{"the extension's metrics and one OTLP log per alert reached the receiver", len(names) >= 5 && alerts > 0},
	}
}
