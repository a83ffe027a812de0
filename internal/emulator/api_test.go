package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAPIRefusals sends the Runtime, Extensions and Telemetry APIs what
// they must refuse, the way Lambda refuses it.
func TestAPIRefusals(t *testing.T) {
	em := start(t, Config{})
	base := "http://" + em.RuntimeAPI()
	unknown := newUUID()
	type refusal struct {
		name, method, path string
		header             map[string]string
		body               string
		status             int
		errorType          string
	}
	client := &http.Client{Timeout: 5 * time.Second} // a next that is not refused waits for an event
	refused := func(t *testing.T, c refusal) {
		t.Helper()
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc errorDocument
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &doc); err != nil || resp.StatusCode != c.status || doc.ErrorType != c.errorType || doc.ErrorMessage == "" {
			t.Errorf("%s: %d %s, want %d %s", c.name, resp.StatusCode, b, c.status, c.errorType)
		}
	}
	cases := []refusal{
		{"register after init", "POST", "/2020-01-01/extension/register", map[string]string{headerExtensionName: "late"}, `{"events":["INVOKE"]}`, 403, "Extension.RegistrationClosed"},
		{"register without a name", "POST", "/2020-01-01/extension/register", nil, `{}`, 403, "Extension.InvalidExtensionName"},
		{"register with a bad body", "POST", "/2020-01-01/extension/register", map[string]string{headerExtensionName: "x"}, `{`, 403, "InvalidRequestFormat"},
		{"register with configurationKeys", "POST", "/2020-01-01/extension/register", map[string]string{headerExtensionName: "x"}, `{"configurationKeys":["a"]}`, 403, "InvalidRequestFormat"},
		{"next without identifier", "GET", "/2020-01-01/extension/event/next", nil, "", 403, "Extension.MissingExtensionIdentifier"},
		{"next with a bad identifier", "GET", "/2020-01-01/extension/event/next", map[string]string{headerExtensionID: "nope"}, "", 403, "Extension.InvalidExtensionIdentifier"},
		{"next with an unknown identifier", "GET", "/2020-01-01/extension/event/next", map[string]string{headerExtensionID: unknown}, "", 403, "Extension.UnknownExtensionIdentifier"},
		{"init error from nobody", "POST", "/2020-01-01/extension/init/error", map[string]string{headerExtensionID: unknown, headerExtensionErrorType: "X"}, "", 403, "Extension.UnknownExtensionIdentifier"},
		{"exit error without identifier", "POST", "/2020-01-01/extension/exit/error", nil, "", 403, "Extension.MissingExtensionIdentifier"},
		{"subscribe without identifier", "PUT", "/2022-07-01/telemetry", nil, `{}`, 403, "Extension.MissingExtensionIdentifier"},
		{"subscribe for nobody", "PUT", "/2022-07-01/telemetry", map[string]string{headerExtensionID: unknown}, `{}`, 403, "Extension.UnknownExtensionIdentifier"},
		{"response for no invocation", "POST", "/2018-06-01/runtime/invocation/" + unknown + "/response", nil, `{}`, 400, "InvalidRequestID"},
		{"error for no invocation", "POST", "/2018-06-01/runtime/invocation/" + unknown + "/error", nil, `{}`, 400, "InvalidRequestID"},
		{"init error after init", "POST", "/2018-06-01/runtime/init/error", nil, `{}`, 403, "InvalidStateTransition"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { refused(t, c) })
	}
	// A runtime that calls next again before answering its invocation (the
	// environment is frozen between invocations: the loop is not looking).
	env := em.current()
	env.mu.Lock()
	env.inflight = &invocation{id: newUUID()}
	env.mu.Unlock()
	refused(t, refusal{"next before the response", "GET", "/2018-06-01/runtime/invocation/next", nil, "", 403, "InvalidStateTransition"})
	env.mu.Lock()
	env.inflight = nil
	env.mu.Unlock()
	// The environment is unharmed.
	if res := invoke(t, em, `{}`); res.FunctionError != "" {
		t.Errorf("after the refusals: %+v", res)
	}
}

// TestRegisterRules: which registrations an environment takes during init.
func TestRegisterRules(t *testing.T) {
	e := &Emulator{cfg: Config{MaxRecords: 10}}
	env := e.newEnv(phaseInit)
	env.external["ext"] = true
	t.Cleanup(env.hub.stop)
	cases := []struct {
		name, ext string
		events    []string
		errorType string
		internal  bool
	}{
		{"external, both events", "ext", []string{"INVOKE", "SHUTDOWN"}, "", false},
		{"external twice", "ext", []string{"INVOKE"}, "Extension.InvalidExtensionState", false},
		{"internal, no events", "GoLangEnableSIGTERM", nil, "", true},
		{"internal asks for SHUTDOWN", "inproc", []string{"SHUTDOWN"}, "Extension.InvalidEventType", true},
		{"unknown event", "other", []string{"INVOKE", "RESTORE"}, "Extension.InvalidEventType", true},
		{"internal, INVOKE", "inproc", []string{"INVOKE", "INVOKE"}, "", true},
	}
	for _, c := range cases {
		ext, status, errorType, msg := env.registerLocked(c.ext, c.events)
		switch {
		case c.errorType != "" && (ext != nil || errorType != c.errorType || status != 403 || msg == ""):
			t.Errorf("%s: %v %d %s %q, want %s", c.name, ext, status, errorType, msg, c.errorType)
		case c.errorType == "" && (ext == nil || ext.internal != c.internal || ext.name != c.ext || !isUUID(ext.id)):
			t.Errorf("%s: %+v %s", c.name, ext, msg)
		}
	}
	if ext := env.byName["inproc"]; ext == nil || len(ext.events) != 1 {
		t.Errorf("INVOKE twice registered as %v", ext)
	}
	for i := len(env.extensions); i < maxExtensions; i++ {
		if ext, _, _, msg := env.registerLocked("x"+string(rune('a'+i)), nil); ext == nil {
			t.Fatal(msg)
		}
	}
	if _, _, errorType, _ := env.registerLocked("one-too-many", nil); errorType != "Extension.TooManyExtensions" {
		t.Errorf("eleventh extension: %s", errorType)
	}
	env.regOpen = false
	if _, _, errorType, _ := env.registerLocked("ext2", nil); errorType != "Extension.RegistrationClosed" {
		t.Errorf("after the runtime's first next: %s", errorType)
	}
}

// TestInvokeEndpoint is the curl-compatible Invoke API.
func TestInvokeEndpoint(t *testing.T) {
	em := start(t, Config{Timeout: 300 * time.Millisecond})
	srv := httptest.NewServer(em.InvokeHandler())
	defer srv.Close()
	url := srv.URL + "/2015-03-31/functions/function/invocations"
	post := func(body string, header map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	cc := base64.StdEncoding.EncodeToString([]byte(`{"custom":{"tenant":"t-9"}}`))
	resp, b := post(`{}`, map[string]string{"X-Amz-Client-Context": cc, "X-Amzn-Trace-Id": "Root=1-00000000-000000000000000000000001;Sampled=1"})
	var fn struct {
		RequestID     string            `json:"requestId"`
		TraceID       string            `json:"traceId"`
		ClientContext map[string]string `json:"clientContext"`
	}
	if err := json.Unmarshal(b, &fn); err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, b)
	}
	if fn.RequestID != resp.Header.Get("X-Amzn-Requestid") || fn.ClientContext["tenant"] != "t-9" || !strings.HasPrefix(fn.TraceID, "Root=1-00000000-") {
		t.Errorf("function saw %+v, headers %v", fn, resp.Header)
	}

	resp, b = post(`{"error":"bad input"}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || !bytes.Contains(b, []byte(`"errorMessage":"bad input"`)) {
		t.Errorf("function error: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	resp, b = post(`{"sleep":"2s"}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || !bytes.Contains(b, []byte(`"errorType":"Sandbox.Timedout"`)) {
		t.Errorf("timeout: %d %v %s", resp.StatusCode, resp.Header, b)
	}

	resp, _ = post(`{"log":"async"}`, map[string]string{"X-Amz-Invocation-Type": "Event"})
	if resp.StatusCode != http.StatusAccepted || !isUUID(resp.Header.Get("X-Amzn-Requestid")) {
		t.Errorf("Event: %d %v", resp.StatusCode, resp.Header)
	}
	invoke(t, em, `{}`) // served after the Event invocation, which the environment took first
	if resp, _ = post(`{}`, map[string]string{"X-Amz-Invocation-Type": "DryRun"}); resp.StatusCode != http.StatusNoContent {
		t.Errorf("DryRun: %d", resp.StatusCode)
	}
	for _, c := range []struct {
		body      string
		header    map[string]string
		status    int
		exception string
	}{
		{`{}`, map[string]string{"X-Amz-Client-Context": "%%%"}, 400, "InvalidRequestContentException"},
		{`{}`, map[string]string{"X-Amz-Invocation-Type": "Later"}, 400, "InvalidParameterValueException"},
		{strings.Repeat("x", maxPayload+1), nil, 413, "RequestEntityTooLargeException"},
	} {
		resp, b := post(c.body, c.header)
		if resp.StatusCode != c.status || resp.Header.Get("X-Amzn-ErrorType") != c.exception || !bytes.Contains(b, []byte(`"message"`)) {
			t.Errorf("%v: %d %s %s", c.header, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), b)
		}
	}
	_ = em.Close()
	if resp, _ := post(`{}`, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: %d", resp.StatusCode)
	}
	// The Event invocation ran.
	found := false
	for _, line := range logLines(t, em.Records(), recordFunction) {
		found = found || line == "async"
	}
	if !found {
		t.Error("the Event invocation never ran")
	}
}
