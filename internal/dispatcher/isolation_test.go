package dispatcher

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// fakeSender answers by endpoint host, without a network: hosts in hang
// never answer (the attempt times out after the subscription's timeout, or
// is cancelled), hosts in down answer 503, the others 200. It records the attempts in flight per host and
// subscription, and the most seen at once.
type fakeSender struct {
	hang        map[string]bool
	down        sync.Map // host -> bool
	answerAfter time.Duration

	mu                   sync.Mutex
	inflight             map[string]int // by host and by "sub:"+name
	peak                 map[string]int
	hanging, peakHanging int
	sent                 map[string]int // finished attempts by host
	delivered            map[string]int // 2xx by subscription name
}

func newFakeSender(hang ...string) *fakeSender {
	f := &fakeSender{hang: map[string]bool{}, inflight: map[string]int{}, peak: map[string]int{}, sent: map[string]int{}, delivered: map[string]int{}}
	for _, h := range hang {
		f.hang[h] = true
	}
	return f
}

func (f *fakeSender) Send(ctx context.Context, sub *subscriptions.Subscription, _ sender.Request) sender.Result {
	host := hostOf(sub.Endpoint)
	keys := []string{host, "sub:" + sub.ID.Name}
	f.mu.Lock()
	for _, k := range keys {
		f.inflight[k]++
		f.peak[k] = max(f.peak[k], f.inflight[k])
	}
	if f.hang[host] {
		f.hanging++
		f.peakHanging = max(f.peakHanging, f.hanging)
	}
	f.mu.Unlock()
	res := sender.Result{StatusCode: http.StatusOK}
	if f.hang[host] {
		timeout := time.NewTimer(sub.Delivery.Timeout)
		select {
		case <-ctx.Done():
			res = sender.Result{Err: ctx.Err()}
		case <-timeout.C:
			res = sender.Result{Err: fmt.Errorf("no response within the %s timeout", sub.Delivery.Timeout)}
		}
		timeout.Stop()
	} else if down, _ := f.down.Load(host); down == true {
		res = sender.Result{StatusCode: http.StatusServiceUnavailable, Err: fmt.Errorf("HTTP 503")}
	} else if f.answerAfter > 0 {
		answer := time.NewTimer(f.answerAfter)
		select {
		case <-ctx.Done():
			res = sender.Result{Err: ctx.Err()}
		case <-answer.C:
		}
		answer.Stop()
	}
	f.mu.Lock()
	for _, k := range keys {
		f.inflight[k]--
	}
	if f.hang[host] {
		f.hanging--
	}
	f.sent[host]++
	if res.OK() {
		f.delivered[sub.ID.Name]++
	}
	f.mu.Unlock()
	return res
}

func (f *fakeSender) get(m map[string]int, k string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[k]
}

func (f *fakeSender) hangingNow() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hanging
}

// rig is a dispatcher on a fresh queue with a registry the test fills.
type rig struct {
	t   *testing.T
	q   *queue.Queue
	reg *subscriptions.Registry
	out outcomes
	n   atomic.Int64 // deliveries published, for unique IDs
}

// startRig runs a dispatcher with s and opts until the test ends; the
// attempts still hanging then are cancelled by the grace period.
func startRig(t *testing.T, s Sender, opts Options) *rig {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, q: q, reg: subscriptions.New(), out: make(outcomes, 10_000)}
	opts.GracePeriod = 100 * time.Millisecond
	d := New(q, r.reg, s, r.out, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		q.Close()
	})
	return r
}

// subscribe registers a subscription named name delivering to endpoint.
func (r *rig) subscribe(name, endpoint string, mod ...func(*subscriptions.Subscription)) *subscriptions.Subscription {
	spec := kubehookv1.WebhookSubscriptionSpec{Type: kubehookv1.TagPush, Key: "acme/web", Endpoint: endpoint}
	sub := &subscriptions.Subscription{
		ID: types.NamespacedName{Namespace: "acme", Name: name}, UID: types.UID("uid-" + name),
		Type: spec.Type, Key: spec.Key, Endpoint: spec.Endpoint,
		PayloadFormat: kubehookv1.PayloadFormatDTR, Delivery: subscriptions.DeliveryFor(&spec),
	}
	for _, m := range mod {
		m(sub)
	}
	r.reg.Upsert(sub)
	return sub
}

// publish queues n deliveries for sub.
func (r *rig) publish(sub *subscriptions.Subscription, n int) {
	r.t.Helper()
	ds := make([]queue.Delivery, 0, n)
	for range n {
		ds = append(ds, queue.Delivery{
			ID: fmt.Sprintf("msg_%d", r.n.Add(1)), Subscription: sub.ID, SubscriptionUID: sub.UID,
			EventType: string(kubehookv1.TagPush), Event: []byte(`{"type":"TAG_PUSH","createdAt":"2026-01-02T03:04:05Z","contents":{}}`),
		})
	}
	if err := r.q.Publish(context.Background(), ds); err != nil {
		r.t.Fatal(err)
	}
}

// Subscriptions whose endpoints hang, each on a host of its own (so no
// per-host limit helps), once known to fail hold at most
// FailingPerSubscription attempts each and FailingConcurrency in all; a new
// subscription still proves itself at once, and then gets its full limit.
func TestHangingEndpointsHoldABoundedShareOfWorkers(t *testing.T) {
	g := NewWithT(t)
	const dead, each = 20, 5
	var hosts []string
	for i := range dead {
		hosts = append(hosts, fmt.Sprintf("dead-%d.test:80", i))
	}
	s := newFakeSender(hosts...)
	s.answerAfter = 20 * time.Millisecond // so that attempts overlap
	r := startRig(t, s, Options{Concurrency: 16, PerSubscription: 8})
	for i := range dead {
		r.publish(r.subscribe(fmt.Sprintf("dead-%d", i), "http://"+hosts[i]+"/hook", func(s *subscriptions.Subscription) {
			s.Delivery.Timeout = 300 * time.Millisecond
			s.Delivery.BackoffDelay = 100 * time.Millisecond
			s.Delivery.MaxAttempts = 1000
		}), each)
	}
	// Every dead subscription has failed, and the attempts made before it
	// was known to fail have ended: half of the pool (16) hangs.
	failed := map[string]bool{}
	for len(failed) < dead {
		select {
		case o := <-r.out:
			g.Expect(o.OK).To(BeFalse())
			failed[o.Subscription.Name] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d dead subscriptions failed", len(failed), dead)
		}
	}
	g.Eventually(s.hangingNow, 5*time.Second, 10*time.Millisecond).Should(BeNumerically("<=", 8))
	s.mu.Lock()
	s.peakHanging = s.hanging
	clear(s.peak)
	s.mu.Unlock()

	healthy := r.subscribe("healthy", "http://ok.test/hook")
	begin := time.Now()
	r.publish(healthy, 50)
	g.Eventually(func() int { return s.get(s.delivered, "healthy") }, 5*time.Second, 10*time.Millisecond).Should(Equal(50))
	t.Logf("50 healthy deliveries in %s beside %d hanging endpoints", time.Since(begin).Round(time.Millisecond), dead)

	s.mu.Lock()
	defer s.mu.Unlock()
	g.Expect(s.peakHanging).To(BeNumerically("<=", 8), "attempts hanging at once")
	for i := range dead {
		g.Expect(s.peak[fmt.Sprintf("sub:dead-%d", i)]).To(BeNumerically("<=", 2), "in flight for dead-%d", i)
	}
	// Proven healthy, the subscription gets its full limit.
	g.Expect(s.peak["sub:healthy"]).To(BeNumerically(">", 2))
}

// Attempts to one endpoint host are bounded by PerHost across its
// subscriptions, and other hosts are not held up by it.
func TestAttemptsToOneHostAreBounded(t *testing.T) {
	g := NewWithT(t)
	s := newFakeSender("dead.test:80")
	r := startRig(t, s, Options{Concurrency: 64, PerSubscription: 8, PerHost: 3})
	for i := range 10 {
		r.publish(r.subscribe(fmt.Sprintf("dead-%d", i), fmt.Sprintf("http://dead.test/hook/%d", i)), 5)
	}
	g.Eventually(s.hangingNow, 10*time.Second, 10*time.Millisecond).Should(Equal(3))
	healthy := r.subscribe("healthy", "http://ok.test/hook")
	r.publish(healthy, 20)
	g.Eventually(func() int { return s.get(s.delivered, "healthy") }, 10*time.Second, 10*time.Millisecond).Should(Equal(20))
	g.Expect(s.get(s.peak, "dead.test:80")).To(Equal(3), "attempts in flight to one host")
}

// After BreakerThreshold consecutive failures to a host its deliveries are
// not attempted but deferred, with no attempt counted: with maxAttempts 2
// none is dead-lettered. The outcome of the attempt that opened the
// breaker says until when; once the host is up again, the probe after the
// cool-down closes it and every delivery arrives.
func TestOpenBreakerDefersDeliveriesWithoutCountingAttempts(t *testing.T) {
	g := NewWithT(t)
	const n = 10
	s := newFakeSender()
	s.down.Store("flaky.test:80", true)
	trips, deferred, base := testutil.ToFloat64(metrics.CircuitBreakerTrips), testutil.ToFloat64(metrics.CircuitBreakerDeferred), gaugeBase()
	r := startRig(t, s, Options{PerSubscription: 2, BreakerThreshold: 3, BreakerCooldown: time.Second})
	sub := r.subscribe("flaky", "http://flaky.test/hook", func(s *subscriptions.Subscription) {
		s.Delivery.MaxAttempts = 2
		s.Delivery.BackoffDelay = 100 * time.Millisecond
	})
	r.publish(sub, n)

	// Tripped by the third failure; two attempts at most were in flight,
	// so at most one more came after.
	g.Eventually(func() float64 { return testutil.ToFloat64(metrics.CircuitBreakerTrips) - trips }, 10*time.Second, 10*time.Millisecond).Should(Equal(1.0))
	g.Eventually(func() float64 { return testutil.ToFloat64(metrics.CircuitBreakerDeferred) - deferred }, 10*time.Second, 10*time.Millisecond).Should(BeNumerically(">=", n-4))
	attempted := s.get(s.sent, "flaky.test:80")
	g.Expect(attempted).To(BeNumerically("<=", 4))
	open, _ := gauges(base)
	g.Expect(open).To(Equal(1.0), "open breakers")

	var opened Outcome
	for opened.CircuitOpenUntil.IsZero() {
		select {
		case o := <-r.out:
			g.Expect(o.OK).To(BeFalse())
			opened = o
		case <-time.After(10 * time.Second):
			t.Fatal("no outcome said the breaker is open")
		}
	}
	g.Expect(opened.CircuitOpenUntil).To(BeTemporally("~", time.Now().Add(time.Second), time.Second))

	s.down.Store("flaky.test:80", false)
	g.Eventually(func() int { return s.get(s.delivered, "flaky") }, 20*time.Second, 10*time.Millisecond).Should(Equal(n))
	g.Eventually(func() (uint64, error) { return r.q.DeadLetters(context.Background()) }, 5*time.Second, 50*time.Millisecond).Should(BeZero())
	g.Eventually(func() (uint64, error) { return r.q.Pending(context.Background()) }, 5*time.Second, 50*time.Millisecond).Should(BeZero())
	// Each delivery was attempted at most twice: deferrals are no attempts.
	g.Expect(s.get(s.sent, "flaky.test:80")).To(BeNumerically("<=", n+attempted))
	open, half := gauges(base)
	g.Expect(open+half).To(BeZero(), "breakers not closed")
	for {
		select {
		case o := <-r.out:
			g.Expect(o.DeadLettered).To(BeFalse())
			if o.OK {
				g.Expect(o.CircuitOpenUntil.IsZero()).To(BeTrue(), "a success while the breaker is said open")
			}
			continue
		default:
		}
		break
	}
}

// A pool full of attempts that do not end holds the shared consumer up for
// a moment at most: a healthy subscription's delivery that finds no worker
// is parked once the wait runs out, and the deliveries behind it (here an
// inactive subscription's, dead-lettered) are judged at once.
func TestPoolHeldBySlowAttemptsHoldsTheSharedConsumerUpBriefly(t *testing.T) {
	g := NewWithT(t)
	const slow = 4
	var hosts []string
	for i := range slow {
		hosts = append(hosts, fmt.Sprintf("slow-%d.test:80", i))
	}
	s := newFakeSender(hosts...)
	r := startRig(t, s, Options{Concurrency: slow, BreakerThreshold: -1})
	for i := range slow {
		r.publish(r.subscribe(fmt.Sprintf("slow-%d", i), "http://"+hosts[i]+"/hook", func(s *subscriptions.Subscription) {
			s.Delivery.Timeout = time.Minute
		}), 1)
	}
	g.Eventually(s.hangingNow, 10*time.Second, 10*time.Millisecond).Should(Equal(slow), "attempts holding the whole pool")

	parked := testutil.ToFloat64(metrics.ParkedTotal)
	r.publish(r.subscribe("healthy", "http://ok.test/hook"), 1)
	r.publish(r.subscribe("inactive", "http://gone.test/hook", func(s *subscriptions.Subscription) { s.Inactive = true }), 20)
	begin := time.Now()
	g.Eventually(func() (uint64, error) { return r.q.DeadLetters(context.Background()) }, 5*time.Second, 10*time.Millisecond).Should(Equal(uint64(20)))
	g.Expect(time.Since(begin)).To(BeNumerically("<", 2*time.Second), "dead-lettering behind a full pool")
	g.Expect(testutil.ToFloat64(metrics.ParkedTotal)-parked).To(Equal(1.0), "the healthy delivery parked")
	g.Expect(s.hangingNow()).To(Equal(slow))
}
