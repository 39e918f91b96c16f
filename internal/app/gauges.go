package app

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// gauges keeps kubehook_queue_pending, kubehook_queue_up and
// kubehook_subscriptions current, and removes the per-subscription series
// of subscriptions no longer registered.
type gauges struct {
	queue    *queue.Queue
	registry *subscriptions.Registry
	// perSubscription is nil unless --per-subscription-metrics is on.
	perSubscription *metrics.PerSubscription
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
	// Up only when the stream query answers too: a connection to a NATS
	// whose JetStream has lost its quorum takes no deliveries.
	up := 0.0
	if err := g.queue.Ready(); err == nil {
		if n, err := g.queue.Pending(ctx); err == nil {
			metrics.QueuePending.Set(float64(n))
			up = 1
		}
	}
	metrics.QueueUp.Set(up)

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
