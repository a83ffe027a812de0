package protect

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// dnsServer is a tiny DNS server on 127.0.0.1 for tests: it answers A and
// AAAA queries from a table, and a name's answers may change from one
// query to the next (DNS rebinding). Names it does not know are NXDOMAIN.
type dnsServer struct {
	conn *net.UDPConn
	mu   sync.Mutex
	// answers maps a name to the answers of its successive A/AAAA
	// lookups; the last one repeats.
	answers map[string][][]netip.Addr
	queries map[string]int // A queries per name
}

func newDNS(t *testing.T, table map[string][]string) *dnsServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &dnsServer{conn: conn, answers: map[string][][]netip.Addr{}, queries: map[string]int{}}
	for name, addrs := range table {
		s.set(name, addrs...)
	}
	go s.serve()
	return s
}

// set gives name one fixed answer.
func (s *dnsServer) set(name string, addrs ...string) { s.sequence(name, addrs) }

// sequence gives name a different answer per lookup, the last repeating.
func (s *dnsServer) sequence(name string, answers ...[]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var seq [][]netip.Addr
	for _, as := range answers {
		var one []netip.Addr
		for _, a := range as {
			one = append(one, netip.MustParseAddr(a))
		}
		seq = append(seq, one)
	}
	s.answers[name] = seq
}

// lookups is how many A queries name got.
func (s *dnsServer) lookups(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[name]
}

// resolver is a net.Resolver that asks only s.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.conn.LocalAddr().String())
	}}
}

// withResolver makes the outbound checks resolve through s.
func withResolver(s *dnsServer) Option {
	r := s.resolver()
	return func(c *config) { c.lookup = r.LookupNetIP }
}

func (s *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if resp := s.answer(buf[:n]); resp != nil {
			_, _ = s.conn.WriteToUDP(resp, from)
		}
	}
}

const (
	typeA    = 1
	typeAAAA = 28
)

// answer builds the response to one query: the question echoed, then
// the table's addresses of the asked type.
func (s *dnsServer) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	// The question: labels, then type and class.
	i := 12
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	question := q[12 : i+5]
	qtype := binary.BigEndian.Uint16(q[i+1:])
	name := strings.ToLower(strings.Join(labels, "."))

	s.mu.Lock()
	seq, known := s.answers[name]
	var addrs []netip.Addr
	if known {
		k := s.queries[name]
		if qtype == typeAAAA && k > 0 {
			k-- // the AAAA query of the lookup whose A query was counted
		}
		addrs = seq[min(k, len(seq)-1)]
		if qtype == typeA {
			s.queries[name]++
		}
	}
	s.mu.Unlock()

	resp := make([]byte, 12, 512)
	copy(resp, q[:2])                            // id
	binary.BigEndian.PutUint16(resp[2:], 0x8580) // response, authoritative, recursion desired and available
	binary.BigEndian.PutUint16(resp[4:], 1)      // one question
	binary.BigEndian.PutUint16(resp[6:], 0)      // answers, below
	binary.BigEndian.PutUint16(resp[8:], 0)      // authority
	binary.BigEndian.PutUint16(resp[10:], 0)     // additional
	if !known {
		resp[3] |= 3 // NXDOMAIN
	}
	resp = append(resp, question...)
	count := 0
	for _, a := range addrs {
		if (qtype == typeA) != a.Is4() || (qtype != typeA && qtype != typeAAAA) {
			continue
		}
		raw := a.AsSlice()
		resp = append(resp, 0xc0, 12) // the name: a pointer to the question's
		resp = binary.BigEndian.AppendUint16(resp, qtype)
		resp = binary.BigEndian.AppendUint16(resp, 1) // class IN
		resp = binary.BigEndian.AppendUint32(resp, 0) // TTL
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(raw)))
		resp = append(resp, raw...)
		count++
	}
	binary.BigEndian.PutUint16(resp[6:], uint16(count))
	return resp
}

// The test server itself, so a test that relies on it can trust it.
func TestDNSServer(t *testing.T) {
	s := newDNS(t, map[string][]string{"api.test": {"203.0.113.9", "2001:db8::9"}})
	s.sequence("rebind.test", []string{"127.0.0.1"}, []string{"169.254.169.254"})
	r := s.resolver()
	ctx := context.Background()
	got, err := r.LookupNetIP(ctx, "ip", "api.test")
	if err != nil || len(got) != 2 {
		t.Fatalf("api.test: %v, %v", got, err)
	}
	for i, want := range []string{"127.0.0.1", "169.254.169.254", "169.254.169.254"} {
		got, err := r.LookupNetIP(ctx, "ip4", "rebind.test")
		if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr(want) {
			t.Errorf("rebind.test lookup %d: %v, %v; want %s", i, got, err, want)
		}
	}
	if _, err := r.LookupNetIP(ctx, "ip", "unknown.test"); err == nil {
		t.Error("unknown.test resolved")
	}
}
