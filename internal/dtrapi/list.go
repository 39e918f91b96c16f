package dtrapi

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// namespaceListConcurrency bounds the lists (and access reviews) a caller
// without cluster-wide rights costs at once, and maxNamespaceLists the
// lists of one request.
const (
	namespaceListConcurrency = 8
	maxNamespaceLists        = 64
)

// CodeTooManyNamespaces: a listing would cost more than maxNamespaceLists
// lists.
const CodeTooManyNamespaces = "TOO_MANY_NAMESPACES"

// keyField is the WebhookSubscription field selector on spec.key (a
// selectable field of the CRD).
const keyField = "spec.key"

// list returns the subscriptions the caller may list (with the given key
// when key is set), oldest first. A caller who may list across the cluster
// gets one list; others get the namespaces holding subscriptions that they
// may list, each read as them.
func (s *Server) list(ctx context.Context, key *string) ([]Webhook, *apiError) {
	var opts []client.ListOption
	if key != nil {
		opts = append(opts, client.MatchingFields{keyField: *key})
	}
	var all kubehookv1.WebhookSubscriptionList
	err := s.as.List(ctx, &all, opts...)
	switch {
	case err == nil:
		return sorted(all.Items), nil
	case !apierrors.IsForbidden(err):
		return nil, fromAPI(err, "listing subscriptions")
	}

	namespaces, aerr := s.namespacesHolding(ctx, key)
	if aerr != nil {
		return nil, aerr
	}
	if len(namespaces) > maxNamespaceLists {
		// Not how many: that is not every caller's business.
		return nil, &apiError{status: http.StatusBadRequest, code: CodeTooManyNamespaces,
			message: fmt.Sprintf("these subscriptions live in more namespaces than the %d one request lists for a caller who may not list webhooksubscriptions across the cluster: list one repository's (GET %s{namespace}/{repository}/webhooks), or ask for list rights across the cluster",
				maxNamespaceLists, PathRepositories)}
	}
	// One list per namespace, a few at a time.
	lists := make([][]kubehookv1.WebhookSubscription, len(namespaces))
	allowed := make([]bool, len(namespaces))
	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(namespaceListConcurrency)
	for i, ns := range namespaces {
		eg.Go(func() error {
			var l kubehookv1.WebhookSubscriptionList
			err := s.as.List(egctx, &l, append([]client.ListOption{client.InNamespace(ns)}, opts...)...)
			if apierrors.IsForbidden(err) {
				return nil
			}
			if err != nil {
				return err
			}
			lists[i], allowed[i] = l.Items, true
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, fromAPI(err, "listing subscriptions")
	}
	var items []kubehookv1.WebhookSubscription
	listed := false
	for i := range lists {
		items = append(items, lists[i]...)
		listed = listed || allowed[i]
	}
	if !listed {
		if aerr := s.mayListSomewhere(ctx); aerr != nil {
			return nil, aerr
		}
	}
	return sorted(items), nil
}

// mayListSomewhere refuses a caller who may list subscriptions in no
// namespace. When that is not known (a right, if any, only beyond the
// namespaces one request asks about), the caller gets the empty listing:
// it tells nothing.
func (s *Server) mayListSomewhere(ctx context.Context) *apiError {
	verdict, err := s.access.inSomeNamespace(ctx, "list")
	if err != nil {
		return unavailable(err)
	}
	if verdict == nowhere {
		u, _ := callerFrom(ctx)
		return &apiError{status: http.StatusForbidden, code: CodeNotAuthorized,
			message: fmt.Sprintf("user %q may not list webhooksubscriptions in any namespace", u.user.Username)}
	}
	return nil
}

// namespacesHolding returns the namespaces that hold subscriptions (to key,
// when set), from kubehook's cache.
func (s *Server) namespacesHolding(ctx context.Context, key *string) ([]string, *apiError) {
	var cached kubehookv1.WebhookSubscriptionList
	if err := s.opts.Cache.List(ctx, &cached); err != nil {
		return nil, unavailable(err)
	}
	seen := map[string]bool{}
	var out []string
	for i := range cached.Items {
		sub := &cached.Items[i]
		if (key == nil || sub.Spec.Key == *key) && !seen[sub.Namespace] {
			seen[sub.Namespace] = true
			out = append(out, sub.Namespace)
		}
	}
	slices.Sort(out)
	return out, nil
}

// sorted converts subscriptions to DTR webhooks, oldest first (by id for
// equal creation times).
func sorted(items []kubehookv1.WebhookSubscription) []Webhook {
	hooks := make([]Webhook, 0, len(items))
	for i := range items {
		hooks = append(hooks, webhookFor(&items[i]))
	}
	slices.SortFunc(hooks, func(a, b Webhook) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return hooks
}
