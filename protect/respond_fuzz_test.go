package protect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/lambdarasp/lambdarasp/internal/source"
)

// FuzzRespond holds every blocked response to what its trigger accepts,
// whatever the event, which records are blocked and what the handler
// answers: a 403 in the HTTP source's response shape; for batches, the
// clean records (and only they) handed to the handler as an event that
// still decodes, and every blocked record back as a failure, or the whole
// invocation failed. A blocked record is never dropped.
func FuzzRespond(f *testing.F) {
	outs := [][]byte{nil, []byte(`null`), []byte(`{"batchItemFailures":[{"itemIdentifier":"m9"}]}`),
		[]byte(`{"records":[{"recordId":"r9","result":"Ok","data":""}]}`), []byte(`"ok"`)}
	files, _ := filepath.Glob("../examples/events/*.json")
	if len(files) == 0 {
		f.Fatal("no sample events in ../examples/events")
	}
	for i, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint64(1)<<(i%3)|uint64(i%2), i%2 == 0, outs[i%len(outs)], i%7 == 0)
	}
	// A blocked record without a messageId cannot be named to SQS.
	f.Add([]byte(`{"Records":[{"eventSource":"aws:sqs","messageId":"m1","body":"a"},{"eventSource":"aws:sqs","body":"b"}]}`),
		uint64(2), true, []byte(nil), false)
	f.Fuzz(func(t *testing.T, payload []byte, mask uint64, partial bool, out []byte, fail bool) {
		cfg, err := newConfig(func(string) string { return "" }, []Option{WithPartialBatch(partial)})
		if err != nil {
			t.Fatal(err)
		}
		next := &recorder{out: out}
		if fail {
			next.err = errors.New("handler failed")
		}
		h := &handler{next: next, in: &Inspector{cfg: cfg}}
		ev := source.Parse(payload, source.Limits{})
		v := Verdict{Source: string(ev.Kind), Action: Deny, event: ev, blocked: make([]bool, len(ev.Records))}
		var blockedIDs []string
		for i := range ev.Records {
			if mask&(1<<(i%64)) != 0 || len(ev.Records) == 1 {
				v.blocked[i] = true
				blockedIDs = append(blockedIDs, ev.Records[i].ID)
			}
		}
		resp, err := h.refuse(context.Background(), "req-1", payload, v)
		kind := ev.Kind
		switch {
		case kind.HTTP():
			checkForbidden(t, kind, resp, err)
		case err != nil:
			if !IsBlocked(err) && !(fail && errors.Is(err, next.err)) {
				t.Fatalf("%s: error %v", kind, err)
			}
		case kind == source.Firehose || (kind.Batch() && partial):
			member, item := "batchItemFailures", "itemIdentifier"
			if kind == source.Firehose {
				member, item = "records", "recordId"
			}
			if slices.Contains(blockedIDs, "") {
				t.Fatalf("%s: a blocked record without an id answered as a partial response: %s", kind, resp)
			}
			if json.Valid(out) || next.calls == 0 {
				if !json.Valid(resp) {
					t.Fatalf("%s: response is not JSON: %q", kind, resp)
				}
				var got []string
				var r map[string][]map[string]any
				if err := json.Unmarshal(resp, &r); err == nil {
					for _, it := range r[member] {
						if id, ok := it[item].(string); ok && (kind != source.Firehose || it["result"] == "ProcessingFailed") {
							got = append(got, id)
						}
					}
				}
				for _, id := range blockedIDs {
					if !slices.Contains(got, id) {
						t.Fatalf("%s: blocked record %q lost; response %s", kind, id, resp)
					}
				}
			}
			checkCleanEvent(t, payload, v, next)
		default:
			t.Fatalf("%s: blocked without an error (response %q)", kind, resp)
		}
	})
}

// checkForbidden holds resp to the 403 its HTTP source expects.
func checkForbidden(t *testing.T, kind source.Kind, resp []byte, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: error %v", kind, err)
	}
	var r struct {
		events.ALBTargetGroupResponse
		IsBase64Encoded bool `json:"isBase64Encoded"`
	}
	if err := json.Unmarshal(resp, &r); err != nil || r.StatusCode != 403 || r.IsBase64Encoded {
		t.Fatalf("%s: response %s (%v)", kind, resp, err)
	}
	ctype := r.Headers["Content-Type"]
	if kind == source.ALB {
		if r.StatusDescription != "403 Forbidden" {
			t.Fatalf("alb: statusDescription %q", r.StatusDescription)
		}
		if ctype == "" && len(r.MultiValueHeaders["Content-Type"]) == 1 {
			ctype = r.MultiValueHeaders["Content-Type"][0]
		}
	}
	if ctype != "application/json" || !json.Valid([]byte(r.Body)) {
		t.Fatalf("%s: response %s", kind, resp)
	}
}

// checkCleanEvent holds what the handler got to the records that were not
// blocked, byte for byte, in an event that still decodes.
func checkCleanEvent(t *testing.T, payload []byte, v Verdict, next *recorder) {
	t.Helper()
	var want [][]byte
	for i, rec := range v.event.Records {
		if !v.blocked[i] {
			want = append(want, payload[rec.Start:rec.End])
		}
	}
	if len(want) == 0 {
		if next.calls != 0 {
			t.Fatalf("handler ran with no record left: %q", next.payloads)
		}
		return
	}
	if next.calls != 1 {
		t.Fatalf("handler ran %d times", next.calls)
	}
	var e struct {
		Records []json.RawMessage // Records and records are one name to encoding/json
	}
	if err := json.Unmarshal(next.payloads[0], &e); err != nil {
		t.Fatalf("handler's event does not decode: %v\n%s", err, next.payloads[0])
	}
	if len(e.Records) != len(want) {
		t.Fatalf("handler got %d records, want %d", len(e.Records), len(want))
	}
	for i := range want {
		if !bytes.Equal(e.Records[i], want[i]) {
			t.Fatalf("record %d: handler got %s, want %s", i, e.Records[i], want[i])
		}
	}
}
