package dtrapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// A client's bucket: its burst at once, then one request per 1/rate, with
// the wait named; another client is not held up; the port does not make a
// new client.
func TestClientLimitsAreATokenBucketPerAddress(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	l := newClientLimits(2, 3) // 2 a second, bursts of 3
	l.now = func() time.Time { return now }

	for i := range 3 {
		ok, _ := l.admit("192.0.2.1:4000")
		g.Expect(ok).To(BeTrue(), "request %d of the burst", i)
	}
	ok, wait := l.admit("192.0.2.1:4001")
	g.Expect(ok).To(BeFalse(), "another port of the same address is the same client")
	g.Expect(wait).To(Equal(500 * time.Millisecond))
	ok, _ = l.admit("192.0.2.2:4000")
	g.Expect(ok).To(BeTrue(), "another client has its own bucket")

	// A refused request takes no token: after the wait named, one is there.
	now = now.Add(wait)
	ok, _ = l.admit("192.0.2.1:4000")
	g.Expect(ok).To(BeTrue())
	ok, _ = l.admit("192.0.2.1:4000")
	g.Expect(ok).To(BeFalse())
}

// Over the rate, the answer is 429 in DTR's error shape with Retry-After in
// whole seconds.
func TestLimitedRequestsGet429WithRetryAfter(t *testing.T) {
	g := NewWithT(t)
	l := newClientLimits(0.25, 1) // one every 4 s
	serve := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, PathWebhooks, nil)
		r.RemoteAddr = "198.51.100.7:5555"
		if !l.limited(w, r) {
			w.WriteHeader(http.StatusOK)
		}
		return w
	}
	g.Expect(serve().Code).To(Equal(http.StatusOK))
	w := serve()
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Header().Get("Retry-After")).To(BeElementOf("3", "4"))
	g.Expect(w.Body.String()).To(ContainSubstring(`"code":"TOO_MANY_REQUESTS"`))
	g.Expect(w.Body.String()).To(ContainSubstring("198.51.100.7"))

	var none *clientLimits
	g.Expect(none.limited(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, PathWebhooks, nil))).To(BeFalse(), "no limit configured")
}
