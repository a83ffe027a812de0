// Package downstream is the one outbound call the example functions make:
// a JSON POST to the service each example stands in front of, through the
// client the example passes (protect.Client(), so that lambdarasp checks
// and records the call for the invocation whose context it carries).
package downstream

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"
)

// Post sends body as JSON to base+path with client, giving up after
// timeout, and fails on a transport error (a *protect.DeniedError inside
// it when lambdarasp refused the destination) or a status of 300 or more.
// An empty base means no service is configured: nothing is sent.
func Post(ctx context.Context, client *http.Client, base, path string, body []byte, timeout time.Duration) error {
	if base == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s%s: status %d", base, path, resp.StatusCode)
	}
	return nil
}
