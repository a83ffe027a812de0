package extension

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
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
	ln       net.Listener
	srv      *http.Server
	events   chan platformEvent
	dropped  atomic.Int64 // records the event loop had no room for
	refused  atomic.Int64 // batches refused: malformed, too large, too many at once, not from this host
	inflight atomic.Int64 // batches being read
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

// Telemetry listener bounds. Lambda sends one batch at a time, of at most
// 1,000 records and 256 KiB as the extension subscribes (1 MiB at most).
// Anything past them is refused or dropped, and counted: memory stays
// bounded however the listener is flooded (TestTelemetryFlood measures it).
const (
	maxTelemetryBatch    = 8 << 20 // bytes of one batch body
	maxTelemetryRecords  = 4096    // records of one batch passed on, the size of the event loop's queue
	maxTelemetryInflight = 2       // batches read at once; more are answered 503
)

func (t *telemetryListener) serve(w http.ResponseWriter, r *http.Request) {
	defer r.Body.Close()
	if !localPeer(r) {
		t.refused.Add(1)
		http.Error(w, "telemetry is taken from this host only", http.StatusForbidden)
		return
	}
	if t.inflight.Add(1) > maxTelemetryInflight {
		t.inflight.Add(-1)
		t.refused.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	defer t.inflight.Add(-1)
	batch, over, err := readBatch(http.MaxBytesReader(w, r.Body, maxTelemetryBatch))
	if err != nil {
		t.refused.Add(1)
		http.Error(w, "bad batch", http.StatusBadRequest)
		return
	}
	t.dropped.Add(over)
	for _, e := range batch {
		select {
		case t.events <- e:
		default:
			t.dropped.Add(1)
		}
	}
	w.WriteHeader(http.StatusOK)
}

// readBatch decodes one batch — one JSON array (or null) and nothing after
// it — record by record, so that a batch of many records costs the ones
// the detectors use (platform.runtimeDone and platform.report), not a
// decoded copy of every one. It keeps maxTelemetryRecords of them and
// counts the rest in over. A batch it cannot read whole is an error, and
// none of its records is kept.
func readBatch(body io.Reader) (batch []platformEvent, over int64, err error) {
	dec := json.NewDecoder(body)
	tok, err := dec.Token()
	if err != nil {
		return nil, 0, err
	}
	if tok != nil {
		if tok != json.Delim('[') {
			return nil, 0, errors.New("telemetry: a batch is a JSON array")
		}
		for dec.More() {
			var e platformEvent
			if err := dec.Decode(&e); err != nil {
				return nil, 0, err
			}
			switch {
			case e.Type != "platform.runtimeDone" && e.Type != "platform.report":
			case len(batch) == maxTelemetryRecords:
				over++
			default:
				batch = append(batch, e)
			}
		}
		if _, err := dec.Token(); err != nil { // ]
			return nil, 0, err
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, 0, errors.New("telemetry: data after the batch")
	}
	return batch, over, nil
}

// localPeer reports whether r comes from this host: from loopback, or from
// the address it was sent to (the sandbox address Lambda's Telemetry API
// posts to, when it is not a loopback one).
func localPeer(r *http.Request) bool {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	if peer.Addr().Unmap().IsLoopback() {
		return true
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	l, err := netip.ParseAddrPort(local.String())
	return err == nil && l.Addr().Unmap() == peer.Addr().Unmap()
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
