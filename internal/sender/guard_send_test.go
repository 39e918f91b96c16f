package sender

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
)

// --deny-endpoint-cidrs refuses what --allow-endpoint-cidrs allows, and the
// handler is never reached.
func TestSendRefusesDeniedRanges(t *testing.T) {
	h := &counting{}
	srv := server(t, h)
	s := newSender(t, Options{AllowCIDRs: loopback, DenyCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	res := s.Send(context.Background(), subFor(srv.URL), request("{}"))
	e := refused(t, res.Err)
	if want := "endpoint address 127.0.0.1 is not allowed (denied by --deny-endpoint-cidrs)"; res.Err.Error() != want || !e.Denied || !res.NotSent {
		t.Fatalf("Send = %+v, want Err %q", res, want)
	}
	if h.n.Load() != 0 {
		t.Fatal("the handler was reached")
	}
}

// The guard judges the address being dialed, not how the URL spells the
// host: a hex IPv4-mapped literal, a zero-padded one, and a hex "IP" that
// is a name resolving to loopback are all loopback. (An all-digit host such
// as 2130706433 is not a domain name to Go's resolver: it fails to resolve
// and reaches nothing either.)
func TestSendJudgesTheDialedAddress(t *testing.T) {
	h := &counting{}
	srv := server(t, h)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	dns := startDNS(t, "127.0.0.1")
	s := newSender(t, Options{Resolver: dns.resolver()})
	for _, host := range []string{"[::ffff:7f00:1]", "[0:0:0:0:0:ffff:7f00:0001]", "0x7f000001", "hooks.kubehook.test"} {
		ep := fmt.Sprintf("http://%s:%d/", host, port)
		res := s.Send(context.Background(), subFor(ep), request("{}"))
		if e := refused(t, res.Err); e.Reason != "loopback" || e.Addr != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("%s: Err = %v", ep, res.Err)
		}
	}
	ep := fmt.Sprintf("http://2130706433:%d/", port)
	if res := s.Send(context.Background(), subFor(ep), request("{}")); res.OK() {
		t.Errorf("%s: Send = %+v", ep, res)
	}
	if h.n.Load() != 0 {
		t.Fatal("the handler was reached")
	}
}

// A sender awaiting the cluster ranges refuses until they are set, then
// refuses the cluster's ranges (public ones too) and follows their changes.
func TestSendRefusesClusterRanges(t *testing.T) {
	dns := startDNS(t, "198.51.100.7")
	s := newSender(t, Options{Resolver: dns.resolver(), AwaitClusterRanges: true})
	send := func() *AddressNotAllowedError {
		t.Helper()
		res := s.Send(context.Background(), subFor("http://pod.kubehook.test:8080/"), request("{}"))
		if !res.NotSent {
			t.Fatalf("Send = %+v, want not sent", res)
		}
		return refused(t, res.Err)
	}
	if e := send(); e.Reason != reasonClusterUnknown {
		t.Fatalf("before the ranges are set: %v", e)
	}
	s.SetClusterRanges([]netip.Prefix{netip.MustParsePrefix("34.118.224.0/20")}, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")})
	if e := send(); e.Reason != reasonClusterPod {
		t.Fatalf("in the Pod range: %v", e)
	}
	res := s.Send(context.Background(), subFor("http://34.118.224.10/"), request("{}"))
	if e := refused(t, res.Err); e.Reason != reasonClusterService {
		t.Fatalf("in the Service range: %v", e)
	}
	// Once the range is gone the address is judged as any other.
	s.SetClusterRanges(nil, nil)
	if e := send(); e.Reason != "documentation" {
		t.Fatalf("after the ranges changed: %v", e)
	}
}
