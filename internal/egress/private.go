package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// privateRanges are the refused ranges an operator's private grant
// (Config.AllowPrivate) opens: loopback and private networks, where local
// inference servers and internal tool servers live. Link-local (cloud
// metadata), multicast, reserved and documentation ranges stay refused,
// and so do the addresses in metadataAddrs and the protected listeners.
var privateRanges = mustPrefixes(
	"127.0.0.0/8",   // loopback
	"::1/128",       // loopback
	"10.0.0.0/8",    // RFC 1918
	"172.16.0.0/12", // RFC 1918
	"192.168.0.0/16",
	"100.64.0.0/10", // CGNAT
	"fc00::/7",      // unique local
)

// metadataAddrs are cloud metadata endpoints inside otherwise private
// ranges; no grant reaches them.
var metadataAddrs = []netip.Addr{netip.MustParseAddr("fd00:ec2::254")}

type privateKey struct{}

// granted reports whether ctx carries a private grant (set by do).
func granted(ctx context.Context) bool { v, _ := ctx.Value(privateKey{}).(bool); return v }

// checkGranted is check for a request with a private grant: the private
// ranges are open, everything else is judged as usual.
func (ap addrPolicy) checkGranted(a netip.Addr) error {
	u := a.Unmap().WithZone("")
	if slices.Contains(metadataAddrs, u) {
		return fmt.Errorf("%s is a metadata address: %w", u, ErrForbiddenAddress)
	}
	for _, p := range privateRanges {
		if p.Contains(u) {
			for _, x := range ap.extra {
				if x.Contains(u) {
					return fmt.Errorf("%s is in refused %s: %w", u, x, ErrForbiddenAddress)
				}
			}
			return nil
		}
	}
	return ap.check(a)
}

// checkAddr applies the address rules for a dial to a:port, with or
// without a private grant. The protected listeners come first: no grant
// and no test hook opens them.
func (p *Proxy) checkAddr(a netip.Addr, port int, private bool) error {
	if err := p.checkProtected(a, port); err != nil {
		return err
	}
	if private {
		return p.addrs.checkGranted(a)
	}
	return p.addrs.check(a)
}

// Protect makes the proxy refuse the daemon's own listeners (its API, its
// embedded NATS server) on every request, whatever a decider or a private
// grant says. An unspecified address (0.0.0.0:7070) protects that port on
// loopback and on every address of this machine; a loopback address
// protects the port on all of loopback. Safe to call while serving; each
// call replaces the previous set and drops idle connections, which were
// dialled under the old one.
func (p *Proxy) Protect(addrs ...netip.AddrPort) {
	cp := slices.Clone(addrs)
	p.protected.Store(&cp)
	_ = p.Close()
}

// checkProtected refuses a dial to one of the protected listeners.
func (p *Proxy) checkProtected(a netip.Addr, port int) error {
	prot := p.protected.Load()
	if prot == nil {
		return nil
	}
	a = a.Unmap().WithZone("")
	var local []netip.Addr // this machine's addresses, read when first needed
	for _, ap := range *prot {
		if int(ap.Port()) != port {
			continue
		}
		pa := ap.Addr().Unmap()
		hit := a == pa || a.IsLoopback() || a.IsUnspecified()
		if !hit && pa.IsUnspecified() {
			if local == nil {
				local = localAddrs()
			}
			hit = slices.Contains(local, a)
		}
		if hit {
			return fmt.Errorf("%s port %d is this daemon's own listener (%s): %w", a, port, ap, ErrForbiddenAddress)
		}
	}
	return nil
}

// localAddrs lists the addresses of this machine's interfaces.
func localAddrs() []netip.Addr {
	out := []netip.Addr{}
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, ia := range ifas {
		if pn, ok := ia.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(pn.IP); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	return out
}
