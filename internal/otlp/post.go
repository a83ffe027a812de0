package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Error is an export that failed; its message never holds the URL or a
// header (either may carry a secret). Retry says whether trying again may
// succeed (the network, 429, 502, 503, 504, as the specification says);
// After is the server's Retry-After, if it gave one.
type Error struct {
	Status int // 0: no response
	Retry  bool
	After  time.Duration
	Err    error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("otlp: export answered %d", e.Status)
	}
	return "otlp: export: " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Post sends one OTLP/HTTP protobuf request body to t within t.Timeout
// (and ctx), and reads the answer to its end so the connection is kept.
// It returns nil on a 2xx, an *Error otherwise.
func Post(ctx context.Context, client *http.Client, t Target, body []byte) error {
	if t.Gzip {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		_, _ = w.Write(body)
		_ = w.Close()
		body = z.Bytes()
	}
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return &Error{Err: err}
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if t.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for _, h := range t.Headers {
		req.Header.Set(h[0], h[1])
	}
	resp, err := client.Do(req)
	if err != nil {
		// Not the *url.Error itself: its message carries the URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &Error{Retry: !errors.Is(err, context.Canceled), Err: err}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	e := &Error{Status: resp.StatusCode}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		e.Retry = true
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			e.After = time.Duration(s) * time.Second
		}
	}
	return e
}
