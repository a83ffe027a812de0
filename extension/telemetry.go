package extension

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// platformEvent is one Telemetry API record the detectors use.
type platformEvent struct {
	Time   time.Time
	Type   string // platform.runtimeDone or platform.report
	Record struct {
		RequestID string `json:"requestId"`
		Status    string `json:"status"`
		Metrics   struct {
			DurationMs      float64 `json:"durationMs"`
			MaxMemoryUsedMB int     `json:"maxMemoryUsedMB"`
			MemorySizeMB    int     `json:"memorySizeMB"`
		} `json:"metrics"`
	}
}

// telemetryListener receives the Telemetry API's batches and passes the
// records the detectors use to the event loop.
type telemetryListener struct {
	ln      net.Listener
	srv     *http.Server
	events  chan platformEvent
	dropped atomic.Int64
}

// listenTelemetry listens on the address Lambda asks telemetry listeners
// to use: sandbox.localdomain, as /etc/hosts has it, else 127.0.0.1. port
// -1 takes a free one.
func listenTelemetry(hostsFile string, port int) (*telemetryListener, error) {
	host := sandboxAddr(hostsFile)
	if port < 0 {
		port = 0
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	t := &telemetryListener{ln: ln, events: make(chan platformEvent, 4096)}
	t.srv = &http.Server{Handler: http.HandlerFunc(t.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = t.srv.Serve(ln) }()
	return t, nil
}

// uri is the destination to subscribe: Lambda wants sandbox.localdomain.
func (t *telemetryListener) uri() string {
	return "http://sandbox.localdomain:" + strconv.Itoa(t.ln.Addr().(*net.TCPAddr).Port) + "/"
}

func (t *telemetryListener) close() { _ = t.srv.Close() }

// maxTelemetryBatch is the largest batch body the listener reads.
const maxTelemetryBatch = 8 << 20

func (t *telemetryListener) serve(w http.ResponseWriter, r *http.Request) {
	defer r.Body.Close()
	// One JSON array and nothing after it (json.Unmarshal refuses trailing
	// data), within maxTelemetryBatch: Lambda's batches are 1 MB at most.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTelemetryBatch+1))
	var batch []platformEvent
	if err == nil && len(body) <= maxTelemetryBatch {
		err = json.Unmarshal(body, &batch)
	}
	if err != nil || len(body) > maxTelemetryBatch {
		http.Error(w, "bad batch", http.StatusBadRequest)
		return
	}
	for _, e := range batch {
		if e.Type != "platform.runtimeDone" && e.Type != "platform.report" {
			continue
		}
		select {
		case t.events <- e:
		default:
			t.dropped.Add(1)
		}
	}
	w.WriteHeader(http.StatusOK)
}

// UnmarshalJSON reads a record as the Telemetry API sends it.
func (p *platformEvent) UnmarshalJSON(b []byte) error {
	var w struct {
		Time   string          `json:"time"`
		Type   string          `json:"type"`
		Record json.RawMessage `json:"record"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	p.Type = w.Type
	p.Time, _ = time.Parse(time.RFC3339Nano, w.Time)
	if w.Type == "platform.runtimeDone" || w.Type == "platform.report" {
		if err := json.Unmarshal(w.Record, &p.Record); err != nil {
			return errors.New("telemetry: " + w.Type + ": " + err.Error())
		}
	}
	return nil
}

// sandboxAddr is the address sandbox.localdomain has in the hosts file,
// or 127.0.0.1. The file is read rather than resolved: outside Lambda a
// DNS lookup of the name could hang the init.
func sandboxAddr(hostsFile string) string {
	f, err := os.Open(hostsFile)
	if err != nil {
		return "127.0.0.1"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		for _, name := range fields[min(1, len(fields)):] {
			if name == "sandbox.localdomain" && net.ParseIP(fields[0]) != nil {
				return fields[0]
			}
		}
	}
	return "127.0.0.1"
}
