package emulator

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// InvokeHandler serves Lambda's Invoke API for the function at the path the
// AWS runtime interface emulator uses,
//
//	POST /2015-03-31/functions/function/invocations
//
// (any function name is accepted in place of "function"), so that the usual
//
//	curl -d '{}' http://127.0.0.1:9000/2015-03-31/functions/function/invocations
//
// works. It answers as Lambda does: 200 with the response, or with the error
// document and X-Amz-Function-Error: Unhandled when the function failed;
// X-Amz-Invocation-Type: Event answers 202 at once and DryRun 204;
// X-Amz-Client-Context (base64 JSON) and X-Amzn-Trace-Id reach the runtime.
func (e *Emulator) InvokeHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", e.serveInvoke)
	return mux
}

// invokeError is the error shape of Lambda's Invoke API itself.
type invokeError struct {
	Type    string `json:"Type"`
	Message string `json:"message"`
}

func writeInvokeError(w http.ResponseWriter, status int, exception, message string) {
	w.Header().Set("X-Amzn-ErrorType", exception)
	writeJSON(w, status, invokeError{Type: "User", Message: message})
}

func (e *Emulator) serveInvoke(w http.ResponseWriter, r *http.Request) {
	payload, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	if err != nil {
		writeInvokeError(w, http.StatusBadRequest, "InvalidRequestContentException", err.Error())
		return
	}
	if len(payload) > maxPayload {
		writeInvokeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException",
			"Request must be smaller than "+strconv.Itoa(maxPayload)+" bytes for the InvokeFunction operation")
		return
	}
	var opts []InvokeOption
	if cc := r.Header.Get("X-Amz-Client-Context"); cc != "" {
		b, err := base64.StdEncoding.DecodeString(cc)
		if err != nil || !json.Valid(b) {
			writeInvokeError(w, http.StatusBadRequest, "InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object.")
			return
		}
		opts = append(opts, WithClientContext(string(b)))
	}
	if t := r.Header.Get("X-Amzn-Trace-Id"); t != "" {
		opts = append(opts, WithTraceID(t))
	}
	inv := e.newInvocation(payload, opts)
	h := w.Header()
	h.Set("X-Amzn-Requestid", inv.id)
	async := false
	switch r.Header.Get("X-Amz-Invocation-Type") {
	case "", "RequestResponse":
	case "Event":
		async = true // answered once the environment has taken it
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		writeInvokeError(w, http.StatusBadRequest, "InvalidParameterValueException", "X-Amz-Invocation-Type: want RequestResponse, Event or DryRun")
		return
	}
	err = e.submit(r.Context(), inv)
	switch {
	case errors.Is(err, ErrClosed):
		writeInvokeError(w, http.StatusServiceUnavailable, "ServiceException", "the emulator is shutting down")
		return
	case err != nil:
		return // the caller went away before the environment took the event
	case async:
		w.WriteHeader(http.StatusAccepted)
		return
	}
	var res *Result
	select {
	case out := <-inv.result:
		if out.err != nil {
			writeInvokeError(w, http.StatusServiceUnavailable, "ServiceException", "the emulator is shutting down")
			return
		}
		res = out.result
	case <-r.Context().Done():
		return // the caller went away; the invocation runs on
	}
	h.Set("X-Amz-Executed-Version", functionVersion)
	if res.FunctionError != "" {
		h.Set("X-Amz-Function-Error", res.FunctionError)
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Payload)
}
