package outcomes

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kubehook/kubehook/internal/queue"
)

// fakeCounter is a queue whose counts and change number the test sets, and
// which counts how often it was asked.
type fakeCounter struct {
	changes uint64
	counts  queue.Counts
	calls   int
}

func (f *fakeCounter) Counts(context.Context) (queue.Counts, error) {
	f.calls++
	return f.counts, nil
}

func (f *fakeCounter) Changes() uint64 { return f.changes }

// A tracker whose queue does not change asks it nothing, tick after tick;
// after a change it counts, and once more (a write counted when sent may
// be stored after the first look), and the news reaches the subscription.
func TestQuietQueueIsNotCounted(t *testing.T) {
	ctx := context.Background()
	q := &fakeCounter{counts: queue.Counts{Subscriptions: map[types.UID]queue.SubscriptionCounts{}}}
	tr := New(time.Hour)
	tr.CountFrom(q)
	tr.Counts(id, "u1") // the reconciler asked about the subscription

	tr.recount(ctx, true) // Start's first count
	tick := func(n int) int {
		before := q.calls
		for range n {
			tr.recount(ctx, false)
		}
		return q.calls - before
	}
	if n := tick(100); n != 0 {
		t.Fatalf("quiet queue: counted %d times in 100 ticks, want 0", n)
	}

	q.changes++
	q.counts.Subscriptions = map[types.UID]queue.SubscriptionCounts{"u1": {Backlog: 3}}
	if n := tick(1); n != 1 {
		t.Fatalf("after a change: counted %d times, want 1", n)
	}
	if c := tr.Counts(id, "u1"); c.Backlog != 3 {
		t.Fatalf("backlog %d after the count, want 3", c.Backlog)
	}
	tr.Flush()
	if n := wakes(tr); n != 1 {
		t.Fatalf("changed backlog woke the reconciler %d times, want 1", n)
	}
	if n := tick(1); n != 1 {
		t.Fatalf("the tick after a change: counted %d times, want 1 (the second look)", n)
	}
	if n := tick(100); n != 0 {
		t.Fatalf("quiet again: counted %d times in 100 ticks, want 0", n)
	}

	// Refresh (after a replay or purge) counts whatever the change number.
	tr.recount(ctx, true)
	if n := tick(100); n != 0 {
		t.Fatalf("after a forced count: counted %d times in 100 ticks, want 0", n)
	}
}

// What time alone changes is counted while it may: a waiting retry falls
// due by itself, a delivery ready for an attempt ages, and dead letters age
// out of their retention.
func TestTrackerCountsWhatTimeChanges(t *testing.T) {
	ctx := context.Background()
	for name, counts := range map[string]queue.Counts{
		"retry waiting":    {Waiting: 1},
		"delivery ready":   {OldestReady: time.Now().Add(-time.Minute)},
		"dead letter gone": {NextExpiry: time.Now().Add(-time.Second)},
	} {
		t.Run(name, func(t *testing.T) {
			q := &fakeCounter{counts: counts}
			tr := New(time.Hour)
			tr.CountFrom(q)
			tr.recount(ctx, true)
			tr.recount(ctx, false) // the tracker's own second look is not what is tested
			before := q.calls
			for range 10 {
				tr.recount(ctx, false)
			}
			if n := q.calls - before; n != 10 {
				t.Fatalf("counted %d times in 10 ticks, want 10", n)
			}
		})
	}

	// A dead letter that expires later is counted when it does, not before.
	q := &fakeCounter{counts: queue.Counts{NextExpiry: time.Now().Add(time.Hour)}}
	tr := New(time.Hour)
	tr.CountFrom(q)
	tr.recount(ctx, true)
	tr.recount(ctx, false)
	before := q.calls
	tr.recount(ctx, false)
	if n := q.calls - before; n != 0 {
		t.Fatalf("dead letter expiring in an hour: counted %d times, want 0", n)
	}
}

// With NamesFrom, a changed count wakes the subscription the lookup finds
// for its UID, though the reconciler never asked about it, and the tracker
// keeps no name of its own.
func TestCountChangeWakesTheSubscriptionLookupFinds(t *testing.T) {
	ctx := context.Background()
	q := &fakeCounter{}
	tr := New(time.Hour)
	tr.CountFrom(q)
	tr.NamesFrom(func(uid types.UID) (types.NamespacedName, bool) { return id, uid == "u1" })
	tr.recount(ctx, true)

	q.changes++
	q.counts.Subscriptions = map[types.UID]queue.SubscriptionCounts{"u1": {DeadLetters: 1}, "u2": {Backlog: 1}}
	tr.recount(ctx, false)
	tr.Flush()
	if n := wakes(tr); n != 1 {
		t.Fatalf("woke %d times, want 1 (u1's subscription; u2 has none)", n)
	}
	if c := tr.Counts(id, "u1"); c.DeadLetters != 1 {
		t.Fatalf("dead letters %d, want 1", c.DeadLetters)
	}
	if len(tr.names) != 0 {
		t.Fatalf("the tracker remembers %d names", len(tr.names))
	}
}
