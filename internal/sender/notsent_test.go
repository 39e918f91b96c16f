package sender

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// NotSent marks the failures that say nothing about the endpoint's host
// (the subscription's URL, TLS material, or the address guard), so a
// circuit breaker per host can leave them out; every failure that got as
// far as the host (refused connection, timeout, 5xx) is sent.
func TestNotSentOnlyWhenTheHostWasNotReached(t *testing.T) {
	release := make(chan struct{})
	hanging := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) })
	failing := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	closed := httptest.NewServer(&counting{})
	closedURL := closed.URL
	closed.Close()
	timeout := subFor(hanging.URL)
	timeout.Delivery.Timeout = 200 * time.Millisecond

	for _, tc := range []struct {
		name    string
		send    func() Result
		notSent bool
	}{
		{name: "refused address", notSent: true, send: func() Result {
			return newSender(t, Options{}).Send(context.Background(), subFor(failing.URL), request("{}"))
		}},
		{name: "invalid endpoint", notSent: true, send: func() Result {
			return loopbackSender(t).Send(context.Background(), subFor("ftp://example.com/"), request("{}"))
		}},
		{name: "connection refused", send: func() Result {
			return loopbackSender(t).Send(context.Background(), subFor(closedURL), request("{}"))
		}},
		{name: "timeout", send: func() Result {
			return loopbackSender(t).Send(context.Background(), timeout, request("{}"))
		}},
		{name: "503", send: func() Result {
			return loopbackSender(t).Send(context.Background(), subFor(failing.URL), request("{}"))
		}},
	} {
		res := tc.send()
		if res.OK() {
			t.Errorf("%s: Send = %+v, want a failure", tc.name, res)
			continue
		}
		if res.NotSent != tc.notSent {
			t.Errorf("%s: NotSent = %v, want %v (%v)", tc.name, res.NotSent, tc.notSent, res.Err)
		}
	}
}
