package egress

import (
	"fmt"
	"net/netip"
	"strings"
)

// Config is what a Policy is built from. Entries of Allow and Deny are
// host names ("api.example.com"), wildcards ("*.amazonaws.com": any name
// below amazonaws.com, not amazonaws.com itself; "*": anything), IP
// addresses ("10.0.0.7") and ranges ("10.0.0.0/8", "fd00::/8"). Internal
// takes addresses and ranges only.
type Config struct {
	// Allow, when not empty, is the only destinations a function may
	// call: a destination passes by its name or by its address. Its
	// addresses and ranges also open the internal addresses they cover.
	Allow []string
	// Deny is destinations never called, whatever else says.
	Deny []string
	// Internal opens internal addresses (loopback, link-local, private,
	// …) that the function may call, and lets them pass the allow-list. A
	// metadata address is opened only by an entry that is that address.
	Internal []string
	// RuntimeAPI is the Lambda Runtime API's host:port in this
	// environment (AWS_LAMBDA_RUNTIME_API); "" when there is none.
	RuntimeAPI string
}

// Denial says why a destination is refused.
type Denial struct {
	Kind   Kind
	Reason string // one of the Reason… constants
}

// Policy decides on destinations. The zero value is not usable; see New.
type Policy struct {
	allow, deny list
	internal    []netip.Prefix
	runtime     netip.AddrPort // invalid: none; port 0: every port
}

// list is one list's entries, by form.
type list struct {
	n        int                 // entries
	any      bool                // "*"
	names    map[string]struct{} // exact host names
	suffixes []string            // ".amazonaws.com" for "*.amazonaws.com"
	prefixes []netip.Prefix      // addresses and ranges, canonical
}

// New checks cfg and builds its Policy. An error names the list and the
// entry.
func New(cfg Config) (*Policy, error) {
	p := &Policy{}
	var err error
	if p.allow, err = parseList(cfg.Allow, true); err != nil {
		return nil, fmt.Errorf("allow-list: %w", err)
	}
	if p.deny, err = parseList(cfg.Deny, true); err != nil {
		return nil, fmt.Errorf("deny-list: %w", err)
	}
	in, err := parseList(cfg.Internal, false)
	if err != nil {
		return nil, fmt.Errorf("internal addresses: %w", err)
	}
	p.internal = in.prefixes
	if cfg.RuntimeAPI != "" {
		if ap, err := netip.ParseAddrPort(cfg.RuntimeAPI); err == nil {
			p.runtime = netip.AddrPortFrom(Canonical(ap.Addr()), ap.Port())
		} else if a, ok := Literal(cfg.RuntimeAPI); ok {
			p.runtime = netip.AddrPortFrom(a, 0)
		}
	}
	return p, nil
}

func parseList(entries []string, names bool) (list, error) {
	var l list
	for _, raw := range entries {
		e := strings.ToLower(strings.TrimSpace(raw))
		if e == "" {
			continue
		}
		l.n++
		switch pre, err := prefix(e); {
		case err != nil:
			return l, fmt.Errorf("entry %q: %w", raw, err)
		case pre.IsValid():
			l.prefixes = append(l.prefixes, pre)
		case !names:
			return l, fmt.Errorf("entry %q: want an IP address or a range such as 10.0.0.0/8", raw)
		case e == "*":
			l.any = true
		case strings.HasPrefix(e, "*."):
			if !hostName(e[2:]) {
				return l, fmt.Errorf("entry %q: want *. and a host name, such as *.amazonaws.com", raw)
			}
			l.suffixes = append(l.suffixes, e[1:])
		case hostName(strings.TrimSuffix(e, ".")):
			if l.names == nil {
				l.names = map[string]struct{}{}
			}
			l.names[strings.TrimSuffix(e, ".")] = struct{}{}
		default:
			return l, fmt.Errorf("entry %q: want a host name (api.example.com), a wildcard (*.example.com, *), an IP address or a range (10.0.0.0/8)", raw)
		}
	}
	return l, nil
}

// prefix reads e as an address or a range, canonical; an invalid Prefix
// when e is neither. An address in a spelling other than the standard
// one is refused: a list should say what it means.
func prefix(e string) (netip.Prefix, error) {
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not a range: %w", err)
		}
		a := p.Addr()
		if a.Is4In6() && p.Bits() >= 96 {
			return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), nil
		}
		return p.Masked(), nil
	}
	h := strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")
	if a, err := netip.ParseAddr(h); err == nil {
		a = Canonical(a)
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	if _, ok := Literal(e); ok {
		return netip.Prefix{}, fmt.Errorf("an address written as %q: write it in dotted decimal", e)
	}
	return netip.Prefix{}, nil
}

// hostName reports whether s is a DNS name: labels of letters, digits,
// hyphens and underscores.
func hostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func (l *list) set() bool { return l.n > 0 }

// name reports whether host (lower case, no trailing dot) matches a
// name, a wildcard or "*".
func (l *list) name(host string) bool {
	if l.any {
		return true
	}
	if _, ok := l.names[host]; ok {
		return true
	}
	for _, s := range l.suffixes {
		if len(host) > len(s) && strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// addr reports whether a canonical address is in a range, or "*".
func (l *list) addr(a netip.Addr) bool {
	return l.any || contains(l.prefixes, a)
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// exact reports whether one of ps is the single address a.
func exact(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.IsSingleIP() && p.Addr() == a {
			return true
		}
	}
	return false
}

// Host is host as the checks compare names: lower case, without brackets
// or a trailing dot. It allocates only when host has upper-case letters.
func Host(host string) string {
	host = strings.TrimSuffix(host, ".")
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// CheckName checks a destination by its name, before it is resolved: the
// deny-list's names, and the allow-list when it has only names (with
// ranges, an address may still let the destination pass). host is as
// Host gives it. An IP address is not a name: it passes here, and
// CheckAddr decides.
func (p *Policy) CheckName(host string) (Denial, bool) {
	if _, ok := Literal(host); ok {
		return Denial{}, false
	}
	if p.deny.name(host) {
		return Denial{Listed, ReasonDenyList}, true
	}
	if p.allow.set() && len(p.allow.prefixes) == 0 && len(p.internal) == 0 && !p.allow.name(host) {
		return Denial{Listed, ReasonNotAllowed}, true
	}
	return Denial{}, false
}

// CheckAddr checks one address that host (as Host gives it) resolved to,
// or the address host is, for a call to port: the deny-list, then the
// SSRF guard, then the allow-list. a may be in any form; it is compared
// canonical.
func (p *Policy) CheckAddr(host string, a netip.Addr, port int) (Denial, bool) {
	a = Canonical(a)
	literal := false
	if _, ok := Literal(host); ok {
		literal = true
	}
	if p.deny.addr(a) || (!literal && p.deny.name(host)) {
		return Denial{Listed, ReasonDenyList}, true
	}
	if p.runtime.IsValid() && a == p.runtime.Addr() && (p.runtime.Port() == 0 || int(p.runtime.Port()) == port) {
		return Denial{Forbidden, ReasonRuntimeAPI}, true
	}
	opened := false
	switch kind, reason := classify(a); kind {
	case Forbidden:
		if !exact(p.internal, a) && !exact(p.allow.prefixes, a) {
			return Denial{Forbidden, reason}, true
		}
		opened = true
	case Internal:
		if !contains(p.internal, a) && !contains(p.allow.prefixes, a) {
			return Denial{Internal, reason}, true
		}
		opened = true
	}
	if p.allow.set() && !opened && !p.allow.name(host) && !p.allow.addr(a) {
		return Denial{Listed, ReasonNotAllowed}, true
	}
	return Denial{}, false
}
