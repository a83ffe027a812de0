package extension

import (
	"strconv"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/lambdarasp/lambdarasp/internal/decision"
	"github.com/lambdarasp/lambdarasp/internal/report"
)

// Past maxSeries attribute sets, a sum and a histogram each get one more
// point, marked otel.metric.overflow=true (a bool, as the SDK writes it).
func TestMetersOverflow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	m := newMeters(now)
	for i := range maxSeries + 3 {
		m.report(&report.Report{Source: "s" + strconv.Itoa(i), Action: report.Allow, InspectMicros: 10})
	}
	var data metricspb.MetricsData
	if err := proto.Unmarshal(m.encode(nil, now, &decision.Decisions{}, [len(signals)]int64{}), &data); err != nil {
		t.Fatal(err)
	}
	overflow := func(attrs []*commonpb.KeyValue) bool {
		return len(attrs) == 1 && attrs[0].Key == "otel.metric.overflow" && attrs[0].Value.GetBoolValue()
	}
	seen := 0
	for _, x := range data.ResourceMetrics[0].ScopeMetrics[0].Metrics {
		var n, over int
		var count uint64
		switch x.Name {
		case "lambdarasp.invocations":
			for _, p := range x.GetSum().DataPoints {
				n++
				if overflow(p.Attributes) {
					over, count = over+1, uint64(p.GetAsInt())
				}
			}
		case "lambdarasp.inspection.duration":
			for _, p := range x.GetHistogram().DataPoints {
				n++
				if overflow(p.Attributes) {
					over, count = over+1, p.Count
				}
			}
		default:
			continue
		}
		seen++
		if n != maxSeries+1 || over != 1 || count != 3 {
			t.Errorf("%s: %d points, %d overflow counting %d: want %d, one counting 3", x.Name, n, over, count, maxSeries+1)
		}
	}
	if seen != 2 {
		t.Errorf("%d of the invocations sum and the inspection histogram encoded, want both", seen)
	}
}

// lambdarasp.blocked counts the rules of every invocation that was not
// allowed (blocked, flagged or refused), one point per rule, the rule an
// int; an allowed invocation's rules are not counted.
func TestMetersBlocked(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	m := newMeters(now)
	m.report(&report.Report{Source: "sqs", Action: report.Allow, Rules: []int{920000}})
	m.report(&report.Report{Source: "sqs", Action: report.Block, Rules: []int{942100, 942200}})
	m.report(&report.Report{Source: "sqs", Action: report.Detect, Rules: []int{942100}})
	var data metricspb.MetricsData
	if err := proto.Unmarshal(m.encode(nil, now, &decision.Decisions{}, [len(signals)]int64{}), &data); err != nil {
		t.Fatal(err)
	}
	got := map[int64]int64{}
	for _, x := range data.ResourceMetrics[0].ScopeMetrics[0].Metrics {
		if x.Name != "lambdarasp.blocked" {
			continue
		}
		for _, p := range x.GetSum().DataPoints {
			for _, a := range p.Attributes {
				if a.Key == "lambdarasp.rule" {
					got[a.Value.GetIntValue()] = p.GetAsInt()
				}
			}
		}
	}
	if len(got) != 2 || got[942100] != 2 || got[942200] != 1 {
		t.Errorf("lambdarasp.blocked by rule %v: want 942100: 2, 942200: 1", got)
	}
}
