package extension

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Webhook delivery bounds: a full queue drops its oldest alert; each alert
// gets maxAttempts tries, retryDelay apart (doubling), each at most
// attemptTimeout; a flush during an invocation takes at most invokeBudget
// and leaves the rest for the next one (or SHUTDOWN).
const (
	maxQueue       = 100
	maxAttempts    = 3
	retryDelay     = 100 * time.Millisecond
	attemptTimeout = 2 * time.Second
	invokeBudget   = 1 * time.Second
)

// webhook posts alerts to one URL, as generic JSON or as a Slack
// incoming-webhook message. The URL may hold a secret (Slack's do): it is
// never logged, only its host.
type webhook struct {
	url    string
	host   string
	slack  bool
	client *http.Client
	log    *slog.Logger

	queue   []pending
	dropped int
}

type pending struct {
	alert    Alert
	attempts int
}

func newWebhook(rawURL, format string, client *http.Client, log *slog.Logger) *webhook {
	u, _ := url.Parse(rawURL)
	return &webhook{url: rawURL, host: u.Host, slack: format == "slack", client: client, log: log}
}

func (w *webhook) enqueue(a Alert) {
	if len(w.queue) >= maxQueue {
		w.queue = w.queue[1:]
		w.dropped++
	}
	w.queue = append(w.queue, pending{alert: a})
}

// flush delivers the queue in order until it is empty or ctx ends. An
// alert that fails maxAttempts times is dropped and logged.
func (w *webhook) flush(ctx context.Context) {
	for len(w.queue) > 0 && ctx.Err() == nil {
		p := &w.queue[0]
		if p.attempts > 0 {
			delay := retryDelay << (p.attempts - 1)
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
				return // not enough time to wait: next flush
			}
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
		}
		p.attempts++
		err := w.post(ctx, p.alert)
		if err == nil {
			w.queue = w.queue[1:]
			continue
		}
		if p.attempts >= maxAttempts || !retryable(err) {
			w.log.Warn("lambdarasp webhook gave up on an alert", "host", w.host, "type", string(p.alert.Type),
				"attempts", p.attempts, "error", err.Error())
			w.queue = w.queue[1:]
		}
	}
}

// statusError is a webhook's non-2xx answer.
type statusError int

func (e statusError) Error() string { return fmt.Sprintf("status %d", int(e)) }

// retryable: network errors, 429 and 5xx are worth another try; another
// 4xx will answer the same.
func retryable(err error) bool {
	if s, ok := err.(statusError); ok {
		return s == http.StatusTooManyRequests || s >= 500
	}
	return true
}

func (w *webhook) post(ctx context.Context, a Alert) error {
	body, err := w.body(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lambdarasp-extension")
	resp, err := w.client.Do(req)
	if err != nil {
		// The error text can hold the URL: keep only what failed.
		if ue, ok := err.(*url.Error); ok {
			return fmt.Errorf("%s: %w", ue.Op, ue.Err)
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return statusError(resp.StatusCode)
	}
	return nil
}

// body is the request body: the alert itself (generic), or a Slack
// message, {"text": "…"}.
func (w *webhook) body(a Alert) ([]byte, error) {
	if !w.slack {
		return json.Marshal(struct {
			Source string `json:"source"`
			Alert
		}{"lambdarasp", a})
	}
	var b strings.Builder
	fmt.Fprintf(&b, ":rotating_light: *lambdarasp* [%s] `%s` on `%s`: %s", a.Severity, a.Type, a.Function, a.Message)
	if a.Action != "" {
		fmt.Fprintf(&b, "\n*Action:* %s", a.Action)
	}
	if len(a.Values) > 0 {
		keys := make([]string, 0, len(a.Values))
		for k := range a.Values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("\n")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s=%g", k, a.Values[k])
		}
	}
	if a.RequestID != "" {
		fmt.Fprintf(&b, "\nrequest %s", a.RequestID)
	}
	if a.Suppressed > 0 {
		fmt.Fprintf(&b, " (+%d similar held back)", a.Suppressed)
	}
	return json.Marshal(map[string]string{"text": b.String()})
}
