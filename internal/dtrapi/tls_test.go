package dtrapi_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/kubehook/kubehook/internal/dtrapi"
	"github.com/kubehook/kubehook/internal/tlstest"
)

// The DTR API over HTTPS presents the certificate of its files, and a
// renewed one to new connections once the files change, without a restart.
func TestTLSCertificateIsReloadedWhenItsFilesChange(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, second := tlstest.New(t, "first"), tlstest.New(t, "second")
	first.Write(t, certFile, keyFile)
	roots := tlstest.Pool(first, second)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	addr := ln.Addr().String()
	g.Expect(ln.Close()).To(Succeed())
	opts := apiOptions
	opts.Addr, opts.TLSCertFile, opts.TLSKeyFile = addr, certFile, keyFile
	srv, err := dtrapi.New(opts)
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer func() { cancel(); g.Expect(<-done).To(Succeed()) }()

	g.Eventually(func(g Gomega) {
		leaf, err := tlstest.Served(addr, roots)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(leaf.Subject.CommonName).To(Equal("first"))
	}).Should(Succeed())

	second.Write(t, certFile, keyFile)
	g.Eventually(func(g Gomega) {
		leaf, err := tlstest.Served(addr, roots)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(leaf.Subject.CommonName).To(Equal("second"))
	}).WithTimeout(20 * time.Second).Should(Succeed())
}
