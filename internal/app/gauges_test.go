package app

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

func subscription(name string, edit func(*subscriptions.Subscription)) *subscriptions.Subscription {
	s := &subscriptions.Subscription{ID: types.NamespacedName{Namespace: "acme", Name: name}, UID: types.UID("uid-" + name), Type: "TAG_PUSH"}
	if edit != nil {
		edit(s)
	}
	return s
}

// Every registered subscription counts in one state of
// kubehook_subscriptions, every state is exported (at zero too), and
// kubehook_queue_up says whether the queue answers.
func TestGaugesCountSubscriptionsByStateAndQueueUp(t *testing.T) {
	ctx := t.Context()
	q, err := queue.Open(ctx, queue.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			q.Close()
		}
	}()
	reg := subscriptions.New()
	reg.Upsert(subscription("a", nil))
	reg.Upsert(subscription("b", nil))
	reg.Upsert(subscription("paused", func(s *subscriptions.Subscription) { s.Suspended = true }))
	reg.Upsert(subscription("no-secret", func(s *subscriptions.Subscription) { s.Stalled = "SecretNotFound: hook-key" }))
	reg.Upsert(subscription("gone-410", func(s *subscriptions.Subscription) { s.Inactive = true }))
	// Inactive wins over suspended: its deliveries are dead letters, not held.
	reg.Upsert(subscription("both", func(s *subscriptions.Subscription) { s.Inactive, s.Suspended = true, true }))

	metrics.QueueUp.Set(-1)
	g := newGauges(q, reg, nil)
	g.refresh(ctx)
	want := map[string]float64{
		metrics.StateReady: 2, metrics.StateSuspended: 1, metrics.StateStalled: 1,
		metrics.StateInactive: 2, metrics.StateNotPermitted: 0,
	}
	for state, n := range want {
		if got := testutil.ToFloat64(metrics.Subscriptions.WithLabelValues(state)); got != n {
			t.Errorf("kubehook_subscriptions{state=%q} = %v, want %v", state, got, n)
		}
	}
	if got := testutil.ToFloat64(metrics.QueueUp); got != 1 {
		t.Errorf("queue open: kubehook_queue_up = %v, want 1", got)
	}

	q.Close()
	closed = true
	g.refresh(ctx)
	if got := testutil.ToFloat64(metrics.QueueUp); got != 0 {
		t.Errorf("queue closed: kubehook_queue_up = %v, want 0", got)
	}
}

// The per-subscription series of a subscription no longer registered
// (deleted) are removed at the next refresh; the others stay.
func TestGaugesRemovePerSubscriptionSeriesOfDeletedSubscriptions(t *testing.T) {
	ctx := t.Context()
	q, err := queue.Open(ctx, queue.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	reg := subscriptions.New()
	kept, deleted := subscription("kept", nil), subscription("deleted", nil)
	reg.Upsert(kept)
	reg.Upsert(deleted)
	metrics.SubscriptionDeliveriesTotal.Reset()
	per := metrics.NewPerSubscription()
	per.Add(kept.ID, metrics.ResultSuccess)
	per.Add(deleted.ID, metrics.ResultSuccess)
	per.Add(deleted.ID, metrics.ResultRetry)
	g := newGauges(q, reg, per)

	series := func(id types.NamespacedName, result string) float64 {
		return testutil.ToFloat64(metrics.SubscriptionDeliveriesTotal.WithLabelValues(id.Namespace, id.Name, result))
	}
	g.refresh(ctx)
	if got := testutil.CollectAndCount(metrics.SubscriptionDeliveriesTotal); got != 3 {
		t.Fatalf("both registered: %d series, want 3", got)
	}

	reg.Remove(deleted.ID)
	g.refresh(ctx)
	if got := testutil.CollectAndCount(metrics.SubscriptionDeliveriesTotal); got != 1 {
		t.Fatalf("after deleting one: %d series, want 1 (the kept subscription's)", got)
	}
	if got := series(kept.ID, metrics.ResultSuccess); got != 1 {
		t.Fatalf("kept subscription's success count = %v, want 1", got)
	}
}

// fakeQueue is a queue whose change number and consumer errors the test
// sets, and which counts how often it was asked for its pending count.
type fakeQueue struct {
	changes, consumerErrors uint64
	pending                 uint64
	calls                   int
}

func (f *fakeQueue) Ready() error { return nil }
func (f *fakeQueue) Pending(context.Context) (uint64, error) {
	f.calls++
	return f.pending, nil
}
func (f *fakeQueue) Changes() uint64        { return f.changes }
func (f *fakeQueue) ConsumerErrors() uint64 { return f.consumerErrors }

// Gauges over a queue and a registry that do not change ask the queue
// nothing and walk no subscription, refresh after refresh; a change to the
// queue is read (and read once more), a consumer error (a missed
// heartbeat: the consumers watch over JetStream while nothing is asked)
// makes them ask whether JetStream answers, and a registry change is
// counted.
func TestQuietGaugesAskNothing(t *testing.T) {
	ctx := context.Background()
	q := &fakeQueue{pending: 2}
	reg := subscriptions.New()
	reg.Upsert(subscription("a", nil))
	g := newGauges(q, reg, nil)
	g.refresh(ctx)
	if q.calls != 1 || testutil.ToFloat64(metrics.QueuePending) != 2 || testutil.ToFloat64(metrics.QueueUp) != 1 {
		t.Fatalf("first refresh: %d calls, pending %v, up %v; want 1, 2, 1", q.calls,
			testutil.ToFloat64(metrics.QueuePending), testutil.ToFloat64(metrics.QueueUp))
	}
	refresh := func(n int) int {
		before := q.calls
		for range n {
			g.refresh(ctx)
		}
		return q.calls - before
	}
	// A sentinel the gauges would overwrite if they walked the registry.
	metrics.Subscriptions.WithLabelValues(metrics.StateReady).Set(-1)
	if n := refresh(100); n != 0 {
		t.Fatalf("quiet: asked the queue %d times in 100 refreshes, want 0", n)
	}
	if v := testutil.ToFloat64(metrics.Subscriptions.WithLabelValues(metrics.StateReady)); v != -1 {
		t.Fatalf("quiet: the registry was walked (ready = %v)", v)
	}
	if testutil.ToFloat64(metrics.QueueUp) != 1 {
		t.Fatal("quiet: kubehook_queue_up is no longer 1")
	}

	q.changes, q.pending = 1, 5
	if n := refresh(1); n != 1 || testutil.ToFloat64(metrics.QueuePending) != 5 {
		t.Fatalf("after a change: %d calls, pending %v; want 1, 5", n, testutil.ToFloat64(metrics.QueuePending))
	}
	if n := refresh(1); n != 1 {
		t.Fatalf("the refresh after a change: %d calls, want 1 (the second look)", n)
	}
	if n := refresh(100); n != 0 {
		t.Fatalf("quiet again: %d calls in 100 refreshes, want 0", n)
	}

	q.consumerErrors++
	if n := refresh(1); n != 1 {
		t.Fatalf("after a consumer error: %d calls, want 1", n)
	}
	if n := refresh(100); n != 0 {
		t.Fatalf("quiet again: %d calls in 100 refreshes, want 0", n)
	}

	reg.Upsert(subscription("b", nil))
	g.refresh(ctx)
	if v := testutil.ToFloat64(metrics.Subscriptions.WithLabelValues(metrics.StateReady)); v != 2 {
		t.Fatalf("after a registry change: ready = %v, want 2", v)
	}
}
