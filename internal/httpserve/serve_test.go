package httpserve

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// When ctx ends, a request in flight finishes, with a context that was not
// cancelled, while new connections are refused; then Serve returns nil.
func TestRequestsInFlightFinishAfterTheContextEnds(t *testing.T) {
	g := NewWithT(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	started, release := make(chan struct{}), make(chan struct{})
	reqErr := make(chan error, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		reqErr <- r.Context().Err()
		_, _ = io.WriteString(w, "done")
	}), ReadHeaderTimeout: 5 * time.Second}

	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, srv, ln, 10*time.Second) }()

	type answer struct {
		body string
		err  error
	}
	answers := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			answers <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answers <- answer{string(b), err}
	}()
	<-started
	cancel()
	// Shutting down: the listener is closed.
	g.Eventually(func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err
	}, 10*time.Second, 10*time.Millisecond).Should(HaveOccurred())

	close(release)
	a := <-answers
	g.Expect(a.err).NotTo(HaveOccurred())
	g.Expect(a.body).To(Equal("done"))
	g.Expect(<-reqErr).NotTo(HaveOccurred(), "the request's context outlived ctx")
	g.Expect(<-served).To(Succeed())
}
