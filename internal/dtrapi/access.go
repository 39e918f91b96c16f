package dtrapi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// access answers "may the caller do this?" with SelfSubjectAccessReviews
// made as the caller, so the answer is the cluster's RBAC.
type access struct {
	as    client.Client // impersonating
	cache client.Reader // kubehook's own cache (namespace metadata)
	ttl   time.Duration
	// anywhere caches inSomeNamespace's verdicts by verb and caller.
	anywhere *cache.LRUExpireCache
}

// allowed reports whether the caller may verb webhooksubscriptions in
// namespace ns ("" = in every namespace), with the authorizer's reason.
func (a *access) allowed(ctx context.Context, verb, ns string) (bool, string, error) {
	r := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: verb, Group: kubehookv1.GroupVersion.Group, Resource: "webhooksubscriptions",
		},
	}}
	if err := a.as.Create(ctx, r); err != nil {
		return false, "", fmt.Errorf("reviewing access: %w", err)
	}
	return r.Status.Allowed && !r.Status.Denied, r.Status.Reason, nil
}

// inSomeNamespace reports whether the caller may verb webhooksubscriptions
// in at least one namespace. Verdicts are cached per caller for a while:
// for a caller with few rights this walks the namespaces.
func (a *access) inSomeNamespace(ctx context.Context, verb string) (bool, error) {
	u, _ := callerFrom(ctx)
	key := verb + "\x00" + u.UserName + "\x00" + u.UID + "\x00" + strings.Join(u.Groups, ",")
	if v, ok := a.anywhere.Get(key); ok {
		return v.(bool), nil
	}

	allowed, err := a.walk(ctx, verb)
	if err != nil {
		return false, err
	}
	a.anywhere.Add(key, allowed, a.ttl)
	return allowed, nil
}

func (a *access) walk(ctx context.Context, verb string) (bool, error) {
	if ok, _, err := a.allowed(ctx, verb, ""); err != nil || ok {
		return ok, err
	}
	names, err := a.namespaces(ctx)
	if err != nil {
		return false, err
	}
	for _, ns := range names {
		if ok, _, err := a.allowed(ctx, verb, ns.Name); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// namespaces lists the cluster's namespaces (metadata only, from cache),
// sorted by name.
func (a *access) namespaces(ctx context.Context) ([]metav1.PartialObjectMetadata, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := a.cache.List(ctx, list); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	slices.SortFunc(list.Items, func(x, y metav1.PartialObjectMetadata) int { return strings.Compare(x.Name, y.Name) })
	return list.Items, nil
}
