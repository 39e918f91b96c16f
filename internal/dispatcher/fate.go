package dispatcher

import (
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// fate is what the dispatcher does with one delivery.
type fate int

const (
	deliver fate = iota
	hold
	deadLetter
	drop
)

// verdict is a fate and why.
type verdict struct {
	fate fate
	// reason is a queue.Reason for dead letters; why says it in words.
	reason, why string
}

// existence verdicts are kept this long: a UID that is gone never comes
// back; one that exists may be registered or deleted at any moment.
const (
	goneTTL    = time.Hour
	presentTTL = 5 * time.Second
)

// deliverable returns the subscription of m when m is to be delivered.
// Otherwise it settles m and returns nil: at shutdown m goes back to the
// queue unjudged, else its verdict is applied. st is as for apply.
func (d *Dispatcher) deliverable(m *queue.Msg, st *subState) *subscriptions.Subscription {
	if d.stopping.Load() {
		_ = m.Release()
		return nil
	}
	sub, v := d.judge(m)
	if v.fate != deliver {
		d.apply(m, v, st)
		return nil
	}
	return sub
}

// judge decides what becomes of m, from its subscription's registry entry
// (subscriptions.Subscription.Fate) or, when none is registered under its UID,
// from whether the object still exists.
func (d *Dispatcher) judge(m *queue.Msg) (*subscriptions.Subscription, verdict) {
	sub, ok := d.registry.GetByUID(m.SubscriptionUID)
	if !ok {
		if d.gone(m.Subscription, m.SubscriptionUID) {
			return nil, verdict{fate: drop}
		}
		// Not loaded yet, or a transient error kept it out of the
		// registry: not judged, held until it is registered.
		return nil, verdict{fate: hold, why: "subscription not loaded"}
	}
	return sub, verdictOf(sub)
}

func verdictOf(sub *subscriptions.Subscription) verdict {
	f, why := sub.Fate()
	switch f {
	case subscriptions.Hold:
		return verdict{fate: hold, why: why}
	case subscriptions.DeadLetter:
		reason := queue.ReasonInactive
		if why == subscriptions.ReasonNotPermitted {
			reason = queue.ReasonNotPermitted
		}
		return verdict{fate: deadLetter, reason: reason, why: "subscription " + why}
	}
	return verdict{fate: deliver}
}

// gone reports whether no object with the subscription's UID exists. An
// error from the API server is not an answer: the delivery is kept.
func (d *Dispatcher) gone(id types.NamespacedName, uid types.UID) bool {
	if d.opts.Exists == nil {
		return true
	}
	if v, ok := d.existence.Get(uid); ok {
		return v.(bool)
	}
	exists, err := d.opts.Exists(d.sendCtx, id, uid)
	if err != nil {
		log.FromContext(d.sendCtx).Error(err, "checking whether a subscription still exists; its deliveries are held", "subscription", id)
		return false
	}
	ttl := goneTTL
	if exists {
		ttl = presentTTL
	}
	d.existence.Add(uid, !exists, ttl)
	return !exists
}

// apply carries out a verdict other than deliver. st is the subscription's
// state when m came from its line, nil from the shared consumer.
func (d *Dispatcher) apply(m *queue.Msg, v verdict, st *subState) {
	ctx := d.sendCtx
	switch v.fate {
	case drop:
		d.drop(m)
	case deadLetter:
		d.deadLetter(m, v.reason, v.why)
	case hold:
		if st != nil {
			// Read from a line that must now be held: back to it, unchanged,
			// and the line stops.
			_ = m.Release()
			go d.holdLine(m.SubscriptionUID, st)
			return
		}
		if err := d.holdDelivery(m, v.why); err != nil {
			log.FromContext(ctx).Error(err, "holding a delivery; it will come back", "delivery", m.ID)
		}
	}
}

// drop acks a delivery whose subscription no longer exists.
func (d *Dispatcher) drop(m *queue.Msg) {
	d.count(m, metrics.ResultDropped)
	if err := m.Drop(d.sendCtx); err != nil {
		log.FromContext(d.sendCtx).Error(err, "dropping delivery", "delivery", m.ID)
	}
}

// deadLetter moves a delivery to its subscription's dead letters.
func (d *Dispatcher) deadLetter(m *queue.Msg, reason, why string) {
	d.count(m, metrics.ResultDeadLetter)
	metrics.DeadLettersTotal.Inc()
	if err := m.DeadLetter(d.sendCtx, reason, why); err != nil {
		log.FromContext(d.sendCtx).Error(err, "dead-lettering a delivery; it will come back", "delivery", m.ID)
	}
}
