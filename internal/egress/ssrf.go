package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrForbiddenAddress is returned for a destination in a refused range or
// written as an ambiguous numeric literal.
var ErrForbiddenAddress = errors.New("destination address refused")

// refused lists the ranges no egress request may reach. IPv4-mapped IPv6
// addresses are unmapped before the check; NAT64 and 6to4 addresses are
// checked by the IPv4 address they embed.
var refused = mustPrefixes(
	"0.0.0.0/8",       // "this network", includes unspecified
	"10.0.0.0/8",      // RFC 1918
	"100.64.0.0/10",   // CGNAT
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, includes 169.254.169.254 metadata
	"172.16.0.0/12",   // RFC 1918
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // TEST-NET-1
	"192.168.0.0/16",  // RFC 1918
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // TEST-NET-2
	"203.0.113.0/24",  // TEST-NET-3
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, includes broadcast
	"::/128",          // unspecified
	"::1/128",         // loopback
	"::/96",           // IPv4-compatible (deprecated)
	"100::/64",        // discard
	"2001:db8::/32",   // documentation
	"fc00::/7",        // unique local, includes fd00:ec2::254 metadata
	"fe80::/10",       // link-local
	"fec0::/10",       // site-local (deprecated)
	"ff00::/8",        // multicast
)

var loopback = mustPrefixes("127.0.0.0/8", "::1/128")

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// addrPolicy decides which resolved addresses may be dialled.
type addrPolicy struct {
	allowLoopback bool
	extra         []netip.Prefix
}

// check returns nil if a may be dialled.
func (ap addrPolicy) check(a netip.Addr) error {
	if !a.IsValid() {
		return fmt.Errorf("invalid address: %w", ErrForbiddenAddress)
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		b := a.As16()
		if nat64.Contains(a) {
			return ap.check(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		}
		if sixToFour.Contains(a) {
			return ap.check(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	if ap.allowLoopback {
		for _, p := range loopback {
			if p.Contains(a) {
				return nil
			}
		}
	}
	for _, p := range refused {
		if p.Contains(a) {
			return fmt.Errorf("%s is in %s: %w", a, p, ErrForbiddenAddress)
		}
	}
	for _, p := range ap.extra {
		if p.Contains(a.Unmap()) {
			return fmt.Errorf("%s is in refused %s: %w", a, p, ErrForbiddenAddress)
		}
	}
	return nil
}

// parseHostLiteral classifies host (no port, no brackets). It returns the
// address and true if host is an IP literal in canonical form. It returns an
// error if host is a numeric form that some resolvers read as IPv4
// (inet_aton: "2130706433", "0177.0.0.1", "0x7f.1", "127.1"): such names are
// never legitimate and are refused outright.
func parseHostLiteral(host string) (netip.Addr, bool, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, false, fmt.Errorf("host %q has a zone: %w", host, ErrForbiddenAddress)
		}
		return a, true, nil
	}
	h := strings.TrimSuffix(host, ".")
	if h == "" {
		return netip.Addr{}, false, fmt.Errorf("empty host: %w", ErrForbiddenAddress)
	}
	if a, ok := inetAton(h); ok {
		return netip.Addr{}, false, fmt.Errorf("host %q is a non-canonical IPv4 literal (%s): %w", host, a, ErrForbiddenAddress)
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return netip.Addr{}, false, fmt.Errorf("host %q is an IP with a trailing dot: %w", host, ErrForbiddenAddress)
	}
	return netip.Addr{}, false, nil
}

// inetAton parses the BSD inet_aton forms: 1–4 dot-separated parts, each
// decimal, octal (leading 0) or hex (0x); the last part fills the remaining
// bytes.
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		if p == "" {
			return netip.Addr{}, false
		}
		base, digits := 10, p
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, digits = 16, p[2:]
			if digits == "" {
				digits = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (8 * (3 - i))
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
