package queue

import (
	"context"
	"testing"
	"time"

	"github.com/onsi/gomega"
)

// Dead letters are kept per subscription and reason, counted without
// reading them, and replayed as fresh deliveries with their webhook-id.
func TestDeadLettersAreCountedAndReplayedWithTheirID(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, 0)
	ctx := context.Background()
	publish(t, q, delivery(1), delivery(2), delivery(3))
	first := map[string]int{}
	consumeN(t, q, 3, func(m *Msg) {
		first[m.ID] = m.Attempts
		reason := ReasonExhausted
		if m.ID == "d3" {
			reason = ReasonInactive
		}
		if err := m.DeadLetter(ctx, reason, "HTTP 500"); err != nil {
			t.Error(err)
		}
	})
	// A new connection: the first consumption's pull request would hold on
	// to what the replay queues until its ack wait ran out.
	q.Close()
	q = openTest(t, dir, 0)
	defer q.Close()
	c, err := q.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Subscriptions["uid-1"]; got.DeadLetters != 3 || got.Backlog != 0 {
		t.Fatalf("counts of uid-1 = %+v, want 3 dead letters and no backlog", got)
	}
	if c.DeadLetters[ReasonExhausted] != 2 || c.DeadLetters[ReasonInactive] != 1 {
		t.Fatalf("dead letters by reason = %v", c.DeadLetters)
	}
	kept, err := q.DeadLettersOf(ctx, "uid-1", 0)
	if err != nil || len(kept) != 3 || kept[0].ID != "d1" || kept[2].Reason != ReasonInactive || kept[0].LastError != "HTTP 500" {
		t.Fatalf("DeadLettersOf = %+v, %v", kept, err)
	}

	n, err := q.Replay(ctx, "uid-1")
	if err != nil || n != 3 {
		t.Fatalf("Replay = %d, %v; want 3", n, err)
	}
	if c, _ := q.Counts(ctx); c.Subscriptions["uid-1"].DeadLetters != 0 || c.Subscriptions["uid-1"].Backlog != 3 {
		t.Fatalf("after replay counts = %+v, want 0 dead letters and 3 queued", c.Subscriptions["uid-1"])
	}
	// Replayed within the duplicate window of the original publish: still
	// stored, under the same delivery IDs, attempts counted afresh.
	got := consumeN(t, q, 3, func(m *Msg) {
		if err := m.Done(ctx); err != nil {
			t.Error(err)
		}
	})
	for _, d := range got {
		if _, ok := first[d.ID]; !ok || d.Attempts != 0 {
			t.Errorf("replayed delivery %s attempts %d: want an original ID with attempts 0", d.ID, d.Attempts)
		}
	}
}

func TestPurgeDeletesOnlyThatSubscriptionsDeadLetters(t *testing.T) {
	q := openTest(t, t.TempDir(), 0)
	defer q.Close()
	ctx := context.Background()
	other := delivery(9)
	other.SubscriptionUID = "uid-2"
	publish(t, q, delivery(1), delivery(2), other)
	consumeN(t, q, 3, func(m *Msg) {
		if err := m.DeadLetter(ctx, ReasonExhausted, "gave up"); err != nil {
			t.Error(err)
		}
	})
	if n, err := q.PurgeDeadLetters(ctx, "uid-1"); err != nil || n != 2 {
		t.Fatalf("PurgeDeadLetters = %d, %v; want 2", n, err)
	}
	c, _ := q.Counts(ctx)
	if c.Subscriptions["uid-1"].DeadLetters != 0 || c.Subscriptions["uid-2"].DeadLetters != 1 {
		t.Fatalf("after purge counts = %+v", c.Subscriptions)
	}
}

// Held deliveries older than the retention move to the dead letters; the
// younger ones stay held.
func TestExpireHeldDeadLettersOnlyTheOld(t *testing.T) {
	q := openTest(t, t.TempDir(), 0)
	defer q.Close()
	ctx := context.Background()
	old, young := delivery(1), delivery(2)
	old.QueuedAt = time.Now().Add(-8 * 24 * time.Hour)
	publish(t, q, old, young)
	consumeN(t, q, 2, func(m *Msg) {
		if err := m.Park(nil); err != nil {
			t.Error(err)
		}
	})
	gomega.NewWithT(t).Eventually(func() (int64, error) { return q.ParkedCount(ctx, "uid-1") }, 10*time.Second, 10*time.Millisecond).
		Should(gomega.BeEquivalentTo(2), "parked copies not stored")
	n, err := q.ExpireHeld(ctx, "uid-1", time.Now().Add(-q.HoldMaxAge()))
	if err != nil || n != 1 {
		t.Fatalf("ExpireHeld = %d, %v; want 1", n, err)
	}
	kept, _ := q.DeadLettersOf(ctx, "uid-1", 0)
	if len(kept) != 1 || kept[0].ID != "d1" || kept[0].Reason != ReasonHeldTooLong {
		t.Fatalf("dead letters = %+v, want d1 held too long", kept)
	}
	if n, _ := q.ParkedCount(ctx, "uid-1"); n != 1 {
		t.Fatalf("still held = %d, want 1", n)
	}
}
