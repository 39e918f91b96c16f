package outcomes

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/queue"
)

// The tracker's periodic count of the queue exports the age of the oldest
// delivery waiting for an attempt, and zero once it is delivered.
func TestRecountExportsOldestQueuedDeliveryAge(t *testing.T) {
	ctx := t.Context()
	q, err := queue.Open(ctx, queue.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	tr := New(time.Hour)
	tr.CountFrom(q)

	metrics.QueueOldestDeliveryAge.Set(-1) // whatever an earlier test left
	tr.recount(ctx, false)
	if v := testutil.ToFloat64(metrics.QueueOldestDeliveryAge); v != 0 {
		t.Fatalf("empty queue: kubehook_queue_oldest_delivery_age_seconds = %v, want 0", v)
	}

	d := queue.Delivery{ID: "d1", Subscription: id, SubscriptionUID: "u1", EventType: "TAG_PUSH", Event: []byte(`{"type":"TAG_PUSH"}`)}
	if err := q.Publish(ctx, []queue.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	const waited = 1200 * time.Millisecond
	time.Sleep(waited)
	tr.recount(ctx, false)
	if v := testutil.ToFloat64(metrics.QueueOldestDeliveryAge); v < waited.Seconds() || v > 30 {
		t.Fatalf("one delivery queued %s ago: kubehook_queue_oldest_delivery_age_seconds = %v", waited, v)
	}

	consumeCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	acked := make(chan struct{})
	go func() {
		done <- q.Consume(consumeCtx, func(m *queue.Msg) {
			if err := m.Done(ctx); err != nil {
				t.Error(err)
			}
			close(acked)
		})
	}()
	select {
	case <-acked:
	case <-time.After(20 * time.Second):
		t.Fatal("the delivery was not consumed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tr.recount(ctx, false)
	if v := testutil.ToFloat64(metrics.QueueOldestDeliveryAge); v != 0 {
		t.Fatalf("after the delivery was acked: kubehook_queue_oldest_delivery_age_seconds = %v, want 0", v)
	}
}
