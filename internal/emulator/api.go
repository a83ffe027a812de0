package emulator

import (
	"encoding/json"
	"net/http"
)

// apiHandler serves the Runtime, Extensions and Telemetry APIs on the
// address the processes know as AWS_LAMBDA_RUNTIME_API.
func (e *Emulator) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", e.runtimeNext)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", e.runtimeResult(false))
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", e.runtimeResult(true))
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", e.runtimeInitError)
	mux.HandleFunc("POST /2020-01-01/extension/register", e.register)
	mux.HandleFunc("GET /2020-01-01/extension/event/next", e.extensionNext)
	mux.HandleFunc("POST /2020-01-01/extension/init/error", e.extensionError("Extension.InitError"))
	mux.HandleFunc("POST /2020-01-01/extension/exit/error", e.extensionError("Extension.ExitError"))
	mux.HandleFunc("PUT /2022-07-01/telemetry", e.subscribeTelemetry)
	mux.HandleFunc("PUT /2022-07-01/telemetry/", e.subscribeTelemetry)
	return mux
}

// errorDocument is the error shape of every Lambda API, and of a function
// error in Lambda's Invoke API.
type errorDocument struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, errorType, message string) {
	writeJSON(w, status, errorDocument{ErrorMessage: message, ErrorType: errorType})
}

// accepted is the answer to a post the platform took: 202 {"status":"OK"}.
func accepted(w http.ResponseWriter) {
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
}

// extensionFor finds the registration named by the request's
// Lambda-Extension-Identifier header, or answers 403 as Lambda does.
func (e *Emulator) extensionFor(w http.ResponseWriter, r *http.Request) *extension {
	id := r.Header.Get(headerExtensionID)
	switch {
	case id == "":
		writeError(w, http.StatusForbidden, "Extension.MissingExtensionIdentifier", "Missing "+headerExtensionID+" header")
		return nil
	case !isUUID(id):
		writeError(w, http.StatusForbidden, "Extension.InvalidExtensionIdentifier", "Invalid "+headerExtensionID+" header: not a UUID")
		return nil
	}
	e.mu.Lock()
	ext := e.exts[id]
	e.mu.Unlock()
	if ext == nil {
		writeError(w, http.StatusForbidden, "Extension.UnknownExtensionIdentifier", "Unknown extension "+id)
		return nil
	}
	return ext
}
