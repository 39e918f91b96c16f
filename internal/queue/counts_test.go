package queue

import (
	"context"
	"testing"
	"time"
)

// Counts says how long the oldest delivery ready for an attempt has been
// queued; deliveries moved to a subscription's own line (held or parked)
// and retries waiting for their time are not ready and do not count.
func TestCountsOldestReadyDelivery(t *testing.T) {
	q := openTest(t, t.TempDir(), 0)
	defer q.Close()
	ctx := context.Background()

	counts := func() Counts {
		t.Helper()
		c, err := q.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := counts(); !c.OldestReady.IsZero() {
		t.Fatalf("empty queue: oldest ready delivery at %s, want none", c.OldestReady)
	}

	// The stored time has the server's resolution; allow for rounding.
	before := time.Now().Add(-time.Millisecond)
	publish(t, q, delivery(1))
	time.Sleep(20 * time.Millisecond)
	publish(t, q, delivery(2))
	second := time.Now()
	c := counts()
	if c.OldestReady.Before(before) || !c.OldestReady.Before(second.Add(-10*time.Millisecond)) {
		t.Fatalf("oldest ready delivery at %s, want the first one's time (published after %s, 20ms before %s)", c.OldestReady, before, second)
	}

	// Both moved to their subscription's line (as for a suspended one):
	// still queued, no longer ready.
	consumeN(t, q, 2, func(m *Msg) {
		if err := m.Park(nil); err != nil {
			t.Error(err)
		}
	})
	// Parking acks the original once the copy is stored, asynchronously.
	waitFor(t, func() bool { return counts().Subscriptions["uid-1"].Backlog == 2 })
	if c := counts(); !c.OldestReady.IsZero() || c.Subscriptions["uid-1"].Backlog != 2 {
		t.Fatalf("after holding: oldest ready delivery at %s, backlog %d; want none, 2", c.OldestReady, c.Subscriptions["uid-1"].Backlog)
	}

	// A retry due in an hour waits, it is not ready either.
	publish(t, q, delivery(3))
	consumeN(t, q, 1, func(m *Msg) {
		if err := m.Retry(ctx, time.Now().Add(time.Hour), 1); err != nil {
			t.Error(err)
		}
	})
	if c := counts(); !c.OldestReady.IsZero() || c.Subscriptions["uid-1"].Backlog != 3 {
		t.Fatalf("with a waiting retry: oldest ready delivery at %s, backlog %d; want none, 3", c.OldestReady, c.Subscriptions["uid-1"].Backlog)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
