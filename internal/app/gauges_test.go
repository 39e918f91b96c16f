package app

import (
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
	g := &gauges{queue: q, registry: reg}
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
	g := &gauges{queue: q, registry: reg, perSubscription: per}

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
