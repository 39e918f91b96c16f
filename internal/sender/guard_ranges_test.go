package sender

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
)

// specialRanges lists, for every range the guard refuses, the first and
// last address inside it and the addresses just outside it, with the
// refusal each gets ("" is delivered to).
var specialRanges = []struct {
	rng  string
	want map[string]string
}{
	{"0.0.0.0/8", map[string]string{"0.0.0.0": "unspecified", "0.255.255.255": "unspecified", "1.0.0.0": ""}},
	{"10.0.0.0/8", map[string]string{"9.255.255.255": "", "10.0.0.0": "private", "10.255.255.255": "private", "11.0.0.0": ""}},
	{"100.64.0.0/10", map[string]string{"100.63.255.255": "", "100.64.0.0": "shared address space", "100.127.255.255": "shared address space", "100.128.0.0": ""}},
	{"127.0.0.0/8", map[string]string{"126.255.255.255": "", "127.0.0.0": "loopback", "127.255.255.255": "loopback", "128.0.0.0": ""}},
	{"169.254.0.0/16", map[string]string{"169.253.255.255": "", "169.254.0.0": "link-local", "169.254.255.255": "link-local", "169.255.0.0": ""}},
	{"172.16.0.0/12", map[string]string{"172.15.255.255": "", "172.16.0.0": "private", "172.31.255.255": "private", "172.32.0.0": ""}},
	{"192.0.0.0/24", map[string]string{"191.255.255.255": "", "192.0.0.0": "IETF protocol assignments", "192.0.0.255": "IETF protocol assignments", "192.0.1.0": ""}},
	{"192.0.2.0/24", map[string]string{"192.0.1.255": "", "192.0.2.0": "documentation", "192.0.2.255": "documentation", "192.0.3.0": ""}},
	{"192.168.0.0/16", map[string]string{"192.167.255.255": "", "192.168.0.0": "private", "192.168.255.255": "private", "192.169.0.0": ""}},
	{"198.18.0.0/15", map[string]string{"198.17.255.255": "", "198.18.0.0": "benchmarking", "198.19.255.255": "benchmarking", "198.20.0.0": ""}},
	{"198.51.100.0/24", map[string]string{"198.51.99.255": "", "198.51.100.0": "documentation", "198.51.100.255": "documentation", "198.51.101.0": ""}},
	{"203.0.113.0/24", map[string]string{"203.0.112.255": "", "203.0.113.0": "documentation", "203.0.113.255": "documentation", "203.0.114.0": ""}},
	{"224.0.0.0/4", map[string]string{"223.255.255.255": "", "224.0.0.0": "multicast", "239.255.255.255": "multicast"}},
	{"240.0.0.0/4", map[string]string{"240.0.0.0": "reserved", "255.255.255.254": "reserved", "255.255.255.255": "reserved"}},

	{"::/128", map[string]string{"::": "unspecified"}},
	{"::1/128", map[string]string{"::1": "loopback"}},
	{"100::/64", map[string]string{"ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "", "100::": "discard-only", "100::ffff:ffff:ffff:ffff": "discard-only", "100:0:0:1::": ""}},
	{"2001::/32", map[string]string{"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "", "2001::": "Teredo", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff": "Teredo", "2001:1::": ""}},
	{"2001:2::/48", map[string]string{"2001:1:ffff:ffff:ffff:ffff:ffff:ffff": "", "2001:2::": "benchmarking", "2001:2:0:ffff:ffff:ffff:ffff:ffff": "benchmarking", "2001:2:1::": ""}},
	{"2001:db8::/32", map[string]string{"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff": "", "2001:db8::": "documentation", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff": "documentation", "2001:db9::": ""}},
	{"3fff::/20", map[string]string{"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "", "3fff::": "documentation", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff": "documentation", "3fff:1000::": ""}},
	{"64:ff9b:1::/48", map[string]string{"64:ff9b:0:ffff:ffff:ffff:ffff:ffff": "", "64:ff9b:1::": "private", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff": "private", "64:ff9b:2::": ""}},
	{"fc00::/7", map[string]string{"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "", "fc00::": "private", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "private"}},
	{"fe80::/10", map[string]string{"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "", "fe80::": "link-local", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "link-local"}},
	{"fec0::/10", map[string]string{"fec0::": "private", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "private", "ff00::": "multicast"}},
}

// ipv6Forms returns the IPv6 addresses that carry v4, with the refusal
// each gets when v4 is refused as reason.
func ipv6Forms(v4 netip.Addr, reason string) map[string]string {
	b := v4.As4()
	embedded := func(form string) string {
		if reason == "" {
			return ""
		}
		return fmt.Sprintf("%s, %s of %s", reason, form, v4)
	}
	return map[string]string{
		"::ffff:" + v4.String():   reason, // IPv4-mapped: the same address
		"64:ff9b::" + v4.String(): embedded("NAT64"),
		fmt.Sprintf("2002:%02x%02x:%02x%02x::1", b[0], b[1], b[2], b[3]): embedded("6to4"),
		"::ffff:0:" + v4.String(): embedded("IPv4-translated"),
		"::" + v4.String():        embedded("IPv4-compatible"),
	}
}

func TestGuardRefusesSpecialRanges(t *testing.T) {
	g := newGuard(nil)
	for _, r := range specialRanges {
		p := netip.MustParsePrefix(r.rng)
		for addr, want := range r.want {
			a := netip.MustParseAddr(addr)
			if got := g.refusal(a); got != want {
				t.Errorf("%s (range %s): refused as %q, want %q", addr, r.rng, got, want)
			}
			if p.Contains(a) && want == "" {
				t.Errorf("%s: the table says allowed, but it is inside %s", addr, r.rng)
			}
			// Every IPv6 spelling of an IPv4 address is judged as that
			// address (0.0.0.0/8 has none: ::0.0.0.1 is ::1).
			if !a.Is4() || thisNetwork.Contains(a) {
				continue
			}
			for form, fwant := range ipv6Forms(a, want) {
				if got := g.refusal(netip.MustParseAddr(form)); got != fwant {
					t.Errorf("%s (%s): refused as %q, want %q", form, addr, got, fwant)
				}
			}
		}
	}
}

// The guard judges the address being connected to, however it is spelled.
func TestGuardAddressSpellings(t *testing.T) {
	g := newGuard(nil)
	for _, tc := range []struct {
		reason    string
		spellings []string
	}{
		{"documentation", []string{"192.0.2.1:443", "[::ffff:192.0.2.1]:443", "[::ffff:c000:201]:443", "[::FFFF:C000:0201]:443", "[0:0:0:0:0:ffff:192.0.2.1]:443", "[0000:0000:0000:0000:0000:ffff:c000:0201]:443"}},
		{"documentation", []string{"[2001:db8::1]:443", "[2001:0DB8:0000:0000::0001]:443", "[2001:db8:0:0:0:0:0:1]:443"}},
		{"loopback", []string{"127.0.0.1:80", "[::ffff:7f00:1]:80", "[::ffff:127.0.0.1]:80"}},
		{"link-local", []string{"[fe80::1%eth0]:80", "[fe80::1%25]:80", "169.254.169.254:80", "[::ffff:a9fe:a9fe]:80"}},
		{"Teredo", []string{"[2001::1]:443", "[2001:0000::0001]:443"}},
		{"benchmarking", []string{"198.18.0.1:80", "[::ffff:c612:1]:80"}},
	} {
		for _, s := range tc.spellings {
			var e *AddressNotAllowedError
			err := g.control("tcp", s, nil)
			if !asRefusal(err, &e) || e.Reason != tc.reason {
				t.Errorf("control(%q) = %v, want refused as %s", s, err, tc.reason)
			}
		}
	}
}

func asRefusal(err error, e **AddressNotAllowedError) bool {
	r, ok := err.(*AddressNotAllowedError)
	*e = r
	return ok
}

// A denied range is refused whatever is allowed, in every form that
// reaches it; everything else is as without it.
func TestGuardDenyOverridesAllow(t *testing.T) {
	g := newGuard([]netip.Prefix{
		netip.MustParsePrefix("8.8.0.0/16"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("64:ff9b::/96"), // NAT64 to anything
	})
	g.deny = newPrefixSet([]netip.Prefix{
		netip.MustParsePrefix("8.8.8.0/24"),
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("::ffff:1.1.1.0/120"), // an IPv4 range in mapped form
		netip.MustParsePrefix("2606:4700::/32"),
	})
	for addr, want := range map[string]string{
		"8.8.8.8":            reasonDenied,
		"8.8.8.0":            reasonDenied,
		"8.8.8.255":          reasonDenied,
		"8.8.7.255":          "", // allowed, just outside the denied range
		"8.8.9.0":            "",
		"::ffff:8.8.8.8":     reasonDenied,
		"64:ff9b::808:808":   reasonDenied + ", NAT64 of 8.8.8.8",
		"2002:808:808::1":    reasonDenied + ", 6to4 of 8.8.8.8",
		"10.1.2.3":           reasonDenied,
		"10.2.0.1":           "",
		"64:ff9b::a01:203":   reasonDenied + ", NAT64 of 10.1.2.3",
		"64:ff9b::a02:1":     "",
		"1.1.1.1":            reasonDenied,
		"1.1.2.1":            "",
		"2606:4700::1111":    reasonDenied,
		"2606:4701::1":       "",
		"127.0.0.1":          "loopback",
		"169.254.169.254":    "link-local",
		"64:ff9b::a9fe:a9fe": "", // allowed through the NAT64 range
	} {
		a := netip.MustParseAddr(addr)
		if got := g.refusal(a); got != want {
			t.Errorf("%s: refused as %q, want %q", addr, got, want)
		}
		var e *AddressNotAllowedError
		if err := g.check(a); want != "" && (!asRefusal(err, &e) || e.Denied != strings.HasPrefix(want, reasonDenied)) {
			t.Errorf("%s: check = %#v", addr, err)
		}
	}
	e := g.check(netip.MustParseAddr("8.8.8.8")).(*AddressNotAllowedError)
	if want := "endpoint address 8.8.8.8 is not allowed (denied by --deny-endpoint-cidrs)"; e.Error() != want {
		t.Errorf("Error() = %q, want %q (allowing does not help)", e.Error(), want)
	}
}

// The cluster's ranges are refused, even public ones, unless allowed; they
// change at runtime; until they are known, an awaiting guard refuses
// everything not allowed.
func TestGuardClusterRanges(t *testing.T) {
	g := newGuard([]netip.Prefix{netip.MustParsePrefix("93.184.1.0/24")})
	g.deny = newPrefixSet([]netip.Prefix{netip.MustParsePrefix("93.184.1.7/32")})
	g.awaitCluster = true
	expect := func(step string, want map[string]string) {
		t.Helper()
		for addr, w := range want {
			if got := g.refusal(netip.MustParseAddr(addr)); got != w {
				t.Errorf("%s: %s refused as %q, want %q", step, addr, got, w)
			}
		}
	}
	expect("before the ranges are read", map[string]string{
		"8.8.8.8":     reasonClusterUnknown,
		"2606:4700::": reasonClusterUnknown,
		"93.184.1.5":  "", // allowed
		"93.184.1.7":  reasonDenied,
	})

	g.setCluster(
		[]netip.Prefix{netip.MustParsePrefix("34.118.224.0/20"), netip.MustParsePrefix("2600:1900:4000::/112")},
		[]netip.Prefix{netip.MustParsePrefix("93.184.0.0/16"), netip.MustParsePrefix("2600:1f00::/56"), netip.MustParsePrefix("10.244.0.0/24")},
	)
	expect("with the first ranges", map[string]string{
		"8.8.8.8":                            "",
		"34.118.223.255":                     "",
		"34.118.224.0":                       reasonClusterService,
		"34.118.239.255":                     reasonClusterService,
		"34.118.240.0":                       "",
		"2600:1900:4000::1":                  reasonClusterService,
		"2600:1900:4000::1:0":                "",
		"93.183.255.255":                     "",
		"93.184.0.0":                         reasonClusterPod,
		"93.184.255.255":                     reasonClusterPod,
		"93.185.0.0":                         "",
		"::ffff:93.184.0.1":                  reasonClusterPod,
		"64:ff9b::5db8:1":                    reasonClusterPod + ", NAT64 of 93.184.0.1",
		"2002:5db8:1::":                      reasonClusterPod + ", 6to4 of 93.184.0.1",
		"2600:1f00::1":                       reasonClusterPod,
		"2600:1f00:0:ff:ffff:ffff:ffff:ffff": reasonClusterPod,
		"2600:1f00:0:100::":                  "",
		"10.244.0.9":                         reasonClusterPod, // named as the cluster's, not just private
		"10.245.0.9":                         "private",
		"93.184.1.5":                         "", // allowed explicitly
		"93.184.1.7":                         reasonDenied,
		"93.184.2.5":                         reasonClusterPod,
	})

	g.setCluster(nil, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/25")})
	expect("after the ranges changed", map[string]string{
		"34.118.224.0":   "",
		"93.184.0.0":     "",
		"2600:1f00::1":   "",
		"10.244.0.9":     "private",
		"198.51.100.1":   reasonClusterPod,
		"198.51.100.128": "documentation",
	})
}

// Dials read the cluster ranges while they are replaced: every check sees
// one whole set, never a missing or half-built one.
func TestGuardClusterRangesConcurrentUpdate(t *testing.T) {
	g := newGuard(nil)
	g.awaitCluster = true
	inService := []netip.Prefix{netip.MustParsePrefix("93.184.0.0/16")}
	g.setCluster(inService, nil)
	a := netip.MustParseAddr("93.184.0.1")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r := g.refusal(a); r != reasonClusterService && r != reasonClusterPod {
					t.Errorf("refused as %q while the ranges change", r)
					return
				}
			}
		})
	}
	for i := range 2000 {
		if i%2 == 0 {
			g.setCluster(nil, inService)
		} else {
			g.setCluster(inService, nil)
		}
	}
	close(stop)
	wg.Wait()
}

func TestPrefixSet(t *testing.T) {
	s := newPrefixSet([]netip.Prefix{
		netip.MustParsePrefix("10.1.2.3/8"), // host bits set
		netip.MustParsePrefix("10.20.0.0/16"),
		netip.MustParsePrefix("::ffff:192.168.1.0/120"),
		netip.MustParsePrefix("192.168.1.128/25"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("fd00:1::/32"),
		netip.MustParsePrefix("8.8.8.8/32"),
		{},
	})
	want := []string{"8.8.8.8/32", "10.0.0.0/8", "192.168.1.0/24", "fd00::/8"}
	var got []string
	for _, p := range s {
		got = append(got, p.String())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("set = %v, want %v", got, want)
	}
	for addr, in := range map[string]bool{
		"8.8.8.7": false, "8.8.8.8": true, "8.8.8.9": false,
		"9.255.255.255": false, "10.0.0.0": true, "10.255.255.255": true, "11.0.0.0": false,
		"192.168.0.255": false, "192.168.1.0": true, "192.168.1.255": true, "192.168.2.0": false,
		"fcff::": false, "fd00::": true, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": true, "fe00::": false,
		"::ffff:10.0.0.0": false, // callers unmap first
		"::a00:0":         false,
	} {
		if got := s.contains(netip.MustParseAddr(addr)); got != in {
			t.Errorf("contains(%s) = %v, want %v", addr, got, in)
		}
	}
	if newPrefixSet(nil).contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("the empty set contains 10.0.0.1")
	}
}

// FuzzPrefixSet: a set contains an address exactly when one of the ranges
// it was built from (in the address's family) does.
func FuzzPrefixSet(f *testing.F) {
	f.Add([]byte{1, 10, 0, 0, 0, 8, 1, 10, 20, 0, 0, 16}, []byte{10, 20, 1, 1})
	f.Add([]byte{0, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8}, []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, raw []byte, addr []byte) {
		a, ok := netip.AddrFromSlice(addr)
		if !ok {
			return
		}
		a = a.Unmap()
		var ps []netip.Prefix
		for len(raw) > 0 {
			n := 16 // an IPv6 range, or an IPv4 one when the first bit is set
			if raw[0]&1 == 1 {
				n = 4
			}
			if len(raw) < n+2 {
				break
			}
			pa, _ := netip.AddrFromSlice(raw[1 : 1+n])
			ps = append(ps, netip.PrefixFrom(pa, int(raw[1+n])%(8*n+1)))
			raw = raw[n+2:]
		}
		want := false
		for _, p := range ps {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			want = want || p.Contains(a)
		}
		if got := newPrefixSet(ps).contains(a); got != want {
			t.Fatalf("contains(%s) = %v, want %v, ranges %v", a, got, want, ps)
		}
	})
}

func TestParseCIDRs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: nil},
		{in: " , ,", want: nil},
		{in: "10.0.0.0/8", want: []string{"10.0.0.0/8"}},
		{in: " 10.1.2.3/8 , fd00::/8,,203.0.113.0/24 ", want: []string{"10.0.0.0/8", "fd00::/8", "203.0.113.0/24"}},
		{in: "::ffff:10.0.0.0/104", want: []string{"::ffff:10.0.0.0/104"}},
		{in: "10.0.0.1", wantErr: `"10.0.0.1" is not a CIDR range`},
		{in: "10.0.0.0/8,10.0.0.0/33", wantErr: `"10.0.0.0/33" is not a CIDR range`},
		{in: "fe80::/10%eth0", wantErr: `"fe80::/10%eth0" is not a CIDR range`},
		{in: "example.com/24", wantErr: `"example.com/24" is not a CIDR range`},
		{in: "10.0.0.0/8;192.168.0.0/16", wantErr: `"10.0.0.0/8;192.168.0.0/16" is not a CIDR range`},
	} {
		got, err := ParseCIDRs(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseCIDRs(%q) = %v, %v, want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		if err != nil || !slices.Equal(gs, tc.want) {
			t.Errorf("ParseCIDRs(%q) = %v, %v, want %v", tc.in, gs, err, tc.want)
		}
	}
}

// FuzzParseCIDRs: parsing an operator's list never panics; what it returns
// is masked, valid, one range per non-empty item, and parses back to the
// same ranges.
func FuzzParseCIDRs(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", " 10.1.2.3/8 , fd00::/8,,", "::ffff:10.0.0.0/104", "10.0.0.1", "1.2.3.4/33", "fe80::/10%eth0", "/", ",", "0.0.0.0/0,::/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseCIDRs(s)
		if err != nil {
			return
		}
		items := 0
		for part := range strings.SplitSeq(s, ",") {
			if strings.TrimSpace(part) != "" {
				items++
			}
		}
		if len(got) != items {
			t.Fatalf("ParseCIDRs(%q) = %v: %d ranges for %d items", s, got, len(got), items)
		}
		strs := make([]string, len(got))
		for i, p := range got {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("ParseCIDRs(%q) returned %v", s, p)
			}
			strs[i] = p.String()
		}
		again, err := ParseCIDRs(strings.Join(strs, ","))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("ParseCIDRs(%q) = %v, reparsed %v, %v", s, got, again, err)
		}
	})
}
