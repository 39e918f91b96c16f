package dtrapi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// access answers "may the caller do this?" with SelfSubjectAccessReviews
// sent with the caller's token, so the answer is the cluster's RBAC.
type access struct {
	as    client.Client // the callers' client
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

// maxNamespaceReviews bounds the access reviews one request may cost
// looking for a namespace where the caller has a right; they run
// namespaceListConcurrency at a time. An access review is evaluated in the
// API server's memory (a list reads storage), and a verdict is reused for
// the cache TTL, so the bound is high enough for the namespaces of a large
// cluster.
const maxNamespaceReviews = 1024

// someNamespace is inSomeNamespace's verdict.
type someNamespace int

const (
	nowhere  someNamespace = iota // no namespace allows it
	anywhere                      // one does, or the cluster
	// unknown: none of the first maxNamespaceReviews namespaces does, and
	// the others were not asked.
	unknown
)

// inSomeNamespace says whether the caller may verb webhooksubscriptions in
// at least one namespace: across the cluster, or in one of the first
// maxNamespaceReviews namespaces by name. Verdicts are cached per caller
// for a while.
func (a *access) inSomeNamespace(ctx context.Context, verb string) (someNamespace, error) {
	u, _ := callerFrom(ctx)
	key := verb + "\x00" + u.user.Username + "\x00" + u.user.UID + "\x00" + strings.Join(u.user.Groups, ",")
	if v, ok := a.anywhere.Get(key); ok {
		return v.(someNamespace), nil
	}

	verdict, err := a.walk(ctx, verb)
	if err != nil {
		return nowhere, err
	}
	a.anywhere.Add(key, verdict, a.ttl)
	return verdict, nil
}

func (a *access) walk(ctx context.Context, verb string) (someNamespace, error) {
	if ok, _, err := a.allowed(ctx, verb, ""); err != nil || ok {
		return verdictOf(ok, false), err
	}
	names, err := a.namespaces(ctx)
	if err != nil {
		return nowhere, err
	}
	beyond := len(names) > maxNamespaceReviews
	names = names[:min(len(names), maxNamespaceReviews)]
	// Stops at the first namespace that allows it.
	ctx, found := context.WithCancel(ctx)
	defer found()
	var allowed atomic.Bool
	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(namespaceListConcurrency)
	for _, ns := range names {
		eg.Go(func() error {
			if egctx.Err() != nil {
				return nil
			}
			ok, _, err := a.allowed(egctx, verb, ns.Name)
			if ok {
				allowed.Store(true)
				found()
			}
			if allowed.Load() {
				return nil // errors of reviews cancelled by the find
			}
			return err
		})
	}
	if err := eg.Wait(); err != nil && !allowed.Load() {
		return nowhere, err
	}
	return verdictOf(allowed.Load(), beyond), nil
}

func verdictOf(allowed, beyond bool) someNamespace {
	switch {
	case allowed:
		return anywhere
	case beyond:
		return unknown
	}
	return nowhere
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
