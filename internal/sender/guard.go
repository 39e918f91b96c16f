package sender

import (
	"fmt"
	"net/netip"
	"syscall"
)

// AddressNotAllowedError is the error of a connection the SSRF guard
// refused: the endpoint's address, as resolved when connecting, is in a
// range kubehook does not deliver to unless an operator allows it.
type AddressNotAllowedError struct {
	// Addr is the address that was about to be connected to.
	Addr netip.Addr
	// Reason names the range: "loopback", "private", "link-local", ...
	Reason string
}

func (e *AddressNotAllowedError) Error() string {
	return fmt.Sprintf("endpoint address %s is not allowed (%s); allow it with --allow-endpoint-cidrs", e.Addr, e.Reason)
}

// guard decides which addresses deliveries may connect to. It is consulted
// by the dialer's Control hook with the address being connected to, after
// name resolution, so a name that resolves differently on each lookup (DNS
// rebinding) cannot slip an internal address past it.
type guard struct {
	allow []netip.Prefix
}

func newGuard(allow []netip.Prefix) *guard {
	g := &guard{}
	for _, p := range allow {
		if !p.IsValid() {
			continue
		}
		// Compare in the address's own family: an IPv4 prefix written as
		// ::ffff:a.b.c.d/n is the IPv4 prefix a.b.c.d/(n-96).
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		g.allow = append(g.allow, p.Masked())
	}
	return g
}

// control is a net.Dialer Control hook: it refuses to connect to an
// address the guard does not allow.
func (g *guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("endpoint address %q cannot be checked: %w", address, err)
	}
	return g.check(ap.Addr())
}

// check returns an *AddressNotAllowedError when a may not be connected to.
func (g *guard) check(a netip.Addr) error {
	if r := g.refusal(a); r != "" {
		return &AddressNotAllowedError{Addr: a.WithZone(""), Reason: r}
	}
	return nil
}

// refusal returns why a is refused, or "" when it is allowed.
func (g *guard) refusal(a netip.Addr) string {
	a = a.WithZone("").Unmap()
	if g.allowed(a) {
		return ""
	}
	if v4, form, ok := embeddedIPv4(a); ok {
		if r := g.refusal(v4); r != "" {
			return fmt.Sprintf("%s, %s of %s", r, form, v4)
		}
		return ""
	}
	return classify(a)
}

func (g *guard) allowed(a netip.Addr) bool {
	for _, p := range g.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Special-purpose ranges, in the order they are checked.
var (
	cgnat       = netip.MustParsePrefix("100.64.0.0/10")
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	reserved4   = netip.MustParsePrefix("240.0.0.0/4") // includes 255.255.255.255
	siteLocal6  = netip.MustParsePrefix("fec0::/10")
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local  = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour   = netip.MustParsePrefix("2002::/16")
	v4compat    = netip.MustParsePrefix("::/96")
)

// classify returns the name of the refused range a (an unmapped address
// without zone) is in, or "" when it is a public unicast address.
func classify(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified(), thisNetwork.Contains(a):
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate(), siteLocal6.Contains(a), nat64Local.Contains(a):
		// IsPrivate covers 10/8, 172.16/12, 192.168/16 and fc00::/7.
		return "private"
	case a.IsLinkLocalUnicast():
		// 169.254/16 holds cloud metadata services; fe80::/10.
		return "link-local"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case cgnat.Contains(a):
		return "shared address space"
	case reserved4.Contains(a):
		return "reserved"
	}
	return ""
}

// embeddedIPv4 returns the IPv4 address an IPv6 transition address carries:
// NAT64 (64:ff9b::/96, the IPv4 address in the last 32 bits), 6to4
// (2002::/16, in bits 16 to 48) and the deprecated IPv4-compatible form
// (::/96). IPv4-mapped addresses are unmapped before this is called.
func embeddedIPv4(a netip.Addr) (v4 netip.Addr, form string, ok bool) {
	if !a.Is6() {
		return netip.Addr{}, "", false
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), "NAT64", true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), "6to4", true
	case v4compat.Contains(a) && !a.IsUnspecified() && !a.IsLoopback():
		return netip.AddrFrom4([4]byte(b[12:16])), "IPv4-compatible", true
	}
	return netip.Addr{}, "", false
}
