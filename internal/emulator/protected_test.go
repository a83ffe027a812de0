package emulator

import (
	"encoding/json"
	"os"
	"testing"
)

// The product end to end: a function wrapped in protect.Handler, with an
// extension, under the emulator. A clean API Gateway request reaches the
// handler; a SQL injection is answered 403 by the wrapper; the extension
// sees both invocations.
func TestProtectedFunction(t *testing.T) {
	dir, outDir := extensionsDir(t, "watcher")
	em := start(t, Config{Function: protectedBin, ExtensionsDir: dir, Env: []string{"EXT_OUT_DIR=" + outDir}})
	read := func(name string) string {
		b, err := os.ReadFile("../../examples/events/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var resp struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}
	for _, c := range []struct {
		event  string
		status int
	}{
		{"apigw-http-clean.json", 200},
		{"apigw-http-sqli-query.json", 403},
	} {
		res := invoke(t, em, read(c.event))
		if res.FunctionError != "" {
			t.Fatalf("%s: function error %s: %s", c.event, res.ErrorType, res.Payload)
		}
		if err := json.Unmarshal(res.Payload, &resp); err != nil {
			t.Fatalf("%s: %v: %s", c.event, err, res.Payload)
		}
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.event, resp.StatusCode, c.status, resp.Body)
		}
	}
	if err := em.Close(); err != nil { // flushes the telemetry
		t.Fatal(err)
	}
	invokes := 0
	for _, r := range em.Delivered("watcher") {
		if r.Type == "platform.start" {
			invokes++
		}
	}
	if invokes != 2 {
		t.Errorf("the extension's telemetry shows %d invocations, want 2", invokes)
	}
}
