package decision

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPath is where the extension writes decisions and the wrapper
// reads them unless LAMBDARASP_DECISIONS_FILE says otherwise: /tmp is the
// one writable directory both processes share in Lambda.
const DefaultPath = "/tmp/lambdarasp/decisions.json"

// Version is the file format's version.
const Version = 1

// Decisions is the content of the file.
type Decisions struct {
	Version            int           `json:"version"`
	Written            time.Time     `json:"written"`
	Quarantine         *Quarantine   `json:"quarantine,omitempty"`
	BlockedIPs         []BlockedIP   `json:"blocked_ips,omitempty"`
	DeniedDestinations []Destination `json:"denied_destinations,omitempty"`
}

// Quarantine refuses every invocation until Until, with the trigger's
// blocked response.
type Quarantine struct {
	Until  time.Time `json:"until"`
	Reason string    `json:"reason,omitempty"`
}

// BlockedIP refuses HTTP requests from one client address until Until.
type BlockedIP struct {
	IP     string    `json:"ip"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason,omitempty"`
}

// Destination denies outbound calls to Host (and Port, unless 0) until
// Until. protect.Transport enforces it.
type Destination struct {
	Host   string    `json:"host"`
	Port   int       `json:"port,omitempty"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason,omitempty"`
}

// Expire drops the decisions that have ended by now and reports whether
// it dropped any: whether the file needs writing again.
func (d *Decisions) Expire(now time.Time) bool {
	n := len(d.BlockedIPs) + len(d.DeniedDestinations)
	q := d.Quarantine != nil
	if q && !now.Before(d.Quarantine.Until) {
		d.Quarantine = nil
	}
	d.BlockedIPs = keep(d.BlockedIPs, func(b BlockedIP) bool { return now.Before(b.Until) })
	d.DeniedDestinations = keep(d.DeniedDestinations, func(x Destination) bool { return now.Before(x.Until) })
	return q != (d.Quarantine != nil) || n != len(d.BlockedIPs)+len(d.DeniedDestinations)
}

func keep[T any](s []T, ok func(T) bool) []T {
	out := s[:0]
	for _, x := range s {
		if ok(x) {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Write replaces the file at path with d, atomically: a reader sees the
// old file or the new one, never a part. The directory is created if
// needed.
func Write(path string, d Decisions) error {
	d.Version = Version
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("decision: encode: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("decision: write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("decision: write %s: %w", path, err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("decision: write %s: %w", path, err)
	}
	return nil
}

// MaxFileBytes bounds the file: Read refuses a larger one without reading
// it whole. The extension's own lists (1,000 blocked IPs, 256 denied
// destinations) take about 200 KB.
const MaxFileBytes = 1 << 20

// Read reads and parses the file at path. A file that does not exist is
// no decisions, not an error; one larger than MaxFileBytes is an error.
func Read(path string) (Decisions, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Decisions{}, nil
	}
	if err != nil {
		return Decisions{}, fmt.Errorf("decision: read %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	switch {
	case err != nil:
		return Decisions{}, fmt.Errorf("decision: read %s: %w", path, err)
	case len(b) > MaxFileBytes:
		return Decisions{}, fmt.Errorf("decision: read %s: larger than %d bytes", path, MaxFileBytes)
	}
	return Parse(b)
}

// Parse decodes the file's content and checks it.
func Parse(b []byte) (Decisions, error) {
	var d Decisions
	if err := json.Unmarshal(b, &d); err != nil {
		return Decisions{}, fmt.Errorf("decision: parse: %w", err)
	}
	if d.Version != Version {
		return Decisions{}, fmt.Errorf("decision: version %d: want %d", d.Version, Version)
	}
	for _, ip := range d.BlockedIPs {
		if _, err := netip.ParseAddr(ip.IP); err != nil {
			return Decisions{}, fmt.Errorf("decision: blocked ip %q: %w", ip.IP, err)
		}
	}
	for _, x := range d.DeniedDestinations {
		if x.Host == "" || x.Port < 0 || x.Port > 65535 {
			return Decisions{}, fmt.Errorf("decision: denied destination %q port %d: want a host and a port 0-65535", x.Host, x.Port)
		}
	}
	return d, nil
}

// Active is the decisions in force, indexed for the checks the wrapper
// makes per invocation. The zero value and nil enforce nothing.
type Active struct {
	quarantine *Quarantine
	ips        map[netip.Addr]BlockedIP
	dests      map[string]Destination // "host:port", "host:0" for every port
}

func newActive(d Decisions) *Active {
	a := &Active{quarantine: d.Quarantine}
	for _, b := range d.BlockedIPs {
		if a.ips == nil {
			a.ips = map[netip.Addr]BlockedIP{}
		}
		ip, _ := netip.ParseAddr(b.IP)
		if old, ok := a.ips[ip.Unmap()]; !ok || b.Until.After(old.Until) {
			a.ips[ip.Unmap()] = b
		}
	}
	for _, x := range d.DeniedDestinations {
		if a.dests == nil {
			a.dests = map[string]Destination{}
		}
		k := destKey(x.Host, x.Port)
		if old, ok := a.dests[k]; !ok || x.Until.After(old.Until) {
			a.dests[k] = x
		}
	}
	return a
}

func destKey(host string, port int) string {
	return strings.ToLower(host) + ":" + strconv.Itoa(port)
}

// Quarantined returns the quarantine in force at now, if any.
func (a *Active) Quarantined(now time.Time) (Quarantine, bool) {
	if a == nil || a.quarantine == nil || !now.Before(a.quarantine.Until) {
		return Quarantine{}, false
	}
	return *a.quarantine, true
}

// IPBlocked returns the block in force at now on ip (an address as API
// Gateway reports it), if any.
func (a *Active) IPBlocked(ip string, now time.Time) (BlockedIP, bool) {
	if a == nil || len(a.ips) == 0 || ip == "" {
		return BlockedIP{}, false
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return BlockedIP{}, false
	}
	b, ok := a.ips[addr.Unmap()]
	if !ok || !now.Before(b.Until) {
		return BlockedIP{}, false
	}
	return b, true
}

// Denied reports whether outbound calls to host:port are denied at now.
func (a *Active) Denied(host string, port int, now time.Time) bool {
	_, ok := a.DeniedDestination(host, port, now)
	return ok
}

// DeniedDestination returns the decision in force at now that denies
// outbound calls to host:port, if any. It does not allocate when no
// destination is denied.
func (a *Active) DeniedDestination(host string, port int, now time.Time) (Destination, bool) {
	if a == nil || len(a.dests) == 0 {
		return Destination{}, false
	}
	for _, k := range [2]string{destKey(host, port), destKey(host, 0)} {
		if x, ok := a.dests[k]; ok && now.Before(x.Until) {
			return x, true
		}
	}
	return Destination{}, false
}

// Watcher gives the decisions in one file, re-reading it only when its
// stamp changes. It is safe for concurrent use.
type Watcher struct {
	path string
	cur  atomic.Pointer[snapshot]
	mu   sync.Mutex // one reload at a time
}

type snapshot struct {
	stamp  stamp
	active *Active
	err    error // the file at stamp could not be used; active is the last good
}

// NewWatcher returns a Watcher of the file at path. Nothing is read yet.
func NewWatcher(path string) *Watcher {
	w := &Watcher{path: path}
	w.cur.Store(&snapshot{})
	return w
}

// Path is the watched file's path.
func (w *Watcher) Path() string { return w.path }

// Load returns the decisions in the file. When the file's stamp is
// unchanged since the last call it returns the same *Active (and error)
// without reading. A file that disappears means no decisions. A file that
// cannot be read or parsed (truncated, garbage, empty, larger than
// MaxFileBytes, another version) keeps the last good decisions in force —
// a broken file never lifts a decision — and Load returns the error with
// them for as long as the file stays so.
func (w *Watcher) Load() (*Active, error) {
	st, ok := statFile(w.path)
	cur := w.cur.Load()
	if st == cur.stamp {
		return cur.active, cur.err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur = w.cur.Load(); st == cur.stamp {
		return cur.active, cur.err
	}
	if !ok {
		w.cur.Store(&snapshot{stamp: st})
		return nil, nil
	}
	d, err := Read(w.path)
	if err != nil {
		w.cur.Store(&snapshot{stamp: st, active: cur.active, err: err})
		return cur.active, err
	}
	a := newActive(d)
	w.cur.Store(&snapshot{stamp: st, active: a})
	return a, nil
}
