package sender

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"k8s.io/utils/lru"

	"github.com/kubehook/kubehook/internal/credentials"
)

// transportKey identifies a TLS configuration: the SHA-256 of the trusted
// CA bundle, the client certificate chain and the skip-verification flag.
type transportKey [sha256.Size]byte

// keyFor returns the key of the TLS configuration tlsc and skip describe.
func keyFor(tlsc *credentials.TLS, skip bool) transportKey {
	h := sha256.New()
	var b [8]byte
	field := func(p []byte) {
		binary.BigEndian.PutUint64(b[:], uint64(len(p)))
		h.Write(b[:])
		h.Write(p)
	}
	if skip {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	if tlsc != nil {
		field(tlsc.CAPEM)
		if c := tlsc.ClientCert; c != nil {
			binary.BigEndian.PutUint64(b[:], uint64(len(c.Certificate)))
			h.Write(b[:])
			for _, der := range c.Certificate {
				field(der)
			}
		}
	}
	var k transportKey
	h.Sum(k[:0])
	return k
}

// Keys of the two configurations without TLS material, computed once.
var (
	plainKey = keyFor(nil, false)
	skipKey  = keyFor(nil, true)
)

// tlsConfig builds the client TLS configuration: verification against the
// system roots plus tlsc.CAPEM, the client certificate presented when the
// server asks for one, and verification skipped only when skip is set.
func tlsConfig(tlsc *credentials.TLS, skip bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if skip {
		cfg.InsecureSkipVerify = true //nolint:gosec // the subscription asked for it explicitly.
	}
	if tlsc == nil {
		return cfg, nil
	}
	if len(tlsc.CAPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(tlsc.CAPEM) {
			return nil, errors.New("the trusted CA bundle holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	if c := tlsc.ClientCert; c != nil {
		// Present the certificate whatever CA names the server lists: the
		// subscription configured this certificate for this endpoint.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c, nil
		}
	}
	return cfg, nil
}

// transportCache holds one transport per TLS configuration, at most limit of
// them (k8s.io/utils/lru); the least recently used one is dropped, its idle
// connections closed. Requests still running on a dropped transport finish
// normally; its connections close now if idle, or after IdleConnTimeout.
type transportCache struct {
	build func(*tls.Config) *http.Transport

	// mu makes look-up-or-add one step, so concurrent first uses of a
	// configuration keep one transport.
	mu         sync.Mutex
	transports *lru.Cache // transportKey -> *http.Transport
}

func newTransportCache(limit int, build func(*tls.Config) *http.Transport) *transportCache {
	return &transportCache{build: build, transports: lru.NewWithEvictionFunc(limit, func(_ lru.Key, v any) {
		v.(*http.Transport).CloseIdleConnections()
	})}
}

// transport returns the transport for the given TLS configuration, building
// it on first use.
func (c *transportCache) transport(tlsc *credentials.TLS, skip bool) (*http.Transport, error) {
	var k transportKey
	switch {
	case tlsc == nil && skip:
		k = skipKey
	case tlsc == nil:
		k = plainKey
	default:
		k = keyFor(tlsc, skip)
	}
	if v, ok := c.transports.Get(k); ok {
		return v.(*http.Transport), nil
	}

	// Build outside the lock: loading the system roots can take a while.
	cfg, err := tlsConfig(tlsc, skip)
	if err != nil {
		return nil, err
	}
	t := c.build(cfg)

	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.transports.Get(k); ok { // built concurrently; keep the first one
		t.CloseIdleConnections()
		return v.(*http.Transport), nil
	}
	c.transports.Add(k, t)
	return t, nil
}

// len returns the number of cached transports.
func (c *transportCache) len() int { return c.transports.Len() }

// closeIdle drops every cached transport, closing its idle connections;
// the next attempt builds its transport again.
func (c *transportCache) closeIdle() { c.transports.Clear() }

// newTransport returns a pooled transport dialing through d.
func newTransport(d *net.Dialer, cfg *tls.Config, maxIdle, maxIdlePerHost int) *http.Transport {
	return &http.Transport{
		// No proxy from the environment: through a proxy the dialer would
		// connect to the proxy, so the address guard would check the proxy's
		// address instead of the endpoint's, and the proxy can reach
		// internal addresses the guard refuses.
		Proxy:               nil,
		DialContext:         d.DialContext,
		TLSClientConfig:     cfg,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        maxIdle,
		MaxIdleConnsPerHost: maxIdlePerHost,
		IdleConnTimeout:     90 * time.Second,
		// The attempt's context deadline bounds everything else; these only
		// stop one slow phase from using all of a long timeout.
		TLSHandshakeTimeout:    15 * time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		// Response bodies are only read for an error snippet; do not ask for
		// compressed ones (and so never inflate a compression bomb).
		DisableCompression: true,
	}
}
