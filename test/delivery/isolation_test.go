package delivery

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// hangingEndpoint is a TCP listener that accepts connections and never
// answers: what a dead endpoint behind a load balancer, or a wedged
// server, looks like to kubehook. It counts the connections it holds.
type hangingEndpoint struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

// newHangingEndpoint listens on a loopback port of its own (a host of its
// own, as kubehook tells hosts by host and port) until the test ends.
func newHangingEndpoint(t *testing.T) *hangingEndpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangingEndpoint{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			h.accepted.Add(1)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			_ = c.Close()
		}
	})
	return h
}

// endpoint is the URL a subscription named sub delivers to.
func (h *hangingEndpoint) endpoint(sub string) string {
	return "http://" + h.ln.Addr().String() + "/hooks/" + sub
}

// TestHealthySubscriptionIsNotDelayedBesideFortyHangingEndpoints: with
// kubehook's defaults, 40 subscriptions whose endpoints (each a host of its
// own) accept connections and never answer, with 20 events each in flight
// or waiting, do not delay a healthy subscription on another host: its 100
// events arrive in about the time they take alone, far inside the attempt
// timeout (10s) the hanging ones wait out.
func TestHealthySubscriptionIsNotDelayedBesideFortyHangingEndpoints(t *testing.T) {
	const (
		dead          = 40
		eventsPerDead = 20
		healthyEvents = 100
		// bound is generous for a loaded machine; on an idle one the
		// healthy events take well under a second.
		bound = 5 * time.Second
	)
	begin := time.Now()
	ns := newNamespace(t)
	hanging := make([]*hangingEndpoint, dead)
	for i := range hanging {
		hanging[i] = newHangingEndpoint(t)
	}
	rcv := kubehooktest.NewReceiver(t)
	p := start(t)

	subs := make([]*kubehookv1.WebhookSubscription, 0, dead+1)
	for i, h := range hanging {
		name := fmt.Sprintf("dead-%d", i)
		subs = append(subs, kubehooktest.TagPushSubscription(ns, name, ns+"/dead", h.endpoint(name)))
	}
	healthy := kubehooktest.TagPushSubscription(ns, "healthy", ns+"/app", rcv.Endpoint("healthy"))
	subs = append(subs, healthy)
	createSubscriptions(t, subs...)
	waitSubscriptionsReady(t, subs...)

	deadEvents, _ := numberedEvents(ns+"/dead", "", 0, eventsPerDead)
	p.postAll(t, deadEvents, dead*eventsPerDead)
	// Every hanging endpoint holds attempts before the healthy events come.
	NewWithT(t).Eventually(func(g Gomega) {
		if err := p.Running(); err != nil {
			StopTrying(err.Error()).Now()
		}
		for i, h := range hanging {
			g.Expect(h.accepted.Load()).To(BeNumerically(">", 0), "connections to the endpoint of dead-%d", i)
		}
	}, apiTimeout, poll).Should(Succeed())
	held := int64(0)
	for _, h := range hanging {
		held += h.accepted.Load()
	}

	events, want := numberedEvents(ns+"/app", "healthy", 0, healthyEvents)
	posted := time.Now()
	p.postAll(t, events, healthyEvents)
	if _, err := rcv.Await(bound, func(s kubehooktest.ReceiverStats) bool { return s.Arrived == healthyEvents }, p.Running); err != nil {
		missing := rcv.Missing(want)
		t.Fatalf("beside %d hanging endpoints (%d connections held): %v; %d of %d healthy events did not arrive, e.g. %s",
			dead, held, err, len(missing), healthyEvents, firstN(missing, 5))
	}
	t.Logf("%d healthy events arrived %s after they were posted, beside %d hanging endpoints holding %d connections",
		healthyEvents, time.Since(posted).Round(time.Millisecond), dead, held)
	p.checkNoneDropped(t)
	t.Logf("test took %s", time.Since(begin).Round(time.Millisecond))
}

// TestCircuitBreakerPausesAFailingHostUntilItsProbeSucceeds: an endpoint
// host answering 503 opens its circuit breaker after consecutive
// failures: kubehook stops sending to it (the metric shows the breaker
// open), defers its deliveries without counting attempts (with maxAttempts
// 2 none becomes a dead letter), and once the host is up again the probe
// after the cool-down closes the breaker and every event arrives.
func TestCircuitBreakerPausesAFailingHostUntilItsProbeSucceeds(t *testing.T) {
	const total = 30
	begin := time.Now()
	ns := newNamespace(t)
	rcv := kubehooktest.NewReceiver(t)
	rcv.SetStatus(http.StatusServiceUnavailable)
	p := start(t)

	repo := ns + "/app"
	sub, _ := subscribe(t, ns, "flaky", repo, rcv, fastRetries(2))

	events, want := numberedEvents(repo, "flaky", 0, total)
	posted := time.Now()
	p.postAll(t, events, total)
	open := map[string]string{"state": "open"}
	p.waitMetric(t, "kubehook_circuit_breaker_state", open, BeNumerically("==", 1))
	p.waitMetric(t, "kubehook_circuit_breaker_trips_total", nil, BeNumerically("==", 1))
	// Deferred rather than attempted: the attempts end with the trip.
	p.waitMetric(t, "kubehook_circuit_breaker_deferred_total", nil, BeNumerically(">=", 1))
	// The attempts in flight at the trip end; then nothing reaches the host
	// for the cool-down (10s).
	NewWithT(t).Eventually(func(g Gomega) {
		n, err := p.attemptsFinished()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(n).To(BeNumerically("==", rcv.Snapshot().Requests), "attempts finished vs requests received")
	}, statusTimeout, poll).Should(Succeed())
	tripped := rcv.Snapshot().Requests
	if tripped >= total {
		t.Fatalf("all %d events were attempted before the breaker opened: the test proves nothing", total)
	}
	t.Logf("breaker open %s after the events were posted, after %d requests", time.Since(posted).Round(time.Millisecond), tripped)
	NewWithT(t).Consistently(func() int { return rcv.Snapshot().Requests }, 2*time.Second, poll).Should(Equal(tripped),
		"requests to a host whose breaker is open")
	// The subscription's status says so, and until when.
	NewWithT(t).Eventually(func(g Gomega) {
		got := &kubehookv1.WebhookSubscription{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(sub), got)).To(Succeed())
		g.Expect(got.Status.CircuitOpenUntil).NotTo(BeNil())
		g.Expect(got.Status.CircuitOpenUntil.Time).To(BeTemporally(">", posted))
		ready := apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Message).To(ContainSubstring("circuit breaker"))
	}, statusTimeout, poll).Should(Succeed())

	rcv.SetStatus(http.StatusOK)
	up := time.Now()
	if _, err := rcv.Await(apiTimeout, func(kubehooktest.ReceiverStats) bool { return len(rcv.Missing(want)) == 0 }, p.Running); err != nil {
		missing := rcv.Missing(want)
		t.Fatalf("after the host came back: %v; %d of %d events never arrived, e.g. %s", err, len(missing), total, firstN(missing, 5))
	}
	t.Logf("every event arrived %s after the host came back", time.Since(up).Round(time.Millisecond))
	p.waitMetric(t, "kubehook_circuit_breaker_state", open, BeNumerically("==", 0))
	p.waitMetric(t, "kubehook_circuit_breaker_state", map[string]string{"state": "half_open"}, BeNumerically("==", 0))
	NewWithT(t).Eventually(func(g Gomega) {
		got := &kubehookv1.WebhookSubscription{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(sub), got)).To(Succeed())
		g.Expect(got.Status.CircuitOpenUntil).To(BeNil(), "circuitOpenUntil after the breaker closed")
	}, statusTimeout, poll).Should(Succeed())
	if n := p.mustMetric(t, "kubehook_dead_letters_total", nil); n != 0 {
		t.Errorf("%v deliveries dead-lettered; the breaker's deferrals must not count as attempts", n)
	}
	p.checkNoneDropped(t)
	t.Logf("test took %s", time.Since(begin).Round(time.Millisecond))
}
