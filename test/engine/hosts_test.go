package engine

import (
	"context"
	"fmt"
	"github.com/kubehook/kubehook/internal/intake"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// hangingServer is an endpoint that never answers; it counts the requests
// it holds at once and the most it held.
type hangingServer struct {
	*httptest.Server
	mu             sync.Mutex
	now, peak, all int
}

// newHangingServer starts one until the test ends; its handlers return
// when the request is given up (the attempt's timeout) or the test ends.
func newHangingServer(t *testing.T) *hangingServer {
	h := &hangingServer{}
	release := make(chan struct{})
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read to the end, so the server notices the client giving up.
		_, _ = io.Copy(io.Discard, r.Body)
		h.mu.Lock()
		h.now++
		h.all++
		h.peak = max(h.peak, h.now)
		h.mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		h.mu.Lock()
		h.now--
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	t.Cleanup(func() { close(release) }) // before Close, which waits for the handlers
	return h
}

func (h *hangingServer) stats() (now, peak, all int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now, h.peak, h.all
}

// engineWith assembles queue, dispatcher and sender as internal/app does,
// with kubehook's default limits unless opts says otherwise, until the
// test ends.
func engineWith(t *testing.T, opts dispatcher.Options) (*harness, *dispatcher.Dispatcher) {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	reg := subscriptions.New()
	out := make(reporter, 10_000)
	s := sender.New(sender.Options{Concurrency: 256, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	opts.GracePeriod = time.Second
	d := dispatcher.New(q, reg, s, out, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		s.CloseIdleConnections()
		q.Close()
	})
	return &harness{reg: reg, queue: q, pub: &intake.Publisher{Registry: reg, Queue: q}, outcomes: out, cancel: cancel}, d
}

// TestHealthySubscriptionBesideFortyHangingHosts: 40 new subscriptions
// whose endpoints (each on a host of its own) never answer hold a bounded
// share of the workers (half the pool, besides one first attempt each),
// and a healthy subscription's 100 deliveries arrive at once beside them,
// with kubehook's default limits.
func TestHealthySubscriptionBesideFortyHangingHosts(t *testing.T) {
	const dead, eventsPerDead, healthyEvents = 40, 20, 100
	h, _ := engineWith(t, dispatcher.Options{Concurrency: 256, PerSubscription: 8})
	servers := make([]*hangingServer, dead)
	for i := range servers {
		servers[i] = newHangingServer(t)
		h.subscribe(fmt.Sprintf("dead-%d", i), kubehookv1.TagPush, "acme/dead", servers[i].URL)
	}
	var received atomic.Int64
	done := make(chan struct{})
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if received.Add(1) == healthyEvents {
			close(done)
		}
	}))
	t.Cleanup(ok.Close)
	h.subscribe("healthy", kubehookv1.TagPush, "acme/web", ok.URL)

	events := make([]intake.Event, 0, eventsPerDead)
	for i := range eventsPerDead {
		events = append(events, tagPushNumbered(t, "acme/dead", i))
	}
	if n, err := h.pub.Publish(context.Background(), events...); err != nil || n != dead*eventsPerDead {
		t.Fatalf("Publish = %d, %v; want %d deliveries", n, err, dead*eventsPerDead)
	}
	g := NewWithT(t)
	g.Eventually(func() bool {
		for _, s := range servers {
			if now, _, _ := s.stats(); now == 0 {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond).Should(BeTrue(), "every hanging endpoint holds an attempt")

	events = events[:0]
	for i := range healthyEvents {
		events = append(events, tagPushNumbered(t, "acme/web", i))
	}
	begin := time.Now()
	if _, err := h.pub.Publish(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%d of %d healthy deliveries within 5s beside %d hanging endpoints", received.Load(), healthyEvents, dead)
	}
	held := 0
	for _, s := range servers {
		now, _, _ := s.stats()
		held += now
	}
	if limit := 256/2 + dead; held > limit {
		t.Errorf("the hanging endpoints hold %d attempts; want at most half the pool and a first attempt each, %d", held, limit)
	}
	t.Logf("%d healthy deliveries in %s beside %d hanging endpoints holding %d attempts", healthyEvents, time.Since(begin).Round(time.Millisecond), dead, held)
}

// TestAHangingHostIsBoundedThenPausedByItsBreaker: 40 subscriptions whose
// endpoints share one host that never answers hold at most the per-host
// limit (32) of attempts there. Once enough of those have timed out the
// host's circuit breaker opens: the outcome of the attempt that opened it
// says until when, nothing more is sent there, nothing is dead-lettered,
// and a healthy subscription on another host is not held up.
func TestAHangingHostIsBoundedThenPausedByItsBreaker(t *testing.T) {
	const dead, eventsPerDead = 40, 5
	h, d := engineWith(t, dispatcher.Options{Concurrency: 256, PerSubscription: 8})
	hanging := newHangingServer(t)
	for i := range dead {
		h.subscribe(fmt.Sprintf("dead-%d", i), kubehookv1.TagPush, "acme/dead", fmt.Sprintf("%s/hooks/%d", hanging.URL, i),
			func(s *subscriptions.Subscription) {
				s.Delivery.Timeout = 500 * time.Millisecond
				s.Delivery.MaxAttempts = 2
			})
	}
	events := make([]intake.Event, 0, eventsPerDead)
	for i := range eventsPerDead {
		events = append(events, tagPushNumbered(t, "acme/dead", i))
	}
	if _, err := h.pub.Publish(context.Background(), events...); err != nil {
		t.Fatal(err)
	}

	var opened dispatcher.Outcome
	for opened.CircuitOpenUntil.IsZero() {
		select {
		case o := <-h.outcomes:
			if o.OK {
				t.Fatalf("a hanging endpoint's attempt succeeded: %+v", o)
			}
			opened = o
		case <-time.After(20 * time.Second):
			t.Fatal("no outcome said the hanging host's breaker is open")
		}
	}
	if until := d.CircuitOpenUntil(hanging.URL + "/hooks/any"); !until.Equal(opened.CircuitOpenUntil) {
		t.Errorf("CircuitOpenUntil of the host = %v, the outcome said %v", until, opened.CircuitOpenUntil)
	}
	g := NewWithT(t)
	// The attempts in flight at the trip time out; then none is made.
	g.Eventually(func() int { now, _, _ := hanging.stats(); return now }, 5*time.Second, 10*time.Millisecond).Should(BeZero())
	_, peak, sent := hanging.stats()
	if peak != 32 {
		t.Errorf("%d attempts at once to one host; want the per-host limit, 32", peak)
	}
	g.Consistently(func() int { _, _, all := hanging.stats(); return all }, time.Second, 20*time.Millisecond).Should(Equal(sent),
		"attempts to a host whose breaker is open")

	r := newReceiver(t)
	h.subscribe("healthy", kubehookv1.TagPush, "acme/web", r.URL)
	if _, err := h.pub.Publish(context.Background(), tagPush(t, "acme/web")); err != nil {
		t.Fatal(err)
	}
	r.next(t)
	if n, err := h.queue.DeadLetters(context.Background()); err != nil || n != 0 {
		t.Errorf("dead letters = %d, %v; the breaker alone dead-letters nothing", n, err)
	}
	t.Logf("breaker open until %s after %d attempts (at most %d at once) to the hanging host", opened.CircuitOpenUntil.Format(time.RFC3339Nano), sent, peak)
}
