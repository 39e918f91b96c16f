// Package registry holds the subscriptions the delivery engine delivers to,
// indexed so that finding the subscriptions for an event is a few map
// lookups whatever their number.
package registry

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/credentials"
)

// Subscription is everything the engine needs to deliver to one
// WebhookSubscription: its spec with defaults applied and its Secrets
// resolved. A registered *Subscription is never modified; Upsert replaces it.
type Subscription struct {
	// ID is the namespace and name of the WebhookSubscription.
	ID types.NamespacedName
	// UID and Generation identify the object version this entry was built from.
	UID        types.UID
	Generation int64

	Type     kubehookv1.EventType
	Key      string
	Endpoint string

	// Suspended and Inactive subscriptions stay registered but match nothing.
	Suspended bool
	Inactive  bool

	PayloadFormat kubehookv1.PayloadFormat
	Delivery      Delivery

	// TLS holds the trusted CAs and client certificate; nil when none are configured.
	TLS                 *credentials.TLS
	SkipTLSVerification bool
	// SigningKeys are the decoded Standard Webhooks secrets; each one signs.
	SigningKeys [][]byte
	// Headers are extra request headers from headersSecretRef.
	Headers map[string]string
}

// Active reports whether the subscription receives deliveries.
func (s *Subscription) Active() bool { return !s.Suspended && !s.Inactive }

type indexKey struct {
	t   kubehookv1.EventType
	key string
}

// Registry is a concurrency-safe set of subscriptions with a matcher.
type Registry struct {
	mu    sync.RWMutex
	byID  map[types.NamespacedName]*Subscription
	index map[indexKey]map[types.NamespacedName]*Subscription
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{
		byID:  map[types.NamespacedName]*Subscription{},
		index: map[indexKey]map[types.NamespacedName]*Subscription{},
	}
}

// Upsert registers s, replacing any entry with the same ID.
func (r *Registry) Upsert(s *Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byID[s.ID]; ok {
		r.unindex(old)
	}
	r.byID[s.ID] = s
	k := indexKey{s.Type, s.Key}
	set := r.index[k]
	if set == nil {
		set = map[types.NamespacedName]*Subscription{}
		r.index[k] = set
	}
	set[s.ID] = s
}

// Remove drops the entry with the given ID, if any, and reports whether there was one.
func (r *Registry) Remove(id types.NamespacedName) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.byID[id]
	if !ok {
		return false
	}
	r.unindex(old)
	delete(r.byID, id)
	return true
}

func (r *Registry) unindex(s *Subscription) {
	k := indexKey{s.Type, s.Key}
	if set := r.index[k]; set != nil {
		delete(set, s.ID)
		if len(set) == 0 {
			delete(r.index, k)
		}
	}
}

// Get returns the entry with the given ID.
func (r *Registry) Get(id types.NamespacedName) (*Subscription, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.byID[id]
	return s, ok
}

// Len returns the number of registered subscriptions.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byID)
}

// List returns every registered subscription, in no particular order.
func (r *Registry) List() []*Subscription {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Subscription, 0, len(r.byID))
	for _, s := range r.byID {
		out = append(out, s)
	}
	return out
}

// Match returns the active subscriptions for an event of type t on the
// registry repository path repo ("ns/repo", nested "ns/team/repo", or ""
// for global events): those keyed on the repository, on its namespace (the
// first path component), and those with the empty key. REPO_CREATED,
// REPO_UPDATED and REPO_DELETED events also match REPO_EVENT subscriptions.
// The cost is a fixed number of map lookups plus the size of the result.
func (r *Registry) Match(t kubehookv1.EventType, repo string) []*Subscription {
	keys := scopeKeys(repo)
	types := []kubehookv1.EventType{t}
	switch t {
	case kubehookv1.RepoCreated, kubehookv1.RepoUpdated, kubehookv1.RepoDeleted:
		types = append(types, kubehookv1.RepoEvent)
	}

	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*Subscription
	for _, et := range types {
		for _, k := range keys {
			for _, s := range r.index[indexKey{et, k}] {
				if s.Active() {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// scopeKeys returns the distinct keys an event on repo matches: the
// repository itself, its namespace, and the global empty key.
func scopeKeys(repo string) []string {
	if repo == "" {
		return []string{""}
	}
	ns, _ := SplitRepository(repo)
	if ns == repo {
		return []string{repo, ""}
	}
	return []string{repo, ns, ""}
}

// SplitRepository splits a registry repository path into its namespace (the
// first component) and repository (the rest): "a/b/c" is namespace "a",
// repository "b/c".
func SplitRepository(path string) (namespace, repository string) {
	for i := 0; i < len(path); i++ {
		if path[i] == '/' {
			return path[:i], path[i+1:]
		}
	}
	return path, ""
}
