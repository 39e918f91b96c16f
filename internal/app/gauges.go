package app

import (
	"context"
	"time"

	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/registry"
)

// gauges keeps kubehook_queue_pending and kubehook_subscriptions current.
type gauges struct {
	queue    *queue.Queue
	registry *registry.Registry
}

func (g *gauges) Start(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if n, err := g.queue.Pending(ctx); err == nil {
			metrics.QueuePending.Set(float64(n))
		}
		counts := map[string]int{"active": 0, "suspended": 0, "stalled": 0, "inactive": 0, "not_permitted": 0}
		for _, s := range g.registry.List() {
			switch {
			case s.Inactive:
				counts["inactive"]++
			case s.NotPermitted:
				counts["not_permitted"]++
			case s.Suspended:
				counts["suspended"]++
			case s.Stalled != "":
				counts["stalled"]++
			default:
				counts["active"]++
			}
		}
		for state, n := range counts {
			metrics.Subscriptions.WithLabelValues(state).Set(float64(n))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
