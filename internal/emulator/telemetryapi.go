package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// The Telemetry API's schema versions, and its buffering limits and
// defaults (Telemetry API reference, "Configuring memory usage and
// buffering").
var schemaVersions = []string{"2025-01-29", "2022-12-13", "2022-07-01"}

const (
	minItems, maxItems, defaultItems = 1_000, 10_000, 10_000
	minBytes, maxBytes, defaultBytes = 262_144, 1_048_576, 262_144
	minTimeoutMs, maxTimeoutMs       = 25, 30_000
	defaultTimeoutMs                 = 1_000
	reservedPort                     = 9001 // Lambda keeps it for its own APIs
)

// subscribeRequest is the body of PUT /2022-07-01/telemetry.
type subscribeRequest struct {
	SchemaVersion string   `json:"schemaVersion"`
	Types         []string `json:"types"`
	Buffering     *struct {
		MaxItems  *int `json:"maxItems"`
		MaxBytes  *int `json:"maxBytes"`
		TimeoutMs *int `json:"timeoutMs"`
	} `json:"buffering"`
	Destination *struct {
		Protocol string `json:"protocol"`
		URI      string `json:"URI"`
	} `json:"destination"`
}

// subscribeTelemetry serves PUT /2022-07-01/telemetry. Subscriptions are
// taken during init, as Lambda takes them; the subscriber then receives the
// environment's records from its start, including the init's.
func (e *Emulator) subscribeTelemetry(w http.ResponseWriter, r *http.Request) {
	ext := e.extensionFor(w, r)
	if ext == nil {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "ValidationError", err.Error())
		return
	}
	sub, err := parseSubscription(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "ValidationError", err.Error())
		return
	}
	env := ext.env
	env.mu.Lock()
	closed := env.initDone
	env.mu.Unlock()
	if closed {
		writeError(w, http.StatusForbidden, "Telemetry.SubscriptionClosed", "Telemetry API subscriptions are taken during init only")
		return
	}
	sub.name = ext.name
	env.hub.subscribe(sub)
	e.emit(env, recordSubscription, subscriptionRecord{Name: ext.name, State: "Subscribed", Types: sub.types})
	writeJSON(w, http.StatusOK, "OK")
}

// parseSubscription validates a subscription request as the Telemetry API
// does and fills in the buffering defaults. Only HTTP destinations inside
// the environment are taken: sandbox.localdomain (or sandbox, localhost,
// 127.0.0.1), resolved to the loopback address.
func parseSubscription(body []byte) (*subscription, error) {
	var req subscribeRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("request body is not valid JSON: %w", err)
	}
	switch {
	case req.SchemaVersion == "":
		return nil, errors.New("schemaVersion is required")
	case !slices.Contains(schemaVersions, req.SchemaVersion):
		return nil, fmt.Errorf("schemaVersion %q: want one of %v", req.SchemaVersion, schemaVersions)
	case len(req.Types) == 0:
		return nil, errors.New("types is required: platform, function and/or extension")
	case req.Destination == nil:
		return nil, errors.New("destination is required")
	}
	s := &subscription{
		maxItems: defaultItems,
		maxBytes: defaultBytes,
		timeout:  defaultTimeoutMs * time.Millisecond,
	}
	for _, t := range req.Types {
		if t != "platform" && t != "function" && t != "extension" {
			return nil, fmt.Errorf("types: %q: want platform, function or extension", t)
		}
		if !slices.Contains(s.types, t) {
			s.types = append(s.types, t)
		}
	}
	if b := req.Buffering; b != nil {
		var err error
		if s.maxItems, err = bounded("buffering.maxItems", b.MaxItems, minItems, maxItems, defaultItems); err != nil {
			return nil, err
		}
		if s.maxBytes, err = bounded("buffering.maxBytes", b.MaxBytes, minBytes, maxBytes, defaultBytes); err != nil {
			return nil, err
		}
		ms, err := bounded("buffering.timeoutMs", b.TimeoutMs, minTimeoutMs, maxTimeoutMs, defaultTimeoutMs)
		if err != nil {
			return nil, err
		}
		s.timeout = time.Duration(ms) * time.Millisecond
	}
	dest, err := destination(req.Destination.Protocol, req.Destination.URI)
	if err != nil {
		return nil, err
	}
	s.url = dest
	return s, nil
}

func bounded(name string, v *int, lo, hi, def int) (int, error) {
	if v == nil {
		return def, nil
	}
	if *v < lo || *v > hi {
		return 0, fmt.Errorf("%s %d: must be between %d and %d", name, *v, lo, hi)
	}
	return *v, nil
}

// destination checks a subscription's destination and returns the URL the
// emulator posts to.
func destination(protocol, uri string) (string, error) {
	switch protocol {
	case "HTTP":
	case "TCP":
		return "", errors.New("destination.protocol TCP: the emulator delivers over HTTP only; subscribe with HTTP")
	case "":
		return "", errors.New("destination.protocol is required: HTTP or TCP")
	default:
		return "", fmt.Errorf("destination.protocol %q: want HTTP or TCP", protocol)
	}
	if uri == "" {
		return "", errors.New("destination.URI is required")
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("destination.URI %q: %w", uri, err)
	}
	if u.Scheme != "http" {
		return "", fmt.Errorf("destination.URI %q: Lambda delivers over http, not %q", uri, u.Scheme)
	}
	switch u.Hostname() {
	case "sandbox.localdomain", "sandbox", "localhost", "127.0.0.1":
	default:
		return "", fmt.Errorf("destination.URI %q: the listener must be inside the execution environment (http://sandbox.localdomain:PORT)", uri)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port < 1 || port > 65535 {
		return "", fmt.Errorf("destination.URI %q: needs a port", uri)
	}
	if port == reservedPort {
		return "", fmt.Errorf("destination.URI %q: port %d is reserved by Lambda", uri, reservedPort)
	}
	u.Host = net.JoinHostPort("127.0.0.1", u.Port())
	return u.String(), nil
}
