// Command extension is the emulator tests' external Lambda extension,
// standard library only. It registers under its file name, subscribes to
// the Telemetry API and writes everything it sees, one JSON object a line,
// to $EXT_OUT_DIR/<name>.jsonl:
//
//	{"kind":"register","at":…,"status":200,"body":{…},"env":{…}}
//	{"kind":"subscribe","at":…,"status":200,"body":…}
//	{"kind":"telemetry","at":…,"body":[…records…]}
//	{"kind":"event","at":…,"body":{…INVOKE or SHUTDOWN…}}
//	{"kind":"next","at":…}          (about to call next again)
//
// "at" is Unix time in nanoseconds. Behaviour is steered per extension by
// EXT_<NAME>_<SETTING> variables (NAME in upper case):
//
//	CRASH=before-register|after-register  exit 3 at that point
//	HANG=before-register                   never register
//	INIT_ERROR=Type                        report an init error and exit
//	EVENTS=INVOKE,SHUTDOWN                 what to register for (default both)
//	POSTWORK=300ms                         work this long after each INVOKE before calling next
//	IGNORE_SHUTDOWN=1                      on SHUTDOWN, hang instead of exiting
//	TELEMETRY=off                          do not subscribe
//	SCHEMA=2022-12-13                      telemetry schema version (default 2022-12-13)
//	TIMEOUT_MS=25                          telemetry buffering timeoutMs (default 25)
//	TYPES=platform,function,extension      telemetry types (default all three)
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	name = filepath.Base(os.Args[0])
	api  = "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API")
	mu   sync.Mutex
	out  *os.File
)

func setting(key string) string {
	return os.Getenv("EXT_" + strings.ToUpper(name) + "_" + key)
}

// note appends one line to the output file.
func note(kind string, status int, body []byte, extra map[string]any) {
	line := map[string]any{"kind": kind, "at": time.Now().UnixNano()}
	if status != 0 {
		line["status"] = status
	}
	if len(body) > 0 {
		if json.Valid(body) {
			line["body"] = json.RawMessage(body)
		} else {
			line["body"] = string(body)
		}
	}
	for k, v := range extra {
		line[k] = v
	}
	b, _ := json.Marshal(line)
	mu.Lock()
	defer mu.Unlock()
	_, _ = out.Write(append(b, '\n'))
}

func call(method, path string, header map[string]string, body []byte) (int, http.Header, []byte) {
	req, err := http.NewRequest(method, api+path, bytes.NewReader(body))
	if err != nil {
		fail(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, name+":", err)
	os.Exit(1)
}

func main() {
	var err error
	out, err = os.OpenFile(filepath.Join(os.Getenv("EXT_OUT_DIR"), name+".jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fail(err)
	}
	if setting("HANG") == "before-register" {
		time.Sleep(time.Hour)
	}
	if setting("CRASH") == "before-register" {
		fmt.Println(name + " crashing before register")
		os.Exit(3)
	}
	events := []string{"INVOKE", "SHUTDOWN"}
	if s := setting("EVENTS"); s != "" {
		events = strings.Split(s, ",")
	}
	reg, _ := json.Marshal(map[string]any{"events": events})
	status, header, body := call("POST", "/2020-01-01/extension/register",
		map[string]string{"Lambda-Extension-Name": name, "Lambda-Extension-Accept-Feature": "accountId"}, reg)
	env := map[string]string{}
	for _, k := range []string{"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_INITIALIZATION_TYPE",
		"AWS_REGION", "_HANDLER", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_LOG_STREAM_NAME", "FN_CUSTOM"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	note("register", status, body, map[string]any{"env": env})
	if status != http.StatusOK {
		os.Exit(1)
	}
	id := header.Get("Lambda-Extension-Identifier")
	if setting("CRASH") == "after-register" {
		fmt.Println(name + " crashing after register")
		os.Exit(3)
	}
	if t := setting("INIT_ERROR"); t != "" {
		status, _, body := call("POST", "/2020-01-01/extension/init/error",
			map[string]string{"Lambda-Extension-Identifier": id, "Lambda-Extension-Function-Error-Type": t},
			[]byte(`{"errorMessage":"cannot start","errorType":"`+t+`"}`))
		note("initerror", status, body, nil)
		os.Exit(1)
	}
	if setting("TELEMETRY") != "off" {
		subscribe(id)
	}
	fmt.Println(name + " ready")
	for {
		note("next", 0, nil, nil)
		status, _, body := call("GET", "/2020-01-01/extension/event/next", map[string]string{"Lambda-Extension-Identifier": id}, nil)
		note("event", status, body, nil)
		var ev struct {
			EventType string `json:"eventType"`
		}
		_ = json.Unmarshal(body, &ev)
		switch ev.EventType {
		case "INVOKE":
			if d, err := time.ParseDuration(setting("POSTWORK")); err == nil {
				time.Sleep(d)
			}
		case "SHUTDOWN":
			fmt.Println(name + " shutting down")
			if setting("IGNORE_SHUTDOWN") != "" {
				time.Sleep(time.Hour)
			}
			os.Exit(0)
		default:
			fail(fmt.Errorf("next answered %d %s", status, body))
		}
	}
}

// subscribe starts a telemetry listener and subscribes it.
func subscribe(id string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			note("telemetry", 0, b, nil)
		}))
	}()
	schema := setting("SCHEMA")
	if schema == "" {
		schema = "2022-12-13"
	}
	timeout := 25
	if s := setting("TIMEOUT_MS"); s != "" {
		timeout, _ = strconv.Atoi(s)
	}
	types := []string{"platform", "function", "extension"}
	if s := setting("TYPES"); s != "" {
		types = strings.Split(s, ",")
	}
	port := ln.Addr().(*net.TCPAddr).Port
	sub, _ := json.Marshal(map[string]any{
		"schemaVersion": schema,
		"types":         types,
		"buffering":     map[string]int{"maxItems": 1000, "maxBytes": 262144, "timeoutMs": timeout},
		"destination":   map[string]string{"protocol": "HTTP", "URI": fmt.Sprintf("http://sandbox.localdomain:%d/telemetry", port)},
	})
	status, _, body := call("PUT", "/2022-07-01/telemetry", map[string]string{"Lambda-Extension-Identifier": id, "Content-Type": "application/json"}, sub)
	note("subscribe", status, body, nil)
}
