package sources

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/kubehook/kubehook/internal/intake"
	"github.com/kubehook/kubehook/internal/subscriptions"
	"github.com/kubehook/kubehook/internal/tlstest"
)

// With TLSCertFile and TLSKeyFile the sources accept events over HTTPS
// only, and a renewed certificate written over the files is presented to
// new connections while the server keeps running.
func TestTLSServesEventsAndPicksUpARenewedCertificate(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "events-token")
	g.Expect(os.WriteFile(tokenFile, []byte(eventsToken+"\n"), 0o600)).To(Succeed())
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, renewed := tlstest.New(t, "kubehook-events first"), tlstest.New(t, "kubehook-events renewed")
	first.Write(t, certFile, keyFile)

	srv, err := NewServer(ServerOptions{
		Addr:        "127.0.0.1:0",
		TLSCertFile: certFile,
		TLSKeyFile:  keyFile,
		Auth:        NewAuthenticator(AuthOptions{TokenFiles: map[string]string{SourceEvents: tokenFile}}),
		Publisher:   &intake.Publisher{Registry: subscriptions.New(), Queue: openQueue(t, filepath.Join(dir, "queue"))},
		Log:         logr.Discard(),
	})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer func() {
		cancel()
		g.Expect(<-done).To(Succeed())
	}()
	select {
	case <-srv.listening:
	case err := <-done:
		t.Fatalf("Start returned %v", err)
	}
	addr := srv.addr.String()

	// A producer trusting both certificates, with a new connection per
	// request, sees which one is served.
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: tlstest.Pool(first, renewed)},
		DisableKeepAlives: true,
	}}
	body, _ := validBody(t, SourceEvents)
	post := func() (*http.Response, error) {
		req, err := http.NewRequest(http.MethodPost, "https://"+addr+PathEvents, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", MediaTypeJSON)
		req.Header.Set("Authorization", "Bearer "+eventsToken)
		return client.Do(req)
	}

	resp, err := post()
	g.Expect(err).NotTo(HaveOccurred())
	expectAccepted(t, resp, 1, 0)
	_ = resp.Body.Close()
	g.Expect(resp.TLS.PeerCertificates[0].Subject.CommonName).To(Equal("kubehook-events first"))

	// Plain HTTP is not served.
	plain, err := http.Post("http://"+addr+PathEvents, MediaTypeJSON, bytes.NewReader(body))
	g.Expect(err).NotTo(HaveOccurred())
	_ = plain.Body.Close()
	g.Expect(plain.StatusCode).To(Equal(http.StatusBadRequest), "an HTTP request to the HTTPS server")

	renewed.Write(t, certFile, keyFile)
	g.Eventually(func(g Gomega) {
		resp, err := post()
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		g.Expect(resp.StatusCode).To(Equal(http.StatusAccepted))
		g.Expect(resp.TLS.PeerCertificates[0].Subject.CommonName).To(Equal("kubehook-events renewed"))
	}, 30*time.Second, 50*time.Millisecond).Should(Succeed())
}

// A certificate that does not load stops Start at once, before it waits
// for the subscriptions, with an error naming the file.
func TestTLSWithABadCertificateFailsAtStart(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	g.Expect(os.WriteFile(keyFile, tlstest.New(t, "key only").KeyPEM, 0o600)).To(Succeed())
	srv, err := NewServer(ServerOptions{
		Addr:        "127.0.0.1:0",
		TLSCertFile: certFile,
		TLSKeyFile:  keyFile,
		Auth:        NewAuthenticator(AuthOptions{}),
		Publisher:   &intake.Publisher{Registry: subscriptions.New()},
		// The subscriptions never load: only TLS can end Start.
		WaitReady: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		Log:       logr.Discard(),
	})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = srv.Start(ctx)
	g.Expect(err).To(HaveOccurred())
	g.Expect(ctx.Err()).NotTo(HaveOccurred(), "Start waited for the subscriptions")
	g.Expect(err.Error()).To(ContainSubstring(certFile))
}

// A certificate without its key, or a key without its certificate, is a
// configuration error.
func TestTLSNeedsBothCertificateAndKey(t *testing.T) {
	for _, opts := range []ServerOptions{{TLSCertFile: "tls.crt"}, {TLSKeyFile: "tls.key"}} {
		opts.Auth = NewAuthenticator(AuthOptions{})
		opts.Publisher = &intake.Publisher{Registry: subscriptions.New()}
		if _, err := NewServer(opts); err == nil || !strings.Contains(err.Error(), "TLS") {
			t.Errorf("NewServer(%+v) = %v, want an error about TLS", opts, err)
		}
	}
}
