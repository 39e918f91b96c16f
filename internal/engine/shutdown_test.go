package engine

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/registry"
	"github.com/kubehook/kubehook/internal/sender"
)

// TestShutdownFinishesInFlightAndLeavesTheRestQueued: at shutdown the
// dispatcher stops fetching, lets the attempt in flight finish within the
// grace period, and leaves deliveries it had not started in the queue.
func TestShutdownFinishesInFlightAndLeavesTheRestQueued(t *testing.T) {
	q, err := queue.Open(context.Background(), queue.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	reg := registry.New()
	started, release := make(chan struct{}, 10), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	}))
	defer slow.Close()

	out := make(reporter, 10)
	s := sender.New(sender.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	d := dispatcher.New(q, reg, s, out, dispatcher.Options{PerSubscription: 1, GracePeriod: 30 * time.Second})
	h := &harness{reg: reg, queue: q, pub: &Publisher{Registry: reg, Queue: q}, outcomes: out}
	h.subscribe("slow", kubehookv1.TagPush, "acme", slow.URL)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	if _, err := h.pub.Publish(context.Background(), tagPush(t, "acme/a"), tagPush(t, "acme/b"), tagPush(t, "acme/c")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("no attempt started")
	}

	cancel() // SIGTERM
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("dispatcher did not stop")
	}
	if o := out.next(t); !o.OK {
		t.Fatalf("in-flight attempt did not finish: %+v", o)
	}
	if n, err := q.Pending(context.Background()); err != nil || n != 2 {
		t.Fatalf("pending after shutdown = %d, %v; want the 2 unstarted deliveries", n, err)
	}
}
