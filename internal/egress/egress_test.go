package egress

import (
	"net/netip"
	"strings"
	"testing"
)

// spellings of addresses a URL or a resolver accepts, and the address
// each one is. The checks must see through all of them.
var spellings = []struct {
	host string
	want string // "" when host is a name, not an address
}{
	{"169.254.169.254", "169.254.169.254"},
	{"169.254.169.254.", "169.254.169.254"},
	{"0xa9fea9fe", "169.254.169.254"},
	{"0XA9FEA9FE", "169.254.169.254"},
	{"2852039166", "169.254.169.254"},
	{"025177524776", "169.254.169.254"},
	{"0251.0376.0251.0376", "169.254.169.254"},
	{"0xa9.0xfe.0xa9.0xfe", "169.254.169.254"},
	{"169.254.43518", "169.254.169.254"},
	{"169.16689662", "169.254.169.254"},
	{"[::ffff:169.254.169.254]", "169.254.169.254"},
	{"::ffff:a9fe:a9fe", "169.254.169.254"},
	{"[0:0:0:0:0:ffff:a9fe:a9fe]", "169.254.169.254"},
	{"[64:ff9b::a9fe:a9fe]", "169.254.169.254"},
	{"[::169.254.169.254]", "169.254.169.254"},
	{"[fd00:ec2::254]", "fd00:ec2::254"},
	{"fe80::1%eth0", "fe80::1"},
	{"0x7f000001", "127.0.0.1"},
	{"017700000001", "127.0.0.1"},
	{"2130706433", "127.0.0.1"},
	{"127.1", "127.0.0.1"},
	{"0177.0.0.1", "127.0.0.1"},
	{"[::ffff:7f00:1]", "127.0.0.1"},
	{"[::1]", "::1"},
	{"[::]", "::"},
	{"0", "0.0.0.0"},
	{"example.com", ""},
	{"0x", ""},
	{"08.1.1.1", ""},                     // 8 is not an octal digit
	{"256.1.1.1", ""},                    // a part above 255 before the last
	{"1.2.3.4.5", ""},                    // five parts
	{"1.2.65536", ""},                    // the last part overflows its two bytes
	{"0x100000000", ""},                  // more than 32 bits
	{"1..2", ""},                         // an empty part
	{"a9fea9fe", ""},                     // hexadecimal needs 0x
	{"metadata.google.internal", ""},     // a name; resolution decides
	{"169.254.169.254.nip.io", ""},       // a name that resolves to it
	{"[::ffff:169.254.169.254]:80", ""},  // host and port is not a host
	{strings.Repeat("1", 80), ""},        // too long to be an address
	{"1" + strings.Repeat("0", 20), ""},  // decimal beyond any address
	{"0x" + strings.Repeat("f", 30), ""}, // hexadecimal beyond any address
	{"0" + strings.Repeat("7", 30), ""},  // octal beyond any address
}

func TestLiteral(t *testing.T) {
	for _, c := range spellings {
		a, ok := Literal(c.host)
		if c.want == "" {
			if ok {
				t.Errorf("Literal(%q) = %v; want a name, not an address", c.host, a)
			}
			continue
		}
		if !ok || a != netip.MustParseAddr(c.want) {
			t.Errorf("Literal(%q) = %v, %v; want %s", c.host, a, ok, c.want)
		}
	}
}

// decisions drive TestPolicy and BenchmarkCheckAddr: a configuration, a
// destination (the host as called, the address it resolved to, the port)
// and the denial expected (reason "" when allowed).
var decisions = []struct {
	name   string
	cfg    Config
	host   string
	addr   string
	port   int
	kind   Kind
	reason string
}{
	{"public", Config{}, "api.example.com", "93.184.216.34", 443, 0, ""},
	{"public v6", Config{}, "api.example.com", "2606:2800:220:1:248:1893:25c8:1946", 443, 0, ""},
	{"instance metadata", Config{}, "169.254.169.254", "169.254.169.254", 80, Forbidden, ReasonInstanceMetadata},
	{"instance metadata v6", Config{}, "fd00:ec2::254", "fd00:ec2::254", 80, Forbidden, ReasonInstanceMetadata},
	{"metadata mapped", Config{}, "::ffff:169.254.169.254", "::ffff:169.254.169.254", 80, Forbidden, ReasonInstanceMetadata},
	{"metadata nat64", Config{}, "64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe", 80, Forbidden, ReasonInstanceMetadata},
	{"metadata by name", Config{}, "metadata.attacker.example", "169.254.169.254", 80, Forbidden, ReasonInstanceMetadata},
	{"container metadata", Config{}, "169.254.170.2", "169.254.170.2", 80, Forbidden, ReasonContainerMetadata},
	{"EKS Pod Identity", Config{}, "169.254.170.23", "169.254.170.23", 80, Forbidden, ReasonContainerMetadata},
	{"container metadata v6", Config{}, "fd00:ec2::23", "fd00:ec2::23", 80, Forbidden, ReasonContainerMetadata},
	{"metadata not opened by a range", Config{Internal: []string{"169.254.0.0/16"}}, "169.254.169.254", "169.254.169.254", 80, Forbidden, ReasonInstanceMetadata},
	{"metadata not opened by *", Config{Allow: []string{"*"}}, "169.254.169.254", "169.254.169.254", 80, Forbidden, ReasonInstanceMetadata},
	{"metadata opened exactly", Config{Internal: []string{"169.254.170.2"}}, "169.254.170.2", "169.254.170.2", 80, 0, ""},
	{"runtime API", Config{RuntimeAPI: "127.0.0.1:9001"}, "127.0.0.1", "127.0.0.1", 9001, Forbidden, ReasonRuntimeAPI},
	{"runtime API, loopback opened", Config{RuntimeAPI: "127.0.0.1:9001", Internal: []string{"127.0.0.1"}}, "localhost", "127.0.0.1", 9001, Forbidden, ReasonRuntimeAPI},
	{"another loopback port, opened", Config{RuntimeAPI: "127.0.0.1:9001", Internal: []string{"127.0.0.1"}}, "127.0.0.1", "127.0.0.1", 8080, 0, ""},
	{"loopback", Config{}, "localhost", "127.0.0.1", 80, Internal, ReasonLoopback},
	{"loopback 127/8", Config{}, "127.3.2.1", "127.3.2.1", 80, Internal, ReasonLoopback},
	{"loopback v6", Config{}, "::1", "::1", 80, Internal, ReasonLoopback},
	{"loopback mapped", Config{}, "::ffff:127.0.0.1", "::ffff:127.0.0.1", 80, Internal, ReasonLoopback},
	{"loopback opened", Config{Internal: []string{"127.0.0.0/8"}}, "localhost", "127.0.0.1", 80, 0, ""},
	{"loopback opened by the allow-list", Config{Allow: []string{"127.0.0.1"}}, "127.0.0.1", "127.0.0.1", 80, 0, ""},
	{"unspecified", Config{}, "0.0.0.0", "0.0.0.0", 80, Internal, ReasonUnspecified},
	{"unspecified v6", Config{}, "::", "::", 80, Internal, ReasonUnspecified},
	{"link-local", Config{}, "169.254.1.1", "169.254.1.1", 80, Internal, ReasonLinkLocal},
	{"link-local v6", Config{}, "fe80::1", "fe80::1%eth0", 80, Internal, ReasonLinkLocal},
	{"private 10", Config{}, "db.internal", "10.0.3.7", 5432, Internal, ReasonPrivate},
	{"private 172", Config{}, "172.20.0.1", "172.20.0.1", 80, Internal, ReasonPrivate},
	{"private 192.168", Config{}, "192.168.1.1", "192.168.1.1", 80, Internal, ReasonPrivate},
	{"private v6", Config{}, "fd12::1", "fd12::1", 80, Internal, ReasonPrivate},
	{"site-local v6", Config{}, "fec0::1", "fec0::1", 80, Internal, ReasonPrivate},
	{"private opened", Config{Internal: []string{"10.0.0.0/16"}}, "db.internal", "10.0.3.7", 5432, 0, ""},
	{"private, other range opened", Config{Internal: []string{"10.1.0.0/16"}}, "db.internal", "10.0.3.7", 5432, Internal, ReasonPrivate},
	{"shared", Config{}, "100.100.100.200", "100.100.100.200", 80, Internal, ReasonShared},
	{"multicast", Config{}, "224.0.0.1", "224.0.0.1", 80, Internal, ReasonMulticast},
	{"reserved", Config{}, "240.0.0.1", "240.0.0.1", 80, Internal, ReasonReserved},
	{"broadcast", Config{}, "255.255.255.255", "255.255.255.255", 80, Internal, ReasonReserved},
	{"allowed by wildcard", Config{Allow: []string{"*.amazonaws.com"}}, "dynamodb.eu-west-1.amazonaws.com", "52.94.24.1", 443, 0, ""},
	{"wildcard is not the apex", Config{Allow: []string{"*.amazonaws.com"}}, "amazonaws.com", "52.94.24.1", 443, Listed, ReasonNotAllowed},
	{"wildcard is a whole label", Config{Allow: []string{"*.amazonaws.com"}}, "evilamazonaws.com", "203.0.113.9", 443, Listed, ReasonNotAllowed},
	{"not in the allow-list", Config{Allow: []string{"api.example.com"}}, "exfil.example", "203.0.113.9", 443, Listed, ReasonNotAllowed},
	{"allowed by range", Config{Allow: []string{"api.example.com", "203.0.113.0/24"}}, "cdn.example", "203.0.113.9", 443, 0, ""},
	{"allowed name on a private address", Config{Allow: []string{"db.internal"}}, "db.internal", "10.0.3.7", 5432, Internal, ReasonPrivate},
	{"internal passes the allow-list", Config{Allow: []string{"api.example.com"}, Internal: []string{"10.0.0.0/8"}}, "db.internal", "10.0.3.7", 5432, 0, ""},
	{"deny-list name", Config{Deny: []string{"*.exfil.example"}}, "a.exfil.example", "203.0.113.9", 443, Listed, ReasonDenyList},
	{"deny-list range", Config{Deny: []string{"203.0.113.0/24"}}, "cdn.example", "203.0.113.9", 443, Listed, ReasonDenyList},
	{"deny wins over allow", Config{Allow: []string{"*"}, Deny: []string{"bad.example"}}, "bad.example", "203.0.113.9", 443, Listed, ReasonDenyList},
	{"deny-list range, mapped address", Config{Deny: []string{"::ffff:203.0.113.0/120"}}, "cdn.example", "203.0.113.9", 443, Listed, ReasonDenyList},
}

func TestPolicy(t *testing.T) {
	for _, c := range decisions {
		t.Run(c.name, func(t *testing.T) {
			p, err := New(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			d, denied := p.CheckAddr(Host(c.host), netip.MustParseAddr(c.addr), c.port)
			if c.reason == "" {
				if denied {
					t.Fatalf("denied (%v): want allowed", d)
				}
				return
			}
			if !denied || d.Kind != c.kind || d.Reason != c.reason {
				t.Fatalf("got %+v, %v; want kind %d, %q", d, denied, c.kind, c.reason)
			}
		})
	}
}

// Every spelling of an address is judged as the address.
func TestSpellingsAreAddresses(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range spellings {
		a, ok := Literal(c.host)
		if !ok {
			continue
		}
		d, denied := p.CheckAddr(Host(c.host), a, 80)
		_, wantDenied := p.CheckAddr(c.want, netip.MustParseAddr(c.want), 80)
		if denied != wantDenied {
			t.Errorf("%s: denied %v (%+v), as the address: %v", c.host, denied, d, wantDenied)
		}
		if c.want == "169.254.169.254" && d.Reason != ReasonInstanceMetadata {
			t.Errorf("%s: %+v, want instance metadata", c.host, d)
		}
		if c.want == "127.0.0.1" && d.Reason != ReasonLoopback {
			t.Errorf("%s: %+v, want loopback", c.host, d)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, c := range []struct {
		cfg    Config
		host   string
		denied bool
	}{
		{Config{}, "api.example.com", false},
		{Config{Deny: []string{"*.example.com"}}, "api.example.com", true},
		{Config{Deny: []string{"*.example.com"}}, "example.com", false},
		{Config{Allow: []string{"api.example.com"}}, "api.example.com", false},
		{Config{Allow: []string{"api.example.com"}}, "other.example.com", true},
		// With a range in the allow-list or internal addresses opened, the
		// address may still let the name pass: CheckAddr decides.
		{Config{Allow: []string{"api.example.com", "10.0.0.0/8"}}, "other.example.com", false},
		{Config{Allow: []string{"api.example.com"}, Internal: []string{"10.0.0.0/8"}}, "other.example.com", false},
		// Addresses are not names.
		{Config{Allow: []string{"api.example.com"}}, "0x7f000001", false},
	} {
		p, err := New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, denied := p.CheckName(Host(c.host)); denied != c.denied {
			t.Errorf("%+v, %s: denied %v, want %v", c.cfg, c.host, denied, c.denied)
		}
	}
}

func TestHost(t *testing.T) {
	for in, want := range map[string]string{"API.Example.COM.": "api.example.com", "[::1]": "::1", "api.example.com": "api.example.com"} {
		if got := Host(in); got != want {
			t.Errorf("Host(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Allow: []string{"api example.com"}}, "allow-list: entry \"api example.com\""},
		{Config{Allow: []string{"*.*.example.com"}}, "want *. and a host name"},
		{Config{Deny: []string{"10.0.0.0/33"}}, "deny-list: entry \"10.0.0.0/33\": not a range"},
		{Config{Deny: []string{"0x7f000001"}}, "write it in dotted decimal"},
		{Config{Internal: []string{"db.internal"}}, "internal addresses: entry \"db.internal\": want an IP address or a range"},
		{Config{Allow: []string{"ex*ample.com"}}, "want a host name"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v; want an error with %q", c.cfg, err, c.want)
		}
	}
	if _, err := New(Config{Allow: []string{" API.example.com ", "", "[2001:db8::1]", "::ffff:10.0.0.1"}, RuntimeAPI: "127.0.0.1:9001"}); err != nil {
		t.Errorf("valid entries refused: %v", err)
	}
}

func FuzzLiteral(f *testing.F) {
	for _, c := range spellings {
		f.Add(c.host)
	}
	f.Fuzz(func(t *testing.T, host string) {
		a, ok := Literal(host)
		if !ok {
			return
		}
		if a != Canonical(a) {
			t.Fatalf("Literal(%q) = %v, not canonical", host, a)
		}
		// A standard spelling reads back as itself.
		if b, err := netip.ParseAddr(a.String()); err != nil || Canonical(b) != a {
			t.Fatalf("Literal(%q) = %v does not read back: %v", host, a, err)
		}
	})
}

func BenchmarkCheckAddr(b *testing.B) {
	for _, c := range decisions[:3] {
		p, err := New(c.cfg)
		if err != nil {
			b.Fatal(err)
		}
		host, a := Host(c.host), netip.MustParseAddr(c.addr)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.CheckAddr(host, a, c.port)
			}
		})
	}
}
