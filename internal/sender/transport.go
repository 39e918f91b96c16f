package sender

import (
	"container/list"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

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

// transportCache holds one client per TLS configuration, at most limit of
// them; the least recently used one is dropped, its idle connections closed.
type transportCache struct {
	limit int
	build func(*tls.Config) *http.Transport

	mu sync.Mutex
	ll *list.List // of *cachedClient, most recently used first
	m  map[transportKey]*list.Element
}

type cachedClient struct {
	key       transportKey
	client    *http.Client
	transport *http.Transport
}

func newTransportCache(limit int, build func(*tls.Config) *http.Transport) *transportCache {
	return &transportCache{limit: limit, build: build, ll: list.New(), m: map[transportKey]*list.Element{}}
}

// client returns the client for the given TLS configuration, building it on first use.
func (c *transportCache) client(tlsc *credentials.TLS, skip bool) (*http.Client, error) {
	var k transportKey
	switch {
	case tlsc == nil && skip:
		k = skipKey
	case tlsc == nil:
		k = plainKey
	default:
		k = keyFor(tlsc, skip)
	}
	c.mu.Lock()
	if e, ok := c.m[k]; ok {
		c.ll.MoveToFront(e)
		cl := e.Value.(*cachedClient).client
		c.mu.Unlock()
		return cl, nil
	}
	c.mu.Unlock()

	// Build outside the lock: loading the system roots can take a while.
	cfg, err := tlsConfig(tlsc, skip)
	if err != nil {
		return nil, err
	}
	t := c.build(cfg)
	entry := &cachedClient{key: k, transport: t, client: &http.Client{
		Transport: t,
		// Redirects are never followed: a 3xx is the attempt's answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}

	c.mu.Lock()
	if e, ok := c.m[k]; ok { // built concurrently; keep the first one
		c.ll.MoveToFront(e)
		cl := e.Value.(*cachedClient).client
		c.mu.Unlock()
		t.CloseIdleConnections()
		return cl, nil
	}
	c.m[k] = c.ll.PushFront(entry)
	var evicted []*http.Transport
	for c.ll.Len() > c.limit {
		old := c.ll.Remove(c.ll.Back()).(*cachedClient)
		delete(c.m, old.key)
		evicted = append(evicted, old.transport)
	}
	c.mu.Unlock()
	// Requests still running on an evicted transport finish normally; its
	// connections close now if idle, or after IdleConnTimeout otherwise.
	for _, t := range evicted {
		t.CloseIdleConnections()
	}
	return entry.client, nil
}

// len returns the number of cached transports.
func (c *transportCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// closeIdle closes the idle connections of every cached transport.
func (c *transportCache) closeIdle() {
	c.mu.Lock()
	ts := make([]*http.Transport, 0, c.ll.Len())
	for e := c.ll.Front(); e != nil; e = e.Next() {
		ts = append(ts, e.Value.(*cachedClient).transport)
	}
	c.mu.Unlock()
	for _, t := range ts {
		t.CloseIdleConnections()
	}
}

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
