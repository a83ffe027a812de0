package extension

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// api is a client of the Extensions API (2020-01-01) and the Telemetry API
// (2022-07-01). Every response body is read and closed, whatever the
// status.
type api struct {
	base   string // http://host:port
	client *http.Client
	id     string // Lambda-Extension-Identifier, once registered
}

func newAPI(runtimeAPI string) *api {
	// No timeout: next blocks for as long as the environment is idle.
	return &api{base: "http://" + runtimeAPI, client: &http.Client{Transport: &http.Transport{Proxy: nil}}}
}

// apiError is a refusal from the API, with its status and Lambda's error
// type when the body has one.
type apiError struct {
	op, errorType, message string
	status                 int
}

func (e *apiError) Error() string {
	return fmt.Sprintf("extension: %s: %d %s %s", e.op, e.status, e.errorType, e.message)
}

func (a *api) do(ctx context.Context, op, method, path string, header map[string]string, body any) ([]byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, fmt.Errorf("extension: %s: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("extension: %s: %w", op, err)
	}
	if a.id != "" {
		req.Header.Set("Lambda-Extension-Identifier", a.id)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("extension: %s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("extension: %s: read response: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			ErrorType    string `json:"errorType"`
			ErrorMessage string `json:"errorMessage"`
		}
		_ = json.Unmarshal(b, &e)
		return b, resp.Header, &apiError{op: op, status: resp.StatusCode, errorType: e.ErrorType, message: e.ErrorMessage}
	}
	return b, resp.Header, nil
}

// register registers the extension for INVOKE and SHUTDOWN.
func (a *api) register(ctx context.Context, name string) error {
	_, h, err := a.do(ctx, "register", http.MethodPost, "/2020-01-01/extension/register",
		map[string]string{"Lambda-Extension-Name": name}, map[string][]string{"events": {"INVOKE", "SHUTDOWN"}})
	if err != nil {
		return err
	}
	a.id = h.Get("Lambda-Extension-Identifier")
	if a.id == "" {
		return fmt.Errorf("extension: register: no Lambda-Extension-Identifier in the response")
	}
	return nil
}

// event is what next returns: an INVOKE or a SHUTDOWN.
type event struct {
	EventType      string `json:"eventType"`
	RequestID      string `json:"requestId"`
	DeadlineMs     int64  `json:"deadlineMs"`
	ShutdownReason string `json:"shutdownReason"`
}

func (e event) deadline() time.Time { return time.UnixMilli(e.DeadlineMs) }

// next blocks until the next event.
func (a *api) next(ctx context.Context) (event, error) {
	b, _, err := a.do(ctx, "next", http.MethodGet, "/2020-01-01/extension/event/next", nil, nil)
	if err != nil {
		return event{}, err
	}
	var ev event
	if err := json.Unmarshal(b, &ev); err != nil {
		return event{}, fmt.Errorf("extension: next: %w", err)
	}
	return ev, nil
}

// fail reports an error to /extension/init/error (during init) or
// /extension/exit/error; Lambda then fails the init or resets the
// environment. The message names what went wrong, never a secret.
func (a *api) fail(ctx context.Context, init bool, errorType string, err error) error {
	path := "/2020-01-01/extension/exit/error"
	if init {
		path = "/2020-01-01/extension/init/error"
	}
	_, _, e := a.do(ctx, "report error", http.MethodPost, path,
		map[string]string{"Lambda-Extension-Function-Error-Type": errorType},
		map[string]any{"errorMessage": err.Error(), "errorType": errorType})
	return e
}

// subscribe asks the Telemetry API for platform events at uri.
func (a *api) subscribe(ctx context.Context, uri string) error {
	_, _, err := a.do(ctx, "telemetry subscribe", http.MethodPut, "/2022-07-01/telemetry", nil, map[string]any{
		"schemaVersion": "2022-12-13",
		"types":         []string{"platform"},
		"buffering":     map[string]int{"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
		"destination":   map[string]string{"protocol": "HTTP", "URI": uri},
	})
	return err
}
