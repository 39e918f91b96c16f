package httpserve

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/kubehook/kubehook/internal/tlstest"
)

// A server on TLSListener presents the certificate of the files, and after
// the files are overwritten, the new certificate to new connections,
// without a restart.
func TestTLSListenerServesTheFilesAndReloadsThemWhenTheyChange(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, second := tlstest.New(t, "first"), tlstest.New(t, "second")
	first.Write(t, certFile, keyFile)
	roots := tlstest.Pool(first, second)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	addr := ln.Addr().String()
	ln, err = TLSListener(ctx, ln, certFile, keyFile)
	g.Expect(err).NotTo(HaveOccurred())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, srv, ln, 5*time.Second) }()

	// HTTPS, HTTP/1.1 only.
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}},
		ForceAttemptHTTP2: true,
	}}
	resp, err := client.Get("https://" + addr)
	g.Expect(err).NotTo(HaveOccurred())
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	g.Expect(string(body)).To(Equal("HTTP/1.1"))
	g.Expect(resp.TLS.PeerCertificates[0].Subject.CommonName).To(Equal("first"))

	second.Write(t, certFile, keyFile)
	// The watcher sees the write at once, and polls every 10s besides.
	g.Eventually(func(g Gomega) {
		leaf, err := tlstest.Served(addr, roots)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(leaf.Subject.CommonName).To(Equal("second"))
	}, 30*time.Second, 50*time.Millisecond).Should(Succeed())

	cancel()
	g.Expect(<-served).To(Succeed())
}

// A pair that does not load fails at once, naming the files, and closes
// the listener.
func TestTLSListenerRefusesMissingOrBadFiles(t *testing.T) {
	dir := t.TempDir()
	good, other := tlstest.New(t, "good"), tlstest.New(t, "other")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	good.Write(t, certFile, keyFile)
	otherKey := filepath.Join(dir, "other.key")
	garbage := filepath.Join(dir, "garbage")
	for path, data := range map[string][]byte{otherKey: other.KeyPEM, garbage: []byte("not PEM\n")} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, cert, key string
	}{
		{"missing certificate", filepath.Join(dir, "absent.crt"), keyFile},
		{"missing key", certFile, filepath.Join(dir, "absent.key")},
		{"key of another certificate", certFile, otherKey},
		{"not PEM", garbage, keyFile},
		{"no key file", certFile, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			g.Expect(err).NotTo(HaveOccurred())
			_, err = TLSListener(context.Background(), ln, tc.cert, tc.key)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(tc.cert))
			_, err = ln.Accept()
			g.Expect(err).To(MatchError(net.ErrClosed), "the listener is closed")
		})
	}
}

// Clients that offer only TLS 1.1 or older are refused.
func TestTLSConfigRequiresTLS12(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	cert := tlstest.New(t, "server")
	cert.Write(t, certFile, keyFile)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, err := TLSConfig(ctx, certFile, keyFile)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg.MinVersion).To(BeNumerically("==", tls.VersionTLS12))

	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: tlstest.Pool(cert), MinVersion: v, MaxVersion: v})
		g.Expect(err).To(HaveOccurred(), "TLS version %x", v)
	}
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: tlstest.Pool(cert), MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12})
	g.Expect(err).NotTo(HaveOccurred())
	_ = c.Close()
}
