package extension

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// policySource polls a policy over HTTP(S): the AWS AppConfig extension's
// endpoint (http://localhost:2772/applications/…/configurations/…), or
// any server, so that a security team can change every environment's
// policy — quarantine a fleet — without a redeploy. Requests carry
// If-None-Match with the last ETag; a 304, or a body identical to the last
// one, changes nothing. The URL may carry a secret: only its host is ever
// logged or alerted.
type policySource struct {
	url, host string
	every     time.Duration
	client    *http.Client

	etag    string
	sum     [32]byte
	polled  time.Time // the last attempt
	failing bool      // the current failure has been alerted
}

// Bounds of a poll.
const (
	pollTimeout     = time.Second
	initPollTimeout = 2 * time.Second
	maxPolicyBytes  = 1 << 20
)

func newPolicySource(rawURL string, every time.Duration, client *http.Client) *policySource {
	u, _ := url.Parse(rawURL)
	return &policySource{url: rawURL, host: u.Host, every: every, client: client}
}

// due reports whether a poll is due at now.
func (s *policySource) due(now time.Time) bool {
	return s.polled.IsZero() || now.Sub(s.polled) >= s.every
}

// fetch polls once. It returns the new policy when the source has one,
// nil when nothing changed, or why the source could not be used.
func (s *policySource) fetch(ctx context.Context, now time.Time) (*Policy, error) {
	s.polled = now
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("policy source %s: %w", s.host, err)
	}
	if s.etag != "" {
		req.Header.Set("If-None-Match", s.etag)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err) // without the URL
		}
		return nil, fmt.Errorf("policy source %s: %w", s.host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicyBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("policy source %s: read: %w", s.host, err)
	case resp.StatusCode == http.StatusNotModified:
		return nil, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("policy source %s: status %d", s.host, resp.StatusCode)
	case len(body) > maxPolicyBytes:
		return nil, fmt.Errorf("policy source %s: policy larger than %d bytes", s.host, maxPolicyBytes)
	}
	sum := sha256.Sum256(body)
	if sum == s.sum {
		s.etag = resp.Header.Get("ETag")
		return nil, nil
	}
	p, err := parsePolicy(body)
	if err != nil {
		return nil, fmt.Errorf("policy source %s: %w", s.host, err)
	}
	s.etag, s.sum = resp.Header.Get("ETag"), sum
	return &p, nil
}
