package engine

import (
	"context"
	"fmt"
	"github.com/kubehook/kubehook/internal/intake"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// TestSlowEndpointDoesNotDelayOthers: an endpoint that accepts connections
// and never answers holds only the few workers of a failing subscription,
// and its backlog waits on its own line. With kubehook's default
// dispatcher options, the healthy subscriptions' delivery rate with it
// present, receiving the same events, is at least 80% of their rate
// without it.
//
// Each measurement runs on its own queue and dispatcher. They alternate, and
// the best of each kind is compared: other load on the machine only ever
// makes a measurement slower.
func TestSlowEndpointDoesNotDelayOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("measures delivery rates for several seconds")
	}
	const trials = 3 // measurements of each kind
	var without, with float64
	for range trials {
		without = max(without, measureHealthyRate(t, false))
		with = max(with, measureHealthyRate(t, true))
	}
	t.Logf("best healthy deliveries/s: %.0f without the hanging endpoint, %.0f with it (%.0f%%)", without, with, 100*with/without)
	if with < 0.8*without {
		t.Errorf("a hanging endpoint cut the healthy delivery rate from %.0f/s to %.0f/s (below 80%%)", without, with)
	}
}

// Load of one rate measurement.
const (
	isoHealthy = 20   // healthy subscriptions
	isoEvents  = 1000 // events published; each is delivered to every subscription
	// isoBatch events go in one Publish call, and a batch is published as
	// soon as the one before the previous has reached every healthy
	// endpoint: a healthy subscription has at most 32 deliveries not yet
	// received, so the measurement is paced by the endpoints rather than by
	// a backlog piled up in the queue. What a healthy subscription has
	// beyond its 8 attempts in flight is parked on its line and read back
	// from there, as it would be in production. The hanging endpoint gets
	// the same events: once its first attempts have timed out (2s), 2 of
	// its attempts hang at a time (the limit of a subscription whose last
	// attempt failed), each until its timeout and a retry, and the rest of
	// its deliveries wait on its line, throughout the measurement.
	isoBatch = 16
	// isoDeadline bounds one measurement, a few seconds on an idle machine.
	isoDeadline = 40 * time.Second
)

// measureHealthyRate delivers isoEvents events to each of isoHealthy
// subscriptions (and to one whose endpoint never answers, when hanging is
// set) through a fresh queue and dispatcher, and returns the healthy
// deliveries per second from the first Publish to the last healthy delivery
// received.
func measureHealthyRate(t *testing.T, hanging bool) float64 {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	reg := subscriptions.New()
	h := &harness{reg: reg}
	failures := &failedAttempts{}

	// received[i] counts the deliveries healthy endpoint i received;
	// progress is signalled after each.
	var received [isoHealthy]atomic.Int64
	progress := make(chan struct{}, 1)
	for i := range isoHealthy {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			received[i].Add(1)
			select {
			case progress <- struct{}{}:
			default:
			}
		}))
		defer srv.Close()
		h.subscribe(fmt.Sprintf("healthy-%d", i), kubehookv1.TagPush, "acme", srv.URL)
	}
	// slowest returns the deliveries received by the healthy endpoint that received fewest.
	slowest := func() int64 {
		n := received[0].Load()
		for i := 1; i < isoHealthy; i++ {
			n = min(n, received[i].Load())
		}
		return n
	}
	// waitFor waits until every healthy endpoint has received n deliveries.
	timeout := time.After(isoDeadline)
	var longestWait time.Duration
	waitFor := func(n int64) {
		start := time.Now()
		for slowest() < n {
			select {
			case <-progress:
			case <-timeout:
				pending, err := q.Pending(context.Background())
				t.Fatalf("hanging endpoint %v: a healthy endpoint received %d of %d deliveries within %s, the last %s (queue holds %d, %v; failed attempts to healthy endpoints: %v)",
					hanging, slowest(), n, isoDeadline, time.Since(start).Round(time.Millisecond), pending, err, failures.get())
			}
		}
		longestWait = max(longestWait, time.Since(start))
	}

	var hung atomic.Int64
	subs := isoHealthy
	if hanging {
		subs++
		// Deferred after the server's Close, so it runs before it: Close
		// waits for the blocked handlers.
		release := make(chan struct{})
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hung.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer bad.Close()
		defer close(release)
		h.subscribe("hanging", kubehookv1.TagPush, "acme", bad.URL, func(s *subscriptions.Subscription) {
			s.Delivery.Timeout = 2 * time.Second
			s.Delivery.MaxAttempts = 1000
		})
	}

	// As kubehook's defaults (internal/app) configure them.
	const concurrency, perSubscription = 256, 8
	s := sender.New(sender.Options{Concurrency: concurrency, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	defer s.CloseIdleConnections()
	d := dispatcher.New(q, reg, s, failures, dispatcher.Options{Concurrency: concurrency, PerSubscription: perSubscription})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(30 * time.Second):
			t.Error("dispatcher did not stop")
		}
	}()

	pub := &intake.Publisher{Registry: reg, Queue: q}
	begin := time.Now()
	for n := 0; n < isoEvents; n += isoBatch {
		waitFor(int64(n - isoBatch))
		events := make([]intake.Event, 0, isoBatch)
		for i := n; i < min(n+isoBatch, isoEvents); i++ {
			events = append(events, tagPushNumbered(t, "acme/web", i))
		}
		queued, err := pub.Publish(context.Background(), events...)
		if err != nil || queued != len(events)*subs {
			t.Fatalf("Publish = %d, %v; want %d deliveries", queued, err, len(events)*subs)
		}
	}
	waitFor(isoEvents)
	elapsed := time.Since(begin)
	rate := float64(isoHealthy*isoEvents) / elapsed.Seconds()
	t.Logf("hanging endpoint %-5v: %d healthy deliveries in %s, %.0f/s (longest wait for a batch %s); %d requests to the hanging endpoint",
		hanging, isoHealthy*isoEvents, elapsed.Round(time.Millisecond), rate, longestWait.Round(time.Millisecond), hung.Load())
	if f := failures.get(); len(f) > 0 {
		t.Errorf("failed attempts to healthy endpoints: %v", f)
	}
	return rate
}

// failedAttempts is a Reporter that counts the failed attempts to healthy
// endpoints (all but "hanging"), by message.
type failedAttempts struct {
	mu       sync.Mutex
	messages map[string]int
}

func (f *failedAttempts) Report(o dispatcher.Outcome) {
	if o.OK || o.Subscription.Name == "hanging" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.messages == nil {
		f.messages = map[string]int{}
	}
	f.messages[o.Message]++
}

func (f *failedAttempts) get() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.messages)
}

// discardOutcomes is a Reporter for tests that do not look at outcomes.
type discardOutcomes struct{}

func (discardOutcomes) Report(dispatcher.Outcome) {}

// tagPushNumbered is a TAG_PUSH event of repo whose tag, "e-<n>", numbers it.
func tagPushNumbered(t testing.TB, repo string, n int) intake.Event {
	t.Helper()
	ns, name := subscriptions.SplitRepository(repo)
	ev, err := payload.NewEvent(kubehookv1.TagPush, time.Now(), payload.TagPush{
		Namespace: ns, Repository: name, Tag: "e-" + strconv.Itoa(n),
		Digest: "sha256:0afb3b5a5a7a1c1d8b0c0f3e2d1c0b9a8f7e6d5c4b3a29181716151413121110",
	})
	if err != nil {
		t.Fatal(err)
	}
	return intake.Event{Repository: repo, Payload: ev}
}
