// Package outcomes collects the delivery engine's attempt outcomes per
// subscription and decides when status should be written: transitions
// (first success, failure after success, deactivation) at once, everything
// else at most once per sync period. The reconciler, woken through Events(),
// is the only writer of status.
package outcomes

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
)

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
}

// Tracker implements dispatcher.Reporter.
type Tracker struct {
	syncPeriod time.Duration
	events     chan event.GenericEvent

	mu    sync.Mutex
	state map[types.NamespacedName]*State
	dirty map[types.NamespacedName]bool
}

// New returns a tracker that wakes the reconciler at most once per
// syncPeriod for ordinary outcomes.
func New(syncPeriod time.Duration) *Tracker {
	return &Tracker{
		syncPeriod: syncPeriod,
		// Bounded: a full channel only delays a wake-up to the next tick.
		events: make(chan event.GenericEvent, 1024),
		state:  map[types.NamespacedName]*State{},
		dirty:  map[types.NamespacedName]bool{},
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
	urgent := firstSuccess || o.Deactivated || (o.OK && wasFailing) || (!o.OK && !wasFailing)
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

// ClearDeactivated forgets a deactivation once the subscription was
// reactivated, keeping the rest.
func (t *Tracker) ClearDeactivated(id types.NamespacedName) {
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
	delete(t.state, id)
	delete(t.dirty, id)
}

// Start wakes the reconciler for the subscriptions with news, once per sync
// period, until ctx ends. It is a manager.Runnable.
func (t *Tracker) Start(ctx context.Context) error {
	tick := time.NewTicker(t.syncPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
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
