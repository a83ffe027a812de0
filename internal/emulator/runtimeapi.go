package emulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Runtime API headers.
const (
	headerRequestID       = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline        = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN     = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID         = "Lambda-Runtime-Trace-Id"
	headerClientContext   = "Lambda-Runtime-Client-Context"
	headerCognitoIdentity = "Lambda-Runtime-Cognito-Identity"
	headerErrorType       = "Lambda-Runtime-Function-Error-Type"
	// aws-lambda-go reports a response that failed while it was streamed in
	// these trailers.
	trailerErrorType = "Lambda-Runtime-Function-Error-Type"
	trailerErrorBody = "Lambda-Runtime-Function-Error-Body"
)

// runtimeNext serves GET /runtime/invocation/next: the runtime is ready (the
// first call ends its init) and waits for the next event.
func (e *Emulator) runtimeNext(w http.ResponseWriter, r *http.Request) {
	env := e.current()
	if env == nil {
		writeError(w, http.StatusInternalServerError, "InternalServerError", "no execution environment")
		return
	}
	env.mu.Lock()
	waiting := env.inflight != nil && !env.responded
	env.runtimeStarted = true
	env.mu.Unlock()
	if waiting {
		writeError(w, http.StatusForbidden, "InvalidStateTransition",
			"State transition from Running to Ready failed for runtime: post the invocation's response or error first")
		return
	}
	env.signal(signal{kind: sigNext})
	select {
	case inv := <-env.rtEvents:
		h := w.Header()
		h.Set(headerRequestID, inv.id)
		h.Set(headerDeadline, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		h.Set(headerFunctionARN, e.functionARN())
		h.Set(headerTraceID, inv.traceID)
		if inv.clientContext != "" {
			h.Set(headerClientContext, inv.clientContext)
		}
		if inv.cognitoIdentity != "" {
			h.Set(headerCognitoIdentity, inv.cognitoIdentity)
		}
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(inv.payload)
	case <-env.done:
	case <-r.Context().Done():
	}
}

// runtimeResult serves POST /runtime/invocation/{id}/response (failed false)
// and …/error (failed true). The caller of Invoke gets the result as soon as
// the body is read.
func (e *Emulator) runtimeResult(failed bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		received := time.Now()
		id := r.PathValue("id")
		env := e.current()
		ok := false
		if env != nil {
			env.mu.Lock()
			if ok = env.inflight != nil && env.inflight.id == id && !env.responded; ok {
				env.responded = true
			}
			env.mu.Unlock()
		}
		if !ok {
			writeError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
		s := signal{kind: sigResponse, received: received, body: body, failed: failed}
		tooLarge := len(body) > maxPayload
		switch {
		case err != nil:
			s.failed, s.errorType = true, "Runtime.TruncatedResponse"
			s.body = errorJSON(s.errorType, "reading the response: "+err.Error())
		case tooLarge:
			s.failed, s.errorType = true, "Function.ResponseSizeTooLarge"
			s.body = errorJSON(s.errorType, fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", maxPayload))
		case failed:
			s.errorType = errorTypeOf(r.Header.Get(headerErrorType), body)
		case r.Trailer.Get(trailerErrorType) != "":
			s.failed, s.errorType = true, r.Trailer.Get(trailerErrorType)
			if doc, err := base64.StdEncoding.DecodeString(r.Trailer.Get(trailerErrorBody)); err == nil {
				s.body = doc
			}
		}
		s.read = time.Now()
		env.signal(s)
		if tooLarge {
			writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
				fmt.Sprintf("Exceeded maximum allowed payload size (%d bytes).", maxPayload))
			return
		}
		accepted(w)
	}
}

// runtimeInitError serves POST /runtime/init/error, which a runtime may call
// before its first next.
func (e *Emulator) runtimeInitError(w http.ResponseWriter, r *http.Request) {
	env := e.current()
	ok := false
	if env != nil {
		env.mu.Lock()
		ok = !env.runtimeStarted
		env.mu.Unlock()
	}
	if !ok {
		writeError(w, http.StatusForbidden, "InvalidStateTransition", "State transition from Ready to InitError failed for runtime: init is over")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	errorType := errorTypeOf(r.Header.Get(headerErrorType), body)
	var doc errorDocument
	_ = json.Unmarshal(body, &doc)
	env.signal(signal{kind: sigInitError, errorType: errorType, message: doc.ErrorMessage})
	accepted(w)
}

// errorTypeOf is the error type the runtime reported: its header, or the
// errorType of the error document it posted.
func errorTypeOf(header string, body []byte) string {
	if header != "" {
		return header
	}
	var doc errorDocument
	if json.Unmarshal(body, &doc) == nil && doc.ErrorType != "" {
		return doc.ErrorType
	}
	return "Runtime.Unknown"
}

func errorJSON(errorType, message string) []byte {
	b, _ := json.Marshal(errorDocument{ErrorMessage: message, ErrorType: errorType})
	return b
}
