package sender

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClassifyAddresses(t *testing.T) {
	for addr, want := range map[string]string{
		// IPv4
		"127.0.0.1":       "loopback",
		"127.255.0.9":     "loopback",
		"10.0.0.5":        "private",
		"172.16.0.1":      "private",
		"172.31.255.255":  "private",
		"192.168.1.1":     "private",
		"169.254.169.254": "link-local",
		"169.254.0.1":     "link-local",
		"0.0.0.0":         "unspecified",
		"0.1.2.3":         "unspecified",
		"224.0.0.1":       "multicast",
		"239.255.255.250": "multicast",
		"100.64.0.1":      "shared address space",
		"100.127.255.254": "shared address space",
		"240.0.0.1":       "reserved",
		"255.255.255.255": "reserved",
		"8.8.8.8":         "",
		"1.1.1.1":         "",
		"172.32.0.1":      "",
		"100.128.0.1":     "",
		"192.169.0.1":     "",
		// IPv6
		"::1":                  "loopback",
		"::":                   "unspecified",
		"fc00::1":              "private",
		"fd12:3456::1":         "private",
		"fec0::1":              "private",
		"fe80::1":              "link-local",
		"fe80::1%eth0":         "link-local",
		"ff02::1":              "multicast",
		"ff05::2":              "multicast",
		"2001:4860:4860::8888": "",
		"2606:4700::1111":      "",
		"2001:db8::1":          "documentation",
		"2001::1":              "Teredo",
		// IPv6 forms carrying an IPv4 address
		"::ffff:127.0.0.1":       "loopback",
		"::ffff:10.1.2.3":        "private",
		"::ffff:169.254.169.254": "link-local",
		"::ffff:8.8.8.8":         "",
		"64:ff9b::a00:1":         "private, NAT64 of 10.0.0.1",
		"64:ff9b::7f00:1":        "loopback, NAT64 of 127.0.0.1",
		"64:ff9b::a9fe:a9fe":     "link-local, NAT64 of 169.254.169.254",
		"64:ff9b::808:808":       "",
		"64:ff9b:1::a00:1":       "private",
		"2002:a00:1::":           "private, 6to4 of 10.0.0.1",
		"2002:7f00:1::1":         "loopback, 6to4 of 127.0.0.1",
		"2002:a9fe:a9fe::":       "link-local, 6to4 of 169.254.169.254",
		"2002:808:808::1":        "",
		"::a00:1":                "private, IPv4-compatible of 10.0.0.1",
		"::808:808":              "",
	} {
		a := netip.MustParseAddr(addr)
		if got := newGuard(nil).refusal(a); got != want {
			t.Errorf("%s: refused as %q, want %q", addr, got, want)
		}
		err := newGuard(nil).check(a)
		if (err == nil) != (want == "") {
			t.Errorf("%s: check = %v", addr, err)
		}
		if err != nil && !strings.Contains(err.Error(), "("+want+")") {
			t.Errorf("%s: check = %v", addr, err)
		}
	}
}

func TestGuardAllowCIDRs(t *testing.T) {
	g := newGuard([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("::ffff:192.168.1.0/120"), // an IPv4 prefix in mapped form
		netip.MustParsePrefix("fd00::/8"),
		{}, // an invalid prefix is ignored
	})
	for addr, allowed := range map[string]bool{
		"10.1.2.3":           true,
		"::ffff:10.1.2.3":    true,
		"64:ff9b::a01:203":   true, // NAT64 of 10.1.2.3
		"2002:a01:203::":     true,
		"192.168.1.7":        true,
		"::ffff:192.168.1.7": true,
		"192.168.2.7":        false,
		"fd00::1":            true,
		"fc00::1":            false,
		"127.0.0.1":          false,
		"169.254.169.254":    false,
		"8.8.8.8":            true,
	} {
		if err := g.check(netip.MustParseAddr(addr)); (err == nil) != allowed {
			t.Errorf("%s: check = %v, want allowed %v", addr, err, allowed)
		}
	}
}

func TestGuardControl(t *testing.T) {
	g := newGuard(nil)
	for address, ok := range map[string]bool{
		"8.8.8.8:443":           true,
		"[2606:4700::1111]:443": true,
		"[2001:db8::1]:443":     false,
		"10.0.0.1:80":           false,
		"[fe80::1%eth0]:80":     false,
		"[::ffff:127.0.0.1]:1":  false,
		"not-an-address":        false,
	} {
		if err := g.control("tcp", address, nil); (err == nil) != ok {
			t.Errorf("control(%q) = %v, want ok %v", address, err, ok)
		}
	}
}

// FuzzGuard: the guard never panics; an address, its IPv4-mapped form and
// its zoned form get the same answer; an address inside an allowed prefix
// is allowed, unless the prefix is also denied.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "10.0.0.5", "8.8.8.8", "::1", "64:ff9b::a00:1", "2002:a00:1::", "fe80::1", "::ffff:169.254.169.254", "::a00:1"} {
		a := netip.MustParseAddr(s).As16()
		f.Add(a[:], uint8(8))
	}
	f.Fuzz(func(t *testing.T, raw []byte, bits uint8) {
		if len(raw) != 16 && len(raw) != 4 {
			return
		}
		a, _ := netip.AddrFromSlice(raw)
		g := newGuard(nil)
		r := g.refusal(a)
		if a.Is4() {
			if m := netip.AddrFrom16(a.As16()); g.refusal(m) != r {
				t.Fatalf("%s is %q but %s is %q", a, r, m, g.refusal(m))
			}
		}
		if a.Is6() && !a.Is4In6() {
			if z := a.WithZone("eth0"); g.refusal(z) != r {
				t.Fatalf("%s is %q but %s is %q", a, r, z, g.refusal(z))
			}
		}
		if err := g.check(a); (err == nil) != (r == "") {
			t.Fatalf("check(%s) = %v, refusal %q", a, err, r)
		}
		n := int(bits) % (a.BitLen() + 1)
		if a.Is4In6() { // an IPv6 prefix shorter than /96 says nothing about IPv4
			n = 96 + int(bits)%33
		}
		p, err := a.Prefix(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := newGuard([]netip.Prefix{p}).check(a); err != nil {
			t.Fatalf("%s refused although %s is allowed: %v", a, p, err)
		}
		// Denying wins over allowing.
		gd := newGuard([]netip.Prefix{p})
		gd.deny = newPrefixSet([]netip.Prefix{p})
		if gd.check(a) == nil {
			t.Fatalf("%s allowed although %s is denied", a, p)
		}
	})
}
