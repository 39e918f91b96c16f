package sender

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/kubehook/kubehook/internal/subscriptions"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// fixedNow is the injected clock of most tests.
var fixedNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newSender(t testing.TB, o Options) *Sender {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return fixedNow }
	}
	s := New(o)
	t.Cleanup(s.CloseIdleConnections)
	return s
}

// loopbackSender may deliver to httptest servers.
func loopbackSender(t testing.TB) *Sender {
	return newSender(t, Options{AllowCIDRs: loopback})
}

func subFor(endpoint string) *subscriptions.Subscription {
	return &subscriptions.Subscription{
		Endpoint: endpoint,
		Delivery: subscriptions.Delivery{Timeout: 10 * time.Second},
	}
}

func request(body string) Request {
	return Request{ID: "msg_0001", Body: []byte(body), ContentType: "application/json"}
}

// counting wraps a handler and counts its calls.
type counting struct {
	n atomic.Int64
	h http.HandlerFunc
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	if c.h != nil {
		c.h(w, r)
	}
}

// server starts an httptest server closed at the end of the test.
func server(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// quiet drops the server's log of TLS handshake failures the tests cause on purpose.
func quiet(srv *httptest.Server) {
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// selfSigned returns a self-signed client certificate and key pair.
func selfSigned(t testing.TB, cn string) (*x509.Certificate, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf, pair
}

// fakeDNS is a DNS server on a loopback UDP port that answers every A query
// with addr and every other query with no records. resolver returns a
// net.Resolver that asks it and nothing else.
type fakeDNS struct {
	pc      net.PacketConn
	addr    netip.Addr
	queries atomic.Int64
}

func startDNS(t testing.TB, addr string) *fakeDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDNS{pc: pc, addr: netip.MustParseAddr(addr)}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, err := d.answer(buf[:n]); err == nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return d
}

func (d *fakeDNS) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	hdr, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	d.queries.Add(1)
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RecursionDesired: hdr.RecursionDesired, RecursionAvailable: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if q.Type == dnsmessage.TypeA && d.addr.Is4() {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 0}
		if err := b.AResource(rh, dnsmessage.AResource{A: d.addr.As4()}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

func (d *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "udp", d.pc.LocalAddr().String())
		},
	}
}

// refused returns the guard's error in err, failing the test when there is none.
func refused(t testing.TB, err error) *AddressNotAllowedError {
	t.Helper()
	var e *AddressNotAllowedError
	if !errors.As(err, &e) {
		t.Fatalf("error %v, want an *AddressNotAllowedError", err)
	}
	return e
}
