package dispatcher

import (
	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/queue"
)

// count records how a delivery ended (or was set aside): by event type
// always, and by subscription when per-subscription metrics are on. Only
// registered subscriptions get series of their own, so the deliveries
// dropped for deleted ones add none back after they were removed.
func (d *Dispatcher) count(m *queue.Msg, result string) {
	metrics.DeliveriesTotal.WithLabelValues(m.EventType, result).Inc()
	if d.opts.PerSubscriptionMetrics == nil {
		return
	}
	if _, ok := d.registry.GetByUID(m.SubscriptionUID); ok {
		d.opts.PerSubscriptionMetrics.Add(m.Subscription, result)
	}
}
