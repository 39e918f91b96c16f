package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
)

// SubscriptionDeliveriesTotal is kubehook_deliveries_total per subscription.
// It stays empty unless --per-subscription-metrics is on: it has a series
// for each subscription and result, a cost that grows with the cluster.
var SubscriptionDeliveriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "kubehook_subscription_deliveries_total",
	Help: "Deliveries by subscription (namespace, name) and result, as kubehook_deliveries_total, for registered subscriptions; only with --per-subscription-metrics: one series per subscription and result seen, removed when the subscription is.",
}, []string{"namespace", "name", "result"})

// PerSubscription records SubscriptionDeliveriesTotal and removes the
// series of subscriptions that are gone, so deleted subscriptions do not
// pile up series. A nil *PerSubscription records nothing.
type PerSubscription struct {
	mu   sync.Mutex
	seen map[types.NamespacedName]struct{}
}

// NewPerSubscription returns a recorder of per-subscription metrics.
func NewPerSubscription() *PerSubscription {
	return &PerSubscription{seen: map[types.NamespacedName]struct{}{}}
}

// Add counts one delivery of the subscription with the given result.
func (p *PerSubscription) Add(id types.NamespacedName, result string) {
	if p == nil {
		return
	}
	// Under the lock, so a concurrent Prune cannot delete the series
	// between the two steps and leave one it no longer knows of.
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[id] = struct{}{}
	SubscriptionDeliveriesTotal.WithLabelValues(id.Namespace, id.Name, result).Inc()
}

// Prune removes the series of every subscription keep rejects.
func (p *PerSubscription) Prune(keep func(types.NamespacedName) bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.seen {
		if keep(id) {
			continue
		}
		delete(p.seen, id)
		SubscriptionDeliveriesTotal.DeletePartialMatch(prometheus.Labels{"namespace": id.Namespace, "name": id.Name})
	}
}
