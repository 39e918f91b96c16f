package engine

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/registry"
)

// TestFailureStreakLongerThanDeactivateAfterDeactivates drives the
// dispatcher's clock: the first failure happens "two minutes ago", the retry
// fails now, and a one-minute deactivateAfter makes the subscription inactive.
func TestFailureStreakLongerThanDeactivateAfterDeactivates(t *testing.T) {
	var lag atomic.Int64
	lag.Store(int64(2 * time.Minute))
	clock := func() time.Time { return time.Now().Add(-time.Duration(lag.Load())) }
	// No jitter, so the retry is due exactly backoffDelay after the first attempt.
	h := startWith(t, dispatcher.Options{Now: clock, Rand: func() float64 { return 0.5 }})

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
	if e, _ := h.reg.Get(sub.ID); !e.Inactive {
		t.Fatal("registry entry still active")
	}
}
