package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubehook/kubehook/internal/metrics"
)

func openTest(t *testing.T, dir string, ackWait time.Duration) *Queue {
	t.Helper()
	q, err := Open(context.Background(), Config{DataDir: dir, AckWait: ackWait})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// publish queues ds, which must not fail.
func publish(t *testing.T, q *Queue, ds ...Delivery) {
	t.Helper()
	if err := q.Publish(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
}

func delivery(i int) Delivery {
	return Delivery{
		ID:              fmt.Sprintf("d%d", i),
		Subscription:    types.NamespacedName{Namespace: "acme", Name: "hook"},
		SubscriptionUID: "uid-1",
		EventType:       "TAG_PUSH",
		Event:           []byte(fmt.Sprintf(`{"type":"TAG_PUSH","n":%d}`, i)),
	}
}

// consumeN collects n messages, handing each to finish.
func consumeN(t *testing.T, q *Queue, n int, finish func(*Msg)) []*Delivery {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan *Delivery, n)
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(ctx, func(m *Msg) {
			finish(m)
			got <- m.Delivery
		})
	}()
	var out []*Delivery
	timeout := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case d := <-got:
			out = append(out, d)
		case <-timeout:
			t.Fatalf("got %d of %d deliveries", len(out), n)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return out
}

func pending(t *testing.T, q *Queue) uint64 {
	t.Helper()
	n, err := q.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPublishConsumeAck(t *testing.T) {
	q := openTest(t, t.TempDir(), 0)
	defer q.Close()
	ctx := context.Background()
	batch := []Delivery{delivery(1), delivery(2), delivery(3)}
	publish(t, q, batch...)
	// The same batch again (a source retrying) is not stored twice.
	publish(t, q, batch...)
	if n := pending(t, q); n != 3 {
		t.Fatalf("pending = %d, want 3", n)
	}
	got := consumeN(t, q, 3, func(m *Msg) {
		if err := m.Done(ctx); err != nil {
			t.Error(err)
		}
	})
	ids := map[string]bool{}
	for _, d := range got {
		ids[d.ID] = true
		if d.Subscription.String() != "acme/hook" || d.SubscriptionUID != "uid-1" || d.Attempts != 0 || d.EventType != "TAG_PUSH" {
			t.Fatalf("decoded delivery %+v", d)
		}
	}
	if len(ids) != 3 {
		t.Fatalf("ids = %v", ids)
	}
	if n := pending(t, q); n != 0 {
		t.Fatalf("pending after acks = %d, want 0", n)
	}
}

func TestRetryIsScheduledWithAttemptCount(t *testing.T) {
	q := openTest(t, t.TempDir(), 0)
	defer q.Close()
	ctx := context.Background()
	publish(t, q, delivery(1))
	first := true
	scheduled := time.Time{}
	got := consumeN(t, q, 2, func(m *Msg) {
		if first {
			first = false
			scheduled = time.Now().Add(time.Second)
			if err := m.Retry(ctx, scheduled, 1); err != nil {
				t.Error(err)
			}
			return
		}
		if err := m.Done(ctx); err != nil {
			t.Error(err)
		}
	})
	if got[1].ID != "d1" || got[1].Attempts != 1 {
		t.Fatalf("retry = %+v, want d1 with 1 attempt made", got[1])
	}
	if string(got[1].Event) != string(got[0].Event) {
		t.Fatalf("retry body changed: %s", got[1].Event)
	}
	if n := pending(t, q); n != 0 {
		t.Fatalf("pending = %d, want 0", n)
	}
}

func TestDeadLetterKeepsExhaustedDelivery(t *testing.T) {
	q := openTest(t, t.TempDir(), 0)
	defer q.Close()
	ctx := context.Background()
	publish(t, q, delivery(1))
	consumeN(t, q, 1, func(m *Msg) {
		if err := m.DeadLetter(ctx, ReasonExhausted, "HTTP 500 after 10 attempts"); err != nil {
			t.Error(err)
		}
	})
	if n, err := q.DeadLetters(ctx); err != nil || n != 1 {
		t.Fatalf("dead letters = %d, %v; want 1", n, err)
	}
	if n := pending(t, q); n != 0 {
		t.Fatalf("pending = %d, want 0", n)
	}
}

func TestUnackedDeliverySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, time.Second)
	ctx := context.Background()
	publish(t, q, delivery(1), delivery(2))
	// Take both and finish only one, then stop as a crash would.
	var acked string
	consumeN(t, q, 2, func(m *Msg) {
		if acked == "" {
			acked = m.ID
			if err := m.Done(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	q.Close()

	q = openTest(t, dir, time.Second)
	defer q.Close()
	got := consumeN(t, q, 1, func(m *Msg) {
		if err := m.Done(ctx); err != nil {
			t.Error(err)
		}
	})
	if got[0].ID == acked {
		t.Fatalf("acked delivery %s came back", acked)
	}
	if n := pending(t, q); n != 0 {
		t.Fatalf("pending = %d, want 0", n)
	}
}

// A consumption that ends by itself (here its consumer is deleted under it)
// is counted and started again: delivery does not stop without a word.
func TestConsumeRestartsAfterItsConsumerIsDeleted(t *testing.T) {
	q := openTest(t, t.TempDir(), 0)
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(ctx, func(m *Msg) {
			_ = m.Done(ctx)
			got <- m.ID
		})
	}()
	next := func() string {
		select {
		case id := <-got:
			return id
		case <-time.After(20 * time.Second):
			t.Fatal("nothing consumed")
			return ""
		}
	}
	publish(t, q, delivery(1))
	next()
	errorsBefore := testutil.ToFloat64(metrics.ConsumerErrorsTotal.WithLabelValues(metrics.ConsumerShared))
	if err := q.stream.DeleteConsumer(ctx, ConsumerName); err != nil {
		t.Fatal(err)
	}
	publish(t, q, delivery(2))
	if id := next(); id != "d2" {
		t.Fatalf("consumed %s, want d2", id)
	}
	if after := testutil.ToFloat64(metrics.ConsumerErrorsTotal.WithLabelValues(metrics.ConsumerShared)); after <= errorsBefore {
		t.Fatalf("consumer errors %v, want more than %v", after, errorsBefore)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
