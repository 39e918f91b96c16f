// Package outcomes collects the delivery engine's attempt outcomes per
// subscription, and what the queue holds for each (backlog, dead letters),
// and decides when status should be written: transitions (first success,
// failure after success, deactivation) at once, everything else at most once
// per sync period. The reconciler, woken through Events(), is the only
// writer of status; the failure streak it writes there is the one every
// reader uses.
//
// It must not write Kubernetes objects itself: it only tells the reconciler
// when, and what, to write.
package outcomes

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/queue"
)

// Counter reads what the queue holds per subscription (queue.Queue).
type Counter interface {
	Counts(ctx context.Context) (queue.Counts, error)
	// Changes returns a number that moves whenever what the queue holds
	// may have changed (queue.Queue.Changes).
	Changes() uint64
}

// maxMessage bounds the failure message kept for status.
const maxMessage = 512

// State is what the engine knows of one subscription's deliveries.
type State struct {
	UID                 types.UID
	LastSuccessAt       time.Time
	LastAttemptAt       time.Time
	LastFailureAt       time.Time
	FailingSince        time.Time
	LastFailureCode     int
	LastFailureMessage  string
	ConsecutiveFailures int64
	Deactivated         bool
	// CircuitOpenUntil is when the breaker of the endpoint's host
	// half-opens, as of the last attempt; zero while it is closed.
	CircuitOpenUntil time.Time
}

// Tracker implements dispatcher.Reporter.
type Tracker struct {
	syncPeriod time.Duration
	events     chan event.GenericEvent
	counter    Counter
	refresh    chan struct{}

	mu    sync.Mutex
	state map[types.NamespacedName]*State
	dirty map[types.NamespacedName]bool
	// counts is the queue's last count per subscription UID. A change of
	// a UID's count wakes the subscription lookup finds for it; without
	// one (NamesFrom), names maps the UIDs the reconciler asked about to
	// their subscription.
	counts map[types.UID]queue.SubscriptionCounts
	lookup func(types.UID) (types.NamespacedName, bool)
	names  map[types.UID]types.NamespacedName

	// What the last count left for the next one to decide whether to
	// look again (used by the Start goroutine only).
	looked    bool      // a count succeeded
	seen      uint64    // the queue's change number before it
	lookAgain bool      // it followed a change, or failed
	busy      bool      // it found deliveries ready or retries waiting
	expiry    time.Time // when its oldest dead letter leaves the queue
}

// New returns a tracker that wakes the reconciler at most once per
// syncPeriod for ordinary outcomes.
func New(syncPeriod time.Duration) *Tracker {
	return &Tracker{
		syncPeriod: syncPeriod,
		// Bounded: a full channel only delays a wake-up to the next tick.
		events:  make(chan event.GenericEvent, 1024),
		state:   map[types.NamespacedName]*State{},
		dirty:   map[types.NamespacedName]bool{},
		refresh: make(chan struct{}, 1),
		counts:  map[types.UID]queue.SubscriptionCounts{},
		names:   map[types.UID]types.NamespacedName{},
	}
}

// CountFrom makes the tracker read the queue's counts (and when asked by
// Refresh), waking the reconciler for subscriptions whose backlog or dead
// letters changed. It reads them at most once per sync period, and only
// when they may have changed: at rest it asks the queue nothing. Call
// before Start.
func (t *Tracker) CountFrom(c Counter) { t.counter = c }

// NamesFrom makes the tracker find the subscription whose counts changed
// with lookup (the subscription index's own UID lookup), rather than
// remember the UID of every subscription the reconciler asked about: with
// thousands of subscriptions, a second map of them all is memory spent
// twice. Call before Start.
func (t *Tracker) NamesFrom(lookup func(types.UID) (types.NamespacedName, bool)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lookup = lookup
	t.names = nil
}

// Counts returns what the queue held for the subscription at the last
// count, and (without NamesFrom) remembers its name so a change wakes its
// reconcile.
func (t *Tracker) Counts(id types.NamespacedName, uid types.UID) queue.SubscriptionCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lookup == nil {
		t.names[uid] = id
	}
	return t.counts[uid]
}

// Refresh asks for a count soon (after a replay or purge), without waiting
// for the sync period.
func (t *Tracker) Refresh() {
	select {
	case t.refresh <- struct{}{}:
	default:
	}
}

// countDue says whether the queue's counts may differ from the last ones
// read: never read, or read before the queue's last change, or right after
// one (a write counted when sent, such as an asynchronous publish, may
// have been stored only after that look), or the last read failed. Time
// alone changes them too, in two ways the change number does not show: a
// waiting retry falls due (and the age of the oldest ready delivery grows
// while it waits for the dispatcher), and dead letters age out.
func (t *Tracker) countDue(changes uint64, now time.Time) bool {
	return !t.looked || changes != t.seen || t.lookAgain || t.busy ||
		(!t.expiry.IsZero() && !now.Before(t.expiry))
}

// recount reads the queue's counts, if they may have changed or force is
// set, and marks the subscriptions whose counts changed, to be written
// with the next flush.
func (t *Tracker) recount(ctx context.Context, force bool) {
	if t.counter == nil {
		return
	}
	changes := t.counter.Changes()
	if !force && !t.countDue(changes, time.Now()) {
		return
	}
	c, err := t.counter.Counts(ctx)
	if err != nil {
		t.lookAgain = true
		log.FromContext(ctx).Error(err, "counting queued deliveries and dead letters")
		return
	}
	t.lookAgain = changes != t.seen
	t.looked, t.seen = true, changes
	t.busy = !c.OldestReady.IsZero() || c.Waiting > 0
	t.expiry = c.NextExpiry
	for _, reason := range queue.DeadLetterReasons {
		metrics.DeadLetters.WithLabelValues(reason).Set(float64(c.DeadLetters[reason]))
	}
	age := 0.0
	if !c.OldestReady.IsZero() {
		// The stored time is the NATS server's clock: never below zero.
		age = max(time.Since(c.OldestReady).Seconds(), 0)
	}
	metrics.QueueOldestDeliveryAge.Set(age)
	t.mu.Lock()
	defer t.mu.Unlock()
	for uid, old := range t.counts {
		if _, ok := c.Subscriptions[uid]; !ok && old != (queue.SubscriptionCounts{}) {
			t.markCountChanged(uid)
		}
	}
	for uid, n := range c.Subscriptions {
		if t.counts[uid] != n {
			t.markCountChanged(uid)
		}
	}
	t.counts = c.Subscriptions
}

// markCountChanged marks uid's subscription for the next flush; t.mu is held.
func (t *Tracker) markCountChanged(uid types.UID) {
	var id types.NamespacedName
	ok := false
	if t.lookup != nil {
		id, ok = t.lookup(uid)
	} else {
		id, ok = t.names[uid]
	}
	if ok {
		t.dirty[id] = true
	}
}

// Events feeds the reconciler (source.Channel).
func (t *Tracker) Events() <-chan event.GenericEvent { return t.events }

// Report records an outcome. It never blocks.
func (t *Tracker) Report(o dispatcher.Outcome) {
	t.mu.Lock()
	s := t.state[o.Subscription]
	if s == nil || s.UID != o.UID {
		s = &State{UID: o.UID}
		t.state[o.Subscription] = s
	}
	wasFailing := s.ConsecutiveFailures > 0
	firstSuccess := o.OK && s.LastSuccessAt.IsZero()
	tripped := !o.CircuitOpenUntil.IsZero() && s.CircuitOpenUntil.IsZero()
	s.CircuitOpenUntil = o.CircuitOpenUntil
	s.LastAttemptAt = o.At
	if o.OK {
		s.LastSuccessAt = o.At
		s.ConsecutiveFailures = 0
		s.FailingSince = time.Time{}
	} else {
		s.LastFailureAt = o.At
		s.ConsecutiveFailures++
		if s.FailingSince.IsZero() {
			s.FailingSince = o.At
		}
		s.LastFailureCode = o.StatusCode
		s.LastFailureMessage = truncate(o.Message)
		s.Deactivated = s.Deactivated || o.Deactivated
	}
	// Transitions are written at once; the rest waits for the next tick.
	urgent := firstSuccess || o.Deactivated || tripped || (o.OK && wasFailing) || (!o.OK && !wasFailing)
	t.dirty[o.Subscription] = !urgent
	t.mu.Unlock()
	if urgent {
		t.wake(o.Subscription)
	}
}

// Get returns a copy of the state of a subscription.
func (t *Tracker) Get(id types.NamespacedName) (State, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.state[id]
	if !ok {
		return State{}, false
	}
	return *s, true
}

// ClearStreak forgets a deactivation and the failure streak once the
// subscription was reactivated or its spec changed, keeping the rest.
func (t *Tracker) ClearStreak(id types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.state[id]; ok {
		s.Deactivated = false
		s.ConsecutiveFailures = 0
		s.FailingSince = time.Time{}
	}
}

// Forget drops a deleted subscription.
func (t *Tracker) Forget(id types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.state[id]; ok {
		delete(t.names, s.UID)
	}
	delete(t.state, id)
	delete(t.dirty, id)
}

// Start wakes the reconciler for the subscriptions with news, once per sync
// period, until ctx ends. It is a manager.Runnable.
func (t *Tracker) Start(ctx context.Context) error {
	tick := time.NewTicker(t.syncPeriod)
	defer tick.Stop()
	t.recount(ctx, true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			t.recount(ctx, false)
			t.Flush()
		case <-t.refresh:
			t.recount(ctx, true)
			t.Flush()
		}
	}
}

// Flush wakes the reconciler for every subscription with unwritten news.
func (t *Tracker) Flush() {
	t.mu.Lock()
	var ids []types.NamespacedName
	for id, d := range t.dirty {
		if d {
			ids = append(ids, id)
		}
		delete(t.dirty, id)
	}
	t.mu.Unlock()
	for _, id := range ids {
		t.wake(id)
	}
}

func (t *Tracker) wake(id types.NamespacedName) {
	obj := &kubehookv1.WebhookSubscription{}
	obj.Namespace, obj.Name = id.Namespace, id.Name
	select {
	case t.events <- event.GenericEvent{Object: obj}:
	default:
		// The reconciler is behind; keep it for the next tick.
		t.mu.Lock()
		t.dirty[id] = true
		t.mu.Unlock()
	}
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage] + "…"
}
