package httpserve

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// TLSConfig returns a server TLS configuration that presents the PEM
// certificate (chain) of certFile with the private key of keyFile, and
// picks up new files without a restart (a renewed cert-manager
// certificate, a rotated Secret volume) until ctx ends: controller-runtime's
// certwatcher re-reads them on file events and every 10 seconds, and a new
// pair that does not load is logged while the last good one stays in use.
//
// The files are read once before it returns, so a missing or bad pair is
// an error at start, not at the first handshake. The minimum version is
// TLS 1.2. Only HTTP/1.1 is offered, as the kubebuilder scaffold does for
// its servers, which keeps the HTTP/2 stream-reset attacks
// (CVE-2023-44487, CVE-2023-39325) out of reach.
//
// Call it from a server's Start with Start's ctx, so the watcher lives as
// long as the server.
func TLSConfig(ctx context.Context, certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("TLS needs both a certificate file and a key file (certificate %q, key %q)", certFile, keyFile)
	}
	w, err := certwatcher.New(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	log := logf.FromContext(ctx).WithValues("cert", certFile, "key", keyFile)
	go func() {
		if err := w.Start(ctx); err != nil {
			// The server keeps the certificate it has; only reloads stop.
			log.Error(err, "watching the TLS certificate for changes; it will not be reloaded")
		}
	}()
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: w.GetCertificate,
		NextProtos:     []string{"http/1.1"},
	}, nil
}

// TLSListener wraps ln so that its connections are served over TLS with
// the reloading certificate of TLSConfig; pass the result to Serve. On
// error ln is closed, so a caller can write
//
//	ln, err = httpserve.TLSListener(ctx, ln, certFile, keyFile)
func TLSListener(ctx context.Context, ln net.Listener, certFile, keyFile string) (net.Listener, error) {
	cfg, err := TLSConfig(ctx, certFile, keyFile)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return tls.NewListener(ln, cfg), nil
}
