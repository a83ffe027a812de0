package report

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// cases drive the round-trip test, the fuzz target's seeds and the
// encoding benchmark.
var cases = []struct {
	name string
	r    Report
}{
	{"empty", Report{}},
	{"clean-http", Report{RequestID: "c6af9ac6-7b61-11e6-9a41-93e812345678", Source: "apigw-http", Action: Allow,
		Records: 1, DurationMicros: 1200, ClientIP: "203.0.113.9", ColdStart: true}},
	{"blocked-sqs", Report{RequestID: "r-2", Source: "sqs", Action: Block, Rules: []int{942100, 932235, 100112},
		Records: 10, BlockedRecords: 2, DurationMicros: 5400, ErrorType: "lambdarasp.Blocked", InspectMicros: 1800}},
	{"outbound", Report{RequestID: "r-3", Source: "direct", Action: Allow, Records: 1, DurationMicros: 90000,
		ErrorType: "errorString", Outbound: []Outbound{{Host: "api.example.com", Port: 443, Calls: 3}, {Host: "10.0.0.7", Port: 5432, Calls: 1, Errors: 1}}}},
	{"quarantine", Report{RequestID: "r-4", Source: "s3", Action: Quarantine, Records: 1}},
	{"calls", Report{RequestID: "r-5", Source: "apigw-http", Action: Block, Rules: []int{100992}, Records: 1, DurationMicros: 31000, InspectMicros: 640,
		Outbound: []Outbound{
			{Host: "api.example.com", Port: 443, Calls: 2, Scheme: "https", Addr: "93.184.216.34", BytesSent: 120, BytesReceived: 5400, DurationMicros: 23000},
			{Host: "169.254.169.254", Port: 80, Calls: 1, Errors: 1, Denied: 1, Scheme: "http", Addr: "169.254.169.254"},
			{Host: "db.internal", Port: 5432, Calls: 1, Scheme: "tcp", Addr: "10.0.3.7", DurationMicros: 800},
		},
		Calls: []Call{
			{Dest: 2, Phase: Init, DurationMicros: 800},
			{Dest: 0, Method: "GET", Status: 200, DurationMicros: 11000, BytesReceived: 2700},
			{Dest: 1, Method: "GET", Error: "denied"},
			{Dest: 0, Phase: Unattributed, Method: "POST", Status: 503, DurationMicros: 12000, BytesSent: 120, BytesReceived: 2700},
		}}},
}

func TestRoundTrip(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := Append(nil, &c.r)
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(Append(r)): %v", err)
			}
			if !reflect.DeepEqual(got, c.r) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, c.r)
			}
		})
	}
}

func TestAppendCutsToBounds(t *testing.T) {
	r := Report{RequestID: strings.Repeat("x", 1000), Rules: make([]int, 100)}
	for range 200 {
		r.Outbound = append(r.Outbound, Outbound{Host: strings.Repeat("h", 200), Port: 443, Calls: 1})
	}
	b := Append(nil, &r)
	if len(b) > MaxSize {
		t.Fatalf("encoded %d bytes, more than MaxSize %d", len(b), MaxSize)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.RequestID) != MaxString || len(got.Rules) != MaxRules {
		t.Errorf("request id %d bytes, %d rules: want %d and %d", len(got.RequestID), len(got.Rules), MaxString, MaxRules)
	}
	if n := len(got.Outbound); n == 0 || n == MaxOutbound {
		t.Errorf("%d destinations kept: want as many as fit in %d bytes", n, MaxSize)
	}

	// With details, destinations and then calls are cut to what fits;
	// every call kept names a destination kept.
	r = Report{RequestID: "r"}
	for i := range 200 {
		r.Outbound = append(r.Outbound, Outbound{Host: strings.Repeat("h", 60), Port: 443, Calls: 1, Scheme: "https", Addr: "2001:db8::1"})
		// Every other call goes to the last destination, which cannot fit.
		dest := i
		if i%2 == 0 {
			dest = 199
		}
		r.Calls = append(r.Calls, Call{Dest: dest, Method: "GET", Status: 200, DurationMicros: 1000})
	}
	b = Append(nil, &r)
	if len(b) > MaxSize {
		t.Fatalf("with details: encoded %d bytes, more than MaxSize %d", len(b), MaxSize)
	}
	got, err = Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Outbound) == 0 || len(got.Outbound) == MaxOutbound || len(got.Calls) == 0 || len(got.Calls) > MaxCalls {
		t.Errorf("with details: %d destinations, %d calls kept", len(got.Outbound), len(got.Calls))
	}
	for _, c := range got.Calls {
		if c.Dest >= len(got.Outbound) {
			t.Errorf("call to destination %d of %d", c.Dest, len(got.Outbound))
		}
	}
	for _, o := range got.Outbound {
		if o.Addr != "2001:db8::1" || o.Scheme != "https" {
			t.Errorf("destination kept without its details: %+v", o)
			break
		}
	}
}

// A decoder that predates the details reads a report up to its
// destinations and ignores the rest: the bytes of a report with details
// must begin with the bytes of the same report without them.
func TestDetailsAreAppended(t *testing.T) {
	r := cases[len(cases)-1].r
	base := r
	base.Calls, base.InspectMicros = nil, 0
	base.Outbound = nil
	for _, o := range r.Outbound {
		base.Outbound = append(base.Outbound, Outbound{Host: o.Host, Port: o.Port, Calls: o.Calls, Errors: o.Errors})
	}
	full, old := Append(nil, &r), Append(nil, &base)
	if !bytes.HasPrefix(full, old) || len(full) == len(old) {
		t.Fatalf("the details are not appended after the version-1 fields:\n%x\n%x", old, full)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := Append(nil, &cases[2].r)
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"nil", nil, ErrNotReport},
		{"json", []byte(`{"requestId":"x"}`), ErrNotReport},
		{"version", append([]byte{'L', 'R', 9}, good[3:]...), ErrVersion},
		{"truncated", func() []byte { b := Append(nil, &cases[1].r); return b[:len(b)-3] }(), ErrMalformed},
		{"too big", append(bytes.Clone(good), make([]byte, MaxSize)...), ErrMalformed},
		{"action", func() []byte { b := bytes.Clone(good); b[6] = 200; return b }(), ErrMalformed},
		{"string bound", raw(strings.Repeat("x", MaxString+1), "", "", "", 0, 0, 0, 0), ErrMalformed},
		{"truncated string", slices.Clip(raw("abc")[:8]), ErrMalformed},
		{"rule count bound", raw("", "", "", "", 0, 0, MaxRules+1, make([]byte, MaxRules+1), 0), ErrMalformed},
	} {
		if _, err := Decode(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: Decode error %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Decode(hello[:]); !errors.Is(err, ErrHello) {
		t.Errorf("hello: Decode error %v, want ErrHello", err)
	}
	// Bytes after the known fields are a later version's additions.
	withCalls := Append(nil, &cases[len(cases)-1].r)
	if got, err := Decode(append(bytes.Clone(withCalls), 1, 2, 3)); err != nil || !reflect.DeepEqual(got, cases[len(cases)-1].r) {
		t.Errorf("trailing bytes: %v, want them ignored", err)
	}
	// The details, when present, are complete and name known destinations.
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"details cut", withCalls[:len(withCalls)-4]}, // the inspection's 2 bytes and part of the last call
		// No destinations, then one call complete in every field.
		{"call to no destination", raw("", "", "", "", 0, 0, 0, 0, 1, make([]byte, 8))},
		{"phase", func() []byte {
			r := Report{Outbound: []Outbound{{Host: "h", Port: 1, Calls: 1}}, Calls: []Call{{Phase: Init}}}
			b := Append(nil, &r)
			b[bytes.LastIndexByte(b, byte(Init))] = 9
			return b
		}()},
	} {
		if _, err := Decode(c.b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Decode error %v, want ErrMalformed", c.name, err)
		}
	}
}

// raw builds a datagram by hand, past Append's cuts: the header, no
// duration, action allow, then the parts in order: an int as a uvarint, a
// string with its length, []byte as it is.
func raw(parts ...any) []byte {
	b := []byte{'L', 'R', Version, 0, 0, byte(Allow)}
	for _, p := range parts {
		switch p := p.(type) {
		case int:
			b = binary.AppendUvarint(b, uint64(p))
		case string: // not cut, unlike appendString
			b = binary.AppendUvarint(b, uint64(len(p)))
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		}
	}
	return b
}

func FuzzDecode(f *testing.F) {
	for _, c := range cases {
		f.Add(Append(nil, &c.r))
	}
	f.Add([]byte("LR\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same report.
		again, err := Decode(Append(nil, &r))
		if err != nil {
			t.Fatalf("re-encoded report does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoding changed the report:\n%+v\n%+v", r, again)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				buf = Append(buf[:0], &c.r)
			}
		})
	}
}

// listen returns a UDP listener on a free loopback port and a channel of
// what it decodes.
func listen(t *testing.T) (*net.UDPConn, <-chan Report) {
	t.Helper()
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan Report, 16)
	go func() {
		buf := make([]byte, MaxSize)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				return
			}
			if r, err := Decode(buf[:n]); err == nil {
				got <- r
			}
		}
	}()
	return ln, got
}

func TestSender(t *testing.T) {
	ln, got := listen(t)
	changes := make(chan bool, 8)
	s, err := Dial(ln.LocalAddr().String(), func(reachable bool, _ error) { changes <- reachable })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Hello() {
		t.Fatal("Hello found nobody listening")
	}
	want := cases[2].r
	if !s.Send(&want) {
		t.Fatal("Send dropped a report into an empty queue")
	}
	select {
	case r := <-got:
		if !reflect.DeepEqual(r, want) {
			t.Errorf("received %+v, want %+v", r, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no report received")
	}
	if !s.Reachable() {
		t.Error("Reachable false while the listener is up")
	}

	// The listener goes away: the next report finds nobody, once.
	ln.Close()
	for range 3 {
		s.Send(&want)
	}
	if r := waitChange(t, changes); r {
		t.Fatal("first change after the listener closed says reachable")
	}
	if s.Reachable() {
		t.Error("Reachable true after the listener closed")
	}
	select {
	case r := <-changes:
		t.Errorf("a second change (%v) while nothing listens: want one", r)
	case <-time.After(50 * time.Millisecond):
	}

	if s.Hello() {
		t.Error("Hello found a listener after it closed")
	}

	// Back on the same port.
	ln2, err := net.ListenUDP("udp", ln.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Skipf("cannot listen on the same port again: %v", err)
	}
	defer ln2.Close()
	s.Send(&want)
	s.Send(&want) // two clean writes in a row
	if r := waitChange(t, changes); !r {
		t.Error("no change to reachable once a listener is back")
	}
}

func waitChange(t *testing.T, ch <-chan bool) bool {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("reachability did not change")
	}
	return false
}

func TestDialRefusesNonLoopback(t *testing.T) {
	if _, err := Dial("192.0.2.1:7431", nil); err == nil {
		t.Error("Dial accepted a non-loopback address")
	}
}

// Send returns at once, even when the sender goroutine cannot keep up.
func TestSendNeverWaits(t *testing.T) {
	ln, _ := listen(t)
	s, err := Dial(ln.LocalAddr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // the goroutine is gone: nothing drains the queue
	r := cases[1].r
	sent := 0
	for range queueLen * 2 {
		if s.Send(&r) {
			sent++
		}
	}
	if sent != queueLen || s.Dropped() != queueLen {
		t.Errorf("%d queued, %d dropped: want %d and %d", sent, s.Dropped(), queueLen, queueLen)
	}
}
