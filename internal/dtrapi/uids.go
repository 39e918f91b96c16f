package dtrapi

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// UIDs maps each WebhookSubscription in kubehook's cache from its UID, the
// DTR webhook id, to its name: GET and DELETE of /api/v0/webhooks/{id} need
// the name to read the subscription as the caller.
//
// It is a map fed by the informer rather than a controller-runtime field
// index because the index cost about 1 KiB of live heap per subscription
// (each value is indexed twice, across the cluster and per namespace, as a
// set of namespaced keys): 10 MiB at 10,000 subscriptions, a sixth of
// kubehook's memory per subscription (docs/benchmarks.md). The map holds
// the object's own strings, about 160 bytes per subscription in the heap
// profile.
type UIDs struct {
	// listed is closed once the map holds every subscription of the
	// informer's first list.
	listed <-chan struct{}
	mu     sync.RWMutex
	names  map[types.UID]types.NamespacedName
}

// WatchUIDs returns the UID map of the WebhookSubscriptions in informers,
// kept current by their informer; call it before the manager starts.
func WatchUIDs(ctx context.Context, informers cache.Informers) (*UIDs, error) {
	u := &UIDs{names: map[types.UID]types.NamespacedName{}}
	inf, err := informers.GetInformer(ctx, &kubehookv1.WebhookSubscription{})
	if err != nil {
		return nil, fmt.Errorf("watching subscriptions for the DTR API: %w", err)
	}
	// No update handler: an object's UID and name never change, and a
	// relist's objects gone in between come as deletions.
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    u.put,
		DeleteFunc: u.remove,
	})
	if err != nil {
		return nil, fmt.Errorf("watching subscriptions for the DTR API: %w", err)
	}
	u.listed = reg.HasSyncedChecker().Done()
	return u, nil
}

// Name returns the name of the cached subscription with UID uid. Until the
// informer's first list is in the map it waits, as a read of the cache
// waits for the cache to sync; it returns ctx's error if ctx ends first.
func (u *UIDs) Name(ctx context.Context, uid types.UID) (types.NamespacedName, bool, error) {
	select {
	case <-u.listed:
	case <-ctx.Done():
		return types.NamespacedName{}, false, ctx.Err()
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	n, ok := u.names[uid]
	return n, ok, nil
}

func (u *UIDs) put(obj any) {
	o, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.names[o.GetUID()] = types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
}

func (u *UIDs) remove(obj any) {
	if gone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = gone.Obj
	}
	o, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.names, o.GetUID())
}
