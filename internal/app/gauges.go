package app

import (
	"context"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// gauges keeps kubehook_queue_pending, kubehook_queue_up and
// kubehook_subscriptions current, and removes the per-subscription series
// of subscriptions no longer registered. It looks every few seconds but
// does work only for what may have changed since its last look: at rest it
// asks JetStream nothing and walks no subscription.
type gauges struct {
	queue    gaugedQueue
	registry *subscriptions.Registry
	// perSubscription is nil unless --per-subscription-metrics is on.
	perSubscription *metrics.PerSubscription

	// registryChanged is set by the registry on every change.
	registryChanged atomic.Bool
	// What the last look found (used by the Start goroutine only): whether
	// JetStream answered, the queue's change number and consumer errors
	// then, and whether to look once more after a change.
	answered       bool
	seen, troubles uint64
	lookAgain      bool
}

// gaugedQueue is what the gauges read of the queue (queue.Queue).
type gaugedQueue interface {
	Ready() error
	Pending(ctx context.Context) (uint64, error)
	Changes() uint64
	ConsumerErrors() uint64
}

func newGauges(q gaugedQueue, reg *subscriptions.Registry, perSubscription *metrics.PerSubscription) *gauges {
	g := &gauges{queue: q, registry: reg, perSubscription: perSubscription}
	g.registryChanged.Store(true)
	reg.OnChange(func(types.NamespacedName) { g.registryChanged.Store(true) })
	return g
}

func (g *gauges) Start(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		g.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (g *gauges) refresh(ctx context.Context) {
	changes, troubles := g.queue.Changes(), g.queue.ConsumerErrors()
	queueMoved := changes != g.seen

	// Up only when the stream query answers too: a connection to a NATS
	// whose JetStream has lost its quorum takes no deliveries. It is asked
	// again only when something may have changed: the queue's contents
	// (pending), or its health, which the consumers' heartbeats watch
	// while the queue is quiet (a missed one is a consumer error). A
	// look right after a change is followed by one more, for writes
	// counted when sent but stored after the look.
	if err := g.queue.Ready(); err != nil {
		g.answered = false
	} else if !g.answered || queueMoved || troubles != g.troubles || g.lookAgain {
		n, err := g.queue.Pending(ctx)
		g.answered = err == nil
		if g.answered {
			metrics.QueuePending.Set(float64(n))
			g.lookAgain = queueMoved
			g.seen, g.troubles = changes, troubles
		}
	}
	up := 0.0
	if g.answered {
		up = 1
	}
	metrics.QueueUp.Set(up)

	// The states change only with the registry. A per-subscription series
	// is added by an outcome, which moves the queue (its ack): one added
	// for a subscription deleted meanwhile goes at the next look.
	registryChanged := g.registryChanged.Swap(false)
	if !registryChanged && (g.perSubscription == nil || !queueMoved) {
		return
	}
	counts := make(map[string]int, len(metrics.SubscriptionStates))
	for _, state := range metrics.SubscriptionStates {
		counts[state] = 0
	}
	registered := map[types.NamespacedName]bool{}
	for _, s := range g.registry.List() {
		registered[s.ID] = true
		counts[stateOf(s)]++
	}
	for state, n := range counts {
		metrics.Subscriptions.WithLabelValues(state).Set(float64(n))
	}
	g.perSubscription.Prune(func(id types.NamespacedName) bool { return registered[id] })
}

// stateOf is the one state a subscription counts in, in the order its
// deliveries' fate is decided (subscriptions.Subscription.Fate).
func stateOf(s *subscriptions.Subscription) string {
	switch {
	case s.Inactive:
		return metrics.StateInactive
	case s.NotPermitted:
		return metrics.StateNotPermitted
	case s.Suspended:
		return metrics.StateSuspended
	case s.Stalled != "":
		return metrics.StateStalled
	}
	return metrics.StateReady
}
