package engine

import (
	"context"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/registry"
	"github.com/kubehook/kubehook/internal/sender"
)

// TestFailureStreakLongerThanDeactivateAfterDeactivates drives the
// dispatcher's clock: the first failure happens "two minutes ago", the retry
// fails now, and a one-minute deactivateAfter makes the subscription inactive.
func TestFailureStreakLongerThanDeactivateAfterDeactivates(t *testing.T) {
	q, err := queue.Open(context.Background(), queue.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var lag atomic.Int64
	lag.Store(int64(2 * time.Minute))
	clock := func() time.Time { return time.Now().Add(-time.Duration(lag.Load())) }

	reg := registry.New()
	out := make(reporter, 10)
	s := sender.New(sender.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	// No jitter, so the retry is due exactly backoffDelay after the first attempt.
	d := dispatcher.New(q, reg, s, out, dispatcher.Options{Now: clock, Rand: func() float64 { return 0.5 }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	defer func() { cancel(); <-done }()

	h := &harness{reg: reg, queue: q, pub: &Publisher{Registry: reg, Queue: q}, outcomes: out}
	r := newReceiver(t, http.StatusInternalServerError, http.StatusInternalServerError)
	sub := h.subscribe("failing", kubehookv1.TagPush, "acme", r.URL, func(s *registry.Subscription) {
		// Due a second after the test moves the clock to now, so the
		// retry cannot start before it does.
		s.Delivery.BackoffDelay = 2*time.Minute + time.Second
		s.Delivery.DeactivateAfter = time.Minute
	})
	if _, err := h.pub.Publish(context.Background(), tagPush(t, "acme/web")); err != nil {
		t.Fatal(err)
	}
	if o := h.outcomes.next(t); o.OK || o.Deactivated || o.DeadLettered {
		t.Fatalf("first outcome %+v, want a plain failure", o)
	}
	lag.Store(0) // the retry happens two minutes after the streak began
	o := h.outcomes.next(t)
	if !o.Deactivated || o.Attempts != 2 {
		t.Fatalf("second outcome %+v, want deactivation", o)
	}
	if e, _ := reg.Get(sub.ID); !e.Inactive {
		t.Fatal("registry entry still active")
	}
}
