package app

import (
	"net/netip"
	"strings"
	"testing"
)

// A bad range in either flag fails start-up with the flag's name and the
// bad item; good ones are parsed for the sender.
func TestEndpointCIDRsFlags(t *testing.T) {
	for _, tc := range []struct {
		allow, deny string
		wantErr     string
	}{
		{allow: "10.0.0.0/8, fd00::/8", deny: "10.1.0.0/16"},
		{allow: "10.0.0.0/8,10.0.0.1", wantErr: `--allow-endpoint-cidrs: "10.0.0.1" is not a CIDR range`},
		{deny: "8.8.8.0/24,8.8.4.0/33", wantErr: `--deny-endpoint-cidrs: "8.8.4.0/33" is not a CIDR range`},
		{deny: "example.com", wantErr: `--deny-endpoint-cidrs: "example.com" is not a CIDR range`},
	} {
		o := Options{AllowEndpointCIDRs: tc.allow, DenyEndpointCIDRs: tc.deny}
		allow, deny, err := o.endpointCIDRs()
		if tc.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("allow %q deny %q: err = %v, want %q", tc.allow, tc.deny, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		wantAllow := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
		if len(allow) != 2 || allow[0] != wantAllow[0] || allow[1] != wantAllow[1] || len(deny) != 1 || deny[0] != netip.MustParsePrefix("10.1.0.0/16") {
			t.Errorf("allow = %v, deny = %v", allow, deny)
		}
	}
}
