// Package egress decides whether a Lambda function may call a destination:
// the SSRF guard (addresses no function should reach by default) and the
// allow-list and deny-list of hosts and address ranges. protect.Transport
// and protect.DialContext ask it before they dial, once per address a
// destination resolved to, so that what is checked is what is dialed.
//
// Addresses are compared in one canonical form (see Canonical): an
// IPv4-mapped IPv6 address, the NAT64 well-known prefix and the deprecated
// IPv4-compatible form all name the IPv4 address inside. Literal reads a
// host as an address in every spelling a resolver accepts — dotted
// decimal, IPv6 in brackets, and inet_aton's hexadecimal, octal, decimal
// and short forms (0x7f000001, 017700000001, 2130706433, 127.1) — so an
// address is never taken for a name.
//
// The default, with no lists (Policy.CheckAddr):
//
//   - refused in every mode: instance metadata (169.254.169.254,
//     fd00:ec2::254), container metadata (169.254.170.2, 169.254.170.23,
//     fd00:ec2::23) and the Lambda Runtime API of this environment
//     (Config.RuntimeAPI, its address and port). A metadata address can be
//     opened by an entry naming it exactly (a single address); the Runtime
//     API cannot be opened.
//   - refused unless an address range of Config.Internal or Config.Allow
//     covers them: loopback, link-local, private networks (10/8,
//     172.16/12, 192.168/16, fc00::/7, fec0::/10), the shared address space
//     (100.64/10), unspecified (0/8, ::), multicast and reserved (240/4,
//     255.255.255.255).
//   - every other address: allowed.
//
// A Policy is immutable and safe for concurrent use; its checks do not
// allocate.
package egress
