package app

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// loadGate tells when the subscription registry reflects every
// WebhookSubscription in the informer cache: the controller has registered
// each one, or judged it for its current generation. Until then no delivery
// is judged (a subscription not registered yet is not a deleted one) and no
// event is accepted (it would match nothing), and /readyz fails.
type loadGate struct {
	reader  client.Reader
	reg     *subscriptions.Registry
	timeout time.Duration
	loaded  atomic.Bool
}

// Wait returns once every subscription is loaded. After the timeout it
// returns anyway, logging how many are pending: what is not loaded by then
// (a subscription whose reconcile keeps failing) has its deliveries held,
// not lost.
func (g *loadGate) Wait(ctx context.Context) error {
	log := ctrl.Log.WithName("setup")
	deadline := time.Now().Add(g.timeout)
	for !g.loaded.Load() {
		var list kubehookv1.WebhookSubscriptionList
		err := g.reader.List(ctx, &list)
		pending := 0
		for i := range list.Items {
			if !subscriptionHandled(&list.Items[i], g.reg) {
				pending++
			}
		}
		switch {
		case err == nil && pending == 0:
			g.loaded.Store(true)
			return nil
		case time.Now().After(deadline):
			log.Info("going on before every subscription was loaded; their deliveries are held until they are", "pending", pending, "listError", err)
			g.loaded.Store(true)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// subscriptionHandled reports whether the controller has dealt with sub's
// current generation: it is registered in the engine, or being deleted, or
// its status says it was refused (Ready false for this generation).
func subscriptionHandled(sub *kubehookv1.WebhookSubscription, reg *subscriptions.Registry) bool {
	if !sub.DeletionTimestamp.IsZero() {
		return true
	}
	if e, ok := reg.Get(types.NamespacedName{Namespace: sub.Namespace, Name: sub.Name}); ok && e.UID == sub.UID && e.Generation == sub.Generation {
		return true
	}
	return sub.Status.ObservedGeneration == sub.Generation && apimeta.IsStatusConditionFalse(sub.Status.Conditions, kubehookv1.ReadyCondition)
}

// errNotLoaded is the readiness failure while subscriptions load.
var errNotLoaded = errors.New("subscriptions not loaded yet")

// Check is the /readyz check of the gate.
func (g *loadGate) Check(*http.Request) error {
	if !g.loaded.Load() {
		return errNotLoaded
	}
	return nil
}
