package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
)

// Extensions API headers.
const (
	headerExtensionName      = "Lambda-Extension-Name"
	headerExtensionID        = "Lambda-Extension-Identifier"
	headerExtensionEventID   = "Lambda-Extension-Event-Identifier"
	headerExtensionErrorType = "Lambda-Extension-Function-Error-Type"
	headerExtensionFeatures  = "Lambda-Extension-Accept-Feature"
)

// registerResponse is the body of a successful registration. accountId is
// there only when the extension asked for it with the
// Lambda-Extension-Accept-Feature header.
type registerResponse struct {
	FunctionName    string `json:"functionName"`
	FunctionVersion string `json:"functionVersion"`
	Handler         string `json:"handler"`
	AccountID       string `json:"accountId,omitempty"`
}

// invokeEvent and shutdownEvent are what event/next returns.
type invokeEvent struct {
	EventType          string  `json:"eventType"`
	DeadlineMs         int64   `json:"deadlineMs"`
	RequestID          string  `json:"requestId"`
	InvokedFunctionArn string  `json:"invokedFunctionArn"`
	Tracing            tracing `json:"tracing"`
}

type tracing struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type shutdownEvent struct {
	EventType      string `json:"eventType"`
	ShutdownReason string `json:"shutdownReason"`
	DeadlineMs     int64  `json:"deadlineMs"`
}

// register serves POST /extension/register. A name that matches a file in
// the extensions directory registers that external extension; any other
// name is an internal extension, registered from the function process (as
// aws-lambda-go does to get SIGTERM), which may not ask for SHUTDOWN.
// Registrations close when the runtime first calls next.
func (e *Emulator) register(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(headerExtensionName)
	if name == "" {
		writeError(w, http.StatusForbidden, "Extension.InvalidExtensionName", "Empty extension name")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	var req struct {
		Events            []string `json:"events"`
		ConfigurationKeys []string `json:"configurationKeys"`
	}
	if err == nil && len(body) > 0 {
		err = json.Unmarshal(body, &req)
	}
	switch {
	case err != nil:
		writeError(w, http.StatusForbidden, "InvalidRequestFormat", err.Error())
		return
	case len(req.ConfigurationKeys) > 0:
		writeError(w, http.StatusForbidden, "InvalidRequestFormat", "configurationKeys are deprecated; use environment variables instead")
		return
	}
	env := e.current()
	if env == nil {
		writeError(w, http.StatusForbidden, "Extension.RegistrationClosed", "Extension registration closed already")
		return
	}
	env.mu.Lock()
	ext, status, errorType, msg := env.registerLocked(name, req.Events)
	env.mu.Unlock()
	if ext == nil {
		writeError(w, status, errorType, msg)
		return
	}
	e.mu.Lock()
	e.exts[ext.id] = ext
	e.mu.Unlock()
	env.signal(signal{kind: sigRegistered, ext: ext})

	resp := registerResponse{
		FunctionName:    e.cfg.FunctionName,
		FunctionVersion: functionVersion,
		Handler:         filepath.Base(e.cfg.Function),
	}
	for _, f := range strings.Split(r.Header.Get(headerExtensionFeatures), ",") {
		if strings.TrimSpace(f) == "accountId" {
			resp.AccountID = accountID
		}
	}
	w.Header().Set(headerExtensionID, ext.id)
	writeJSON(w, http.StatusOK, resp)
}

// registerLocked checks and records a registration; it returns the
// extension, or the answer to refuse it with. Called with env.mu held.
func (env *env) registerLocked(name string, events []string) (ext *extension, status int, errorType, msg string) {
	if !env.regOpen {
		return nil, http.StatusForbidden, "Extension.RegistrationClosed", "Extension registration closed already"
	}
	internal := !env.external[name]
	registered := []string{}
	for _, ev := range events {
		switch {
		case ev != "INVOKE" && ev != "SHUTDOWN":
			return nil, http.StatusForbidden, "Extension.InvalidEventType", fmt.Sprintf("%s: unknown event (want INVOKE or SHUTDOWN)", ev)
		case ev == "SHUTDOWN" && internal:
			return nil, http.StatusForbidden, "Extension.InvalidEventType", "SHUTDOWN: internal extensions cannot register for SHUTDOWN (an external extension registers under its file name)"
		}
		if !slices.Contains(registered, ev) {
			registered = append(registered, ev)
		}
	}
	switch {
	case env.byName[name] != nil:
		return nil, http.StatusForbidden, "Extension.InvalidExtensionState", "Extension with this name already registered"
	case len(env.extensions) >= maxExtensions:
		return nil, http.StatusForbidden, "Extension.TooManyExtensions", fmt.Sprintf("Extension limit (%d) reached", maxExtensions)
	}
	ext = &extension{
		id:       newUUID(),
		name:     name,
		internal: internal,
		events:   registered,
		env:      env,
		queue:    make(chan []byte, 1),
	}
	env.extensions = append(env.extensions, ext)
	env.byName[name] = ext
	return ext, http.StatusOK, "", ""
}

// extensionNext serves GET /extension/event/next: the extension is ready,
// and waits for its next event.
func (e *Emulator) extensionNext(w http.ResponseWriter, r *http.Request) {
	ext := e.extensionFor(w, r)
	if ext == nil {
		return
	}
	env := ext.env
	env.signal(signal{kind: sigNext, ext: ext})
	select {
	case ev := <-ext.queue:
		w.Header().Set(headerExtensionEventID, newUUID())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(ev)
	case <-env.done:
		writeError(w, http.StatusInternalServerError, "Extension.EnvironmentGone", "The execution environment has shut down; exit promptly")
	case <-r.Context().Done():
	}
}

// extensionError serves /extension/init/error and /extension/exit/error: the
// environment fails with errorType (Extension.InitError or
// Extension.ExitError), as Lambda restarts it.
func (e *Emulator) extensionError(errorType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ext := e.extensionFor(w, r)
		if ext == nil {
			return
		}
		reported := r.Header.Get(headerExtensionErrorType)
		if reported == "" {
			writeError(w, http.StatusForbidden, "Extension.MissingHeader", "Missing "+headerExtensionErrorType+" header")
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		msg := reported
		var doc errorDocument
		if json.Unmarshal(body, &doc) == nil && doc.ErrorMessage != "" {
			msg += ": " + doc.ErrorMessage
		}
		ext.env.signal(signal{kind: sigExtensionError, ext: ext, errorType: errorType, message: msg})
		accepted(w)
	}
}
