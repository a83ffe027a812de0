package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// emit produces one telemetry record: kept for Records, queued for the
// environment's subscribers (env may be nil) and written to Config.Logs.
func (e *Emulator) emit(env *env, typ string, body any) {
	raw, err := json.Marshal(body)
	if err != nil {
		raw, _ = json.Marshal(err.Error())
	}
	r := Record{Time: time.Now(), Type: typ, Record: raw}
	var line string
	if e.cfg.Logs != nil {
		line = cloudWatchLine(body)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.records = appendCapped(e.records, r, e.cfg.MaxRecords)
	if env != nil {
		env.hub.add(r)
	}
	if line != "" {
		_, _ = io.WriteString(e.cfg.Logs, line+"\n")
	}
}

// recordDelivered notes records a subscriber acknowledged.
func (e *Emulator) recordDelivered(name string, batch []entry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, en := range batch {
		e.delivered[name] = appendCapped(e.delivered[name], en.rec, e.cfg.MaxRecords)
	}
}

// hub is one environment's telemetry stream and its delivery to the
// Telemetry API subscribers. Records are kept from the start of the
// environment, so a subscription made during init receives the init's
// records too, and dropped once every subscriber has them.
type hub struct {
	e         *Emulator
	ctx       context.Context
	cancel    context.CancelFunc
	transport *http.Transport
	wg        sync.WaitGroup

	mu      sync.Mutex
	base    int     // stream index of entries[0]
	entries []entry // the stream from base on
	changed chan struct{}
	frozen  bool // the environment is frozen: nothing is delivered
	closed  bool // no more subscriptions: entries every subscriber has can go
	stopped bool // deliveries are over
	subs    []*subscription
}

// entry is one record and its encoding, done once for every subscriber.
type entry struct {
	rec  Record
	wire []byte
}

func newHub(e *Emulator) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{
		e:         e,
		ctx:       ctx,
		cancel:    cancel,
		transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2},
		changed:   make(chan struct{}),
	}
}

// notify wakes everything waiting on h.changed. Called with h.mu held.
func (h *hub) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *hub) add(r Record) {
	wire, _ := json.Marshal(r)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entries = append(h.entries, entry{r, wire})
	h.compact()
	h.notify()
}

// compact drops the entries every subscriber has looked at, once no new
// subscriber can come. Called with h.mu held.
func (h *hub) compact() {
	if !h.closed || len(h.entries) < 256 {
		return
	}
	low := h.base + len(h.entries)
	for _, s := range h.subs {
		low = min(low, s.scan)
	}
	if drop := low - h.base; drop > len(h.entries)/2 {
		h.entries = append(h.entries[:0:0], h.entries[drop:]...)
		h.base = low
	}
}

// closeSubscriptions ends the time when extensions may subscribe.
func (h *hub) closeSubscriptions() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.compact()
}

func (h *hub) setFrozen(frozen bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.frozen = frozen
	h.notify()
}

// subscribe starts delivering the stream to s, from the start of the
// environment. A second subscription of the same extension replaces its
// first.
func (h *hub) subscribe(s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return // the environment is gone
	}
	for i, old := range h.subs {
		if old.name == s.name {
			old.gone = true
			h.subs = append(h.subs[:i], h.subs[i+1:]...)
			break
		}
	}
	s.scan, s.acked = h.base, h.base
	h.subs = append(h.subs, s)
	h.notify()
	h.wg.Add(1)
	go h.deliver(s)
}

// flush delivers everything produced so far to every subscriber, without
// waiting for their buffering timeouts, or gives up when ctx ends.
func (h *hub) flush(ctx context.Context) {
	h.mu.Lock()
	target := h.base + len(h.entries)
	for _, s := range h.subs {
		s.flushTo = max(s.flushTo, target)
	}
	h.notify()
	h.mu.Unlock()
	for {
		h.mu.Lock()
		done := true
		for _, s := range h.subs {
			done = done && s.acked >= target
		}
		wait := h.changed
		h.mu.Unlock()
		if done {
			return
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return
		}
	}
}

// stop ends every delivery.
func (h *hub) stop() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
	h.transport.CloseIdleConnections()
}

// subscription is one extension's Telemetry API subscription.
type subscription struct {
	name     string
	types    []string // platform, function, extension
	maxItems int
	maxBytes int
	timeout  time.Duration
	url      string // destination, sandbox.localdomain resolved to loopback

	// Under hub.mu.
	scan    int     // stream index of the next entry to look at
	batch   []entry // entries of the subscribed types looked at and not yet delivered
	bytes   int     // their encoded size
	acked   int     // every entry before this index is delivered or not subscribed to
	flushTo int     // deliver every entry before this index now
	gone    bool    // replaced by a new subscription
}

// wants reports whether s subscribed to records of type typ.
func (s *subscription) wants(typ string) bool {
	category := typ
	if strings.HasPrefix(typ, "platform.") {
		category = "platform"
	}
	for _, t := range s.types {
		if t == category {
			return true
		}
	}
	return false
}

// fill moves entries into s.batch until the batch is full or the stream
// ends. Called with h.mu held.
func (h *hub) fill(s *subscription) {
	for s.scan < h.base+len(h.entries) && len(s.batch) < s.maxItems && s.bytes < s.maxBytes {
		en := h.entries[s.scan-h.base]
		s.scan++
		if s.wants(en.rec.Type) {
			s.batch = append(s.batch, en)
			s.bytes += len(en.wire)
		}
	}
	if len(s.batch) == 0 && s.acked < s.scan {
		s.acked = s.scan
		h.compact()
		h.notify()
	}
}

// deliver posts s's records in batches, as its buffering asks: a batch goes
// when it holds maxItems records or maxBytes bytes, or timeoutMs after its
// first record was produced. Nothing goes while the environment is frozen,
// unless a flush asks for it. A failed post is retried with backoff.
func (h *hub) deliver(s *subscription) {
	defer h.wg.Done()
	client := &http.Client{Transport: h.transport}
	backoff := 50 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		h.mu.Lock()
		if s.gone {
			h.mu.Unlock()
			return
		}
		h.fill(s)
		var wait time.Duration = -1 // -1: until something changes
		send := false
		if len(s.batch) > 0 {
			full := len(s.batch) >= s.maxItems || s.bytes >= s.maxBytes
			urgent := s.flushTo > s.acked
			due := time.Until(s.batch[0].rec.Time.Add(s.timeout))
			switch {
			case h.frozen && !urgent:
			case full || urgent || due <= 0:
				send = true
			default:
				wait = due
			}
		}
		batch, end, changed := s.batch, s.scan, h.changed
		h.mu.Unlock()

		if send {
			if err := h.post(client, s, batch); err != nil {
				wait = backoff
				backoff = min(2*backoff, time.Second)
				h.e.log.Debug("telemetry delivery failed", "extension", s.name, "error", err)
			} else {
				backoff = 50 * time.Millisecond
				h.e.recordDelivered(s.name, batch)
				h.mu.Lock()
				s.batch, s.bytes, s.acked = nil, 0, end
				h.compact()
				h.notify()
				h.mu.Unlock()
				continue
			}
		}
		var tick <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-changed:
		case <-tick:
		case <-h.ctx.Done():
			return
		}
		timer.Stop()
	}
}

// post sends one batch as a JSON array, the HTTP destination's format.
func (h *hub) post(client *http.Client, s *subscription, batch []entry) error {
	var body bytes.Buffer
	body.WriteByte('[')
	for i, en := range batch {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(en.wire)
	}
	body.WriteByte(']')
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, s.url, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("listener answered %s", resp.Status)
	}
	return nil
}
