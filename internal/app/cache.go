package app

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/kubehook/kubehook/internal/clusterranges"
)

// cacheOptions configures the manager's informer cache. Every object is
// trimmed of what kubehook never reads before it is cached (trimForCache);
// Nodes are trimmed further by clusterranges.
func cacheOptions() cache.Options {
	return cache.Options{
		ByObject:         clusterranges.CacheByObject(),
		DefaultTransform: trimForCache,
	}
}

// trimForCache drops, from an object about to enter the cache, the two
// parts of its metadata that kubehook never reads and that weigh most: the
// managed fields (server-side apply's record of who set which field, often
// larger than a subscription's spec and status together) and kubectl's
// last-applied-configuration annotation (a copy of the whole applied
// object, present on everything applied with `kubectl apply` or Argo CD;
// on a Secret, its data). Nothing is written back from the cache: status
// is written through the status subresource, which ignores metadata, and
// the DTR API writes what it read with the caller's own client, so no
// object loses either on the API server. The object is fresh from the
// decoder, so it is changed in place.
func trimForCache(obj any) (any, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return obj, nil // not an object (a tombstone): nothing to trim
	}
	if m.GetManagedFields() != nil {
		m.SetManagedFields(nil)
	}
	if a := m.GetAnnotations(); a != nil {
		if _, ok := a[corev1.LastAppliedConfigAnnotation]; ok {
			delete(a, corev1.LastAppliedConfigAnnotation)
			if len(a) == 0 {
				m.SetAnnotations(nil)
			}
		}
	}
	return obj, nil
}
