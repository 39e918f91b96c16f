package sender

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
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
	// Denied is set when --deny-endpoint-cidrs refused the address, which
	// --allow-endpoint-cidrs does not override.
	Denied bool
}

func (e *AddressNotAllowedError) Error() string {
	if e.Denied {
		return fmt.Sprintf("endpoint address %s is not allowed (%s)", e.Addr, e.Reason)
	}
	return fmt.Sprintf("endpoint address %s is not allowed (%s); allow it with --allow-endpoint-cidrs", e.Addr, e.Reason)
}

// Reasons of the refusals that do not come from a fixed range.
const (
	reasonDenied         = "denied by --deny-endpoint-cidrs"
	reasonClusterService = "cluster Service range"
	reasonClusterPod     = "cluster Pod range"
	reasonClusterUnknown = "cluster Service and Pod ranges not read yet"
)

// guard decides which addresses deliveries may connect to. It is consulted
// by the dialer's Control hook with the address being connected to, after
// name resolution, so a name that resolves differently on each lookup (DNS
// rebinding) cannot slip an internal address past it, and no spelling of
// the host in the URL (decimal, hex, IPv4-mapped) matters.
//
// Precedence: a denied range refuses, whatever is allowed; then an allowed
// range allows; then the cluster's own ranges and the special-purpose
// ranges refuse.
type guard struct {
	deny  prefixSet
	allow prefixSet
	// cluster holds the cluster's Service and Pod ranges, replaced as they
	// change while dials read it. Nil means not known yet: with
	// awaitCluster every address not allowed is refused until they are.
	cluster      atomic.Pointer[clusterSets]
	awaitCluster bool
}

type clusterSets struct {
	service, pod prefixSet
}

func newGuard(allow []netip.Prefix) *guard {
	return &guard{allow: newPrefixSet(allow)}
}

// setCluster replaces the cluster's ranges; safe while dials run.
func (g *guard) setCluster(service, pod []netip.Prefix) {
	g.cluster.Store(&clusterSets{service: newPrefixSet(service), pod: newPrefixSet(pod)})
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
		return &AddressNotAllowedError{Addr: a.WithZone(""), Reason: r, Denied: strings.HasPrefix(r, reasonDenied)}
	}
	return nil
}

// refusal returns why a is refused, or "" when it is allowed.
func (g *guard) refusal(a netip.Addr) string {
	a = a.WithZone("").Unmap()
	if !a.IsValid() {
		return classify(a)
	}
	v4, form, embedded := embeddedIPv4(a)
	// A denied IPv4 address is denied in every IPv6 form that reaches it,
	// even when that form is in an allowed range.
	if g.deny.contains(a) {
		return reasonDenied
	}
	if embedded && g.deny.contains(v4) {
		return fmt.Sprintf("%s, %s of %s", reasonDenied, form, v4)
	}
	if g.allow.contains(a) {
		return ""
	}
	if r := g.clusterRefusal(a); r != "" {
		return r
	}
	if embedded {
		if r := g.refusal(v4); r != "" {
			return fmt.Sprintf("%s, %s of %s", r, form, v4)
		}
		return ""
	}
	return classify(a)
}

func (g *guard) clusterRefusal(a netip.Addr) string {
	c := g.cluster.Load()
	switch {
	case c == nil && g.awaitCluster:
		return reasonClusterUnknown
	case c == nil:
		return ""
	case c.service.contains(a):
		return reasonClusterService
	case c.pod.contains(a):
		return reasonClusterPod
	}
	return ""
}

// prefixSet is a set of address ranges, sorted and without nested ranges,
// so that a lookup is a binary search: a cluster has a Pod range per Node.
type prefixSet []netip.Prefix

// newPrefixSet normalizes ps: invalid prefixes are dropped, IPv4 prefixes
// written as ::ffff:a.b.c.d/n become a.b.c.d/(n-96) (addresses are
// compared in their own family), host bits are cleared, and a range inside
// another is dropped.
func newPrefixSet(ps []netip.Prefix) prefixSet {
	out := make(prefixSet, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	// Sorted by first address, a containing range comes right before the
	// ranges it contains; ranges are either nested or disjoint.
	slices.SortFunc(out, func(x, y netip.Prefix) int {
		return cmp.Or(x.Addr().Compare(y.Addr()), cmp.Compare(x.Bits(), y.Bits()))
	})
	kept := out[:0]
	for _, p := range out {
		if len(kept) > 0 && kept[len(kept)-1].Overlaps(p) {
			continue
		}
		kept = append(kept, p)
	}
	return slices.Clip(kept)
}

// contains reports whether a (unmapped, without zone) is in the set.
func (s prefixSet) contains(a netip.Addr) bool {
	// The last range starting at or before a is the only one that can hold it.
	i, found := slices.BinarySearchFunc(s, a, func(p netip.Prefix, a netip.Addr) int { return p.Addr().Compare(a) })
	if found {
		return true
	}
	return i > 0 && s[i-1].Contains(a)
}

// Special-purpose ranges (the IANA registries), in the order they are checked.
var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	siteLocal6  = netip.MustParsePrefix("fec0::/10")
	nat64Local  = netip.MustParsePrefix("64:ff9b:1::/48")
	cgnat       = netip.MustParsePrefix("100.64.0.0/10")
	ietf4       = netip.MustParsePrefix("192.0.0.0/24")
	bench4      = netip.MustParsePrefix("198.18.0.0/15")
	bench6      = netip.MustParsePrefix("2001:2::/48")
	teredo      = netip.MustParsePrefix("2001::/32")
	discard6    = netip.MustParsePrefix("100::/64")
	reserved4   = netip.MustParsePrefix("240.0.0.0/4") // includes 255.255.255.255

	documentation = []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
		netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
		netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("3fff::/20"), // RFC 9637
	}

	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	v4compat  = netip.MustParsePrefix("::/96")
	// v4translated is SIIT's IPv4-translated form, ::ffff:0:a.b.c.d.
	v4translated = netip.MustParsePrefix("::ffff:0:0:0/96")
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
	case ietf4.Contains(a):
		return "IETF protocol assignments"
	case bench4.Contains(a), bench6.Contains(a):
		return "benchmarking"
	case slices.ContainsFunc(documentation, func(p netip.Prefix) bool { return p.Contains(a) }):
		return "documentation"
	case teredo.Contains(a):
		// The client's IPv4 address is in there, obfuscated; a relay
		// decides where the packets go.
		return "Teredo"
	case discard6.Contains(a):
		return "discard-only"
	case reserved4.Contains(a):
		return "reserved"
	}
	return ""
}

// embeddedIPv4 returns the IPv4 address an IPv6 transition address carries:
// NAT64 (64:ff9b::/96, the IPv4 address in the last 32 bits), 6to4
// (2002::/16, in bits 16 to 48), SIIT's IPv4-translated form
// (::ffff:0:0:0/96) and the deprecated IPv4-compatible form (::/96).
// IPv4-mapped addresses are unmapped before this is called.
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
	case v4translated.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), "IPv4-translated", true
	case v4compat.Contains(a) && !a.IsUnspecified() && !a.IsLoopback():
		return netip.AddrFrom4([4]byte(b[12:16])), "IPv4-compatible", true
	}
	return netip.Addr{}, "", false
}

// ParseCIDRs parses a comma-separated list of CIDR ranges (the
// --allow-endpoint-cidrs and --deny-endpoint-cidrs flags). Spaces around
// items and empty items are ignored; host bits are cleared.
func ParseCIDRs(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR range (such as 10.0.0.0/8 or fd00::/8): %w", part, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
