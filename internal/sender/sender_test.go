package sender

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/kubehook/kubehook/internal/credentials"
	"github.com/kubehook/kubehook/internal/version"
)

func TestSendOK(t *testing.T) {
	type seen struct {
		method string
		header http.Header
		body   []byte
	}
	got := make(chan seen, 1)
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.Header.Clone(), b}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	sub := subFor(srv.URL + "/hook")
	sub.Headers = map[string]string{"Authorization": "Bearer s3cr3t-token", "X-Team": "payments"}

	res := loopbackSender(t).Send(context.Background(), sub, request(`{"type":"TAG_PUSH"}`))
	if !res.OK() || res.Err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("Send = %+v, want OK 202", res)
	}
	if res.Gone() || res.RetryAfter != 0 || res.Duration <= 0 {
		t.Fatalf("Send = %+v", res)
	}
	s := <-got
	if s.method != http.MethodPost || string(s.body) != `{"type":"TAG_PUSH"}` {
		t.Fatalf("received %s %q", s.method, s.body)
	}
	for k, want := range map[string]string{
		"Content-Type":      "application/json",
		"User-Agent":        version.UserAgent(),
		"webhook-id":        "msg_0001",
		"webhook-timestamp": strconv.FormatInt(fixedNow.Unix(), 10), // zero Timestamp: the injected clock
		"Authorization":     "Bearer s3cr3t-token",
		"X-Team":            "payments",
	} {
		if v := s.header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if !strings.HasPrefix(s.header.Get("User-Agent"), "kubehook/") {
		t.Errorf("User-Agent = %q", s.header.Get("User-Agent"))
	}
	if v, ok := s.header["Webhook-Signature"]; ok {
		t.Errorf("webhook-signature %q sent without signing keys", v)
	}
}

func TestSendContentTypeAndTimestamp(t *testing.T) {
	got := make(chan http.Header, 2)
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	s := loopbackSender(t)
	ts := time.Unix(1700000000, 0)
	res := s.Send(context.Background(), subFor(srv.URL), Request{ID: "a", Timestamp: ts, Body: []byte("{}"), ContentType: "application/cloudevents+json"})
	if !res.OK() {
		t.Fatal(res.Err)
	}
	h := <-got
	if h.Get("Content-Type") != "application/cloudevents+json" || h.Get("webhook-timestamp") != "1700000000" {
		t.Fatalf("headers %v", h)
	}
	res = s.Send(context.Background(), subFor(srv.URL), Request{ID: "b", Body: []byte("{}")})
	if !res.OK() {
		t.Fatal(res.Err)
	}
	if h := <-got; h.Get("Content-Type") != "application/json" {
		t.Fatalf("default Content-Type %q", h.Get("Content-Type"))
	}
}

func TestSendSignatureVerifiesWithOfficialLibrary(t *testing.T) {
	key1 := bytes.Repeat([]byte{7}, 32)
	key2 := bytes.Repeat([]byte{9}, 24)
	type seen struct {
		header http.Header
		body   []byte
	}
	got := make(chan seen, 1)
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Header.Clone(), b}
	}))
	sub := subFor(srv.URL)
	sub.SigningKeys = [][]byte{key1, key2}
	s := newSender(t, Options{AllowCIDRs: loopback, Now: time.Now})
	req := request(`{"type":"TAG_PUSH","contents":{"tag":"v1"}}`)
	req.Timestamp = time.Now()
	if res := s.Send(context.Background(), sub, req); !res.OK() {
		t.Fatal(res.Err)
	}
	r := <-got
	if n := len(strings.Fields(r.header.Get("webhook-signature"))); n != 2 {
		t.Fatalf("webhook-signature %q has %d entries, want 2", r.header.Get("webhook-signature"), n)
	}
	for i, k := range [][]byte{key1, key2} {
		wh, err := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString(k))
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(r.body, r.header); err != nil {
			t.Errorf("secret %d: %v", i+1, err)
		}
		if err := wh.Verify(append(r.body, ' '), r.header); err == nil {
			t.Errorf("secret %d verifies a changed body", i+1)
		}
	}
}

func TestSendServerErrorSnippet(t *testing.T) {
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "database\r\n\tis down\x00\n")
	}))
	res := loopbackSender(t).Send(context.Background(), subFor(srv.URL), request("{}"))
	if res.OK() || res.StatusCode != 500 || res.Err == nil {
		t.Fatalf("Send = %+v, want a 500 failure", res)
	}
	if got, want := res.Err.Error(), "HTTP 500 Internal Server Error: database is down"; got != want {
		t.Fatalf("Err = %q, want %q", got, want)
	}
}

func TestSendFailureWithoutBody(t *testing.T) {
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(599)
	}))
	res := loopbackSender(t).Send(context.Background(), subFor(srv.URL), request("{}"))
	if res.StatusCode != 599 || res.Err == nil || res.Err.Error() != "HTTP 599" {
		t.Fatalf("Send = %+v", res)
	}
}

func TestSendSnippetIsBounded(t *testing.T) {
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, strings.Repeat("é error\n", 5000))
	}))
	res := loopbackSender(t).Send(context.Background(), subFor(srv.URL), request("{}"))
	msg := res.Err.Error()
	if len(msg) > maxSnippet+64 || strings.ContainsAny(msg, "\n\r") || !strings.HasSuffix(msg, "...") {
		t.Fatalf("Err is %d bytes: %q", len(msg), msg)
	}
	if !strings.HasPrefix(msg, "HTTP 400 Bad Request: é error é error") {
		t.Fatalf("Err = %q", msg)
	}
}

func TestSendErrorsNeverHoldHeaderValues(t *testing.T) {
	const token = "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.sig"
	const apiKey = "k-9f8e7d6c5b4a"
	// An endpoint that echoes the request (a debugging sink) into an error,
	// and redirects to a URL that carries a header value too.
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			w.Header().Set("Location", "https://elsewhere.example/?key="+r.Header.Get("X-Api-Key"))
			w.WriteHeader(http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "%s %s", strings.Repeat("x", maxSnippet-10), r.Header.Get("Authorization")) // straddles the snippet's end
		fmt.Fprintf(w, "\nrejected Authorization=%q X-Api-Key=%s", r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"))
	}))
	s := loopbackSender(t)
	for _, path := range []string{"/", "/redirect"} {
		sub := subFor(srv.URL + path)
		sub.Headers = map[string]string{"Authorization": token, "X-Api-Key": apiKey, "X-Env": "dev"}
		sub.SigningKeys = [][]byte{[]byte("signing-key-signing-key-signing-key")}
		res := s.Send(context.Background(), sub, request("{}"))
		msg := res.Err.Error()
		for _, secret := range []string{"eyJhbGciOiJIUzI1NiJ9", "Bearer eyJ", apiKey, "signing-key"} {
			if strings.Contains(msg, secret) {
				t.Fatalf("%s: Err %q holds %q", path, msg, secret)
			}
		}
		if !strings.Contains(msg, "[REDACTED") {
			t.Fatalf("%s: Err = %q", path, msg)
		}
	}
}

func TestSendGone(t *testing.T) {
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "endpoint removed", http.StatusGone)
	}))
	res := loopbackSender(t).Send(context.Background(), subFor(srv.URL), request("{}"))
	if !res.Gone() || res.OK() || res.StatusCode != 410 || res.Err == nil {
		t.Fatalf("Send = %+v, want Gone", res)
	}
	if !strings.Contains(res.Err.Error(), "410") || !strings.Contains(res.Err.Error(), "endpoint removed") {
		t.Fatalf("Err = %v", res.Err)
	}
}

func TestSendRetryAfter(t *testing.T) {
	for name, tc := range map[string]struct {
		status int
		header string
		want   time.Duration
	}{
		"429 seconds":        {429, "120", 120 * time.Second},
		"503 HTTP-date":      {503, fixedNow.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		"502 RFC 850 date":   {502, fixedNow.Add(time.Hour).Format(time.RFC850), time.Hour},
		"504 date in past":   {504, fixedNow.Add(-time.Minute).Format(http.TimeFormat), 0},
		"500 zero":           {500, "0", 0},
		"429 garbage":        {429, "soon", 0},
		"429 negative":       {429, "-5", 0},
		"429 absent":         {429, "", 0},
		"2xx ignores it":     {200, "60", 0},
		"429 with spaces":    {429, " 7 ", 7 * time.Second},
		"301 without target": {301, "30", 30 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				w.WriteHeader(tc.status)
			}))
			res := loopbackSender(t).Send(context.Background(), subFor(srv.URL), request("{}"))
			if res.StatusCode != tc.status || res.RetryAfter != tc.want {
				t.Fatalf("Send = %+v, want status %d RetryAfter %s", res, tc.status, tc.want)
			}
			if res.OK() != (tc.status == 200) {
				t.Fatalf("OK() = %v for %d", res.OK(), tc.status)
			}
		})
	}
}

func TestSendRedirectNotFollowed(t *testing.T) {
	target := &counting{}
	targetSrv := server(t, target)
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, targetSrv.URL+"/next", code)
			}))
			res := loopbackSender(t).Send(context.Background(), subFor(srv.URL), request("{}"))
			if res.OK() || res.StatusCode != code || res.Err == nil {
				t.Fatalf("Send = %+v, want a %d failure", res, code)
			}
			want := fmt.Sprintf("redirect to %s/next not followed", targetSrv.URL)
			if !strings.Contains(res.Err.Error(), want) {
				t.Fatalf("Err = %q, want it to contain %q", res.Err, want)
			}
		})
	}
	if n := target.n.Load(); n != 0 {
		t.Fatalf("the redirect target was requested %d times", n)
	}
}

func TestSendTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	sub := subFor(srv.URL)
	sub.Delivery.Timeout = 300 * time.Millisecond

	start := time.Now()
	res := loopbackSender(t).Send(context.Background(), sub, request("{}"))
	elapsed := time.Since(start)
	if res.Err == nil || res.StatusCode != 0 {
		t.Fatalf("Send = %+v, want a timeout", res)
	}
	if !strings.Contains(res.Err.Error(), "timeout") || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want a timeout", res.Err)
	}
	if elapsed < sub.Delivery.Timeout || elapsed > sub.Delivery.Timeout+2*time.Second {
		t.Fatalf("Send returned after %s with a %s timeout", elapsed, sub.Delivery.Timeout)
	}
}

func TestSendTimeoutCoversBodyRead(t *testing.T) {
	release := make(chan struct{})
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		select { // the rest of the body never comes
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) })
	sub := subFor(srv.URL)
	sub.Delivery.Timeout = 300 * time.Millisecond

	start := time.Now()
	res := loopbackSender(t).Send(context.Background(), sub, request("{}"))
	if elapsed := time.Since(start); elapsed > sub.Delivery.Timeout+2*time.Second {
		t.Fatalf("Send returned after %s with a %s timeout", elapsed, sub.Delivery.Timeout)
	}
	if res.StatusCode != 503 || res.Err == nil || !strings.Contains(res.Err.Error(), "partial") {
		t.Fatalf("Send = %+v", res)
	}
}

func TestSendCanceled(t *testing.T) {
	srv := server(t, &counting{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := loopbackSender(t).Send(ctx, subFor(srv.URL), request("{}"))
	if res.Err == nil || !errors.Is(res.Err, context.Canceled) || !strings.Contains(res.Err.Error(), "canceled") {
		t.Fatalf("Send = %+v, want canceled", res)
	}
}

func TestSendConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(&counting{})
	url := srv.URL
	srv.Close()
	res := loopbackSender(t).Send(context.Background(), subFor(url+"/?token=abc123"), request("{}"))
	if res.Err == nil || res.StatusCode != 0 {
		t.Fatalf("Send = %+v", res)
	}
	if msg := res.Err.Error(); !strings.HasPrefix(msg, "request failed: ") || strings.Contains(msg, "abc123") {
		t.Fatalf("Err = %q", msg)
	}
}

func TestSendInvalidEndpoint(t *testing.T) {
	s := loopbackSender(t)
	for _, ep := range []string{"", "ftp://example.com/?token=abc123", "/relative?token=abc123", "http://%zz/?token=abc123", "http:///?token=abc123"} {
		res := s.Send(context.Background(), subFor(ep), request("{}"))
		if res.Err == nil || strings.Contains(res.Err.Error(), "abc123") {
			t.Errorf("%q: Err = %v", ep, res.Err)
		}
	}
}

func TestSendLargeBodyNotFullyRead(t *testing.T) {
	const total = 256 << 20
	for _, status := range []int{200, 500} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			type outcome struct {
				written int64
				err     error
			}
			done := make(chan outcome, 1)
			srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(total))
				w.WriteHeader(status)
				chunk := bytes.Repeat([]byte("x"), 32<<10)
				var o outcome
				for o.written < total {
					n, err := w.Write(chunk)
					o.written += int64(n)
					if err != nil {
						o.err = err
						break
					}
				}
				done <- o
			}))
			res := loopbackSender(t).Send(context.Background(), subFor(srv.URL), request("{}"))
			if res.StatusCode != status || res.OK() != (status == 200) {
				t.Fatalf("Send = %+v", res)
			}
			if status != 200 && len(res.Err.Error()) > maxSnippet+64 {
				t.Fatalf("Err is %d bytes", len(res.Err.Error()))
			}
			o := <-done // the handler stops once the client has closed the connection
			if o.err == nil || o.written >= total {
				t.Fatalf("the server wrote %d bytes (error %v): the client read the whole body", o.written, o.err)
			}
			t.Logf("the server managed to write %d of %d bytes", o.written, total)
		})
	}
}

func TestSendReusesConnections(t *testing.T) {
	var conns atomic.Int64
	var calls atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%2 == 0 { // failures with a small body reuse the connection too
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("ok", 1000))
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	s := loopbackSender(t)
	sub := subFor(srv.URL)
	for i := range 20 {
		sub := *sub // a copy, as a registry update would make
		sub.Headers = map[string]string{"X-Attempt": strconv.Itoa(i)}
		if res := s.Send(context.Background(), &sub, request("{}")); res.StatusCode == 0 {
			t.Fatal(res.Err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 sequential sends opened %d connections, want 1", n)
	}
	if n := s.transports.len(); n != 1 {
		t.Fatalf("%d transports cached, want 1", n)
	}
}

func TestSendTLSVerification(t *testing.T) {
	h := &counting{}
	srv := httptest.NewUnstartedServer(h)
	quiet(srv)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s := loopbackSender(t)

	res := s.Send(context.Background(), subFor(srv.URL), request("{}"))
	if res.Err == nil || !strings.Contains(res.Err.Error(), "certificate") {
		t.Fatalf("self-signed server: Send = %+v, want a certificate error", res)
	}
	if h.n.Load() != 0 {
		t.Fatal("the handler was reached despite the untrusted certificate")
	}

	withCA := subFor(srv.URL)
	withCA.TLS = &credentials.TLS{CAPEM: certPEM(srv.Certificate())}
	if res := s.Send(context.Background(), withCA, request("{}")); !res.OK() {
		t.Fatalf("with the server's certificate as CA: %v", res.Err)
	}

	skip := subFor(srv.URL)
	skip.SkipTLSVerification = true
	if res := s.Send(context.Background(), skip, request("{}")); !res.OK() {
		t.Fatalf("with SkipTLSVerification: %v", res.Err)
	}
	if h.n.Load() != 2 {
		t.Fatalf("handler reached %d times, want 2", h.n.Load())
	}

	other, _ := selfSigned(t, "other CA")
	wrongCA := subFor(srv.URL)
	wrongCA.TLS = &credentials.TLS{CAPEM: certPEM(other)}
	if res := s.Send(context.Background(), wrongCA, request("{}")); res.Err == nil {
		t.Fatal("accepted a server certificate the configured CA did not issue")
	}
}

func TestSendHTTP2(t *testing.T) {
	protos := make(chan int, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.ProtoMajor
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	sub := subFor(srv.URL)
	sub.TLS = &credentials.TLS{CAPEM: certPEM(srv.Certificate())}
	if res := loopbackSender(t).Send(context.Background(), sub, request("{}")); !res.OK() {
		t.Fatal(res.Err)
	}
	if p := <-protos; p != 2 {
		t.Fatalf("delivered over HTTP/%d, want HTTP/2", p)
	}
}

func TestSendMutualTLS(t *testing.T) {
	clientLeaf, clientPair := selfSigned(t, "kubehook-client")
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientLeaf)
	peers := make(chan string, 1)
	h := &counting{h: func(w http.ResponseWriter, r *http.Request) {
		peers <- r.TLS.PeerCertificates[0].Subject.CommonName
	}}
	srv := httptest.NewUnstartedServer(h)
	quiet(srv)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s := loopbackSender(t)
	ca := certPEM(srv.Certificate())

	withCert := subFor(srv.URL)
	withCert.TLS = &credentials.TLS{CAPEM: ca, ClientCert: &clientPair}
	if res := s.Send(context.Background(), withCert, request("{}")); !res.OK() {
		t.Fatalf("with the client certificate: %v", res.Err)
	}
	if cn := <-peers; cn != "kubehook-client" {
		t.Fatalf("server saw client certificate %q", cn)
	}

	without := subFor(srv.URL)
	without.TLS = &credentials.TLS{CAPEM: ca}
	if res := s.Send(context.Background(), without, request("{}")); res.Err == nil {
		t.Fatal("the server accepted a delivery without a client certificate")
	}
	_, stranger := selfSigned(t, "stranger")
	wrong := subFor(srv.URL)
	wrong.TLS = &credentials.TLS{CAPEM: ca, ClientCert: &stranger}
	if res := s.Send(context.Background(), wrong, request("{}")); res.Err == nil {
		t.Fatal("the server accepted an unknown client certificate")
	}
	if n := h.n.Load(); n != 1 {
		t.Fatalf("handler reached %d times, want 1", n)
	}
}

func TestTransportsPerTLSConfiguration(t *testing.T) {
	srv := server(t, &counting{})
	_, pair := selfSigned(t, "client")
	s := newSender(t, Options{AllowCIDRs: loopback, MaxTransports: 3})
	send := func(tlsc *credentials.TLS, skip bool) {
		t.Helper()
		sub := subFor(srv.URL)
		sub.TLS, sub.SkipTLSVerification = tlsc, skip
		if res := s.Send(context.Background(), sub, request("{}")); !res.OK() {
			t.Fatal(res.Err)
		}
	}
	other, _ := selfSigned(t, "ca")
	ca := certPEM(other)
	send(nil, false)
	send(&credentials.TLS{CAPEM: bytes.Clone(ca)}, false)
	send(&credentials.TLS{CAPEM: bytes.Clone(ca)}, false) // equal content, another pointer
	if n := s.transports.len(); n != 2 {
		t.Fatalf("%d transports, want 2", n)
	}
	send(&credentials.TLS{CAPEM: ca, ClientCert: &pair}, false)
	send(nil, true)
	send(nil, false)
	if n := s.transports.len(); n != 3 {
		t.Fatalf("%d transports, want the cap of 3", n)
	}
	if keyFor(&credentials.TLS{CAPEM: ca}, false) == keyFor(&credentials.TLS{CAPEM: ca}, true) ||
		keyFor(nil, false) != plainKey || keyFor(nil, true) != skipKey {
		t.Fatal("transport keys")
	}
}

func TestSendConcurrent(t *testing.T) {
	var got atomic.Int64
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	s := loopbackSender(t)
	sub := subFor(srv.URL)
	sub.SigningKeys = [][]byte{[]byte("0123456789abcdef01234567")}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			for j := range 10 {
				if res := s.Send(context.Background(), sub, Request{ID: fmt.Sprintf("%d-%d", i, j), Body: []byte("{}")}); !res.OK() {
					t.Error(res.Err)
				}
			}
		})
	}
	wg.Wait()
	if got.Load() != 320 {
		t.Fatalf("server got %d deliveries, want 320", got.Load())
	}
}

// --- address guard ---

func TestSendRefusesLoopbackByDefault(t *testing.T) {
	h := &counting{}
	srv := server(t, h)
	res := newSender(t, Options{}).Send(context.Background(), subFor(srv.URL), request("{}"))
	e := refused(t, res.Err)
	want := fmt.Sprintf("endpoint address %s is not allowed (loopback); allow it with --allow-endpoint-cidrs", e.Addr)
	if res.Err.Error() != want || e.Addr != netip.MustParseAddr("127.0.0.1") || res.StatusCode != 0 {
		t.Fatalf("Err = %q, want %q", res.Err, want)
	}
	if h.n.Load() != 0 {
		t.Fatal("the handler was reached")
	}

	allowed := newSender(t, Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if res := allowed.Send(context.Background(), subFor(srv.URL), request("{}")); !res.OK() {
		t.Fatalf("with 127.0.0.0/8 allowed: %v", res.Err)
	}
	if h.n.Load() != 1 {
		t.Fatal("the handler was not reached")
	}

	// The IPv4-mapped form of the same address is the same address.
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	mapped := fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", port)
	res = newSender(t, Options{}).Send(context.Background(), subFor(mapped), request("{}"))
	if e := refused(t, res.Err); e.Reason != "loopback" {
		t.Fatalf("Err = %v", res.Err)
	}
}

func TestSendRefusesAddressLiterals(t *testing.T) {
	s := newSender(t, Options{})
	for ep, want := range map[string]string{
		"http://10.0.0.5:9/":                      "endpoint address 10.0.0.5 is not allowed (private); allow it with --allow-endpoint-cidrs",
		"http://169.254.169.254/latest/meta-data": "endpoint address 169.254.169.254 is not allowed (link-local); allow it with --allow-endpoint-cidrs",
		"https://[64:ff9b::a00:5]:443/":           "endpoint address 64:ff9b::a00:5 is not allowed (private, NAT64 of 10.0.0.5); allow it with --allow-endpoint-cidrs",
		"http://0.0.0.0:80/":                      "endpoint address 0.0.0.0 is not allowed (unspecified); allow it with --allow-endpoint-cidrs",
	} {
		res := s.Send(context.Background(), subFor(ep), request("{}"))
		refused(t, res.Err)
		if res.Err.Error() != want {
			t.Errorf("%s: Err = %q, want %q", ep, res.Err, want)
		}
	}
}

func TestSendChecksTheResolvedAddress(t *testing.T) {
	// A name that resolves to a private address is refused when connecting.
	dns := startDNS(t, "10.0.0.1")
	s := newSender(t, Options{Resolver: dns.resolver()})
	res := s.Send(context.Background(), subFor("http://hooks.kubehook.test:8080/x"), request("{}"))
	e := refused(t, res.Err)
	if e.Addr != netip.MustParseAddr("10.0.0.1") || e.Reason != "private" {
		t.Fatalf("Err = %v", res.Err)
	}
	if dns.queries.Load() == 0 {
		t.Fatal("the injected resolver was not asked")
	}

	// A name that resolves to loopback (a rebinding attack's second answer)
	// is refused, and delivered to once loopback is allowed.
	h := &counting{}
	srv := server(t, h)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	rebind := startDNS(t, "127.0.0.1")
	ep := fmt.Sprintf("http://rebind.kubehook.test:%d/", port)
	res = newSender(t, Options{Resolver: rebind.resolver()}).Send(context.Background(), subFor(ep), request("{}"))
	if e := refused(t, res.Err); e.Reason != "loopback" {
		t.Fatalf("Err = %v", res.Err)
	}
	if h.n.Load() != 0 {
		t.Fatal("the handler was reached")
	}
	res = newSender(t, Options{Resolver: rebind.resolver(), AllowCIDRs: loopback}).Send(context.Background(), subFor(ep), request("{}"))
	if !res.OK() || h.n.Load() != 1 {
		t.Fatalf("with loopback allowed: %+v", res)
	}
}
