package egress

import (
	"net/netip"
	"strings"
)

// Canonical is a in the form the checks compare: without a zone, and an
// IPv6 address that carries an IPv4 one — IPv4-mapped (::ffff:a.b.c.d),
// NAT64's well-known prefix (64:ff9b::a.b.c.d), the deprecated
// IPv4-compatible form (::a.b.c.d, but not :: or ::1) — as that IPv4
// address, which is where a packet to it goes.
func Canonical(a netip.Addr) netip.Addr {
	a = a.WithZone("")
	if a.Is4In6() {
		return a.Unmap()
	}
	if !a.Is6() {
		return a
	}
	b := a.As16()
	if zero(b[4:12]) && (zero(b[:4]) || (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b)) {
		v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if zero(b[:4]) && v4.As4()[0] == 0 && v4.As4()[1] == 0 && v4.As4()[2] == 0 && v4.As4()[3] <= 1 {
			return a // :: and ::1 are IPv6's own
		}
		return v4
	}
	return a
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Literal reads host as an IP address, in canonical form, if it is one in
// any spelling a resolver would accept: standard IPv4 and IPv6 (with or
// without brackets and zone), with a trailing dot, and the forms of
// inet_aton, which getaddrinfo honours — one to four parts, each decimal,
// octal (leading 0) or hexadecimal (0x), the last filling the remaining
// bytes: 0x7f000001, 017700000001, 2130706433, 127.1, 0251.0376.0251.0376.
func Literal(host string) (netip.Addr, bool) {
	h := host
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	h = strings.TrimSuffix(h, ".")
	if !maybeAddr(h) {
		return netip.Addr{}, false // a name: skip ParseAddr, whose error allocates
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return Canonical(a), true
	}
	return inetAton(h)
}

// maybeAddr is false for most names: an address without a colon has only
// hexadecimal digits, x and dots.
func maybeAddr(h string) bool {
	if strings.IndexByte(h, ':') >= 0 {
		return true
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c == 'x', c == 'X', c == '.':
		default:
			return false
		}
	}
	return true
}

// inetAton parses s as inet_aton(3) does.
func inetAton(s string) (netip.Addr, bool) {
	if s == "" || len(s) > 64 {
		return netip.Addr{}, false
	}
	var parts [4]uint64
	n := 0
	for {
		if n == 4 {
			return netip.Addr{}, false
		}
		end := strings.IndexByte(s, '.')
		if end < 0 {
			end = len(s)
		}
		v, ok := number(s[:end])
		if !ok {
			return netip.Addr{}, false
		}
		parts[n] = v
		n++
		if end == len(s) {
			break
		}
		s = s[end+1:]
	}
	var v uint64
	for i := range n - 1 {
		if parts[i] > 0xff {
			return netip.Addr{}, false
		}
		v |= parts[i] << (24 - 8*i)
	}
	last := parts[n-1]
	if last >= 1<<(8*(5-n)) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// number parses one part of an inet_aton address: 0x… hexadecimal, 0…
// octal, otherwise decimal. Values are bounded well above 2^32.
func number(s string) (uint64, bool) {
	base := uint64(10)
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" || len(s) > 32 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		var d uint64
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 1<<40 {
			return 0, false
		}
	}
	return v, true
}

// Kind says which rule refused a destination.
type Kind uint8

// The kinds of denial.
const (
	// Forbidden: instance or container metadata, or this environment's
	// Runtime API. No function has business there; refused in every mode
	// that checks at all.
	Forbidden Kind = iota + 1
	// Internal: loopback, link-local, private and other non-public
	// addresses, refused unless the configuration opens them.
	Internal
	// Listed: in the deny-list, or outside the allow-list.
	Listed
)

// The reasons, as errors and logs give them.
const (
	ReasonInstanceMetadata  = "instance metadata"
	ReasonContainerMetadata = "container metadata"
	ReasonRuntimeAPI        = "Lambda Runtime API"
	ReasonUnspecified       = "unspecified address"
	ReasonLoopback          = "loopback"
	ReasonLinkLocal         = "link-local"
	ReasonPrivate           = "private network"
	ReasonShared            = "shared address space"
	ReasonMulticast         = "multicast"
	ReasonReserved          = "reserved address"
	ReasonDenyList          = "in the egress deny-list"
	ReasonNotAllowed        = "not in the egress allow-list"
)

var metadata = map[netip.Addr]string{
	netip.MustParseAddr("169.254.169.254"): ReasonInstanceMetadata,
	netip.MustParseAddr("fd00:ec2::254"):   ReasonInstanceMetadata,
	netip.MustParseAddr("169.254.170.2"):   ReasonContainerMetadata,
	netip.MustParseAddr("169.254.170.23"):  ReasonContainerMetadata, // EKS Pod Identity
	netip.MustParseAddr("fd00:ec2::23"):    ReasonContainerMetadata,
}

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	shared      = netip.MustParsePrefix("100.64.0.0/10")
	reserved    = netip.MustParsePrefix("240.0.0.0/4") // with 255.255.255.255, the broadcast
	siteLocal   = netip.MustParsePrefix("fec0::/10")
)

// classify names what a canonical address is when it is not an ordinary
// public one: metadata (Forbidden) or an internal range (Internal).
func classify(a netip.Addr) (Kind, string) {
	if r, ok := metadata[a]; ok {
		return Forbidden, r
	}
	switch {
	case a.IsUnspecified() || thisNetwork.Contains(a):
		return Internal, ReasonUnspecified
	case a.IsLoopback():
		return Internal, ReasonLoopback
	case a.IsLinkLocalUnicast():
		return Internal, ReasonLinkLocal
	case a.IsPrivate() || siteLocal.Contains(a):
		return Internal, ReasonPrivate
	case shared.Contains(a):
		return Internal, ReasonShared
	case a.IsMulticast():
		return Internal, ReasonMulticast
	case reserved.Contains(a):
		return Internal, ReasonReserved
	}
	return 0, ""
}
