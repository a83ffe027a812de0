package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"
)

// recordTypes maps each record type to the Go type the emulator encodes
// its body with, and the fields the schema reference lists for it that the
// page's example leaves out (the emulator may send them).
var recordTypes = map[string]struct {
	body  func() any
	extra []string
}{
	// PlatformInitStart: functionName, functionVersion (and instanceId,
	// instanceMaxMemory, which the emulator does not send).
	recordInitStart: {func() any { return new(initStartRecord) }, []string{"functionName", "functionVersion"}},
	// PlatformInitRuntimeDone: phase, and errorType when status is not success.
	recordInitRuntimeDone: {func() any { return new(initRuntimeDoneRecord) }, []string{"phase", "errorType"}},
	// PlatformInitReport: status, and errorType when it is not success.
	recordInitReport: {func() any { return new(initReportRecord) }, []string{"status", "errorType"}},
	recordStart:      {func() any { return new(startRecord) }, nil},
	// PlatformRuntimeDone: errorType when status is not success.
	recordRuntimeDone: {func() any { return new(runtimeDoneRecord) }, []string{"errorType"}},
	// PlatformReport: status (required), errorType when it is not success,
	// spans, and ReportMetrics.restoreDurationMs.
	recordReport:         {func() any { return new(reportRecord) }, []string{"status", "errorType", "spans", "metrics.restoreDurationMs"}},
	recordExtensionState: {func() any { return new(extensionStateRecord) }, []string{"errorType"}},
	recordSubscription:   {func() any { return new(subscriptionRecord) }, nil},
	recordFunction:       {func() any { return new(string) }, nil},
	recordExtension:      {func() any { return new(string) }, nil},
}

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "aws", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestContractExamplesRoundTrip decodes every documented example into the
// emulator's types, rejecting fields they lack, and encodes it back: no
// documented field may be lost or renamed.
func TestContractExamplesRoundTrip(t *testing.T) {
	for typ, rt := range recordTypes {
		t.Run(typ, func(t *testing.T) {
			doc := readExample(t, typ+".json")
			var r Record
			if err := json.Unmarshal(doc, &r); err != nil {
				t.Fatal(err)
			}
			if r.Type != typ || r.Time.IsZero() {
				t.Fatalf("example decoded as %q at %v", r.Type, r.Time)
			}
			v := rt.body()
			dec := json.NewDecoder(bytes.NewReader(r.Record))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("the example has a field the emulator's type lacks: %v", err)
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			got, want := shape(t, again), shape(t, r.Record)
			for _, k := range rt.extra {
				if _, ok := want[k]; !ok {
					delete(got, k) // a required field the example left out comes back empty
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("round trip changed the shape\n got %v\nwant %v", keys(got), keys(want))
			}
			wire, _ := json.Marshal(r)
			if got, want := shape(t, wire), shape(t, doc); !maps.Equal(got, want) {
				t.Errorf("record envelope\n got %v\nwant %v", keys(got), keys(want))
			}
		})
	}
	for _, c := range []struct {
		file string
		v    any
	}{
		{"extensions-register-response.json", new(registerResponse)},
		{"extensions-register-response-accountid.json", new(registerResponse)},
		{"extensions-invoke-event.json", new(invokeEvent)},
		{"extensions-shutdown-event.json", new(shutdownEvent)},
		{"runtime-error-request.json", new(errorDocument)},
	} {
		t.Run(c.file, func(t *testing.T) {
			doc := readExample(t, c.file)
			dec := json.NewDecoder(bytes.NewReader(doc))
			dec.DisallowUnknownFields()
			if err := dec.Decode(c.v); err != nil {
				t.Fatal(err)
			}
			again, _ := json.Marshal(c.v)
			if got, want := shape(t, again), shape(t, doc); !maps.Equal(got, want) {
				t.Errorf("round trip\n got %v\nwant %v", keys(got), keys(want))
			}
		})
	}
}

// TestContractEmitted runs the real function and extension through a
// success, a function error and a timeout, and holds everything the
// emulator sent to the documentation: records, Extensions API events, the
// registration answer, the subscription answer and its error documents.
func TestContractEmitted(t *testing.T) {
	dir, out := extensionsDir(t, "recorder")
	em := start(t, Config{ExtensionsDir: dir, Timeout: 300 * time.Millisecond, Env: []string{"EXT_OUT_DIR=" + out}})
	invoke(t, em, `{"log":"hello"}`)
	invoke(t, em, `{"error":"nope"}`)
	timedOut := invoke(t, em, `{"sleep":"5s"}`)
	_ = em.Close()

	seen := map[string]bool{}
	for _, r := range em.Records() {
		rt, ok := recordTypes[r.Type]
		if !ok {
			t.Errorf("undocumented record type %q", r.Type)
			continue
		}
		seen[r.Type] = true
		allowed := shape(t, readExample(t, r.Type+".json"))
		for _, k := range rt.extra {
			allowed["record."+k] = ""
		}
		wire, _ := json.Marshal(r)
		for path, kind := range shape(t, wire) {
			want, ok := allowed[path]
			switch {
			case !ok:
				t.Errorf("%s: %s is not in the documentation", r.Type, path)
			case want != "" && want != kind:
				t.Errorf("%s: %s is a %s, the documentation has a %s", r.Type, path, kind, want)
			}
		}
	}
	for typ := range recordTypes {
		if !seen[typ] {
			t.Errorf("the run produced no %s record: the contract went unchecked", typ)
		}
	}

	ns := notes(t, out, "recorder")
	sameShape := func(what string, got []byte, file string) {
		t.Helper()
		if g, w := shape(t, got), shape(t, readExample(t, file)); !maps.Equal(g, w) {
			t.Errorf("%s\n got %v\nwant %v (%s)", what, keys(g), keys(w), file)
		}
	}
	var invokes, shutdowns int
	for _, n := range ns {
		switch {
		case n.Kind == "register":
			sameShape("register response", n.Body, "extensions-register-response-accountid.json")
		case n.Kind == "subscribe":
			sameShape("subscribe response", n.Body, "telemetry-subscribe-response.json")
		case n.Kind == "event" && bytes.Contains(n.Body, []byte(`"INVOKE"`)):
			invokes++
			sameShape("INVOKE event", n.Body, "extensions-invoke-event.json")
		case n.Kind == "event" && bytes.Contains(n.Body, []byte(`"SHUTDOWN"`)):
			shutdowns++
			sameShape("SHUTDOWN event", n.Body, "extensions-shutdown-event.json")
		}
	}
	if invokes == 0 || shutdowns == 0 {
		t.Errorf("%d INVOKE and %d SHUTDOWN events: the contract went unchecked", invokes, shutdowns)
	}
	// The platform's error documents have the shape of the runtime's.
	sameShape("timeout error document", timedOut.Payload, "runtime-error-request.json")

	// Without Lambda-Extension-Accept-Feature, no accountId.
	resp, _ := json.Marshal(registerResponse{FunctionName: "f", FunctionVersion: "$LATEST", Handler: "h"})
	sameShape("register response without accountId", resp, "extensions-register-response.json")
}

// TestContractSubscribeRequest: the documentation's subscription request is
// accepted as written.
func TestContractSubscribeRequest(t *testing.T) {
	s, err := parseSubscription(readExample(t, "telemetry-subscribe-request.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.types, []string{"platform", "function", "extension"}) || s.maxItems != 1000 || s.maxBytes != 262144 ||
		s.timeout.Milliseconds() != 100 || s.url != "http://127.0.0.1:8080" {
		t.Errorf("parsed %+v", s)
	}
}

// shape flattens a JSON document into its paths and the kind of value at
// each: {"a":{"b":[1]}} is a: object, a.b: array, a.b[]: number.
func shape(t *testing.T, doc []byte) map[string]string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if path != "" {
				out[path] = "object"
			}
			for k, x := range v {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, x)
			}
		case []any:
			out[path] = "array"
			for _, x := range v {
				walk(path+"[]", x)
			}
		default:
			out[path] = fmt.Sprintf("%T", v)
		}
	}
	walk("", v)
	return out
}

func keys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k, v := range m {
		ks = append(ks, k+":"+v)
	}
	sort.Strings(ks)
	return ks
}
