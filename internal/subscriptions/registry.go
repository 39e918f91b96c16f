// Package subscriptions is the index of the subscriptions the delivery
// engine delivers to, as the controller registered them, with the matcher
// that finds an event's subscriptions in at most three lookups of a hash
// index, whatever their number, and each entry's Fate (what becomes of a
// delivery queued for it).
//
// It holds only what the controller put in: it must not read the API
// server, the queue or the network, and nothing but the controller writes
// to it.
package subscriptions

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

	// Suspended and Stalled subscriptions still match: their deliveries are
	// queued and held until they resume or are fixed. Stalled says why the
	// controller cannot use the subscription (a missing Secret, bad TLS
	// material); empty when it can.
	Suspended bool
	Stalled   string
	// Inactive and NotPermitted subscriptions match nothing, and what was
	// queued for them goes to the dead letters.
	Inactive     bool
	NotPermitted bool

	PayloadFormat kubehookv1.PayloadFormat
	Delivery      Delivery

	// TLS holds the trusted CAs and client certificate; nil when none are configured.
	TLS                 *credentials.TLS
	SkipTLSVerification bool
	// SigningKeys are the decoded Standard Webhooks secrets; each one signs.
	SigningKeys [][]byte
	// Headers are extra request headers from headersSecretRef.
	Headers map[string]string
	// SecretVersions maps each referenced Secret to the resourceVersion its
	// material above was parsed from.
	SecretVersions map[string]string
}

// Matches reports whether new events are queued for the subscription.
func (s *Subscription) Matches() bool { return !s.Inactive && !s.NotPermitted }

// Active reports whether the subscription's deliveries are attempted now.
func (s *Subscription) Active() bool { return s.Matches() && !s.Suspended && s.Stalled == "" }

// Fate is what becomes of a delivery queued for a subscription.
type Fate int

const (
	// Deliver: attempt it now.
	Deliver Fate = iota
	// Hold: keep it queued, not attempted, until the subscription resumes.
	Hold
	// DeadLetter: keep it as a dead letter, with the reason; it may be replayed.
	DeadLetter
)

// Fate decides what becomes of a delivery for this subscription, and why
// when it is not delivered. This is the one place that decides it; a
// subscription that is gone (no entry, and no object with its UID) is the
// caller's to establish, since only the API server can tell.
func (s *Subscription) Fate() (Fate, string) {
	switch {
	case s.Inactive:
		return DeadLetter, ReasonInactive
	case s.NotPermitted:
		return DeadLetter, ReasonNotPermitted
	case s.Suspended:
		return Hold, "suspended"
	case s.Stalled != "":
		return Hold, "stalled: " + s.Stalled
	}
	return Deliver, ""
}

// Reasons a subscription's deliveries are dead-lettered.
const (
	ReasonInactive     = "inactive"
	ReasonNotPermitted = "key-not-permitted"
)

// matchEntry is one active subscription in the match index. The type is kept
// as a small integer beside the pointer, so matching reads no subscription.
type matchEntry struct {
	t   uint8
	sub *Subscription
}

// Registry is a concurrency-safe set of subscriptions with a matcher.
type Registry struct {
	mu   sync.RWMutex
	byID map[types.NamespacedName]*Subscription
	// byUID finds the entry of a queued delivery's subscription UID.
	byUID map[types.UID]*Subscription
	// byKey indexes active subscriptions by key; an event looks up at most
	// three keys (repository, namespace, global).
	byKey keyIndex
	// watchers are told of every change (see OnChange).
	watchers []func(types.NamespacedName)
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{
		byID:  map[types.NamespacedName]*Subscription{},
		byUID: map[types.UID]*Subscription{},
		byKey: newKeyIndex(),
	}
}

// typeIndex numbers the event types; unknown types get 0, which no known type uses.
var typeIndex = func() map[kubehookv1.EventType]uint8 {
	m := make(map[kubehookv1.EventType]uint8, len(kubehookv1.EventTypes))
	for i, t := range kubehookv1.EventTypes {
		m[t] = uint8(i + 1)
	}
	return m
}()

// Upsert registers s, replacing any entry with the same ID.
func (r *Registry) Upsert(s *Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byID[s.ID]; ok {
		r.unindex(old)
		delete(r.byUID, old.UID)
	}
	r.byID[s.ID] = s
	r.byUID[s.UID] = s
	if s.Matches() {
		r.byKey.add(s.Key, matchEntry{t: typeIndex[s.Type], sub: s})
	}
	r.changed(s.ID)
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
	delete(r.byUID, old.UID)
	r.changed(id)
	return true
}

func (r *Registry) unindex(s *Subscription) {
	r.byKey.remove(s.Key, s)
}

// Deactivate marks the current entry of id inactive, if it is still the
// object with the given UID, and reports whether it did. It copies the
// current entry rather than one the caller holds, so a concurrent update by
// the controller is not undone.
func (r *Registry) Deactivate(id types.NamespacedName, uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.byID[id]
	if !ok || cur.UID != uid || cur.Inactive {
		return false
	}
	r.unindex(cur)
	next := *cur
	next.Inactive = true
	r.byID[id] = &next
	r.byUID[uid] = &next
	r.changed(id)
	return true
}

// OnChange registers fn, called with the ID of every entry added, replaced
// or removed, after the change. fn runs with the registry locked for
// writing: it must not call back into the registry, nor block.
func (r *Registry) OnChange(fn func(types.NamespacedName)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watchers = append(r.watchers, fn)
}

func (r *Registry) changed(id types.NamespacedName) {
	for _, fn := range r.watchers {
		fn(id)
	}
}

// Get returns the entry with the given ID.
func (r *Registry) Get(id types.NamespacedName) (*Subscription, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.byID[id]
	return s, ok
}

// GetByUID returns the entry of the object with the given UID.
func (r *Registry) GetByUID(uid types.UID) (*Subscription, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.byUID[uid]
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

// Match returns the subscriptions that take new events (Matches) for an event of type t on the
// registry repository path repo ("ns/repo", nested "ns/team/repo", or ""
// for global events): those keyed on the repository, on its namespace (the
// first path component), and those with the empty key. REPO_CREATED,
// REPO_UPDATED and REPO_DELETED events also match REPO_EVENT subscriptions.
// The cost is at most three map lookups plus the subscriptions of those keys.
func (r *Registry) Match(t kubehookv1.EventType, repo string) []*Subscription {
	want, also := typeIndex[t], uint8(0)
	switch t {
	case kubehookv1.RepoCreated, kubehookv1.RepoUpdated, kubehookv1.RepoDeleted:
		also = typeIndex[kubehookv1.RepoEvent]
	}
	if want == 0 {
		return nil
	}
	ns, _ := SplitRepository(repo)

	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*Subscription
	collect := func(key string) {
		s := r.byKey.find(key)
		if s == nil {
			return
		}
		if e := s.first; e.t == want || e.t == also {
			out = append(out, e.sub)
		}
		if s.ext != nil {
			for _, e := range s.ext.more {
				if e.t == want || e.t == also {
					out = append(out, e.sub)
				}
			}
		}
	}
	collect(repo)
	if ns != repo {
		collect(ns)
	}
	if repo != "" {
		collect("")
	}
	return out
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
