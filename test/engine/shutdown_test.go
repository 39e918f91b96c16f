package engine

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
)

// TestShutdownFinishesInFlightAndLeavesTheRestQueued: at shutdown the
// dispatcher stops fetching, lets the attempt in flight finish within the
// grace period, and leaves deliveries it had not started in the queue.
func TestShutdownFinishesInFlightAndLeavesTheRestQueued(t *testing.T) {
	started, release := make(chan struct{}, 10), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	}))
	defer slow.Close()
	h := startWith(t, dispatcher.Options{PerSubscription: 1, GracePeriod: 30 * time.Second})
	h.subscribe("slow", kubehookv1.TagPush, "acme", slow.URL)

	if _, err := h.pub.Publish(context.Background(), tagPush(t, "acme/a"), tagPush(t, "acme/b"), tagPush(t, "acme/c")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("no attempt started")
	}

	h.cancel() // SIGTERM
	close(release)
	stopped := make(chan error, 1)
	go func() { stopped <- h.stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("dispatcher did not stop")
	}
	if o := h.outcomes.next(t); !o.OK {
		t.Fatalf("in-flight attempt did not finish: %+v", o)
	}
	if n, err := h.queue.Pending(context.Background()); err != nil || n != 2 {
		t.Fatalf("pending after shutdown = %d, %v; want the 2 unstarted deliveries", n, err)
	}
}
